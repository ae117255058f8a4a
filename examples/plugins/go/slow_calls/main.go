//go:build wasip1

// Command slow_calls is the example filter plugin in Go: an event named
// python.call.stop whose measurement duration (int or float) is below config
// min_duration_ns (default 0) is dropped; every other event is kept (also a
// python.call.stop without a numeric duration: it cannot be judged).
package main

import (
	snk "github.com/snakepipe/snakepipe/plugins/sdk/go"
	"github.com/snakepipe/snakepipe/plugins/sdk/go/filter"
)

var minDuration int64

func init() {
	// Only the duration measurement is read: the host need not send
	// metadata or host context.
	snk.DeclareFields(snk.Measurements)
	snk.OnInit(func(cfg snk.Config) error {
		if err := cfg.Only("min_duration_ns"); err != nil {
			return err
		}
		var err error
		minDuration, err = cfg.Int64("min_duration_ns", 0)
		return err
	})
	filter.Handle(func(e *snk.Event) bool {
		if !e.NameIs("python.call.stop") {
			return true
		}
		i, f, isInt, ok := e.Number("duration")
		switch {
		case !ok:
			return true
		case isInt:
			return i >= minDuration
		default:
			return f >= float64(minDuration)
		}
	})
}

func main() {}
