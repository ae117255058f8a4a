package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// FullPolicy says what a Queue does with a batch that does not fit.
type FullPolicy uint8

const (
	// FullBlock makes Put wait for room: backpressure, all the way to the
	// worker's gRPC stream.
	FullBlock FullPolicy = iota
	// FullDropNewest drops the batch being put.
	FullDropNewest
	// FullDropOldest evicts the oldest queued batches until the new one fits.
	FullDropOldest
)

func (p FullPolicy) String() string {
	switch p {
	case FullDropNewest:
		return "drop_newest"
	case FullDropOldest:
		return "drop_oldest"
	default:
		return "block"
	}
}

// ErrBadFullPolicy is returned by ParseFullPolicy.
var ErrBadFullPolicy = errors.New("bad full_policy")

// ParseFullPolicy parses "block", "drop_newest" or "drop_oldest".
func ParseFullPolicy(s string) (FullPolicy, error) {
	switch s {
	case "block", "":
		return FullBlock, nil
	case "drop_newest":
		return FullDropNewest, nil
	case "drop_oldest":
		return FullDropOldest, nil
	}
	return FullBlock, fmt.Errorf("%w %q: want block, drop_newest or drop_oldest", ErrBadFullPolicy, s)
}

// Drop reasons a Queue reports to its onDrop callback.
const (
	DropReasonQueueFull     = "queue_full"
	DropReasonEvictedOldest = "evicted_oldest"
)

// QueueConfig bounds a queue in events and in bytes (peers' memory blowups
// came from queues counted in events only).
type QueueConfig struct {
	MaxEvents  int    `koanf:"max_events"`
	MaxBytes   int    `koanf:"max_bytes"`
	FullPolicy string `koanf:"full_policy"`
}

// Hard limits on QueueConfig, so a typo cannot reserve the machine.
const (
	MaxQueueEvents = 1 << 24
	MaxQueueBytes  = 4 << 30
)

// DefaultQueueConfig is 65536 events / 64 MiB, blocking when full.
func DefaultQueueConfig() QueueConfig {
	return QueueConfig{MaxEvents: 65536, MaxBytes: 64 << 20, FullPolicy: "block"}
}

// Validate reports every problem, naming the key.
func (c QueueConfig) Validate() error {
	var errs []error
	if c.MaxEvents <= 0 || c.MaxEvents > MaxQueueEvents {
		errs = append(errs, fmt.Errorf("max_events: %d must be in [1, %d]", c.MaxEvents, MaxQueueEvents))
	}
	if c.MaxBytes <= 0 || c.MaxBytes > MaxQueueBytes {
		errs = append(errs, fmt.Errorf("max_bytes: %d must be in [1, %d]", c.MaxBytes, MaxQueueBytes))
	}
	if _, err := ParseFullPolicy(c.FullPolicy); err != nil {
		errs = append(errs, fmt.Errorf("full_policy: %w", err))
	}
	return errors.Join(errs...)
}

var (
	// ErrQueueFull is returned by Put when the policy is drop_newest and the
	// batch was dropped (and counted).
	ErrQueueFull = errors.New("queue full")
	// ErrQueueClosed is returned by Put after Close, and by Get once the
	// queue is closed and drained.
	ErrQueueClosed = errors.New("queue closed")
)

// Queue is a bounded FIFO of batches, bounded by events and bytes. It is
// safe for many producers and many consumers. A batch bigger than the whole
// bound is admitted only into an empty queue, so it cannot wedge the queue
// and is not silently lost.
type Queue struct {
	maxEvents, maxBytes int
	policy              FullPolicy
	onDrop              func(reason string, events int)

	mu       sync.Mutex
	items    []*Batch // ring buffer
	head, n  int
	events   int
	bytes    int
	closed   bool
	notEmpty chan struct{} // closed and replaced to wake waiters
	notFull  chan struct{}
}

// NewQueue builds a queue; cfg must be valid. onDrop (may be nil) is called,
// outside the queue's lock, for every dropped batch.
func NewQueue(cfg QueueConfig, onDrop func(reason string, events int)) *Queue {
	p, _ := ParseFullPolicy(cfg.FullPolicy)
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultQueueConfig().MaxEvents
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultQueueConfig().MaxBytes
	}
	if onDrop == nil {
		onDrop = func(string, int) {}
	}
	return &Queue{
		maxEvents: cfg.MaxEvents,
		maxBytes:  cfg.MaxBytes,
		policy:    p,
		onDrop:    onDrop,
		items:     make([]*Batch, 16),
		notEmpty:  make(chan struct{}),
		notFull:   make(chan struct{}),
	}
}

func batchBytes(b *Batch) int {
	if b.Bytes > 0 {
		return b.Bytes
	}
	return b.ComputeBytes()
}

// fits reports whether a batch of ev events and by bytes fits now.
func (q *Queue) fits(ev, by int) bool {
	if q.n == 0 {
		return true
	}
	return q.events+ev <= q.maxEvents && q.bytes+by <= q.maxBytes
}

func (q *Queue) push(b *Batch, by int) {
	if q.n == len(q.items) {
		grown := make([]*Batch, 2*len(q.items))
		for i := 0; i < q.n; i++ {
			grown[i] = q.items[(q.head+i)%len(q.items)]
		}
		q.items, q.head = grown, 0
	}
	q.items[(q.head+q.n)%len(q.items)] = b
	q.n++
	q.events += len(b.Events)
	q.bytes += by
	close(q.notEmpty)
	q.notEmpty = make(chan struct{})
}

func (q *Queue) pop() *Batch {
	b := q.items[q.head]
	q.items[q.head] = nil
	q.head = (q.head + 1) % len(q.items)
	q.n--
	q.events -= len(b.Events)
	q.bytes -= batchBytes(b)
	close(q.notFull)
	q.notFull = make(chan struct{})
	return b
}

// Put adds b to the queue according to the full policy. With block it waits
// for room or ctx; the returned error then wraps ctx.Err() and b was not
// queued (the caller still owns it).
func (q *Queue) Put(ctx context.Context, b *Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	by := batchBytes(b)
	var evicted []*Batch
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return ErrQueueClosed
		}
		if q.fits(len(b.Events), by) {
			break
		}
		switch q.policy {
		case FullDropNewest:
			q.mu.Unlock()
			q.onDrop(DropReasonQueueFull, len(b.Events))
			return ErrQueueFull
		case FullDropOldest:
			for !q.fits(len(b.Events), by) {
				evicted = append(evicted, q.pop())
			}
			continue
		}
		wait := q.notFull
		q.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("queue put: %w", ctx.Err())
		}
		q.mu.Lock()
	}
	q.push(b, by)
	q.mu.Unlock()
	for _, e := range evicted {
		q.onDrop(DropReasonEvictedOldest, len(e.Events))
	}
	return nil
}

// Get removes and returns the oldest batch, waiting until one is queued. It
// returns ErrQueueClosed once the queue is closed and empty, and an error
// wrapping ctx.Err() if ctx ends first.
func (q *Queue) Get(ctx context.Context) (*Batch, error) {
	q.mu.Lock()
	for q.n == 0 {
		if q.closed {
			q.mu.Unlock()
			return nil, ErrQueueClosed
		}
		wait := q.notEmpty
		q.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("queue get: %w", ctx.Err())
		}
		q.mu.Lock()
	}
	b := q.pop()
	q.mu.Unlock()
	return b, nil
}

// TryGet returns the oldest batch without waiting, or nil.
func (q *Queue) TryGet() *Batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil
	}
	return q.pop()
}

// Close stops accepting batches: Put fails from now on, waiting Puts return
// ErrQueueClosed, and Get drains what is left before returning
// ErrQueueClosed. Close is idempotent.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	close(q.notEmpty)
	q.notEmpty = make(chan struct{})
	close(q.notFull)
	q.notFull = make(chan struct{})
}

// Len reports what is queued now.
func (q *Queue) Len() (batches, events, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.events, q.bytes
}

// Policy returns the queue's full policy.
func (q *Queue) Policy() FullPolicy { return q.policy }
