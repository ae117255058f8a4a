package control

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// AdminConfig is the `admin:` section of the config file.
type AdminConfig struct {
	// Listen is the admin address; loopback by default. Binding anything
	// else requires a token.
	Listen string `koanf:"listen"`
	// Token (or TokenFile, whose trimmed content is the token) is the bearer
	// token clients must send. Required off loopback.
	Token     string `koanf:"token"`
	TokenFile string `koanf:"token_file"`
	// TapMaxEventsPerSecond caps every tap subscription.
	TapMaxEventsPerSecond int `koanf:"tap_max_events_per_second"`
	// StateFile persists runtime policy changes across restarts ("" = off).
	StateFile string `koanf:"state_file"`
}

// DefaultAdminConfig listens on 127.0.0.1:7418 with no token.
func DefaultAdminConfig() AdminConfig {
	return AdminConfig{Listen: "127.0.0.1:7418", TapMaxEventsPerSecond: 1000}
}

// Validate reports every problem with its key.
func (c AdminConfig) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err))
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		errs = append(errs, errors.New("token, token_file: set one, not both"))
	}
	if c.TapMaxEventsPerSecond < 0 || c.TapMaxEventsPerSecond > MaxTapRate {
		errs = append(errs, fmt.Errorf("tap_max_events_per_second: %d must be in [0, %d]", c.TapMaxEventsPerSecond, MaxTapRate))
	}
	return errors.Join(errs...)
}

// ErrTokenRequired is returned by Admin.Start when the listener is not on
// loopback and no token is configured.
var ErrTokenRequired = errors.New("admin: a token is required when listening off loopback (set admin.token or admin.token_file)")

// WorkerInfo describes a connected worker for the admin API.
type WorkerInfo struct {
	WorkerID, Pool, Hostname, Addr, Library string
	PID                                     int64
	ConnectedSince                          time.Time
	EventsReceived                          uint64
	EventsPerSecond                         float64
	Rejected                                map[string]uint64
	QueueDepth, QueueCapacity               uint64
	Dropped                                 map[string]uint64
	PolicyVersion                           uint64
}

// PluginInfo describes a loaded Wasm plugin.
type PluginInfo struct {
	Name, Path, Kind, SHA256, State, LastError string
	// Fields names the field groups the live version is sent, as the
	// plugin host spells them ("all", "measurements", ...): an operator
	// sees why a plugin does not see a field without reading its source.
	Fields            string
	Version, Failures uint64
	Loaded            time.Time
}

// ErrUnknownPlugin is returned by PluginManager.Reload for a name it does
// not know.
var ErrUnknownPlugin = errors.New("unknown plugin")

// PluginManager is what the admin API needs of the Wasm host.
type PluginManager interface {
	Plugins() []PluginInfo
	Reload(ctx context.Context, name string) (PluginInfo, error)
}

// Config reload outcomes (ConfigReloader). Nothing changes after any of
// them.
var (
	// ErrConfigInvalid: the new config did not validate.
	ErrConfigInvalid = errors.New("new config is invalid")
	// ErrConfigNotApplied: the new config validated, but a part of it could
	// not be built or started.
	ErrConfigNotApplied = errors.New("new config could not be applied")
	// ErrNoConfigSource: the process has no config to load again (it was
	// not started by `snakepipe run`).
	ErrNoConfigSource = errors.New("this process cannot reload its config")
)

// ConfigReload says what a successful config reload changed.
type ConfigReload struct {
	// Changed: "catalog", "policy", "log.level", "runtime", and
	// "stages.<id>", "sinks.<id>", "pipelines.<name>", sorted.
	Changed []string
	// NeedsRestart: changed settings that keep their running value.
	NeedsRestart []string
}

// ConfigReloader reloads the process's config, as SIGHUP does. An error
// wraps ErrConfigInvalid (answered INVALID_ARGUMENT) or ErrConfigNotApplied;
// that and any other error (the process is shutting down) are answered
// FAILED_PRECONDITION, as is a missing ConfigReloader (ErrNoConfigSource).
type ConfigReloader interface {
	ReloadConfig(ctx context.Context) (ConfigReload, error)
}

// ConfigReloaderFunc adapts a function to ConfigReloader.
type ConfigReloaderFunc func(ctx context.Context) (ConfigReload, error)

// ReloadConfig calls f.
func (f ConfigReloaderFunc) ReloadConfig(ctx context.Context) (ConfigReload, error) { return f(ctx) }

// AdminDeps are the parts of the running process the admin API serves.
type AdminDeps struct {
	Store   *Store
	Workers func() []WorkerInfo
	Plugins PluginManager // nil when no plugin is configured
	// Config reloads the config file (nil: ReloadConfig answers
	// FAILED_PRECONDITION).
	Config  ConfigReloader
	Metrics *pipeline.Metrics
	Tap     *Tap
	// Ready reports nil when listeners are up and sinks are open.
	Ready func() error
}

// Admin serves the admin gRPC API and /metrics, /healthz, /readyz on one
// listener (HTTP/1.1 and cleartext HTTP/2).
type Admin struct {
	cfg   AdminConfig
	deps  AdminDeps
	log   hclog.Logger
	token string

	grpc *grpc.Server
	http *http.Server

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{}
}

// NewAdmin builds the admin server; Start binds it.
func NewAdmin(set pipeline.Settings, cfg AdminConfig, deps AdminDeps) (*Admin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Metrics == nil {
		return nil, errors.New("admin: Store and Metrics are required")
	}
	token := cfg.Token
	if cfg.TokenFile != "" {
		data, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin.token_file: %w", err)
		}
		token = strings.TrimSpace(string(data))
		if token == "" {
			return nil, fmt.Errorf("admin.token_file: %s is empty", cfg.TokenFile)
		}
	}
	log := set.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	a := &Admin{cfg: cfg, deps: deps, log: log, token: token}
	a.grpc = grpc.NewServer(grpc.UnaryInterceptor(a.unaryAuth), grpc.StreamInterceptor(a.streamAuth))
	pb.RegisterAdminServer(a.grpc, &adminService{a: a})
	reflection.Register(a.grpc)

	mux := http.NewServeMux()
	mux.Handle("/metrics", a.httpAuth(MetricsHandler(deps.Metrics)))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if deps.Ready != nil {
			if err := deps.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	a.http = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				a.grpc.ServeHTTP(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		}),
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
	}
	return a, nil
}

// isLoopback reports whether host:port binds only loopback addresses.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start binds the listener. Off loopback without a token it refuses.
func (a *Admin) Start(context.Context) error {
	if !isLoopback(a.cfg.Listen) && a.token == "" {
		return ErrTokenRequired
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", a.cfg.Listen, err)
	}
	a.mu.Lock()
	a.ln = ln
	a.done = make(chan struct{})
	a.mu.Unlock()
	go func() {
		defer close(a.done)
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin server stopped", "error", err)
		}
	}()
	a.log.Info("admin listening", "addr", ln.Addr().String(), "token_required", a.token != "")
	return nil
}

// Addr returns the bound address ("" before Start).
func (a *Admin) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Shutdown stops the listener, ends taps and waits for handlers, within ctx.
func (a *Admin) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	// Taps are endless streams: end them first so Shutdown can finish.
	if a.deps.Tap != nil {
		a.deps.Tap.closeAll()
	}
	err := a.http.Shutdown(ctx)
	if err != nil {
		_ = a.http.Close()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return err
}

func (a *Admin) authorized(values []string) bool {
	if a.token == "" {
		return true
	}
	for _, v := range values {
		got, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1 {
			return true
		}
	}
	return false
}

var errUnauthenticated = status.Error(codes.Unauthenticated, "admin: missing or wrong bearer token (ctl --token or SNAKEPIPE_ADMIN_TOKEN)")

func (a *Admin) checkCtx(ctx context.Context) error {
	if a.token == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if !a.authorized(md.Get("authorization")) {
		return errUnauthenticated
	}
	return nil
}

func (a *Admin) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/grpc.reflection.") {
		return h(ctx, req)
	}
	if err := a.checkCtx(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *Admin) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !strings.HasPrefix(info.FullMethod, "/grpc.reflection.") {
		if err := a.checkCtx(ss.Context()); err != nil {
			return err
		}
	}
	return h(srv, ss)
}

func (a *Admin) httpAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r.Header.Values("Authorization")) {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// closeAll ends every subscription (admin shutdown).
func (t *Tap) closeAll() {
	t.mu.Lock()
	subs := make([]*TapSubscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		t.Unsubscribe(s)
	}
}

// adminService implements pb.AdminServer; proto types stop here.
type adminService struct {
	pb.UnimplementedAdminServer
	a *Admin
}

func selectorFromPB(s *pb.Selector) (Selector, error) {
	if s == nil {
		return All, nil
	}
	var sel Selector
	switch t := s.Target.(type) {
	case *pb.Selector_Pool:
		sel = Pool(t.Pool)
	case *pb.Selector_WorkerId:
		sel = Worker(t.WorkerId)
	default:
		return All, nil
	}
	if err := sel.Validate(); err != nil {
		return Selector{}, status.Error(codes.InvalidArgument, err.Error())
	}
	return sel, nil
}

// SelectorToPB converts a Selector for the wire.
func SelectorToPB(s Selector) *pb.Selector {
	switch s.Kind {
	case SelectPool:
		return &pb.Selector{Target: &pb.Selector_Pool{Pool: s.Value}}
	case SelectWorker:
		return &pb.Selector{Target: &pb.Selector_WorkerId{WorkerId: s.Value}}
	}
	return &pb.Selector{Target: &pb.Selector_All{All: true}}
}

// PatchFromPB converts a wire patch.
func PatchFromPB(p *pb.PolicyPatch) Patch {
	var out Patch
	if p == nil {
		return out
	}
	if p.Enabled != nil {
		v := *p.Enabled
		out.Enabled = &v
	}
	if p.DefaultSampleRate != nil {
		v := *p.DefaultSampleRate
		out.DefaultSampleRate = &v
	}
	if p.SetSamplingRules {
		rules := make([]pipeline.SamplingRule, 0, len(p.SamplingRules))
		for _, r := range p.SamplingRules {
			rules = append(rules, pipeline.SamplingRule{Pattern: r.GetPattern(), Rate: r.GetRate()})
		}
		out.SamplingRules = &rules
	}
	if p.SetAllow {
		v := append([]string{}, p.Allow...)
		out.Allow = &v
	}
	if p.SetDeny {
		v := append([]string{}, p.Deny...)
		out.Deny = &v
	}
	return out
}

// PatchToPB converts a patch for the wire.
func PatchToPB(p Patch) *pb.PolicyPatch {
	out := &pb.PolicyPatch{Enabled: p.Enabled, DefaultSampleRate: p.DefaultSampleRate}
	if p.SamplingRules != nil {
		out.SetSamplingRules = true
		for _, r := range *p.SamplingRules {
			out.SamplingRules = append(out.SamplingRules, &pb.SamplingRule{Pattern: r.Pattern, Rate: r.Rate})
		}
	}
	if p.Allow != nil {
		out.SetAllow, out.Allow = true, *p.Allow
	}
	if p.Deny != nil {
		out.SetDeny, out.Deny = true, *p.Deny
	}
	return out
}

// PolicyToPB converts a policy for the wire.
func PolicyToPB(p pipeline.Policy) *pb.Policy {
	out := &pb.Policy{Enabled: p.Enabled, DefaultSampleRate: p.DefaultSampleRate, Allow: p.Allow, Deny: p.Deny, Version: p.Version}
	for _, r := range p.SamplingRules {
		out.SamplingRules = append(out.SamplingRules, &pb.SamplingRule{Pattern: r.Pattern, Rate: r.Rate})
	}
	return out
}

func (s *adminService) policyResponse(sel Selector, notified int) *pb.PolicyResponse {
	patch, eff := s.a.deps.Store.Get(sel)
	return &pb.PolicyResponse{Selector: SelectorToPB(sel), Patch: PatchToPB(patch), Effective: PolicyToPB(eff), WorkersNotified: uint32(notified)}
}

func (s *adminService) ListWorkers(_ context.Context, req *pb.ListWorkersRequest) (*pb.ListWorkersResponse, error) {
	resp := &pb.ListWorkersResponse{}
	if s.a.deps.Workers == nil {
		return resp, nil
	}
	ws := s.a.deps.Workers()
	sort.Slice(ws, func(i, j int) bool { return ws[i].WorkerID < ws[j].WorkerID })
	for _, w := range ws {
		if req.GetPool() != "" && w.Pool != req.GetPool() {
			continue
		}
		resp.Workers = append(resp.Workers, &pb.WorkerInfo{
			WorkerId: w.WorkerID, Pool: w.Pool, Hostname: w.Hostname, Pid: w.PID, Address: w.Addr, Library: w.Library,
			ConnectedSinceUnixNs: w.ConnectedSince.UnixNano(), EventsReceived: w.EventsReceived, EventsPerSecond: w.EventsPerSecond,
			Rejected: w.Rejected, QueueDepth: w.QueueDepth, QueueCapacity: w.QueueCapacity, Dropped: w.Dropped, PolicyVersion: w.PolicyVersion,
		})
	}
	return resp, nil
}

func (s *adminService) GetPolicy(_ context.Context, req *pb.GetPolicyRequest) (*pb.PolicyResponse, error) {
	sel, err := selectorFromPB(req.GetSelector())
	if err != nil {
		return nil, err
	}
	return s.policyResponse(sel, 0), nil
}

func (s *adminService) SetPolicy(_ context.Context, req *pb.SetPolicyRequest) (*pb.PolicyResponse, error) {
	sel, err := selectorFromPB(req.GetSelector())
	if err != nil {
		return nil, err
	}
	patch := PatchFromPB(req.GetPatch())
	if patch.IsEmpty() {
		return nil, status.Error(codes.InvalidArgument, "policy set: the patch changes nothing")
	}
	n, err := s.a.deps.Store.Set(sel, patch)
	if errors.Is(err, pipeline.ErrBadPolicy) || errors.Is(err, ErrBadSelector) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil { // persisted state failed; the change is live
		s.a.log.Warn("policy changed but state file not written", "error", err)
	}
	s.a.log.Info("policy changed", "selector", sel.String(), "workers_notified", n)
	return s.policyResponse(sel, n), nil
}

func (s *adminService) ResetPolicy(_ context.Context, req *pb.ResetPolicyRequest) (*pb.PolicyResponse, error) {
	sel, err := selectorFromPB(req.GetSelector())
	if err != nil {
		return nil, err
	}
	var n int
	if req.GetEverything() {
		n, err = s.a.deps.Store.ResetAll()
	} else {
		n, err = s.a.deps.Store.Reset(sel)
	}
	if err != nil {
		s.a.log.Warn("policy reset but state file not written", "error", err)
	}
	s.a.log.Info("policy reset", "selector", sel.String(), "everything", req.GetEverything(), "workers_notified", n)
	return s.policyResponse(sel, n), nil
}

func pluginToPB(p PluginInfo) *pb.PluginInfo {
	var loaded int64
	if !p.Loaded.IsZero() {
		loaded = p.Loaded.UnixNano()
	}
	return &pb.PluginInfo{Name: p.Name, Path: p.Path, Kind: p.Kind, Sha256: p.SHA256, Version: p.Version,
		LoadedUnixNs: loaded, State: p.State, Failures: p.Failures, LastError: p.LastError, Fields: p.Fields}
}

func (s *adminService) ListPlugins(context.Context, *pb.ListPluginsRequest) (*pb.ListPluginsResponse, error) {
	resp := &pb.ListPluginsResponse{}
	if s.a.deps.Plugins == nil {
		return resp, nil
	}
	for _, p := range s.a.deps.Plugins.Plugins() {
		resp.Plugins = append(resp.Plugins, pluginToPB(p))
	}
	return resp, nil
}

func (s *adminService) ReloadPlugin(ctx context.Context, req *pb.ReloadPluginRequest) (*pb.ReloadPluginResponse, error) {
	if s.a.deps.Plugins == nil {
		return nil, status.Errorf(codes.NotFound, "plugin %q: no plugins are configured", req.GetName())
	}
	p, err := s.a.deps.Plugins.Reload(ctx, req.GetName())
	switch {
	case errors.Is(err, ErrUnknownPlugin):
		return nil, status.Error(codes.NotFound, err.Error())
	case err != nil:
		// The old version keeps running; say why the new one was refused.
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	s.a.log.Info("plugin reloaded", "plugin", p.Name, "version", p.Version)
	return &pb.ReloadPluginResponse{Plugin: pluginToPB(p)}, nil
}

func (s *adminService) ReloadConfig(ctx context.Context, _ *pb.ReloadConfigRequest) (*pb.ReloadConfigResponse, error) {
	if s.a.deps.Config == nil {
		return nil, status.Error(codes.FailedPrecondition, ErrNoConfigSource.Error()+": it was not started by `snakepipe run`")
	}
	r, err := s.a.deps.Config.ReloadConfig(ctx)
	switch {
	case errors.Is(err, ErrConfigInvalid):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		// Not applied, not running, or ctx ended: the running config stays.
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &pb.ReloadConfigResponse{Changed: r.Changed, NeedsRestart: r.NeedsRestart}, nil
}

func (s *adminService) Stats(context.Context, *pb.StatsRequest) (*pb.StatsResponse, error) {
	resp := &pb.StatsResponse{}
	for _, smp := range s.a.deps.Metrics.Snapshot() {
		labels := make(map[string]string, len(smp.Labels))
		for _, l := range smp.Labels {
			labels[l.Key] = l.Value
		}
		resp.Metrics = append(resp.Metrics, &pb.Metric{Name: smp.Name, Labels: labels, Value: smp.Value, Kind: smp.Kind.String()})
	}
	return resp, nil
}

func (s *adminService) Tap(req *pb.TapRequest, stream grpc.ServerStreamingServer[pb.TapEvent]) error {
	if s.a.deps.Tap == nil {
		return status.Error(codes.Unavailable, "tap is not available")
	}
	allow, err := pipeline.CompileGlobs(req.GetAllow())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "allow%v", err)
	}
	deny, err := pipeline.CompileGlobs(req.GetDeny())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "deny%v", err)
	}
	sel, err := selectorFromPB(req.GetSelector())
	if err != nil {
		return err
	}
	sub, err := s.a.deps.Tap.Subscribe(TapFilter{Filter: pipeline.AllowDeny{Allow: allow, Deny: deny}, Selector: sel, EventsPerSecond: int(req.GetMaxEventsPerSecond())})
	if err != nil {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	defer s.a.deps.Tap.Unsubscribe(sub)
	var sent uint64
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case line, ok := <-sub.C():
			if !ok {
				return status.Error(codes.Unavailable, "snakepipe admin shutting down")
			}
			if err := stream.Send(&pb.TapEvent{Json: string(line), Skipped: sub.Skipped()}); err != nil {
				return err
			}
			sent++
			if req.GetLimit() > 0 && sent >= req.GetLimit() {
				return nil
			}
		}
	}
}
