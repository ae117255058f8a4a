package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// --- test components -------------------------------------------------------

type recorder struct {
	mu     sync.Mutex
	events map[string][]uint64 // sink id -> Seq of every event written
	log    []string            // lifecycle calls, in order
}

func newRecorder() *recorder { return &recorder{events: map[string][]uint64{}} }

func (r *recorder) note(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) seqs(id string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.events[id])
	slices.Sort(out)
	return out
}

func (r *recorder) lifecycle() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

type testStageConfig struct {
	// Mode: "pass", "tag" (set metadata tag=ID), "drop_odd", "fail".
	Mode string
}

func (testStageConfig) Validate() error { return nil }

type testSinkConfig struct {
	FailWrites bool
	FailStart  bool
}

func (testSinkConfig) Validate() error { return nil }

type testStage struct {
	set Settings
	cfg *testStageConfig
	rec *recorder
}

func (s *testStage) Start(context.Context) error {
	s.rec.note("start stage " + s.set.Pipeline + ":" + s.set.ID.String())
	return nil
}

func (s *testStage) Shutdown(context.Context) error {
	s.rec.note("shutdown stage " + s.set.Pipeline + ":" + s.set.ID.String())
	return nil
}

func (s *testStage) Process(_ context.Context, b *Batch) (*Batch, error) {
	switch s.cfg.Mode {
	case "tag":
		for i := range b.Events {
			b.Events[i].SetMeta("tag", s.set.ID.String())
		}
	case "drop_odd":
		kept := b.Events[:0]
		for _, e := range b.Events {
			if e.Seq%2 == 0 {
				kept = append(kept, e)
			}
		}
		b.Events = kept
	case "fail":
		return nil, errors.New("boom")
	}
	return b, nil
}

type testSink struct {
	set Settings
	cfg *testSinkConfig
	rec *recorder
}

func (s *testSink) Start(context.Context) error {
	s.rec.note("start sink " + s.set.ID.String())
	if s.cfg.FailStart {
		return errors.New("cannot open")
	}
	return nil
}

func (s *testSink) Shutdown(context.Context) error {
	s.rec.note("shutdown sink " + s.set.ID.String())
	return nil
}

func (s *testSink) Write(_ context.Context, b *Batch) error {
	if s.cfg.FailWrites {
		return errors.New("disk full")
	}
	id := s.set.ID.String()
	s.rec.mu.Lock()
	for _, e := range b.Events {
		s.rec.events[id] = append(s.rec.events[id], e.Seq)
		if tag, ok := e.Meta("tag"); ok {
			s.rec.events[id+"#"+tag] = append(s.rec.events[id+"#"+tag], e.Seq)
		}
	}
	s.rec.mu.Unlock()
	return nil
}

func testFactories(t testing.TB, rec *recorder) Factories {
	t.Helper()
	f, err := MakeFactories(
		[]StageFactory{NewStageFactory("test",
			func() Config { return &testStageConfig{Mode: "pass"} },
			func(_ context.Context, set Settings, cfg Config) (Stage, error) {
				return &testStage{set: set, cfg: cfg.(*testStageConfig), rec: rec}, nil
			})},
		[]SinkFactory{NewSinkFactory("rec",
			func() Config { return &testSinkConfig{} },
			func(_ context.Context, set Settings, cfg Config) (Sink, error) {
				return &testSink{set: set, cfg: cfg.(*testSinkConfig), rec: rec}, nil
			})},
	)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func pipeCfg(stages, sinks []string, mutate ...func(*PipelineConfig)) PipelineConfig {
	pc := DefaultPipelineConfig()
	pc.Stages, pc.Sinks = stages, sinks
	for _, m := range mutate {
		m(&pc)
	}
	return pc
}

// seqBatch returns a batch of n events with Seq from..from+n-1.
func seqBatch(from uint64, n int) *Batch {
	b := &Batch{Events: make([]Event, n)}
	for i := range b.Events {
		b.Events[i] = Event{Name: "python.call.stop", Seq: from + uint64(i), SampleRate: 1}
	}
	return b
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

func startGraph(t *testing.T, f Factories, cfg GraphConfig, m *Metrics) *Graph {
	t.Helper()
	g, err := NewGraph(context.Background(), GraphSettings{Metrics: m}, f, cfg)
	if err != nil {
		t.Fatalf("NewGraph: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return g
}

func graphMetric(t *testing.T, m *Metrics, name string, kv ...string) float64 {
	t.Helper()
	v, ok := m.Value(name, L(kv...)...)
	if !ok {
		t.Fatalf("metric %s%v does not exist", name, kv)
	}
	return v
}

// --- tests -----------------------------------------------------------------

func TestNewGraphErrorsNameKeys(t *testing.T) {
	rec := newRecorder()
	f := testFactories(t, rec)
	okStages := map[ComponentID]Config{MustComponentID("test/a"): &testStageConfig{}}
	okSinks := map[ComponentID]Config{MustComponentID("rec/main"): &testSinkConfig{}}
	tests := []struct {
		name string
		cfg  GraphConfig
		want []string
	}{
		{
			name: "no pipelines",
			cfg:  GraphConfig{Stages: okStages, Sinks: okSinks},
			want: []string{"pipelines: at least one pipeline is needed"},
		},
		{
			name: "unknown ids",
			cfg: GraphConfig{Stages: okStages, Sinks: okSinks, Pipelines: map[string]PipelineConfig{
				"default": pipeCfg([]string{"test/a", "filter/x"}, []string{"fille"}),
			}},
			want: []string{
				`pipelines.default.stages[1]: unknown stage "filter/x"`,
				`pipelines.default.sinks[0]: unknown sink "fille"`,
			},
		},
		{
			name: "unknown types",
			cfg: GraphConfig{
				Stages: map[ComponentID]Config{MustComponentID("nope/a"): &testStageConfig{}},
				Sinks:  map[ComponentID]Config{MustComponentID("gone"): &testSinkConfig{}},
				Pipelines: map[string]PipelineConfig{
					"p": pipeCfg([]string{"nope/a"}, []string{"gone"}),
				},
			},
			want: []string{
				`pipelines.p.stages[0]: unknown stage type "nope"`,
				`pipelines.p.sinks[0]: unknown sink type "gone"`,
			},
		},
		{
			name: "invalid pipeline",
			cfg: GraphConfig{Stages: okStages, Sinks: okSinks, Pipelines: map[string]PipelineConfig{
				"a": pipeCfg([]string{"test/a", "test/a", "Bad"}, nil, func(pc *PipelineConfig) {
					pc.Workers = 0
					pc.Queue.MaxEvents = 0
					pc.Queue.FullPolicy = "drop_everything"
				}),
			}},
			want: []string{
				"pipelines.a.workers: 0 is not in [1, 256]",
				"pipelines.a.sinks: a pipeline needs at least one sink",
				`pipelines.a.stages[1]: "test/a" is already listed at stages[0]`,
				`pipelines.a.stages[2]: bad component id "Bad"`,
				"pipelines.a.queue.max_events: 0 must be in",
				`pipelines.a.queue.full_policy: bad full_policy "drop_everything"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGraph(context.Background(), GraphSettings{}, f, tt.cfg)
			if err == nil {
				_ = g.Shutdown(context.Background())
				t.Fatal("NewGraph succeeded, want errors")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing error starting with %q in:\n%v", w, err)
				}
			}
		})
	}
	if got := rec.lifecycle(); len(got) != 0 {
		t.Errorf("a failed build must not start anything: %v", got)
	}
}

func TestGraphRoutesToSharedSinks(t *testing.T) {
	rec := newRecorder()
	m := NewMetrics()
	cfg := GraphConfig{
		Stages: map[ComponentID]Config{
			MustComponentID("test/tag_a"): &testStageConfig{Mode: "tag"},
			MustComponentID("test/odd"):   &testStageConfig{Mode: "drop_odd"},
		},
		Sinks: map[ComponentID]Config{
			MustComponentID("rec/shared"): &testSinkConfig{},
			MustComponentID("rec/only_b"): &testSinkConfig{},
			MustComponentID("rec/unused"): &testSinkConfig{},
		},
		Pipelines: map[string]PipelineConfig{
			"a": pipeCfg([]string{"test/tag_a"}, []string{"rec/shared"}),
			"b": pipeCfg([]string{"test/odd"}, []string{"rec/shared", "rec/only_b"}, func(pc *PipelineConfig) { pc.Workers = 1 }),
		},
	}
	g := startGraph(t, testFactories(t, rec), cfg, m)
	for i := range 10 {
		if err := g.Consume(context.Background(), seqBatch(uint64(i*10), 10)); err != nil {
			t.Fatalf("Consume: %v", err)
		}
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	all := seqRange(0, 100)
	var even []uint64
	for _, s := range all {
		if s%2 == 0 {
			even = append(even, s)
		}
	}
	// Pipeline a sends everything (tagged) to shared; b sends the even ones
	// (untagged: the tag stage of a must not leak into b's copy) to both.
	wantShared := slices.Sorted(slices.Values(append(slices.Clone(all), even...)))
	if got := rec.seqs("rec/shared"); !slices.Equal(got, wantShared) {
		t.Errorf("rec/shared got %d events, want %d", len(got), len(wantShared))
	}
	if got := rec.seqs("rec/shared#test/tag_a"); !slices.Equal(got, all) {
		t.Errorf("tagged events in rec/shared = %v, want all 100", len(got))
	}
	if got := rec.seqs("rec/only_b"); !slices.Equal(got, even) {
		t.Errorf("rec/only_b = %v, want the even events", got)
	}
	if got := rec.seqs("rec/only_b#test/tag_a"); len(got) != 0 {
		t.Errorf("pipeline b saw pipeline a's tags: %v", got)
	}
	for _, e := range rec.lifecycle() {
		if strings.Contains(e, "rec/unused") {
			t.Errorf("unused sink was created: %s", e)
		}
	}

	checks := []struct {
		name string
		kv   []string
		want float64
	}{
		{"snakepipe_pipeline_events_received_total", []string{"pipeline", "a"}, 100},
		{"snakepipe_pipeline_events_received_total", []string{"pipeline", "b"}, 100},
		{"snakepipe_pipeline_stage_events_in_total", []string{"pipeline", "b", "stage", "test/odd"}, 100},
		{"snakepipe_pipeline_stage_events_out_total", []string{"pipeline", "b", "stage", "test/odd"}, 50},
		{"snakepipe_pipeline_sink_events_sent_total", []string{"pipeline", "b", "sink", "rec/only_b"}, 50},
		{"snakepipe_pipeline_sink_events_sent_total", []string{"pipeline", "a", "sink", "rec/shared"}, 100},
		{"snakepipe_pipeline_queue_events", []string{"pipeline", "a"}, 0},
	}
	for _, c := range checks {
		if got := graphMetric(t, m, c.name, c.kv...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.kv, got, c.want)
		}
	}
}

func TestGraphLifecycleOrder(t *testing.T) {
	rec := newRecorder()
	cfg := GraphConfig{
		Stages: map[ComponentID]Config{MustComponentID("test/s"): &testStageConfig{}},
		Sinks:  map[ComponentID]Config{MustComponentID("rec/k"): &testSinkConfig{}},
		Pipelines: map[string]PipelineConfig{
			"p": pipeCfg([]string{"test/s"}, []string{"rec/k"}),
		},
	}
	g := startGraph(t, testFactories(t, rec), cfg, nil)
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	want := []string{"start sink rec/k", "start stage p:test/s", "shutdown stage p:test/s", "shutdown sink rec/k"}
	if got := rec.lifecycle(); !slices.Equal(got, want) {
		t.Errorf("lifecycle = %v, want %v", got, want)
	}
	if err := g.Consume(context.Background(), seqBatch(0, 1)); !errors.Is(err, ErrGraphClosed) {
		t.Errorf("Consume after Shutdown = %v, want ErrGraphClosed", err)
	}
}

func TestGraphStartFailureRollsBack(t *testing.T) {
	rec := newRecorder()
	cfg := GraphConfig{
		Stages: map[ComponentID]Config{MustComponentID("test/s"): &testStageConfig{}},
		Sinks: map[ComponentID]Config{
			MustComponentID("rec/a"): &testSinkConfig{},
			MustComponentID("rec/b"): &testSinkConfig{FailStart: true},
		},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg([]string{"test/s"}, []string{"rec/a", "rec/b"})},
	}
	g, err := NewGraph(context.Background(), GraphSettings{}, testFactories(t, rec), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sinks.rec/b: start: cannot open") {
		t.Fatalf("Start error = %v, want it to name sinks.rec/b", err)
	}
	got := rec.lifecycle()
	if !slices.Contains(got, "shutdown sink rec/a") || slices.Contains(got, "start stage p:test/s") {
		t.Errorf("lifecycle after failed start = %v", got)
	}
	if err := g.Consume(context.Background(), seqBatch(0, 1)); !errors.Is(err, ErrGraphClosed) {
		t.Errorf("Consume after failed Start = %v, want ErrGraphClosed", err)
	}
}

func TestGraphCountsStageAndSinkErrors(t *testing.T) {
	rec := newRecorder()
	m := NewMetrics()
	cfg := GraphConfig{
		Stages: map[ComponentID]Config{MustComponentID("test/fail"): &testStageConfig{Mode: "fail"}},
		Sinks: map[ComponentID]Config{
			MustComponentID("rec/ok"):     &testSinkConfig{},
			MustComponentID("rec/broken"): &testSinkConfig{FailWrites: true},
		},
		Pipelines: map[string]PipelineConfig{
			"failing": pipeCfg([]string{"test/fail"}, []string{"rec/ok"}),
			"sinking": pipeCfg(nil, []string{"rec/broken", "rec/ok"}),
		},
	}
	g := startGraph(t, testFactories(t, rec), cfg, m)
	for i := range 3 {
		if err := g.Consume(context.Background(), seqBatch(uint64(i*7), 7)); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs("rec/ok"); !slices.Equal(got, seqRange(0, 21)) {
		t.Errorf("rec/ok got %v, want the 21 events of pipeline sinking only", got)
	}
	checks := []struct {
		name string
		kv   []string
		want float64
	}{
		{"snakepipe_pipeline_events_dropped_total", []string{"pipeline", "failing", "reason", DropStageError}, 21},
		{"snakepipe_pipeline_stage_errors_total", []string{"pipeline", "failing", "stage", "test/fail"}, 3},
		{"snakepipe_pipeline_events_dropped_total", []string{"pipeline", "sinking", "reason", DropSinkError}, 21},
		{"snakepipe_pipeline_sink_events_failed_total", []string{"pipeline", "sinking", "sink", "rec/broken"}, 21},
		{"snakepipe_pipeline_sink_events_sent_total", []string{"pipeline", "sinking", "sink", "rec/ok"}, 21},
		{"snakepipe_pipeline_events_dropped_total", []string{"pipeline", "sinking", "reason", DropStageError}, 0},
	}
	for _, c := range checks {
		if got := graphMetric(t, m, c.name, c.kv...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.kv, got, c.want)
		}
	}
}

// blockingSink blocks every Write until release is closed.
type blockingSink struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	count   atomic.Int64
}

func (s *blockingSink) Start(context.Context) error    { return nil }
func (s *blockingSink) Shutdown(context.Context) error { return nil }
func (s *blockingSink) Write(ctx context.Context, b *Batch) error {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.count.Add(int64(b.Len()))
	return nil
}

func blockingFactories(t *testing.T, s *blockingSink) Factories {
	f, err := MakeFactories(nil, []SinkFactory{NewSinkFactory("block",
		func() Config { return &testSinkConfig{} },
		func(context.Context, Settings, Config) (Sink, error) { return s, nil })})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGraphFullPolicies(t *testing.T) {
	tests := []struct {
		policy     string
		wantErr    error
		wantReason string
	}{
		{"drop_newest", ErrQueueFull, DropReasonQueueFull},
		{"drop_oldest", nil, DropReasonEvictedOldest},
		{"block", context.Canceled, DropCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
			m := NewMetrics()
			cfg := GraphConfig{
				Sinks: map[ComponentID]Config{MustComponentID("block"): &testSinkConfig{}},
				Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"block"}, func(pc *PipelineConfig) {
					pc.Workers = 1
					pc.Queue.MaxEvents = 10
					pc.Queue.FullPolicy = tt.policy
				})},
			}
			g := startGraph(t, blockingFactories(t, sink), cfg, m)
			// The worker takes the first batch and blocks in the sink; the
			// next one fills the queue.
			if err := g.Consume(context.Background(), seqBatch(0, 10)); err != nil {
				t.Fatal(err)
			}
			<-sink.entered
			if err := g.Consume(context.Background(), seqBatch(10, 10)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.policy == "block" {
				cancel() // Put waits for room; the canceled ctx ends the wait
			}
			err := g.Consume(ctx, seqBatch(20, 10))
			cancel()
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Consume on a full queue = %v, want %v", err, tt.wantErr)
			}
			close(sink.release)
			if err := g.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := graphMetric(t, m, "snakepipe_pipeline_events_dropped_total", "pipeline", "p", "reason", tt.wantReason); got != 10 {
				t.Errorf("dropped{reason=%s} = %v, want 10", tt.wantReason, got)
			}
			if got := sink.count.Load(); got != 20 {
				t.Errorf("sink got %d events, want 20", got)
			}
		})
	}
}

func TestGraphShutdownDeadline(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	m := NewMetrics()
	cfg := GraphConfig{
		Sinks: map[ComponentID]Config{MustComponentID("block"): &testSinkConfig{}},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"block"}, func(pc *PipelineConfig) {
			pc.Workers = 1
		})},
	}
	g := startGraph(t, blockingFactories(t, sink), cfg, m)
	for i := range 3 {
		if err := g.Consume(context.Background(), seqBatch(uint64(i*5), 5)); err != nil {
			t.Fatal(err)
		}
	}
	<-sink.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has already passed
	err := g.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with an expired ctx = %v, want context.Canceled", err)
	}
	if got := graphMetric(t, m, "snakepipe_pipeline_events_dropped_total", "pipeline", "p", "reason", DropShutdown); got != 10 {
		t.Errorf("dropped{reason=shutdown} = %v, want the 10 queued events", got)
	}
	if got := graphMetric(t, m, "snakepipe_pipeline_events_dropped_total", "pipeline", "p", "reason", DropSinkError); got != 5 {
		t.Errorf("dropped{reason=sink_error} = %v, want the 5 events in the canceled Write", got)
	}
}

// TestGraphHammer: many producers Consume concurrently while Shutdown runs;
// every batch Consume accepted reaches every sink exactly once, and nothing
// refused does.
func TestGraphHammer(t *testing.T) {
	for _, policy := range []string{"block", "drop_newest"} {
		t.Run(policy, func(t *testing.T) {
			rec := newRecorder()
			m := NewMetrics()
			cfg := GraphConfig{
				Stages: map[ComponentID]Config{MustComponentID("test/pass"): &testStageConfig{}},
				Sinks: map[ComponentID]Config{
					MustComponentID("rec/a"): &testSinkConfig{},
					MustComponentID("rec/b"): &testSinkConfig{},
				},
				Pipelines: map[string]PipelineConfig{
					"one": pipeCfg([]string{"test/pass"}, []string{"rec/a"}, func(pc *PipelineConfig) {
						pc.Queue.MaxEvents = 64
						pc.Queue.FullPolicy = policy
						pc.Workers = 3
					}),
					"two": pipeCfg(nil, []string{"rec/b"}, func(pc *PipelineConfig) { pc.Queue.MaxEvents = 64 }),
				},
			}
			g := startGraph(t, testFactories(t, rec), cfg, m)

			const producers, batches, size = 16, 200, 4
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				accepted []uint64
				full     []uint64
				start    = make(chan struct{})
				midway   sync.WaitGroup
			)
			midway.Add(producers)
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := range batches {
						if i == batches/2 {
							midway.Done()
						}
						from := uint64((p*batches + i) * size)
						err := g.Consume(context.Background(), seqBatch(from, size))
						mu.Lock()
						switch {
						case err == nil:
							accepted = append(accepted, seqRange(from, from+size)...)
						case errors.Is(err, ErrQueueFull):
							full = append(full, seqRange(from, from+size)...)
						case !errors.Is(err, ErrGraphClosed):
							t.Errorf("Consume: %v", err)
						}
						mu.Unlock()
					}
				}()
			}
			close(start)
			midway.Wait()
			if err := g.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			wg.Wait()

			slices.Sort(accepted)
			if len(accepted) == 0 {
				t.Fatal("no batch was accepted before shutdown")
			}
			// Pipeline "two" blocks, so it has every accepted event; "one"
			// has them too unless it dropped them (drop_newest).
			if got := rec.seqs("rec/b"); !slices.Equal(got, accepted) {
				t.Errorf("rec/b: %d events, want exactly the %d accepted", len(got), len(accepted))
			}
			gotA := rec.seqs("rec/a")
			if policy == "block" {
				if !slices.Equal(gotA, accepted) {
					t.Errorf("rec/a: %d events, want exactly the %d accepted", len(gotA), len(accepted))
				}
				return
			}
			if len(slices.Compact(slices.Clone(gotA))) != len(gotA) {
				t.Error("rec/a got duplicates")
			}
			dropped := graphMetric(t, m, "snakepipe_pipeline_events_dropped_total", "pipeline", "one", "reason", DropReasonQueueFull)
			if int(dropped)+len(gotA) != len(accepted) {
				t.Errorf("rec/a %d + dropped %v != accepted %d", len(gotA), dropped, len(accepted))
			}
			if len(full) != 0 {
				t.Errorf("ErrQueueFull for %d events although pipeline two (block) accepted them", len(full))
			}
		})
	}
}

func TestSwitchSwapLosesNothing(t *testing.T) {
	rec := newRecorder()
	f := testFactories(t, rec)
	cfg := GraphConfig{
		Sinks:     map[ComponentID]Config{MustComponentID("rec/a"): &testSinkConfig{}},
		Pipelines: map[string]PipelineConfig{"p": pipeCfg(nil, []string{"rec/a"})},
	}
	g1 := startGraph(t, f, cfg, nil)
	sw := NewSwitch(g1)

	const producers, batches = 8, 300
	var wg sync.WaitGroup
	var halfway sync.WaitGroup
	halfway.Add(producers)
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				if i == batches/2 {
					halfway.Done()
				}
				if err := sw.Consume(context.Background(), seqBatch(uint64((p*batches+i)*2), 2)); err != nil {
					errs <- fmt.Errorf("Consume: %w", err)
					return
				}
			}
		}()
	}
	halfway.Wait()
	g2 := startGraph(t, f, cfg, nil)
	if old := sw.Swap(g2); old != Consumer(g1) {
		t.Errorf("Swap returned %v, want the first graph", old)
	}
	if err := g1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := g2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := rec.seqs("rec/a"); !slices.Equal(got, seqRange(0, producers*batches*2)) {
		t.Errorf("after a swap under load the sink has %d events, want each of %d exactly once", len(got), producers*batches*2)
	}
	if sw.Current() != Consumer(g2) {
		t.Error("Current is not the new graph")
	}
}

func TestGraphDeadLetterToExtraSink(t *testing.T) {
	rec := newRecorder()
	cfg := GraphConfig{
		Sinks: map[ComponentID]Config{
			MustComponentID("rec/main"): &testSinkConfig{},
			MustComponentID("rec/dead"): &testSinkConfig{},
		},
		Pipelines:  map[string]PipelineConfig{"p": pipeCfg(nil, []string{"rec/main"})},
		ExtraSinks: []ComponentID{MustComponentID("rec/dead")},
	}
	g := startGraph(t, testFactories(t, rec), cfg, nil)
	if err := g.DeadLetter(context.Background(), MustComponentID("rec/dead"), seqBatch(7, 3), errors.New("trap")); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if err := g.DeadLetter(context.Background(), MustComponentID("rec/other"), seqBatch(0, 1), errors.New("trap")); !errors.Is(err, ErrNoSuchSink) {
		t.Errorf("DeadLetter to an unknown sink = %v, want ErrNoSuchSink", err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs("rec/dead"); !slices.Equal(got, []uint64{7, 8, 9}) {
		t.Errorf("dead-letter sink got %v", got)
	}
	lc := rec.lifecycle()
	if !slices.Contains(lc, "start sink rec/dead") || !slices.Contains(lc, "shutdown sink rec/dead") {
		t.Errorf("extra sink not started and shut down: %v", lc)
	}

	cfg.ExtraSinks = []ComponentID{MustComponentID("rec/none")}
	if _, err := NewGraph(context.Background(), GraphSettings{}, testFactories(t, rec), cfg); err == nil || !strings.Contains(err.Error(), `unknown sink "rec/none"`) {
		t.Errorf("NewGraph with an unconfigured extra sink: %v", err)
	}
}

func TestFlattenAndPrefix(t *testing.T) {
	err := errors.Join(errors.New("a: x"), errors.Join(errors.New("[1]: y"), errors.New("plain message")), fmt.Errorf("wrapped: %w", errors.Join(errors.New("k: v"))))
	var got []string
	for _, e := range FlattenErrors(err) {
		got = append(got, PrefixKey("top", e.Error()))
	}
	want := []string{"top.a: x", "top[1]: y", "top: plain message", "top.wrapped: k: v"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if FlattenErrors(nil) != nil {
		t.Error("FlattenErrors(nil) != nil")
	}
}

// BenchmarkGraph: batches through Consume → queue → a no-op stage → a
// discarding sink, with the workers running; the time includes draining
// everything (Shutdown), so it is the throughput of the whole path.
func BenchmarkGraph(b *testing.B) {
	for _, bc := range []struct {
		name             string
		size, pipes, wks int
	}{
		{"batch100/1pipeline", 100, 1, 2},
		{"batch1000/1pipeline", 1000, 1, 2},
		{"batch100/2pipelines", 100, 2, 1},
	} {
		b.Run(bc.name, func(b *testing.B) { benchGraph(b, bc.size, bc.pipes, bc.wks) })
	}
}

func benchGraph(b *testing.B, size, pipes, workers int) {
	var written atomic.Int64
	f, err := MakeFactories(
		[]StageFactory{NewStageFactory("noop", func() Config { return &testStageConfig{} },
			func(context.Context, Settings, Config) (Stage, error) {
				return StageFunc(func(_ context.Context, b *Batch) (*Batch, error) { return b, nil }), nil
			})},
		[]SinkFactory{NewSinkFactory("discard", func() Config { return &testSinkConfig{} },
			func(context.Context, Settings, Config) (Sink, error) {
				return SinkFunc(func(_ context.Context, b *Batch) error { written.Add(int64(b.Len())); return nil }), nil
			})},
	)
	if err != nil {
		b.Fatal(err)
	}
	cfg := GraphConfig{
		Stages:    map[ComponentID]Config{MustComponentID("noop"): &testStageConfig{}},
		Sinks:     map[ComponentID]Config{MustComponentID("discard"): &testSinkConfig{}},
		Pipelines: map[string]PipelineConfig{},
	}
	for i := range pipes {
		cfg.Pipelines[fmt.Sprintf("p%d", i)] = pipeCfg([]string{"noop"}, []string{"discard"}, func(pc *PipelineConfig) { pc.Workers = workers })
	}
	g, err := NewGraph(context.Background(), GraphSettings{Metrics: NewMetrics()}, f, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	template := seqBatch(0, size)
	template.ComputeBytes()
	batches := make([]Batch, b.N) // what ingest hands over: one Batch per frame
	for i := range batches {
		batches[i] = Batch{Events: template.Events, Bytes: template.Bytes}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := g.Consume(context.Background(), &batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := g.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if want := int64(b.N * size * pipes); written.Load() != want {
		b.Fatalf("written %d, want %d", written.Load(), want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
}
