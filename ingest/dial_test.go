package ingest

import (
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/snakepipe/snakepipe/pipeline"
	bridge "github.com/snakepipe/snakepipe/proto/snakepit/bridge"
)

// fakeSnakepit is a Snakepit worker's BridgeService, served over real gRPC:
// it records the control frames it receives and streams TelemetryEvents.
// The first call ends after sending its events (the worker "goes away");
// later calls stay open until the host ends them.
type fakeSnakepit struct {
	bridge.UnimplementedBridgeServiceServer
	calls    atomic.Int32
	controls chan *bridge.TelemetryControl
	batches  [][]*bridge.TelemetryEvent // events to send on call i
}

func (f *fakeSnakepit) StreamTelemetry(st grpc.BidiStreamingServer[bridge.TelemetryControl, bridge.TelemetryEvent]) error {
	n := int(f.calls.Add(1))
	// Snakepit's host sends toggle, then sampling and filter.
	for i := 0; i < 3; i++ {
		m, err := st.Recv()
		if err != nil {
			return err
		}
		f.controls <- m
	}
	if n-1 < len(f.batches) {
		for _, e := range f.batches[n-1] {
			if err := st.Send(e); err != nil {
				return err
			}
		}
	}
	if n == 1 {
		return nil
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return nil // host went away
		}
		f.controls <- m
	}
}

func telemetryEvent(parts ...string) *bridge.TelemetryEvent {
	return &bridge.TelemetryEvent{
		EventParts:   parts,
		Measurements: map[string]*bridge.TelemetryValue{"count": {Value: &bridge.TelemetryValue_IntValue{IntValue: 10}}},
		Metadata:     map[string]string{"function": "f"},
		TimestampNs:  123,
	}
}

func TestDialMode(t *testing.T) {
	fake := &fakeSnakepit{
		controls: make(chan *bridge.TelemetryControl, 64),
		batches: [][]*bridge.TelemetryEvent{
			{telemetryEvent("python", "call", "start"), telemetryEvent("no", "such"), telemetryEvent("python", "call", "stop")},
			{telemetryEvent("tool", "execution", "stop")},
		},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	bridge.RegisterBridgeServiceServer(gs, fake)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	defer func() {
		gs.Stop()
		<-served
	}()

	cfg := testConfig()
	cfg.Dial = []DialTarget{{Address: lis.Addr().String(), WorkerID: "snakepit-1", Pool: "sp"}}
	cfg.DialBackoff = BackoffConfig{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	policy := pipeline.Policy{Enabled: true, DefaultSampleRate: 0.5, Allow: []string{"python.*"}, Deny: []string{"python.memory.*"}}
	ts := startServer(t, cfg, func(d *Deps) { d.Policy = StaticPolicy(policy) })

	// Both connections begin with toggle, sampling (default rate, no
	// patterns), filter.
	for call := 0; call < 2; call++ {
		tg, sm, fl := <-fake.controls, <-fake.controls, <-fake.controls
		if !tg.GetToggle().GetEnabled() || tg.GetToggle() == nil {
			t.Errorf("call %d: first control = %v, want toggle(true)", call, tg)
		}
		if sm.GetSampling().GetSamplingRate() != 0.5 || len(sm.GetSampling().GetEventPatterns()) != 0 {
			t.Errorf("call %d: second control = %v, want sampling 0.5", call, sm)
		}
		if !slices.Equal(fl.GetFilter().GetAllow(), policy.Allow) || !slices.Equal(fl.GetFilter().GetDeny(), policy.Deny) {
			t.Errorf("call %d: third control = %v, want the filter", call, fl)
		}
	}
	ts.rec.waitFor(t, "events from both connections", func([]pipeline.Event) bool { return len(ts.rec.events(true)) == 3 })
	got := ts.rec.events(true)
	var names []string
	for _, e := range got {
		names = append(names, e.Name)
		if e.Origin == nil || e.Origin.WorkerID != "snakepit-1" || e.Origin.Pool != "sp" || e.Origin.Addr != lis.Addr().String() {
			t.Errorf("origin = %+v", e.Origin)
		}
		if v, _ := e.Measurement("count"); v != pipeline.IntValue(10) {
			t.Errorf("count = %v", v)
		}
	}
	if !slices.Equal(names, []string{"python.call.start", "python.call.stop", "tool.execution.stop"}) {
		t.Errorf("names = %q", names)
	}
	if v := ts.metric(t, metricRejected, pipeline.Label{Key: "reason", Value: "unknown_event"}); v != 1 {
		t.Errorf("rejected unknown_event = %v, want 1", v)
	}
	if fake.calls.Load() < 2 {
		t.Errorf("calls = %d: no reconnect after the worker went away", fake.calls.Load())
	}

	// A policy change reaches the Snakepit worker as control frames.
	var infos []WorkerInfo
	for len(infos) == 0 || infos[0].Mode != "dial" {
		infos = ts.Workers()
	}
	next := pipeline.Policy{Enabled: false, DefaultSampleRate: 0.1, Version: 2}
	if n := ts.PushPolicy(func(o *pipeline.Origin) bool { return o.WorkerID == "snakepit-1" }, func(*pipeline.Origin) pipeline.Policy { return next }); n != 1 {
		t.Fatalf("PushPolicy matched %d", n)
	}
	tg, sm, fl := <-fake.controls, <-fake.controls, <-fake.controls
	if tg.GetToggle() == nil || tg.GetToggle().GetEnabled() || sm.GetSampling().GetSamplingRate() != 0.1 || fl.GetFilter() == nil {
		t.Errorf("pushed controls = %v %v %v", tg, sm, fl)
	}
}

func TestJitter(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 10 * time.Millisecond, time.Minute} {
		for i := 0; i < 100; i++ {
			if j := jitter(d); j < d/2 || j > d {
				t.Fatalf("jitter(%s) = %s, want in [%s, %s]", d, j, d/2, d)
			}
		}
	}
}
