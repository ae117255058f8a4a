package filterstage

import (
	"context"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/pipeline/stages/stagetest"
)

func TestGolden(t *testing.T) {
	stagetest.RunGolden(t, NewFactory(), "testdata")
}

func TestKeep(t *testing.T) {
	origin := &pipeline.Origin{WorkerID: "w1", Pool: "prod", Hostname: "h1", PID: 42}
	ev := func(name string, o *pipeline.Origin, md ...string) pipeline.Event {
		e := pipeline.Event{Name: name, Origin: o}
		for i := 0; i+1 < len(md); i += 2 {
			e.Metadata = append(e.Metadata, pipeline.Label{Key: md[i], Value: md[i+1]})
		}
		return e
	}
	tests := []struct {
		name   string
		cfg    Config
		event  pipeline.Event
		keep   bool
		reason string
	}{
		{"empty passes", Config{Mode: ModeKeep}, ev("a.b", nil), true, ""},
		{"allow hit", Config{Allow: []string{"python.*"}, Mode: ModeKeep}, ev("python.x", nil), true, ""},
		{"allow miss", Config{Allow: []string{"python.*"}, Mode: ModeKeep}, ev("tool.x", nil), false, "name"},
		{"deny wins", Config{Allow: []string{"python.*"}, Deny: []string{"python.x"}, Mode: ModeKeep}, ev("python.x", nil), false, "name"},
		{"eq host key", Config{Match: []Condition{{Key: "pool", Op: OpEq, Value: "prod"}}, Mode: ModeKeep}, ev("a", origin), true, ""},
		{"eq host key pid", Config{Match: []Condition{{Key: "pid", Op: OpEq, Value: "42"}}, Mode: ModeKeep}, ev("a", origin), true, ""},
		{"eq host key no origin", Config{Match: []Condition{{Key: "pool", Op: OpEq, Value: "prod"}}, Mode: ModeKeep}, ev("a", nil), false, "match"},
		{"eq metadata miss", Config{Match: []Condition{{Key: "tool", Op: OpEq, Value: "x"}}, Mode: ModeKeep}, ev("a", nil, "tool", "y"), false, "match"},
		{"ne absent holds", Config{Match: []Condition{{Key: "tool", Op: OpNe, Value: "x"}}, Mode: ModeKeep}, ev("a", nil), true, ""},
		{"ne equal fails", Config{Match: []Condition{{Key: "tool", Op: OpNe, Value: "x"}}, Mode: ModeKeep}, ev("a", nil, "tool", "x"), false, "match"},
		{"glob", Config{Match: []Condition{{Key: "tool", Op: OpGlob, Value: "search_*"}}, Mode: ModeKeep}, ev("a", nil, "tool", "search_web"), true, ""},
		{"glob absent", Config{Match: []Condition{{Key: "tool", Op: OpGlob, Value: "*"}}, Mode: ModeKeep}, ev("a", nil), false, "match"},
		{"exists", Config{Match: []Condition{{Key: "tool", Op: OpExists}}, Mode: ModeKeep}, ev("a", nil, "tool", ""), true, ""},
		{"all must hold", Config{Match: []Condition{{Key: "tool", Op: OpExists}, {Key: "worker_id", Op: OpEq, Value: "w2"}}, Mode: ModeKeep}, ev("a", origin, "tool", "t"), false, "match"},
		{"drop mode holds", Config{Match: []Condition{{Key: "worker_id", Op: OpEq, Value: "w1"}}, Mode: ModeDrop}, ev("a", origin), false, "match"},
		{"drop mode not holding", Config{Match: []Condition{{Key: "worker_id", Op: OpEq, Value: "w2"}}, Mode: ModeDrop}, ev("a", origin), true, ""},
		{"name checked before match", Config{Deny: []string{"a"}, Match: []Condition{{Key: "x", Op: OpExists}}, Mode: ModeDrop}, ev("a", nil), false, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("filter/t")}, &tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			keep, reason := s.Keep(&tt.event)
			if keep != tt.keep || reason != tt.reason {
				t.Errorf("Keep = %v, %q; want %v, %q", keep, reason, tt.keep, tt.reason)
			}
		})
	}
}

func TestProcessCountsDrops(t *testing.T) {
	m := pipeline.NewMetrics()
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("filter/t"), Pipeline: "p", Metrics: m},
		&Config{Deny: []string{"tool.*"}, Match: []Condition{{Key: "tool", Op: OpEq, Value: "x"}}, Mode: ModeDrop})
	if err != nil {
		t.Fatal(err)
	}
	b := &pipeline.Batch{Events: []pipeline.Event{
		{Name: "tool.a"}, {Name: "python.a", Metadata: []pipeline.Label{{Key: "tool", Value: "x"}}},
		{Name: "python.b"}, {Name: "tool.b"}, {Name: "python.c", Metadata: []pipeline.Label{{Key: "tool", Value: "y"}}},
	}}
	out, err := s.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 2 || out.Events[0].Name != "python.b" || out.Events[1].Name != "python.c" {
		t.Fatalf("kept %+v", out.Events)
	}
	for reason, want := range map[string]float64{"name": 2, "match": 1} {
		got, _ := m.Value("snakepipe_stage_events_dropped_total", pipeline.L("pipeline", "p", "stage", "filter/t", "reason", reason)...)
		if got != want {
			t.Errorf("dropped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

func BenchmarkProcess(b *testing.B) {
	origin := &pipeline.Origin{WorkerID: "w1", Pool: "prod"}
	cfgs := map[string]*Config{
		"names":    {Allow: []string{"python.*", "tool.*"}, Deny: []string{"python.memory.*"}, Mode: ModeKeep},
		"metadata": {Match: []Condition{{Key: "pool", Op: OpEq, Value: "prod"}, {Key: "tool", Op: OpGlob, Value: "search_*"}}, Mode: ModeDrop},
	}
	for name, cfg := range cfgs {
		b.Run(name, func(b *testing.B) {
			s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("filter/b")}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			src := make([]pipeline.Event, 1000)
			for i := range src {
				names := []string{"python.call.stop", "python.memory.sampled", "tool.execution.start", "other.x"}
				src[i] = pipeline.Event{Name: names[i%4], Origin: origin,
					Metadata: []pipeline.Label{{Key: "tool", Value: []string{"search_web", "calc"}[i%2]}}}
			}
			batch := &pipeline.Batch{Events: make([]pipeline.Event, 0, len(src))}
			b.ReportAllocs()
			for b.Loop() {
				batch.Events = append(batch.Events[:0], src...)
				if _, err := s.Process(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/event")
		})
	}
}
