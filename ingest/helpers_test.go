package ingest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/snakepipe/snakepipe/catalog"
	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit only keeps a broken test from hanging forever; no test asserts
// on how long anything takes.
const waitLimit = 30 * time.Second

// recorder is a Consumer that keeps every batch. gate, when set, blocks
// Consume until it is closed (backpressure tests).
type recorder struct {
	mu      sync.Mutex
	batches []*pipeline.Batch
	changed chan struct{} // signalled after every batch
	gate    chan struct{}
	calls   int
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Consume(ctx context.Context, b *pipeline.Batch) error {
	r.mu.Lock()
	r.calls++
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// events returns every recorded event, optionally only worker events
// (host events snakepipe.* left out).
func (r *recorder) events(workerOnly bool) []pipeline.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []pipeline.Event
	for _, b := range r.batches {
		for _, e := range b.Events {
			if workerOnly && strings.HasPrefix(e.Name, "snakepipe.") {
				continue
			}
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until cond holds on the recorder's events.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]pipeline.Event) bool) []pipeline.Event {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		evs := r.events(false)
		if cond(evs) {
			return evs
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("gave up waiting for %s; have %d events", what, len(evs))
		}
	}
}

func countNamed(evs []pipeline.Event, name string) int {
	n := 0
	for _, e := range evs {
		if e.Name == name {
			n++
		}
	}
	return n
}

// testCatalog is the real built-in catalog.
func testCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.New(catalog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.RejectNoticeInterval = 10 * time.Millisecond
	cfg.DrainTimeout = waitLimit
	return cfg
}

type testServer struct {
	*Server
	rec     *recorder
	metrics *pipeline.Metrics
	addr    string
}

// startServer starts a server on 127.0.0.1:0 and shuts it down at cleanup.
func startServer(t *testing.T, cfg Config, mod func(*Deps)) *testServer {
	t.Helper()
	rec := newRecorder()
	reg := pipeline.NewMetrics()
	deps := Deps{Consumer: rec, Checker: testCatalog(t)}
	if mod != nil {
		mod(&deps)
	}
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("ingest"), Logger: hclog.NewNullLogger(), Metrics: reg}, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &testServer{Server: s, rec: rec, metrics: reg, addr: s.Addr().String()}
}

func (ts *testServer) metric(t *testing.T, name string, labels ...pipeline.Label) float64 {
	t.Helper()
	v, ok := ts.metrics.Value(name, labels...)
	if !ok {
		t.Fatalf("metric %s%v does not exist", name, labels)
	}
	return v
}

// dial returns a client connection closed at cleanup.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// worker is a test client speaking the protocol with generated code.
type worker struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[pb.WorkerMessage, pb.ControlMessage]
	cancel context.CancelFunc
}

func openStream(t *testing.T, addr string) *worker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := pb.NewIngestClient(dial(t, addr)).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &worker{t: t, stream: st, cancel: cancel}
}

func hello(id, pool string) *pb.WorkerMessage {
	return &pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{
		WorkerId: id, Pool: pool, Hostname: "host-1", Pid: 4242,
		LibraryName: "test-client", LibraryVersion: "0.0.1", ProtocolVersion: 1,
	}}}
}

// connect opens a stream, sends a Hello and returns after the Welcome.
func connect(t *testing.T, addr, id, pool string) (*worker, *pb.Welcome) {
	t.Helper()
	w := openStream(t, addr)
	w.send(hello(id, pool))
	m := w.recv()
	if m.GetWelcome() == nil {
		t.Fatalf("first control message is %v, want a Welcome", m)
	}
	return w, m.GetWelcome()
}

func (w *worker) send(m *pb.WorkerMessage) {
	w.t.Helper()
	if err := w.stream.Send(m); err != nil {
		w.t.Fatalf("Send: %v", err)
	}
}

func (w *worker) recv() *pb.ControlMessage {
	w.t.Helper()
	m, err := w.stream.Recv()
	if err != nil {
		w.t.Fatalf("Recv: %v", err)
	}
	return m
}

// recvUntilError reads control messages until the stream ends and returns
// them with the final error.
func (w *worker) recvUntilError() ([]*pb.ControlMessage, error) {
	var msgs []*pb.ControlMessage
	for {
		m, err := w.stream.Recv()
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

func batch(events ...*pb.Event) *pb.WorkerMessage {
	return &pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: &pb.EventBatch{Events: events}}}
}

func namedEvent(name string, ts int64) *pb.Event {
	return &pb.Event{
		Name:         name,
		TimestampNs:  ts,
		Measurements: []*pb.MeasurementEntry{{Key: "duration", Value: &pb.Value{Value: &pb.Value_IntValue{IntValue: ts}}}},
		Metadata:     []*pb.MetadataEntry{{Key: "function", Value: "f"}},
	}
}
