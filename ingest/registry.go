package ingest

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// WorkerInfo describes one live worker stream, for the admin API.
type WorkerInfo struct {
	WorkerID string
	Pool     string
	Hostname string
	PID      int64
	// Addr is the peer address (stream mode) or the dialed address.
	Addr string
	// Mode is "stream" (the worker dialed snakepipe) or "dial" (snakepipe
	// dialed a Snakepit worker).
	Mode            string
	LibraryName     string
	LibraryVersion  string
	ProtocolVersion uint32
	Labels          []pipeline.Label
	ConnectedAt     time.Time
	// EventsReceived counts events decoded from this stream (accepted or
	// rejected); EventsRejected counts rejects by catalog reason.
	EventsReceived uint64
	EventsRejected map[string]uint64
	// RecentUnknownNames are the last few rejected unknown event names.
	RecentUnknownNames []string
	// Stats is the last WorkerStats frame (nil until one arrives).
	Stats   *WorkerStats
	StatsAt time.Time
	// PolicyVersion is the version of the last policy sent (or being sent)
	// down the stream.
	PolicyVersion uint64
}

// WorkerStats is a worker's own report of its queue and drops (the wire
// WorkerStats message). Counters are cumulative.
type WorkerStats struct {
	QueueDepth    uint64
	QueueCapacity uint64
	EventsQueued  uint64
	EventsSent    uint64
	Dropped       map[string]uint64
	Rejected      map[string]uint64
	Reconnects    uint64
}

func statsFromProto(s *pb.WorkerStats) *WorkerStats {
	return &WorkerStats{
		QueueDepth:    s.GetQueueDepth(),
		QueueCapacity: s.GetQueueCapacity(),
		EventsQueued:  s.GetEventsQueued(),
		EventsSent:    s.GetEventsSent(),
		Dropped:       boundedCounts(s.GetDropped()),
		Rejected:      boundedCounts(s.GetRejected()),
		Reconnects:    s.GetReconnects(),
	}
}

// Bounds on what the registry keeps from worker input.
const (
	maxStatsKeys     = 32
	maxStatsKeyBytes = 64
	maxRecentUnknown = 5
	maxUnknownBytes  = 128
)

// boundedCounts copies at most maxStatsKeys entries with short keys.
func boundedCounts(in map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, min(len(in), maxStatsKeys))
	for _, k := range slices.Sorted(maps.Keys(in)) {
		if len(out) == maxStatsKeys {
			break
		}
		if len(k) <= maxStatsKeyBytes {
			out[k] = in[k]
		}
	}
	return out
}

// conn is one worker connection in the registry: a stream the worker
// opened, or a dial-mode connection to a Snakepit worker. Its counters are
// written by the connection's receiving goroutine and read by Workers.
type conn struct {
	info     WorkerInfo // static part, set before registration
	origin   *pipeline.Origin
	received atomic.Uint64

	mu            sync.Mutex
	rejected      map[string]uint64
	rejectedTotal uint64
	rejectVersion uint64 // bumped on every change, for RejectNotice
	recent        []string
	stats         *WorkerStats
	statsAt       time.Time
	policyVersion uint64

	// Control mailbox, drained by the connection's sending goroutine. Only
	// the newest policy is kept: a policy replaces the previous one whole.
	ctrlMu  sync.Mutex
	pending *pipeline.Policy
	wake    chan struct{} // capacity 1

	replacedOnce sync.Once
	replaced     chan struct{} // closed when a newer stream took the worker id

	endOnce   sync.Once
	endReason string
}

func newConn(info WorkerInfo, origin *pipeline.Origin) *conn {
	return &conn{
		info:     info,
		origin:   origin,
		rejected: map[string]uint64{},
		wake:     make(chan struct{}, 1),
		replaced: make(chan struct{}),
	}
}

// pushPolicy queues p for the sending goroutine without blocking.
func (c *conn) pushPolicy(p pipeline.Policy) {
	c.ctrlMu.Lock()
	c.pending = &p
	c.ctrlMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// takePolicy returns the queued policy, if any.
func (c *conn) takePolicy() (pipeline.Policy, bool) {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	if c.pending == nil {
		return pipeline.Policy{}, false
	}
	p := *c.pending
	c.pending = nil
	return p, true
}

func (c *conn) replace() {
	c.replacedOnce.Do(func() { close(c.replaced) })
}

// setEndReason records why the connection ended; the first reason wins.
func (c *conn) setEndReason(r string) {
	c.endOnce.Do(func() { c.endReason = r })
}

func (c *conn) reason() string {
	c.setEndReason("closed")
	return c.endReason
}

// addRejects records one batch's rejects.
func (c *conn) addRejects(counts []reasonCount, unknown []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rc := range counts {
		c.rejected[rc.reason] += uint64(rc.n)
		c.rejectedTotal += uint64(rc.n)
	}
	for _, name := range unknown {
		if i := slices.Index(c.recent, name); i >= 0 {
			c.recent = slices.Delete(c.recent, i, i+1)
		}
		if len(c.recent) == maxRecentUnknown {
			c.recent = slices.Delete(c.recent, 0, 1)
		}
		c.recent = append(c.recent, name)
	}
	c.rejectVersion++
}

// rejectNotice returns the notice to send if the counts changed since
// version seen.
func (c *conn) rejectNotice(seen uint64) (*pb.RejectNotice, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rejectVersion == seen {
		return nil, seen
	}
	return &pb.RejectNotice{Rejected: maps.Clone(c.rejected), RecentUnknownNames: slices.Clone(c.recent)}, c.rejectVersion
}

func (c *conn) setStats(s *WorkerStats, at time.Time) {
	c.mu.Lock()
	c.stats, c.statsAt = s, at
	c.mu.Unlock()
}

func (c *conn) setPolicyVersion(v uint64) {
	c.mu.Lock()
	c.policyVersion = v
	c.mu.Unlock()
}

func (c *conn) snapshot() WorkerInfo {
	w := c.info
	w.Labels = slices.Clone(w.Labels)
	w.EventsReceived = c.received.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	w.EventsRejected = maps.Clone(c.rejected)
	w.RecentUnknownNames = slices.Clone(c.recent)
	if c.stats != nil {
		s := *c.stats
		s.Dropped, s.Rejected = maps.Clone(s.Dropped), maps.Clone(s.Rejected)
		w.Stats = &s
	}
	w.StatsAt = c.statsAt
	w.PolicyVersion = c.policyVersion
	return w
}

type reasonCount struct {
	reason string
	n      int
}

// registry maps worker ids to live connections.
type registry struct {
	mu    sync.Mutex
	conns map[string]*conn
}

// add registers c and returns the connection it replaced, if any.
func (r *registry) add(c *conn) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.conns[c.info.WorkerID]
	r.conns[c.info.WorkerID] = c
	return old
}

// remove unregisters c unless a newer connection replaced it.
func (r *registry) remove(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[c.info.WorkerID] == c {
		delete(r.conns, c.info.WorkerID)
	}
}

func (r *registry) all() []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c)
	}
	return out
}

// Workers lists the live workers, sorted by worker id.
func (s *Server) Workers() []WorkerInfo {
	conns := s.reg.all()
	out := make([]WorkerInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.snapshot())
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int { return strings.Compare(a.WorkerID, b.WorkerID) })
	return out
}

// PushPolicy sends a new policy down every live connection whose origin
// matches, and returns how many matched. It does not block: each connection
// keeps only the newest policy not yet sent, and its sending goroutine
// sends it (a Policy frame, or Snakepit toggle/sampling/filter frames in
// dial mode). A connection that has not sent its Welcome yet sends the
// newest policy right after it.
func (s *Server) PushPolicy(match func(*pipeline.Origin) bool, policyFor func(*pipeline.Origin) pipeline.Policy) int {
	n := 0
	for _, c := range s.reg.all() {
		if match(c.origin) {
			c.pushPolicy(policyFor(c.origin))
			n++
		}
	}
	return n
}
