package thresholdstage

import (
	"context"
	"fmt"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/pipeline/stages/stagetest"
)

func TestGolden(t *testing.T) {
	stagetest.RunGolden(t, NewFactory(), "testdata")
}

func TestKeep(t *testing.T) {
	ev := func(name string, ms ...pipeline.Measurement) *pipeline.Event {
		return &pipeline.Event{Name: name, Measurements: ms}
	}
	d := func(v pipeline.Value) pipeline.Measurement { return pipeline.Measurement{Key: "d", Value: v} }
	i, f, s := pipeline.IntValue, pipeline.FloatValue, pipeline.StringValue
	tests := []struct {
		op      Op
		value   float64
		action  Action
		missing Action
		event   *pipeline.Event
		keep    bool
		reason  string
	}{
		{OpGt, 10, ActionKeep, ActionKeep, ev("a", d(i(11))), true, ""},
		{OpGt, 10, ActionKeep, ActionKeep, ev("a", d(i(10))), false, "threshold"},
		{OpGe, 10, ActionKeep, ActionKeep, ev("a", d(i(10))), true, ""},
		{OpLt, 10, ActionKeep, ActionKeep, ev("a", d(f(9.5))), true, ""},
		{OpLt, 10, ActionKeep, ActionKeep, ev("a", d(f(10))), false, "threshold"},
		{OpLe, 10, ActionKeep, ActionKeep, ev("a", d(f(10))), true, ""},
		{OpEq, 0.5, ActionKeep, ActionKeep, ev("a", d(f(0.5))), true, ""},
		{OpEq, 0.5, ActionKeep, ActionKeep, ev("a", d(f(0.25))), false, "threshold"},
		{OpNe, 0, ActionKeep, ActionKeep, ev("a", d(i(0))), false, "threshold"},
		{OpNe, 0, ActionKeep, ActionKeep, ev("a", d(i(-1))), true, ""},
		{OpGt, 10, ActionDrop, ActionKeep, ev("a", d(i(11))), false, "threshold"},
		{OpGt, 10, ActionDrop, ActionKeep, ev("a", d(i(3))), true, ""},
		{OpGt, 10, ActionKeep, ActionKeep, ev("a"), true, ""},
		{OpGt, 10, ActionKeep, ActionDrop, ev("a"), false, "missing"},
		{OpGt, 10, ActionKeep, ActionDrop, ev("a", d(s("11"))), false, "missing"},
		{OpGt, 10, ActionKeep, ActionDrop, ev("b.other", d(i(1))), true, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%v_%s_missing_%s_%s", tt.op, tt.value, tt.action, tt.missing, tt.event.Name), func(t *testing.T) {
			st, err := New(pipeline.Settings{ID: pipeline.MustComponentID("threshold/t")}, &Config{
				Events: "a", Measurement: "d", Op: tt.op, Value: tt.value, Action: tt.action, Missing: tt.missing,
			})
			if err != nil {
				t.Fatal(err)
			}
			keep, reason := st.Keep(tt.event)
			if keep != tt.keep || reason != tt.reason {
				t.Errorf("Keep = %v, %q; want %v, %q", keep, reason, tt.keep, tt.reason)
			}
		})
	}
}

func TestProcessCountsDrops(t *testing.T) {
	m := pipeline.NewMetrics()
	st, err := New(pipeline.Settings{ID: pipeline.MustComponentID("threshold/t"), Pipeline: "p", Metrics: m},
		&Config{Events: "*", Measurement: "d", Op: OpGe, Value: 5, Action: ActionKeep, Missing: ActionDrop})
	if err != nil {
		t.Fatal(err)
	}
	b := &pipeline.Batch{}
	for n := range 10 {
		b.Events = append(b.Events, pipeline.Event{Name: "x", TimestampNs: int64(n), Measurements: []pipeline.Measurement{{Key: "d", Value: pipeline.IntValue(int64(n))}}})
	}
	b.Events = append(b.Events, pipeline.Event{Name: "y"})
	out, _ := st.Process(context.Background(), b)
	if out.Len() != 5 || out.Events[0].TimestampNs != 5 {
		t.Fatalf("kept %+v", out.Events)
	}
	for reason, want := range map[string]float64{"threshold": 5, "missing": 1} {
		got, _ := m.Value("snakepipe_stage_events_dropped_total", pipeline.L("pipeline", "p", "stage", "threshold/t", "reason", reason)...)
		if got != want {
			t.Errorf("dropped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

func BenchmarkProcess(b *testing.B) {
	st, err := New(pipeline.Settings{ID: pipeline.MustComponentID("threshold/b")},
		&Config{Events: "python.call.*", Measurement: "duration", Op: OpGt, Value: 1000, Action: ActionKeep, Missing: ActionKeep})
	if err != nil {
		b.Fatal(err)
	}
	src := make([]pipeline.Event, 1000)
	for i := range src {
		src[i] = pipeline.Event{Name: "python.call.stop", Measurements: []pipeline.Measurement{
			{Key: "ratio", Value: pipeline.FloatValue(0.5)}, {Key: "duration", Value: pipeline.IntValue(int64(i * 2))},
		}}
	}
	batch := &pipeline.Batch{Events: make([]pipeline.Event, 0, len(src))}
	b.ReportAllocs()
	for b.Loop() {
		batch.Events = append(batch.Events[:0], src...)
		if _, err := st.Process(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/event")
}
