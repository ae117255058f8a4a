package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
)

// TypeName is the stage type ("wasm/<name>" ids).
const TypeName = "wasm"

// DeadLetters delivers batches a wasm stage could not process to the sink
// named in the stage's `dead_letter` (a sink id). The graph implements it:
// look the sink up and Write the batch (it must not keep b). cause says
// why. An error is counted (snakepipe_plugin_dead_letter_failed_total) and
// the events are dropped.
type DeadLetters interface {
	DeadLetter(ctx context.Context, sink pipeline.ComponentID, b *pipeline.Batch, cause error) error
}

// DeadLettersFunc adapts a function to DeadLetters.
type DeadLettersFunc func(ctx context.Context, sink pipeline.ComponentID, b *pipeline.Batch, cause error) error

// DeadLetter calls f.
func (f DeadLettersFunc) DeadLetter(ctx context.Context, sink pipeline.ComponentID, b *pipeline.Batch, cause error) error {
	return f(ctx, sink, b, cause)
}

// Option configures the stage factory.
type Option func(*factoryOptions)

type factoryOptions struct {
	validator PatchValidator
	dead      DeadLetters
}

// WithValidator sets the validator of enrich patches (the catalog); the
// default is BasicValidator.
func WithValidator(v PatchValidator) Option { return func(o *factoryOptions) { o.validator = v } }

// WithDeadLetters sets where on_error: dead_letter sends batches. Without
// it, such batches are dropped and counted as failed dead letters.
func WithDeadLetters(d DeadLetters) Option { return func(o *factoryOptions) { o.dead = d } }

// NewFactory returns the `wasm` stage factory running plugins in host.
func NewFactory(host *Host, opts ...Option) pipeline.StageFactory {
	o := factoryOptions{validator: BasicValidator{}}
	for _, opt := range opts {
		opt(&o)
	}
	return pipeline.NewStageFactory(TypeName,
		func() pipeline.Config { return DefaultConfig() },
		func(ctx context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Stage, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("wasm stage: config is %T, want *plugins.Config", cfg)
			}
			return NewStage(ctx, host, set, c, o.validator, o.dead)
		})
}

// monoEpoch is a fixed point for batch latencies: time.Since(monoEpoch)
// reads only the monotonic clock, where time.Now also reads the wall clock
// (one clock read less per batch, which shows at small batches).
var monoEpoch = time.Now()

// ErrStageClosed is the cause given to on_error for batches that arrive
// after Shutdown.
var ErrStageClosed = errors.New("wasm stage shut down")

// Stage is the `wasm` pipeline stage: one plugin, its live version and the
// failure policy. It implements pipeline.Stage and is safe for concurrent
// Process calls (up to `instances` run in parallel; more wait).
type Stage struct {
	host      *Host
	name      string
	path      string
	cfg       Config
	kind      Kind
	cfgFrame  []byte
	minCap    uint32
	highWater int
	deadline  time.Duration
	log       hclog.Logger
	plog      *pluginLog
	validator PatchValidator
	dead      DeadLetters
	deadSink  pipeline.ComponentID
	selfTest  []pipeline.Event
	pages     uint64
	m         stageMetrics
	breaker   breaker

	cur      atomic.Pointer[version]
	swapMu   sync.Mutex
	seqKey   string // pipeline and name: the host's version sequence (Host.nextSeq)
	closed   bool   // under swapMu: Shutdown ran; no more versions
	lastFail atomic.Int64
	shutOnce sync.Once
}

var _ pipeline.Stage = (*Stage)(nil)

// NewStage loads the plugin at cfg.Path and returns the stage. The first
// version must load; otherwise the error says what is wrong with it.
func NewStage(ctx context.Context, host *Host, set pipeline.Settings, cfg *Config, v PatchValidator, dead DeadLetters) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if v == nil {
		v = BasicValidator{}
	}
	c := *cfg
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = host.cfg.MemoryLimitPages
	}
	if c.Instances == 0 {
		c.Instances = min(runtime.GOMAXPROCS(0), hardMaxInstances)
	}
	kind, _ := ParseKind(c.Kind)
	frame, _ := EncodeConfig(c.Config)
	self, _ := c.SelfTest.load()
	logger := set.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	name := set.ID.String()
	if name == "" {
		name = TypeName
	}
	s := &Stage{
		host: host, name: name, path: c.Path, cfg: c, kind: kind, cfgFrame: frame,
		minCap: uint32(c.minCap()), highWater: int(c.MemoryLimitPages) * pageSize * 3 / 4,
		log: logger, validator: v, dead: dead, selfTest: self,
		pages: uint64(c.MemoryLimitPages) * uint64(c.Instances),
	}
	if !c.Trusted {
		s.deadline = c.Deadline
	}
	if c.OnError == OnErrorDeadLetter {
		s.deadSink, _ = pipeline.ParseComponentID(c.DeadLetter)
	}
	s.m = newStageMetrics(set.Metrics, name, set.Pipeline)
	s.seqKey = set.Pipeline + "\x00" + name
	s.plog = newPluginLog(logger.Named("guest"), s.m.logDropped)
	s.breaker.now = time.Now
	s.breaker.onChange = func(open bool) {
		if open {
			s.m.breakerOpen.Set(1)
			s.log.Error("plugin disabled after repeated failures", "consecutive_failures", breakerThreshold, "disabled_behavior", s.cfg.DisabledBehavior)
		} else {
			s.m.breakerOpen.Set(0)
			s.log.Info("plugin enabled again")
		}
	}
	if _, err := s.Reload(ctx); err != nil {
		return nil, err
	}
	if err := host.register(s, s.pages); err != nil {
		s.retireCurrent()
		return nil, fmt.Errorf("memory_limit_pages: %w", err)
	}
	return s, nil
}

// Start implements pipeline.Component.
func (s *Stage) Start(context.Context) error { return nil }

// Shutdown stops using the plugin: batches already running finish, the
// version is closed when the last one is done. Safe to call twice.
func (s *Stage) Shutdown(context.Context) error {
	s.shutOnce.Do(func() {
		s.host.unregister(s, s.pages)
		s.swapMu.Lock()
		s.closed = true // a reload racing the shutdown must not bring a version back
		s.retireCurrent()
		s.swapMu.Unlock()
	})
	return nil
}

func (s *Stage) retireCurrent() {
	if old := s.cur.Swap(nil); old != nil {
		old.retire()
	}
}

// Current returns the live version (false after Shutdown).
func (s *Stage) Current() (Version, bool) {
	if v := s.cur.Load(); v != nil {
		return v.info, true
	}
	return Version{}, false
}

// Reload reads the plugin file and swaps the new version in between
// batches (docs/plugin-abi.md §10). On error the running version stays.
func (s *Stage) Reload(ctx context.Context) (Version, error) {
	bin, err := readModule(s.path, s.host.cfg.MaxModuleBytes)
	if err != nil {
		s.m.reloadFailed.Inc()
		return Version{}, fmt.Errorf("plugin %s: %w", s.name, err)
	}
	return s.load(ctx, bin)
}

// readModule reads a .wasm file, refusing it above max bytes.
func readModule(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only: a close error changes nothing
	bin, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(bin) > max {
		return nil, fmt.Errorf("%w: %s is larger than plugins.max_module_bytes (%d)", ErrTooLarge, path, max)
	}
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, fmt.Errorf("%w: %s does not start with the Wasm magic \\0asm (is it a .wat text file or a native binary?)", ErrNotWasm, path)
	}
	return bin, nil
}

// load runs the swap sequence for bin.
func (s *Stage) load(ctx context.Context, bin []byte) (Version, error) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if s.closed {
		// A plugin reload (ctl, file watch) that copied the stage list
		// before a config reload shut this stage down.
		return Version{}, fmt.Errorf("plugin %s: %w", s.name, ErrStageClosed)
	}
	info, err := s.prepare(ctx, bin)
	if err != nil {
		s.m.reloadFailed.Inc()
		if s.cur.Load() != nil {
			s.log.Error("new plugin version refused; the running version stays", "path", s.path, "error", err)
		}
		return Version{}, fmt.Errorf("plugin %s: %w", s.name, err)
	}
	return info, nil
}

func (s *Stage) prepare(ctx context.Context, bin []byte) (Version, error) {
	mod, err := s.host.compile(ctx, bin, s.cfg.Trusted)
	if err != nil {
		return Version{}, fmt.Errorf("compile: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.host.release(context.Background(), mod)
		}
	}()
	if mod.checkErr != nil {
		return Version{}, mod.checkErr
	}
	kind, err := resolveKind(mod.kinds, s.kind, mod.meta)
	if err != nil {
		return Version{}, err
	}
	if mod.minPages > s.cfg.MemoryLimitPages {
		return Version{}, fmt.Errorf("memory: the module needs %d pages at start, over memory_limit_pages %d", mod.minPages, s.cfg.MemoryLimitPages)
	}
	probe, err := newInstance(ctx, mod, kind, s.plog, s.cfg.MemoryLimitPages, s.minCap, s.cfgFrame)
	if err != nil {
		return Version{}, fmt.Errorf("probe: %w", err)
	}
	fields := probe.fields
	if len(s.selfTest) > 0 {
		b := &pipeline.Batch{Events: append([]pipeline.Event(nil), s.selfTest...)}
		_, fk, err := s.runOn(probe, kind, b)
		probe.close(err == nil, s.cfg.Trusted)
		probe = nil // its state saw the self-test; serve traffic from fresh instances
		if err != nil {
			return Version{}, fmt.Errorf("self-test batch failed (%s): %w", fk, err)
		}
	}
	info := Version{Plugin: s.name, Seq: s.host.nextSeq(s.seqKey), Path: s.path, SHA256: mod.sha, Kind: kind, Meta: mod.meta, Fields: fields, LoadedAt: time.Now()}
	nv := newVersion(s, info, mod, probe)
	ok = true
	old := s.cur.Swap(nv)
	s.breaker.reset()
	s.m.reloadOK.Inc()
	s.m.version.Set(float64(info.Seq))
	if old != nil {
		old.retire()
	}
	args := []any{"seq", info.Seq, "sha256", info.SHA256[:12], "kind", kind, "fields", fields.String(), "path", s.path}
	if info.Meta != nil {
		args = append(args, "meta_name", info.Meta.Name, "meta_version", info.Meta.Version)
	}
	s.log.Info("plugin version live", args...)
	return info, nil
}

func (s *Stage) instantiate(ctx context.Context, v *version) (*instance, error) {
	return newInstance(ctx, v.mod, v.info.Kind, s.plog, s.cfg.MemoryLimitPages, s.minCap, s.cfgFrame)
}

func (s *Stage) notePages(p uint32) {
	if float64(p) > s.m.memPages.Load() {
		s.m.memPages.Set(float64(p))
	}
}

// acquire returns the live version with a batch reference held, or nil
// after Shutdown.
func (s *Stage) acquire() *version {
	for {
		v := s.cur.Load()
		if v == nil {
			return nil
		}
		v.refs.Add(1)
		if s.cur.Load() == v {
			return v
		}
		v.release()
	}
}

// Process implements pipeline.Stage.
func (s *Stage) Process(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	n := b.Len()
	if n == 0 {
		return b, nil
	}
	if !s.breaker.allow() {
		s.m.disabledBatches.Inc()
		if s.cfg.DisabledBehavior == DisabledDrop {
			s.m.dropped.Add(uint64(n))
			b.Events = b.Events[:0]
		}
		return b, nil
	}
	v := s.acquire()
	if v == nil {
		return s.onError(ctx, b, ErrStageClosed), nil
	}
	start := time.Since(monoEpoch)
	inst, err := v.get(ctx)
	if err != nil {
		v.release()
		if ctx.Err() != nil {
			return b, fmt.Errorf("wasm stage %s: %w", s.name, err)
		}
		return s.failed(ctx, b, failInstantiate, err), nil
	}
	res, fk, err := s.runOn(inst, v.info.Kind, b)
	v.put(inst, err != nil)
	v.release()
	s.m.latency.Observe((time.Since(monoEpoch) - start).Seconds())
	if err != nil {
		return s.failed(ctx, b, fk, err), nil
	}
	s.breaker.success()
	s.lastFail.Store(0)
	s.m.batches.Inc()
	s.m.eventsIn.Add(uint64(n))
	s.m.eventsOut.Add(uint64(b.Len()))
	s.m.dropped.Add(uint64(res.dropped))
	if res.patched > 0 { // never for a filter: skip the atomic adds
		s.m.patched.Add(uint64(res.patched))
	}
	if res.rejected > 0 {
		s.m.rejected.Add(uint64(res.rejected))
	}
	if res.oversize > 0 {
		s.m.oversize.Add(uint64(res.oversize))
		s.countOnError(res.oversize)
	}
	if len(res.dead) > 0 {
		s.deadLetter(ctx, &pipeline.Batch{Events: res.dead}, fmt.Errorf("event larger than max_event_bytes (%d)", s.cfg.MaxEventBytes))
	}
	return b, nil
}

// failed counts a failure and applies on_error to b.
func (s *Stage) failed(ctx context.Context, b *pipeline.Batch, fk failKind, err error) *pipeline.Batch {
	s.m.failures[fk].Inc()
	if s.lastFail.Swap(int64(fk)) == 0 { // first failure after a success: say why, once
		s.log.Warn("plugin failed a batch", "kind", fk.String(), "on_error", s.cfg.OnError, "error", err)
	}
	s.breaker.failure()
	return s.onError(ctx, b, fmt.Errorf("%s: %w", fk, err))
}

func (s *Stage) countOnError(n int) {
	switch s.cfg.OnError {
	case OnErrorPass:
		s.m.onErrorPass.Add(uint64(n))
	case OnErrorDrop:
		s.m.onErrorDrop.Add(uint64(n))
	default:
		s.m.onErrorDead.Add(uint64(n))
	}
}

func (s *Stage) onError(ctx context.Context, b *pipeline.Batch, cause error) *pipeline.Batch {
	n := b.Len()
	s.countOnError(n)
	switch s.cfg.OnError {
	case OnErrorPass:
		return b
	case OnErrorDrop:
		b.Events = b.Events[:0]
		return b
	default:
		s.deadLetter(ctx, b, cause)
		return &pipeline.Batch{}
	}
}

func (s *Stage) deadLetter(ctx context.Context, b *pipeline.Batch, cause error) {
	if s.dead == nil {
		s.m.deadFailed.Add(uint64(b.Len()))
		return
	}
	if err := s.dead.DeadLetter(ctx, s.deadSink, b, cause); err != nil {
		s.m.deadFailed.Add(uint64(b.Len()))
		s.log.Debug("dead-letter write failed; events dropped", "sink", s.deadSink.String(), "error", err)
	}
}

// Verdict codes in instance.verdicts.
const (
	vDrop     = 0
	vKeep     = 1
	vPatched  = 2
	vOversize = 3
)

type runResult struct {
	dropped, patched, rejected, oversize int
	dead                                 []pipeline.Event
}

// runOn runs b through inst (all chunks) and, only if every call
// succeeded, applies the result to b in place.
func (s *Stage) runOn(inst *instance, kind Kind, b *pipeline.Batch) (runResult, failKind, error) {
	var res runResult
	n := len(b.Events)
	if cap(inst.verdicts) < n {
		inst.verdicts = make([]byte, n)
	}
	verd := inst.verdicts[:n]
	var pend []pipeline.Event
	maxEv := s.cfg.MaxEventBytes
	for i := 0; i < n; {
		view, ok := inst.mem.Read(inst.in, inst.cap_)
		if !ok {
			return res, failBadOutput, fmt.Errorf("%w: the input buffer at %#x no longer fits in memory", ErrBadOutput, inst.in)
		}
		// The chunk's events are b.Events[first:i], except the oversize
		// ones: idx lists the encoded events' indexes, built only once an
		// oversize event leaves a gap (sparse); cnt counts them.
		idx := inst.idx[:0]
		sparse := false
		off, cnt := 0, 0
		first := i
		for i < n {
			// One pass: encode straight into the view until an event is
			// refused; only that one is measured, to tell "ends this
			// chunk" from "oversize".
			o, k := encodeRecords(view[off:], b.Events[i:], maxEv, inst.fields, &inst.origins)
			if sparse {
				for j := range k {
					idx = append(idx, int32(i+j))
				}
			}
			off, i, cnt = off+o, i+k, cnt+k
			if i == n {
				break
			}
			if full, ok := encodedSize(&b.Events[i], inst.fields, &inst.origins); ok && full <= maxEv {
				break
			}
			if !sparse {
				sparse = true
				for x := first; x < i; x++ {
					idx = append(idx, int32(x))
				}
			}
			verd[i] = vOversize
			i++
		}
		inst.idx = idx
		if cnt == 0 {
			continue
		}
		out, fk, err := inst.invoke(s.deadline, uint32(cnt), uint32(off))
		if err != nil {
			return res, fk, err
		}
		if kind == KindFilter {
			if err := checkVerdicts(out, cnt); err != nil {
				return res, failBadOutput, err
			}
			if !sparse {
				copy(verd[first:i], out)
				continue
			}
			for j, x := range idx {
				verd[x] = out[j]
			}
			continue
		}
		// The per-event allowance keeps the limit meaningful for small
		// records: a plugin that declares few field groups (snk_fields) is
		// sent far fewer bytes than the patches it may return.
		if limit := 2*off + enrichResultPerEvent*cnt + 65536; len(out) > limit {
			return res, failBadOutput, fmt.Errorf("%w: enrich result is %d bytes for %d events of %d input bytes (limit 2×input + %d×events + 64KiB = %d)",
				ErrBadOutput, len(out), cnt, off, enrichResultPerEvent, limit)
		}
		acts, err := decodeActions(out, cnt, inst.acts)
		inst.acts = acts
		if err != nil {
			return res, failBadOutput, err
		}
		for j := range cnt {
			x := first + j // the chunk's j-th record's event
			if sparse {
				x = int(idx[j])
			}
			switch acts[j].op {
			case opUnchanged:
				verd[x] = vKeep
			case opDrop:
				verd[x] = vDrop
			default:
				e := b.Events[x]
				if err := applyAction(&e, &acts[j], s.validator); err != nil {
					res.rejected++
					verd[x] = vKeep
					continue
				}
				verd[x] = vPatched
				pend = append(pend, e)
			}
		}
	}
	b.Events = compact(b.Events[:n], verd, pend, s.cfg.OnError, &res)
	return res, 0, nil
}

type stageMetrics struct {
	batches, eventsIn, eventsOut, dropped, patched, rejected, oversize *pipeline.Counter
	failures                                                           [numFailKinds]*pipeline.Counter
	onErrorPass, onErrorDrop, onErrorDead, deadFailed                  *pipeline.Counter
	disabledBatches, restartsFailure, restartsRecycle                  *pipeline.Counter
	reloadOK, reloadFailed, logDropped                                 *pipeline.Counter
	breakerOpen, memPages, version                                     *pipeline.Gauge
	latency                                                            *pipeline.Histogram
}

func newStageMetrics(m *pipeline.Metrics, plugin, pipe string) stageMetrics {
	l := func(kv ...string) []pipeline.Label {
		return pipeline.L(append([]string{"plugin", plugin, "pipeline", pipe}, kv...)...)
	}
	c := func(name, help string, kv ...string) *pipeline.Counter {
		return m.Counter(name, help, l(kv...)...)
	}
	var sm stageMetrics
	sm.batches = c("snakepipe_plugin_batches_total", "Batches a wasm plugin processed successfully.")
	sm.eventsIn = c("snakepipe_plugin_events_in_total", "Events in successfully processed batches.")
	sm.eventsOut = c("snakepipe_plugin_events_out_total", "Events a wasm plugin let through.")
	sm.dropped = c("snakepipe_plugin_events_dropped_total", "Events a wasm plugin dropped (verdict, drop action, or disabled_behavior drop).")
	sm.patched = c("snakepipe_plugin_events_patched_total", "Events a wasm enricher changed.")
	sm.rejected = c("snakepipe_plugin_patches_rejected_total", "Enrich actions refused by validation (event passed unchanged).")
	sm.oversize = c("snakepipe_plugin_oversize_events_total", "Events larger than max_event_bytes, handled by on_error.")
	for k := failTrap; k < numFailKinds; k++ {
		sm.failures[k] = c("snakepipe_plugin_failures_total", "Failed plugin batches by kind.", "kind", k.String())
	}
	sm.onErrorPass = c("snakepipe_plugin_on_error_events_total", "Events handled by on_error.", "action", OnErrorPass)
	sm.onErrorDrop = c("snakepipe_plugin_on_error_events_total", "Events handled by on_error.", "action", OnErrorDrop)
	sm.onErrorDead = c("snakepipe_plugin_on_error_events_total", "Events handled by on_error.", "action", OnErrorDeadLetter)
	sm.deadFailed = c("snakepipe_plugin_dead_letter_failed_total", "Events that could not be written to the dead-letter sink (dropped).")
	sm.disabledBatches = c("snakepipe_plugin_disabled_batches_total", "Batches that skipped the plugin while its breaker was open.")
	sm.restartsFailure = c("snakepipe_plugin_instance_restarts_total", "Instances closed and replaced.", "reason", "failure")
	sm.restartsRecycle = c("snakepipe_plugin_instance_restarts_total", "Instances closed and replaced.", "reason", "recycle")
	sm.reloadOK = c("snakepipe_plugin_reloads_total", "Plugin version loads.", "result", "ok")
	sm.reloadFailed = c("snakepipe_plugin_reloads_total", "Plugin version loads.", "result", "failed")
	sm.logDropped = c("snakepipe_plugin_log_lines_dropped_total", "Guest log lines dropped by the rate limit.")
	sm.breakerOpen = m.Gauge("snakepipe_plugin_breaker_open", "1 while the plugin is disabled by its breaker.", l()...)
	sm.memPages = m.Gauge("snakepipe_plugin_memory_pages", "High-water mark of an instance's linear memory, in 64 KiB pages.", l()...)
	sm.version = m.Gauge("snakepipe_plugin_version_seq", "Sequence number of the live plugin version.", l()...)
	sm.latency = m.Histogram("snakepipe_plugin_batch_seconds", "Time to run one batch through a plugin.",
		pipeline.ExponentialBuckets(1e-6, 4, 10), l()...)
	return sm
}
