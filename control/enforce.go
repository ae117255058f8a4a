package control

import (
	"context"
	"sync"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Enforcer applies the policy's enabled flag and allow/deny filter to events
// as they arrive, so a worker that ignores control frames (an old library,
// a bug, a hostile client) cannot flood the pipeline. Sampling is not
// re-applied: workers stamp the rate they sampled at, and sampling twice
// would skew counts. Events the host made itself (Origin nil) pass.
type Enforcer struct {
	store *Store
	next  pipeline.Consumer

	disabled, filtered *pipeline.Counter

	mu      sync.Mutex
	version uint64
	cache   map[*pipeline.Origin]*pipeline.CompiledPolicy
}

// maxEnforcerCache bounds the per-origin cache; origins die with their
// streams, so the cache is simply dropped when it grows past this.
const maxEnforcerCache = 4096

// NewEnforcer wraps next.
func NewEnforcer(store *Store, next pipeline.Consumer, m *pipeline.Metrics) *Enforcer {
	const name, help = "snakepipe_control_events_dropped_total", "Events dropped on arrival by host-side policy enforcement, by reason."
	return &Enforcer{
		store:    store,
		next:     next,
		disabled: m.Counter(name, help, pipeline.L("reason", "disabled")...),
		filtered: m.Counter(name, help, pipeline.L("reason", "filtered")...),
		cache:    map[*pipeline.Origin]*pipeline.CompiledPolicy{},
	}
}

func (e *Enforcer) policy(o *pipeline.Origin) *pipeline.CompiledPolicy {
	v := e.store.Version()
	e.mu.Lock()
	defer e.mu.Unlock()
	if v != e.version || len(e.cache) > maxEnforcerCache {
		clear(e.cache)
		e.version = v
	}
	if cp, ok := e.cache[o]; ok {
		return cp
	}
	cp, err := e.store.PolicyFor(o).Compile()
	if err != nil { // the store only holds validated policy
		cp, _ = pipeline.DefaultPolicy().Compile()
	}
	e.cache[o] = cp
	return cp
}

// Consume filters b in place and passes what is left on.
func (e *Enforcer) Consume(ctx context.Context, b *pipeline.Batch) error {
	var last *pipeline.Origin
	var cp *pipeline.CompiledPolicy
	kept := b.Events[:0]
	dropped := false
	for i := range b.Events {
		ev := &b.Events[i]
		if ev.Origin == nil {
			kept = append(kept, *ev)
			continue
		}
		if ev.Origin != last {
			last, cp = ev.Origin, e.policy(ev.Origin)
		}
		switch {
		case !cp.Enabled:
			e.disabled.Inc()
			dropped = true
		case !cp.Allowed(ev.Name):
			e.filtered.Inc()
			dropped = true
		default:
			kept = append(kept, *ev)
		}
	}
	if dropped {
		clear(b.Events[len(kept):])
		b.Events = kept
		b.Bytes = 0
		if len(kept) == 0 {
			return nil
		}
	}
	return e.next.Consume(ctx, b)
}
