package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/snakepipe/snakepipe/control"
	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// These tests drive the admin API of a running Service (built by the code
// path `snakepipe run` uses) while real worker streams are connected over
// real gRPC, and check what the workers receive.

// livenessTimeout is a liveness guard, not a timing assertion: it fails the test
// only if cond has not become true after a long time.
const livenessTimeout = 20 * time.Second

// runningService is startService for tests and benchmarks; it shuts the
// service down at cleanup (a second Shutdown is a no-op).
func runningService(tb testing.TB, yaml string, env ...string) *Service {
	tb.Helper()
	svc := startLoaded(tb, func() (*Config, error) {
		return LoadConfig(LoadOptions{File: "test.yaml", Data: []byte(yaml), Env: env, Factories: builtinFactories(io.Discard, nil)})
	})
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}

// serviceWithAdmin is a service with a file sink and the admin API on a free
// loopback port.
func serviceWithAdmin(tb testing.TB, dir string) *Service {
	tb.Helper()
	svc := runningService(tb, fileSinkConfig(dir, ""), "SNAKEPIPE_ADMIN__LISTEN=127.0.0.1:0")
	if svc.AdminAddr() == "" {
		tb.Fatal("admin is not listening")
	}
	return svc
}

func dialAdmin(tb testing.TB, addr string) pb.AdminClient {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return pb.NewAdminClient(conn)
}

// policyFrame is a Policy control frame and when the worker read it.
type policyFrame struct {
	p  *pb.Policy
	at time.Time
}

// streamWorker is a protocol worker with its own connection (like a worker
// process) whose control frames are read by a goroutine as they arrive.
type streamWorker struct {
	id, pool string
	conn     *grpc.ClientConn
	stream   grpc.BidiStreamingClient[pb.WorkerMessage, pb.ControlMessage]
	welcome  *pb.Policy
	frames   chan policyFrame // Policy frames after the Welcome, in order
	done     chan struct{}    // closed when the stream has ended
}

func connectStreamWorker(tb testing.TB, addr, id, pool string) *streamWorker {
	tb.Helper()
	w, err := dialStreamWorker(addr, id, pool)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// dialStreamWorker connects, says Hello and reads the Welcome.
func dialStreamWorker(addr, id, pool string) (*streamWorker, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	stream, err := pb.NewIngestClient(conn).Stream(context.Background())
	if err == nil {
		err = stream.Send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{
			WorkerId: id, Pool: pool, Hostname: "host-1", Pid: 4242, LibraryName: "test", LibraryVersion: "0", ProtocolVersion: 1,
		}}})
	}
	var msg *pb.ControlMessage
	if err == nil {
		msg, err = stream.Recv()
	}
	if err == nil && msg.GetWelcome() == nil {
		err = fmt.Errorf("first frame is %v, want a Welcome", msg)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("worker %s: %w", id, err)
	}
	w := &streamWorker{id: id, pool: pool, conn: conn, stream: stream, welcome: msg.GetWelcome().GetPolicy(),
		frames: make(chan policyFrame, 4096), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if p := m.GetPolicy(); p != nil {
				w.frames <- policyFrame{p: p, at: time.Now()}
			}
		}
	}()
	return w, nil
}

// next returns the next Policy frame the worker received.
func (w *streamWorker) next(tb testing.TB) *pb.Policy {
	tb.Helper()
	select {
	case f := <-w.frames:
		return f.p
	case <-w.done:
		tb.Fatalf("worker %s: stream ended while waiting for a Policy frame", w.id)
	case <-time.After(livenessTimeout):
		tb.Fatalf("worker %s: no Policy frame", w.id)
	}
	return nil
}

func (w *streamWorker) send(tb testing.TB, events ...*pb.Event) {
	tb.Helper()
	if err := w.stream.Send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: &pb.EventBatch{Events: events}}}); err != nil {
		tb.Fatalf("worker %s: send: %v", w.id, err)
	}
}

// close half-closes, waits for the host to end the stream, and closes the
// connection.
func (w *streamWorker) close(tb testing.TB) {
	tb.Helper()
	_ = w.stream.CloseSend()
	select {
	case <-w.done:
	case <-time.After(livenessTimeout):
		tb.Errorf("worker %s: host did not end the stream after half-close", w.id)
	}
	_ = w.conn.Close()
}

func awaitCondition(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(livenessTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func selectorPB(s control.Selector) *pb.Selector { return control.SelectorToPB(s) }

func ptrTo[T any](v T) *T { return &v }

// checkPolicy compares the fields of a received policy with want.
func checkPolicy(t *testing.T, who string, got *pb.Policy, version uint64, enabled bool, rate float64, deny []string) {
	t.Helper()
	if got.GetVersion() != version || got.GetEnabled() != enabled || got.GetDefaultSampleRate() != rate || !slices.Equal(got.GetDeny(), deny) {
		t.Errorf("%s got policy {version %d enabled %v rate %v deny %v}, want {version %d enabled %v rate %v deny %v}",
			who, got.GetVersion(), got.GetEnabled(), got.GetDefaultSampleRate(), got.GetDeny(), version, enabled, rate, deny)
	}
}

// TestAdminPolicyReachesExactlyMatchingWorkers: a change at a selector is
// sent to exactly the live streams it selects. "Nothing received" is shown
// without waiting: after each step, a later change every worker receives
// must be the very next frame of the workers that were not selected.
func TestAdminPolicyReachesExactlyMatchingWorkers(t *testing.T) {
	dir := t.TempDir()
	svc := serviceWithAdmin(t, dir)
	ac := dialAdmin(t, svc.AdminAddr())
	ctx := context.Background()
	addr := svc.IngestAddr()

	a1, a2 := connectStreamWorker(t, addr, "a1", "A"), connectStreamWorker(t, addr, "a2", "A")
	b1, b2 := connectStreamWorker(t, addr, "b1", "B"), connectStreamWorker(t, addr, "b2", "B")
	special := connectStreamWorker(t, addr, "w-special", "A") // in pool A, with its own worker-level patch
	everyone := []*streamWorker{a1, a2, b1, b2, special}
	poolA := []*streamWorker{a1, a2}
	for _, w := range everyone {
		checkPolicy(t, w.id+" welcome", w.welcome, 1, true, 1, nil)
	}

	set := func(s control.Selector, patch *pb.PolicyPatch, notified uint32) uint64 {
		t.Helper()
		resp, err := ac.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: selectorPB(s), Patch: patch})
		if err != nil {
			t.Fatalf("SetPolicy %s: %v", s, err)
		}
		if resp.WorkersNotified != notified {
			t.Errorf("SetPolicy %s notified %d workers, want %d", s, resp.WorkersNotified, notified)
		}
		return resp.Effective.GetVersion()
	}
	reset := func(req *pb.ResetPolicyRequest, notified uint32) uint64 {
		t.Helper()
		resp, err := ac.ResetPolicy(ctx, req)
		if err != nil {
			t.Fatalf("ResetPolicy %v: %v", req, err)
		}
		if resp.WorkersNotified != notified {
			t.Errorf("ResetPolicy %v notified %d workers, want %d", req, resp.WorkersNotified, notified)
		}
		return resp.Effective.GetVersion()
	}
	gcDeny := []string{"python.gc.*"}

	// 1. A worker-id selector reaches that worker only.
	v1 := set(control.Worker("w-special"), &pb.PolicyPatch{Enabled: ptrTo(true), SetDeny: true, Deny: gcDeny}, 1)
	checkPolicy(t, "w-special", special.next(t), v1, true, 1, gcDeny)

	// 2. Pool A off: its workers are told; the worker-id layer wins over
	// the pool layer, so w-special stays on.
	v2 := set(control.Pool("A"), &pb.PolicyPatch{Enabled: ptrTo(false)}, 3)
	for _, w := range poolA {
		checkPolicy(t, w.id, w.next(t), v2, false, 1, nil) // its first frame: step 1 did not reach it
	}
	checkPolicy(t, "w-special", special.next(t), v2, true, 1, gcDeny)

	// The host enforces it too: pool A's events are dropped on arrival,
	// w-special's and pool B's pass.
	for i, w := range everyone {
		w.send(t, callStop(int64(100+i), "", 1, w.id))
	}
	awaitCondition(t, "pool A's two events dropped as disabled", func() bool {
		v, _ := svc.Metrics().Value("snakepipe_control_events_dropped_total", pipeline.L("reason", "disabled")...)
		return v == 2
	})

	// 3. A change at "all" reaches everyone; for pool B it is the first
	// frame since the Welcome, so steps 1 and 2 did not reach B.
	v3 := set(control.All, &pb.PolicyPatch{DefaultSampleRate: ptrTo(0.5)}, 5)
	for _, w := range []*streamWorker{b1, b2} {
		checkPolicy(t, w.id, w.next(t), v3, true, 0.5, nil)
	}
	for _, w := range poolA {
		checkPolicy(t, w.id, w.next(t), v3, false, 0.5, nil)
	}
	checkPolicy(t, "w-special", special.next(t), v3, true, 0.5, gcDeny)

	// 4. Resetting pool A restores it, and reaches pool A only.
	v4 := reset(&pb.ResetPolicyRequest{Selector: selectorPB(control.Pool("A"))}, 3)
	for _, w := range poolA {
		checkPolicy(t, w.id, w.next(t), v4, true, 0.5, nil)
	}
	checkPolicy(t, "w-special", special.next(t), v4, true, 0.5, gcDeny)
	// 5. Resetting the worker drops its deny.
	v5 := reset(&pb.ResetPolicyRequest{Selector: selectorPB(control.Worker("w-special"))}, 1)
	checkPolicy(t, "w-special", special.next(t), v5, true, 0.5, nil)

	// 6. Reset everything: everyone is back on the config file's policy,
	// and each frame is the next one (B missed 4 and 5, pool A missed 5).
	v6 := reset(&pb.ResetPolicyRequest{Everything: true}, 5)
	for _, w := range everyone {
		p := w.next(t)
		checkPolicy(t, w.id, p, v6, true, 1, nil)
		if len(p.GetSamplingRules()) != 0 || len(p.GetAllow()) != 0 {
			t.Errorf("%s after reset --all: %v, want the config file's policy", w.id, p)
		}
	}
	resp, err := ac.GetPolicy(ctx, &pb.GetPolicyRequest{Selector: selectorPB(control.Pool("A"))})
	if err != nil || resp.Patch.GetEnabled() || resp.Patch.Enabled != nil || !resp.Effective.GetEnabled() {
		t.Errorf("GetPolicy pool=A after reset: %v, %v; want no patch and enabled", resp, err)
	}

	// No frame beyond those: the host ends each stream after a half-close
	// and the reader must not have queued anything more.
	for _, w := range everyone {
		w.close(t)
		if n := len(w.frames); n != 0 {
			t.Errorf("%s received %d Policy frames more than the changes that selected it", w.id, n)
		}
	}
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	worker, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	for _, e := range worker {
		got = append(got, e.Origin.WorkerID)
	}
	slices.Sort(got)
	if want := []string{"b1", "b2", "w-special"}; !slices.Equal(got, want) {
		t.Errorf("events in the sink from %v, want %v (pool A was off)", got, want)
	}
}

// connectMany connects n workers (ids w000...) in parallel, each on its own
// connection like worker processes.
func connectMany(tb testing.TB, addr string, n int, pool string) []*streamWorker {
	tb.Helper()
	ws := make([]*streamWorker, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range ws {
		wg.Go(func() { ws[i], errs[i] = dialStreamWorker(addr, fmt.Sprintf("w%03d", i), pool) })
	}
	wg.Wait()
	tb.Cleanup(func() {
		for _, w := range ws {
			if w != nil {
				_ = w.stream.CloseSend()
				_ = w.conn.Close()
				<-w.done
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	return ws
}

// TestAdminPolicyReachesAll100Workers: one change at "all" reaches each of
// 100 live streams exactly once, and the worker list shows every worker on
// the new version. (How fast: BenchmarkPolicyFanout100.)
func TestAdminPolicyReachesAll100Workers(t *testing.T) {
	svc := serviceWithAdmin(t, t.TempDir())
	ac := dialAdmin(t, svc.AdminAddr())
	ws := connectMany(t, svc.IngestAddr(), 100, "big")
	resp, err := ac.SetPolicy(context.Background(), &pb.SetPolicyRequest{Patch: &pb.PolicyPatch{SetDeny: true, Deny: []string{"python.memory.*"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.WorkersNotified != 100 {
		t.Errorf("workers notified = %d, want 100", resp.WorkersNotified)
	}
	v := resp.Effective.GetVersion()
	for _, w := range ws {
		checkPolicy(t, w.id, w.next(t), v, true, 1, []string{"python.memory.*"})
	}
	list, err := ac.ListWorkers(context.Background(), &pb.ListWorkersRequest{Pool: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Workers) != 100 {
		t.Fatalf("ListWorkers: %d workers, want 100", len(list.Workers))
	}
	for _, w := range list.Workers {
		if w.PolicyVersion != v {
			t.Errorf("worker %s policy_version %d, want %d", w.WorkerId, w.PolicyVersion, v)
		}
	}
}

// BenchmarkPolicyFanout100 measures the time from a SetPolicy call (over
// gRPC to the admin API) until the last of 100 connected worker streams
// has read the Policy frame. Each iteration is one change; ns/op is the
// whole round (the call plus waiting for all 100); ms-to-last is the
// mean time from just before the call to the last stream's read, and
// p50/p99/max-ms-to-last its distribution over the iterations. The 1- and
// 1000-worker variants show how it scales.
func BenchmarkPolicyFanout100(b *testing.B)  { benchmarkPolicyFanout(b, 100) }
func BenchmarkPolicyFanout1(b *testing.B)    { benchmarkPolicyFanout(b, 1) }
func BenchmarkPolicyFanout1000(b *testing.B) { benchmarkPolicyFanout(b, 1000) }

func benchmarkPolicyFanout(b *testing.B, workers int) {
	svc := serviceWithAdmin(b, b.TempDir())
	ac := dialAdmin(b, svc.AdminAddr())
	ws := connectMany(b, svc.IngestAddr(), workers, "bench")
	ctx := context.Background()
	var total time.Duration
	var rounds []time.Duration
	for i := 0; b.Loop(); i++ {
		rate := 0.5
		if i%2 == 1 {
			rate = 1
		}
		start := time.Now()
		resp, err := ac.SetPolicy(ctx, &pb.SetPolicyRequest{Patch: &pb.PolicyPatch{DefaultSampleRate: &rate}})
		if err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for _, w := range ws {
			select {
			case f := <-w.frames:
				if f.p.GetVersion() != resp.Effective.GetVersion() {
					b.Fatalf("worker %s got version %d, want %d", w.id, f.p.GetVersion(), resp.Effective.GetVersion())
				}
				if f.at.After(last) {
					last = f.at
				}
			case <-time.After(livenessTimeout):
				b.Fatalf("worker %s: no Policy frame", w.id)
			}
		}
		d := last.Sub(start)
		total += d
		rounds = append(rounds, d)
	}
	slices.Sort(rounds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(total)/float64(len(rounds)), "ms-to-last")
	b.ReportMetric(ms(rounds[len(rounds)/2]), "p50-ms-to-last")
	b.ReportMetric(ms(rounds[len(rounds)*99/100]), "p99-ms-to-last")
	b.ReportMetric(ms(rounds[len(rounds)-1]), "max-ms-to-last")
}

// TestAdminReconnectingWorkerGetsCurrentPolicy: policy is held by the host,
// not by the stream: a worker that reconnects, after a crash or a clean
// close, gets the policy in force in its Welcome, changes made while it was
// away included.
func TestAdminReconnectingWorkerGetsCurrentPolicy(t *testing.T) {
	svc := serviceWithAdmin(t, t.TempDir())
	ac := dialAdmin(t, svc.AdminAddr())
	ctx := context.Background()
	addr := svc.IngestAddr()
	mustSet := func(s control.Selector, p *pb.PolicyPatch) uint64 {
		t.Helper()
		resp, err := ac.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: selectorPB(s), Patch: p})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Effective.GetVersion()
	}
	memDeny := []string{"python.memory.*"}
	mustSet(control.Pool("A"), &pb.PolicyPatch{SetDeny: true, Deny: memDeny,
		SetSamplingRules: true, SamplingRules: []*pb.SamplingRule{{Pattern: "python.gc.*", Rate: 0.01}}})
	v := mustSet(control.Worker("w1"), &pb.PolicyPatch{Enabled: ptrTo(false)})

	w := connectStreamWorker(t, addr, "w1", "A")
	checkPolicy(t, "w1 first welcome", w.welcome, v, false, 1, memDeny)
	if r := w.welcome.GetSamplingRules(); len(r) != 1 || r[0].GetPattern() != "python.gc.*" || r[0].GetRate() != 0.01 {
		t.Errorf("welcome rules = %v", r)
	}

	// A crash: the connection goes away without a half-close.
	_ = w.conn.Close()
	<-w.done
	awaitCondition(t, "the host to notice w1 is gone", func() bool {
		l, err := ac.ListWorkers(ctx, &pb.ListWorkersRequest{})
		return err == nil && len(l.Workers) == 0
	})
	// Changed while it is away.
	v = mustSet(control.Pool("A"), &pb.PolicyPatch{DefaultSampleRate: ptrTo(0.25)})

	w = connectStreamWorker(t, addr, "w1", "A")
	checkPolicy(t, "w1 after reconnect", w.welcome, v, false, 0.25, memDeny)
	if len(w.welcome.GetSamplingRules()) != 1 {
		t.Errorf("rules lost on reconnect: %v", w.welcome)
	}
	// A clean close and reconnect, with a change in between.
	w.close(t)
	v = mustSet(control.Worker("w1"), &pb.PolicyPatch{Enabled: ptrTo(true)})
	w = connectStreamWorker(t, addr, "w1", "A")
	checkPolicy(t, "w1 after clean reconnect", w.welcome, v, true, 0.25, memDeny)
	defer w.close(t)

	// Others get their own layers: a new pool A worker without w1's patch,
	// and a pool B worker only the config file's policy.
	other := connectStreamWorker(t, addr, "w2", "A")
	defer other.close(t)
	checkPolicy(t, "w2 (pool A)", other.welcome, v, true, 0.25, memDeny)
	b := connectStreamWorker(t, addr, "w3", "B")
	defer b.close(t)
	checkPolicy(t, "w3 (pool B)", b.welcome, v, true, 1, nil)
}

// TestAdminInvalidPolicyChangesNothing: an invalid change is refused with
// InvalidArgument naming the field, the held and effective policy stay as
// they were, and no worker is sent anything.
func TestAdminInvalidPolicyChangesNothing(t *testing.T) {
	svc := serviceWithAdmin(t, t.TempDir())
	ac := dialAdmin(t, svc.AdminAddr())
	ctx := context.Background()
	a := connectStreamWorker(t, svc.IngestAddr(), "a1", "A")
	b := connectStreamWorker(t, svc.IngestAddr(), "b1", "B")
	defer a.close(t)
	defer b.close(t)
	resp, err := ac.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: selectorPB(control.Pool("A")), Patch: &pb.PolicyPatch{SetDeny: true, Deny: []string{"python.gc.*"}}})
	if err != nil {
		t.Fatal(err)
	}
	before := resp.Effective.GetVersion()
	if p := a.next(t); p.GetVersion() != before {
		t.Fatalf("a1 got version %d, want %d", p.GetVersion(), before)
	}

	selectors := []control.Selector{control.All, control.Pool("A"), control.Pool("B"), control.Worker("a1")}
	snapshot := func() []*pb.PolicyResponse {
		var out []*pb.PolicyResponse
		for _, s := range selectors {
			r, err := ac.GetPolicy(ctx, &pb.GetPolicyRequest{Selector: selectorPB(s)})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	held := snapshot()

	tests := []struct {
		name  string
		sel   *pb.Selector
		patch *pb.PolicyPatch
		want  []string // in the error message
	}{
		{"rate above 1", nil, &pb.PolicyPatch{DefaultSampleRate: ptrTo(1.5)}, []string{"default_sample_rate", "1.5", "[0, 1]"}},
		{"negative rate", selectorPB(control.Pool("A")), &pb.PolicyPatch{DefaultSampleRate: ptrTo(-0.1)}, []string{"default_sample_rate"}},
		{"NaN rate", selectorPB(control.Pool("B")), &pb.PolicyPatch{DefaultSampleRate: ptrTo(math.NaN())}, []string{"default_sample_rate"}},
		{"rule rate", selectorPB(control.Worker("a1")), &pb.PolicyPatch{SetSamplingRules: true, SamplingRules: []*pb.SamplingRule{{Pattern: "python.*", Rate: 2}}},
			[]string{"sampling_rules[0].rate"}},
		{"rule glob", nil, &pb.PolicyPatch{SetSamplingRules: true, SamplingRules: []*pb.SamplingRule{{Pattern: "python.[gc", Rate: 0.5}}},
			[]string{"sampling_rules[0].pattern"}},
		{"deny glob", selectorPB(control.Pool("A")), &pb.PolicyPatch{SetDeny: true, Deny: []string{"ok.*", "python.[gc"}}, []string{"deny[1]"}},
		{"allow glob with a valid enabled", nil, &pb.PolicyPatch{Enabled: ptrTo(false), SetAllow: true, Allow: []string{"[!"}}, []string{"allow[0]"}},
		{"empty pool name", &pb.Selector{Target: &pb.Selector_Pool{Pool: ""}}, &pb.PolicyPatch{Enabled: ptrTo(false)}, []string{"bad selector"}},
		{"empty patch", nil, &pb.PolicyPatch{}, []string{"changes nothing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ac.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: tt.sel, Patch: tt.patch})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("SetPolicy = %v, want InvalidArgument", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("error %q does not say %q", status.Convert(err).Message(), w)
				}
			}
		})
	}
	// The same through ctl: exit 1 and the server's reason.
	code, stdout, stderr := runCLI(t, nil, "ctl", "--admin", svc.AdminAddr(), "policy", "set", "pool=A", "--deny", "python.[gc")
	if code != 1 || !strings.Contains(stderr, "InvalidArgument") || !strings.Contains(stderr, "deny[0]") {
		t.Errorf("ctl policy set with a bad glob: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	after := snapshot()
	for i := range held {
		if !proto.Equal(held[i], after[i]) {
			t.Errorf("GetPolicy %s changed by refused requests:\n before %v\n after  %v", selectors[i], held[i], after[i])
		}
	}
	// No frame was sent: the next valid change is the next frame of both
	// workers, and its version is the next one (refusals bumped nothing).
	resp, err = ac.SetPolicy(ctx, &pb.SetPolicyRequest{Patch: &pb.PolicyPatch{DefaultSampleRate: ptrTo(0.5)}})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.Effective.GetVersion(); v != before+1 {
		t.Errorf("version after refusals and one change = %d, want %d", v, before+1)
	}
	for _, w := range []*streamWorker{a, b} {
		if p := w.next(t); p.GetVersion() != before+1 {
			t.Errorf("%s: next frame has version %d, want %d (a refused change was sent)", w.id, p.GetVersion(), before+1)
		}
	}
}

// TestAdminTapOnService: a tap of a running service sees the live events
// of real worker streams that match its filter, and a client cancel ends
// the subscription while the pipeline goes on delivering everything.
func TestAdminTapOnService(t *testing.T) {
	dir := t.TempDir()
	svc := serviceWithAdmin(t, dir)
	ac := dialAdmin(t, svc.AdminAddr())
	w := connectStreamWorker(t, svc.IngestAddr(), "tapped", "A")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := ac.Tap(ctx, &pb.TapRequest{Allow: []string{"python.call.*"}, MaxEventsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	awaitCondition(t, "the tap subscription", func() bool { return svc.tap.Subscribers() == 1 })
	var sent int
	for i := range 5 {
		w.send(t, callStop(int64(i), "", int64(i), "c"),
			&pb.Event{Name: "python.memory.sampled", TimestampNs: int64(i), Measurements: []*pb.MeasurementEntry{intM("rss_bytes", 1)}})
		sent += 2
	}
	for i := range 5 {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		e, err := pipeline.ParseEventJSON([]byte(ev.Json))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name != "python.call.stop" || e.TimestampNs != int64(i) || e.Origin == nil || e.Origin.WorkerID != "tapped" {
			t.Errorf("tapped event %d = %s", i, ev.Json)
		}
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel = %v, want Canceled", err)
	}
	awaitCondition(t, "the subscription to end after the client's cancel", func() bool { return svc.tap.Subscribers() == 0 })

	w.send(t, callStop(99, "", 99, "c"))
	sent++
	w.close(t)
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	if len(got) != sent {
		t.Errorf("sink has %d worker events, want all %d (the tap must not take any)", len(got), sent)
	}
}

// TestAdminTokenOffLoopback: bound off loopback the admin listener needs a
// token or the service does not start; with one, calls without it or with
// a wrong one are refused (gRPC and /metrics), and the probes stay open.
func TestAdminTokenOffLoopback(t *testing.T) {
	dir := t.TempDir()
	cfg, err := LoadConfig(LoadOptions{File: "test.yaml", Data: []byte(fileSinkConfig(dir, "")),
		Env: []string{"SNAKEPIPE_ADMIN__LISTEN=0.0.0.0:0"}, Factories: builtinFactories(io.Discard, nil)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(context.Background(), cfg, ServiceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Start(context.Background())
	if !errors.Is(err, control.ErrTokenRequired) || !strings.Contains(err.Error(), "admin.token") {
		_ = svc.Shutdown(context.Background())
		t.Fatalf("Start off loopback without a token = %v, want ErrTokenRequired naming admin.token", err)
	}
	// The ingest listener it had opened is closed again.
	if c, err := net.Dial("tcp", svc.IngestAddr()); svc.IngestAddr() != "" && err == nil {
		c.Close()
		t.Errorf("ingest still listening on %s after the refused start", svc.IngestAddr())
	}

	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc = runningService(t, fileSinkConfig(dir, ""), "SNAKEPIPE_ADMIN__LISTEN=0.0.0.0:0", "SNAKEPIPE_ADMIN__TOKEN_FILE="+tokenFile)
	_, port, _ := net.SplitHostPort(svc.AdminAddr())
	addr := net.JoinHostPort("127.0.0.1", port)
	ac := dialAdmin(t, addr)
	ctx := context.Background()
	for name, c := range map[string]context.Context{
		"no token":     ctx,
		"wrong token":  metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cre"),
		"not a bearer": metadata.AppendToOutgoingContext(ctx, "authorization", "s3cret"),
	} {
		if _, err := ac.ListWorkers(c, &pb.ListWorkersRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListWorkers with %s = %v, want Unauthenticated", name, err)
		}
		if _, err := ac.SetPolicy(c, &pb.SetPolicyRequest{Patch: &pb.PolicyPatch{Enabled: ptrTo(false)}}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("SetPolicy with %s = %v, want Unauthenticated", name, err)
		}
		if _, err := ac.ReloadConfig(c, &pb.ReloadConfigRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("ReloadConfig with %s = %v, want Unauthenticated", name, err)
		}
	}
	if !svc.store.PolicyFor(&pipeline.Origin{WorkerID: "x"}).Enabled {
		t.Error("an unauthenticated SetPolicy changed the policy")
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	if _, err := ac.ListWorkers(good, &pb.ListWorkersRequest{}); err != nil {
		t.Errorf("ListWorkers with the token: %v", err)
	}

	if code, _, stderr := runCLI(t, nil, "ctl", "--admin", addr, "workers"); code != 1 || !strings.Contains(stderr, "Unauthenticated") {
		t.Errorf("ctl without --token: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "ctl", "--admin", addr, "--token", "wrong", "workers"); code != 1 || !strings.Contains(stderr, "Unauthenticated") {
		t.Errorf("ctl with a wrong --token: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "ctl", "--admin", addr, "--token", "s3cret", "workers"); code != 0 {
		t.Errorf("ctl with the token: exit %d, stderr %q", code, stderr)
	}

	get := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "wrong", http.StatusUnauthorized},
		{"/metrics", "s3cret", http.StatusOK},
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s with token %q = %d, want %d", c.path, c.token, got, c.want)
		}
	}
}

// scrape reads a service's /metrics with the Prometheus text parser.
func scrapeMetrics(tb testing.TB, adminAddr string) map[string]*dto.MetricFamily {
	tb.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name with exactly the
// labels kv, and whether it exists.
func seriesValue(fams map[string]*dto.MetricFamily, name string, kv ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		want[kv[i]] = kv[i+1]
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestAdminMetricsMatchTraffic: /metrics of a running service parses with
// the Prometheus text parser, and its counters equal what a worker sent:
// N good events, M bad ones (unknown names, NaN), each counted once where
// it ended.
func TestAdminMetricsMatchTraffic(t *testing.T) {
	dir := t.TempDir()
	svc := serviceWithAdmin(t, dir)
	w := connectStreamWorker(t, svc.IngestAddr(), "m1", "A")
	const good, unknown, nan = 23, 4, 3
	var evs []*pb.Event
	for i := range good {
		evs = append(evs, callStop(int64(i), "", int64(i), "c"))
		if i < unknown {
			evs = append(evs, &pb.Event{Name: "python.cal.stop", TimestampNs: int64(i)})
		}
		if i < nan {
			evs = append(evs, &pb.Event{Name: "python.cpu.sampled", TimestampNs: int64(i),
				Measurements: []*pb.MeasurementEntry{floatM("cpu_percent", math.NaN())}})
		}
	}
	w.send(t, evs[:10]...)
	w.send(t, evs[10:]...)

	// Everything reached the sink: the good events and the host's
	// worker.connected event.
	const sunk = good + 1
	var fams map[string]*dto.MetricFamily
	awaitCondition(t, "the sink to write every accepted event", func() bool {
		fams = scrapeMetrics(t, svc.AdminAddr())
		v, _ := seriesValue(fams, "snakepipe_sink_events_written_total", "sink", "file/all")
		return v >= sunk
	})
	// Close the stream, so its disconnected event is counted too.
	w.close(t)
	awaitCondition(t, "the worker to be gone", func() bool {
		v, _ := seriesValue(scrapeMetrics(t, svc.AdminAddr()), "snakepipe_ingest_streams")
		return v == 0
	})
	const sunkAfterClose = sunk + 1 // worker.disconnected
	awaitCondition(t, "worker.disconnected in the sink", func() bool {
		fams = scrapeMetrics(t, svc.AdminAddr())
		v, _ := seriesValue(fams, "snakepipe_sink_events_written_total", "sink", "file/all")
		return v >= sunkAfterClose
	})

	want := []struct {
		name string
		kv   []string
		v    float64
	}{
		{"snakepipe_ingest_events_received_total", nil, good + unknown + nan},
		{"snakepipe_ingest_events_rejected_total", []string{"reason", "unknown_event"}, unknown},
		{"snakepipe_ingest_events_rejected_total", []string{"reason", "non_finite"}, nan},
		{"snakepipe_ingest_events_rejected_total", []string{"reason", "unknown_measurement"}, 0},
		{"snakepipe_ingest_frames_received_total", nil, 3}, // Hello + 2 batches
		{"snakepipe_ingest_streams", nil, 0},
		{"snakepipe_control_events_dropped_total", []string{"reason", "disabled"}, 0},
		{"snakepipe_control_events_dropped_total", []string{"reason", "filtered"}, 0},
		{"snakepipe_pipeline_events_received_total", []string{"pipeline", "default"}, sunkAfterClose},
		{"snakepipe_pipeline_sink_events_sent_total", []string{"pipeline", "default", "sink", "file/all"}, sunkAfterClose},
		{"snakepipe_pipeline_sink_events_failed_total", []string{"pipeline", "default", "sink", "file/all"}, 0},
		{"snakepipe_sink_events_written_total", []string{"sink", "file/all"}, sunkAfterClose},
		{"snakepipe_sink_dropped_total", []string{"sink", "file/all", "reason", "queue_full"}, 0},
		{"snakepipe_pipeline_events_dropped_total", []string{"pipeline", "default", "reason", "shutdown"}, 0},
		{"snakepipe_pipeline_queue_events", []string{"pipeline", "default"}, 0},
	}
	for _, c := range want {
		got, ok := seriesValue(fams, c.name, c.kv...)
		if !ok || got != c.v {
			t.Errorf("%s%v = %v (exists %v), want %v", c.name, c.kv, got, ok, c.v)
		}
	}
	var rejected float64
	for _, m := range fams["snakepipe_ingest_events_rejected_total"].GetMetric() {
		rejected += m.GetCounter().GetValue()
	}
	if rejected != unknown+nan {
		t.Errorf("rejected, all reasons = %v, want %d", rejected, unknown+nan)
	}
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(readEvents(t, filepath.Join(dir, "events.jsonl"))); got != sunkAfterClose {
		t.Errorf("the file has %d events, the counters said %d", got, sunkAfterClose)
	}
}

// documentedMetric is one row of a table in docs/operations.md
// "Self-metrics".
type documentedMetric struct {
	kind   string   // counter, gauge, histogram
	labels []string // sorted
}

// selfMetricsDoc parses the metric tables of docs/operations.md's
// "Self-metrics" section: | `name` | type | `label`, `label` or — | meaning |
func selfMetricsDoc(t *testing.T) map[string]documentedMetric {
	t.Helper()
	data, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Self-metrics\n")
	if !ok {
		t.Fatal(`docs/operations.md has no "## Self-metrics" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	out := map[string]documentedMetric{}
	for line := range strings.Lines(section) {
		if !strings.HasPrefix(line, "| `snakepipe_") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 4 {
			t.Errorf("docs/operations.md: row %q has %d cells, want 4", line, len(cells))
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		var labels []string
		for l := range strings.SplitSeq(cells[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "—" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		if _, dup := out[name]; dup {
			t.Errorf("docs/operations.md lists %s twice", name)
		}
		out[name] = documentedMetric{kind: strings.TrimSpace(cells[1]), labels: labels}
	}
	if len(out) == 0 {
		t.Fatal("docs/operations.md Self-metrics has no metric rows")
	}
	return out
}

// TestSelfMetricsDocumented keeps docs/operations.md true: a service built
// with every kind of stage and sink serves, after traffic, only metrics the
// "Self-metrics" tables list, with their type and labels; and every listed
// name is in the code.
func TestSelfMetricsDocumented(t *testing.T) {
	doc := selfMetricsDoc(t)

	wasm, err := filepath.Abs("../../plugins/testdata/filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	statsd, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer statsd.Close()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
log: {level: error}
ingest: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
stages:
  sample/s: {rate: 1}
  filter/f: {deny: ["python.gc.*"]}
  threshold/t: {events: "python.call.stop", measurement: duration, op: ge, value: 0}
  metadata/m: {set: {env: test}}
  ratelimit/r: {rules: [{pattern: "python.cpu.*", rate: 1000, burst: 1000}]}
  wasm/w: {path: %s, config: {min_duration_ns: "0"}}
sinks:
  file/all: {path: %s}
  statsd/s: {address: %s, aggregate_counters: true}
  stderr: {}
pipelines:
  main:
    stages: [sample/s, filter/f, threshold/t, metadata/m, ratelimit/r, wasm/w]
    sinks: [file/all, statsd/s]
  raw:
    sinks: [stderr]
plugins: {cache: false}
`, wasm, filepath.Join(dir, "events.jsonl"), statsd.LocalAddr())
	svc := runningService(t, yaml)
	w := connectStreamWorker(t, svc.IngestAddr(), "doc-worker", "A")
	w.send(t,
		callStop(1, "", 5, "c"),
		&pb.Event{Name: "python.call.stop", TimestampNs: 2, Metadata: meta("tool", "a\x01b")}, // repaired; threshold: missing
		&pb.Event{Name: "python.gc.completed", TimestampNs: 3, Measurements: []*pb.MeasurementEntry{intM("collected", 1)}},
		&pb.Event{Name: "python.cpu.sampled", TimestampNs: 4, Measurements: []*pb.MeasurementEntry{floatM("cpu_percent", 1)}},
		&pb.Event{Name: "python.nope", TimestampNs: 5},
	)
	w.close(t)
	awaitCondition(t, "events through both pipelines", func() bool {
		v, _ := svc.Metrics().Value("snakepipe_sink_events_written_total", pipeline.L("sink", "stderr")...)
		return v >= 4
	})
	fams := scrapeMetrics(t, svc.AdminAddr())

	var served int
	for name, f := range fams {
		if !strings.HasPrefix(name, "snakepipe_") {
			continue
		}
		served++
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s is served on /metrics but not listed in docs/operations.md Self-metrics", name)
			continue
		}
		if kind := strings.ToLower(f.GetType().String()); kind != d.kind {
			t.Errorf("%s is a %s, docs/operations.md says %s", name, kind, d.kind)
		}
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName())
			}
			slices.Sort(labels)
			if !slices.Equal(labels, d.labels) {
				t.Errorf("%s has labels %v, docs/operations.md says %v", name, labels, d.labels)
				break
			}
		}
	}
	t.Logf("%d snakepipe_ families served, %d documented", served, len(doc))
	if served < 40 {
		t.Errorf("only %d snakepipe_ families served; the config should build every kind of component", served)
	}

	// The other way: every documented name is written in the code (some
	// appear only on first use, so the scrape cannot show them all).
	var src strings.Builder
	err = filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".venv" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".git")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	for name := range doc {
		if !strings.Contains(code, `"`+name+`"`) {
			t.Errorf("docs/operations.md lists %s, which no Go source registers", name)
		}
	}
}

// TestCtlEndToEnd runs every `snakepipe ctl` command against a running
// service with a Wasm stage and real worker streams, in table and --json
// form, and checks the effect where there is one.
func TestCtlEndToEnd(t *testing.T) {
	wasm, err := filepath.Abs("../../plugins/testdata/filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// fields.wasm declares the field groups of its config value `fields`
	// (1: measurements); filter.wasm has no snk_fields, so it is sent all.
	fieldsWasm, err := filepath.Abs("../../plugins/testdata/fields.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yaml := strings.Replace(fileSinkConfig(dir, ""), "    sinks: [file/all]", "    stages: [wasm/slow, wasm/fields]\n    sinks: [file/all]", 1) +
		fmt.Sprintf("stages:\n  wasm/slow:\n    path: %s\n    config: {min_duration_ns: \"0\"}\n"+
			"  wasm/fields:\n    path: %s\n    kind: enrich\n    config: {fields: \"1\"}\n"+
			"plugins: {cache: false, watch: false}\n", wasm, fieldsWasm)
	svc := runningService(t, yaml, "SNAKEPIPE_ADMIN__LISTEN=127.0.0.1:0")
	admin := svc.AdminAddr()
	ctl := func(args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, nil, append([]string{"ctl", "--admin", admin}, args...)...)
		if code != 0 {
			t.Fatalf("ctl %v: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
		}
		return stdout, stderr
	}
	ctlJSON := func(v any, args ...string) {
		t.Helper()
		out, _ := ctl(append([]string{"--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("ctl --json %v: %v\n%s", args, err, out)
		}
	}
	a := connectStreamWorker(t, svc.IngestAddr(), "ctl-a", "A")
	b := connectStreamWorker(t, svc.IngestAddr(), "ctl-b", "B")
	defer a.close(t)
	defer b.close(t)
	a.send(t, callStop(1, "", 10, "x"), callStop(2, "", 20, "x"))
	awaitCondition(t, "ctl-a's events", func() bool {
		v, _ := svc.Metrics().Value("snakepipe_sink_events_written_total", pipeline.L("sink", "file/all")...)
		return v >= 4 // two connected events and ctl-a's two
	})

	// workers
	out, _ := ctl("workers")
	for _, want := range []string{"WORKER", "POOL", "EVENTS", "ctl-a", "ctl-b", "host-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl workers lacks %q:\n%s", want, out)
		}
	}
	var workers struct {
		Workers []struct {
			WorkerID       string `json:"worker_id"`
			Pool           string `json:"pool"`
			EventsReceived string `json:"events_received"` // uint64: a string in protojson
		} `json:"workers"`
	}
	ctlJSON(&workers, "workers")
	if len(workers.Workers) != 2 || workers.Workers[0].WorkerID != "ctl-a" || workers.Workers[0].Pool != "A" || workers.Workers[0].EventsReceived != "2" {
		t.Errorf("ctl --json workers = %+v", workers)
	}

	// policy set | get | reset, seen by the worker streams
	out, _ = ctl("policy", "set", "pool=A", "--enabled=false", "--rule", "python.gc.*=0.01")
	if !strings.Contains(out, "pool=A") || !strings.Contains(out, "python.gc.*=0.01") || !strings.Contains(out, "workers_notified     1") {
		t.Errorf("ctl policy set output:\n%s", out)
	}
	if p := a.next(t); p.GetEnabled() || len(p.GetSamplingRules()) != 1 {
		t.Errorf("ctl-a got %v after policy set pool=A", p)
	}
	var pol struct {
		Effective struct {
			Enabled           bool    `json:"enabled"`
			DefaultSampleRate float64 `json:"default_sample_rate"`
			Version           string  `json:"version"`
		} `json:"effective"`
		Patch struct {
			Enabled *bool `json:"enabled"`
		} `json:"patch"`
	}
	ctlJSON(&pol, "policy", "get", "pool=A")
	if pol.Effective.Enabled || pol.Patch.Enabled == nil || *pol.Patch.Enabled {
		t.Errorf("ctl --json policy get pool=A = %+v", pol)
	}
	out, _ = ctl("policy", "get", "pool=B")
	if !strings.Contains(out, "enabled              true") {
		t.Errorf("ctl policy get pool=B:\n%s", out)
	}
	ctl("policy", "set", "worker=ctl-b", "--deny", "python.memory.*")
	if p := b.next(t); !slices.Equal(p.GetDeny(), []string{"python.memory.*"}) {
		t.Errorf("ctl-b got %v after policy set worker=ctl-b", p)
	}
	ctl("policy", "reset", "pool=A")
	if p := a.next(t); !p.GetEnabled() || len(p.GetSamplingRules()) != 0 {
		t.Errorf("ctl-a got %v after policy reset pool=A", p)
	}
	ctl("policy", "reset", "--all")
	if p := b.next(t); len(p.GetDeny()) != 0 {
		t.Errorf("ctl-b got %v after policy reset --all", p)
	}
	if p := a.next(t); !p.GetEnabled() {
		t.Errorf("ctl-a got %v after policy reset --all", p)
	}

	// plugins, plugin reload NAME
	out, _ = ctl("plugins")
	if !strings.Contains(out, "wasm/slow") || !strings.Contains(out, "filter.wasm") {
		t.Errorf("ctl plugins:\n%s", out)
	}
	// FIELDS is a column of the table: each plugin's row has its groups
	// under it (the rows are sorted by name).
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 3 {
		t.Fatalf("ctl plugins printed %d lines, want a header and 2 rows:\n%s", len(rows), out)
	}
	col := strings.Index(rows[0], "FIELDS")
	for i, want := range map[int]string{1: "measurements", 2: "all"} {
		if col < 0 || len(rows[i]) < col || !strings.HasPrefix(rows[i][col:], want+" ") {
			t.Errorf("ctl plugins: row %d lacks %q under FIELDS:\n%s", i, want, out)
		}
	}
	if !strings.HasPrefix(rows[1], "wasm/fields ") || !strings.HasPrefix(rows[2], "wasm/slow ") {
		t.Errorf("ctl plugins rows are not wasm/fields, wasm/slow:\n%s", out)
	}
	type pluginList struct {
		Plugins []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			SHA256  string `json:"sha256"`
			Fields  string `json:"fields"`
		} `json:"plugins"`
	}
	var before, after pluginList
	ctlJSON(&before, "plugins")
	if len(before.Plugins) != 2 || before.Plugins[1].Name != "wasm/slow" || before.Plugins[1].SHA256 == "" ||
		before.Plugins[1].Fields != "all" || before.Plugins[0].Name != "wasm/fields" || before.Plugins[0].Fields != "measurements" {
		t.Fatalf("ctl --json plugins = %+v", before)
	}
	reloads := func() float64 {
		v, _ := svc.Metrics().Value("snakepipe_plugin_reloads_total", pipeline.L("plugin", "wasm/slow", "pipeline", "default", "result", "ok")...)
		return v
	}
	if r := reloads(); r != 1 {
		t.Errorf("plugin loads after start = %v, want 1", r)
	}
	out, _ = ctl("plugin", "reload", "wasm/slow")
	if !strings.Contains(out, "reloaded wasm/slow") || !strings.Contains(out, "fields all)") {
		t.Errorf("ctl plugin reload:\n%s", out)
	}
	if r := reloads(); r != 2 {
		t.Errorf("plugin loads after ctl plugin reload = %v, want 2", r)
	}
	ctlJSON(&after, "plugins")
	if len(after.Plugins) != 2 || after.Plugins[1].Version == before.Plugins[1].Version {
		t.Errorf("plugin version %+v after reload, was %+v", after, before)
	}
	var reloaded struct {
		Plugin struct {
			Name   string `json:"name"`
			Fields string `json:"fields"`
		} `json:"plugin"`
	}
	ctlJSON(&reloaded, "plugin", "reload", "wasm/fields")
	if reloaded.Plugin.Name != "wasm/fields" || reloaded.Plugin.Fields != "measurements" {
		t.Errorf("ctl --json plugin reload wasm/fields = %+v", reloaded)
	}
	if code, _, stderr := runCLI(t, nil, "ctl", "--admin", admin, "plugin", "reload", "wasm/nope"); code != 1 || !strings.Contains(stderr, "NotFound") {
		t.Errorf("ctl plugin reload of an unknown plugin: exit %d, %s", code, stderr)
	}

	// stats
	out, _ = ctl("stats")
	if !strings.Contains(out, "snakepipe_ingest_events_received_total") || !strings.Contains(out, "plugin=wasm/slow") {
		t.Errorf("ctl stats:\n%.2000s", out)
	}
	var stats struct {
		Metrics []struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
			Value  float64           `json:"value"`
		} `json:"metrics"`
	}
	ctlJSON(&stats, "stats")
	found := false
	for _, m := range stats.Metrics {
		if m.Name == "snakepipe_ingest_events_received_total" {
			found = m.Value == 2
		}
	}
	if !found {
		t.Errorf("ctl --json stats: snakepipe_ingest_events_received_total is not 2")
	}

	// tap --filter --format json|text, and --json
	tap := func(args ...string) []string {
		t.Helper()
		type result struct {
			code        int
			out, errOut string
		}
		done := make(chan result, 1)
		go func() {
			code, out, errOut := runCLI(t, nil, append([]string{"ctl", "--admin", admin}, args...)...)
			done <- result{code, out, errOut}
		}()
		awaitCondition(t, "the tap to subscribe", func() bool { return svc.tap.Subscribers() == 1 })
		a.send(t, &pb.Event{Name: "python.memory.sampled", TimestampNs: 5, Measurements: []*pb.MeasurementEntry{intM("rss_bytes", 1)}},
			callStop(6, "", 60, "tapped"), callStop(7, "", 70, "tapped"))
		var r result
		select {
		case r = <-done:
		case <-time.After(livenessTimeout):
			t.Fatalf("ctl %v did not stop after --limit", args)
		}
		if r.code != 0 {
			t.Fatalf("ctl %v: exit %d, %s", args, r.code, r.errOut)
		}
		awaitCondition(t, "the tap to end", func() bool { return svc.tap.Subscribers() == 0 })
		return strings.Split(strings.TrimSpace(r.out), "\n")
	}
	for _, args := range [][]string{
		{"tap", "--filter", "python.call.*", "--format", "json", "--limit", "2"},
		{"--json", "tap", "--filter", "python.call.*", "--limit", "2"},
	} {
		lines := tap(args...)
		if len(lines) != 2 {
			t.Fatalf("ctl %v printed %q", args, lines)
		}
		for _, l := range lines {
			var ev map[string]any
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["name"] != "python.call.stop" || ev["worker_id"] != "ctl-a" {
				t.Errorf("ctl %v line %s: %v", args, l, err)
			}
		}
	}
	lines := tap("tap", "--filter", "python.call.*", "--format", "text", "--limit", "2")
	if len(lines) != 2 || !strings.Contains(lines[0], "python.call.stop") || !strings.Contains(lines[0], "duration=60") ||
		!strings.Contains(lines[0], `command="tapped"`) || !strings.Contains(lines[0], "[A/ctl-a]") {
		t.Errorf("ctl tap --format text printed %q", lines)
	}
}

// TestAdminStateFileSurvivesRestart: with admin.state_file, runtime policy
// changes are the starting state of the next run (a worker's Welcome has
// them), until reset.
func TestAdminStateFileSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	env := []string{"SNAKEPIPE_ADMIN__LISTEN=127.0.0.1:0", "SNAKEPIPE_ADMIN__STATE_FILE=" + filepath.Join(dir, "policy-state.json")}
	run := func(step func(svc *Service, ac pb.AdminClient)) {
		t.Helper()
		svc := runningService(t, fileSinkConfig(dir, ""), env...)
		step(svc, dialAdmin(t, svc.AdminAddr()))
		if err := svc.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	memDeny := []string{"python.memory.*"}
	run(func(_ *Service, ac pb.AdminClient) {
		if _, err := ac.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: selectorPB(control.Pool("A")), Patch: &pb.PolicyPatch{SetDeny: true, Deny: memDeny}}); err != nil {
			t.Fatal(err)
		}
		if _, err := ac.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: selectorPB(control.Worker("w1")), Patch: &pb.PolicyPatch{DefaultSampleRate: ptrTo(0.25)}}); err != nil {
			t.Fatal(err)
		}
	})
	run(func(svc *Service, ac pb.AdminClient) {
		w := connectStreamWorker(t, svc.IngestAddr(), "w1", "A")
		defer w.close(t)
		if p := w.welcome; !slices.Equal(p.GetDeny(), memDeny) || p.GetDefaultSampleRate() != 0.25 {
			t.Errorf("welcome after restart = %v, want the persisted deny and rate", p)
		}
		other := connectStreamWorker(t, svc.IngestAddr(), "w2", "B")
		defer other.close(t)
		if p := other.welcome; len(p.GetDeny()) != 0 || p.GetDefaultSampleRate() != 1 {
			t.Errorf("pool B welcome after restart = %v, want the config file's policy", p)
		}
		if _, err := ac.ResetPolicy(ctx, &pb.ResetPolicyRequest{Everything: true}); err != nil {
			t.Fatal(err)
		}
	})
	run(func(svc *Service, _ pb.AdminClient) {
		w := connectStreamWorker(t, svc.IngestAddr(), "w1", "A")
		defer w.close(t)
		if p := w.welcome; len(p.GetDeny()) != 0 || p.GetDefaultSampleRate() != 1 {
			t.Errorf("welcome after reset --all and restart = %v, want the config file's policy", p)
		}
	})
}

// TestAdminPortInUse: a second instance on the same admin port does not
// start, says why, and releases what it had opened.
func TestAdminPortInUse(t *testing.T) {
	first := serviceWithAdmin(t, t.TempDir())
	cfg, err := LoadConfig(LoadOptions{File: "test.yaml", Data: []byte(fileSinkConfig(t.TempDir(), "")),
		Env: []string{"SNAKEPIPE_ADMIN__LISTEN=" + first.AdminAddr()}, Factories: builtinFactories(io.Discard, nil)})
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewService(context.Background(), cfg, ServiceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start(context.Background())
	if err == nil {
		_ = second.Shutdown(context.Background())
		t.Fatal("a second instance on the same admin port started")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "admin: listen "+first.AdminAddr()) {
		t.Errorf("error = %q, want admin: listen %s ... address already in use", err, first.AdminAddr())
	}
}

// TestAdminStalledTapDoesNotBlockPipeline: a tap client that stops
// reading does not hold the pipeline back: everything still reaches the
// sink, and the tap's subscription skips (and counts) what it cannot take.
func TestAdminStalledTapDoesNotBlockPipeline(t *testing.T) {
	svc := serviceWithAdmin(t, t.TempDir())
	ac := dialAdmin(t, svc.AdminAddr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := ac.Tap(ctx, &pb.TapRequest{MaxEventsPerSecond: control.MaxTapRate})
	if err != nil {
		t.Fatal(err)
	}
	awaitCondition(t, "the tap subscription", func() bool { return svc.tap.Subscribers() == 1 })
	// Never Recv: gRPC flow control soon blocks the server's Send.
	w := connectStreamWorker(t, svc.IngestAddr(), "busy", "A")
	const batches, size = 40, 500
	for b := range batches {
		evs := make([]*pb.Event, size)
		for i := range evs {
			ts := int64(b*size + i)
			evs[i] = callStop(ts, "", ts, strings.Repeat("x", 200))
		}
		w.send(t, evs...)
	}
	awaitCondition(t, "every event in the sink while the tap is stalled", func() bool {
		v, _ := svc.Metrics().Value("snakepipe_sink_events_written_total", pipeline.L("sink", "file/all")...)
		return v == batches*size+1 // and the connected event
	})
	// Now read: the next events sent carry the count of those skipped
	// while the client was not reading (the subscription's buffer still
	// holds events, so there is a next one).
	var got, skipped uint64
	for skipped == 0 {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		got++
		skipped += ev.Skipped
		if got > batches*size {
			t.Fatalf("%d events delivered to a stalled tap and none reported skipped", got)
		}
	}
	if got+skipped > batches*size {
		t.Errorf("tap delivered %d and skipped %d of %d events", got, skipped, batches*size)
	}
	cancel()
	w.close(t)
}
