package pipeline

import (
	"context"
	"errors"
	"sync"
)

// SharedSink lets several graphs use one sink instance: a config reload
// builds a new Graph while the old one still drains, and a sink whose
// settings did not change must not be opened twice (a file sink would have
// two writers on one file). Each graph gets its own handle from Acquire.
// The first handle started starts the sink; the sink is shut down when the
// last handle is shut down.
type SharedSink struct {
	sink Sink

	mu      sync.Mutex
	refs    int
	started bool
	closed  bool
}

// ErrSinkReleased is returned by a shared sink's Start after the sink was
// shut down (every handle released it).
var ErrSinkReleased = errors.New("shared sink already shut down")

// NewSharedSink wraps s. It holds no handle yet: a SharedSink nobody
// acquires is never started nor shut down by it.
func NewSharedSink(s Sink) *SharedSink { return &SharedSink{sink: s} }

// Acquire returns a new handle on the sink, or false when the sink has
// already been shut down (the caller creates a new one instead).
func (s *SharedSink) Acquire() (Sink, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	s.refs++
	return &sinkHandle{shared: s}, true
}

// Refs returns the number of handles not yet shut down.
func (s *SharedSink) Refs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refs
}

func (s *SharedSink) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSinkReleased
	}
	if s.started {
		return nil
	}
	if err := s.sink.Start(ctx); err != nil {
		return err
	}
	s.started = true
	return nil
}

func (s *SharedSink) release(ctx context.Context) error {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		s.closed = true
	}
	s.mu.Unlock()
	if !last {
		return nil
	}
	// Shut down even when never started: the sink may hold what its
	// constructor created.
	return s.sink.Shutdown(ctx)
}

// sinkHandle is one graph's use of a SharedSink.
type sinkHandle struct {
	shared   *SharedSink
	once     sync.Once
	shutdown error
}

func (h *sinkHandle) Start(ctx context.Context) error { return h.shared.start(ctx) }

func (h *sinkHandle) Write(ctx context.Context, b *Batch) error { return h.shared.sink.Write(ctx, b) }

// registerGauges forwards to the shared sink (an Exporter registers its
// queue gauges; registering the same exporter again is harmless).
func (h *sinkHandle) registerGauges() {
	if g, ok := h.shared.sink.(gaugeRegisterer); ok {
		g.registerGauges()
	}
}

// Shutdown releases this handle once; the last release shuts the sink down.
func (h *sinkHandle) Shutdown(ctx context.Context) error {
	h.once.Do(func() { h.shutdown = h.shared.release(ctx) })
	return h.shutdown
}
