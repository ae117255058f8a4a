package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// demoClient is a real worker of the protocol, in Go: it dials snakepipe,
// says Hello, reads the Welcome, streams events like a Python worker
// serving tool calls would, and reports what the host sends back.
type demoClient struct {
	addr     string
	log      hclog.Logger
	workerID string
	// every is the gap between the periodic memory samples after the first
	// burst; 0 sends only the burst.
	every time.Duration
}

// run streams until ctx ends, then half-closes and waits for the host to
// end the stream. It returns nil on a clean end.
func (d *demoClient) run(ctx context.Context) error {
	conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("demo client: %w", err)
	}
	defer func() { _ = conn.Close() }()

	// The stream outlives ctx by a little: after ctx ends the client
	// half-closes and lets the host finish.
	streamCtx, cancelStream := context.WithCancel(context.Background())
	defer cancelStream()
	stream, err := pb.NewIngestClient(conn).Stream(streamCtx)
	if err != nil {
		return fmt.Errorf("demo client: open stream: %w", err)
	}
	host, _ := os.Hostname()
	if err := stream.Send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{
		WorkerId:        d.workerID,
		Pool:            "demo",
		Hostname:        host,
		Pid:             int64(os.Getpid()),
		LibraryName:     "snakepipe-demo",
		LibraryVersion:  version,
		ProtocolVersion: 1,
	}}}); err != nil {
		return fmt.Errorf("demo client: send hello: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("demo client: waiting for welcome: %w", err)
	}
	w := first.GetWelcome()
	if w == nil {
		return fmt.Errorf("demo client: first frame is not a welcome: %v", first)
	}
	d.log.Info("connected", "addr", d.addr, "worker_id", d.workerID, "policy_version", w.GetPolicy().GetVersion(),
		"default_sample_rate", w.GetPolicy().GetDefaultSampleRate())

	recvDone := make(chan error, 1)
	go func() { recvDone <- d.receive(stream) }()

	send := func(events ...*pb.Event) error {
		return stream.Send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: &pb.EventBatch{Events: events}}})
	}
	if err := send(demoBurst(time.Now())...); err != nil {
		return fmt.Errorf("demo client: send batch: %w", err)
	}
	d.log.Info("sent a batch of demo events, one of them with a misspelt name (python.cal.stop)")

	var tick <-chan time.Time
	if d.every > 0 {
		t := time.NewTicker(d.every)
		defer t.Stop()
		tick = t.C
	}
	for n := int64(0); ; n++ {
		select {
		case <-ctx.Done():
			_ = stream.CloseSend()
			return endOfStream(<-recvDone)
		case err := <-recvDone:
			return endOfStream(err)
		case now := <-tick:
			if err := send(memorySample(now, n)); err != nil {
				return endOfStream(<-recvDone)
			}
		}
	}
}

// receive logs what the host sends until the stream ends.
func (d *demoClient) receive(stream grpc.BidiStreamingClient[pb.WorkerMessage, pb.ControlMessage]) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch {
		case msg.GetRejects() != nil:
			r := msg.GetRejects()
			d.log.Warn("the host rejected events", "counts", formatCounts(r.GetRejected()),
				"recent_unknown_names", strings.Join(r.GetRecentUnknownNames(), ","))
		case msg.GetPolicy() != nil:
			d.log.Info("policy changed", "version", msg.GetPolicy().GetVersion())
		case msg.GetGoAway() != nil:
			d.log.Info("the host is closing the stream (GoAway)", "reason", msg.GetGoAway().GetReason())
		}
	}
}

func endOfStream(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	if s, ok := status.FromError(err); ok && (s.Code() == codes.Unavailable || s.Code() == codes.Canceled) {
		return nil // the host ended the stream while shutting down
	}
	return fmt.Errorf("demo client: %w", err)
}

func formatCounts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func intM(k string, v int64) *pb.MeasurementEntry {
	return &pb.MeasurementEntry{Key: k, Value: &pb.Value{Value: &pb.Value_IntValue{IntValue: v}}}
}

func floatM(k string, v float64) *pb.MeasurementEntry {
	return &pb.MeasurementEntry{Key: k, Value: &pb.Value{Value: &pb.Value_FloatValue{FloatValue: v}}}
}

func meta(kv ...string) []*pb.MetadataEntry {
	out := make([]*pb.MetadataEntry, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &pb.MetadataEntry{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// demoBurst is what a worker serving two tool calls would send: call and
// tool spans, a memory and a CPU sample, and one event whose name is
// misspelt, which the host rejects and reports back.
func demoBurst(now time.Time) []*pb.Event {
	t := now.UnixNano()
	const ms = int64(time.Millisecond)
	return []*pb.Event{
		{Name: "python.call.start", TimestampNs: t, CorrelationId: "req-7f3a",
			Measurements: []*pb.MeasurementEntry{intM("system_time", t), intM("request_size", 512)},
			Metadata:     meta("command", "embed_text", "session_id", "s-42")},
		{Name: "tool.execution.start", TimestampNs: t + 1*ms, CorrelationId: "req-7f3a",
			Measurements: []*pb.MeasurementEntry{intM("system_time", t+1*ms)},
			Metadata:     meta("tool", "embedder", "operation", "encode")},
		{Name: "tool.execution.stop", TimestampNs: t + 38*ms, CorrelationId: "req-7f3a",
			Measurements: []*pb.MeasurementEntry{intM("duration", 37*ms)},
			Metadata:     meta("tool", "embedder", "operation", "encode")},
		{Name: "python.call.stop", TimestampNs: t + 40*ms, CorrelationId: "req-7f3a",
			Measurements: []*pb.MeasurementEntry{intM("duration", 40*ms), intM("response_size", 6144)},
			Metadata:     meta("command", "embed_text", "session_id", "s-42", "result", "success")},
		{Name: "python.call.start", TimestampNs: t + 50*ms, CorrelationId: "req-7f3b",
			Measurements: []*pb.MeasurementEntry{intM("system_time", t+50*ms), intM("request_size", 128)},
			Metadata:     meta("command", "classify", "session_id", "s-43")},
		{Name: "python.call.exception", TimestampNs: t + 61*ms, CorrelationId: "req-7f3b",
			Measurements: []*pb.MeasurementEntry{intM("duration", 11*ms)},
			Metadata:     meta("command", "classify", "session_id", "s-43", "error_type", "ValueError", "error_category", "python_error")},
		{Name: "python.cal.stop", TimestampNs: t + 62*ms, CorrelationId: "req-7f3b",
			Measurements: []*pb.MeasurementEntry{intM("duration", 12*ms)}},
		memorySample(now.Add(70*time.Millisecond), 0),
		{Name: "python.cpu.sampled", TimestampNs: t + 71*ms,
			Measurements: []*pb.MeasurementEntry{floatM("cpu_percent", 12.5), intM("system_time", t+71*ms)}},
	}
}

func memorySample(now time.Time, n int64) *pb.Event {
	t := now.UnixNano()
	return &pb.Event{Name: "python.memory.sampled", TimestampNs: t,
		Measurements: []*pb.MeasurementEntry{
			intM("rss_bytes", 183_500_800+n*4096), intM("vms_bytes", 1_210_000_000+n*4096), intM("system_time", t),
		}}
}
