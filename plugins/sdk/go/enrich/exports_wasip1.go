//go:build wasip1

package enrich

//go:wasmexport snk_enrich
func snkEnrich(n, l uint32) int64 { return Run(n, l) }
