package examples_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

func BenchmarkGuestOnly(b *testing.B) {
	for _, lang := range append(append([]string{}, languages...), "wat") {
		for _, dl := range []bool{false, true} {
			for _, n := range []int{1, 64, 256} {
				b.Run(fmt.Sprintf("%s/deadline=%v/batch=%d", lang, dl, n), func(b *testing.B) {
					path := lang + "/slow_calls.wasm"
					if lang == "wat" {
						path = "wat/filter.wasm"
					}
					bin, _ := os.ReadFile(path)
					g, _ := newGuestOpt(context.Background(), dl)
					if err := g.setup(bin, map[string]string{"min_duration_ns": "1000000"}); err != nil {
						b.Fatal(err)
					}
					defer g.close()
					enc := encodeBatch(nil, benchEvents(n))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if dl {
							ctx, cancel := context.WithTimeout(context.Background(), time.Second)
							g.ctx = ctx
							_, err := g.callRaw(g.filter, n, enc)
							cancel()
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
