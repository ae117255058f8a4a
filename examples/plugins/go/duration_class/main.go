//go:build wasip1

// Command duration_class is the example enrich plugin in Go: an event with a
// measurement duration (int or float) gets metadata duration_class = fast
// (duration < fast_ns, default 1000000), slow (duration >= slow_ns, default
// 100000000) or normal. Events without duration are unchanged.
package main

import (
	snk "github.com/snakepipe/snakepipe/plugins/sdk/go"
	"github.com/snakepipe/snakepipe/plugins/sdk/go/enrich"
)

var fastNS, slowNS int64 = 1000000, 100000000

func init() {
	// Only the duration measurement is read: the host need not send
	// metadata or host context.
	snk.DeclareFields(snk.Measurements)
	snk.OnInit(func(cfg snk.Config) error {
		if err := cfg.Only("fast_ns", "slow_ns"); err != nil {
			return err
		}
		var err error
		if fastNS, err = cfg.Int64("fast_ns", 1000000); err != nil {
			return err
		}
		slowNS, err = cfg.Int64("slow_ns", 100000000)
		return err
	})
	enrich.Handle(func(e *snk.Event, p *snk.Patch) {
		i, f, isInt, ok := e.Number("duration")
		if !ok {
			return
		}
		class := "normal"
		if isInt {
			if i < fastNS {
				class = "fast"
			} else if i >= slowNS {
				class = "slow"
			}
		} else {
			if f < float64(fastNS) {
				class = "fast"
			} else if f >= float64(slowNS) {
				class = "slow"
			}
		}
		p.SetMetadata("duration_class", class)
	})
}

func main() {}
