package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ExporterConfig is the delivery policy every configured sink gets: its own
// bounded queue, retries with exponential backoff, and a circuit breaker.
// Users write it under each sink's key (sinks.<id>.queue / retry / circuit /
// workers).
type ExporterConfig struct {
	// Queue bounds what waits for the sink (events and bytes). The default
	// full policy is drop_oldest: for telemetry the newest data is worth the
	// most, and a slow sink must never push back on the other sinks.
	Queue   QueueConfig   `koanf:"queue"`
	Retry   RetryConfig   `koanf:"retry"`
	Circuit CircuitConfig `koanf:"circuit"`
	// Workers is how many Write calls may run on the sink at once.
	Workers int `koanf:"workers"`
}

// RetryConfig is exponential backoff with jitter for transient errors.
type RetryConfig struct {
	Enabled bool `koanf:"enabled"`
	// InitialInterval is the wait before the first retry.
	InitialInterval time.Duration `koanf:"initial_interval"`
	// MaxInterval caps the wait between two attempts.
	MaxInterval time.Duration `koanf:"max_interval"`
	// Multiplier grows the wait after each failed attempt (>= 1).
	Multiplier float64 `koanf:"multiplier"`
	// Jitter in [0, 1] spreads each wait uniformly over ±Jitter of itself.
	Jitter float64 `koanf:"jitter"`
	// MaxElapsed gives up on a batch (dropped, reason retries_exhausted)
	// once this much time has passed since its first attempt; 0 retries
	// until shutdown.
	MaxElapsed time.Duration `koanf:"max_elapsed"`
}

// CircuitConfig is the breaker that stops calling a dead destination.
type CircuitConfig struct {
	// FailureThreshold consecutive transient failures open the circuit;
	// 0 disables the breaker.
	FailureThreshold int `koanf:"failure_threshold"`
	// OpenDuration is how long an open circuit holds batches back before
	// one half-open probe batch is let through. A successful probe closes
	// the circuit; a failed one opens it for another OpenDuration.
	OpenDuration time.Duration `koanf:"open_duration"`
}

// Bounds on ExporterConfig values.
const (
	MaxExporterWorkers = 64
)

// DefaultExporterConfig returns the defaults documented in docs/config.md:
// queue 65536 events / 64 MiB drop_oldest; retry on, 100ms doubling to 30s
// with 20% jitter, until shutdown; circuit opens after 5 consecutive
// failures for 5s; one worker.
func DefaultExporterConfig() ExporterConfig {
	q := DefaultQueueConfig()
	q.FullPolicy = FullDropOldest.String()
	return ExporterConfig{
		Queue: q,
		Retry: RetryConfig{
			Enabled:         true,
			InitialInterval: 100 * time.Millisecond,
			MaxInterval:     30 * time.Second,
			Multiplier:      2,
			Jitter:          0.2,
		},
		Circuit: CircuitConfig{FailureThreshold: 5, OpenDuration: 5 * time.Second},
		Workers: 1,
	}
}

// Validate reports every problem, each naming its key relative to the sink.
func (c ExporterConfig) Validate() error {
	var errs []error
	errs = append(errs, prefixErrors("queue.", c.Queue.Validate())...)
	r := c.Retry
	if r.Enabled {
		if r.InitialInterval <= 0 {
			errs = append(errs, fmt.Errorf("retry.initial_interval: %v must be > 0", r.InitialInterval))
		}
		if r.MaxInterval < r.InitialInterval {
			errs = append(errs, fmt.Errorf("retry.max_interval: %v must be >= initial_interval (%v)", r.MaxInterval, r.InitialInterval))
		}
		if math.IsNaN(r.Multiplier) || r.Multiplier < 1 || r.Multiplier > 100 {
			errs = append(errs, fmt.Errorf("retry.multiplier: %v must be in [1, 100]", r.Multiplier))
		}
		if math.IsNaN(r.Jitter) || r.Jitter < 0 || r.Jitter > 1 {
			errs = append(errs, fmt.Errorf("retry.jitter: %v must be in [0, 1]", r.Jitter))
		}
		if r.MaxElapsed < 0 {
			errs = append(errs, fmt.Errorf("retry.max_elapsed: %v must be >= 0 (0 = until shutdown)", r.MaxElapsed))
		}
	}
	if c.Circuit.FailureThreshold < 0 {
		errs = append(errs, fmt.Errorf("circuit.failure_threshold: %d must be >= 0 (0 disables the circuit)", c.Circuit.FailureThreshold))
	}
	if c.Circuit.FailureThreshold > 0 && c.Circuit.OpenDuration <= 0 {
		errs = append(errs, fmt.Errorf("circuit.open_duration: %v must be > 0", c.Circuit.OpenDuration))
	}
	if c.Workers < 1 || c.Workers > MaxExporterWorkers {
		errs = append(errs, fmt.Errorf("workers: %d must be in [1, %d]", c.Workers, MaxExporterWorkers))
	}
	return errors.Join(errs...)
}

// prefixErrors splits a joined error and prefixes each part with a key path.
func prefixErrors(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	var parts []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	} else {
		parts = []error{err}
	}
	out := make([]error, 0, len(parts))
	for _, p := range parts {
		out = append(out, fmt.Errorf("%s%w", prefix, p))
	}
	return out
}

// Exporter drop and failure reasons (label values of the sink metrics).
const (
	DropReasonPermanent        = "permanent"
	DropReasonRetriesExhausted = "retries_exhausted"
	DropReasonShutdown         = "shutdown"
	FailReasonTransient        = "transient"
	FailReasonPermanent        = "permanent"
)

// ErrExporterClosed is returned (marked Permanent) by Exporter.Write after
// Shutdown began; the batch was dropped and counted (reason shutdown). The
// graph stops upstream first, so seeing it means a producer outlived its
// sinks.
var ErrExporterClosed = errors.New("sink exporter is shut down")

// Exporter wraps a Sink with a bounded queue, worker goroutines, retries
// with exponential backoff and jitter, and a circuit breaker, so that one
// slow or dead destination never stalls the pipeline or the other sinks.
//
// Write only enqueues (a copy of the batch); the full policy decides what
// happens when the queue is full. Workers call the wrapped sink's Write:
// transient errors are retried, errors marked Permanent are dropped and
// counted at once, and after Circuit.FailureThreshold consecutive transient
// failures the circuit opens: batches wait in the queue (and drop per the
// full policy when it fills) until a half-open probe succeeds.
//
// Metrics, all labelled sink=<id>: snakepipe_sink_events_written_total,
// snakepipe_sink_failed_total{reason} (failed Write calls),
// snakepipe_sink_dropped_total{reason} (events), snakepipe_sink_retries_total,
// snakepipe_sink_queue_events, snakepipe_sink_queue_bytes,
// snakepipe_sink_circuit_open, and the histogram
// snakepipe_sink_event_latency_seconds: from each event's timestamp (the
// worker's clock at emit) to the end of the sink Write that delivered it.
type Exporter struct {
	set  Settings
	sink Sink
	cfg  ExporterConfig
	log  hclog.Logger
	clk  clock

	queue *Queue
	circ  *circuit

	written       *Counter
	latency       *Histogram
	retries       *Counter
	failTransient *Counter
	failPermanent *Counter
	drops         map[string]*Counter

	mu        sync.Mutex
	started   bool
	runCtx    context.Context
	cancelRun context.CancelFunc
	wg        sync.WaitGroup

	stopping     atomic.Bool
	shutdownOnce sync.Once
	shutdownErr  error
}

var _ Sink = (*Exporter)(nil)

// NewExporter wraps sink. cfg must be valid (Validate); invalid numbers fall
// back to defaults rather than panicking.
func NewExporter(set Settings, sink Sink, cfg ExporterConfig) *Exporter {
	return newExporter(set, sink, cfg, realClock{})
}

func newExporter(set Settings, sink Sink, cfg ExporterConfig, clk clock) *Exporter {
	def := DefaultExporterConfig()
	if cfg.Workers < 1 || cfg.Workers > MaxExporterWorkers {
		cfg.Workers = def.Workers
	}
	if cfg.Retry.Enabled && (cfg.Retry.InitialInterval <= 0 || cfg.Retry.Multiplier < 1 || math.IsNaN(cfg.Retry.Multiplier)) {
		cfg.Retry = def.Retry
	}
	if cfg.Retry.MaxInterval < cfg.Retry.InitialInterval {
		cfg.Retry.MaxInterval = cfg.Retry.InitialInterval
	}
	if cfg.Circuit.FailureThreshold > 0 && cfg.Circuit.OpenDuration <= 0 {
		cfg.Circuit.OpenDuration = def.Circuit.OpenDuration
	}
	log := set.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := set.Metrics
	id := set.ID.String()
	lbl := L("sink", id)
	e := &Exporter{
		set:  set,
		sink: sink,
		cfg:  cfg,
		log:  log,
		clk:  clk,
		written: m.Counter("snakepipe_sink_events_written_total",
			"Events the sink accepted.", lbl...),
		latency: m.Histogram("snakepipe_sink_event_latency_seconds",
			"Seconds from an event's timestamp (worker clock at emit) to its delivery by the sink.", LatencyBuckets, lbl...),
		retries: m.Counter("snakepipe_sink_retries_total",
			"Write attempts repeated after a transient error.", lbl...),
		failTransient: m.Counter("snakepipe_sink_failed_total",
			"Sink Write calls that returned an error, by kind.", L("sink", id, "reason", FailReasonTransient)...),
		failPermanent: m.Counter("snakepipe_sink_failed_total",
			"Sink Write calls that returned an error, by kind.", L("sink", id, "reason", FailReasonPermanent)...),
		drops: map[string]*Counter{},
	}
	for _, r := range []string{DropReasonQueueFull, DropReasonEvictedOldest, DropReasonPermanent, DropReasonRetriesExhausted, DropReasonShutdown} {
		e.drops[r] = m.Counter("snakepipe_sink_dropped_total",
			"Events the sink never delivered, by reason.", L("sink", id, "reason", r)...)
	}
	e.queue = NewQueue(cfg.Queue, e.drop)
	open := m.Gauge("snakepipe_sink_circuit_open",
		"1 while the sink's circuit breaker holds batches back.", lbl...)
	e.circ = newCircuit(cfg.Circuit, clk, func(isOpen bool, failures int) {
		if isOpen {
			open.Set(1)
			log.Warn("sink circuit opened; holding batches back", "sink", id,
				"consecutive_failures", failures, "open_duration", cfg.Circuit.OpenDuration)
		} else {
			open.Set(0)
			log.Info("sink circuit closed; delivering again", "sink", id)
		}
	})
	e.runCtx, e.cancelRun = context.WithCancel(context.Background())
	return e
}

func (e *Exporter) drop(reason string, events int) {
	c, ok := e.drops[reason]
	if !ok {
		return
	}
	c.Add(uint64(events))
}

// Start starts the wrapped sink, then the workers. Calling it again does
// nothing.
func (e *Exporter) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopping.Load() {
		return nil
	}
	if err := e.sink.Start(ctx); err != nil {
		return fmt.Errorf("sink %s: start: %w", e.set.ID, err)
	}
	e.started = true
	for i := 0; i < e.cfg.Workers; i++ {
		e.wg.Add(1)
		go e.worker()
	}
	return nil
}

// registerGauges points the sink queue gauges at this exporter's queue.
// The graph calls it once every component has started, not NewExporter or
// Start: an exporter built by a config reload whose graph then fails to
// start must not take the running exporter's gauges over.
func (e *Exporter) registerGauges() {
	m, lbl := e.set.Metrics, L("sink", e.set.ID.String())
	m.GaugeFunc("snakepipe_sink_queue_events", "Events waiting in the sink's queue.",
		func() float64 { _, ev, _ := e.queue.Len(); return float64(ev) }, lbl...)
	m.GaugeFunc("snakepipe_sink_queue_bytes", "Approximate bytes waiting in the sink's queue.",
		func() float64 { _, _, by := e.queue.Len(); return float64(by) }, lbl...)
}

// Write queues a copy of b for delivery. It returns nil when the batch was
// queued or dropped by the full policy (drop_newest / drop_oldest; counted
// here as snakepipe_sink_dropped_total{reason=queue_full|evicted_oldest}).
// With full_policy block it waits for room; if ctx ends first it returns an
// error wrapping ctx.Err() and nothing was queued. After Shutdown began it
// returns ErrExporterClosed, marked Permanent.
func (e *Exporter) Write(ctx context.Context, b *Batch) error {
	if b.Len() == 0 {
		return nil
	}
	if e.stopping.Load() {
		e.drop(DropReasonShutdown, b.Len())
		return Permanent(fmt.Errorf("sink %s: %w", e.set.ID, ErrExporterClosed))
	}
	err := e.queue.Put(ctx, b.Clone())
	switch {
	case err == nil, errors.Is(err, ErrQueueFull):
		return nil
	case errors.Is(err, ErrQueueClosed):
		e.drop(DropReasonShutdown, b.Len())
		return Permanent(fmt.Errorf("sink %s: %w", e.set.ID, ErrExporterClosed))
	default:
		return fmt.Errorf("sink %s: %w", e.set.ID, err)
	}
}

func (e *Exporter) worker() {
	defer e.wg.Done()
	for {
		b, err := e.queue.Get(e.runCtx)
		if err != nil {
			return // closed and drained, or the shutdown deadline passed
		}
		e.deliver(b)
	}
}

// deliver writes one batch, retrying transient errors. It returns once the
// batch was written or dropped (and counted).
func (e *Exporter) deliver(b *Batch) {
	n := len(b.Events)
	ctx := e.runCtx
	first := e.clk.Now()
	backoff := e.cfg.Retry.InitialInterval
	for {
		if err := e.circ.acquire(ctx, &e.stopping); err != nil {
			e.drop(DropReasonShutdown, n)
			return
		}
		err := e.sink.Write(ctx, b)
		switch {
		case err == nil:
			e.circ.result(true)
			e.written.Add(uint64(n))
			observeLatency(e.latency, b, time.Now().UnixNano())
			return
		case ctx.Err() != nil:
			// The shutdown deadline cut the attempt short.
			e.circ.abandon()
			e.drop(DropReasonShutdown, n)
			return
		case IsPermanent(err):
			// The destination answered: it is alive, the data is bad.
			e.circ.result(true)
			e.failPermanent.Inc()
			e.drop(DropReasonPermanent, n)
			e.log.Debug("sink dropped a batch on a permanent error", "sink", e.set.ID.String(), "events", n, "error", err)
			return
		}
		e.failTransient.Inc()
		e.circ.result(false)
		e.log.Debug("sink write failed", "sink", e.set.ID.String(), "events", n, "error", err)
		wait := e.jittered(backoff)
		if !e.cfg.Retry.Enabled || (e.cfg.Retry.MaxElapsed > 0 && e.clk.Now().Sub(first)+wait > e.cfg.Retry.MaxElapsed) {
			e.drop(DropReasonRetriesExhausted, n)
			e.log.Debug("sink gave up on a batch", "sink", e.set.ID.String(), "events", n, "error", err)
			return
		}
		if !e.sleep(ctx, wait) {
			e.drop(DropReasonShutdown, n)
			return
		}
		e.retries.Inc()
		next := time.Duration(float64(backoff) * e.cfg.Retry.Multiplier)
		if next > e.cfg.Retry.MaxInterval || next <= 0 {
			next = e.cfg.Retry.MaxInterval
		}
		backoff = next
	}
}

func (e *Exporter) jittered(d time.Duration) time.Duration {
	j := e.cfg.Retry.Jitter
	if j <= 0 || d <= 0 {
		return d
	}
	f := 1 + j*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

func (e *Exporter) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	ch, stop := e.clk.After(d)
	defer stop()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// Shutdown stops accepting batches, delivers what is queued until ctx's
// deadline (the circuit no longer holds batches back, retries go on), counts
// what could not be delivered by then as dropped (reason shutdown), and then
// shuts the wrapped sink down with ctx. Calling it again returns the first
// call's result.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.shutdownOnce.Do(func() {
		e.mu.Lock()
		e.stopping.Store(true)
		e.mu.Unlock()
		e.queue.Close()
		e.circ.wake()
		done := make(chan struct{})
		go func() {
			e.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			e.cancelRun()
			<-done
		}
		e.cancelRun()
		for b := e.queue.TryGet(); b != nil; b = e.queue.TryGet() {
			e.drop(DropReasonShutdown, len(b.Events))
		}
		if err := e.sink.Shutdown(ctx); err != nil {
			e.shutdownErr = fmt.Errorf("sink %s: shutdown: %w", e.set.ID, err)
		}
	})
	return e.shutdownErr
}

// clock is time, replaceable in tests.
type clock interface {
	Now() time.Time
	// After returns a channel that receives after d, and a stop function.
	After(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// circuit is a consecutive-failure circuit breaker shared by an exporter's
// workers: closed -> (threshold failures) -> open -> (open duration) ->
// half-open, where exactly one probe call goes through -> closed on
// success, open again on failure.
type circuit struct {
	cfg      CircuitConfig
	clk      clock
	onChange func(open bool, failures int)

	mu       sync.Mutex
	state    circuitState
	failures int
	openedAt time.Time
	probing  bool
	changed  chan struct{} // closed and replaced on every state change
}

type circuitState uint8

const (
	circuitClosed circuitState = iota
	circuitOpen
	circuitHalfOpen
)

func newCircuit(cfg CircuitConfig, clk clock, onChange func(open bool, failures int)) *circuit {
	return &circuit{cfg: cfg, clk: clk, onChange: onChange, changed: make(chan struct{})}
}

func (c *circuit) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// wake makes waiters re-check (used when shutdown starts).
func (c *circuit) wake() {
	c.mu.Lock()
	c.broadcastLocked()
	c.mu.Unlock()
}

// acquire waits until a call may go through. While stopping is set, it
// never waits (shutdown drains regardless of the circuit).
func (c *circuit) acquire(ctx context.Context, stopping *atomic.Bool) error {
	if c.cfg.FailureThreshold <= 0 {
		return ctx.Err()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		if c.state == circuitClosed || stopping.Load() {
			c.mu.Unlock()
			return nil
		}
		var wait <-chan time.Time
		stop := func() bool { return false }
		switch c.state {
		case circuitOpen:
			left := c.cfg.OpenDuration - c.clk.Now().Sub(c.openedAt)
			if left <= 0 {
				c.state = circuitHalfOpen
				c.probing = true
				c.broadcastLocked()
				c.mu.Unlock()
				return nil
			}
			wait, stop = c.clk.After(left)
		case circuitHalfOpen:
			if !c.probing {
				c.probing = true
				c.mu.Unlock()
				return nil
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-changed:
		case <-wait:
		}
		stop()
	}
}

// result records the outcome of a call that acquire let through.
func (c *circuit) result(ok bool) {
	if c.cfg.FailureThreshold <= 0 {
		return
	}
	c.mu.Lock()
	wasOpen := c.state != circuitClosed
	c.probing = false
	if ok {
		c.failures = 0
		if c.state != circuitClosed {
			c.state = circuitClosed
			c.broadcastLocked()
		}
	} else {
		c.failures++
		if c.state == circuitHalfOpen || (c.state == circuitClosed && c.failures >= c.cfg.FailureThreshold) {
			c.state = circuitOpen
			c.openedAt = c.clk.Now()
			c.broadcastLocked()
		}
	}
	isOpen := c.state != circuitClosed
	failures := c.failures
	c.mu.Unlock()
	if isOpen != wasOpen && c.onChange != nil {
		c.onChange(isOpen, failures)
	}
}

// abandon releases a probe slot without a verdict.
func (c *circuit) abandon() {
	c.mu.Lock()
	if c.probing {
		c.probing = false
		c.broadcastLocked()
	}
	c.mu.Unlock()
}

// observeLatency records now minus each event's timestamp. Runs of equal
// timestamps (a batch stamped at send time) cost one observation. Events
// without a timestamp, or stamped in the future by a skewed clock, are
// skipped.
func observeLatency(h *Histogram, b *Batch, now int64) {
	ev := b.Events
	for i := 0; i < len(ev); {
		ts := ev[i].TimestampNs
		j := i + 1
		for j < len(ev) && ev[j].TimestampNs == ts {
			j++
		}
		if ts > 0 && ts <= now {
			h.ObserveN(float64(now-ts)/1e9, uint64(j-i))
		}
		i = j
	}
}
