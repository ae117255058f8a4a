//go:build wasip1

package filter

//go:wasmexport snk_filter
func snkFilter(n, l uint32) int64 { return Run(n, l) }
