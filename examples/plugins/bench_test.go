package examples_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// benchEvents: python.call.stop events, every other one below the 1 ms
// threshold (dropped), with a realistic set of fields and a host context.
func benchEvents(n int) []pipeline.Event {
	origin := &pipeline.Origin{WorkerID: "worker-17", Pool: "default", Hostname: "app-3.example", PID: 31337}
	evs := make([]pipeline.Event, n)
	for i := range evs {
		d := int64(250_000)
		if i%2 == 1 {
			d = 4_000_000
		}
		evs[i] = pipeline.Event{
			Name: "python.call.stop", TimestampNs: 1732500000000000000 + int64(i), CorrelationID: "req-8f14e45f",
			SampleRate: 1, Origin: origin,
			Measurements: []pipeline.Measurement{
				{Key: "cpu_ns", Value: pipeline.IntValue(d / 2)},
				{Key: "duration", Value: pipeline.IntValue(d)},
			},
			Metadata: []pipeline.Label{{Key: "function", Value: "handle_request"}, {Key: "module", Value: "app.views"}},
		}
	}
	return evs
}

// nativeSlowCalls is slow_calls as a native Go stage body, for comparison.
func nativeSlowCalls(evs []pipeline.Event, min int64) []pipeline.Event {
	out := evs[:0]
	for _, e := range evs {
		keep := true
		if e.Name == "python.call.stop" {
			if v, ok := e.Measurement("duration"); ok {
				switch v.Kind {
				case pipeline.KindInt:
					keep = v.Int >= min
				case pipeline.KindFloat:
					keep = v.Float >= float64(min)
				}
			}
		}
		if keep {
			out = append(out, e)
		}
	}
	return out
}

// BenchmarkFilterGuests: per-event cost of the slow_calls filter as a wasm
// stage, per guest language, batch size and deadline (trusted: true turns
// the deadline off), next to the same filter in native Go. Each iteration
// first copies the batch back from a template (the stage filters in
// place); "harness" is that copy alone, to subtract from the others.
func BenchmarkFilterGuests(b *testing.B) {
	cfg := map[string]string{"min_duration_ns": "1000000"}
	langs := append([]string{"harness", "native"}, languages...)
	langs = append(langs, "wat")
	for _, lang := range langs {
		for _, deadline := range []bool{false, true} {
			if (lang == "native" || lang == "harness") && deadline {
				continue
			}
			for _, n := range []int{1, 16, 64, 256} {
				name := fmt.Sprintf("%s/deadline=%v/batch=%d", lang, deadline, n)
				b.Run(name, func(b *testing.B) {
					src := benchEvents(n)
					batch := &pipeline.Batch{Events: make([]pipeline.Event, n)}
					var process func() int
					switch lang {
					case "harness":
						process = func() int { return n / 2 }
					case "native":
						process = func() int { return len(nativeSlowCalls(batch.Events, 1_000_000)) }
					default:
						path := filepath.Join(lang, "slow_calls.wasm")
						if lang == "wat" {
							path = filepath.Join("wat", "filter.wasm")
						}
						s := mustStage(b, newHost(b), path, cfg, !deadline)
						ctx := context.Background()
						process = func() int {
							out, err := s.Process(ctx, batch)
							if err != nil {
								b.Fatal(err)
							}
							return out.Len()
						}
					}
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						batch.Events = batch.Events[:n]
						copy(batch.Events, src)
						if kept := process(); kept != n/2 && n > 1 {
							b.Fatalf("kept %d of %d, want half", kept, n)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
				})
			}
		}
	}
}
