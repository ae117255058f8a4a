package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// recordSink records every batch it accepts (copying event sequence
// numbers) and fails according to fail, which sees the 1-based call number.
type recordSink struct {
	mu       sync.Mutex
	calls    int
	seqs     []uint64
	batches  int
	shutdown int
	// wroteAfterShutdown is set if Write is called after Shutdown.
	wroteAfterShutdown bool
	fail               func(call int) error
	block              <-chan struct{} // if set, Write waits for it (or ctx)
}

func (s *recordSink) Start(context.Context) error { return nil }

func (s *recordSink) Write(ctx context.Context, b *Batch) error {
	s.mu.Lock()
	s.calls++
	call := s.calls
	if s.shutdown > 0 {
		s.wroteAfterShutdown = true
	}
	fail := s.fail
	block := s.block
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(call); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	for i := range b.Events {
		s.seqs = append(s.seqs, b.Events[i].Seq)
	}
	return nil
}

func (s *recordSink) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown++
	return nil
}

func (s *recordSink) snapshot() (calls int, seqs []uint64, shutdown int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, append([]uint64(nil), s.seqs...), s.shutdown
}

var seqCounter atomic.Uint64

func testBatch(n int) *Batch {
	b := &Batch{}
	for i := 0; i < n; i++ {
		seq := seqCounter.Add(1)
		b.Events = append(b.Events, Event{Name: "python.call.stop", SampleRate: 1, Seq: seq, TimestampNs: int64(seq)})
	}
	b.ComputeBytes()
	return b
}

func testSettings(name string) (Settings, *Metrics) {
	m := NewMetrics()
	return Settings{ID: ComponentID{Type: "test", Name: name}, Metrics: m}, m
}

func metricValue(t *testing.T, m *Metrics, name string, kv ...string) float64 {
	t.Helper()
	v, ok := m.Value(name, L(kv...)...)
	if !ok {
		t.Fatalf("metric %s%v not registered", name, kv)
	}
	return v
}

func fastRetry() ExporterConfig {
	cfg := DefaultExporterConfig()
	cfg.Retry.InitialInterval = time.Millisecond
	cfg.Retry.MaxInterval = 2 * time.Millisecond
	cfg.Circuit.OpenDuration = time.Millisecond
	return cfg
}

func shutdown(t *testing.T, c Component) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

var errFlaky = errors.New("connection refused")

func TestExporterRetriesTransientThenDeliversOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &recordSink{fail: func(call int) error {
		if call <= 3 {
			return errFlaky
		}
		return nil
	}}
	set, m := testSettings("flaky")
	e := NewExporter(set, sink, fastRetry())
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.registerGauges() // what Graph.Start does once everything has started
	b := testBatch(5)
	if err := e.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	shutdown(t, e)
	calls, seqs, down := sink.snapshot()
	if calls != 4 || len(seqs) != 5 || down != 1 {
		t.Fatalf("calls=%d delivered=%d shutdown=%d, want 4, 5, 1", calls, len(seqs), down)
	}
	for i, s := range seqs {
		if s != b.Events[i].Seq {
			t.Fatalf("event %d delivered seq %d, want %d", i, s, b.Events[i].Seq)
		}
	}
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"snakepipe_sink_events_written_total", []string{"sink", "test/flaky"}, 5},
		{"snakepipe_sink_retries_total", []string{"sink", "test/flaky"}, 3},
		{"snakepipe_sink_failed_total", []string{"sink", "test/flaky", "reason", "transient"}, 3},
		{"snakepipe_sink_failed_total", []string{"sink", "test/flaky", "reason", "permanent"}, 0},
		{"snakepipe_sink_dropped_total", []string{"sink", "test/flaky", "reason", "shutdown"}, 0},
		{"snakepipe_sink_queue_events", []string{"sink", "test/flaky"}, 0},
	} {
		if got := metricValue(t, m, c.name, c.kv...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.kv, got, c.want)
		}
	}
}

func TestExporterPermanentDroppedAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &recordSink{fail: func(int) error { return Permanent(errors.New("bad payload")) }}
	set, m := testSettings("perm")
	cfg := fastRetry()
	cfg.Circuit.FailureThreshold = 1
	e := NewExporter(set, sink, cfg)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := e.Write(context.Background(), testBatch(4)); err != nil {
			t.Fatal(err)
		}
	}
	shutdown(t, e)
	calls, seqs, _ := sink.snapshot()
	if calls != 3 || len(seqs) != 0 {
		t.Fatalf("calls=%d delivered=%d, want 3 calls (no retries), 0 delivered", calls, len(seqs))
	}
	if got := metricValue(t, m, "snakepipe_sink_dropped_total", "sink", "test/perm", "reason", "permanent"); got != 12 {
		t.Errorf("dropped{permanent} = %v, want 12", got)
	}
	if got := metricValue(t, m, "snakepipe_sink_failed_total", "sink", "test/perm", "reason", "permanent"); got != 3 {
		t.Errorf("failed{permanent} = %v, want 3", got)
	}
	if got := metricValue(t, m, "snakepipe_sink_retries_total", "sink", "test/perm"); got != 0 {
		t.Errorf("retries = %v, want 0", got)
	}
	if got := metricValue(t, m, "snakepipe_sink_circuit_open", "sink", "test/perm"); got != 0 {
		t.Errorf("a permanent error opened the circuit (gauge %v)", got)
	}
}

func TestExporterRetriesExhausted(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tt := range []struct {
		name  string
		retry RetryConfig
		calls int
	}{
		{"disabled", RetryConfig{Enabled: false}, 1},
		{"max_elapsed", RetryConfig{Enabled: true, InitialInterval: time.Hour, MaxInterval: time.Hour, Multiplier: 2, MaxElapsed: time.Minute}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordSink{fail: func(int) error { return errFlaky }}
			set, m := testSettings(tt.name)
			cfg := DefaultExporterConfig()
			cfg.Retry = tt.retry
			e := NewExporter(set, sink, cfg)
			if err := e.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := e.Write(context.Background(), testBatch(2)); err != nil {
				t.Fatal(err)
			}
			shutdown(t, e)
			if calls, _, _ := sink.snapshot(); calls != tt.calls {
				t.Errorf("calls = %d, want %d", calls, tt.calls)
			}
			if got := metricValue(t, m, "snakepipe_sink_dropped_total", "sink", "test/"+tt.name, "reason", "retries_exhausted"); got != 2 {
				t.Errorf("dropped{retries_exhausted} = %v, want 2", got)
			}
		})
	}
}

// fakeClock is a manual clock: timers fire only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t.ch, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.timers {
			if x == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// waitTimer waits until some goroutine is parked on a timer and returns
// the earliest deadline.
func (c *fakeClock) waitTimer(t *testing.T) time.Time {
	t.Helper()
	for i := 0; i < 100000; i++ {
		c.mu.Lock()
		if len(c.timers) > 0 {
			at := c.timers[0].at
			for _, x := range c.timers {
				if x.at.Before(at) {
					at = x.at
				}
			}
			c.mu.Unlock()
			return at
		}
		c.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
	}
	t.Fatal("no goroutine parked on a timer")
	return time.Time{}
}

// advanceTo moves the clock and fires every timer that is due.
func (c *fakeClock) advanceTo(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.now) {
		c.now = at
	}
	kept := c.timers[:0]
	for _, x := range c.timers {
		if !x.at.After(c.now) {
			x.ch <- c.now
		} else {
			kept = append(kept, x)
		}
	}
	c.timers = kept
}

func TestExporterCircuitOpensStopsCallingAndRecovers(t *testing.T) {
	defer goleak.VerifyNone(t)
	var failing atomic.Bool
	failing.Store(true)
	sink := &recordSink{fail: func(int) error {
		if failing.Load() {
			return errFlaky
		}
		return nil
	}}
	set, m := testSettings("dead")
	cfg := DefaultExporterConfig()
	cfg.Retry = RetryConfig{Enabled: true, InitialInterval: time.Second, MaxInterval: time.Second, Multiplier: 1}
	cfg.Circuit = CircuitConfig{FailureThreshold: 3, OpenDuration: 10 * time.Second}
	clk := &fakeClock{now: time.Unix(1000, 0)}
	e := newExporter(set, sink, cfg, clk)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := testBatch(2)
	if err := e.Write(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	open := func() float64 { return metricValue(t, m, "snakepipe_sink_circuit_open", "sink", "test/dead") }
	// Step through the backoff timers until the circuit opens.
	var at time.Time
	for {
		// Once the worker is parked on a timer, it has recorded the result
		// of its last call.
		at = clk.waitTimer(t)
		if open() != 0 {
			break
		}
		clk.advanceTo(at)
	}
	calls, _, _ := sink.snapshot()
	if calls != 3 {
		t.Fatalf("circuit opened after %d calls, want 3", calls)
	}
	// While open, new batches wait in the queue and the sink is not called:
	// fire the pending backoff timer; the worker then parks on the circuit's
	// open-duration timer without calling the sink.
	for i := 0; i < 3; i++ {
		if err := e.Write(context.Background(), testBatch(1)); err != nil {
			t.Fatal(err)
		}
	}
	clk.advanceTo(at) // backoff after the 3rd failure (1s)
	reopen := clk.waitTimer(t)
	if want := time.Unix(1000, 0).Add(2*time.Second + 10*time.Second); !reopen.Equal(want) {
		t.Fatalf("worker parked until %v, want the circuit's half-open time %v", reopen, want)
	}
	if calls, _, _ := sink.snapshot(); calls != 3 {
		t.Fatalf("sink called %d times while the circuit was open, want 3", calls)
	}
	if _, ev, _ := e.queue.Len(); ev != 3 {
		t.Fatalf("queue holds %d events while open, want 3", ev)
	}
	// The destination comes back: the half-open probe succeeds, the circuit
	// closes and everything queued is delivered.
	failing.Store(false)
	clk.advanceTo(reopen)
	shutdown(t, e)
	calls, seqs, _ := sink.snapshot()
	if calls != 3+1+3 || len(seqs) != 5 {
		t.Fatalf("calls=%d delivered=%d, want 7 calls and 5 events", calls, len(seqs))
	}
	if seqs[0] != first.Events[0].Seq {
		t.Errorf("first delivered seq %d, want the retried batch's %d", seqs[0], first.Events[0].Seq)
	}
	if open() != 0 {
		t.Errorf("circuit still open after a successful probe")
	}
	if got := metricValue(t, m, "snakepipe_sink_failed_total", "sink", "test/dead", "reason", "transient"); got != 3 {
		t.Errorf("failed{transient} = %v, want 3", got)
	}
}

func TestExporterHalfOpenProbeFailureReopens(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &recordSink{fail: func(int) error { return errFlaky }}
	set, m := testSettings("down")
	cfg := DefaultExporterConfig()
	cfg.Retry = RetryConfig{Enabled: true, InitialInterval: time.Second, MaxInterval: time.Second, Multiplier: 1}
	cfg.Circuit = CircuitConfig{FailureThreshold: 2, OpenDuration: 10 * time.Second}
	clk := &fakeClock{now: time.Unix(0, 0)}
	e := newExporter(set, sink, cfg, clk)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Write(context.Background(), testBatch(1)); err != nil {
		t.Fatal(err)
	}
	// Calls at t=0, 1 (opens; backoff to 2, then wait for 1+10), probe at 11
	// (fails, reopens; backoff to 12, wait for 11+10), probe at 21.
	var callTimes []int64
	last := 0
	for len(callTimes) < 4 {
		at := clk.waitTimer(t)
		if c, _, _ := sink.snapshot(); c > last {
			for ; last < c; last++ {
				callTimes = append(callTimes, clk.Now().Unix())
			}
		}
		clk.advanceTo(at)
	}
	want := []int64{0, 1, 11, 21}
	if fmt.Sprint(callTimes[:4]) != fmt.Sprint(want) {
		t.Errorf("calls at %v, want %v (one probe per open_duration)", callTimes[:4], want)
	}
	if got := metricValue(t, m, "snakepipe_sink_circuit_open", "sink", "test/down"); got != 1 {
		t.Errorf("circuit_open = %v, want 1", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // deadline already passed: everything left is dropped
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, m, "snakepipe_sink_dropped_total", "sink", "test/down", "reason", "shutdown"); got != 1 {
		t.Errorf("dropped{shutdown} = %v, want 1", got)
	}
}

func TestExporterFanOutSlowSinkDoesNotStallOthers(t *testing.T) {
	defer goleak.VerifyNone(t)
	release := make(chan struct{})
	slow := &recordSink{block: release}
	fast := &recordSink{}
	slowSet, slowM := testSettings("slow")
	fastSet, _ := testSettings("fast")
	slowCfg := DefaultExporterConfig()
	slowCfg.Queue = QueueConfig{MaxEvents: 10, MaxBytes: 1 << 20, FullPolicy: "drop_oldest"}
	fastCfg := DefaultExporterConfig()
	fastCfg.Queue.FullPolicy = "block"
	se := NewExporter(slowSet, slow, slowCfg)
	fe := NewExporter(fastSet, fast, fastCfg)
	for _, e := range []*Exporter{se, fe} {
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	const n = 200
	// A fan-out loop: every batch to every sink, in the caller's goroutine.
	// If the slow sink's Write blocked, this loop would hang.
	for i := 0; i < n; i++ {
		b := testBatch(1)
		for _, e := range []*Exporter{se, fe} {
			if err := e.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	shutdown(t, fe)
	if _, seqs, _ := fast.snapshot(); len(seqs) != n {
		t.Fatalf("fast sink got %d events while the slow one was stuck, want %d", len(seqs), n)
	}
	close(release)
	shutdown(t, se)
	_, seqs, _ := slow.snapshot()
	evicted := metricValue(t, slowM, "snakepipe_sink_dropped_total", "sink", "test/slow", "reason", "evicted_oldest")
	if int(evicted)+len(seqs) != n || len(seqs) < 10 || len(seqs) > 11 {
		t.Fatalf("slow sink delivered %d and evicted %v of %d; want 10 or 11 delivered and the rest evicted", len(seqs), evicted, n)
	}
}

func TestExporterShutdownDrains(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &recordSink{}
	set, m := testSettings("drain")
	cfg := DefaultExporterConfig()
	cfg.Workers = 3
	e := NewExporter(set, sink, cfg)
	// Queued before Start: still delivered once started.
	for i := 0; i < 10; i++ {
		if err := e.Write(context.Background(), testBatch(3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := e.Write(context.Background(), testBatch(3)); err != nil {
			t.Fatal(err)
		}
	}
	shutdown(t, e)
	sink.mu.Lock()
	after := sink.wroteAfterShutdown
	sink.mu.Unlock()
	_, seqs, down := sink.snapshot()
	if len(seqs) != 60 || down != 1 || after {
		t.Fatalf("delivered=%d shutdown=%d wroteAfterShutdown=%v; want 60, 1, false", len(seqs), down, after)
	}
	if got := metricValue(t, m, "snakepipe_sink_events_written_total", "sink", "test/drain"); got != 60 {
		t.Errorf("written = %v, want 60", got)
	}
	// Shutdown twice is fine; Write after Shutdown is refused and counted.
	shutdown(t, e)
	if err := e.Write(context.Background(), testBatch(2)); !errors.Is(err, ErrExporterClosed) {
		t.Errorf("Write after Shutdown = %v, want ErrExporterClosed", err)
	}
	if got := metricValue(t, m, "snakepipe_sink_dropped_total", "sink", "test/drain", "reason", "shutdown"); got != 2 {
		t.Errorf("dropped{shutdown} = %v, want 2", got)
	}
	if _, _, down := sink.snapshot(); down != 1 {
		t.Errorf("sink shut down %d times, want 1", down)
	}
}

func TestExporterShutdownDeadlineCountsUndelivered(t *testing.T) {
	defer goleak.VerifyNone(t)
	never := make(chan struct{})
	defer close(never)
	sink := &recordSink{block: never}
	set, m := testSettings("stuck")
	e := NewExporter(set, sink, DefaultExporterConfig())
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := e.Write(context.Background(), testBatch(2)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, m, "snakepipe_sink_dropped_total", "sink", "test/stuck", "reason", "shutdown"); got != 10 {
		t.Errorf("dropped{shutdown} = %v, want 10", got)
	}
	if _, seqs, down := sink.snapshot(); len(seqs) != 0 || down != 1 {
		t.Errorf("delivered=%d shutdown=%d, want 0, 1", len(seqs), down)
	}
}

func TestExporterBlockPolicyHonoursContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	never := make(chan struct{})
	sink := &recordSink{block: never}
	set, _ := testSettings("block")
	cfg := DefaultExporterConfig()
	cfg.Queue = QueueConfig{MaxEvents: 2, MaxBytes: 1 << 20, FullPolicy: "block"}
	e := NewExporter(set, sink, cfg)
	// Not started: nothing drains the queue.
	if err := e.Write(context.Background(), testBatch(2)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Write(ctx, testBatch(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write on a full blocking queue with a done ctx = %v, want context.Canceled", err)
	}
	close(never)
	shutdown(t, e)
}

func TestExporterHammer(t *testing.T) {
	defer goleak.VerifyNone(t)
	var calls atomic.Int64
	sink := &recordSink{fail: func(int) error {
		if calls.Add(1)%4 == 0 {
			return errFlaky
		}
		return nil
	}}
	set, m := testSettings("hammer")
	cfg := fastRetry()
	cfg.Workers = 4
	cfg.Queue = QueueConfig{MaxEvents: 50, MaxBytes: 1 << 20, FullPolicy: "block"}
	cfg.Circuit.FailureThreshold = 3
	e := NewExporter(set, sink, cfg)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	const producers, batches, per = 8, 100, 3
	start := make(chan struct{})
	var wg sync.WaitGroup
	var want sync.Map
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < batches; i++ {
				b := testBatch(per)
				for _, ev := range b.Events {
					want.Store(ev.Seq, true)
				}
				if err := e.Write(context.Background(), b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	shutdown(t, e)
	_, seqs, _ := sink.snapshot()
	seen := map[uint64]int{}
	for _, s := range seqs {
		seen[s]++
		if _, ok := want.Load(s); !ok {
			t.Fatalf("delivered unknown seq %d", s)
		}
	}
	total := producers * batches * per
	if len(seen) != total || len(seqs) != total {
		t.Fatalf("delivered %d events (%d distinct), want %d exactly once", len(seqs), len(seen), total)
	}
	if got := metricValue(t, m, "snakepipe_sink_events_written_total", "sink", "test/hammer"); got != float64(total) {
		t.Errorf("written = %v, want %d", got, total)
	}
}

func TestExporterConfigValidate(t *testing.T) {
	if err := DefaultExporterConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*ExporterConfig)
		keys []string
	}{
		{"queue", func(c *ExporterConfig) { c.Queue.MaxEvents = 0; c.Queue.FullPolicy = "spill" }, []string{"queue.max_events", "queue.full_policy"}},
		{"retry", func(c *ExporterConfig) {
			c.Retry.InitialInterval = 0
			c.Retry.Multiplier = 0.5
			c.Retry.Jitter = 2
			c.Retry.MaxElapsed = -1
		}, []string{"retry.initial_interval", "retry.multiplier", "retry.jitter", "retry.max_elapsed"}},
		{"retry_max", func(c *ExporterConfig) { c.Retry.MaxInterval = time.Millisecond }, []string{"retry.max_interval"}},
		{"retry_disabled_ignores_numbers", func(c *ExporterConfig) { c.Retry = RetryConfig{} }, nil},
		{"circuit", func(c *ExporterConfig) { c.Circuit.OpenDuration = 0 }, []string{"circuit.open_duration"}},
		{"circuit_negative", func(c *ExporterConfig) { c.Circuit.FailureThreshold = -1 }, []string{"circuit.failure_threshold"}},
		{"circuit_disabled", func(c *ExporterConfig) { c.Circuit = CircuitConfig{} }, nil},
		{"workers", func(c *ExporterConfig) { c.Workers = 0 }, []string{"workers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultExporterConfig()
			tt.mod(&c)
			err := c.Validate()
			if len(tt.keys) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want errors")
			}
			for _, k := range tt.keys {
				if !strings.Contains(err.Error(), k+":") {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
		})
	}
}

// dirSink appends JSON lines to dir/events.jsonl, opening the file for each
// batch and writing the batch in one call, so a removed directory is an
// error (transient: it may come back) and a line is never half-written.
// It stands in for the file sink, which lives in another package.
type dirSink struct {
	dir string
}

func (d *dirSink) Start(context.Context) error    { return nil }
func (d *dirSink) Shutdown(context.Context) error { return nil }
func (d *dirSink) Write(_ context.Context, b *Batch) error {
	var buf []byte
	for i := range b.Events {
		buf = AppendJSON(buf, &b.Events[i])
		buf = append(buf, '\n')
	}
	f, err := os.OpenFile(filepath.Join(d.dir, "events.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func TestExporterRecoversWhenDirectoryReturns(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	set, m := testSettings("file")
	cfg := fastRetry()
	cfg.Circuit = CircuitConfig{FailureThreshold: 3, OpenDuration: 20 * time.Millisecond}
	e := NewExporter(set, &dirSink{dir: dir}, cfg)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for i := 0; i < 20; i++ {
		b := testBatch(3)
		for _, ev := range b.Events {
			want = append(want, ev.Seq)
		}
		if err := e.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for metricValue(t, m, "snakepipe_sink_circuit_open", "sink", "test/file") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("circuit never opened while the directory was gone")
		}
		time.Sleep(time.Millisecond)
	}
	if got := metricValue(t, m, "snakepipe_sink_failed_total", "sink", "test/file", "reason", "transient"); got < 3 {
		t.Errorf("failed{transient} = %v, want >= 3", got)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	shutdown(t, e)
	f, err := os.Open(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadEventsJSON(f)
	if err != nil {
		t.Fatalf("corrupted output: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("file holds %d events, want %d (each exactly once)", len(got), len(want))
	}
	seen := map[uint64]bool{}
	for i := range got {
		seen[uint64(got[i].TimestampNs)] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("event %d missing from the file", w)
		}
	}
	if got := metricValue(t, m, "snakepipe_sink_circuit_open", "sink", "test/file"); got != 0 {
		t.Errorf("circuit still open after recovery")
	}
	if got := metricValue(t, m, "snakepipe_sink_events_written_total", "sink", "test/file"); got != float64(len(want)) {
		t.Errorf("written = %v, want %d", got, len(want))
	}
}
