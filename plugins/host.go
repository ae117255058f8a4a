// Package plugins runs snakepipe's WebAssembly plugins in wazero: it loads
// and checks modules against ABI v1 (docs/plugin-abi.md), pools instances,
// enforces the sandbox limits and the failure policy, hot-swaps new
// versions, and provides the `wasm` pipeline stage.
package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Engine selects wazero's execution engine.
const (
	EngineAuto        = "auto" // compiler where supported, else interpreter
	EngineCompiler    = "compiler"
	EngineInterpreter = "interpreter"
)

// Hard limits (docs/plugin-abi.md §8).
const (
	hardMaxModuleBytes = 32 << 20
	hardMaxPages       = 1024
	hardMaxDeadline    = time.Second
	hardMaxInstances   = 32
	pageSize           = 65536
)

// HostConfig is the top-level `plugins:` section: settings shared by every
// wasm stage of the process.
type HostConfig struct {
	// Cache turns the on-disk compilation cache on.
	Cache bool `koanf:"cache"`
	// CacheDir is the cache directory; "" means <user cache dir>/snakepipe/wasm.
	CacheDir string `koanf:"cache_dir"`
	// CacheMaxBytes bounds the cache directory: past it, the least recently
	// used entries are removed (at start and after each compile).
	CacheMaxBytes int64 `koanf:"cache_max_bytes"`
	// Engine is "auto", "compiler" or "interpreter".
	Engine string `koanf:"engine"`
	// MaxModuleBytes refuses larger .wasm files.
	MaxModuleBytes int `koanf:"max_module_bytes"`
	// CompileTimeout bounds how long a load or a reload waits for wazero
	// to compile a module.
	CompileTimeout time.Duration `koanf:"compile_timeout"`
	// MemoryLimitPages is the default per-instance memory limit of stages
	// that do not set memory_limit_pages (64 KiB pages).
	MemoryLimitPages uint32 `koanf:"memory_limit_pages"`
	// MaxTotalMemoryPages bounds memory_limit_pages × instances summed over
	// every loaded plugin; a stage that would exceed it is refused.
	MaxTotalMemoryPages uint64 `koanf:"max_total_memory_pages"`
	// Watch reloads a plugin when its .wasm file changes on disk.
	Watch bool `koanf:"watch"`
	// WatchDebounce waits this long after the last change before reloading.
	WatchDebounce time.Duration `koanf:"watch_debounce"`
}

// DefaultHostConfig returns the defaults documented in docs/config.md.
func DefaultHostConfig() HostConfig {
	return HostConfig{
		Cache:               true,
		CacheMaxBytes:       256 << 20,
		Engine:              EngineAuto,
		MaxModuleBytes:      10 << 20,
		CompileTimeout:      time.Minute,
		MemoryLimitPages:    256,
		MaxTotalMemoryPages: 16384,
		Watch:               true,
		WatchDebounce:       200 * time.Millisecond,
	}
}

// Validate reports every problem, each naming its key under `plugins.`.
func (c HostConfig) Validate() error {
	var errs []error
	switch c.Engine {
	case EngineAuto, EngineCompiler, EngineInterpreter:
	default:
		errs = append(errs, fmt.Errorf("plugins.engine: %q is not one of auto, compiler, interpreter", c.Engine))
	}
	if c.CacheMaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("plugins.cache_max_bytes: %d must be > 0", c.CacheMaxBytes))
	}
	if c.MaxModuleBytes <= 0 || c.MaxModuleBytes > hardMaxModuleBytes {
		errs = append(errs, fmt.Errorf("plugins.max_module_bytes: %d is outside 1..%d", c.MaxModuleBytes, hardMaxModuleBytes))
	}
	if c.CompileTimeout < time.Second || c.CompileTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("plugins.compile_timeout: %s is outside 1s..10m", c.CompileTimeout))
	}
	if c.MemoryLimitPages == 0 || c.MemoryLimitPages > hardMaxPages {
		errs = append(errs, fmt.Errorf("plugins.memory_limit_pages: %d is outside 1..%d", c.MemoryLimitPages, hardMaxPages))
	}
	if c.MaxTotalMemoryPages == 0 {
		errs = append(errs, errors.New("plugins.max_total_memory_pages: must be > 0"))
	}
	if c.WatchDebounce < 0 {
		errs = append(errs, fmt.Errorf("plugins.watch_debounce: %s is negative", c.WatchDebounce))
	}
	return errors.Join(errs...)
}

// Host owns the wazero runtimes, the compilation cache and every loaded
// plugin of the process. It is safe for concurrent use.
//
// There are two runtimes, created on first use and sharing one compilation
// cache. An untrusted plugin is rewritten so that its loops yield to Go
// every few thousand iterations and check an exported global its deadline
// timer sets (interrupt.go); it runs, like a `trusted: true` plugin, in the
// plain runtime. A module the rewriter
// cannot handle falls back to the other runtime, which has wazero's
// WithCloseOnContextDone: that stops an infinite loop too, but it is a
// runtime-wide setting that calls out to Go at every loop iteration and
// starts a goroutine per call.
type Host struct {
	cfg      HostConfig
	log      hclog.Logger
	metrics  *pipeline.Metrics
	cache    wazero.CompilationCache
	cacheDir string // "" when the cache is in memory only

	mu      sync.Mutex
	rts     [2]wazero.Runtime // [0] close on ctx done (fallback, Inspect), [1] plain
	modules map[moduleKey]*module
	// compileFn is wazero.Runtime.CompileModule; a test replaces it to
	// make a compile that never ends.
	compileFn func(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error)
	// instrumentFn is InstrumentForDeadline; a test replaces it to force
	// the fallback.
	instrumentFn func(bin []byte) (Instrumented, error)
	stages       map[string][]*Stage
	// seqs is the last version sequence number of each stage, by pipeline
	// and plugin name: a stage rebuilt by a config reload continues it
	// (and with it snakepipe_plugin_version_seq) instead of starting at 1.
	seqs     map[string]uint64
	reserved uint64 // memory pages reserved by loaded stages
	watcher  *watcher
	closed   bool
	// compiles counts compiles in flight, including ones given up on after
	// compile_timeout: Close waits for them, because closing a runtime
	// while wazero compiles into it crashes the process.
	compiles sync.WaitGroup
}

type moduleKey struct {
	sum     [32]byte
	trusted bool
}

// NewHost creates a host. Close it to release the runtimes. logger and
// metrics may be nil.
func NewHost(cfg HostConfig, logger hclog.Logger, metrics *pipeline.Metrics) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Host{cfg: cfg, log: logger, metrics: metrics, modules: map[moduleKey]*module{}, stages: map[string][]*Stage{},
		seqs: map[string]uint64{},
		compileFn: func(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
			return r.CompileModule(ctx, bin)
		}, instrumentFn: InstrumentForDeadline}
	if cfg.Cache {
		dir := cfg.CacheDir
		if dir == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				return nil, fmt.Errorf("plugins.cache_dir: no default (%w): set it, or set plugins.cache to false", err)
			}
			dir = filepath.Join(base, "snakepipe", "wasm")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("plugins.cache_dir: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, fmt.Errorf("plugins.cache_dir: %w", err)
		}
		h.cache, h.cacheDir = c, dir
		h.pruneCache()
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	return h, nil
}

// pruneCache keeps the on-disk cache under plugins.cache_max_bytes. A
// failure only means a bigger directory, so it is logged, not returned.
func (h *Host) pruneCache() {
	if h.cacheDir == "" {
		return
	}
	st, err := pruneCache(h.cacheDir, h.cfg.CacheMaxBytes, time.Now())
	if err != nil {
		h.log.Warn("pruning the plugin compilation cache", "dir", h.cacheDir, "error", err)
	}
	if st.files > 0 || st.staleDirs > 0 {
		h.log.Info("pruned the plugin compilation cache", "dir", h.cacheDir, "files", st.files, "bytes", st.bytes, "stale_version_dirs", st.staleDirs)
	}
}

// Close closes every runtime (and with them every instance) and the cache.
// Stages of this host fail their batches afterwards (per on_error).
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	w := h.watcher
	h.watcher = nil
	rts := h.rts
	h.mu.Unlock()
	var errs []error
	if w != nil {
		w.close()
	}
	compiled := make(chan struct{})
	go func() {
		h.compiles.Wait()
		close(compiled)
	}()
	select {
	case <-compiled:
	case <-ctx.Done():
		// Leave the runtimes to the process's exit rather than pull them
		// from under a compile still running.
		return fmt.Errorf("plugins: a module compile was still running at close; runtimes left open: %w", ctx.Err())
	}
	for _, r := range rts {
		if r != nil {
			errs = append(errs, r.Close(ctx))
		}
	}
	errs = append(errs, h.cache.Close(ctx))
	return errors.Join(errs...)
}

// runtime returns the runtime with or without WithCloseOnContextDone,
// creating it and its host modules on first use. h.mu must be held.
func (h *Host) runtime(ctx context.Context, closeOnDone bool) (wazero.Runtime, error) {
	i := 1
	if closeOnDone {
		i = 0
	}
	if h.rts[i] != nil {
		return h.rts[i], nil
	}
	var rc wazero.RuntimeConfig
	switch h.cfg.Engine {
	case EngineCompiler:
		rc = wazero.NewRuntimeConfigCompiler()
	case EngineInterpreter:
		rc = wazero.NewRuntimeConfigInterpreter()
	default:
		rc = wazero.NewRuntimeConfig()
	}
	rc = rc.WithCloseOnContextDone(closeOnDone).
		WithMemoryLimitPages(hardMaxPages).
		WithCompilationCache(h.cache).
		WithCustomSections(true)
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	if err := instantiateHostModules(ctx, r); err != nil {
		return nil, errors.Join(err, r.Close(ctx))
	}
	h.rts[i] = r
	return r, nil
}

func instantiateHostModules(ctx context.Context, r wazero.Runtime) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		return fmt.Errorf("instantiating WASI: %w", err)
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	_, err := r.NewHostModuleBuilder(HostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").Export("log").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostNow), nil, []api.ValueType{i64}).Export("now_ns").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("instantiating %s: %w", HostModule, err)
	}
	_, err = r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostAbort), []api.ValueType{i32, i32, i32, i32}, nil).
		WithParameterNames("msg", "file", "line", "col").Export("abort").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("instantiating env: %w", err)
	}
	return nil
}

// compile returns the checked module for bin, compiling it at most once
// per runtime. An untrusted module is instrumented for the deadline first
// (or, if it cannot be, compiled as is in the close-on-context-done
// runtime). The caller owns one reference; release it with (*Host).release.
func (h *Host) compile(ctx context.Context, bin []byte, trusted bool) (*module, error) {
	key := moduleKey{sum: sha256.Sum256(bin), trusted: trusted}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHostClosed
	}
	if m, ok := h.modules[key]; ok {
		m.refs++
		h.mu.Unlock()
		return m, nil
	}
	h.mu.Unlock()
	start := time.Now()
	cbin, interrupt, hasStart := bin, false, false
	if !trusted {
		if ins, err := h.instrumentFn(bin); err != nil {
			h.log.Info("plugin module not instrumented for the per-batch deadline; it runs with wazero's slower close-on-context-done instead",
				"sha256", hex.EncodeToString(key.sum[:12]), "reason", err)
		} else {
			cbin, interrupt, hasStart = ins.Binary, true, ins.HasStart
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHostClosed
	}
	r, err := h.runtime(ctx, !trusted && !interrupt)
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	cm, err := h.compileCached(ctx, r, cbin)
	if err != nil && interrupt && !errors.Is(err, ErrCompileTimeout) && !errors.Is(err, ErrHostClosed) && ctx.Err() == nil {
		// The rewritten module did not compile. Compile the original in
		// the fallback runtime: if it fails too, its error is the one to
		// report (offsets in the user's file, not in our rewrite); if it
		// compiles, the rewrite is at fault and the plugin still runs.
		cm, r, err = h.compileOriginal(ctx, bin, err)
		interrupt, hasStart = false, false
	}
	switch {
	case errors.Is(err, ErrCompileTimeout) || errors.Is(err, ErrHostClosed) || err != nil && ctx.Err() != nil:
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotWasm, err)
	}
	m := &module{cm: cm, rt: r, sha: hex.EncodeToString(key.sum[:]), key: key, refs: 1, size: len(bin), compileTime: time.Since(start),
		interrupt: interrupt, hasStart: hasStart}
	h.pruneCache() // the compile may have added an entry
	var info Info
	m.checkErr = errors.Join(describe(cm, &info, m)...)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.Join(ErrHostClosed, cm.Close(ctx))
	}
	if other, ok := h.modules[key]; ok { // compiled concurrently: keep one
		other.refs++
		return other, cm.Close(ctx)
	}
	h.modules[key] = m
	return m, nil
}

// compileOriginal compiles bin unchanged in the close-on-context-done
// runtime, after its rewritten form failed to compile with rewriteErr.
func (h *Host) compileOriginal(ctx context.Context, bin []byte, rewriteErr error) (wazero.CompiledModule, wazero.Runtime, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, ErrHostClosed
	}
	r, err := h.runtime(ctx, true)
	h.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	cm, err := h.compileCached(ctx, r, bin)
	if err == nil {
		h.log.Warn("plugin module rewritten for the per-batch deadline did not compile, but the original does: it runs with wazero's slower close-on-context-done instead (a snakepipe bug; please report it)",
			"error", rewriteErr)
	}
	return cm, r, err
}

// compileCached is compileModule that survives a cache entry it cannot
// read: it clears the cache and compiles once more.
func (h *Host) compileCached(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
	cm, err := h.compileModule(ctx, r, bin)
	if isCacheReadError(err) && h.cacheDir != "" {
		h.log.Warn("unreadable entry in the plugin compilation cache; clearing it and compiling again", "dir", h.cacheDir, "error", err)
		if cerr := clearCacheEntries(h.cacheDir); cerr != nil {
			h.log.Warn("clearing the plugin compilation cache", "error", cerr)
		}
		cm, err = h.compileModule(ctx, r, bin)
	}
	return cm, err
}

// ErrCompileTimeout: compiling a module took longer than
// plugins.compile_timeout.
var ErrCompileTimeout = errors.New("compile timeout")

// compileModule compiles bin, giving up after plugins.compile_timeout or
// when ctx ends. wazero cannot stop a compile in progress, so a compile
// given up on runs to its end in the background and its result is closed;
// the caller (a load or a reload, holding the stage's swap lock) does not
// wait for it.
func (h *Host) compileModule(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
	type result struct {
		cm  wazero.CompiledModule
		err error
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHostClosed
	}
	h.compiles.Add(1) // under mu, so it happens before Close's Wait
	h.mu.Unlock()
	done := make(chan result, 1)
	go func() {
		defer h.compiles.Done()
		defer func() {
			// wazero v1.12 panics validating some malformed modules (found
			// by FuzzInstrument: a call to a function whose declared type
			// index is out of range). A plugin file must not crash the
			// process.
			if p := recover(); p != nil {
				done <- result{nil, fmt.Errorf("wazero panicked validating the module: %v", p)}
			}
		}()
		cm, err := h.compileFn(ctx, r, bin)
		done <- result{cm, err}
	}()
	t := time.NewTimer(h.cfg.CompileTimeout)
	defer t.Stop()
	var err error
	select {
	case res := <-done:
		return res.cm, res.err
	case <-t.C:
		err = fmt.Errorf("%w: compiling the %d-byte module took longer than plugins.compile_timeout (%s)", ErrCompileTimeout, len(bin), h.cfg.CompileTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("compiling: %w", ctx.Err())
	}
	go func() {
		if res := <-done; res.cm != nil {
			_ = res.cm.Close(context.Background()) // nobody uses it
		}
	}()
	return nil, err
}

// release drops one reference to m and closes it at zero.
func (h *Host) release(ctx context.Context, m *module) {
	h.mu.Lock()
	m.refs--
	last := m.refs == 0
	if last {
		delete(h.modules, m.key)
	}
	h.mu.Unlock()
	if last {
		_ = m.cm.Close(ctx) // closing a compiled module cannot fail in a way we can act on
	}
}

// ErrHostClosed is returned after Host.Close.
var ErrHostClosed = errors.New("plugin host closed")

// ErrUnknownPlugin is returned by Reload for a name no stage has.
var ErrUnknownPlugin = errors.New("unknown plugin")

// Reload loads the current file of the plugin stage name (a stage id such
// as "wasm/slow") again and swaps it in (docs/plugin-abi.md §10). If the
// stage is used by several pipelines, each is reloaded; the version of the
// last one is returned and the errors are joined. On error the running
// version stays.
func (h *Host) Reload(ctx context.Context, name string) (Version, error) {
	h.mu.Lock()
	stages := append([]*Stage(nil), h.stages[name]...)
	h.mu.Unlock()
	if len(stages) == 0 {
		return Version{}, fmt.Errorf("%w %q", ErrUnknownPlugin, name)
	}
	var (
		v    Version
		errs []error
	)
	reloaded := 0
	for _, s := range stages {
		sv, err := s.Reload(ctx)
		switch {
		case errors.Is(err, ErrStageClosed):
			// Shut down since the list was copied (a config reload replaced it).
		case err != nil:
			errs = append(errs, err)
		default:
			v = sv
			reloaded++
		}
	}
	if reloaded == 0 && len(errs) == 0 {
		return Version{}, fmt.Errorf("%w %q", ErrUnknownPlugin, name)
	}
	return v, errors.Join(errs...)
}

// Plugins lists the current version of every loaded plugin stage.
func (h *Host) Plugins() []Version {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Version
	for _, ss := range h.stages {
		for _, s := range ss {
			if v := s.cur.Load(); v != nil {
				out = append(out, v.info)
			}
		}
	}
	return out
}

// nextSeq returns the sequence number of a stage's next version: one
// more than the last one any stage of that pipeline and name loaded.
func (h *Host) nextSeq(key string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seqs[key]++
	return h.seqs[key]
}

func (h *Host) register(s *Stage, pages uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHostClosed
	}
	if h.reserved+pages > h.cfg.MaxTotalMemoryPages {
		return fmt.Errorf("memory_limit_pages × instances = %d pages, but only %d of plugins.max_total_memory_pages (%d) are left",
			pages, h.cfg.MaxTotalMemoryPages-h.reserved, h.cfg.MaxTotalMemoryPages)
	}
	h.reserved += pages
	h.stages[s.name] = append(h.stages[s.name], s)
	if s.path != "" && h.cfg.Watch {
		if h.watcher == nil {
			w, err := newWatcher(h.cfg.WatchDebounce, h.log)
			if err != nil {
				h.log.Warn("cannot watch plugin files; reload with the admin API instead", "error", err)
			} else {
				h.watcher = w
			}
		}
		if h.watcher != nil {
			if err := h.watcher.add(s.path, s); err != nil {
				h.log.Warn("cannot watch plugin file", "path", s.path, "error", err)
			}
		}
	}
	return nil
}

func (h *Host) unregister(s *Stage, pages uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reserved -= pages
	ss := h.stages[s.name]
	for i := range ss {
		if ss[i] == s {
			ss = append(ss[:i], ss[i+1:]...)
			break
		}
	}
	if len(ss) == 0 {
		delete(h.stages, s.name)
	} else {
		h.stages[s.name] = ss
	}
	if h.watcher != nil {
		h.watcher.remove(s.path, s)
	}
}
