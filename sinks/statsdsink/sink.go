// Package statsdsink sends events to a StatsD server (etsy statsd,
// DogStatsD, Telegraf, statsd_exporter, …) as metrics, mapped by config
// rules, over UDP, TCP or a Unix datagram socket.
package statsdsink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in the config file (sinks: {statsd/main: …}).
const Type = "statsd"

// NewFactory returns the statsd sink factory.
func NewFactory() pipeline.SinkFactory {
	return pipeline.NewSinkFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Sink, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("statsd sink: config is %T, want *statsdsink.Config", cfg)
			}
			return New(set, c)
		})
}

// ErrClosed is returned (as a permanent error) by Write after Shutdown.
var ErrClosed = errors.New("statsd sink is shut down")

// tcpChunkBytes is how much a tcp write carries at most.
const tcpChunkBytes = 64 << 10

// Sink sends mapped metrics to a StatsD server.
//
// Write formats the whole batch into packets (lines packed up to
// max_packet_bytes), then sends them in order. If the first packet cannot
// be sent, Write returns a transient error and nothing of the batch was
// sent, so a retry cannot duplicate metrics. If a later packet fails, the
// rest of the batch is dropped and counted
// (snakepipe_statsd_lines_dropped_total{reason="send_error"}) and Write
// returns nil: StatsD is lossy by design and resending a prefix would
// double-count it. A refused UDP send (ICMP port unreachable from an absent
// server) is such a transient error. tcp and unixgram connections are
// redialled after an error.
//
// Write is safe for concurrent use (calls are serialized).
type Sink struct {
	cfg  Config
	set  pipeline.Settings
	log  hclog.Logger
	id   string
	fmt  formatter
	maps *mapper

	mu     sync.Mutex
	conn   net.Conn
	closed bool
	// buf holds the packets of the current Write back to back; pkts
	// delimits them.
	buf  []byte
	pkts []packet
	line []byte
	// Aggregation: counters staged during a Write, merged once it succeeds.
	agg     map[string]*aggEntry
	staged  []stagedCounter
	stageB  []byte
	aggKeys []string

	stopFlush chan struct{}
	flushDone chan struct{}
	startOnce sync.Once

	mLines, mPackets, mBytes *pipeline.Counter
	mSendErr                 map[string]*pipeline.Counter
	mDropped                 map[string]*pipeline.Counter
	mSkipped                 map[string]*pipeline.Counter
	mAggKeys                 *pipeline.Gauge
}

type packet struct {
	start, end, lines int
}

type aggEntry struct {
	headLen int // the key is head + tail; head ends at headLen
	sum     float64
}

type stagedCounter struct {
	start, end, headLen int // key in stageB
	v                   float64
}

var _ pipeline.Sink = (*Sink)(nil)

// Send error reasons (label values of snakepipe_statsd_send_errors_total).
const (
	sendErrConnRefused = "conn_refused"
	sendErrDial        = "dial"
	sendErrTimeout     = "timeout"
	sendErrWrite       = "write"
	dropSendError      = "send_error"
)

// New builds a sink; cfg must be valid.
func New(set pipeline.Settings, cfg *Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	style, _ := ParseTagStyle(cfg.TagStyle)
	maps, err := newMapper(cfg)
	if err != nil {
		return nil, err
	}
	log := set.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := set.Metrics
	id := set.ID.String()
	s := &Sink{
		cfg:      *cfg,
		set:      set,
		log:      log,
		id:       id,
		fmt:      newFormatter(style, cfg.Tags),
		maps:     maps,
		agg:      map[string]*aggEntry{},
		mLines:   m.Counter("snakepipe_statsd_lines_total", "StatsD lines handed to the socket.", pipeline.L("sink", id)...),
		mPackets: m.Counter("snakepipe_statsd_packets_total", "StatsD datagrams (or tcp writes) sent.", pipeline.L("sink", id)...),
		mBytes:   m.Counter("snakepipe_statsd_bytes_total", "StatsD payload bytes sent.", pipeline.L("sink", id)...),
		mSendErr: map[string]*pipeline.Counter{},
		mDropped: map[string]*pipeline.Counter{},
		mSkipped: map[string]*pipeline.Counter{},
		mAggKeys: m.Gauge("snakepipe_statsd_aggregated_keys", "Counters waiting in the client-side aggregation.", pipeline.L("sink", id)...),
	}
	for _, r := range []string{sendErrConnRefused, sendErrDial, sendErrTimeout, sendErrWrite} {
		s.mSendErr[r] = m.Counter("snakepipe_statsd_send_errors_total", "Socket errors, by kind.", pipeline.L("sink", id, "reason", r)...)
	}
	s.mDropped[dropSendError] = m.Counter("snakepipe_statsd_lines_dropped_total", "Formatted lines never sent, by reason.", pipeline.L("sink", id, "reason", dropSendError)...)
	for _, r := range []string{skipMissingMeasurement, skipMissingMetadata, skipNotNumeric, skipInvalidValue, skipLineTooLong} {
		s.mSkipped[r] = m.Counter("snakepipe_statsd_mapping_skipped_total", "Mapping rules that matched an event but produced no line, by reason.", pipeline.L("sink", id, "reason", r)...)
	}
	return s, nil
}

// Start dials the server (tcp may fail here; it is redialled on Write) and
// starts the aggregation flusher.
func (s *Sink) Start(ctx context.Context) error {
	s.startOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		if err := s.dialLocked(ctx); err != nil {
			s.log.Debug("statsd server not reachable yet; will retry on write", "sink", s.id, "error", err)
		}
		if s.cfg.AggregateCounters {
			s.stopFlush = make(chan struct{})
			s.flushDone = make(chan struct{})
			go s.flushLoop(s.stopFlush, s.flushDone)
		}
	})
	return nil
}

func (s *Sink) dialLocked(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	d := net.Dialer{Timeout: s.cfg.WriteTimeout}
	c, err := d.DialContext(ctx, s.cfg.Network, s.cfg.Address)
	if err != nil {
		s.mSendErr[sendErrDial].Inc()
		return fmt.Errorf("statsd %s %s: dial: %w", s.cfg.Network, s.cfg.Address, err)
	}
	s.conn = c
	return nil
}

// Write maps and sends b. See Sink for the error contract.
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return pipeline.Permanent(ErrClosed)
	}
	s.buf, s.pkts = s.buf[:0], s.pkts[:0]
	s.staged, s.stageB = s.staged[:0], s.stageB[:0]
	for i := range b.Events {
		s.appendEvent(&b.Events[i])
	}
	if len(s.pkts) > 0 {
		if err := s.sendPacketsLocked(ctx); err != nil {
			return err
		}
	}
	s.mergeStagedLocked()
	return nil
}

// appendEvent formats every target of e into packets or the stage.
func (s *Sink) appendEvent(e *pipeline.Event) {
	targets := s.maps.targets(e.Name)
	for ti := range targets {
		t := &targets[ti]
		if s.cfg.AggregateCounters && t.r.typ == Counter && s.stageCounter(t, e) {
			continue
		}
		var reason string
		s.line, reason = s.fmt.appendLine(s.line[:0], t, e)
		if reason == skipNone && len(s.line) > MaxPacketLimit {
			reason = skipLineTooLong // would not fit any datagram
		}
		if reason != skipNone {
			s.mSkipped[reason].Inc()
			continue
		}
		s.pack(s.line)
	}
}

// stageCounter stages an aggregated counter; false means "send it as a
// line" (aggregation map full) or skip was counted.
func (s *Sink) stageCounter(t *target, e *pipeline.Event) bool {
	v, reason := value(t, e)
	if reason != skipNone {
		s.mSkipped[reason].Inc()
		return true
	}
	if len(s.agg)+len(s.staged) >= s.cfg.MaxAggregateKeys {
		return false
	}
	start := len(s.stageB)
	s.stageB = s.fmt.appendHead(s.stageB, t, e)
	head := len(s.stageB) - start
	s.stageB = s.fmt.appendTail(s.stageB, t, e)
	s.staged = append(s.staged, stagedCounter{start: start, end: len(s.stageB), headLen: head, v: v / sampleRate(e)})
	return true
}

func (s *Sink) mergeStagedLocked() {
	for _, st := range s.staged {
		key := s.stageB[st.start:st.end]
		if ent, ok := s.agg[string(key)]; ok {
			ent.sum += st.v
			continue
		}
		s.agg[string(key)] = &aggEntry{headLen: st.headLen, sum: st.v}
	}
	s.mAggKeys.Set(float64(len(s.agg)))
}

// pack appends one formatted line (possibly two, for negative gauges) to
// the current packet, starting a new packet when it would not fit.
func (s *Sink) pack(line []byte) {
	stream := s.cfg.Network == NetworkTCP
	n := len(s.pkts)
	if n > 0 {
		p := &s.pkts[n-1]
		size := p.end - p.start
		fits := false
		switch {
		case stream:
			fits = size+len(line)+1 <= tcpChunkBytes
		case s.cfg.MaxPacketBytes > 0:
			fits = size+1+len(line) <= s.cfg.MaxPacketBytes
		}
		if fits {
			if !stream {
				s.buf = append(s.buf, '\n')
			}
			s.buf = append(s.buf, line...)
			if stream {
				s.buf = append(s.buf, '\n')
			}
			p.end = len(s.buf)
			p.lines += lineCount(line)
			return
		}
	}
	start := len(s.buf)
	s.buf = append(s.buf, line...)
	if stream {
		s.buf = append(s.buf, '\n')
	}
	s.pkts = append(s.pkts, packet{start: start, end: len(s.buf), lines: lineCount(line)})
}

func lineCount(line []byte) int {
	n := 1
	for _, c := range line {
		if c == '\n' {
			n++
		}
	}
	return n
}

// sendPacketsLocked sends s.pkts in order (see Sink for the contract).
func (s *Sink) sendPacketsLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for i, p := range s.pkts {
		err := s.sendLocked(ctx, s.buf[p.start:p.end], deadline)
		if err == nil {
			s.mLines.Add(uint64(p.lines))
			continue
		}
		if i == 0 {
			return err
		}
		lost := 0
		for _, q := range s.pkts[i:] {
			lost += q.lines
		}
		s.mDropped[dropSendError].Add(uint64(lost))
		s.log.Debug("statsd send failed mid-batch; rest of the batch dropped", "sink", s.id, "lines", lost, "error", err)
		return nil
	}
	return nil
}

// sendLocked writes one packet, dialling first if needed.
func (s *Sink) sendLocked(ctx context.Context, p []byte, deadline time.Time) error {
	if err := s.dialLocked(ctx); err != nil {
		return err
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return s.failLocked(err)
	}
	if _, err := s.conn.Write(p); err != nil {
		return s.failLocked(err)
	}
	s.mPackets.Inc()
	s.mBytes.Add(uint64(len(p)))
	return nil
}

// failLocked counts a socket error, drops stream and unixgram connections
// (redialled on the next send) and wraps err as transient.
func (s *Sink) failLocked(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		s.mSendErr[sendErrConnRefused].Inc()
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		s.mSendErr[sendErrTimeout].Inc()
	default:
		s.mSendErr[sendErrWrite].Inc()
	}
	if s.cfg.Network != NetworkUDP {
		_ = s.conn.Close()
		s.conn = nil
	}
	return fmt.Errorf("statsd %s %s: %w", s.cfg.Network, s.cfg.Address, err)
}

func (s *Sink) flushLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
			if err := s.Flush(ctx); err != nil {
				s.log.Debug("statsd aggregated flush failed; kept for the next one", "sink", s.id, "error", err)
			}
			cancel()
		}
	}
}

// Flush sends the aggregated counters now. Counters whose packet could not
// be sent stay aggregated for the next flush.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked(ctx)
}

func (s *Sink) flushLocked(ctx context.Context) error {
	if len(s.agg) == 0 {
		return nil
	}
	s.buf, s.pkts = s.buf[:0], s.pkts[:0]
	s.aggKeys = s.aggKeys[:0]
	keyPkt := make([]int, 0, len(s.agg))
	for k, ent := range s.agg {
		if ent.sum == 0 {
			delete(s.agg, k)
			continue
		}
		s.line = append(s.line[:0], k[:ent.headLen]...)
		s.line = append(s.line, ':')
		s.line = appendNumber(s.line, ent.sum)
		s.line = append(s.line, "|c"...)
		s.line = append(s.line, k[ent.headLen:]...)
		s.pack(s.line)
		s.aggKeys = append(s.aggKeys, k)
		keyPkt = append(keyPkt, len(s.pkts)-1)
	}
	var err error
	sent := len(s.pkts)
	if len(s.pkts) > 0 {
		if err = ctx.Err(); err == nil {
			deadline := time.Now().Add(s.cfg.WriteTimeout)
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			for i, p := range s.pkts {
				if err = s.sendLocked(ctx, s.buf[p.start:p.end], deadline); err != nil {
					sent = i
					break
				}
				s.mLines.Add(uint64(p.lines))
			}
		} else {
			sent = 0
		}
	}
	for i, k := range s.aggKeys {
		if keyPkt[i] < sent {
			delete(s.agg, k)
		}
	}
	s.mAggKeys.Set(float64(len(s.agg)))
	return err
}

// Shutdown sends the aggregated counters (within ctx) and closes the
// socket. Safe to call twice.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	stop, done := s.stopFlush, s.flushDone
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.flushLocked(ctx)
	if err != nil {
		s.mDropped[dropSendError].Add(uint64(len(s.agg)))
		err = fmt.Errorf("statsd: final flush: %w", err)
	}
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
	return err
}
