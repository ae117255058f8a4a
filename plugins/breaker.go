package plugins

import (
	"sync"
	"sync/atomic"
	"time"
)

// Breaker defaults (docs/plugin-abi.md §9).
const (
	breakerThreshold  = 5
	breakerMinBackoff = time.Second
	breakerMaxBackoff = 5 * time.Minute
)

// breaker disables a plugin after consecutive failed batches and lets one
// trial batch through after a doubling back-off.
type breaker struct {
	now func() time.Time

	mu       sync.Mutex
	fails    int
	open     bool
	trial    bool // a trial batch is running
	backoff  time.Duration
	retryAt  time.Time
	onChange func(open bool)

	// Lock-free fast paths for the common case (every batch calls allow
	// and success): isOpenFast mirrors open, dirty is set while fails > 0
	// or open. Both are written under mu.
	isOpenFast atomic.Bool
	dirty      atomic.Bool
}

// allow reports whether a batch may run the plugin. While the breaker is
// open it returns false, except for one trial batch once the back-off has
// passed.
func (b *breaker) allow() bool {
	if !b.isOpenFast.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if b.trial || b.now().Before(b.retryAt) {
		return false
	}
	b.trial = true
	return true
}

// success records a good batch: it closes the breaker.
func (b *breaker) success() {
	if !b.dirty.Load() {
		return
	}
	b.mu.Lock()
	wasOpen := b.open
	b.fails, b.open, b.trial, b.backoff = 0, false, false, 0
	b.isOpenFast.Store(false)
	b.dirty.Store(false)
	b.mu.Unlock()
	if wasOpen && b.onChange != nil {
		b.onChange(false)
	}
}

// failure records a failed batch; it returns true if the breaker opened.
func (b *breaker) failure() bool {
	b.mu.Lock()
	b.fails++
	b.dirty.Store(true)
	opened := false
	switch {
	case b.open && b.trial: // trial failed: back off longer
		b.trial = false
		b.backoff *= 2
		if b.backoff > breakerMaxBackoff {
			b.backoff = breakerMaxBackoff
		}
		b.retryAt = b.now().Add(b.backoff)
	case !b.open && b.fails >= breakerThreshold:
		b.open, opened = true, true
		b.isOpenFast.Store(true)
		b.backoff = breakerMinBackoff
		b.retryAt = b.now().Add(b.backoff)
	}
	b.mu.Unlock()
	if opened && b.onChange != nil {
		b.onChange(true)
	}
	return opened
}

// reset closes the breaker (a new version was deployed).
func (b *breaker) reset() { b.success() }
