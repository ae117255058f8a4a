// Package filter turns a Go program into a snakepipe filter plugin: import
// it, call Handle from init, and build with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared. It exports snk_filter.
package filter

import snk "github.com/snakepipe/snakepipe/plugins/sdk/go"

var keep func(*snk.Event) bool

// Handle registers keep: it returns true to keep the event, false to drop it.
func Handle(fn func(e *snk.Event) bool) { keep = fn }

// Run is the body of snk_filter, exported for tests.
func Run(n, l uint32) int64 { return snk.RunFilter(n, l, keep) }
