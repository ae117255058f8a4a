package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestSharedSinkAcrossGraphSwap: a reload's second graph reuses the first
// graph's sink through ReuseSink. The sink is created and started once and
// shut down only after both graphs are done, and every batch arrives once.
func TestSharedSinkAcrossGraphSwap(t *testing.T) {
	rec := newRecorder()
	f := testFactories(t, rec)
	cfg := GraphConfig{
		Sinks:     map[ComponentID]Config{MustComponentID("rec/a"): &testSinkConfig{}},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"rec/a"})},
	}
	var shared *SharedSink
	created := 0
	first := GraphSettings{WrapSink: func(_ Settings, s Sink) (Sink, error) {
		created++
		shared = NewSharedSink(s)
		h, ok := shared.Acquire()
		if !ok {
			t.Fatal("Acquire on a new SharedSink failed")
		}
		return h, nil
	}}
	g1, err := NewGraph(context.Background(), first, f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sw := NewSwitch(g1)

	const producers, batches = 4, 200
	var wg sync.WaitGroup
	var halfway sync.WaitGroup
	halfway.Add(producers)
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			for i := range batches {
				if i == batches/2 {
					halfway.Done()
				}
				if err := sw.Consume(context.Background(), seqBatch(uint64((p*batches+i)*2), 2)); err != nil {
					errs <- fmt.Errorf("Consume: %w", err)
					return
				}
			}
		})
	}
	halfway.Wait()

	second := GraphSettings{
		WrapSink: func(Settings, Sink) (Sink, error) {
			created++
			return nil, fmt.Errorf("the unchanged sink was created again")
		},
		ReuseSink: func(set Settings) Sink {
			h, ok := shared.Acquire()
			if !ok {
				t.Errorf("Acquire of %s failed while the first graph holds it", set.ID)
			}
			return h
		},
	}
	g2, err := NewGraph(context.Background(), second, f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sw.Swap(g2)
	if err := g1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := shared.Refs(); got != 1 {
		t.Errorf("after the old graph's shutdown the sink has %d handles, want 1", got)
	}
	if slices.Contains(rec.lifecycle(), "shutdown sink rec/a") {
		t.Error("the old graph's shutdown shut down the sink the new graph still uses")
	}
	wg.Wait()
	if err := g2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := []string{"start sink rec/a", "shutdown sink rec/a"}
	if lc := rec.lifecycle(); !slices.Equal(lc, want) {
		t.Errorf("sink lifecycle = %v, want %v (started once, shut down once)", lc, want)
	}
	if created != 1 {
		t.Errorf("sink created %d times, want 1", created)
	}
	if got := rec.seqs("rec/a"); !slices.Equal(got, seqRange(0, producers*batches*2)) {
		t.Errorf("the shared sink has %d events, want each of %d exactly once", len(got), producers*batches*2)
	}
	if _, ok := shared.Acquire(); ok {
		t.Error("Acquire succeeded after the last handle shut the sink down")
	}
}

// TestSharedSinkHandleShutdownTwice: shutting one handle down twice
// releases it once, so another graph's handle keeps the sink open.
func TestSharedSinkHandleShutdownTwice(t *testing.T) {
	rec := newRecorder()
	s := NewSharedSink(&testSink{set: Settings{ID: MustComponentID("rec/a")}, cfg: &testSinkConfig{}, rec: rec})
	a, _ := s.Acquire()
	b, _ := s.Acquire()
	ctx := context.Background()
	for _, h := range []Sink{a, b} {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_ = a.Shutdown(ctx)
	_ = a.Shutdown(ctx)
	if got := s.Refs(); got != 1 {
		t.Fatalf("refs = %d after one handle shut down twice, want 1", got)
	}
	if err := b.Write(ctx, seqBatch(1, 1)); err != nil {
		t.Fatal(err)
	}
	_ = b.Shutdown(ctx)
	if lc := rec.lifecycle(); !slices.Equal(lc, []string{"start sink rec/a", "shutdown sink rec/a"}) {
		t.Errorf("lifecycle = %v", lc)
	}
	if err := b.Start(ctx); err == nil {
		t.Error("Start after the sink was shut down succeeded")
	}
}

// TestFailedGraphKeepsRunningGauges: a second graph over the same
// pipeline names that fails to start (a reload that is rolled back) leaves
// the queue gauges reading the running graph's queue.
func TestFailedGraphKeepsRunningGauges(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	rec := newRecorder()
	f := testFactories(t, rec)
	f.Sinks["block"] = NewSinkFactory("block", func() Config { return &testSinkConfig{} },
		func(context.Context, Settings, Config) (Sink, error) {
			return SinkFunc(func(context.Context, *Batch) error {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
				return nil
			}), nil
		})
	m := NewMetrics()
	running := GraphConfig{
		Sinks:     map[ComponentID]Config{MustComponentID("block/a"): &testSinkConfig{}},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"block/a"}, func(pc *PipelineConfig) { pc.Workers = 1 })},
	}
	g1 := startGraph(t, f, running, m)
	for i := range 3 {
		if err := g1.Consume(context.Background(), seqBatch(uint64(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	<-entered // one batch is in the sink, two wait in the queue
	if got := graphMetric(t, m, "snakepipe_pipeline_queue_batches", "pipeline", "p"); got != 2 {
		t.Fatalf("queue_batches = %v, want 2", got)
	}
	failing := GraphConfig{
		Sinks:     map[ComponentID]Config{MustComponentID("rec/bad"): &testSinkConfig{FailStart: true}},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"rec/bad"})},
	}
	g2, err := NewGraph(context.Background(), GraphSettings{Metrics: m}, f, failing)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Start(context.Background()); err == nil {
		t.Fatal("a graph whose sink fails to start started")
	}
	if got := graphMetric(t, m, "snakepipe_pipeline_queue_batches", "pipeline", "p"); got != 2 {
		t.Errorf("queue_batches = %v after a failed graph, want the running graph's 2", got)
	}
	close(release)
	if err := g1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
