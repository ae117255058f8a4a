package control

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Tap copies live events to subscribers (`snakepipe ctl tap`). It sits in
// front of the pipeline as a Consumer. With no subscriber it costs one atomic
// load per batch. A subscriber gets at most its rate cap of events per
// second; the rest are skipped and counted, and a slow subscriber's full
// buffer skips events rather than slowing the pipeline.
type Tap struct {
	next   pipeline.Consumer
	maxEPS int
	active atomic.Int32

	mu   sync.Mutex
	subs map[*TapSubscription]struct{}
}

// DefaultTapRate and MaxTapRate bound subscriptions' events per second.
const (
	DefaultTapRate = 100
	MaxTapRate     = 10000
	tapBuffer      = 256
)

// NewTap wraps next; maxEPS caps every subscription (0 = MaxTapRate).
func NewTap(next pipeline.Consumer, maxEPS int) *Tap {
	if maxEPS <= 0 || maxEPS > MaxTapRate {
		maxEPS = MaxTapRate
	}
	return &Tap{next: next, maxEPS: maxEPS, subs: map[*TapSubscription]struct{}{}}
}

// TapFilter selects events for a subscription.
type TapFilter struct {
	Filter   pipeline.AllowDeny
	Selector Selector
	// EventsPerSecond caps the subscription (0 = DefaultTapRate).
	EventsPerSecond int
}

// TapSubscription receives tapped events as JSON lines.
type TapSubscription struct {
	filter TapFilter
	ch     chan []byte
	// skipped counts events matching the filter that were not delivered
	// (rate cap or full buffer) since the last Skipped call.
	skipped atomic.Uint64

	// token bucket, guarded by Tap.mu
	tokens float64
	last   time.Time
}

// C delivers events, one JSON line each. It is closed by Unsubscribe.
func (s *TapSubscription) C() <-chan []byte { return s.ch }

// Skipped returns and resets the skipped count.
func (s *TapSubscription) Skipped() uint64 { return s.skipped.Swap(0) }

// ErrTooManyTaps limits concurrent subscriptions.
var ErrTooManyTaps = errors.New("too many taps")

const maxTaps = 16

// Subscribe starts a subscription.
func (t *Tap) Subscribe(f TapFilter) (*TapSubscription, error) {
	if f.EventsPerSecond <= 0 {
		f.EventsPerSecond = DefaultTapRate
	}
	if f.EventsPerSecond > t.maxEPS {
		f.EventsPerSecond = t.maxEPS
	}
	s := &TapSubscription{filter: f, ch: make(chan []byte, tapBuffer), tokens: float64(f.EventsPerSecond), last: time.Now()}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.subs) >= maxTaps {
		return nil, ErrTooManyTaps
	}
	t.subs[s] = struct{}{}
	t.active.Add(1)
	return s, nil
}

// Unsubscribe ends a subscription and closes its channel.
func (t *Tap) Unsubscribe(s *TapSubscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[s]; !ok {
		return
	}
	delete(t.subs, s)
	t.active.Add(-1)
	close(s.ch)
}

// Subscribers returns the number of live subscriptions.
func (t *Tap) Subscribers() int { return int(t.active.Load()) }

// Consume offers b to subscribers, then passes it on unchanged.
func (t *Tap) Consume(ctx context.Context, b *pipeline.Batch) error {
	if t.active.Load() > 0 {
		t.offer(b)
	}
	return t.next.Consume(ctx, b)
}

func (t *Tap) offer(b *pipeline.Batch) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.subs {
		rate := float64(s.filter.EventsPerSecond)
		s.tokens += now.Sub(s.last).Seconds() * rate
		if s.tokens > rate {
			s.tokens = rate
		}
		s.last = now
		for i := range b.Events {
			ev := &b.Events[i]
			if !s.filter.Selector.Matches(ev.Origin) && s.filter.Selector.Kind != SelectAll {
				continue
			}
			if !s.filter.Filter.Allowed(ev.Name) {
				continue
			}
			if s.tokens < 1 {
				s.skipped.Add(1)
				continue
			}
			select {
			case s.ch <- pipeline.AppendJSON(make([]byte, 0, 256), ev):
				s.tokens--
			default:
				s.skipped.Add(1)
			}
		}
	}
}
