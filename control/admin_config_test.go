package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/snakepipe/snakepipe/pipeline"
)

// The `admin:` keys as docs/config.md describes them.

func TestAdminConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*AdminConfig)
		want []string // substrings of the error; none = valid
	}{
		{"default", func(*AdminConfig) {}, nil},
		{"off", func(c *AdminConfig) { c.Listen = "" }, nil},
		{"not host:port", func(c *AdminConfig) { c.Listen = "7418" }, []string{"listen:", `"7418"`}},
		{"token and token_file", func(c *AdminConfig) { c.Token, c.TokenFile = "a", "/x" }, []string{"token, token_file: set one, not both"}},
		{"tap cap negative", func(c *AdminConfig) { c.TapMaxEventsPerSecond = -1 }, []string{"tap_max_events_per_second: -1 must be in [0, 10000]"}},
		{"tap cap too high", func(c *AdminConfig) { c.TapMaxEventsPerSecond = MaxTapRate + 1 }, []string{"tap_max_events_per_second"}},
		{"tap cap 0", func(c *AdminConfig) { c.TapMaxEventsPerSecond = 0 }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultAdminConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if d := DefaultAdminConfig(); d.Listen != "127.0.0.1:7418" || d.TapMaxEventsPerSecond != 1000 || d.Token != "" || d.StateFile != "" {
		t.Errorf("defaults = %+v", d)
	}
}

func TestAdminLoopbackNeedsNoToken(t *testing.T) {
	for addr, loopback := range map[string]bool{
		"127.0.0.1:0": true, "127.0.0.2:0": true, "localhost:0": true, "[::1]:0": true,
		"0.0.0.0:0": false, "[::]:0": false, ":0": false, "10.1.2.3:7418": false, "example.com:7418": false,
	} {
		if got := isLoopback(addr); got != loopback {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, loopback)
		}
	}
	// ":0" (every interface) without a token is refused at Start.
	cfg := DefaultAdminConfig()
	cfg.Listen = ":0"
	a, err := NewAdmin(pipeline.Settings{}, cfg, AdminDeps{Store: mustStore(t), Metrics: pipeline.NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); !errors.Is(err, ErrTokenRequired) {
		_ = a.Shutdown(context.Background())
		t.Fatalf("Start on :0 without a token = %v, want ErrTokenRequired", err)
	}
}

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	deps := AdminDeps{Store: mustStore(t), Metrics: pipeline.NewMetrics()}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := loopbackCfg()
	cfg.TokenFile = write("token", "  s3cret\n")
	a, err := NewAdmin(pipeline.Settings{}, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if a.token != "s3cret" {
		t.Errorf("token from file = %q, want it trimmed", a.token)
	}
	cfg.TokenFile = write("empty", " \n")
	if _, err := NewAdmin(pipeline.Settings{}, cfg, deps); err == nil || !strings.Contains(err.Error(), "admin.token_file") || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token file: %v", err)
	}
	cfg.TokenFile = filepath.Join(dir, "missing")
	if _, err := NewAdmin(pipeline.Settings{}, cfg, deps); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing token file: %v", err)
	}
}

func TestStoreBadStateFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json":  "{",
		"bad rate":  `{"all": {"default_sample_rate": 2}}`,
		"bad glob":  `{"pools": {"a": {"deny": ["x.[y"]}}}`,
		"bad rules": `{"workers": {"w": {"sampling_rules": [{"pattern": "*", "rate": -1}]}}}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewStore(pipeline.DefaultPolicy(), StoreOptions{StateFile: p}); !errors.Is(err, ErrBadStateFile) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: NewStore = %v, want ErrBadStateFile naming the file", name, err)
		}
	}
	// A state file that does not exist yet is an empty start.
	if _, err := NewStore(pipeline.DefaultPolicy(), StoreOptions{StateFile: filepath.Join(dir, "new.json")}); err != nil {
		t.Errorf("missing state file: %v", err)
	}
}

// TestTapAdminCap: the admin-wide cap bounds every subscription, whatever
// rate the client asks for; 0 means MaxTapRate.
func TestTapAdminCap(t *testing.T) {
	next := pipeline.ConsumerFunc(func(context.Context, *pipeline.Batch) error { return nil })
	tap := NewTap(next, 10)
	sub, err := tap.Subscribe(TapFilter{EventsPerSecond: 5000})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Unsubscribe(sub)
	_ = tap.Consume(context.Background(), &pipeline.Batch{Events: make([]pipeline.Event, 100)})
	if got, skipped := len(sub.C()), sub.Skipped(); got > 10 || got+int(skipped) != 100 {
		t.Errorf("asked 5000/s under a cap of 10: delivered %d, skipped %d", got, skipped)
	}
	// No rate asked: DefaultTapRate (100), but the cap is lower.
	dflt, err := tap.Subscribe(TapFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Unsubscribe(dflt)
	_ = tap.Consume(context.Background(), &pipeline.Batch{Events: make([]pipeline.Event, 100)})
	if got := len(dflt.C()); got > 10 {
		t.Errorf("no rate asked under a cap of 10: delivered %d", got)
	}
	if NewTap(next, 0).maxEPS != MaxTapRate {
		t.Error("a cap of 0 is not MaxTapRate")
	}
}

// TestTapDefaultsAndLimit: a subscription asking for no rate gets
// DefaultTapRate, and at most 16 subscriptions run at once.
func TestTapDefaultsAndLimit(t *testing.T) {
	tap := NewTap(pipeline.ConsumerFunc(func(context.Context, *pipeline.Batch) error { return nil }), 1000)
	first, err := tap.Subscribe(TapFilter{})
	if err != nil {
		t.Fatal(err)
	}
	_ = tap.Consume(context.Background(), &pipeline.Batch{Events: make([]pipeline.Event, 2*DefaultTapRate)})
	if got := len(first.C()); got > DefaultTapRate || got == 0 {
		t.Errorf("a tap with no rate got %d of %d events at once, want at most %d", got, 2*DefaultTapRate, DefaultTapRate)
	}
	for i := 1; i < 16; i++ {
		if _, err := tap.Subscribe(TapFilter{}); err != nil {
			t.Fatalf("tap %d: %v", i+1, err)
		}
	}
	if _, err := tap.Subscribe(TapFilter{}); !errors.Is(err, ErrTooManyTaps) {
		t.Errorf("tap 17: %v, want ErrTooManyTaps", err)
	}
	tap.closeAll()
	if tap.Subscribers() != 0 {
		t.Errorf("%d subscribers after closeAll", tap.Subscribers())
	}
}

// TestAdminReflection: the admin listener serves gRPC reflection (grpcurl
// works), also when a token is required: it only describes the API.
func TestAdminReflection(t *testing.T) {
	cfg := loopbackCfg()
	cfg.Token = "tok"
	f := startAdmin(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := reflectionpb.NewServerReflectionClient(f.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, "snakepipe.v1.Admin") {
		t.Fatalf("reflection lists %v, want snakepipe.v1.Admin", names)
	}
	_ = rc.CloseSend()
}

// TestAdminReadyz: /readyz answers 503 with the reason until Ready reports
// nil; /healthz answers as long as the process serves.
func TestAdminReadyz(t *testing.T) {
	var notReady atomic.Pointer[error]
	starting := errors.New("starting or shutting down")
	notReady.Store(&starting)
	a, err := NewAdmin(pipeline.Settings{}, loopbackCfg(), AdminDeps{Store: mustStore(t), Metrics: pipeline.NewMetrics(),
		Ready: func() error {
			if e := notReady.Load(); e != nil {
				return *e
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Shutdown(context.Background()) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + a.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body != "not ready: starting or shutting down\n" {
		t.Errorf("/readyz while not ready = %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while not ready = %d", code)
	}
	notReady.Store(nil)
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz when ready = %d %q", code, body)
	}
}
