package metadatastage

import (
	"context"
	"reflect"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/pipeline/stages/stagetest"
)

func TestGolden(t *testing.T) {
	stagetest.RunGolden(t, NewFactory(), "testdata")
}

func md(kv ...string) []pipeline.Label { return pipeline.L(kv...) }

func TestApply(t *testing.T) {
	origin := &pipeline.Origin{WorkerID: "w1", Pool: "prod", Hostname: "h", PID: 42}
	tests := []struct {
		name string
		cfg  Config
		in   []pipeline.Label
		want []pipeline.Label
	}{
		{"set appends and replaces", Config{Set: map[string]string{"b": "2", "a": "9"}}, md("a", "1"), md("a", "9", "b", "2")},
		{"rename keeps position", Config{Rename: map[string]string{"a": "x"}}, md("a", "1", "b", "2"), md("x", "1", "b", "2")},
		{"rename replaces existing target after", Config{Rename: map[string]string{"a": "b"}}, md("a", "1", "b", "2"), md("b", "1")},
		{"rename replaces existing target before", Config{Rename: map[string]string{"a": "b"}}, md("b", "2", "a", "1"), md("b", "1")},
		{"rename without source keeps target", Config{Rename: map[string]string{"a": "b"}}, md("b", "2"), md("b", "2")},
		{"renames are simultaneous", Config{Rename: map[string]string{"a": "b", "b": "c"}}, md("a", "1", "b", "2"), md("b", "1", "c", "2")},
		{"delete", Config{Delete: []string{"a", "zz"}}, md("a", "1", "b", "2"), md("b", "2")},
		{"delete after rename", Config{Rename: map[string]string{"a": "b"}, Delete: []string{"b"}}, md("a", "1"), md()},
		{"set after delete", Config{Delete: []string{"a"}, Set: map[string]string{"a": "new"}}, md("a", "1"), md("a", "new")},
		{"templates read the event as it arrived", Config{
			Rename: map[string]string{"tool": "t"},
			Set: map[string]string{
				"who":  "${worker_id}@${pool}/${hostname}:${pid}",
				"what": "${name} ${correlation_id} ${meta.tool} ${meta.pool} [${meta.missing}] $$",
			},
		}, md("tool", "calc"), md("t", "calc", "what", "python.call.stop c1 calc prod [] $", "who", "w1@prod/h:42")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Events = "*"
			s, err := New(pipeline.Settings{}, &tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			shared := append([]pipeline.Label(nil), tt.in...)
			snapshot := append([]pipeline.Label(nil), tt.in...)
			e := pipeline.Event{Name: "python.call.stop", CorrelationID: "c1", Origin: origin, Metadata: shared}
			s.Apply(&e)
			if len(e.Metadata) == 0 && len(tt.want) == 0 {
				e.Metadata = tt.want
			}
			if !reflect.DeepEqual(e.Metadata, tt.want) {
				t.Errorf("metadata = %v, want %v", e.Metadata, tt.want)
			}
			if !reflect.DeepEqual(shared, snapshot) {
				t.Errorf("shared metadata array was written: %v, was %v", shared, snapshot)
			}
		})
	}
}

func TestHostTemplatesWithoutOrigin(t *testing.T) {
	s, err := New(pipeline.Settings{}, &Config{Events: "*", Set: map[string]string{"w": "[${worker_id}${pid}]"}})
	if err != nil {
		t.Fatal(err)
	}
	e := pipeline.Event{Name: "x"}
	s.Apply(&e)
	if v, _ := e.Meta("w"); v != "[]" {
		t.Fatalf("w = %q, want []", v)
	}
}

func TestProcessSharedAcrossEvents(t *testing.T) {
	// Events of one batch may share a Metadata array (and other pipelines
	// may hold it too): the stage must give each event its own copy.
	shared := md("tool", "x", "secret", "s")
	b := &pipeline.Batch{Events: []pipeline.Event{
		{Name: "python.a", Metadata: shared}, {Name: "other.b", Metadata: shared}, {Name: "python.c", Metadata: shared},
	}}
	s, err := New(pipeline.Settings{}, &Config{Events: "python.*", Delete: []string{"secret"}, Set: map[string]string{"n": "${name}"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shared, md("tool", "x", "secret", "s")) {
		t.Fatalf("shared array changed: %v", shared)
	}
	want := [][]pipeline.Label{md("tool", "x", "n", "python.a"), shared, md("tool", "x", "n", "python.c")}
	for i := range out.Events {
		if !reflect.DeepEqual(out.Events[i].Metadata, want[i]) {
			t.Errorf("event %d metadata = %v, want %v", i, out.Events[i].Metadata, want[i])
		}
	}
}

func TestNoChangeKeepsSlice(t *testing.T) {
	s, _ := New(pipeline.Settings{}, &Config{Events: "*", Delete: []string{"x"}})
	in := md("a", "1")
	e := pipeline.Event{Name: "n", Metadata: in}
	s.Apply(&e)
	if &e.Metadata[0] != &in[0] {
		t.Fatal("metadata copied although nothing changed")
	}
}

func BenchmarkProcess(b *testing.B) {
	cfgs := map[string]*Config{
		"set_literal":   {Events: "*", Set: map[string]string{"env": "prod"}},
		"set_template":  {Events: "*", Set: map[string]string{"origin": "${pool}/${worker_id}"}},
		"rename_delete": {Events: "*", Rename: map[string]string{"tool": "tool_name"}, Delete: []string{"secret"}},
		"no_match":      {Events: "*", Delete: []string{"absent"}},
	}
	origin := &pipeline.Origin{WorkerID: "w1", Pool: "prod"}
	for name, cfg := range cfgs {
		b.Run(name, func(b *testing.B) {
			s, err := New(pipeline.Settings{}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			src := make([]pipeline.Event, 1000)
			shared := md("tool", "search", "secret", "s", "model", "m1")
			for i := range src {
				src[i] = pipeline.Event{Name: "python.call.stop", Origin: origin, Metadata: shared}
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

func TestProcessSlabSlicesAreCapped(t *testing.T) {
	// Slices carved from one allocation must not let an append on one
	// event write into the next event's labels.
	s, err := New(pipeline.Settings{}, &Config{Events: "*", Set: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	b := &pipeline.Batch{Events: []pipeline.Event{{Name: "a", Metadata: md("x", "1")}, {Name: "b", Metadata: md("y", "2")}}}
	out, _ := s.Process(context.Background(), b)
	grown := append(out.Events[0].Metadata, pipeline.Label{Key: "z", Value: "3"})
	_ = grown
	if want := md("y", "2", "k", "v"); !reflect.DeepEqual(out.Events[1].Metadata, want) {
		t.Fatalf("second event's metadata = %v, want %v", out.Events[1].Metadata, want)
	}
}
