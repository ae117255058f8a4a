package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/snakepipe/snakepipe/pipeline"
)

// plainRuntime is a wazero runtime like the host's plain one (default
// features, no close on context done), without host modules.
func plainRuntime(t testing.TB) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))
	t.Cleanup(func() { _ = r.Close(ctx) })
	return r
}

func instantiateBin(t *testing.T, r wazero.Runtime, bin []byte) api.Module {
	t.Helper()
	mod, err := r.InstantiateWithConfig(context.Background(), bin, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mod.Close(context.Background()) })
	return mod
}

// TestInstrumentFixtures: each rewriter fixture, instrumented, computes the
// same as the original, has a check at each of its loop headers, and traps
// at its next yield once its interrupt global is set.
func TestInstrumentFixtures(t *testing.T) {
	tests := []struct {
		file  string
		loops int
	}{
		{"ip_nested.wasm", 2},
		{"ip_params.wasm", 1},
		{"ip_brtable.wasm", 1},
		{"ip_simd.wasm", 1},
		{"ip_misc.wasm", 1},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			bin, err := os.ReadFile(td(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			ins, err := InstrumentForDeadline(bin)
			if err != nil {
				t.Fatal(err)
			}
			if ins.Loops != tc.loops || ins.HasStart {
				t.Errorf("loops = %d, has start %v; want %d, false", ins.Loops, ins.HasStart, tc.loops)
			}
			r := plainRuntime(t)
			orig := instantiateBin(t, r, bin)
			inst := instantiateBin(t, r, ins.Binary)
			for _, n := range []uint64{0, 1, 2, 3, 7, 40, 5000} { // 5000: past a yield
				want, err := orig.ExportedFunction("run").Call(ctx, n)
				if err != nil {
					t.Fatalf("original run(%d): %v", n, err)
				}
				got, err := inst.ExportedFunction("run").Call(ctx, n)
				if err != nil {
					t.Fatalf("instrumented run(%d): %v", n, err)
				}
				if got[0] != want[0] {
					t.Errorf("run(%d) = %d instrumented, %d original", n, got[0], want[0])
				}
			}
			g, ok := inst.ExportedGlobal(InterruptGlobal).(api.MutableGlobal)
			if !ok {
				t.Fatalf("no mutable %s export", InterruptGlobal)
			}
			if g.Type() != api.ValueTypeI32 || g.Get() != 0 {
				t.Fatalf("%s: type %s, value %d; want i32 0", InterruptGlobal, api.ValueTypeName(g.Type()), g.Get())
			}
			g.Set(1)
			if _, err := inst.ExportedFunction("run").Call(ctx, 5000); err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("run with the interrupt set: err %v, want the unreachable trap", err)
			}
		})
	}
}

// TestInstrumentRefuses: what the rewriter refuses, it refuses with
// ErrUninstrumentable (the host's cue to fall back).
func TestInstrumentRefuses(t *testing.T) {
	reserved, err := os.ReadFile(td("ip_reserved.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	for name, bin := range map[string][]byte{
		"reserved export": reserved,
		"not wasm":        []byte("\x00asm\x02\x00\x00\x00"),
		"truncated":       reserved[:len(reserved)-3],
	} {
		if _, err := InstrumentForDeadline(bin); !errors.Is(err, ErrUninstrumentable) {
			t.Errorf("%s: err = %v, want ErrUninstrumentable", name, err)
		}
	}
}

// A start function that never returns is stopped by the init deadline: the
// rewriter made it an export the host calls with the deadline armed.
func TestStartFunctionStopped(t *testing.T) {
	bin, err := os.ReadFile(td("ip_start.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if ins, err := InstrumentForDeadline(bin); err != nil || !ins.HasStart {
		t.Fatalf("instrument: has start %v, err %v; want a start function", ins.HasStart, err)
	}
	h := newTestHost(t)
	_, err = newTestStage(t, h, cfgFor(td("ip_start.wasm")), stageOpts{})
	if err == nil || !strings.Contains(err.Error(), "start function") || !strings.Contains(err.Error(), "init deadline") {
		t.Fatalf("load: %v; want the start function stopped by the init deadline", err)
	}
}

// A start function that returns runs before anything else, once per
// instance (snk_abi_version reports 0 unless it ran).
func TestStartFunctionRuns(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("ip_start_ok.wasm"))
	cfg.Instances = 2
	cfg.Deadline = time.Second
	s := mustStage(t, h, cfg, stageOpts{})
	if !s.cur.Load().mod.hasStart || !s.cur.Load().mod.interrupt {
		t.Fatal("module not instrumented, or its start function not found")
	}
	b := &pipeline.Batch{Events: []pipeline.Event{ev("a"), ev("b"), ev("c")}}
	out, err := s.Process(context.Background(), b)
	if err != nil || out.Len() != 3 {
		t.Fatalf("%d out, err %v; want 3", out.Len(), err)
	}
}

// syncBuffer is a concurrency-safe log sink.
type logCapture struct {
	hclog.Logger
	buf *syncBuffer
}

func captureLogger() logCapture {
	buf := &syncBuffer{}
	return logCapture{hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info}), buf}
}

// newLoggedHost is a host whose log (at info) the test can read.
func newLoggedHost(t *testing.T) (*Host, logCapture) {
	t.Helper()
	lc := captureLogger()
	cfg := DefaultHostConfig()
	cfg.CacheDir, cfg.Watch = t.TempDir(), false
	h, err := NewHost(cfg, lc.Logger, pipeline.NewMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h, lc
}

// TestFallbackStopsLoop: a module the rewriter cannot instrument loads,
// says why at info level, and runs in the close-on-context-done runtime,
// whose deadline still stops its infinite loop. Two causes: an export with
// a reserved name (a real refusal) and an instruction the rewriter does not
// know (simulated: every instruction the host's runtime accepts is known).
func TestFallbackStopsLoop(t *testing.T) {
	for _, tc := range []struct {
		name, file, reason string
		refuse             bool
	}{
		{"reserved name", "ip_reserved.wasm", "reserved for the host", false},
		{"unknown opcode", "loop.wasm", "opcode 0xfe", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, lc := newLoggedHost(t)
			if tc.refuse {
				h.instrumentFn = func([]byte) (Instrumented, error) {
					return Instrumented{}, errors.Join(ErrUninstrumentable, errors.New("opcode 0xfe"))
				}
			}
			m := pipeline.NewMetrics()
			sc := cfgFor(td(tc.file))
			sc.Instances = 1
			sc.Deadline = 100 * time.Millisecond
			s := mustStage(t, h, sc, stageOpts{metrics: m})
			if mod := s.cur.Load().mod; mod.interrupt {
				t.Fatal("module instrumented; want the fallback")
			}
			out, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}})
			if err != nil || out.Len() != 1 { // on_error: pass
				t.Fatalf("%d out, err %v", out.Len(), err)
			}
			if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", "timeout"); got != 1 {
				t.Errorf("timeouts = %v, want 1", got)
			}
			logs := lc.buf.String()
			if !strings.Contains(logs, "[INFO]") || !strings.Contains(logs, "not instrumented") || !strings.Contains(logs, tc.reason) {
				t.Errorf("log does not say at info why the module was not instrumented (%q):\n%s", tc.reason, logs)
			}
		})
	}
}

// compileCheck compiles bin, turning a wazero panic into an error (see
// Host.compileModule).
func compileCheck(ctx context.Context, r wazero.Runtime, bin []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("wazero panicked: %v", p)
		}
	}()
	cm, err := r.CompileModule(ctx, bin)
	if err == nil {
		_ = cm.Close(ctx)
	}
	return err
}

// TestCompilePanicIsAnError: a module on which wazero's validation panics
// (the input FuzzInstrument found) is refused as not valid Wasm; the
// process goes on.
func TestCompilePanicIsAnError(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzInstrument", "a443002e0331b118"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "panic.wasm")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newTestHost(t)
	for _, trusted := range []bool{false, true} {
		cfg := cfgFor(path)
		cfg.Trusted = trusted
		_, err := newTestStage(t, h, cfg, stageOpts{})
		if !errors.Is(err, ErrNotWasm) || !strings.Contains(err.Error(), "panicked") {
			t.Errorf("trusted=%v: err = %v, want ErrNotWasm saying wazero panicked", trusted, err)
		}
	}
}

// FuzzInstrument: the rewriter never panics, and whatever it produces from
// a module wazero accepts, wazero accepts too.
func FuzzInstrument(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.wasm"))
	for _, p := range seeds {
		if bin, err := os.ReadFile(p); err == nil {
			f.Add(bin)
		}
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, bin []byte) {
		ins, err := InstrumentForDeadline(bin)
		if err != nil {
			if !errors.Is(err, ErrUninstrumentable) {
				t.Fatalf("error %v does not wrap ErrUninstrumentable", err)
			}
			return
		}
		if err := compileCheck(ctx, r, bin); err != nil {
			return // wazero refuses the input: nothing to compare
		}
		if err := compileCheck(ctx, r, ins.Binary); err != nil {
			t.Fatalf("wazero accepts the module but not its instrumented version: %v", err)
		}
	})
}

// TestDeadlineDuringGC: a guest stuck in a loop is stopped even while the
// garbage collector needs to stop the world. Compiled Wasm cannot be
// preempted, so without the instrumented yield to Go every YieldEvery
// iterations the collector would wait for the guest, and the deadline
// timer for the collector: the process would hang (this test with it).
func TestDeadlineDuringGC(t *testing.T) {
	h := newTestHost(t)
	m := pipeline.NewMetrics()
	cfg := cfgFor(td("loop.wasm"))
	cfg.Instances = 1
	cfg.Deadline = 50 * time.Millisecond
	s := mustStage(t, h, cfg, stageOpts{metrics: m})
	if !s.cur.Load().mod.interrupt {
		t.Fatal("loop.wasm not instrumented")
	}
	stop := make(chan struct{})
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	for i := 0; i < 3; i++ {
		if _, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-gcDone
	if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", "timeout"); got != 3 {
		t.Errorf("timeouts = %v, want 3", got)
	}
}

// TestFixturesSameInstrumented: the host fixtures that process events give
// the same output rewritten for the deadline (untrusted) as unchanged
// (trusted).
func TestFixturesSameInstrumented(t *testing.T) {
	h := newTestHost(t)
	input := func() *pipeline.Batch {
		var evs []pipeline.Event
		for i := int64(0); i < 40; i++ {
			e := ev("python.call.stop", mi("duration", i*i*997), mi("n", i))
			if i%5 == 0 {
				e.Name = "debug.noise"
			}
			e.Metadata = []pipeline.Label{{Key: "tool", Value: "x"}}
			evs = append(evs, e)
		}
		return &pipeline.Batch{Events: evs}
	}
	for _, tc := range []struct {
		file, kind string
		cfg        map[string]string
	}{
		{"filter.wasm", "filter", map[string]string{"min_duration_ns": "5000"}},
		{"enrich.wasm", "enrich", nil},
		{"swap_even.wasm", "filter", nil},
		{"swap_odd.wasm", "enrich", nil},
		{"ip_start_ok.wasm", "filter", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var outs [2][]byte
			for i, trusted := range []bool{true, false} {
				cfg := cfgFor(td(tc.file))
				cfg.Trusted, cfg.Kind, cfg.Config = trusted, tc.kind, tc.cfg
				cfg.Deadline = time.Second
				s := mustStage(t, h, cfg, stageOpts{})
				if got := s.cur.Load().mod.interrupt; got == trusted {
					t.Fatalf("trusted=%v: instrumented = %v", trusted, got)
				}
				for _, n := range []int{1, 7, 40} {
					in := input()
					for j := 0; j < len(in.Events); j += n {
						b := &pipeline.Batch{Events: in.Events[j:min(j+n, len(in.Events))]}
						out, err := s.Process(context.Background(), b)
						if err != nil {
							t.Fatal(err)
						}
						for k := range out.Events {
							outs[i] = pipeline.AppendJSON(outs[i], &out.Events[k])
							outs[i] = append(outs[i], '\n')
						}
					}
				}
			}
			if len(outs[0]) == 0 || string(outs[0]) != string(outs[1]) {
				t.Errorf("outputs differ (or are empty)\ntrusted:\n%s\ninstrumented:\n%s", outs[0], outs[1])
			}
		})
	}
}

// TestCloseStopped: a snk_close that never returns is stopped by the close
// deadline (the same timer and interrupt global as a batch), so closing
// the instance ends.
func TestCloseStopped(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("ip_closeloop.wasm"))
	cfg.Instances = 1
	cfg.Deadline = time.Second
	s := mustStage(t, h, cfg, stageOpts{})
	v := s.acquire()
	defer v.release()
	if !v.mod.interrupt || !v.mod.hasClose {
		t.Fatal("module not instrumented, or snk_close not found")
	}
	inst, err := v.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inst.close(true, false) // a planned close: snk_close runs
	if !inst.expired {
		t.Error("snk_close returned without its deadline firing")
	}
	v.giveSlot()
}

// TestRewriteThatDoesNotCompileFallsBack: should the rewriter ever produce
// a module wazero refuses, a plugin whose original compiles still loads
// (fallback deadline, a warning), and one whose original does not is
// refused with the original's error.
func TestRewriteThatDoesNotCompileFallsBack(t *testing.T) {
	h, lc := newLoggedHost(t)
	broken := []byte("\x00asm\x01\x00\x00\x00\x01\x01\xff") // a type section cut short
	h.instrumentFn = func([]byte) (Instrumented, error) { return Instrumented{Binary: broken}, nil }

	m := pipeline.NewMetrics()
	sc := cfgFor(td("loop.wasm"))
	sc.Instances = 1
	sc.Deadline = 100 * time.Millisecond
	s := mustStage(t, h, sc, stageOpts{metrics: m})
	if s.cur.Load().mod.interrupt {
		t.Fatal("module marked instrumented; want the fallback")
	}
	if _, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}}); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", "timeout"); got != 1 {
		t.Errorf("timeouts = %v, want 1 (the fallback deadline stops the loop)", got)
	}
	if logs := lc.buf.String(); !strings.Contains(logs, "[WARN]") || !strings.Contains(logs, "did not compile") {
		t.Errorf("no warning that the rewrite did not compile:\n%s", logs)
	}

	// An original that does not compile either: its own error is reported.
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, []byte("\x00asm\x01\x00\x00\x00\x0a\x04\x01\x02\x00\x0b"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := newTestStage(t, h, cfgFor(bad), stageOpts{})
	if !errors.Is(err, ErrNotWasm) || !strings.Contains(err.Error(), "inconsistent lengths") {
		t.Fatalf("err = %v, want ErrNotWasm about the original's function and code sections", err)
	}
}
