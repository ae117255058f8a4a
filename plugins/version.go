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
	// LoadedAt is when the version went live.
	LoadedAt time.Time
}

// version is a live (or retiring) plugin version with its instance pool.
//
// Pool: slots bounds the instances in use or idle to the stage's
// `instances`; idle holds instances between batches. A goroutine takes a
// slot, then an idle instance or a new one, and gives both back after the
// batch. Never sync.Pool: instances must be closed.
type version struct {
	stage *Stage
	info  Version
	mod   *module
	slots chan struct{}
	idle  chan *instance

	refs      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
}

func newVersion(s *Stage, info Version, mod *module, probe *instance) *version {
	n := s.cfg.Instances
	v := &version{stage: s, info: info, mod: mod, slots: make(chan struct{}, n), idle: make(chan *instance, n)}
	if probe != nil {
		v.idle <- probe
	}
	return v
}

// get returns an instance for one batch, waiting for a free slot.
func (v *version) get(ctx context.Context) (*instance, error) {
	select {
	case v.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case inst := <-v.idle:
		return inst, nil
	default:
	}
	inst, err := v.stage.instantiate(ctx, v)
	if err != nil {
		<-v.slots
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
		v.idle <- inst // cannot block: at most cap(slots) instances exist
	}
	<-v.slots
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
		for {
			select {
			case inst := <-v.idle:
				inst.close(true, v.stage.cfg.Trusted)
			default:
				v.stage.host.release(context.Background(), v.mod)
				return
			}
		}
	})
}
