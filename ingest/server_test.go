package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

func TestWelcomeAndBatchWithHostContext(t *testing.T) {
	policy := pipeline.Policy{Enabled: true, DefaultSampleRate: 0.5, Deny: []string{"python.memory.*"}, Version: 3,
		SamplingRules: []pipeline.SamplingRule{{Pattern: "python.call.*", Rate: 0.25}}}
	ts := startServer(t, testConfig(), func(d *Deps) { d.Policy = StaticPolicy(policy) })
	w, welcome := connect(t, ts.addr, "w1", "")

	if got := policyFromProto(welcome.GetPolicy()); !policyEqual(got, policy) {
		t.Errorf("Welcome policy = %+v, want %+v", got, policy)
	}
	if welcome.GetProtocolVersion() != 1 || welcome.GetMaxMessageBytes() != 4<<20 || welcome.GetStatsIntervalMs() != 5000 || welcome.GetHostId() == "" {
		t.Errorf("Welcome = %v", welcome)
	}

	ev1 := realisticEvent(1) // event_parts, resolved through LookupParts
	ev2 := namedEvent("tool.execution.stop", 2)
	w.send(batch(ev1, ev2))
	evs := ts.rec.waitFor(t, "two worker events", func(evs []pipeline.Event) bool { return len(ts.rec.events(true)) == 2 })

	if evs[0].Name != EventWorkerConnected {
		t.Errorf("first event = %q, want %q", evs[0].Name, EventWorkerConnected)
	}
	if id, _ := evs[0].Meta("worker_id"); evs[0].Origin != nil || id != "w1" {
		t.Errorf("connected event: Origin %v, worker_id %q; want nil and w1", evs[0].Origin, id)
	}
	if mode, _ := evs[0].Meta("mode"); mode != "stream" {
		t.Errorf("connected event mode = %q", mode)
	}
	got := ts.rec.events(true)
	if got[0].Name != "python.call.stop" || got[1].Name != "tool.execution.stop" {
		t.Fatalf("names = %q, %q", got[0].Name, got[1].Name)
	}
	for i, e := range got {
		if e.Origin == nil || e.Origin.WorkerID != "w1" || e.Origin.Pool != "default" || e.Origin.Hostname != "host-1" ||
			e.Origin.PID != 4242 || !strings.HasPrefix(e.Origin.Addr, "127.0.0.1:") {
			t.Errorf("event %d origin = %+v", i, e.Origin)
		}
		if e.ReceivedNs == 0 || e.Seq == 0 {
			t.Errorf("event %d: ReceivedNs %d, Seq %d", i, e.ReceivedNs, e.Seq)
		}
	}
	if got[0].Origin != got[1].Origin {
		t.Error("events of one stream must share one Origin")
	}
	if got[1].Seq != got[0].Seq+1 || evs[0].Seq >= got[0].Seq {
		t.Errorf("Seq not increasing in arrival order: %d, %d, %d", evs[0].Seq, got[0].Seq, got[1].Seq)
	}
	if v, _ := got[0].Meta("module"); v != "model.inference" {
		t.Errorf("metadata module = %q", v)
	}
	if d := eventsDiff([]pipeline.Event{withoutHost(got[0])}, []pipeline.Event{refEvent(ev1, knownNames)}); d != "" {
		t.Errorf("event differs from its wire form: %s", d)
	}
	if v := ts.metric(t, metricReceived); v != 2 {
		t.Errorf("%s = %v, want 2", metricReceived, v)
	}
	if v := ts.metric(t, metricStreams); v != 1 {
		t.Errorf("%s = %v, want 1", metricStreams, v)
	}

	// Stats frames land in the registry.
	w.send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Stats{Stats: &pb.WorkerStats{QueueDepth: 7, QueueCapacity: 1024, Dropped: map[string]uint64{"queue_full": 3}}}})
	w.send(batch(namedEvent("python.call.stop", 3))) // processed after the stats frame
	ts.rec.waitFor(t, "third event", func([]pipeline.Event) bool { return len(ts.rec.events(true)) == 3 })
	infos := ts.Workers()
	if len(infos) != 1 || infos[0].WorkerID != "w1" || infos[0].LibraryName != "test-client" || infos[0].EventsReceived != 3 ||
		infos[0].Stats == nil || infos[0].Stats.QueueDepth != 7 || infos[0].Stats.Dropped["queue_full"] != 3 || infos[0].PolicyVersion != 3 {
		t.Errorf("Workers() = %+v", infos)
	}

	// A clean half-close ends the stream with OK and a disconnected event.
	if err := w.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.recvUntilError(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseSend: %v, want io.EOF (status OK)", err)
	}
	evs = ts.rec.waitFor(t, "disconnected event", func(evs []pipeline.Event) bool { return countNamed(evs, EventWorkerDisconnected) == 1 })
	last := evs[len(evs)-1]
	if r, _ := last.Meta("reason"); r != "eof" {
		t.Errorf("disconnect reason = %q, want eof", r)
	}
	if n, _ := last.Measurement("events"); n.Int != 3 {
		t.Errorf("disconnected events = %v, want 3", n)
	}
}

func withoutHost(e pipeline.Event) pipeline.Event {
	e.Origin, e.ReceivedNs, e.Seq = nil, 0, 0
	return e
}

func policyEqual(a, b pipeline.Policy) bool {
	return a.Enabled == b.Enabled && a.DefaultSampleRate == b.DefaultSampleRate && a.Version == b.Version &&
		slices.Equal(a.Allow, b.Allow) && slices.Equal(a.Deny, b.Deny) && slices.Equal(a.SamplingRules, b.SamplingRules)
}

func TestRejectsCountedAndNoticed(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	w, _ := connect(t, ts.addr, "w-rej", "p")
	bad := namedEvent("python.call.stop", 5)
	bad.Measurements = append(bad.Measurements, &pb.MeasurementEntry{Key: "bad", Value: &pb.Value{Value: &pb.Value_IntValue{IntValue: 1}}})
	fixed := namedEvent("python.call.stop", 6)
	fixed.Metadata = []*pb.MetadataEntry{{Key: "function", Value: "f\x01g"}}
	w.send(batch(
		namedEvent("python.call.stpo", 1), // typo
		namedEvent("python.call.stop", 2),
		&pb.Event{EventParts: []string{"my", "event"}},
		bad,
		fixed,
	))
	ts.rec.waitFor(t, "accepted events", func([]pipeline.Event) bool { return len(ts.rec.events(true)) == 2 })
	got := ts.rec.events(true)
	if v, _ := got[1].Meta("function"); v != "fg" {
		t.Errorf("sanitized metadata = %q, want %q", v, "fg")
	}
	// Rejected events do not hold Seq numbers: accepted ones are consecutive.
	if got[1].Seq != got[0].Seq+1 {
		t.Errorf("Seq %d, %d", got[0].Seq, got[1].Seq)
	}

	// The worker hears about it.
	var notice *pb.RejectNotice
	for notice == nil {
		if m := w.recv(); m.GetRejects() != nil {
			notice = m.GetRejects()
		}
	}
	if notice.GetRejected()["unknown_event"] != 2 || notice.GetRejected()["unknown_measurement"] != 1 {
		t.Errorf("RejectNotice counts = %v", notice.GetRejected())
	}
	if !slices.Equal(notice.GetRecentUnknownNames(), []string{"python.call.stpo", "my.event"}) {
		t.Errorf("RejectNotice names = %q", notice.GetRecentUnknownNames())
	}

	// Metrics by reason only; per-worker counts in the registry.
	for reason, want := range map[string]float64{"unknown_event": 2, "unknown_measurement": 1} {
		if v := ts.metric(t, metricRejected, pipeline.Label{Key: "reason", Value: reason}); v != want {
			t.Errorf("rejected{%s} = %v, want %v", reason, v, want)
		}
	}
	if v := ts.metric(t, metricFixed, pipeline.Label{Key: "fix", Value: "control_chars"}); v != 1 {
		t.Errorf("fixed{control_chars} = %v, want 1", v)
	}
	if v := ts.metric(t, metricReceived); v != 5 {
		t.Errorf("received = %v, want 5", v)
	}
	info := ts.Workers()[0]
	if info.EventsRejected["unknown_event"] != 2 || info.EventsRejected["unknown_measurement"] != 1 || info.EventsReceived != 5 {
		t.Errorf("worker info = %+v", info)
	}

	// No further notice while nothing changes; the next one after a change
	// is cumulative.
	w.send(batch(namedEvent("nope.nope", 1)))
	for {
		m := w.recv()
		if n := m.GetRejects(); n != nil {
			if n.GetRejected()["unknown_event"] != 3 {
				t.Errorf("second notice = %v, want cumulative unknown_event 3", n.GetRejected())
			}
			break
		}
	}
}

// rawStream opens Ingest/Stream with the raw codec, to send bytes the
// generated client cannot produce.
func rawStream(t *testing.T, addr string) grpc.ClientStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cs, err := dial(t, addr).NewStream(ctx, &ingestServiceDesc.Streams[0], pb.Ingest_Stream_FullMethodName, grpc.ForceCodecV2(newFrameCodec()))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// finalStatus reads until the stream ends and returns its status.
func finalStatus(t *testing.T, cs grpc.ClientStream) (*status.Status, []*pb.ControlMessage) {
	t.Helper()
	var msgs []*pb.ControlMessage
	for {
		m := &pb.ControlMessage{}
		if err := cs.RecvMsg(m); err != nil {
			return status.Convert(err), msgs
		}
		msgs = append(msgs, m)
	}
}

func TestBadStreams(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageBytes = 4096
	cfg.MaxBatchEvents = 5
	ts := startServer(t, cfg, nil)
	// A second server where nobody can make the Hello deadline.
	cfg.HelloTimeout = time.Millisecond
	impatient := startServer(t, cfg, nil)
	roomy := startServer(t, testConfig(), nil) // 4 MiB frames
	helloBytes := mustMarshal(t, hello("w-bad", ""))
	big := batch()
	for i := 0; i < 40; i++ {
		big.GetBatch().Events = append(big.GetBatch().Events, realisticEvent(i))
	}
	many := batch()
	for i := 0; i < 6; i++ {
		many.GetBatch().Events = append(many.GetBatch().Events, &pb.Event{})
	}
	wide := &pb.Event{Name: "python.call.stop"}
	for i := 0; i <= maxEventEntries; i++ {
		wide.Metadata = append(wide.Metadata, &pb.MetadataEntry{})
	}
	tests := []struct {
		name    string
		frames  [][]byte
		code    codes.Code
		msg     string
		invalid string // frames_invalid reason
		welcome bool
		server  *testServer
	}{
		{name: "batch before hello", frames: [][]byte{mustMarshal(t, batch(namedEvent("python.call.stop", 1)))},
			code: codes.InvalidArgument, msg: "first frame must be a Hello", invalid: invalidNoHello},
		{name: "stats before hello", frames: [][]byte{mustMarshal(t, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Stats{Stats: &pb.WorkerStats{}}})},
			code: codes.InvalidArgument, msg: "first frame must be a Hello", invalid: invalidNoHello},
		{name: "empty worker_id", frames: [][]byte{mustMarshal(t, hello("", ""))},
			code: codes.InvalidArgument, msg: "worker_id is required", invalid: invalidBadHello},
		{name: "no protocol version", frames: [][]byte{mustMarshal(t, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "x"}}})},
			code: codes.InvalidArgument, msg: "protocol_version is required", invalid: invalidBadHello},
		{name: "worker_id too long", frames: [][]byte{mustMarshal(t, hello(strings.Repeat("x", 129), ""))},
			code: codes.InvalidArgument, msg: "more than 128", invalid: invalidBadHello},
		{name: "second hello", frames: [][]byte{helloBytes, helloBytes},
			code: codes.InvalidArgument, msg: "second Hello", invalid: invalidSecondHello, welcome: true},
		{name: "malformed frame", frames: [][]byte{helloBytes, {0x12, 0x7f, 0x0a}},
			code: codes.InvalidArgument, msg: "malformed frame", invalid: invalidMalformed, welcome: true},
		{name: "invalid UTF-8", frames: [][]byte{helloBytes, bytesField(2, bytesField(1, bytesField(7, []byte{0xc3, 0x28})))},
			code: codes.InvalidArgument, msg: "invalid UTF-8", invalid: invalidMalformed, welcome: true},
		{name: "oversized frame", frames: [][]byte{helloBytes, mustMarshal(t, big)},
			code: codes.ResourceExhausted, msg: "larger than max", invalid: invalidTooLarge, welcome: true},
		{name: "too many events", frames: [][]byte{helloBytes, mustMarshal(t, many)},
			code: codes.ResourceExhausted, msg: "6 events in one frame, more than max_batch_events (5)", invalid: invalidOverLimit, welcome: true},
		{name: "too many entries in one event", frames: [][]byte{helloBytes, mustMarshal(t, batch(wide))},
			code: codes.ResourceExhausted, msg: "more than 256 measurements and metadata entries", invalid: invalidOverLimit, welcome: true},
		{name: "huge stats frame", frames: [][]byte{helloBytes, hugeStats(t)},
			code: codes.ResourceExhausted, msg: "stats frame of", invalid: invalidOverLimit, welcome: true, server: roomy},
		{name: "no hello in time", frames: nil,
			code: codes.DeadlineExceeded, msg: "no Hello within hello_timeout", invalid: invalidHelloTime, server: impatient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := ts
			if tt.server != nil {
				ts = tt.server
			}
			before := ts.metric(t, metricFramesInvalid, pipeline.Label{Key: "reason", Value: tt.invalid})
			cs := rawStream(t, ts.addr)
			var welcome []*pb.ControlMessage
			for i, f := range tt.frames {
				if err := cs.SendMsg(&rawFrame{buf: f}); err != nil {
					break // the server may already have ended the stream
				}
				if i == 0 && tt.welcome {
					m := &pb.ControlMessage{}
					if err := cs.RecvMsg(m); err != nil {
						t.Fatalf("no Welcome: %v", err)
					}
					welcome = append(welcome, m)
				}
			}
			st, msgs := finalStatus(t, cs)
			msgs = append(welcome, msgs...)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
				t.Errorf("status = %v %q, want %v containing %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
			if gotWelcome := len(msgs) > 0 && msgs[0].GetWelcome() != nil; gotWelcome != tt.welcome {
				t.Errorf("welcome sent = %v, want %v (messages %v)", gotWelcome, tt.welcome, msgs)
			}
			waitMetric(t, ts, before+1, metricFramesInvalid, pipeline.Label{Key: "reason", Value: tt.invalid})
		})
	}

	// The server still serves others.
	w, _ := connect(t, ts.addr, "w-good", "")
	w.send(batch(namedEvent("python.call.stop", 1)))
	ts.rec.waitFor(t, "good event", func([]pipeline.Event) bool { return len(ts.rec.events(true)) == 1 })
}

// hugeStats is a valid WorkerStats frame of ~100 KB.
func hugeStats(t *testing.T) []byte {
	st := &pb.WorkerStats{Dropped: map[string]uint64{}}
	for i := 0; len(st.Dropped) < 10000; i++ {
		st.Dropped[fmt.Sprint(i)] = 1
	}
	return mustMarshal(t, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Stats{Stats: st}})
}

// waitMetric waits until a counter reaches want (it is updated by the
// stream's goroutines, possibly just after the client saw the status).
func waitMetric(t *testing.T, ts *testServer, want float64, name string, labels ...pipeline.Label) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for ts.metric(t, name, labels...) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, ts.metric(t, name, labels...), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestListenAddressInUse(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	cfg := testConfig()
	cfg.Listen = ts.addr
	s2, err := New(pipeline.Settings{}, cfg, Deps{Consumer: newRecorder(), Checker: testCatalog(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = s2.Start(context.Background())
	want := fmt.Sprintf("ingest: listen %s: address already in use", ts.addr)
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a used port: %v, want %q", err, want)
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownDrains(t *testing.T) {
	cfg := testConfig()
	cfg.ReconnectAfter = 1500 * time.Millisecond
	rec := newRecorder()
	s, err := New(pipeline.Settings{}, cfg, Deps{Consumer: rec, Checker: testCatalog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	const workers, perWorker = 3, 50
	ws := make([]*worker, workers)
	for i := range ws {
		ws[i], _ = connect(t, addr, fmt.Sprintf("w%d", i), "")
		for j := 0; j < perWorker; j++ {
			ws[i].send(batch(namedEvent("python.call.stop", int64(j))))
		}
	}
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- s.Shutdown(context.Background()) }()

	for i, w := range ws {
		// Each worker gets GoAway{shutdown}, sends what it still has, then
		// half-closes; the stream ends with Unavailable.
		for {
			m := w.recv()
			if g := m.GetGoAway(); g != nil {
				if g.GetReason() != "shutdown" || g.GetReconnectAfterMs() != 1500 {
					t.Errorf("GoAway = %v", g)
				}
				break
			}
		}
		w.send(batch(namedEvent("python.call.stop", 1000+int64(i))))
		if err := w.stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		_, err := w.recvUntilError()
		if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != msgShuttingDown {
			t.Errorf("worker %d final status = %v, want Unavailable %q", i, err, msgShuttingDown)
		}
	}
	if err := <-shutdownErr; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Everything accepted reached the Consumer before Shutdown returned.
	evs := rec.events(false)
	if n := len(rec.events(true)); n != workers*(perWorker+1) {
		t.Errorf("consumer got %d worker events, want %d", n, workers*(perWorker+1))
	}
	if countNamed(evs, EventWorkerDisconnected) != workers {
		t.Errorf("disconnected events = %d, want %d", countNamed(evs, EventWorkerDisconnected), workers)
	}
	// New streams are refused.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	st, err := pb.NewIngestClient(cc).Stream(context.Background())
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("stream after shutdown: %v, want Unavailable", err)
	}
}

func TestShutdownDeadlineCutsSilentWorkers(t *testing.T) {
	cfg := testConfig()
	cfg.DrainTimeout = 50 * time.Millisecond
	rec := newRecorder()
	s, err := New(pipeline.Settings{}, cfg, Deps{Consumer: rec, Checker: testCatalog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, _ := connect(t, s.Addr().String(), "silent", "")
	w.send(batch(namedEvent("python.call.stop", 1)))
	rec.waitFor(t, "event", func([]pipeline.Event) bool { return len(rec.events(true)) == 1 })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The worker never half-closed: drain_timeout ended it with Unavailable.
	msgs, err := w.recvUntilError()
	if status.Code(err) != codes.Unavailable || len(msgs) == 0 || msgs[len(msgs)-1].GetGoAway() == nil {
		t.Errorf("final status %v after %v, want GoAway then Unavailable", err, msgs)
	}
}

func TestBackpressure(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	gate := make(chan struct{})
	ts.rec.mu.Lock()
	ts.rec.gate = gate
	ts.rec.mu.Unlock()

	w := openStream(t, ts.addr)
	w.send(hello("w-slow", ""))
	if w.recv().GetWelcome() == nil {
		t.Fatal("no Welcome")
	}
	// The connected event is already blocked in the Consumer. Each batch is
	// ~170 KB; 200 of them (34 MB) exceed any HTTP/2 window gRPC grants
	// (16 MB at most).
	const batches, perBatch = 200, 40
	big := batch()
	for i := 0; i < perBatch; i++ {
		e := realisticEvent(i)
		e.Metadata = append(e.Metadata, &pb.MetadataEntry{Key: "payload", Value: strings.Repeat("x", 4096)})
		big.GetBatch().Events = append(big.GetBatch().Events, e)
	}
	var sent atomic.Int64
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < batches; i++ {
			if err := w.stream.Send(big); err != nil {
				sendErr <- err
				return
			}
			sent.Add(1)
		}
		sendErr <- w.stream.CloseSend()
	}()
	// Wait until the sender makes no progress for a while: it is stalled by
	// flow control (a slow machine only makes it stall earlier).
	last := int64(-1)
	for sent.Load() != last && sent.Load() < batches {
		last = sent.Load()
		time.Sleep(300 * time.Millisecond)
	}
	if n := sent.Load(); n >= batches {
		t.Fatalf("sender finished all %d batches while the consumer was blocked", n)
	}
	ts.rec.mu.Lock()
	calls := ts.rec.calls
	ts.rec.mu.Unlock()
	if calls != 1 {
		t.Errorf("Consume called %d times while blocked, want 1 (the reader must stop)", calls)
	}
	close(gate)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	ts.rec.waitFor(t, "every event", func([]pipeline.Event) bool { return len(ts.rec.events(true)) == batches*perBatch })
}

func TestDuplicateWorkerIDReplacesOlder(t *testing.T) {
	cfg := testConfig()
	cfg.ReconnectAfter = 2 * time.Second
	ts := startServer(t, cfg, nil)
	old, _ := connect(t, ts.addr, "dup", "")
	old.send(batch(namedEvent("python.call.stop", 1)))
	ts.rec.waitFor(t, "old event", func([]pipeline.Event) bool { return len(ts.rec.events(true)) == 1 })

	newer, _ := connect(t, ts.addr, "dup", "")
	msgs, err := old.recvUntilError()
	if len(msgs) == 0 || msgs[len(msgs)-1].GetGoAway().GetReason() != "replaced" || msgs[len(msgs)-1].GetGoAway().GetReconnectAfterMs() != 2000 {
		t.Errorf("old stream got %v, want GoAway{replaced}", msgs)
	}
	if st := status.Convert(err); st.Code() != codes.AlreadyExists || st.Message() != msgReplaced {
		t.Errorf("old stream status = %v", err)
	}
	newer.send(batch(namedEvent("python.call.stop", 2)))
	ts.rec.waitFor(t, "new event", func([]pipeline.Event) bool { return len(ts.rec.events(true)) == 2 })
	ts.rec.waitFor(t, "old disconnected", func(evs []pipeline.Event) bool { return countNamed(evs, EventWorkerDisconnected) == 1 })
	infos := ts.Workers()
	if len(infos) != 1 || infos[0].WorkerID != "dup" || infos[0].EventsReceived != 1 {
		t.Errorf("Workers() = %+v, want only the newer stream", infos)
	}
}

func TestPushPolicy(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	a, _ := connect(t, ts.addr, "a", "gpu")
	b, _ := connect(t, ts.addr, "b", "cpu")
	_ = b
	p := pipeline.Policy{Enabled: false, DefaultSampleRate: 0.1, Allow: []string{"python.*"}, Version: 9}
	n := ts.PushPolicy(func(o *pipeline.Origin) bool { return o.Pool == "gpu" }, func(*pipeline.Origin) pipeline.Policy { return p })
	if n != 1 {
		t.Fatalf("PushPolicy matched %d streams, want 1", n)
	}
	var got *pb.Policy
	for got == nil {
		got = a.recv().GetPolicy()
	}
	if !policyEqual(policyFromProto(got), p) {
		t.Errorf("pushed policy = %v", got)
	}
	// Many pushes without blocking: only the newest needs to arrive.
	for v := uint64(10); v <= 1000; v++ {
		p.Version = v
		ts.PushPolicy(func(o *pipeline.Origin) bool { return o.WorkerID == "a" }, func(*pipeline.Origin) pipeline.Policy { return p })
	}
	for {
		if m := a.recv().GetPolicy(); m != nil && m.GetVersion() == 1000 {
			break
		}
	}
	for _, info := range ts.Workers() {
		want := map[string]uint64{"a": 1000, "b": 0}[info.WorkerID]
		if info.PolicyVersion != want {
			t.Errorf("worker %s policy version = %d, want %d", info.WorkerID, info.PolicyVersion, want)
		}
	}
}

func TestMaxStreams(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreams = 1
	ts := startServer(t, cfg, nil)
	connect(t, ts.addr, "one", "")
	w := openStream(t, ts.addr)
	_ = w.stream.Send(hello("two", "")) // io.EOF if the host already refused the stream
	if _, err := w.recvUntilError(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second stream: %v, want ResourceExhausted", err)
	}
	if v := ts.metric(t, metricStreamsRefused); v != 1 {
		t.Errorf("refused = %v", v)
	}
}

func TestReflection(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := reflectionpb.NewServerReflectionClient(dial(t, ts.addr)).ServerReflectionInfo(ctx)
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
	if !slices.Contains(names, "snakepipe.v1.Ingest") {
		t.Fatalf("services = %v", names)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "snakepipe.v1.Ingest"}}); err != nil {
		t.Fatal(err)
	}
	resp, err = rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("no descriptor for snakepipe.v1.Ingest: %v", resp)
	}
	if err := rc.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "nope"
	cfg.MaxMessageBytes = 1 << 30
	cfg.HelloTimeout = 0
	cfg.MaxStreams = 0
	cfg.StreamWindowBytes = 1000
	cfg.Dial = []DialTarget{{Address: "127.0.0.1:1", WorkerID: "x"}, {Address: "127.0.0.1:2", WorkerID: "x"}, {Address: "h", WorkerID: ""}}
	err := cfg.Validate()
	for _, key := range []string{"ingest.listen", "ingest.max_message_bytes", "ingest.hello_timeout", "ingest.max_streams", "ingest.stream_window_bytes",
		"ingest.dial[1].worker_id", "ingest.dial[2].address", "ingest.dial[2].worker_id"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}

// TestHammerRegistry races streams that connect, replace each other and
// disconnect against PushPolicy and Workers callers, all released at once.
func TestHammerRegistry(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	cc := dial(t, ts.addr)
	const clients, rounds, pushers = 8, 5, 4
	start := make(chan struct{})
	var wg, pwg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for i := 0; i < clients; i++ {
		wg.Go(func() {
			<-start
			for r := 0; r < rounds; r++ {
				if err := hammerSession(cc, fmt.Sprintf("w%d", i%3)); err != nil {
					errs <- err
				}
			}
		})
	}
	stop := make(chan struct{})
	var pushed atomic.Int64
	for i := 0; i < pushers; i++ {
		pwg.Go(func() {
			<-start
			for v := uint64(1); ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				p := pipeline.Policy{Enabled: true, DefaultSampleRate: 1, Version: v}
				pushed.Add(int64(ts.PushPolicy(func(o *pipeline.Origin) bool { return o.WorkerID != "w2" }, func(*pipeline.Origin) pipeline.Policy { return p })))
				for _, w := range ts.Workers() {
					if w.WorkerID == "" || w.ConnectedAt.IsZero() {
						errs <- fmt.Errorf("incomplete WorkerInfo %+v", w)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	pwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(ts.Workers()); n != 0 {
		t.Errorf("%d workers still registered after every stream ended", n)
	}
	evs := ts.rec.waitFor(t, "a disconnected event per connected one", func(evs []pipeline.Event) bool {
		return countNamed(evs, EventWorkerDisconnected) == countNamed(evs, EventWorkerConnected)
	})
	if countNamed(evs, EventWorkerConnected) != clients*rounds {
		t.Errorf("connected events = %d, want %d", countNamed(evs, EventWorkerConnected), clients*rounds)
	}
	if n := len(ts.rec.events(true)); n > clients*rounds {
		t.Errorf("%d worker events, want at most %d", n, clients*rounds)
	}
	t.Logf("policies pushed: %d", pushed.Load())
}

// hammerSession runs one stream: Hello, Welcome, one batch, half-close,
// read to the end. Being replaced by another session is fine.
func hammerSession(cc *grpc.ClientConn, id string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := pb.NewIngestClient(cc).Stream(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(hello(id, "")); err != nil {
		return err
	}
	m, err := st.Recv()
	if err != nil {
		return err
	}
	if m.GetWelcome() == nil {
		return fmt.Errorf("first message %v", m)
	}
	_ = st.Send(batch(namedEvent("python.call.stop", 1)))
	_ = st.CloseSend()
	for {
		_, err := st.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.AlreadyExists {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stream %s ended with %w", id, err)
		}
	}
}

// A worker that vanishes while the Consumer blocks is unregistered at once;
// what it had sent is still delivered once the Consumer takes it.
func TestWorkerGoneWhileConsumerBlocks(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	gate := make(chan struct{})
	ts.rec.mu.Lock()
	ts.rec.gate = gate
	ts.rec.mu.Unlock()
	w, _ := connect(t, ts.addr, "vanishing", "")
	w.send(batch(namedEvent("python.call.stop", 1)))
	w.cancel()
	deadline := time.Now().Add(waitLimit)
	for len(ts.Workers()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("worker still registered after its stream was cancelled")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	evs := ts.rec.waitFor(t, "disconnected event", func(evs []pipeline.Event) bool { return countNamed(evs, EventWorkerDisconnected) == 1 })
	last := evs[len(evs)-1]
	if r, _ := last.Meta("reason"); r != "canceled" {
		t.Errorf("disconnect reason = %q, want canceled", r)
	}
	// The batch may or may not have left the worker before the cancel; if
	// it reached the host, it reached the Consumer.
	if n := len(ts.rec.events(true)); n > 1 {
		t.Errorf("%d worker events, want at most 1", n)
	}
}

// While the pipeline pushes back, a stream stalls once it has
// stream_window_bytes in flight (plus what one Send may queue and the frames
// the blocked reader holds). Frames first flow freely for a while, so that
// gRPC's own window growth (BDP estimation, up to 16 MiB per stream) would
// have kicked in if the windows were not fixed.
func TestStreamWindowBoundsBuffering(t *testing.T) {
	cfg := testConfig()
	cfg.StreamWindowBytes, cfg.ConnWindowBytes = 64<<10, 64<<10
	const free = 2000 // frames (40 MB) consumed before the consumer blocks
	gate := make(chan struct{})
	var consumed, events atomic.Int64
	ts := startServer(t, cfg, func(d *Deps) {
		next := d.Consumer
		d.Consumer = pipeline.ConsumerFunc(func(ctx context.Context, b *pipeline.Batch) error {
			if len(b.Events) == 1 {
				return next.Consume(ctx, b) // host events
			}
			if consumed.Add(1) > free {
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			events.Add(int64(len(b.Events))) // counted, not kept
			return nil
		})
	})
	w, _ := connect(t, ts.addr, "w-window", "")
	// Frames of ~20 KB; 3000 of them (60 MB) can not all be sent.
	const batches, perBatch = free + 1000, 100
	frame := batch()
	for i := 0; i < perBatch; i++ {
		frame.GetBatch().Events = append(frame.GetBatch().Events, realisticEvent(i))
	}
	size := int64(len(mustMarshal(t, frame)))
	var sent atomic.Int64
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < batches; i++ {
			if err := w.stream.Send(frame); err != nil {
				sendErr <- err
				return
			}
			sent.Add(1)
		}
		sendErr <- w.stream.CloseSend()
	}()
	// Wait until the sender makes no progress for a while: it is stalled by
	// flow control.
	last := int64(-1)
	for sent.Load() != last && sent.Load() < batches {
		last = sent.Load()
		time.Sleep(300 * time.Millisecond)
	}
	// Beyond the frames taken in: the window, the client's write quota
	// (64 KiB), and 4 frames of slack (the one the blocked consumer holds,
	// one being received, rounding).
	inFlight := sent.Load() - free
	t.Logf("%d frames of %d bytes in flight when the sender stalled", inFlight, size)
	if limit := int64(cfg.StreamWindowBytes)/size + 64<<10/size + 4; inFlight > limit {
		t.Errorf("sender got %d frames of %d bytes out beyond those consumed, want at most %d", inFlight, size, limit)
	}
	close(gate)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for events.Load() < batches*perBatch && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := events.Load(); n != batches*perBatch {
		t.Errorf("consumer got %d events, want %d", n, batches*perBatch)
	}
}
