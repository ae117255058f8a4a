package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// These tests run the real service: real gRPC over 127.0.0.1:0, the real
// catalog, ingest, pipeline graph and file sink, built by the code path
// `snakepipe run` uses.

// fileSinkConfig is a config writing every event to dir/events.jsonl.
func fileSinkConfig(dir string, extra string) string {
	return fmt.Sprintf(`
log: {level: error}
ingest:
  listen: 127.0.0.1:0
admin:
  listen: ""
sinks:
  file/all:
    path: %s
pipelines:
  default:
    sinks: [file/all]
    workers: 1
%s`, filepath.Join(dir, "events.jsonl"), extra)
}

func startService(t *testing.T, yaml string, env ...string) *Service {
	t.Helper()
	return startLoaded(t, func() (*Config, error) {
		return LoadConfig(LoadOptions{File: "test.yaml", Data: []byte(yaml), Env: env, Factories: builtinFactories(io.Discard, nil)})
	})
}

// startLoaded builds and starts a service from the config load returns.
// The test shuts it down itself (to check what the shutdown delivered).
func startLoaded(tb testing.TB, load func() (*Config, error)) *Service {
	tb.Helper()
	cfg, err := load()
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	svc, err := NewService(context.Background(), cfg, ServiceOptions{})
	if err != nil {
		tb.Fatalf("NewService: %v", err)
	}
	if err := svc.Start(context.Background()); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	return svc
}

// testWorker is a worker of the protocol, like the Python library.
type testWorker struct {
	t      *testing.T
	id     string
	conn   *grpc.ClientConn
	stream grpc.BidiStreamingClient[pb.WorkerMessage, pb.ControlMessage]
}

func dialWorker(t *testing.T, addr, workerID string) *testWorker {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := pb.NewIngestClient(conn).Stream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := &testWorker{t: t, id: workerID, conn: conn, stream: stream}
	w.send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{
		WorkerId: workerID, Pool: "pool-a", Hostname: "host-1", Pid: 4242,
		LibraryName: "test", LibraryVersion: "0", ProtocolVersion: 1,
	}}})
	msg, err := stream.Recv()
	if err != nil {
		t.Fatalf("waiting for Welcome: %v", err)
	}
	if msg.GetWelcome() == nil {
		t.Fatalf("first frame is %v, want a Welcome", msg)
	}
	return w
}

func (w *testWorker) send(m *pb.WorkerMessage) {
	w.t.Helper()
	if err := w.stream.Send(m); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

func (w *testWorker) batch(events ...*pb.Event) {
	w.t.Helper()
	w.send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: &pb.EventBatch{Events: events}}})
}

// awaitGoAway reads control frames until the host's GoAway.
func (w *testWorker) awaitGoAway() {
	w.t.Helper()
	for {
		m, err := w.stream.Recv()
		if err != nil {
			w.t.Fatalf("stream ended before a GoAway: %v", err)
		}
		if m.GetGoAway() != nil {
			return
		}
	}
}

// finish half-closes and reads until the host ends the stream, returning
// the control frames it sent.
func (w *testWorker) finish() []*pb.ControlMessage {
	w.t.Helper()
	if err := w.stream.CloseSend(); err != nil {
		w.t.Fatal(err)
	}
	var got []*pb.ControlMessage
	for {
		m, err := w.stream.Recv()
		if err != nil {
			break
		}
		got = append(got, m)
	}
	_ = w.conn.Close()
	return got
}

func callStop(ts int64, corr string, duration int64, command string) *pb.Event {
	return &pb.Event{Name: "python.call.stop", TimestampNs: ts, CorrelationId: corr,
		Measurements: []*pb.MeasurementEntry{intM("duration", duration)},
		Metadata:     meta("command", command)}
}

// readEvents parses the file sink's output, one event per line.
func readEvents(t *testing.T, path string) []pipeline.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []pipeline.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ev, err := pipeline.ParseEventJSON(sc.Bytes())
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("file does not end with a newline: a torn last line")
	}
	return out
}

// comparable renders an event without the fields the host sets per run.
func comparable(e pipeline.Event) string {
	e.ReceivedNs, e.Seq = 0, 0
	if e.Origin != nil {
		o := *e.Origin
		o.Addr = ""
		e.Origin = &o
	}
	return string(pipeline.AppendJSON(nil, &e))
}

// splitHostEvents separates worker events (with an origin) from the
// host's own (snakepipe.*, no origin).
func splitHostEvents(all []pipeline.Event) (worker, host []pipeline.Event) {
	for _, e := range all {
		if e.Origin == nil {
			host = append(host, e)
		} else {
			worker = append(worker, e)
		}
	}
	return worker, host
}

func names(evs []pipeline.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = evs[i].Name
	}
	return out
}

func metric(t *testing.T, m *pipeline.Metrics, name string, kv ...string) float64 {
	t.Helper()
	v, ok := m.Value(name, pipeline.L(kv...)...)
	if !ok {
		t.Fatalf("metric %s%v does not exist", name, kv)
	}
	return v
}

func TestServiceEndToEnd(t *testing.T) {
	dir := t.TempDir()
	svc := startService(t, fileSinkConfig(dir, ""))

	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(
		callStop(1000, "req-1", 1200, "embed"),
		&pb.Event{Name: "python.cal.stop", TimestampNs: 1001}, // unknown name
		&pb.Event{Name: "python.memory.sampled", TimestampNs: 1002,
			Measurements: []*pb.MeasurementEntry{intM("rss_bytes", 100), intM("vms_bytes", 200)}},
	)
	w.batch(
		&pb.Event{Name: "python.call.stop", TimestampNs: 1003,
			Measurements: []*pb.MeasurementEntry{intM("durration", 5)}}, // unknown measurement
		&pb.Event{Name: "python.cpu.sampled", TimestampNs: 1004,
			Measurements: []*pb.MeasurementEntry{floatM("cpu_percent", 2)}},
		&pb.Event{Name: "python.call.stop", TimestampNs: 1005, SampleRate: 0.5,
			EventParts: []string{"ignored"}, Metadata: meta("pid", "999", "tool", "a\x01b")},
	)
	w.finish()
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	origin := &pipeline.Origin{WorkerID: "worker-1", Pool: "pool-a", Hostname: "host-1", PID: 4242}
	want := []pipeline.Event{
		{Name: "python.call.stop", TimestampNs: 1000, CorrelationID: "req-1", SampleRate: 1, Origin: origin,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200)}},
			Metadata:     []pipeline.Label{{Key: "command", Value: "embed"}}},
		{Name: "python.memory.sampled", TimestampNs: 1002, SampleRate: 1, Origin: origin,
			Measurements: []pipeline.Measurement{{Key: "rss_bytes", Value: pipeline.IntValue(100)}, {Key: "vms_bytes", Value: pipeline.IntValue(200)}}},
		{Name: "python.cpu.sampled", TimestampNs: 1004, SampleRate: 1, Origin: origin,
			Measurements: []pipeline.Measurement{{Key: "cpu_percent", Value: pipeline.FloatValue(2)}}},
		// The worker's "pid" metadata loses to the host's; control
		// characters are removed from values.
		{Name: "python.call.stop", TimestampNs: 1005, SampleRate: 0.5, Origin: origin,
			Metadata: []pipeline.Label{{Key: "tool", Value: "ab"}}},
	}
	all := readEvents(t, filepath.Join(dir, "events.jsonl"))
	got, host := splitHostEvents(all)
	if len(got) != len(want) {
		t.Fatalf("file has %d worker events, want %d", len(got), len(want))
	}
	// The host's own events: connected first, disconnected last, with the
	// worker's counts.
	if len(host) != 2 || host[0].Name != "snakepipe.worker.connected" || host[1].Name != "snakepipe.worker.disconnected" ||
		all[0].Name != "snakepipe.worker.connected" || all[len(all)-1].Name != "snakepipe.worker.disconnected" {
		t.Fatalf("host events = %v, want connected first and disconnected last", names(host))
	}
	for _, kv := range [][2]string{{"worker_id", "worker-1"}, {"pool", "pool-a"}, {"hostname", "host-1"}, {"pid", "4242"}} {
		if v, _ := host[0].Meta(kv[0]); v != kv[1] {
			t.Errorf("connected event %s = %q, want %q", kv[0], v, kv[1])
		}
	}
	if ev, _ := host[1].Measurement("events"); ev != pipeline.IntValue(6) {
		t.Errorf("disconnected events = %v, want 6", ev)
	}
	if rej, _ := host[1].Measurement("rejected"); rej != pipeline.IntValue(2) {
		t.Errorf("disconnected rejected = %v, want 2", rej)
	}
	for i := range want {
		if g, w := comparable(got[i]), comparable(want[i]); g != w {
			t.Errorf("event %d:\n got  %s\n want %s", i, g, w)
		}
		if got[i].ReceivedNs == 0 {
			t.Errorf("event %d has no received_ns", i)
		}
	}
	m := svc.Metrics()
	if v := metric(t, m, "snakepipe_ingest_events_rejected_total", "reason", "unknown_event"); v != 1 {
		t.Errorf("rejected{unknown_event} = %v, want 1", v)
	}
	if v := metric(t, m, "snakepipe_ingest_events_rejected_total", "reason", "unknown_measurement"); v != 1 {
		t.Errorf("rejected{unknown_measurement} = %v, want 1", v)
	}
}

// TestServiceShutdownDrains: events a worker sent before shutdown are all
// in the file after it, each once, and the file ends with whole lines.
func TestServiceShutdownDrains(t *testing.T) {
	dir := t.TempDir()
	// A small pipeline queue that blocks, so shutdown starts while events
	// are still in ingest, the queue and the sink.
	svc := startService(t, fileSinkConfig(dir, "    queue: {max_events: 64}\n"))
	const workers, batches, size = 4, 50, 20
	ws := make([]*testWorker, workers)
	for i := range ws {
		ws[i] = dialWorker(t, svc.IngestAddr(), fmt.Sprintf("w%d", i))
	}
	var want []string
	for b := range batches {
		for i, w := range ws {
			evs := make([]*pb.Event, size)
			for j := range evs {
				ts := int64((i*batches+b)*size + j)
				evs[j] = callStop(ts, "", ts, "c")
				want = append(want, fmt.Sprintf("%s/%d", w.id, ts))
			}
			w.batch(evs...)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, w := range ws {
			w.finish() // half-closes at once; the host drains what was sent
		}
	}()
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-done
	var got []string
	workerEvents, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	for _, e := range workerEvents {
		got = append(got, fmt.Sprintf("%s/%d", e.Origin.WorkerID, e.TimestampNs))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("file has %d events, want each of the %d sent exactly once", len(got), len(want))
	}
}

func TestServiceSecondInstanceSamePort(t *testing.T) {
	dir := t.TempDir()
	first := startService(t, fileSinkConfig(dir, ""))
	defer func() { _ = first.Shutdown(context.Background()) }()

	cfg, err := LoadConfig(LoadOptions{File: "test.yaml", Data: []byte(fileSinkConfig(t.TempDir(), "")),
		Flags: map[string]any{"ingest.listen": first.IngestAddr()}, Factories: builtinFactories(io.Discard, nil)})
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
		t.Fatal("a second instance on the same port started")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), first.IngestAddr()) {
		t.Errorf("error = %q, want it to say the address %s is in use", err, first.IngestAddr())
	}
}

// TestServiceWasmFilter: a real Wasm filter (plugins/testdata/filter.c,
// compiled) as a pipeline stage between ingest and the file sink.
func TestServiceWasmFilter(t *testing.T) {
	wasm, err := filepath.Abs("../../plugins/testdata/filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yaml := strings.Replace(fileSinkConfig(dir, ""), "    sinks: [file/all]", "    stages: [wasm/slow]\n    sinks: [file/all]", 1) +
		fmt.Sprintf("stages:\n  wasm/slow:\n    path: %s\n    config: {min_duration_ns: \"1000\"}\nplugins: {cache: false}\n", wasm)
	svc := startService(t, yaml)
	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(
		callStop(1, "", 500, "a"),
		callStop(2, "", 1500, "b"),
		&pb.Event{Name: "python.memory.sampled", TimestampNs: 3, Measurements: []*pb.MeasurementEntry{intM("rss_bytes", 1)}},
		callStop(4, "", 999, "c"),
		callStop(5, "", 1000, "d"),
	)
	w.finish()
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	got, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	var ts []int64
	for _, e := range got {
		ts = append(ts, e.TimestampNs)
	}
	if want := []int64{2, 3, 5}; !slices.Equal(ts, want) {
		t.Errorf("events kept by the wasm filter: timestamps %v, want %v", ts, want)
	}
	if v := metric(t, svc.Metrics(), "snakepipe_pipeline_stage_events_out_total", "pipeline", "default", "stage", "wasm/slow"); v < 3 {
		t.Errorf("stage out = %v", v)
	}
}

// TestServiceAdmin: the admin listener serves /readyz and the pipeline's
// metrics once the service is up.
func TestServiceAdmin(t *testing.T) {
	dir := t.TempDir()
	svc := startService(t, fileSinkConfig(dir, ""), "SNAKEPIPE_ADMIN__LISTEN=127.0.0.1:0")
	defer func() { _ = svc.Shutdown(context.Background()) }()
	if svc.AdminAddr() == "" {
		t.Fatal("admin is not listening")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + svc.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, `snakepipe_pipeline_queue_events{pipeline="default"} 0`) {
		t.Errorf("/metrics = %d, lacks the pipeline queue gauge:\n%.2000s", code, body)
	}
}

// TestCtlAgainstService: `snakepipe ctl workers` lists a connected worker
// of a running service (the admin API end to end).
func TestCtlAgainstService(t *testing.T) {
	svc := startService(t, fileSinkConfig(t.TempDir(), ""), "SNAKEPIPE_ADMIN__LISTEN=127.0.0.1:0")
	defer func() { _ = svc.Shutdown(context.Background()) }()
	w := dialWorker(t, svc.IngestAddr(), "ctl-worker-7")
	defer w.finish()
	code, stdout, stderr := runCLI(t, nil, "ctl", "--admin", svc.AdminAddr(), "workers")
	if code != 0 || !strings.Contains(stdout, "ctl-worker-7") || !strings.Contains(stdout, "pool-a") {
		t.Errorf("ctl workers: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
