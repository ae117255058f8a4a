package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
)

// Switch is a Consumer that forwards to a current Consumer (a Graph) which
// can be replaced while batches flow: ingest holds the Switch, and a config
// reload builds and starts a new Graph, swaps it in, then shuts the old one
// down. A batch the old graph refuses with ErrGraphClosed (it was not
// accepted anywhere) is retried on the new one, so a swap loses nothing and
// duplicates nothing.
type Switch struct {
	cur atomic.Pointer[consumerRef]
}

type consumerRef struct{ c Consumer }

var _ Consumer = (*Switch)(nil)

// NewSwitch returns a Switch forwarding to c.
func NewSwitch(c Consumer) *Switch {
	s := &Switch{}
	s.cur.Store(&consumerRef{c: c})
	return s
}

// Consume forwards b to the current consumer.
func (s *Switch) Consume(ctx context.Context, b *Batch) error {
	for {
		ref := s.cur.Load()
		err := ref.c.Consume(ctx, b)
		if errors.Is(err, ErrGraphClosed) && s.cur.Load() != ref {
			continue // swapped meanwhile: the batch is still ours, try the new one
		}
		return err
	}
}

// Swap makes c the current consumer and returns the previous one, which the
// caller then shuts down.
func (s *Switch) Swap(c Consumer) Consumer {
	return s.cur.Swap(&consumerRef{c: c}).c
}

// Current returns the current consumer.
func (s *Switch) Current() Consumer { return s.cur.Load().c }
