package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
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

// Service is one running snakepipe: ingest → host-side policy enforcement →
// tap → the pipeline graph, plus the admin API. `run`, `demo` and the
// integration tests all build it the same way.
type Service struct {
	log     hclog.Logger
	metrics *pipeline.Metrics
	cfg     *Config

	catalog *catalogRef // swapped by a reload
	store   *control.Store
	input   *pipeline.Switch // what ingest feeds; a reload swaps the graph behind it
	tap     *control.Tap
	ingest  *ingest.Server
	admin   *control.Admin // nil when admin.listen is ""
	plugins *plugins.Host
	stderr  io.Writer
	// applyRuntime is ServiceOptions.ApplyRuntime (nil: leave the Go
	// runtime alone).
	applyRuntime func(RuntimeConfig)
	drainTimeout time.Duration // ServiceOptions.DrainTimeout

	// mu serializes reloads with each other and with Start and Shutdown;
	// it guards the fields below.
	mu      sync.Mutex
	graph   *pipeline.Graph
	sinks   sharedSinks          // the current graph's sinks, for the next reload to reuse
	started []pipeline.Component // in start order, for rollback and shutdown
	stopped bool                 // Shutdown has begun: no more reloads
	ready   atomic.Bool          // Start finished and Shutdown has not begun

	reloads reloadMetrics
}

// ServiceOptions is what NewService needs besides the config.
type ServiceOptions struct {
	Logger  hclog.Logger
	Metrics *pipeline.Metrics // nil: a new registry
	// Stderr is where the stderr sink writes: the SyncWriter the logger
	// shares (nil: discard).
	Stderr io.Writer
	// ApplyRuntime, when set, applies the runtime section (at start and
	// when a reload changes it). Only `run` sets it: tests and demo share
	// their process's collector settings.
	ApplyRuntime func(RuntimeConfig)
	// DrainTimeout bounds how long a reload waits for the previous graph
	// to deliver what it accepted (0: 30s). It is its own budget, not what
	// is left of the reload's context after building the new graph.
	DrainTimeout time.Duration
	// ConfigLoader, when set, is how the admin API's ReloadConfig loads
	// the config again: `run` sets it to its own loader (the one SIGHUP
	// uses). Nil: the admin API cannot reload the config. Building the new
	// graph is bounded by DrainTimeout, as a SIGHUP reload is by run's
	// --shutdown-timeout, not by the caller's deadline.
	ConfigLoader func() (*Config, error)
}

// NewService builds every part from a loaded config. Nothing listens until
// Start.
func NewService(ctx context.Context, cfg *Config, opts ServiceOptions) (*Service, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := opts.Metrics
	if m == nil {
		m = pipeline.NewMetrics()
	}
	s := &Service{log: log, metrics: m, cfg: cfg, stderr: opts.Stderr, reloads: newReloadMetrics(m),
		applyRuntime: opts.ApplyRuntime, drainTimeout: opts.DrainTimeout}
	if s.drainTimeout <= 0 {
		s.drainTimeout = 30 * time.Second
	}
	if s.stderr == nil {
		s.stderr = io.Discard
	}
	if s.applyRuntime != nil {
		s.applyRuntime(cfg.Runtime)
	}

	cat, err := catalog.New(cfg.Catalog)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	s.catalog = newCatalogRef(cat)
	store, err := control.NewStore(cfg.Policy, control.StoreOptions{StateFile: cfg.Admin.StateFile})
	if err != nil {
		return nil, err
	}
	s.store = store

	host, err := plugins.NewHost(cfg.Plugins, log.Named("plugins"), m)
	if err != nil {
		return nil, err
	}
	s.plugins = host
	g, sinks, err := s.buildGraph(ctx, cfg, nil)
	if err != nil {
		return nil, errors.Join(err, host.Close(ctx))
	}
	s.graph, s.sinks = g, sinks
	s.input = pipeline.NewSwitch(g)
	s.tap = control.NewTap(s.input, cfg.Admin.TapMaxEventsPerSecond)

	srv, err := ingest.New(
		pipeline.Settings{ID: pipeline.ComponentID{Type: "ingest"}, Logger: log.Named("ingest"), Metrics: m},
		cfg.Ingest,
		ingest.Deps{
			Consumer: control.NewEnforcer(store, s.tap, m),
			Checker:  s.catalog,
			Policy:   store,
		})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ingest: %w", err), g.Shutdown(ctx), host.Close(ctx))
	}
	s.ingest = srv
	store.SetSender(srv)

	if cfg.Admin.Listen != "" {
		var reloader control.ConfigReloader
		if load := opts.ConfigLoader; load != nil {
			reloader = control.ConfigReloaderFunc(func(ctx context.Context) (control.ConfigReload, error) {
				log.Info("reloading config", "reason", "admin API")
				// The reload's own budget, as for SIGHUP, not the caller's
				// deadline (ctl --timeout): a reload half done when the
				// caller gives up must still finish or fail cleanly.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.drainTimeout)
				defer cancel()
				return s.ReloadReport(rctx, load)
			})
		}
		a, err := control.NewAdmin(
			pipeline.Settings{ID: pipeline.ComponentID{Type: "admin"}, Logger: log.Named("admin"), Metrics: m},
			cfg.Admin,
			control.AdminDeps{
				Store:   store,
				Workers: func() []control.WorkerInfo { return workerInfos(srv.Workers()) },
				Metrics: m,
				Tap:     s.tap,
				Plugins: pluginManager{host},
				Config:  reloader,
				Ready:   s.readiness,
			})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("admin: %w", err), g.Shutdown(ctx), host.Close(ctx))
		}
		s.admin = a
	}
	return s, nil
}

// Start starts the graph (sinks, then stages, then pipeline workers), then
// ingest, then the admin API. If one fails, what started is shut down
// again.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := []pipeline.Component{currentGraph{s}, s.ingest}
	if s.admin != nil {
		parts = append(parts, s.admin)
	}
	for _, p := range parts {
		if err := p.Start(ctx); err != nil {
			// The parts' errors already name themselves ("ingest: listen ...").
			return errors.Join(err, s.shutdownStarted(ctx))
		}
		s.started = append(s.started, p)
	}
	for _, w := range s.cfg.Warnings {
		s.log.Warn("config: " + w)
	}
	s.ready.Store(true)
	s.reloads.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
	s.log.Info("snakepipe started", "ingest", s.IngestAddr(), "admin", s.AdminAddr(), "pipelines", s.graph.Pipelines())
	return nil
}

// readiness is /readyz: ready once every listener is up and the sinks
// have started, until shutdown begins.
func (s *Service) readiness() error {
	if !s.ready.Load() {
		return errors.New("starting or shutting down")
	}
	return nil
}

// IngestAddr is the address workers connect to (after Start).
func (s *Service) IngestAddr() string {
	if a := s.ingest.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// AdminAddr is the admin API's address, "" when it is off.
func (s *Service) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.Addr()
}

// Metrics is the service's registry.
func (s *Service) Metrics() *pipeline.Metrics { return s.metrics }

// Shutdown stops upstream first: the admin API, then ingest (GoAway, drain
// the streams into the pipeline, end them), then the graph (every queued
// batch to the sinks, then stages, then sinks flush), within ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	// The admin API stops before s.mu is taken: its shutdown waits for its
	// handlers, and a ReloadConfig handler may be waiting for s.mu, so
	// stopping it with s.mu held would block both until ctx ends (and then
	// drain ingest and the graph with an expired ctx). A handler that gets
	// s.mu after this point sees ready false and reloads nothing.
	s.ready.Store(false)
	var adminErr error
	if s.admin != nil {
		adminErr = s.admin.Shutdown(ctx)
	}
	s.mu.Lock() // waits for a reload in progress
	defer s.mu.Unlock()
	s.stopped = true
	s.log.Info("shutting down")
	// The admin API is stopped already.
	s.started = slices.DeleteFunc(s.started, func(c pipeline.Component) bool { return s.admin != nil && c == pipeline.Component(s.admin) })
	err := errors.Join(adminErr, s.shutdownStarted(ctx))
	if err != nil {
		s.log.Error("shutdown finished with errors", "error", err)
		return err
	}
	s.log.Info("shutdown complete")
	return nil
}

// shutdownStarted shuts down what Start started, last first. s.mu is held.
func (s *Service) shutdownStarted(ctx context.Context) error {
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		if err := s.started[i].Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.started = nil
	// A graph that never started still owns created components. The plugin
	// host goes last: wasm stages are shut down by then.
	errs = append(errs, s.graph.Shutdown(ctx), s.plugins.Close(ctx))
	return errors.Join(errs...)
}

// workerInfos converts ingest's view of the connected workers to what the
// admin API lists.
func workerInfos(ws []ingest.WorkerInfo) []control.WorkerInfo {
	out := make([]control.WorkerInfo, 0, len(ws))
	for _, w := range ws {
		ci := control.WorkerInfo{
			WorkerID:       w.WorkerID,
			Pool:           w.Pool,
			Hostname:       w.Hostname,
			Addr:           w.Addr,
			Library:        strings.TrimSpace(w.LibraryName + " " + w.LibraryVersion),
			PID:            w.PID,
			ConnectedSince: w.ConnectedAt,
			EventsReceived: w.EventsReceived,
			Rejected:       w.EventsRejected,
			PolicyVersion:  w.PolicyVersion,
		}
		if since := time.Since(w.ConnectedAt).Seconds(); since > 0 {
			ci.EventsPerSecond = float64(w.EventsReceived) / since
		}
		if w.Stats != nil {
			ci.QueueDepth = w.Stats.QueueDepth
			ci.QueueCapacity = w.Stats.QueueCapacity
			ci.Dropped = w.Stats.Dropped
		}
		out = append(out, ci)
	}
	return out
}

// pluginManager is the admin API's view of the plugin host.
type pluginManager struct{ h *plugins.Host }

func pluginInfo(v plugins.Version) control.PluginInfo {
	return control.PluginInfo{
		Name:    v.Plugin,
		Path:    v.Path,
		Kind:    v.Kind.String(),
		SHA256:  v.SHA256,
		Fields:  v.Fields.String(),
		State:   "running",
		Version: v.Seq,
		Loaded:  v.LoadedAt,
	}
}

func (p pluginManager) Plugins() []control.PluginInfo {
	vs := p.h.Plugins()
	out := make([]control.PluginInfo, 0, len(vs))
	for _, v := range vs {
		out = append(out, pluginInfo(v))
	}
	// The host keeps its stages in a map: sorted, a listing is the same
	// from one call to the next.
	// Stable: one stage name in two pipelines gives rows with the same name
	// and version, which keep their registration order.
	slices.SortStableFunc(out, func(a, b control.PluginInfo) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	return out
}

func (p pluginManager) Reload(ctx context.Context, name string) (control.PluginInfo, error) {
	v, err := p.h.Reload(ctx, name)
	if errors.Is(err, plugins.ErrUnknownPlugin) {
		return control.PluginInfo{}, fmt.Errorf("%w: %w", control.ErrUnknownPlugin, err)
	}
	if err != nil {
		return control.PluginInfo{}, err
	}
	return pluginInfo(v), nil
}
