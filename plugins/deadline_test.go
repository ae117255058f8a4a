package plugins

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// The per-instance deadline timer is reused across calls; once it fires
// (here: after the guest returned, so the result is good), the instance's
// context stays cancelled, so the instance must be replaced, not reused.
func TestDeadlineTimerFiredAfterReturn(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("filter.wasm"))
	cfg.Instances = 1
	cfg.Config = map[string]string{"min_duration_ns": "100"}
	m := pipeline.NewMetrics()
	s := mustStage(t, h, cfg, stageOpts{metrics: m})
	v := s.acquire()
	inst, err := v.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := inst.armDeadline(time.Nanosecond)
	<-ctx.Done() // the timer fired while "the guest ran"
	inst.disarmDeadline()
	if !inst.expired {
		t.Fatal("instance not marked expired after its deadline timer fired")
	}
	if _, fk, err := inst.invoke(time.Second, 0, 0); fk != failTimeout || err == nil {
		t.Fatalf("expired instance was called: kind %s, err %v", fk, err)
	}
	v.put(inst, false)
	v.release()
	if got := metric(t, m, "snakepipe_plugin_instance_restarts_total", "reason", "recycle"); got != 1 {
		t.Errorf("recycled %v instances, want 1 (the expired one)", got)
	}
	// A fresh instance serves the next batches; its timer is re-armed per call.
	for i := 0; i < 3; i++ {
		b := &pipeline.Batch{Events: []pipeline.Event{ev("python.call.stop", mi("duration", 10)), ev("python.call.stop", mi("duration", 1000))}}
		out, err := s.Process(context.Background(), b)
		if err != nil || out.Len() != 1 {
			t.Fatalf("batch %d: %d out, err %v", i, out.Len(), err)
		}
	}
	if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", "timeout"); got != 0 {
		t.Errorf("timeouts = %v, want 0", got)
	}
}

// TestProcExitIsATrap: a guest calling proc_exit with the exit code wazero
// gives a call stopped by its context (sys.ExitCodeDeadlineExceeded) is
// counted as a trap, as §3 says of proc_exit, not as a timeout: only the
// deadline timer makes a timeout, whichever runtime the module runs in.
func TestProcExitIsATrap(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			h := newTestHost(t)
			if fallback {
				h.instrumentFn = func([]byte) (Instrumented, error) { return Instrumented{}, ErrUninstrumentable }
			}
			m := pipeline.NewMetrics()
			cfg := cfgFor(td("exitcode.wasm"))
			cfg.Deadline = time.Second
			s := mustStage(t, h, cfg, stageOpts{metrics: m})
			if got := s.cur.Load().mod.interrupt; got == fallback {
				t.Fatalf("instrumented = %v", got)
			}
			if _, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}}); err != nil {
				t.Fatal(err)
			}
			trap := metric(t, m, "snakepipe_plugin_failures_total", "kind", "trap")
			timeout := metric(t, m, "snakepipe_plugin_failures_total", "kind", "timeout")
			if trap != 1 || timeout != 0 {
				t.Errorf("failures: trap %v, timeout %v; want 1, 0", trap, timeout)
			}
		})
	}
}

// TestDeadlineStopsRecursion: a batch that recurses past its deadline
// without ever running a loop is stopped like a looping one. It is not:
// the rewrite checks the interrupt (and yields to Go) only at loop
// headers, so this call runs for hours, and while it runs it also blocks
// every garbage collection's stop-the-world, and with it the whole
// process (the check at every function entry as well would fix both).
func TestDeadlineStopsRecursion(t *testing.T) {
	h := newTestHost(t)
	m := pipeline.NewMetrics()
	cfg := cfgFor(td("recurse.wasm"))
	cfg.Instances = 1
	s := mustStage(t, h, cfg, stageOpts{metrics: m})
	if !s.cur.Load().mod.interrupt {
		t.Fatal("recurse.wasm not instrumented")
	}
	if _, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}}); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", "timeout"); got != 1 {
		t.Errorf("timeouts = %v, want 1", got)
	}
}
