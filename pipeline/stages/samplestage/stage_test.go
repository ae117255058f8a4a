package samplestage

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/pipeline/stages/stagetest"
)

func TestGolden(t *testing.T) {
	stagetest.RunGolden(t, NewFactory(), "testdata")
}

func newStage(t testing.TB, cfg *Config) (*Stage, *pipeline.Metrics) {
	t.Helper()
	m := pipeline.NewMetrics()
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("sample/t"), Pipeline: "p", Metrics: m}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

func dropped(m *pipeline.Metrics) float64 {
	v, _ := m.Value("snakepipe_stage_events_dropped_total", pipeline.L("pipeline", "p", "stage", "sample/t", "reason", "sampled")...)
	return v
}

func batchOf(n int, name string, corr func(i int) string, rate float64) *pipeline.Batch {
	b := &pipeline.Batch{Events: make([]pipeline.Event, n)}
	for i := range b.Events {
		b.Events[i] = pipeline.Event{Name: name, TimestampNs: int64(i), SampleRate: rate}
		if corr != nil {
			b.Events[i].CorrelationID = corr(i)
		}
	}
	return b
}

func TestRandomRateSeeded(t *testing.T) {
	tests := []struct {
		rate    float64
		lo, hi  int // bounds on kept out of 100000, > 10 standard deviations wide
		inRate  float64
		outRate float64
	}{
		{rate: 0.1, lo: 9000, hi: 11000, inRate: 1, outRate: 0.1},
		{rate: 0.5, lo: 48500, hi: 51500, inRate: 0.5, outRate: 0.25},
		{rate: 0.01, lo: 700, hi: 1300, inRate: 0, outRate: 0.01},
		{rate: 1, lo: 100000, hi: 100000, inRate: 0.3, outRate: 0.3},
		{rate: 0, lo: 0, hi: 0, inRate: 1, outRate: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			s, m := newStage(t, &Config{Rate: tt.rate, By: ByRandom, Seed: 99})
			out, err := s.Process(context.Background(), batchOf(100000, "python.gc.completed", nil, tt.inRate))
			if err != nil {
				t.Fatal(err)
			}
			if n := out.Len(); n < tt.lo || n > tt.hi {
				t.Errorf("kept %d of 100000 at rate %v, want in [%d, %d]", n, tt.rate, tt.lo, tt.hi)
			}
			if got, want := dropped(m), float64(100000-out.Len()); got != want {
				t.Errorf("dropped counter = %v, want %v", got, want)
			}
			for i := range out.Events {
				if out.Events[i].SampleRate != tt.outRate {
					t.Fatalf("event %d SampleRate = %v, want %v", i, out.Events[i].SampleRate, tt.outRate)
				}
			}
		})
	}
}

func TestSeedIsReproducible(t *testing.T) {
	keptTimes := func() []int64 {
		s, _ := newStage(t, &Config{Rate: 0.3, By: ByRandom, Seed: 5})
		out, _ := s.Process(context.Background(), batchOf(1000, "x", nil, 1))
		var ts []int64
		for _, e := range out.Events {
			ts = append(ts, e.TimestampNs)
		}
		return ts
	}
	a, b := keptTimes(), keptTimes()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("same seed gave different outcomes")
	}
}

func TestUnseededRandomWideBounds(t *testing.T) {
	s, _ := newStage(t, &Config{Rate: 0.2, By: ByRandom})
	out, _ := s.Process(context.Background(), batchOf(100000, "x", nil, 1))
	// mean 20000, sd ~126: the bounds are ~16 sd wide on each side.
	if n := out.Len(); n < 18000 || n > 22000 {
		t.Fatalf("kept %d of 100000 at 0.2", n)
	}
}

func TestByCorrelationIDKeepsRequestsWhole(t *testing.T) {
	const requests, perReq = 5000, 4
	corr := func(i int) string { return fmt.Sprintf("req-%d", i/perReq) }
	keptAt := func(rate float64) map[string]int {
		s, _ := newStage(t, &Config{Rate: rate, By: ByCorrelationID, Seed: 3})
		out, _ := s.Process(context.Background(), batchOf(requests*perReq, "python.call.stop", corr, 1))
		kept := map[string]int{}
		for _, e := range out.Events {
			kept[e.CorrelationID]++
			if e.SampleRate != rate {
				t.Fatalf("SampleRate = %v, want %v", e.SampleRate, rate)
			}
		}
		return kept
	}
	low, high := keptAt(0.2), keptAt(0.5)
	for id, n := range high {
		if n != perReq {
			t.Fatalf("request %s: %d of %d events kept", id, n, perReq)
		}
	}
	// mean 1000 / 2500 requests, sd 28 / 35.
	if len(low) < 800 || len(low) > 1200 || len(high) < 2200 || len(high) > 2800 {
		t.Fatalf("kept %d requests at 0.2 and %d at 0.5 of %d", len(low), len(high), requests)
	}
	for id := range low {
		if _, ok := high[id]; !ok {
			t.Fatalf("request %s kept at 0.2 but not at 0.5", id)
		}
	}
}

func TestByCorrelationIDWithoutIDFallsBackToRandom(t *testing.T) {
	s, _ := newStage(t, &Config{Rate: 0.5, By: ByCorrelationID, Seed: 11})
	out, _ := s.Process(context.Background(), batchOf(10000, "x", nil, 1))
	if n := out.Len(); n < 4000 || n > 6000 {
		t.Fatalf("kept %d of 10000", n)
	}
}

func TestRulesFirstMatchWins(t *testing.T) {
	s, _ := newStage(t, &Config{Rate: 0.5, By: ByRandom, Rules: []Rule{
		{Pattern: "python.call.*", Rate: 0.1},
		{Pattern: "python.*", Rate: 0.9},
	}})
	for name, want := range map[string]float64{
		"python.call.stop":      0.1,
		"python.memory.sampled": 0.9,
		"tool.execution.start":  0.5,
	} {
		if got := s.RateFor(name); got != want {
			t.Errorf("RateFor(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConcurrentProcess(t *testing.T) {
	for _, seed := range []uint64{0, 8} {
		s, m := newStage(t, &Config{Rate: 0.5, By: ByRandom, Seed: seed})
		var wg sync.WaitGroup
		start := make(chan struct{})
		var mu sync.Mutex
		kept := 0
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range 20 {
					out, _ := s.Process(context.Background(), batchOf(100, "x", nil, 1))
					mu.Lock()
					kept += out.Len()
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := dropped(m); int(got)+kept != 8*20*100 {
			t.Fatalf("seed %d: dropped %v + kept %d != %d", seed, got, kept, 8*20*100)
		}
	}
}

func BenchmarkProcess(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  *Config
	}{
		{"random_0.5", &Config{Rate: 0.5, By: ByRandom}},
		{"correlation_0.5", &Config{Rate: 0.5, By: ByCorrelationID}},
		{"rules_3", &Config{Rate: 1, By: ByRandom, Rules: []Rule{
			{Pattern: "tool.*", Rate: 0.1}, {Pattern: "python.memory.*", Rate: 0.1}, {Pattern: "python.call.*", Rate: 0.5},
		}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := newStage(b, bc.cfg)
			src := batchOf(1000, "python.call.stop", func(i int) string { return fmt.Sprintf("req-%d", i/4) }, 1)
			buf := &pipeline.Batch{Events: make([]pipeline.Event, len(src.Events))}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				buf.Events = buf.Events[:len(src.Events)]
				copy(buf.Events, src.Events)
				if _, err := s.Process(context.Background(), buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src.Events)), "ns/event")
		})
	}
}
