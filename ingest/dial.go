package ingest

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/snakepipe/snakepipe/pipeline"
	bridge "github.com/snakepipe/snakepipe/proto/snakepit/bridge"
)

// Dial mode: snakepipe is the gRPC client of a Snakepit worker's
// snakepit.bridge.BridgeService/StreamTelemetry. The request half carries
// TelemetryControl frames down, the response half TelemetryEvent frames up
// (one event per gRPC message, wire-compatible with snakepipe.v1.Event).

var telemetryStreamDesc = grpc.StreamDesc{
	StreamName:    "StreamTelemetry",
	ServerStreams: true,
	ClientStreams: true,
}

// dialBatchMax bounds how many already-received events are handed to the
// Consumer as one batch.
const dialBatchMax = 256

// dialLoop keeps one Snakepit worker attached until Shutdown, reconnecting
// with exponential backoff and jitter whenever the stream ends.
func (s *Server) dialLoop(t DialTarget) {
	log := s.log.With("worker_id", t.WorkerID, "address", t.Address)
	backoff := s.cfg.DialBackoff.Initial
	for {
		s.m.dialConnects.Inc()
		attached, err := s.dialOnce(t)
		if s.dialCtx.Err() != nil {
			return
		}
		if attached {
			backoff = s.cfg.DialBackoff.Initial
		}
		wait := jitter(backoff)
		log.Debug("snakepit worker stream ended; reconnecting", "error", err, "after", wait)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-s.dialCtx.Done():
			timer.Stop()
			return
		}
		backoff = min(2*backoff, s.cfg.DialBackoff.Max)
	}
}

// jitter returns a wait in [d/2, d]: exponential growth, without every
// snakepipe reconnecting in lockstep.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(half+1)
}

// dialOnce runs one StreamTelemetry call. attached reports whether the
// stream got as far as sending its initial control frames.
func (s *Server) dialOnce(t DialTarget) (attached bool, err error) {
	cc, err := grpc.NewClient(t.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newFrameCodec()), grpc.MaxCallRecvMsgSize(s.cfg.MaxMessageBytes)),
		// The same fixed windows as the server's: a Snakepit worker
		// streaming into a pipeline that pushes back parks at most this much.
		grpc.WithInitialWindowSize(int32(s.cfg.StreamWindowBytes)),
		grpc.WithInitialConnWindowSize(int32(s.cfg.ConnWindowBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    max(s.cfg.Keepalive.Time, s.cfg.Keepalive.MinClientInterval),
			Timeout: s.cfg.Keepalive.Timeout,
		}),
	)
	if err != nil {
		return false, err
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(s.dialCtx)
	defer cancel()
	cs, err := cc.NewStream(ctx, &telemetryStreamDesc, bridge.BridgeService_StreamTelemetry_FullMethodName)
	if err != nil {
		return false, err
	}

	pool := t.Pool
	if pool == "" {
		pool = "default"
	}
	host, _, _ := net.SplitHostPort(t.Address)
	origin := &pipeline.Origin{WorkerID: t.WorkerID, Pool: pool, Hostname: host, Addr: t.Address}
	c := newConn(WorkerInfo{
		WorkerID: t.WorkerID, Pool: pool, Hostname: host, Addr: t.Address,
		Mode: "dial", LibraryName: "snakepit", ConnectedAt: time.Now(),
	}, origin)

	// Initial control: the policy in force, as Snakepit frames. The first
	// is always a toggle, as Snakepit's own host does.
	p := s.deps.Policy.PolicyFor(origin)
	for _, m := range policyToSnakepit(p) {
		if err := cs.SendMsg(m); err != nil {
			return false, err
		}
	}
	c.setPolicyVersion(p.Version)
	if old := s.reg.add(c); old != nil {
		old.replace()
	}
	s.m.streams.Add(1)
	defer s.m.streams.Add(-1)
	s.emitConnected(c)
	defer func() {
		s.reg.remove(c)
		s.emitDisconnected(c)
	}()

	// One goroutine owns SendMsg (policy pushes), one owns RecvMsg; this
	// one batches what was received and hands it to the Consumer.
	frames := make(chan []byte, dialBatchMax)
	recvErr := make(chan error, 1)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.replaced:
				cancel()
				return
			case <-c.wake:
				p, ok := c.takePolicy()
				if !ok {
					continue
				}
				c.setPolicyVersion(p.Version)
				for _, m := range policyToSnakepit(p) {
					if cs.SendMsg(m) != nil {
						return // the receive side sees the stream end
					}
				}
			}
		}
	}()
	go func() {
		defer close(frames)
		for {
			var f rawFrame
			if err := cs.RecvMsg(&f); err != nil {
				recvErr <- err
				return
			}
			s.m.frames.Inc()
			s.m.bytes.Add(uint64(len(f.buf)))
			select {
			case frames <- f.buf:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
		}
	}()

	dec := s.newDecoder()
	for buf := range frames {
		now := time.Now().UnixNano()
		events := make([]pipeline.Event, 0, min(len(frames)+1, dialBatchMax))
		events = s.decodeDialed(c, dec, events, buf)
	more:
		for len(events) < dialBatchMax {
			select {
			case buf, ok := <-frames:
				if !ok {
					break more
				}
				events = s.decodeDialed(c, dec, events, buf)
			default:
				break more
			}
		}
		s.acceptBatch(c, events, now)
	}
	cancel()
	<-sendDone
	err = <-recvErr
	if errors.Is(err, io.EOF) {
		c.setEndReason("eof")
	} else {
		c.setEndReason(endReason(err))
	}
	return true, err
}

// decodeDialed decodes one TelemetryEvent frame and appends it to events.
// A malformed event is counted and dropped: one bad event from a Snakepit
// worker does not end the stream (there is no status to send it).
func (s *Server) decodeDialed(c *conn, dec *decoder, events []pipeline.Event, buf []byte) []pipeline.Event {
	var ev pipeline.Event
	if err := dec.decodeSingleEvent(buf, &ev); err != nil {
		s.m.invalidFor(invalidMalformed).Inc()
		s.log.Debug("malformed TelemetryEvent from snakepit worker", "worker_id", c.info.WorkerID, "error", err)
		return events
	}
	return append(events, ev)
}
