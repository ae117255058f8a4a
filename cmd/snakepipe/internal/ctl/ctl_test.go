package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/control"
	"github.com/snakepipe/snakepipe/pipeline"
)

type fixture struct {
	addr  string
	store *control.Store
	tap   *control.Tap
}

func start(t *testing.T, token string) *fixture {
	t.Helper()
	store, err := control.NewStore(pipeline.DefaultPolicy(), control.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := pipeline.NewMetrics()
	m.Counter("snakepipe_ingest_events_received_total", "x").Add(12)
	tap := control.NewTap(pipeline.ConsumerFunc(func(context.Context, *pipeline.Batch) error { return nil }), 0)
	cfg := control.DefaultAdminConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Token = token
	a, err := control.NewAdmin(pipeline.Settings{}, cfg, control.AdminDeps{
		Store: store, Metrics: m, Tap: tap,
		Workers: func() []control.WorkerInfo {
			return []control.WorkerInfo{{WorkerID: "w1", Pool: "gpu", Hostname: "h1", PID: 7, ConnectedSince: time.Now(), EventsReceived: 12,
				Dropped: map[string]uint64{"queue_full": 2}}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	return &fixture{addr: a.Addr(), store: store, tap: tap}
}

func (f *fixture) ctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), append([]string{"--admin", f.addr}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestCtlCommands(t *testing.T) {
	f := start(t, "")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"workers table", []string{"workers"}, 0, []string{"WORKER", "w1", "gpu", "queue_full=2"}},
		{"policy get", []string{"policy", "get"}, 0, []string{"enabled", "true", "default_sample_rate", "1"}},
		{"policy set pool", []string{"policy", "set", "pool=gpu", "--enabled=false", "--rule", "python.gc.*=0.01"}, 0,
			[]string{"pool=gpu", "enabled              false", "python.gc.*=0.01"}},
		{"policy set invalid", []string{"policy", "set", "--rate", "1.5"}, 1, []string{"InvalidArgument", "default_sample_rate"}},
		{"policy set nothing", []string{"policy", "set"}, 2, []string{"nothing to change"}},
		{"bad selector", []string{"policy", "get", "host=x"}, 2, []string{"bad selector"}},
		{"stats", []string{"stats"}, 0, []string{"snakepipe_ingest_events_received_total", "12"}},
		{"plugins", []string{"plugins"}, 0, []string{"PLUGIN"}},
		{"unknown", []string{"frobnicate"}, 2, []string{"unknown command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := f.ctl(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out+errOut, want) {
					t.Errorf("output lacks %q:\n%s%s", want, out, errOut)
				}
			}
		})
	}
	out, _, code := f.ctl(t, "--json", "workers")
	var list struct {
		Workers []struct {
			WorkerID string            `json:"worker_id"`
			Dropped  map[string]string `json:"dropped"`
		} `json:"workers"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list.Workers) != 1 || list.Workers[0].WorkerID != "w1" || list.Workers[0].Dropped["queue_full"] != "2" {
		t.Fatalf("workers --json: %d %v %s", code, err, out)
	}
	if p := f.store.PolicyFor(&pipeline.Origin{WorkerID: "x", Pool: "gpu"}); p.Enabled || len(p.SamplingRules) != 1 {
		t.Fatalf("policy set did not reach the store: %+v", p)
	}
	if _, _, code := f.ctl(t, "policy", "reset", "--all"); code != 0 {
		t.Fatal("reset --all failed")
	}
	if p := f.store.PolicyFor(&pipeline.Origin{WorkerID: "x", Pool: "gpu"}); !p.Enabled {
		t.Fatal("reset --all did not restore")
	}
}

func TestCtlToken(t *testing.T) {
	f := start(t, "tok")
	// 127.0.0.1 with a token configured: the token is still enforced.
	if _, errOut, code := f.ctl(t, "workers"); code != 1 || !strings.Contains(errOut, "Unauthenticated") {
		t.Fatalf("without token: %d %s", code, errOut)
	}
	if _, errOut, code := f.ctl(t, "--token", "tok", "workers"); code != 0 {
		t.Fatalf("with token: %d %s", code, errOut)
	}
}

func TestCtlTap(t *testing.T) {
	f := start(t, "")
	done := make(chan struct{})
	var out, errOut bytes.Buffer
	go func() {
		defer close(done)
		Main(context.Background(), []string{"--admin", f.addr, "tap", "--filter", "python.*", "--format", "json", "--limit", "2"}, &out, &errOut)
	}()
	for f.tap.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	o := &pipeline.Origin{WorkerID: "w1", Pool: "p"}
	_ = f.tap.Consume(context.Background(), &pipeline.Batch{Events: []pipeline.Event{
		{Name: "tool.x", Origin: o}, {Name: "python.a", Origin: o, Measurements: []pipeline.Measurement{{Key: "d", Value: pipeline.IntValue(3)}}}, {Name: "python.b", Origin: o},
	}})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tap did not stop after --limit 2")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("tap printed %q (stderr %q)", out.String(), errOut.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["name"] != "python.a" || first["worker_id"] != "w1" {
		t.Fatalf("first line %s: %v", lines[0], err)
	}
}

func TestTextLine(t *testing.T) {
	e := pipeline.Event{Name: "python.call.stop", TimestampNs: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC).UnixNano(), SampleRate: 0.5,
		Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200)}},
		Metadata:     []pipeline.Label{{Key: "tool", Value: "x y"}}, Origin: &pipeline.Origin{WorkerID: "w1", Pool: "p"}}
	want := `03:04:05.000006  python.call.stop             duration=1200 tool="x y"  [p/w1] @0.5`
	if got := textLine(&e); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}
