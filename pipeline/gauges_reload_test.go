package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// gateSink holds every Write until release is closed, so batches stay in
// its exporter's queue; FailStart makes Start fail.
type gateConfig struct {
	FailStart bool
	Gen       int
}

func (gateConfig) Validate() error { return nil }

type gateSink struct {
	cfg     *gateConfig
	release chan struct{}
}

func (s *gateSink) Start(context.Context) error {
	if s.cfg.FailStart {
		return errors.New("cannot open")
	}
	return nil
}
func (s *gateSink) Shutdown(context.Context) error { return nil }
func (s *gateSink) Write(ctx context.Context, b *Batch) error {
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return nil
}

// A config reload's graph that fails to start after one of its new
// exporters started must leave the running exporter's queue gauges alone.
func TestFailedGraphStartKeepsSinkGauges(t *testing.T) {
	release := make(chan struct{})
	f, err := MakeFactories(nil, []SinkFactory{NewSinkFactory("gate",
		func() Config { return &gateConfig{} },
		func(_ context.Context, _ Settings, c Config) (Sink, error) {
			return &gateSink{cfg: c.(*gateConfig), release: release}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	ec := DefaultExporterConfig()
	ec.Workers = 1
	set := GraphSettings{Metrics: m, WrapSink: func(s Settings, sk Sink) (Sink, error) { return NewExporter(s, sk, ec), nil }}
	cfg1 := GraphConfig{
		Sinks:     map[ComponentID]Config{MustComponentID("gate/a"): &gateConfig{Gen: 1}},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"gate/a"})},
	}
	g1, err := NewGraph(context.Background(), set, f, cfg1)
	if err != nil {
		t.Fatal(err)
	}
	if err := g1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := g1.Consume(context.Background(), seqBatch(uint64(i*10), 10)); err != nil {
			t.Fatal(err)
		}
	}
	waitQueued := func() float64 {
		for range 2000 {
			if v, _ := m.Value("snakepipe_sink_queue_events", L("sink", "gate/a")...); v == 40 {
				return v
			}
			time.Sleep(time.Millisecond) // the pipeline worker moves batches on
		}
		v, _ := m.Value("snakepipe_sink_queue_events", L("sink", "gate/a")...)
		return v
	}
	before := waitQueued()
	if before != 40 {
		t.Fatalf("queue gauge %v before the reload, want 40 (one batch in Write, four queued)", before)
	}

	cfg2 := GraphConfig{
		Sinks: map[ComponentID]Config{
			MustComponentID("gate/a"): &gateConfig{Gen: 2},
			MustComponentID("gate/b"): &gateConfig{FailStart: true},
		},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"gate/a", "gate/b"})},
	}
	g2, err := NewGraph(context.Background(), set, f, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Start(context.Background()); err == nil {
		t.Fatal("g2 started")
	}
	after, _ := m.Value("snakepipe_sink_queue_events", L("sink", "gate/a")...)
	if after != before {
		t.Errorf("the failed graph's exporter took over snakepipe_sink_queue_events{sink=gate/a}: %v, want %v", after, before)
	}
	close(release)
	if err := g1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
