package plugins

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
)

func benchEvents(n int) []pipeline.Event {
	out := make([]pipeline.Event, n)
	origin := &pipeline.Origin{WorkerID: "w-12", Pool: "default", Hostname: "host-a", PID: 4242}
	for i := range out {
		out[i] = pipeline.Event{Name: "python.call.stop", TimestampNs: 1732500000000000000 + int64(i), SampleRate: 1,
			CorrelationID: "c0ffee",
			Measurements:  []pipeline.Measurement{mi("duration", int64(i%4)*1000)},
			Metadata:      []pipeline.Label{{Key: "function", Value: "handler"}, {Key: "module", Value: "app.views"}},
			Origin:        origin}
	}
	return out
}

// nativeFilter is the reference filter as a Go stage, for comparison.
func nativeFilter(minNs int64) pipeline.StageFunc {
	return func(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
		out := b.Events[:0]
		for _, e := range b.Events {
			keep := true
			if e.Name == "python.call.stop" {
				if v, ok := e.Measurement("duration"); ok {
					if f, ok := v.AsFloat(); ok {
						keep = f >= float64(minNs)
					}
				}
			}
			if keep {
				out = append(out, e)
			}
		}
		b.Events = out
		return b, nil
	}
}

// halveStage keeps the first half of a batch and looks at nothing.
var halveStage = pipeline.StageFunc(func(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	b.Events = b.Events[:len(b.Events)/2]
	return b, nil
})

func runStageBench(b *testing.B, st pipeline.Stage, size int) {
	src := benchEvents(size)
	batch := &pipeline.Batch{Events: make([]pipeline.Event, size)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch.Events = batch.Events[:size]
		copy(batch.Events, src)
		out, err := st.Process(ctx, batch)
		if err != nil || out.Len() != size/2 && size > 1 {
			b.Fatalf("out %d err %v", out.Len(), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
}

// BenchmarkFilterStage: per-event cost of a filter stage (encode into guest
// memory, one call, verdicts, compaction) by guest, batch size and deadline.
func BenchmarkFilterStage(b *testing.B) {
	h := newTestHost(b)
	guests := map[string]string{"c": td("filter.wasm"), "wat": filepath.Join("..", "examples", "plugins", "wat", "filter.wasm")}
	for _, size := range []int{1, 16, 64, 256} {
		// harness: the per-iteration batch copy and stage call alone (a
		// stage that only shortens the batch), to subtract from the others.
		b.Run(fmt.Sprintf("harness/batch=%d", size), func(b *testing.B) { runStageBench(b, halveStage, size) })
		b.Run(fmt.Sprintf("native/batch=%d", size), func(b *testing.B) { runStageBench(b, nativeFilter(2000), size) })
		for _, guest := range []string{"c", "wat"} {
			for _, trusted := range []bool{true, false} {
				mode := "deadline"
				if trusted {
					mode = "nodeadline"
				}
				b.Run(fmt.Sprintf("%s/%s/batch=%d", guest, mode, size), func(b *testing.B) {
					cfg := cfgFor(guests[guest])
					cfg.Trusted = trusted
					cfg.Instances = 1
					cfg.Deadline = time.Second // the deadline's cost, without spurious timeouts on a loaded machine
					cfg.Config = map[string]string{"min_duration_ns": "2000"}
					runStageBench(b, mustStage(b, h, cfg, stageOpts{logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})}), size)
				})
			}
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	bin, err := os.ReadFile(td("filter.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", cached), func(b *testing.B) {
			dir := b.TempDir()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if !cached {
					dir = b.TempDir()
				}
				cfg := DefaultHostConfig()
				cfg.CacheDir, cfg.Watch = dir, false
				h, err := NewHost(cfg, hclog.NewNullLogger(), nil)
				if err != nil {
					b.Fatal(err)
				}
				h.mu.Lock()
				r, err := h.runtime(context.Background(), false)
				h.mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				if cached && i == 0 {
					cm, err := r.CompileModule(context.Background(), bin) // warm the disk cache
					if err != nil {
						b.Fatal(err)
					}
					_ = cm.Close(context.Background())
					_ = h.Close(context.Background())
					if h, err = NewHost(cfg, hclog.NewNullLogger(), nil); err != nil {
						b.Fatal(err)
					}
					h.mu.Lock()
					r, _ = h.runtime(context.Background(), false)
					h.mu.Unlock()
				}
				b.StartTimer()
				cm, err := r.CompileModule(context.Background(), bin)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				_ = cm.Close(context.Background())
				_ = h.Close(context.Background())
				b.StartTimer()
			}
		})
	}
}

// BenchmarkInstantiate: a new instance with the full ABI start sequence
// (instantiate, snk_abi_version, snk_in_buf, snk_init) and its close.
func BenchmarkInstantiate(b *testing.B) {
	h := newTestHost(b)
	for _, f := range []string{"filter.wasm", "swap_even.wasm"} {
		b.Run(f, func(b *testing.B) {
			cfg := cfgFor(td(f))
			cfg.Kind = "filter"
			s := mustStage(b, h, cfg, stageOpts{})
			v := s.cur.Load()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				inst, err := s.instantiate(context.Background(), v)
				if err != nil {
					b.Fatal(err)
				}
				inst.close(true, false)
			}
		})
	}
}

// BenchmarkSwap: Stage.Reload of an already-compiled module (read, check,
// probe, init, self-test of one event, switch, close of the old version).
func BenchmarkSwap(b *testing.B) {
	h := newTestHost(b)
	path := filepath.Join(b.TempDir(), "p.wasm")
	installFile(b, td("swap_even.wasm"), path)
	cfg := cfgFor(path)
	cfg.Kind = "filter"
	cfg.SelfTest.Events = []string{`{"name":"x","timestamp_ns":1,"measurements":{"n":1}}`}
	s := mustStage(b, h, cfg, stageOpts{})
	files := []string{td("swap_odd.wasm"), td("swap_even.wasm")}
	for _, f := range files { // warm: both compiled once
		installFile(b, f, path)
		if _, err := s.Reload(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var t time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		installFile(b, files[i%2], path)
		b.StartTimer()
		t0 := time.Now()
		if _, err := s.Reload(context.Background()); err != nil {
			b.Fatal(err)
		}
		t += time.Since(t0)
	}
}

// BenchmarkEncodeRecords: the host's encode alone (the events of
// BenchmarkFilterStage into a 64 KiB buffer, as one chunk), by the field
// groups sent: fields=all is a module without snk_fields (the figure this
// benchmark gave before snk_fields), the others what a snk_fields
// declaration asks for.
func BenchmarkEncodeRecords(b *testing.B) {
	for _, g := range []FieldGroups{FieldsAll, FieldsMeasurements | FieldsMetadata, FieldsMeasurements, 0} {
		b.Run("fields="+strings.ReplaceAll(g.String(), ", ", "+"), func(b *testing.B) { benchEncode(b, g) })
	}
}

func benchEncode(b *testing.B, fields FieldGroups) {
	evs := benchEvents(64)
	buf := make([]byte, defaultInBuf)
	var oc originCache
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, n := encodeRecords(buf, evs, maxEventBytes, fields, &oc); n != len(evs) {
			b.Fatal("event refused")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
