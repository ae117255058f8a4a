package plugins

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Version identifies one loaded version of a plugin stage.
type Version struct {
	// Plugin is the stage id ("wasm/slow").
	Plugin string
	// Seq is 1 for the first load and grows by one with every successful swap.
	Seq    uint64
	Path   string
	SHA256 string
	Kind   Kind
	Meta   *Meta
	// Fields are the field groups the version's plugin is sent (what
	// snk_fields returned in the probe instance; FieldsAll without it).
	Fields FieldGroups
	// LoadedAt is when the version went live.
	LoadedAt time.Time
}

// version is a live (or retiring) plugin version with its instance pool.
//
// Pool: at most `instances` instances exist (in use or idle). A batch
// takes a slot and an idle instance (or makes a new one), and gives both
// back afterwards. When every slot is taken, the batch waits in FIFO
// order; put hands its slot directly to the first waiter. A mutex and a
// slice, not channels: the pool is on every batch's path, and four
// channel operations cost more than the guest call of a small batch.
// Never sync.Pool: instances must be closed.
type version struct {
	stage *Stage
	info  Version
	mod   *module

	mu      sync.Mutex
	free    int         // slots not taken
	idle    []*instance // healthy instances between batches
	waiters []chan struct{}
	closed  bool // idle instances closed; put closes what comes back

	refs      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
}

func newVersion(s *Stage, info Version, mod *module, probe *instance) *version {
	n := s.cfg.Instances
	v := &version{stage: s, info: info, mod: mod, free: n, idle: make([]*instance, 0, n)}
	if probe != nil {
		v.idle = append(v.idle, probe)
	}
	return v
}

// takeSlot waits for a free slot (FIFO among waiters).
func (v *version) takeSlot(ctx context.Context) error {
	v.mu.Lock()
	if v.free > 0 {
		v.free--
		v.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	v.waiters = append(v.waiters, ch)
	v.mu.Unlock()
	select {
	case <-ch: // put handed us its slot
		return nil
	case <-ctx.Done():
	}
	v.mu.Lock()
	for i, w := range v.waiters {
		if w == ch {
			v.waiters = append(v.waiters[:i], v.waiters[i+1:]...)
			v.mu.Unlock()
			return ctx.Err()
		}
	}
	v.mu.Unlock()
	// A slot was handed to us while ctx ended: pass it on.
	v.giveSlot()
	return ctx.Err()
}

// giveSlot returns a slot: to the first waiter, or to the free count.
func (v *version) giveSlot() {
	v.mu.Lock()
	if len(v.waiters) > 0 {
		ch := v.waiters[0]
		v.waiters = v.waiters[1:]
		v.mu.Unlock()
		close(ch)
		return
	}
	v.free++
	v.mu.Unlock()
}

// get returns an instance for one batch, waiting for a free slot. With a
// free slot and an idle instance (every batch of a busy stage) it takes
// both under one lock.
func (v *version) get(ctx context.Context) (*instance, error) {
	v.mu.Lock()
	if v.free > 0 {
		v.free--
	} else {
		v.mu.Unlock()
		if err := v.takeSlot(ctx); err != nil {
			return nil, err
		}
		v.mu.Lock()
	}
	if n := len(v.idle); n > 0 {
		inst := v.idle[n-1]
		v.idle = v.idle[:n-1]
		v.mu.Unlock()
		return inst, nil
	}
	v.mu.Unlock()
	inst, err := v.stage.instantiate(ctx, v)
	if err != nil {
		v.giveSlot()
		return nil, err
	}
	return inst, nil
}

// put returns inst after a batch. A failed instance is discarded; a
// healthy one past the memory high-water mark or the batch limit is
// recycled (closed; a fresh one is made on demand).
func (v *version) put(inst *instance, failed bool) {
	switch {
	case failed:
		inst.close(false, v.stage.cfg.Trusted)
		v.stage.m.restartsFailure.Inc()
	case int(inst.mem.Size()) > v.stage.highWater || inst.batches >= recycleBatches || inst.expired:
		inst.close(true, v.stage.cfg.Trusted)
		v.stage.m.restartsRecycle.Inc()
	default:
		v.stage.notePages(inst.mem.Size() / pageSize)
		v.mu.Lock()
		if v.closed { // the version was closed while this batch ran
			v.mu.Unlock()
			inst.close(true, v.stage.cfg.Trusted)
			break
		}
		v.idle = append(v.idle, inst) // at most cap(idle): one per slot
		if len(v.waiters) == 0 {      // the slot back too, under the same lock
			v.free++
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
	}
	v.giveSlot()
}

const recycleBatches = 1_000_000

// release drops a batch's reference; the last one of a retired version
// closes it.
func (v *version) release() {
	if v.refs.Add(-1) == 0 && v.retired.Load() {
		v.close()
	}
}

// retire marks v as no longer current and closes it once unused.
func (v *version) retire() {
	v.retired.Store(true)
	if v.refs.Load() == 0 {
		v.close()
	}
}

func (v *version) close() {
	v.closeOnce.Do(func() {
		v.mu.Lock()
		idle := v.idle
		v.idle, v.closed = nil, true
		v.mu.Unlock()
		for _, inst := range idle {
			inst.close(true, v.stage.cfg.Trusted)
		}
		v.stage.host.release(context.Background(), v.mod)
	})
}
