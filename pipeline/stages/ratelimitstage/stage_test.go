package ratelimitstage

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/internal/componenttest"
	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/pipeline/stages/stagetest"
)

func TestGolden(t *testing.T) {
	stagetest.RunGolden(t, NewFactory(), "testdata")
}

func TestConfig(t *testing.T) {
	tests := []struct {
		id      string
		want    *Config
		wantErr []string
	}{
		{id: "ratelimit/gc", want: &Config{Rules: []Rule{{Pattern: "python.gc.*", Rate: 10}, {Pattern: "python.memory.*", Rate: 0.5, Burst: 5}}}},
		{id: "ratelimit/none", wantErr: []string{"rules: at least one rule is required"}},
		{id: "ratelimit/bad", wantErr: []string{"rules[0].pattern: bad glob", "rules[0].rate: 0 must be a positive", "rules[0].burst: -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			err := componenttest.Decode(filepath.Join("testdata", "config.yaml"), "stages", tt.id, cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("want errors %q, got none", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tt.want) {
				t.Errorf("got %+v, want %+v", cfg, tt.want)
			}
		})
	}
}

// fakeClock is advanced by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStage(t testing.TB, rules ...Rule) (*Stage, *fakeClock, *pipeline.Metrics) {
	t.Helper()
	m := pipeline.NewMetrics()
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("ratelimit/t"), Pipeline: "p", Metrics: m}, &Config{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1000, 0)}
	s.now = clk.now
	return s, clk, m
}

func batch(name string, n int) *pipeline.Batch {
	b := &pipeline.Batch{Events: make([]pipeline.Event, n)}
	for i := range b.Events {
		b.Events[i] = pipeline.Event{Name: name, TimestampNs: int64(i)}
	}
	return b
}

func TestTokenBucket(t *testing.T) {
	s, clk, m := newStage(t, Rule{Pattern: "python.gc.*", Rate: 10, Burst: 5}, Rule{Pattern: "python.*", Rate: 2})
	ctx := context.Background()
	steps := []struct {
		advance time.Duration
		name    string
		n, want int
	}{
		{0, "python.gc.completed", 8, 5},              // full bucket: burst 5
		{0, "python.gc.completed", 3, 0},              // empty
		{100 * time.Millisecond, "python.gc.x", 3, 1}, // 0.1 s at 10/s = 1 token
		{10 * time.Second, "python.gc.x", 20, 5},      // refill caps at burst
		{0, "python.call.stop", 5, 2},                 // second rule: burst = ceil(2)
		{500 * time.Millisecond, "python.call.stop", 5, 1},
		{0, "tool.execution.start", 50, 50}, // no rule: unlimited
	}
	dropped := 0
	for i, st := range steps {
		clk.advance(st.advance)
		out, err := s.Process(ctx, batch(st.name, st.n))
		if err != nil {
			t.Fatal(err)
		}
		if out.Len() != st.want {
			t.Fatalf("step %d: %d of %d %s passed, want %d", i, out.Len(), st.n, st.name, st.want)
		}
		dropped += st.n - st.want
	}
	got, _ := m.Value("snakepipe_stage_events_dropped_total", pipeline.L("pipeline", "p", "stage", "ratelimit/t", "reason", "rate_limited")...)
	if int(got) != dropped {
		t.Fatalf("dropped counter = %v, want %d", got, dropped)
	}
}

func TestConcurrentBucketNeverOverspends(t *testing.T) {
	s, _, _ := newStage(t, Rule{Pattern: "*", Rate: 1, Burst: 100})
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	release := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			for range 10 {
				out, _ := s.Process(context.Background(), batch("x", 10))
				mu.Lock()
				passed += out.Len()
				mu.Unlock()
			}
		}()
	}
	close(release)
	wg.Wait()
	if passed != 100 {
		t.Fatalf("%d events passed a frozen bucket of 100", passed)
	}
}

func BenchmarkProcess(b *testing.B) {
	s, _, _ := newStage(b, Rule{Pattern: "python.gc.*", Rate: 1e12, Burst: 1 << 30}, Rule{Pattern: "python.call.*", Rate: 1e12, Burst: 1 << 30})
	s.now = time.Now
	src := batch("python.call.stop", 1000)
	buf := &pipeline.Batch{Events: make([]pipeline.Event, 0, len(src.Events))}
	b.ReportAllocs()
	for b.Loop() {
		buf.Events = append(buf.Events[:0], src.Events...)
		if _, err := s.Process(context.Background(), buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src.Events)), "ns/event")
}
