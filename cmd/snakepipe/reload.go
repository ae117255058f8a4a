package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/catalog"
	"github.com/snakepipe/snakepipe/control"
	"github.com/snakepipe/snakepipe/ingest"
	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/plugins"
)

// Config reload (docs/operations.md#config-reload): the new config is
// loaded and validated by the caller's loader (the one `run` used), then
// everything that can fail is built first — the catalog, the new pipeline
// graph, started — so a failure changes nothing. Only then is it committed:
// the catalog pointer is swapped, the Switch in front of the graph moves
// ingest to the new graph, and the old graph is shut down, which drains what
// it already accepted to the sinks. Worker streams never notice.

// Reload results, the result label of snakepipe_config_reloads_total.
var (
	// ErrConfigInvalid: the new config did not load or validate; nothing
	// changed.
	ErrConfigInvalid = control.ErrConfigInvalid
	// ErrReloadFailed: the new config is valid but could not be applied
	// (a sink or stage failed to build or start); nothing changed.
	ErrReloadFailed = control.ErrConfigNotApplied
	// ErrNotRunning: the service is not started or is shutting down.
	ErrNotRunning = errors.New("service is not running")
)

type reloadMetrics struct {
	ok, invalid, failed *pipeline.Counter
	lastSuccess         *pipeline.Gauge // unix seconds of the last successful (re)load
	lastOK              *pipeline.Gauge // 1 when the last reload succeeded
}

func newReloadMetrics(m *pipeline.Metrics) reloadMetrics {
	const help = "Config reloads (SIGHUP or config file change), by result: ok, invalid (refused), failed (valid but could not be applied)."
	r := reloadMetrics{
		ok:      m.Counter("snakepipe_config_reloads_total", help, pipeline.L("result", "ok")...),
		invalid: m.Counter("snakepipe_config_reloads_total", help, pipeline.L("result", "invalid")...),
		failed:  m.Counter("snakepipe_config_reloads_total", help, pipeline.L("result", "failed")...),
		lastSuccess: m.Gauge("snakepipe_config_last_reload_success_timestamp_seconds",
			"When the running config was loaded: start, or the last successful reload (unix seconds)."),
		lastOK: m.Gauge("snakepipe_config_last_reload_successful", "1 when the last config reload (or the start) succeeded, 0 when it was refused or failed."),
	}
	r.lastOK.Set(1)
	return r
}

// catalogRef is the catalog ingest checks against and wasm patches are
// validated by; a reload swaps it. Every call loads the current catalog.
type catalogRef struct {
	p atomic.Pointer[catalog.Catalog]
}

var (
	_ ingest.Checker         = (*catalogRef)(nil)
	_ plugins.PatchValidator = (*catalogRef)(nil)
)

func newCatalogRef(c *catalog.Catalog) *catalogRef {
	r := &catalogRef{}
	r.p.Store(c)
	return r
}

func (r *catalogRef) Check(ev *pipeline.Event) (ingest.Fixes, error) { return r.p.Load().Check(ev) }

func (r *catalogRef) LookupParts(parts []string) (string, bool) { return r.p.Load().LookupParts(parts) }

func (r *catalogRef) CheckMeasurement(event, key string, val pipeline.Value) error {
	return r.p.Load().CheckMeasurement(event, key, val)
}

func (r *catalogRef) SanitizeLabel(key, value string) (string, string, error) {
	k, v, _, err := r.p.Load().SanitizeLabel(key, value)
	return k, v, err
}

// sharedSink is one configured sink (its Exporter) and the config it was
// built from; graphs hold handles on it.
type sharedSink struct {
	cfg    SinkConfig
	shared *pipeline.SharedSink
}

// sharedSinks are a graph's sinks by id.
type sharedSinks map[pipeline.ComponentID]*sharedSink

func sameSinkConfig(a, b SinkConfig) bool {
	return reflect.DeepEqual(a.Sink, b.Sink) && reflect.DeepEqual(a.Exporter, b.Exporter)
}

// buildGraph creates (does not start) the pipeline graph of cfg. Sinks of
// prev whose config is unchanged are reused, not created again; the others
// are created and wrapped in an Exporter. It returns the graph's sinks for
// the next reload.
func (s *Service) buildGraph(ctx context.Context, cfg *Config, prev sharedSinks) (*pipeline.Graph, sharedSinks, error) {
	var g *pipeline.Graph
	fac := builtinFactories(s.stderr, s.plugins,
		plugins.WithValidator(s.catalog),
		plugins.WithDeadLetters(plugins.DeadLettersFunc(func(ctx context.Context, id pipeline.ComponentID, b *pipeline.Batch, cause error) error {
			return g.DeadLetter(ctx, id, b, cause) // stages run only after Start, when g is set
		})))
	next := sharedSinks{}
	g, err := pipeline.NewGraph(ctx, pipeline.GraphSettings{
		Logger:  s.log.Named("pipeline"),
		Metrics: s.metrics,
		ReuseSink: func(set pipeline.Settings) pipeline.Sink {
			old, ok := prev[set.ID]
			if !ok || !sameSinkConfig(old.cfg, cfg.Sinks[set.ID]) {
				return nil
			}
			h, ok := old.shared.Acquire()
			if !ok {
				return nil
			}
			next[set.ID] = old
			return h
		},
		WrapSink: func(set pipeline.Settings, sk pipeline.Sink) (pipeline.Sink, error) {
			sc := cfg.Sinks[set.ID]
			shared := pipeline.NewSharedSink(pipeline.NewExporter(set, sk, sc.Exporter))
			h, _ := shared.Acquire() // a new SharedSink always has room
			next[set.ID] = &sharedSink{cfg: sc, shared: shared}
			return h, nil
		},
	}, fac, cfg.Graph())
	if err != nil {
		return nil, nil, err
	}
	return g, next, nil
}

// currentGraph is the graph as a part of Start and Shutdown: whichever
// graph is current when they run (s.mu is held).
type currentGraph struct{ s *Service }

func (c currentGraph) Start(ctx context.Context) error    { return c.s.graph.Start(ctx) }
func (c currentGraph) Shutdown(ctx context.Context) error { return c.s.graph.Shutdown(ctx) }

// Reload loads a new config with load (which validates it, as `run` does)
// and applies what changed: catalog, policy base, log level, stages, sinks,
// pipelines and wasm plugins. Settings that cannot change while running are
// logged as needing a restart and keep their running values. An invalid
// config (ErrConfigInvalid) or one that cannot be applied (ErrReloadFailed)
// changes nothing. Reloads are serialized with each other and with Start
// and Shutdown; ctx bounds building the new graph, ServiceOptions.DrainTimeout
// draining the old one.
func (s *Service) Reload(ctx context.Context, load func() (*Config, error)) error {
	_, err := s.ReloadReport(ctx, load)
	return err
}

// ReloadReport is Reload, and says what a successful reload changed (what
// Reload logs).
func (s *Service) ReloadReport(ctx context.Context, load func() (*Config, error)) (control.ConfigReload, error) {
	var rep control.ConfigReload
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || len(s.started) == 0 || !s.ready.Load() {
		return rep, ErrNotRunning
	}
	next, err := load()
	if err != nil {
		s.reloads.invalid.Inc()
		s.reloads.lastOK.Set(0)
		problems := pipeline.FlattenErrors(err)
		for _, p := range problems {
			s.log.Error("config reload refused: " + p.Error())
		}
		s.log.Error("config reload refused; the running config stays", "problems", len(problems))
		return rep, fmt.Errorf("%w: %w", ErrConfigInvalid, err)
	}
	restart := restartOnlyChanges(s.cfg, next)
	for _, key := range restart {
		s.log.Warn("config reload: " + key + " changed but needs a restart; the running value stays")
	}
	next = keepRestartOnly(s.cfg, next)

	// Build everything that can fail before changing anything.
	var cat *catalog.Catalog
	if !reflect.DeepEqual(s.cfg.Catalog, next.Catalog) {
		if cat, err = catalog.New(next.Catalog); err != nil {
			s.reloads.invalid.Inc()
			s.reloads.lastOK.Set(0)
			s.log.Error("config reload refused; the running config stays", "error", err)
			return rep, fmt.Errorf("%w: catalog: %w", ErrConfigInvalid, err)
		}
	}
	graphDiff := diffGraph(s.cfg, next)
	var (
		g     *pipeline.Graph
		sinks sharedSinks
	)
	if len(graphDiff) > 0 {
		g, sinks, err = s.buildGraph(ctx, next, s.sinks)
		if err == nil {
			err = g.Start(ctx) // on failure it shuts down what it created
		}
		if err != nil {
			s.reloads.failed.Inc()
			s.reloads.lastOK.Set(0)
			s.log.Error("config reload failed; the running config stays", "error", err)
			return rep, fmt.Errorf("%w: %w", ErrReloadFailed, err)
		}
	}

	// Commit.
	var changed []string
	if cat != nil {
		s.catalog.p.Store(cat)
		changed = append(changed, "catalog")
	}
	if !reflect.DeepEqual(s.cfg.Policy, next.Policy) {
		// Runtime changes (admin API) are layered over the base and survive.
		if _, err := s.store.SetBase(next.Policy); err != nil {
			s.log.Warn("config reload: policy", "error", err)
		}
		changed = append(changed, "policy")
	}
	if s.cfg.Log.Level != next.Log.Level {
		s.log.SetLevel(hclog.LevelFromString(next.Log.Level))
		changed = append(changed, "log.level")
	}
	if s.cfg.Runtime != next.Runtime {
		if s.applyRuntime != nil {
			s.applyRuntime(next.Runtime)
		}
		changed = append(changed, "runtime")
	}
	if g != nil {
		old := s.graph
		s.input.Swap(g)
		s.graph, s.sinks = g, sinks
		changed = append(changed, graphDiff...)
		// The old graph drains what it accepted; sinks the new graph
		// shares stay open. The drain gets its own budget: a slow build
		// (wasm compiles) must not leave it none, or queued events would
		// be dropped.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.drainTimeout)
		defer cancel()
		if err := old.Shutdown(dctx); err != nil {
			s.log.Error("config reload: draining the previous pipelines", "error", err)
		}
	}
	for _, w := range next.Warnings {
		s.log.Warn("config: " + w)
	}
	s.cfg = next
	s.reloads.ok.Inc()
	s.reloads.lastOK.Set(1)
	s.reloads.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
	slices.Sort(changed)
	slices.Sort(restart)
	if len(changed) == 0 {
		s.log.Info("config reloaded: nothing changed")
	} else {
		s.log.Info("config reloaded", "changed", strings.Join(changed, ", "))
	}
	return control.ConfigReload{Changed: changed, NeedsRestart: restart}, nil
}

// restartOnlyChanges lists the keys that differ between the running and
// the new config but cannot change while running: listeners and stream
// limits (ingest), the admin API, the plugin host, the log format.
func restartOnlyChanges(cur, next *Config) []string {
	var out []string
	out = append(out, changedFields("ingest", cur.Ingest, next.Ingest)...)
	out = append(out, changedFields("admin", cur.Admin, next.Admin)...)
	out = append(out, changedFields("plugins", cur.Plugins, next.Plugins)...)
	if cur.Log.Format != next.Log.Format {
		out = append(out, "log.format")
	}
	return out
}

// keepRestartOnly returns next with the running values of the settings
// that need a restart, so the running config stays a true description.
func keepRestartOnly(cur, next *Config) *Config {
	out := *next
	out.Ingest, out.Admin, out.Plugins = cur.Ingest, cur.Admin, cur.Plugins
	out.Log.Format = cur.Log.Format
	return &out
}

// changedFields compares two structs field by field and returns
// prefix.<koanf key> of each field that differs.
func changedFields(prefix string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if name == "" || name == "-" {
			name = strings.ToLower(f.Name)
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, prefix+"."+name)
		}
	}
	return out
}

// diffGraph describes how the graph parts of two configs differ
// ("stages.sample/x", "sinks.file/b", "pipelines.default"); empty when the
// running graph can stay.
func diffGraph(cur, next *Config) []string {
	var out []string
	out = append(out, diffMap("stages", byName(cur.Stages), byName(next.Stages), func(a, b pipeline.Config) bool { return reflect.DeepEqual(a, b) })...)
	out = append(out, diffMap("sinks", byName(cur.Sinks), byName(next.Sinks), sameSinkConfig)...)
	out = append(out, diffMap("pipelines", cur.Pipelines, next.Pipelines, func(a, b pipeline.PipelineConfig) bool { return reflect.DeepEqual(a, b) })...)
	return out
}

func byName[V any](m map[pipeline.ComponentID]V) map[string]V {
	out := make(map[string]V, len(m))
	for id, v := range m {
		out[id.String()] = v
	}
	return out
}

// diffMap returns prefix.<key> of each key added, removed or changed.
func diffMap[V any](prefix string, a, b map[string]V, same func(V, V) bool) []string {
	var out []string
	for k, va := range a {
		if vb, ok := b[k]; !ok || !same(va, vb) {
			out = append(out, prefix+"."+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, prefix+"."+k)
		}
	}
	slices.Sort(out)
	return out
}

// configWatch triggers reloads: on every hangup signal, and when the
// config file's content changes (polled, since editors replace files in
// ways a watch on one inode misses).
type configWatch struct {
	path     string        // "" = the built-in config: only signals reload
	interval time.Duration // how often the file is polled
	hangup   <-chan os.Signal
	log      hclog.Logger

	mu   sync.Mutex      // guards last: loadNow runs on an admin API goroutine
	last fileFingerprint // the content last loaded or seen
}

// fileFingerprint identifies a config file's content by its hash, so
// touching the file does not reload.
//
// Why no stat shortcut (same mtime and size: skip reading): an edit that
// keeps the size within one mtime tick (coarse-timestamp filesystems, or
// a tool that restores the mtime) would be missed for good. A config
// file is a few KiB: reading and hashing it once per poll costs
// microseconds.
type fileFingerprint struct {
	sum [sha256.Size]byte
	err string // why the file could not be read ("" when it could)
}

func fingerprint(path string, prev fileFingerprint) fileFingerprint {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileFingerprint{err: err.Error(), sum: prev.sum}
	}
	return fileFingerprint{sum: sha256.Sum256(data)}
}

// newConfigWatch takes the file's fingerprint now: call it before the
// config is loaded, so a change made meanwhile still triggers a reload.
func newConfigWatch(path string, interval time.Duration, hangup <-chan os.Signal, log hclog.Logger) *configWatch {
	w := &configWatch{path: path, interval: interval, hangup: hangup, log: log}
	if path != "" {
		w.last = fingerprint(path, fileFingerprint{})
	}
	return w
}

// loadNow wraps load for a reload the watch did not start (the admin API's
// ReloadConfig): the file's current content is then the one loaded, so the
// next poll does not reload it a second time.
func (w *configWatch) loadNow(load func() (*Config, error)) func() (*Config, error) {
	return func() (*Config, error) {
		if w.path != "" {
			w.mu.Lock()
			w.last = fingerprint(w.path, w.last)
			w.mu.Unlock()
		}
		return load()
	}
}

// run calls reload until ctx ends. Reloads run one at a time, here.
func (w *configWatch) run(ctx context.Context, reload func(reason string)) {
	var tick <-chan time.Time
	if w.path != "" && w.interval > 0 {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.hangup:
			if w.path != "" {
				w.mu.Lock()
				w.last = fingerprint(w.path, w.last) // this content needs no second reload
				w.mu.Unlock()
			}
			reload("SIGHUP")
		case <-tick:
			w.mu.Lock()
			prev := w.last
			fp := fingerprint(w.path, prev)
			w.last = fp
			w.mu.Unlock()
			if fp.err != "" {
				if fp.err != prev.err {
					w.log.Warn("config file unreadable; keeping the running config", "path", w.path, "error", fp.err)
				}
				continue
			}
			if fp.sum != prev.sum {
				reload("config file changed")
			}
		}
	}
}
