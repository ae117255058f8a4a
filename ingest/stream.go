package ingest

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// seqCounter numbers every event the process ingests (pipeline.Event.Seq).
var seqCounter atomic.Uint64

// nextSeq reserves n sequence numbers and returns the first.
func nextSeq(n int) uint64 {
	return seqCounter.Add(uint64(n)) - uint64(n) + 1
}

// Host event names (declared in the built-in catalog). The Consumer gets
// one when a stream's Hello is accepted and one when it ends, with Origin
// nil and the worker's identity in metadata.
const (
	EventWorkerConnected    = "snakepipe.worker.connected"
	EventWorkerDisconnected = "snakepipe.worker.disconnected"
)

// Status messages a client acts on (docs/protocol.md).
const (
	msgShuttingDown = "snakepipe shutting down"
	msgReplaced     = "snakepipe: replaced by a newer stream with the same worker_id"
)

// Reasons in GoAway.reason.
const (
	goAwayShutdown = "shutdown"
	goAwayReplaced = "replaced"
)

// streamState is one worker stream. The handler goroutine (send) owns
// SendMsg and every control decision; one receive goroutine owns RecvMsg,
// decoding and handing batches to the Consumer. They meet through helloCh
// (the registered connection, once the Hello was accepted) and recvDone.
type streamState struct {
	srv      *Server
	ss       grpc.ServerStream
	addr     string
	helloCh  chan *conn // capacity 1
	recvDone chan error // capacity 1
}

func (s *Server) handleStream(ss grpc.ServerStream) error {
	if s.shuttingDown() {
		return status.Error(codes.Unavailable, msgShuttingDown)
	}
	if n := s.active.Add(1); n > int64(s.cfg.MaxStreams) {
		s.active.Add(-1)
		s.m.streamsRefused.Inc()
		return status.Errorf(codes.ResourceExhausted, "snakepipe: too many streams (max_streams=%d); retry with backoff", s.cfg.MaxStreams)
	}
	defer s.active.Add(-1)
	s.m.streams.Add(1)
	defer s.m.streams.Add(-1)

	h := &streamState{srv: s, ss: ss, helloCh: make(chan *conn, 1), recvDone: make(chan error, 1)}
	if p, ok := peer.FromContext(ss.Context()); ok && p.Addr != nil {
		h.addr = p.Addr.String()
	}
	s.wg.Go(func() { h.recvDone <- h.receive() })
	return h.send()
}

// send runs on the handler goroutine: it is the only caller of SendMsg.
func (h *streamState) send() error {
	s := h.srv
	helloTimer := time.NewTimer(s.cfg.HelloTimeout)
	defer helloTimer.Stop()
	var (
		c           *conn
		helloCh     = h.helloCh
		shutdown    = s.shutdownCh
		wake        <-chan struct{}
		replaced    <-chan struct{}
		notice      <-chan time.Time
		drain       <-chan time.Time
		done        = h.ss.Context().Done()
		seenRejects uint64
	)
	defer func() {
		if c != nil {
			s.reg.remove(c)
		}
	}()
	for {
		select {
		case err := <-h.recvDone:
			if err == nil && drain != nil {
				// The worker half-closed after our GoAway: all it sent is
				// with the Consumer.
				return status.Error(codes.Unavailable, msgShuttingDown)
			}
			return err

		case c = <-helloCh:
			helloCh = nil
			helloTimer.Stop()
			if err := h.sendWelcome(c); err != nil {
				return err
			}
			wake, replaced = c.wake, c.replaced
			ticker := time.NewTicker(s.cfg.RejectNoticeInterval)
			defer ticker.Stop()
			notice = ticker.C

		case <-helloTimer.C:
			if helloCh == nil {
				continue
			}
			s.m.invalidFor(invalidHelloTime).Inc()
			return status.Errorf(codes.DeadlineExceeded, "snakepipe: no Hello within hello_timeout (%s)", s.cfg.HelloTimeout)

		case <-wake:
			if p, ok := c.takePolicy(); ok {
				c.setPolicyVersion(p.Version)
				if err := h.ss.SendMsg(&pb.ControlMessage{Control: &pb.ControlMessage_Policy{Policy: policyToProto(p)}}); err != nil {
					return err
				}
			}

		case <-notice:
			if n, v := c.rejectNotice(seenRejects); n != nil {
				if err := h.ss.SendMsg(&pb.ControlMessage{Control: &pb.ControlMessage_Rejects{Rejects: n}}); err != nil {
					return err
				}
				seenRejects = v
			}

		case <-replaced:
			c.setEndReason(goAwayReplaced)
			_ = h.ss.SendMsg(goAway(goAwayReplaced, s.cfg.ReconnectAfter))
			return status.Error(codes.AlreadyExists, msgReplaced)

		case <-shutdown:
			shutdown = nil
			if c == nil {
				// No Welcome yet, so no GoAway either.
				return status.Error(codes.Unavailable, msgShuttingDown)
			}
			c.setEndReason(goAwayShutdown)
			if err := h.ss.SendMsg(goAway(goAwayShutdown, s.cfg.ReconnectAfter)); err != nil {
				return err
			}
			t := time.NewTimer(s.cfg.DrainTimeout)
			defer t.Stop()
			drain = t.C

		case <-drain:
			return status.Error(codes.Unavailable, msgShuttingDown)

		case <-done:
			// The worker went away (or the transport broke) while the
			// receiver may be blocked in the Consumer: unregister now; the
			// receiver still delivers what it holds, then ends.
			return status.FromContextError(h.ss.Context().Err()).Err()
		}
	}
}

func goAway(reason string, after time.Duration) *pb.ControlMessage {
	return &pb.ControlMessage{Control: &pb.ControlMessage_GoAway{GoAway: &pb.GoAway{
		Reason:           reason,
		ReconnectAfterMs: uint32(after.Milliseconds()),
	}}}
}

func (h *streamState) sendWelcome(c *conn) error {
	s := h.srv
	p := s.deps.Policy.PolicyFor(c.origin)
	w := &pb.Welcome{
		Policy:          policyToProto(p),
		ProtocolVersion: c.info.ProtocolVersion,
		HostId:          s.hostID,
		MaxMessageBytes: uint32(s.cfg.MaxMessageBytes),
		StatsIntervalMs: uint32(s.cfg.StatsInterval.Milliseconds()),
	}
	c.setPolicyVersion(p.Version)
	return h.ss.SendMsg(&pb.ControlMessage{Control: &pb.ControlMessage_Welcome{Welcome: w}})
}

// receive runs on the stream's receive goroutine: it is the only caller of
// RecvMsg. A nil result means the worker half-closed cleanly.
func (h *streamState) receive() (err error) {
	s := h.srv
	dec := s.newDecoder()
	var c *conn
	defer func() {
		if c == nil {
			return
		}
		s.reg.remove(c)
		if err != nil {
			c.setEndReason(endReason(err))
		}
		s.emitDisconnected(c)
	}()
	for {
		var f rawFrame
		if err := h.ss.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				if c != nil {
					c.setEndReason("eof")
				}
				return nil
			}
			if status.Code(err) == codes.ResourceExhausted {
				s.m.invalidFor(invalidTooLarge).Inc()
				if c != nil {
					c.setEndReason(invalidTooLarge)
				}
				// gRPC has already ended the stream with this status.
				return status.Errorf(codes.ResourceExhausted, "snakepipe: frame larger than max_message_bytes (%d): %s", s.cfg.MaxMessageBytes, status.Convert(err).Message())
			}
			return err
		}
		now := time.Now().UnixNano()
		s.m.frames.Inc()
		s.m.bytes.Add(uint64(len(f.buf)))
		fr, err := dec.decodeFrame(f.buf)
		if errors.Is(err, errOverLimit) {
			s.m.invalidFor(invalidOverLimit).Inc()
			if c != nil {
				c.setEndReason(invalidOverLimit)
			}
			return status.Errorf(codes.ResourceExhausted, "snakepipe: %v", err)
		}
		if err != nil {
			return h.invalid(c, invalidMalformed, "snakepipe: %v", err)
		}
		switch fr.kind {
		case frameHello:
			if c != nil {
				return h.invalid(c, invalidSecondHello, "snakepipe: second Hello on one stream (worker_id %q)", c.info.WorkerID)
			}
			nc, err := h.hello(fr.msg.GetHello())
			if err != nil {
				s.m.invalidFor(invalidBadHello).Inc()
				return err
			}
			c = nc
		case frameBatch:
			if c == nil {
				return h.invalid(nil, invalidNoHello, "snakepipe: first frame must be a Hello, got %s", fr.kind)
			}
			if !s.acceptBatch(c, fr.events, now) {
				return status.Error(codes.Unavailable, msgShuttingDown)
			}
		case frameStats:
			if c == nil {
				return h.invalid(nil, invalidNoHello, "snakepipe: first frame must be a Hello, got %s", fr.kind)
			}
			c.setStats(statsFromProto(fr.msg.GetStats()), time.Unix(0, now))
		default:
			// A frame with no known member: from a newer protocol version,
			// ignored (but it cannot stand in for the Hello).
			if c == nil {
				return h.invalid(nil, invalidNoHello, "snakepipe: first frame must be a Hello, got an empty WorkerMessage")
			}
		}
	}
}

// newDecoder returns a decoder with the server's limits.
func (s *Server) newDecoder() *decoder {
	d := newDecoder(s.deps.Checker)
	d.maxEvents = s.cfg.MaxBatchEvents
	d.limits = true
	return d
}

// invalid counts a frame that ends the stream and returns its status.
func (h *streamState) invalid(c *conn, reason, format string, args ...any) error {
	h.srv.m.invalidFor(reason).Inc()
	if c != nil {
		c.setEndReason(reason)
	}
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// endReason names how a stream ended, for the disconnected event.
func endReason(err error) string {
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
		return "canceled"
	case codes.Unavailable:
		return "unavailable"
	}
	return "error"
}

// hello validates the Hello, registers the connection (replacing an older
// stream of the same worker) and hands it to the sending goroutine.
func (h *streamState) hello(m *pb.Hello) (*conn, error) {
	s := h.srv
	version, err := validateHello(m)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "snakepipe: bad Hello: %v", err)
	}
	pool := m.GetPool()
	if pool == "" {
		pool = "default"
	}
	// Clone: the Hello's strings came from generated code and are ours, but
	// keep the origin independent of the message.
	origin := &pipeline.Origin{
		WorkerID: strings.Clone(m.GetWorkerId()),
		Pool:     strings.Clone(pool),
		Hostname: strings.Clone(m.GetHostname()),
		PID:      m.GetPid(),
		Addr:     h.addr,
	}
	info := WorkerInfo{
		WorkerID:        origin.WorkerID,
		Pool:            origin.Pool,
		Hostname:        origin.Hostname,
		PID:             origin.PID,
		Addr:            h.addr,
		Mode:            "stream",
		LibraryName:     m.GetLibraryName(),
		LibraryVersion:  m.GetLibraryVersion(),
		ProtocolVersion: version,
		ConnectedAt:     time.Now(),
	}
	for _, l := range m.GetLabels() {
		info.Labels = append(info.Labels, pipeline.Label{Key: l.GetKey(), Value: l.GetValue()})
	}
	c := newConn(info, origin)
	if old := s.reg.add(c); old != nil {
		s.log.Warn("worker reconnected while its previous stream was live; replacing it",
			"worker_id", origin.WorkerID, "old_addr", old.info.Addr, "new_addr", h.addr)
		old.replace()
	}
	h.helloCh <- c // the Welcome goes out even if the Consumer blocks
	s.emitConnected(c)
	return c, nil
}

// Bounds on Hello fields.
const (
	maxPoolBytes     = 128
	maxHostnameBytes = 255
	maxLibraryBytes  = 64
	maxLabels        = 32
	maxLabelKey      = 64
	maxLabelValue    = 256
)

// validateHello checks a Hello and returns the protocol version the stream
// will use: the lower of the worker's and ours.
func validateHello(m *pb.Hello) (uint32, error) {
	var errs []error
	if err := checkWorkerID(m.GetWorkerId()); err != nil {
		errs = append(errs, err)
	}
	short := func(field, v string, max int) {
		if len(v) > max {
			errs = append(errs, fmt.Errorf("%s is %d bytes, more than %d", field, len(v), max))
		} else if hasControl(v) {
			errs = append(errs, fmt.Errorf("%s holds control characters", field))
		}
	}
	short("pool", m.GetPool(), maxPoolBytes)
	short("hostname", m.GetHostname(), maxHostnameBytes)
	short("library_name", m.GetLibraryName(), maxLibraryBytes)
	short("library_version", m.GetLibraryVersion(), maxLibraryBytes)
	if m.GetPid() < 0 {
		errs = append(errs, fmt.Errorf("pid %d is negative", m.GetPid()))
	}
	if m.GetProtocolVersion() == 0 {
		errs = append(errs, fmt.Errorf("protocol_version is required (this host speaks %d)", ProtocolVersion))
	}
	if len(m.GetLabels()) > maxLabels {
		errs = append(errs, fmt.Errorf("%d labels, more than %d", len(m.GetLabels()), maxLabels))
	} else {
		for i, l := range m.GetLabels() {
			if l.GetKey() == "" {
				errs = append(errs, fmt.Errorf("labels[%d]: empty key", i))
			}
			short("labels["+strconv.Itoa(i)+"].key", l.GetKey(), maxLabelKey)
			short("labels["+strconv.Itoa(i)+"].value", l.GetValue(), maxLabelValue)
		}
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return 0, errors.New(strings.Join(msgs, "; "))
	}
	return min(m.GetProtocolVersion(), ProtocolVersion), nil
}

// acceptBatch checks each event, counts rejects and fixes, adds host context
// and hands the accepted events to the Consumer as one batch. It returns
// false when the Consumer can no longer take batches (forced shutdown).
func (s *Server) acceptBatch(c *conn, events []pipeline.Event, now int64) bool {
	if len(events) == 0 {
		return true
	}
	c.received.Add(uint64(len(events)))
	s.m.received.Add(uint64(len(events)))
	var (
		rejectBuf  [4]reasonCount
		rejects    = rejectBuf[:0]
		unknownBuf [maxRecentUnknown]string
		unknown    = unknownBuf[:0]
		kept       = 0
	)
	for i := range events {
		ev := &events[i]
		fixes, err := s.deps.Checker.Check(ev)
		if err != nil {
			reason := rejectReason(err)
			rejects = addReason(rejects, reason)
			if reason == reasonUnknownEvent && len(unknown) < cap(unknown) {
				unknown = append(unknown, boundedName(ev.Name))
			}
			continue
		}
		if fixes.Any() { // the usual case is none
			fixes.Each(s.countFix)
		}
		if kept != i {
			events[kept] = *ev
		}
		kept++
	}
	if len(rejects) > 0 {
		for _, rc := range rejects {
			s.m.rejectedFor(rc.reason).Add(uint64(rc.n))
		}
		c.addRejects(rejects, unknown)
	}
	clear(events[kept:])
	events = events[:kept]
	if kept == 0 {
		return true
	}
	seq := nextSeq(kept)
	size := 0
	for i := range events {
		ev := &events[i]
		ev.Origin = c.origin
		ev.ReceivedNs = now
		ev.Seq = seq + uint64(i)
		size += ev.ApproxBytes() // Batch.ComputeBytes, in the same pass
	}
	return s.consume(&pipeline.Batch{Events: events, Bytes: size})
}

func addReason(rs []reasonCount, reason string) []reasonCount {
	for i := range rs {
		if rs[i].reason == reason {
			rs[i].n++
			return rs
		}
	}
	return append(rs, reasonCount{reason: reason, n: 1})
}

// boundedName copies an unknown event name (it aliases the frame) and
// shortens it for the registry and RejectNotice.
func boundedName(name string) string {
	if len(name) > maxUnknownBytes {
		name = strings.ToValidUTF8(name[:maxUnknownBytes], "")
	}
	return strings.Clone(name)
}

func (s *Server) addFix(kind string, n int) {
	s.m.fixedFor(kind).Add(uint64(n))
}

// consume hands b to the Consumer with the server's consume context.
func (s *Server) consume(b *pipeline.Batch) bool {
	err := s.deps.Consumer.Consume(s.consumeCtx, b)
	if err == nil {
		return true
	}
	s.m.consumeErrors.Inc()
	if s.consumeCtx.Err() != nil {
		return false
	}
	s.log.Debug("pipeline refused a batch", "events", len(b.Events), "error", err)
	return true
}

func (s *Server) emitConnected(c *conn) {
	now := time.Now().UnixNano()
	lib := c.info.LibraryName
	if c.info.LibraryVersion != "" {
		lib += "/" + c.info.LibraryVersion
	}
	s.consume(&pipeline.Batch{Events: []pipeline.Event{{
		Name:        EventWorkerConnected,
		TimestampNs: now,
		ReceivedNs:  now,
		SampleRate:  1,
		Seq:         nextSeq(1),
		Metadata: append(originLabels(c.origin),
			pipeline.Label{Key: "library_version", Value: lib},
			pipeline.Label{Key: "protocol_version", Value: strconv.FormatUint(uint64(c.info.ProtocolVersion), 10)},
			pipeline.Label{Key: "addr", Value: c.info.Addr},
			pipeline.Label{Key: "mode", Value: c.info.Mode},
		),
	}}})
}

func (s *Server) emitDisconnected(c *conn) {
	now := time.Now().UnixNano()
	c.mu.Lock()
	rejected := c.rejectedTotal
	c.mu.Unlock()
	s.consume(&pipeline.Batch{Events: []pipeline.Event{{
		Name:        EventWorkerDisconnected,
		TimestampNs: now,
		ReceivedNs:  now,
		SampleRate:  1,
		Seq:         nextSeq(1),
		Measurements: []pipeline.Measurement{
			{Key: "duration", Value: pipeline.IntValue(now - c.info.ConnectedAt.UnixNano())},
			{Key: "events", Value: pipeline.IntValue(int64(c.received.Load()))},
			{Key: "rejected", Value: pipeline.IntValue(int64(rejected))},
		},
		Metadata: append(originLabels(c.origin),
			pipeline.Label{Key: "reason", Value: c.reason()},
			pipeline.Label{Key: "addr", Value: c.info.Addr},
		),
	}}})
}

// originLabels names the worker in a host event's metadata. Host events
// have no Origin (so a worker's own policy filter never applies to them);
// Event.Meta still finds worker_id, pool, hostname and pid.
func originLabels(o *pipeline.Origin) []pipeline.Label {
	return []pipeline.Label{
		{Key: pipeline.KeyWorkerID, Value: o.WorkerID},
		{Key: pipeline.KeyPool, Value: o.Pool},
		{Key: pipeline.KeyHostname, Value: o.Hostname},
		{Key: pipeline.KeyPID, Value: strconv.FormatInt(o.PID, 10)},
	}
}
