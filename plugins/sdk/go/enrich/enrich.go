// Package enrich turns a Go program into a snakepipe enrich plugin: import
// it, call Handle from init, and build with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared. It exports snk_enrich.
package enrich

import snk "github.com/snakepipe/snakepipe/plugins/sdk/go"

var fn func(*snk.Event, *snk.Patch)

// Handle registers f: it reads the event and records changes in the patch
// (or drops the event with p.Drop()).
func Handle(f func(e *snk.Event, p *snk.Patch)) { fn = f }

// Run is the body of snk_enrich, exported for tests.
func Run(n, l uint32) int64 { return snk.RunEnrich(n, l, fn) }
