package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type adminFixture struct {
	admin   *Admin
	client  pb.AdminClient
	conn    *grpc.ClientConn
	store   *Store
	metrics *pipeline.Metrics
	tap     *Tap
	sink    chan *pipeline.Batch
}

func startAdmin(t *testing.T, cfg AdminConfig) *adminFixture {
	t.Helper()
	return startAdminWith(t, cfg, nil)
}

// startAdminWith is startAdmin with deps changed by with (if not nil).
func startAdminWith(t *testing.T, cfg AdminConfig, with func(*AdminDeps)) *adminFixture {
	t.Helper()
	f := &adminFixture{metrics: pipeline.NewMetrics(), sink: make(chan *pipeline.Batch, 100)}
	f.store, _ = NewStore(pipeline.DefaultPolicy(), StoreOptions{})
	f.tap = NewTap(pipeline.ConsumerFunc(func(_ context.Context, b *pipeline.Batch) error { f.sink <- b; return nil }), 0)
	deps := AdminDeps{
		Store:   f.store,
		Metrics: f.metrics,
		Tap:     f.tap,
		Workers: func() []WorkerInfo {
			return []WorkerInfo{{WorkerID: "w2", Pool: "b"}, {WorkerID: "w1", Pool: "a", EventsReceived: 7}}
		},
	}
	if with != nil {
		with(&deps)
	}
	var err error
	f.admin, err = NewAdmin(pipeline.Settings{}, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.admin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.admin.Shutdown(ctx)
	})
	f.conn, err = grpc.NewClient(f.admin.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.conn.Close() })
	f.client = pb.NewAdminClient(f.conn)
	return f
}

func loopbackCfg() AdminConfig {
	c := DefaultAdminConfig()
	c.Listen = "127.0.0.1:0"
	return c
}

func TestAdminPolicyAndWorkers(t *testing.T) {
	f := startAdmin(t, loopbackCfg())
	ctx := context.Background()

	ws, err := f.client.ListWorkers(ctx, &pb.ListWorkersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ws.Workers) != 2 || ws.Workers[0].WorkerId != "w1" || ws.Workers[0].EventsReceived != 7 {
		t.Fatalf("ListWorkers = %v", ws.Workers)
	}

	off := false
	resp, err := f.client.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: SelectorToPB(Pool("a")), Patch: &pb.PolicyPatch{Enabled: &off}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Effective.Enabled || resp.Effective.Version < 2 {
		t.Fatalf("effective after set = %v", resp.Effective)
	}
	if f.store.PolicyFor(&pipeline.Origin{WorkerID: "x", Pool: "a"}).Enabled {
		t.Fatal("store not changed")
	}

	bad := 1.5
	_, err = f.client.SetPolicy(ctx, &pb.SetPolicyRequest{Patch: &pb.PolicyPatch{DefaultSampleRate: &bad}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "default_sample_rate") {
		t.Fatalf("invalid rate: %v, want InvalidArgument naming default_sample_rate", err)
	}
	_, err = f.client.SetPolicy(ctx, &pb.SetPolicyRequest{Patch: &pb.PolicyPatch{SetDeny: true, Deny: []string{"a.[b"}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad glob: %v", err)
	}
	if got := f.store.PolicyFor(&pipeline.Origin{WorkerID: "x", Pool: "z"}); got.DefaultSampleRate != 1 || len(got.Deny) != 0 {
		t.Fatalf("refused changes leaked into the store: %+v", got)
	}

	if _, err := f.client.ResetPolicy(ctx, &pb.ResetPolicyRequest{Selector: SelectorToPB(Pool("a"))}); err != nil {
		t.Fatal(err)
	}
	if !f.store.PolicyFor(&pipeline.Origin{WorkerID: "x", Pool: "a"}).Enabled {
		t.Fatal("reset did not restore")
	}
	if _, err := f.client.ReloadPlugin(ctx, &pb.ReloadPluginRequest{Name: "x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("reload with no plugins: %v", err)
	}
}

// fakePlugins is a PluginManager holding a fixed list; Reload returns the
// named entry with its version one higher.
type fakePlugins []PluginInfo

func (f fakePlugins) Plugins() []PluginInfo { return f }

func (f fakePlugins) Reload(_ context.Context, name string) (PluginInfo, error) {
	for _, p := range f {
		if p.Name == name {
			p.Version++
			return p, nil
		}
	}
	return PluginInfo{}, fmt.Errorf("%w: %s", ErrUnknownPlugin, name)
}

// TestAdminPlugins: ListPlugins and ReloadPlugin carry every field of a
// PluginInfo, the field groups a plugin is sent among them; an unknown
// name is NotFound.
func TestAdminPlugins(t *testing.T) {
	loaded := time.Unix(1700000000, 5)
	plugins := fakePlugins{
		{Name: "wasm/a", Path: "/p/a.wasm", Kind: "filter", SHA256: "aa", State: "running", Fields: "measurements", Version: 3, Loaded: loaded},
		{Name: "wasm/b", Path: "/p/b.wasm", Kind: "enrich", SHA256: "bb", State: "failing", LastError: "trap", Failures: 2, Fields: "all", Version: 1},
	}
	f := startAdminWith(t, loopbackCfg(), func(d *AdminDeps) { d.Plugins = plugins })
	ctx := context.Background()
	list, err := f.client.ListPlugins(ctx, &pb.ListPluginsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*pb.PluginInfo{
		{Name: "wasm/a", Path: "/p/a.wasm", Kind: "filter", Sha256: "aa", State: "running", Fields: "measurements", Version: 3, LoadedUnixNs: loaded.UnixNano()},
		{Name: "wasm/b", Path: "/p/b.wasm", Kind: "enrich", Sha256: "bb", State: "failing", LastError: "trap", Failures: 2, Fields: "all", Version: 1},
	}
	if len(list.Plugins) != len(want) {
		t.Fatalf("ListPlugins = %v, want %v", list.Plugins, want)
	}
	for i := range want {
		if !proto.Equal(list.Plugins[i], want[i]) {
			t.Errorf("ListPlugins[%d] = %v, want %v", i, list.Plugins[i], want[i])
		}
	}
	resp, err := f.client.ReloadPlugin(ctx, &pb.ReloadPluginRequest{Name: "wasm/a"})
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetPlugin(); p.GetName() != "wasm/a" || p.GetVersion() != 4 || p.GetFields() != "measurements" {
		t.Errorf("ReloadPlugin(wasm/a) = %v", p)
	}
	if _, err := f.client.ReloadPlugin(ctx, &pb.ReloadPluginRequest{Name: "wasm/nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("ReloadPlugin(wasm/nope): %v, want NotFound", err)
	}
}

// TestAdminReloadConfig: each outcome of the ConfigReloader becomes its
// status code, and a success returns the lists as given.
func TestAdminReloadConfig(t *testing.T) {
	if _, err := startAdmin(t, loopbackCfg()).client.ReloadConfig(context.Background(), &pb.ReloadConfigRequest{}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "cannot reload its config") {
		t.Errorf("ReloadConfig with no reloader: %v, want FailedPrecondition", err)
	}
	var next func() (ConfigReload, error)
	f := startAdminWith(t, loopbackCfg(), func(d *AdminDeps) {
		d.Config = ConfigReloaderFunc(func(context.Context) (ConfigReload, error) { return next() })
	})
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
	}{
		{"invalid", fmt.Errorf("%w: pipelines.default.sinks[0]: unknown sink", ErrConfigInvalid), codes.InvalidArgument},
		{"not applied", fmt.Errorf("%w: sink file/x: open: permission denied", ErrConfigNotApplied), codes.FailedPrecondition},
		{"not running", errors.New("service is not running"), codes.FailedPrecondition},
	} {
		next = func() (ConfigReload, error) { return ConfigReload{}, tc.err }
		_, err := f.client.ReloadConfig(context.Background(), &pb.ReloadConfigRequest{})
		if status.Code(err) != tc.code || status.Convert(err).Message() != tc.err.Error() {
			t.Errorf("%s: %v, want %s with the reloader's message", tc.name, err, tc.code)
		}
	}
	next = func() (ConfigReload, error) {
		return ConfigReload{Changed: []string{"catalog", "stages.sample/x"}, NeedsRestart: []string{"ingest.listen"}}, nil
	}
	resp, err := f.client.ReloadConfig(context.Background(), &pb.ReloadConfigRequest{})
	if err != nil || !slices.Equal(resp.GetChanged(), []string{"catalog", "stages.sample/x"}) || !slices.Equal(resp.GetNeedsRestart(), []string{"ingest.listen"}) {
		t.Errorf("ReloadConfig = %v, %v", resp, err)
	}
}

func TestAdminMetricsParse(t *testing.T) {
	f := startAdmin(t, loopbackCfg())
	f.metrics.Counter("snakepipe_test_events_total", "Test events.", pipeline.L("reason", "x")...).Add(42)
	f.metrics.Gauge("snakepipe_test_depth", "Test depth.").Set(3)
	f.metrics.Histogram("snakepipe_test_latency_seconds", "Test latency.", []float64{0.1, 1}).Observe(0.5)
	resp, err := http.Get("http://" + f.admin.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	c := fams["snakepipe_test_events_total"]
	if c == nil || c.Metric[0].GetCounter().GetValue() != 42 || c.Metric[0].Label[0].GetValue() != "x" {
		t.Fatalf("counter family = %v", c)
	}
	if g := fams["snakepipe_test_depth"]; g == nil || g.Metric[0].GetGauge().GetValue() != 3 {
		t.Fatalf("gauge family = %v", g)
	}
	if h := fams["snakepipe_test_latency_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() != 1 || h.Metric[0].GetHistogram().Bucket[1].GetCumulativeCount() != 1 {
		t.Fatalf("histogram family = %v", h)
	}
	if fams["process_resident_memory_bytes"] == nil {
		t.Fatal("process collector missing")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		r, err := http.Get("http://" + f.admin.Addr() + path)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, r, err)
		}
		r.Body.Close()
	}
}

func TestAdminTokenRequiredOffLoopback(t *testing.T) {
	cfg := DefaultAdminConfig()
	cfg.Listen = "0.0.0.0:0"
	a, err := NewAdmin(pipeline.Settings{}, cfg, AdminDeps{Store: mustStore(t), Metrics: pipeline.NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); !errors.Is(err, ErrTokenRequired) {
		t.Fatalf("Start off loopback without token = %v, want ErrTokenRequired", err)
	}

	cfg.Token = "s3cret"
	f := startAdmin(t, cfg)
	ctx := context.Background()
	if _, err := f.client.ListWorkers(ctx, &pb.ListWorkersRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v, want Unauthenticated", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nope")
	if _, err := f.client.ListWorkers(bad, &pb.ListWorkersRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	if _, err := f.client.ListWorkers(good, &pb.ListWorkersRequest{}); err != nil {
		t.Fatalf("right token: %v", err)
	}
	r, _ := http.Get("http://" + f.admin.Addr() + "/metrics")
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without token: %d", r.StatusCode)
	}
	r.Body.Close()
}

func mustStore(t *testing.T) *Store {
	s, err := NewStore(pipeline.DefaultPolicy(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAdminTap(t *testing.T) {
	f := startAdmin(t, loopbackCfg())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := f.client.Tap(ctx, &pb.TapRequest{Allow: []string{"python.*"}, Limit: 3, MaxEventsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the subscription is live, then feed batches through the tap.
	for f.tap.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	origin := &pipeline.Origin{WorkerID: "w1"}
	b := &pipeline.Batch{Events: []pipeline.Event{
		{Name: "tool.execution.start", Origin: origin}, {Name: "python.call.stop", Origin: origin, TimestampNs: 1},
		{Name: "python.call.stop", Origin: origin, TimestampNs: 2}, {Name: "python.gc.completed", Origin: origin, TimestampNs: 3},
		{Name: "python.call.stop", Origin: origin, TimestampNs: 4},
	}}
	if err := f.tap.Consume(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := <-f.sink; got.Len() != 5 {
		t.Fatalf("tap must pass the batch on unchanged, got %d events", got.Len())
	}
	var names []string
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		e, perr := pipeline.ParseEventJSON([]byte(ev.Json))
		if perr != nil {
			t.Fatal(perr)
		}
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "python.call.stop,python.call.stop,python.gc.completed" {
		t.Fatalf("tapped %v", names)
	}
	// The limit ended the stream; the subscription is gone.
	deadline := time.Now().Add(5 * time.Second)
	for f.tap.Subscribers() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if f.tap.Subscribers() != 0 {
		t.Fatal("subscription not removed after the tap ended")
	}
}

func TestTapRateCap(t *testing.T) {
	tap := NewTap(pipeline.ConsumerFunc(func(context.Context, *pipeline.Batch) error { return nil }), 0)
	sub, err := tap.Subscribe(TapFilter{EventsPerSecond: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Unsubscribe(sub)
	b := &pipeline.Batch{Events: make([]pipeline.Event, 100)}
	_ = tap.Consume(context.Background(), b)
	if got, skipped := len(sub.C()), sub.Skipped(); got > 10 || got+int(skipped) != 100 {
		t.Fatalf("delivered %d, skipped %d; want at most 10 delivered and the rest counted", got, skipped)
	}
}

func TestEnforcer(t *testing.T) {
	store := mustStore(t)
	off := false
	_, _ = store.Set(Pool("quiet"), Patch{Enabled: &off})
	_, _ = store.Set(All, Patch{Deny: &[]string{"noise.*"}})
	m := pipeline.NewMetrics()
	var got []string
	e := NewEnforcer(store, pipeline.ConsumerFunc(func(_ context.Context, b *pipeline.Batch) error {
		for _, ev := range b.Events {
			got = append(got, ev.Name)
		}
		return nil
	}), m)
	loud, quiet := &pipeline.Origin{WorkerID: "a", Pool: "loud"}, &pipeline.Origin{WorkerID: "b", Pool: "quiet"}
	_ = e.Consume(context.Background(), &pipeline.Batch{Events: []pipeline.Event{
		{Name: "python.call.stop", Origin: loud}, {Name: "noise.x", Origin: loud}, {Name: "snakepipe.worker.connected"},
	}})
	_ = e.Consume(context.Background(), &pipeline.Batch{Events: []pipeline.Event{{Name: "python.call.stop", Origin: quiet}}})
	if strings.Join(got, ",") != "python.call.stop,snakepipe.worker.connected" {
		t.Fatalf("passed %v", got)
	}
	if v, _ := m.Value("snakepipe_control_events_dropped_total", pipeline.L("reason", "filtered")...); v != 1 {
		t.Fatalf("filtered = %v", v)
	}
	if v, _ := m.Value("snakepipe_control_events_dropped_total", pipeline.L("reason", "disabled")...); v != 1 {
		t.Fatalf("disabled = %v", v)
	}
	// A policy change takes effect on the next batch.
	on := true
	_, _ = store.Set(Pool("quiet"), Patch{Enabled: &on})
	got = nil
	_ = e.Consume(context.Background(), &pipeline.Batch{Events: []pipeline.Event{{Name: "python.call.stop", Origin: quiet}}})
	if len(got) != 1 {
		t.Fatal("policy change not picked up")
	}
}
