package plugins

import (
	"context"
	"errors"
	"testing"
)

// The pool bounds instances to `instances`: a batch beyond it waits, a
// waiter whose context ends gives up without taking a slot, and a slot
// given back goes to the next waiter.
func TestPoolWaitsAndHandsOver(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("filter.wasm"))
	cfg.Instances = 1
	s := mustStage(t, h, cfg, stageOpts{})
	v := s.acquire()
	defer v.release()
	first, err := v.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with a cancelled context while the only slot is taken: %v", err)
	}
	got := make(chan *instance)
	go func() {
		inst, err := v.get(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- inst
	}()
	waitFor(t, func() bool { v.mu.Lock(); defer v.mu.Unlock(); return len(v.waiters) == 1 })
	v.put(first, false)
	second := <-got
	if second != first {
		t.Errorf("the waiter got a new instance, want the idle one handed over")
	}
	v.put(second, false)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.free != 1 || len(v.idle) != 1 || len(v.waiters) != 0 {
		t.Errorf("pool after: free %d, idle %d, waiters %d; want 1, 1, 0", v.free, len(v.idle), len(v.waiters))
	}
}
