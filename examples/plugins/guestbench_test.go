package examples_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/snakepipe/snakepipe/plugins"
)

// BenchmarkGuestOnly: one guest call per batch through the raw driver.
// deadline=true measures what the host does for an untrusted plugin: the
// module rewritten by plugins.InstrumentForDeadline, in a runtime without
// close-on-context-done, with one reusable timer per instance that would
// set the interrupt global.
func BenchmarkGuestOnly(b *testing.B) {
	for _, lang := range append(append([]string{}, languages...), "wat") {
		for _, dl := range []bool{false, true} {
			for _, n := range []int{1, 64, 256} {
				b.Run(fmt.Sprintf("%s/deadline=%v/batch=%d", lang, dl, n), func(b *testing.B) {
					path := lang + "/slow_calls.wasm"
					if lang == "wat" {
						path = "wat/filter.wasm"
					}
					bin, err := os.ReadFile(path)
					if err != nil {
						b.Fatal(err)
					}
					if dl {
						ins, err := plugins.InstrumentForDeadline(bin)
						if err != nil {
							b.Fatal(err)
						}
						if ins.HasStart {
							b.Fatal("start function: the raw driver does not call it")
						}
						bin = ins.Binary
					}
					g, _ := newGuestOpt(context.Background(), false)
					if err := g.setup(bin, map[string]string{"min_duration_ns": "1000000"}); err != nil {
						b.Fatal(err)
					}
					defer g.close()
					var timer *time.Timer
					if dl {
						interrupt, ok := g.mod.ExportedGlobal(plugins.InterruptGlobal).(api.MutableGlobal)
						if !ok {
							b.Fatal("no interrupt global")
						}
						timer = time.AfterFunc(time.Hour, func() { interrupt.Set(1) })
						timer.Stop()
					}
					enc := encodeBatch(nil, benchEvents(n))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if dl {
							timer.Reset(time.Second)
							_, err := g.callRaw(g.filter, n, enc)
							if !timer.Stop() {
								b.Fatal("deadline fired")
							}
							if err != nil {
								b.Fatal(err)
							}
						} else if _, err := g.callRaw(g.filter, n, enc); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
				})
			}
		}
	}
}
