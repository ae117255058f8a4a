package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrGraphClosed is returned by Graph.Consume when the graph is not
// accepting input (not started yet, or shutting down). The batch was not
// accepted by any pipeline and still belongs to the caller; a Switch retries
// it on the graph that replaced this one.
var ErrGraphClosed = errors.New("pipeline graph is not accepting input")

// Drop reasons the graph counts in snakepipe_pipeline_events_dropped_total
// (the queue adds its own, such as "queue_full").
const (
	DropStageError = "stage_error" // a stage returned an error for the batch
	DropSinkError  = "sink_error"  // a sink's Write failed (counted per sink)
	DropCanceled   = "canceled"    // the caller gave up while Consume blocked
	DropShutdown   = "shutdown"    // still queued when the shutdown deadline hit
)

// GraphSettings is what the program passes to NewGraph.
type GraphSettings struct {
	Logger  hclog.Logger
	Metrics *Metrics
	// WrapSink, if set, wraps every sink after it is created, before it is
	// started (the program wraps sinks in an Exporter: queue, retry, circuit
	// breaker). The wrapper owns the sink: its Start and Shutdown must start
	// and shut down the sink it wraps.
	WrapSink func(set Settings, s Sink) (Sink, error)
	// ReuseSink, if set, is asked for each sink before it is created: a
	// non-nil result is used as it is (neither created nor wrapped). A
	// config reload passes the sinks whose settings did not change, as
	// SharedSink handles, so they are not opened a second time.
	ReuseSink func(set Settings) Sink
}

// Graph is the running set of pipelines: it is the Consumer ingest hands
// batches to. Each batch goes to every pipeline (cloned when there is more
// than one); each pipeline queues it, runs its stages on its worker
// goroutines and writes what is left to each of its sinks. Sink instances are
// shared by the pipelines that route to them; stage instances belong to one
// pipeline.
//
// Lifecycle: NewGraph creates every component, Start starts sinks, then
// stages, then the workers, and only then accepts input. Shutdown stops
// accepting input, lets every batch already accepted run to the sinks, then
// shuts down the stages and finally the sinks (which flush).
type Graph struct {
	log      hclog.Logger
	metrics  *Metrics
	pipes    []*pipe     // sorted by name
	sinks    []*sinkNode // sorted by id
	sinkByID map[ComponentID]*sinkNode

	mu       sync.RWMutex
	state    graphState
	inflight sync.WaitGroup // Consume calls between the state check and their last Put

	runCtx  context.Context // given to stages and sinks; canceled when the shutdown deadline passes
	cancel  context.CancelFunc
	workers sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

type graphState uint8

const (
	stateBuilt graphState = iota
	stateRunning
	stateStopped
)

var _ Consumer = (*Graph)(nil)

type pipe struct {
	name    string
	queue   *Queue
	stages  []*stageNode
	sinks   []*pipeSink
	workers int

	received *Counter
	metrics  *Metrics
	dropMu   sync.Mutex
	drops    map[string]*Counter
}

type stageNode struct {
	id             ComponentID
	stage          Stage
	in, out, errs  *Counter
	log            hclog.Logger
	lastErrLogNano atomic.Int64
}

type sinkNode struct {
	id   ComponentID
	sink Sink
}

type pipeSink struct {
	node         *sinkNode
	sent, failed *Counter
	log          hclog.Logger
	lastLogNano  atomic.Int64
}

// NewGraph validates cfg against the factories and creates every component
// the pipelines name. Errors name their config keys
// (`pipelines.default.stages[1]: unknown stage "filter/x"`); all are
// reported at once. Components created before a later one failed are shut
// down again.
func NewGraph(ctx context.Context, set GraphSettings, f Factories, cfg GraphConfig) (*Graph, error) {
	log := set.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	g := &Graph{log: log, metrics: set.Metrics}
	g.runCtx, g.cancel = context.WithCancel(context.Background())

	if err := cfg.Validate(f); err != nil {
		return nil, err
	}
	names := cfg.pipelineNames()
	var errs []error

	// Sinks: one instance per id, shared.
	var sinkIDs []ComponentID
	for _, name := range names {
		for _, s := range cfg.Pipelines[name].Sinks {
			sinkIDs = append(sinkIDs, MustComponentID(s))
		}
	}
	sinkIDs = append(sinkIDs, cfg.ExtraSinks...)
	g.sinkByID = map[ComponentID]*sinkNode{}
	sinkByID := g.sinkByID
	for _, id := range sinkIDs {
		if _, done := sinkByID[id]; done {
			continue
		}
		sset := Settings{ID: id, Logger: log.Named("sink").With("sink", id.String()), Metrics: set.Metrics}
		if set.ReuseSink != nil {
			if sk := set.ReuseSink(sset); sk != nil {
				n := &sinkNode{id: id, sink: sk}
				sinkByID[id] = n
				g.sinks = append(g.sinks, n)
				continue
			}
		}
		sk, err := f.Sinks[id.Type].CreateSink(ctx, sset, cfg.Sinks[id])
		if err == nil && set.WrapSink != nil {
			var wrapped Sink
			wrapped, err = set.WrapSink(sset, sk)
			if err != nil {
				err = errors.Join(err, sk.Shutdown(ctx))
			} else {
				sk = wrapped
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sinks.%s: %w", id, err))
			continue
		}
		n := &sinkNode{id: id, sink: sk}
		sinkByID[id] = n
		g.sinks = append(g.sinks, n)
	}
	sort.Slice(g.sinks, func(i, j int) bool { return g.sinks[i].id.String() < g.sinks[j].id.String() })

	for _, name := range names {
		pc := cfg.Pipelines[name]
		p := &pipe{
			name:     name,
			workers:  pc.Workers,
			metrics:  set.Metrics,
			drops:    map[string]*Counter{},
			received: set.Metrics.Counter("snakepipe_pipeline_events_received_total", "Events accepted into the pipeline's queue.", L("pipeline", name)...),
		}
		for _, reason := range []string{DropStageError, DropSinkError, DropCanceled, DropShutdown} {
			p.dropCounter(reason)
		}
		p.queue = NewQueue(pc.Queue, p.countDrop)

		for i, s := range pc.Stages {
			id := MustComponentID(s)
			lbl := L("pipeline", name, "stage", id.String())
			sset := Settings{ID: id, Pipeline: name, Logger: log.Named("stage").With("pipeline", name, "stage", id.String()), Metrics: set.Metrics}
			st, err := f.Stages[id.Type].CreateStage(ctx, sset, cfg.Stages[id])
			if err != nil {
				errs = append(errs, fmt.Errorf("pipelines.%s.stages[%d]: creating stage %q: %w", name, i, s, err))
				continue
			}
			p.stages = append(p.stages, &stageNode{
				id:    id,
				stage: st,
				log:   sset.Logger,
				in:    set.Metrics.Counter("snakepipe_pipeline_stage_events_in_total", "Events given to a stage.", lbl...),
				out:   set.Metrics.Counter("snakepipe_pipeline_stage_events_out_total", "Events a stage passed on.", lbl...),
				errs:  set.Metrics.Counter("snakepipe_pipeline_stage_errors_total", "Batches a stage failed (the batch is dropped).", lbl...),
			})
		}
		for _, s := range pc.Sinks {
			id := MustComponentID(s)
			n, ok := sinkByID[id]
			if !ok {
				continue // its creation failed; reported above
			}
			lbl := L("pipeline", name, "sink", id.String())
			p.sinks = append(p.sinks, &pipeSink{
				node:   n,
				log:    log.Named("sink").With("pipeline", name, "sink", id.String()),
				sent:   set.Metrics.Counter("snakepipe_pipeline_sink_events_sent_total", "Events a pipeline handed to a sink.", lbl...),
				failed: set.Metrics.Counter("snakepipe_pipeline_sink_events_failed_total", "Events a sink's Write failed for (dropped).", lbl...),
			})
		}
		g.pipes = append(g.pipes, p)
	}
	if len(errs) > 0 {
		errs = append(errs, g.shutdownComponents(ctx))
		g.cancel()
		return nil, errors.Join(errs...)
	}
	return g, nil
}

func (p *pipe) dropCounter(reason string) *Counter {
	p.dropMu.Lock()
	defer p.dropMu.Unlock()
	c, ok := p.drops[reason]
	if !ok {
		c = p.metrics.Counter("snakepipe_pipeline_events_dropped_total", "Events a pipeline dropped, by reason.", L("pipeline", p.name, "reason", reason)...)
		p.drops[reason] = c
	}
	return c
}

func (p *pipe) countDrop(reason string, events int) {
	if events > 0 {
		p.dropCounter(reason).Add(uint64(events))
	}
}

// ErrNoSuchSink is returned by DeadLetter for a sink the graph did not
// create.
var ErrNoSuchSink = errors.New("no such sink in the pipeline graph")

// DeadLetter writes b to the sink id directly, bypassing pipelines: for
// stages that hand failed batches to a dead-letter sink (which must be in
// GraphConfig.ExtraSinks or routed to by a pipeline). Like any Sink.Write,
// it does not keep b.
func (g *Graph) DeadLetter(ctx context.Context, id ComponentID, b *Batch, cause error) error {
	n, ok := g.sinkByID[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchSink, id)
	}
	if err := n.sink.Write(ctx, b); err != nil {
		return fmt.Errorf("dead letter to %s: %w", id, err)
	}
	return nil
}

// Pipelines returns the pipeline names, sorted.
func (g *Graph) Pipelines() []string {
	out := make([]string, len(g.pipes))
	for i, p := range g.pipes {
		out[i] = p.name
	}
	return out
}

// Start starts the sinks, then the stages, then the pipeline workers; after
// it returns nil, Consume accepts batches. If a component fails to start,
// everything already started is shut down again and the error names the
// component. A graph is started at most once.
func (g *Graph) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateBuilt {
		return errors.New("pipeline graph: Start called twice or after Shutdown")
	}
	fail := func(err error) error {
		g.state = stateStopped
		g.cancel()
		return errors.Join(err, g.shutdownComponents(ctx))
	}
	for _, s := range g.sinks {
		if err := s.sink.Start(ctx); err != nil {
			return fail(fmt.Errorf("sinks.%s: start: %w", s.id, err))
		}
	}
	for _, p := range g.pipes {
		for _, s := range p.stages {
			if err := s.stage.Start(ctx); err != nil {
				return fail(fmt.Errorf("pipelines.%s: stage %s: start: %w", p.name, s.id, err))
			}
		}
	}
	for _, p := range g.pipes {
		for range p.workers {
			g.workers.Add(1)
			go g.runWorker(p)
		}
		p.registerQueueGauges()
	}
	// Only now that nothing can fail: see gaugeRegisterer.
	for _, s := range g.sinks {
		if r, ok := s.sink.(gaugeRegisterer); ok {
			r.registerGauges()
		}
	}
	g.state = stateRunning
	return nil
}

// gaugeRegisterer is a sink whose gauges read its own state (the
// Exporter's queue depths). Graph.Start registers them after every
// component has started: a graph built by a config reload that fails to
// start must not take over the gauges of the graph still running.
type gaugeRegisterer interface{ registerGauges() }

// registerQueueGauges points the pipeline's queue gauges at its queue. It
// runs on Start, not in NewGraph: a graph built by a config reload that then
// fails must not take the running graph's gauges over.
func (p *pipe) registerQueueGauges() {
	q, lbl := p.queue, L("pipeline", p.name)
	p.metrics.GaugeFunc("snakepipe_pipeline_queue_events", "Events waiting in the pipeline's queue.",
		func() float64 { _, ev, _ := q.Len(); return float64(ev) }, lbl...)
	p.metrics.GaugeFunc("snakepipe_pipeline_queue_bytes", "Approximate bytes waiting in the pipeline's queue.",
		func() float64 { _, _, by := q.Len(); return float64(by) }, lbl...)
	p.metrics.GaugeFunc("snakepipe_pipeline_queue_batches", "Batches waiting in the pipeline's queue.",
		func() float64 { ba, _, _ := q.Len(); return float64(ba) }, lbl...)
}

// Consume gives b to every pipeline. It blocks while a pipeline with the
// block policy has a full queue (backpressure), until ctx is done.
//
// It returns nil when at least one pipeline accepted the batch (pipelines
// that dropped it have counted the drop); ErrQueueFull when every pipeline
// dropped it; ErrGraphClosed when the graph is not running (nothing was
// accepted); or ctx's error when ctx ended while waiting for room (pipelines
// before the waiting one may have accepted a copy; the rest count the drop
// as "canceled").
func (g *Graph) Consume(ctx context.Context, b *Batch) error {
	g.mu.RLock()
	if g.state != stateRunning {
		g.mu.RUnlock()
		return ErrGraphClosed
	}
	g.inflight.Add(1)
	g.mu.RUnlock()
	defer g.inflight.Done()

	n := b.Len()
	if n == 0 {
		return nil
	}
	if b.Bytes == 0 {
		b.ComputeBytes()
	}
	accepted := false
	last := len(g.pipes) - 1
	for i, p := range g.pipes {
		pb := b
		if i < last {
			pb = b.Clone()
		}
		err := p.queue.Put(ctx, pb)
		switch {
		case err == nil:
			accepted = true
			p.received.Add(uint64(n))
		case errors.Is(err, ErrQueueFull):
			// Counted by the queue.
		default:
			for _, rest := range g.pipes[i:] {
				rest.countDrop(DropCanceled, n)
			}
			if errors.Is(err, ErrQueueClosed) {
				return ErrGraphClosed
			}
			return err
		}
	}
	if !accepted {
		return ErrQueueFull
	}
	return nil
}

func (g *Graph) runWorker(p *pipe) {
	defer g.workers.Done()
	for {
		b, err := p.queue.Get(g.runCtx)
		if err != nil {
			return // closed and drained, or the shutdown deadline passed
		}
		if g.runCtx.Err() != nil {
			p.countDrop(DropShutdown, b.Len())
			return
		}
		g.process(p, b)
	}
}

// errLogInterval limits stage and sink error logs to one per component per
// interval; the counters have the full story.
const errLogInterval = int64(time.Second)

func logLimited(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	prev := last.Load()
	return now-prev >= errLogInterval && last.CompareAndSwap(prev, now)
}

func (g *Graph) process(p *pipe, b *Batch) {
	ctx := g.runCtx
	for _, s := range p.stages {
		n := b.Len()
		s.in.Add(uint64(n))
		out, err := s.stage.Process(ctx, b)
		if err != nil {
			s.errs.Inc()
			p.countDrop(DropStageError, n)
			if logLimited(&s.lastErrLogNano) {
				s.log.Warn("stage failed, batch dropped", "events", n, "error", err)
			}
			return
		}
		if out.Len() == 0 {
			return
		}
		s.out.Add(uint64(out.Len()))
		b = out
	}
	n := uint64(b.Len())
	for _, s := range p.sinks {
		if err := s.node.sink.Write(ctx, b); err != nil {
			s.failed.Add(n)
			p.countDrop(DropSinkError, int(n))
			if logLimited(&s.lastLogNano) {
				s.log.Warn("sink write failed, batch dropped", "events", n, "error", err)
			}
			continue
		}
		s.sent.Add(n)
	}
}

// Shutdown stops accepting input, waits for Consume calls in progress, lets
// the workers run every queued batch through the stages to the sinks, then
// shuts down the stages and finally the sinks. If ctx ends first, stages and
// sinks see their context canceled, what is still queued is counted as
// dropped ("shutdown"), and components are shut down with the expired ctx
// (they return promptly). Calling Shutdown again returns the first result.
func (g *Graph) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.shutdown(ctx) })
	return g.shutdownErr
}

func (g *Graph) shutdown(ctx context.Context) error {
	g.mu.Lock()
	was := g.state
	g.state = stateStopped
	g.mu.Unlock()

	if was == stateRunning {
		// Every Consume that passed the state check finishes its Puts
		// (workers keep draining meanwhile), so a batch is either in every
		// pipeline or in none.
		if !waitCtx(ctx, &g.inflight) {
			g.log.Warn("shutdown deadline passed while input was still being accepted")
		}
	}
	for _, p := range g.pipes {
		p.queue.Close()
	}
	var errs []error
	if was == stateRunning {
		if !waitCtx(ctx, &g.workers) {
			errs = append(errs, fmt.Errorf("pipeline graph: draining queues: %w", ctx.Err()))
			g.cancel()
			g.workers.Wait() // stages and sinks honour the canceled context
		}
	}
	for _, p := range g.pipes {
		for b := p.queue.TryGet(); b != nil; b = p.queue.TryGet() {
			p.countDrop(DropShutdown, b.Len())
		}
	}
	errs = append(errs, g.shutdownComponents(ctx))
	g.cancel()
	return errors.Join(errs...)
}

// shutdownComponents shuts down every stage, then every sink.
func (g *Graph) shutdownComponents(ctx context.Context) error {
	var errs []error
	for _, p := range g.pipes {
		for _, s := range p.stages {
			if err := s.stage.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("pipelines.%s: stage %s: shutdown: %w", p.name, s.id, err))
			}
		}
	}
	for _, s := range g.sinks {
		if err := s.sink.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sinks.%s: shutdown: %w", s.id, err))
		}
	}
	return errors.Join(errs...)
}

// waitCtx waits for wg or ctx, reporting whether wg finished.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
