package plugins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

func TestLoadChecks(t *testing.T) {
	h := newTestHost(t)
	big := filepath.Join(t.TempDir(), "big.wasm")
	if err := os.WriteFile(big, append([]byte("\x00asm\x01\x00\x00\x00"), make([]byte, 11<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file   string
		cfg    func(*Config)
		is     error
		substr []string
	}{
		{file: td("notwasm.wasm"), is: ErrNotWasm, substr: []string{"magic"}},
		{file: big, is: ErrTooLarge, substr: []string{"max_module_bytes"}},
		{file: td("forbidden.wasm"), is: ErrForbiddenImport, substr: []string{"env.system(i32) -> i32", "wasi_snapshot_preview1.path_open"}},
		{file: td("wrongabi.wasm"), is: ErrABIVersion, substr: []string{"snk_abi_version() returned 2"}},
		{file: td("badsig.wasm"), is: ErrBadExports, substr: []string{"missing required export snk_in_buf(i32) -> i32", "export snk_filter has signature (i32) -> i32, want (i32, i32) -> i64"}},
		{file: td("command.wasm"), is: ErrBadExports, substr: []string{"exports _start"}},
		{file: td("initfail.wasm"), is: ErrInit, substr: []string{"snk_init returned -4 (config error)"}},
		{file: td("bigmem.wasm"), substr: []string{"needs 300 pages", "memory_limit_pages 256"}},
		{file: td("badmeta.wasm"), is: ErrBadMeta, substr: []string{`kind "enrich"`}},
		{file: td("trap.wasm"), cfg: func(c *Config) { c.Config = map[string]string{"a": "b"} }, is: ErrInit, substr: []string{"no snk_init"}},
		{file: td("swap_even.wasm"), is: ErrBadExports, substr: []string{"set kind"}},
		{file: td("filter.wasm"), cfg: func(c *Config) { c.Kind = "enrich" }, is: ErrBadExports, substr: []string{"snk_enrich"}},
		{file: td("filter.wasm"), cfg: func(c *Config) { c.Config = map[string]string{"min_duration_ns": "x"} }, is: ErrInit, substr: []string{"returned -4"}},
		{file: td("filter.wasm"), cfg: func(c *Config) { c.SelfTest.Events = []string{`{"name":"a"`} }, substr: []string{"self_test.events[0]"}},
		{file: td("trap.wasm"), cfg: func(c *Config) { c.SelfTest.Events = []string{`{"name":"a.b","timestamp_ns":1}`} }, substr: []string{"self-test batch failed (trap)", "unreachable"}},
		{file: td("nope.wasm"), is: os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			cfg := cfgFor(tc.file)
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			_, err := newTestStage(t, h, cfg, stageOpts{})
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
			for _, s := range tc.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func filterInput() *pipeline.Batch {
	evs := []pipeline.Event{
		ev("python.call.stop", mi("duration", 2000)),
		ev("python.call.stop", mi("duration", 10)),
		ev("python.call.stop", mf("duration", 1000.0)),
		ev("python.call.stop", mf("duration", 999.5)),
		ev("python.call.stop"),
		ev("python.call.start", mi("duration", 1)),
		ev("python.call.stop", pipeline.Measurement{Key: "duration", Value: pipeline.StringValue("slow")}),
	}
	evs[0].Origin = &pipeline.Origin{WorkerID: "w1", Pool: "p", Hostname: "h", PID: 42}
	evs[1].Metadata = []pipeline.Label{{Key: "tool", Value: "x"}}
	evs[1].CorrelationID = "abc"
	for i := range evs {
		evs[i].Seq = uint64(i)
	}
	return &pipeline.Batch{Events: evs}
}

func TestFilter(t *testing.T) {
	h := newTestHost(t)
	for _, path := range []string{td("filter.wasm"), filepath.Join("..", "examples", "plugins", "wat", "filter.wasm")} {
		for _, trusted := range []bool{false, true} {
			t.Run(filepath.Base(filepath.Dir(path))+"/trusted="+map[bool]string{true: "1", false: "0"}[trusted], func(t *testing.T) {
				cfg := cfgFor(path)
				cfg.Trusted = trusted
				cfg.Config = map[string]string{"min_duration_ns": "1000"}
				m := pipeline.NewMetrics()
				s := mustStage(t, h, cfg, stageOpts{metrics: m})
				out, err := s.Process(context.Background(), filterInput())
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"python.call.stop/0", "python.call.stop/2", "python.call.stop/4", "python.call.start/5", "python.call.stop/6"}
				if got := names(out); !reflect.DeepEqual(got, want) {
					t.Fatalf("kept %v, want %v", got, want)
				}
				if got := metric(t, m, "snakepipe_plugin_events_dropped_total"); got != 2 {
					t.Errorf("dropped metric = %v, want 2", got)
				}
			})
		}
	}
}

type recordingValidator struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingValidator) CheckMeasurement(event, key string, v pipeline.Value) error {
	r.mu.Lock()
	r.calls = append(r.calls, "m:"+event+":"+key+"="+v.String())
	r.mu.Unlock()
	return BasicValidator{}.CheckMeasurement(event, key, v)
}

func (r *recordingValidator) SanitizeLabel(k, v string) (string, string, error) {
	r.mu.Lock()
	r.calls = append(r.calls, "l:"+k+"="+v)
	r.mu.Unlock()
	return BasicValidator{}.SanitizeLabel(k, v)
}

func TestEnrich(t *testing.T) {
	h := newTestHost(t)
	in := func() *pipeline.Batch {
		e1 := ev("python.call.stop", mi("duration", 2_000_000))
		e1.Metadata = []pipeline.Label{{Key: "secret", Value: "s"}, {Key: "tool", Value: "x"}}
		e2 := ev("python.call.stop", mi("duration", 5000))
		e3 := ev("debug.noise")
		e4 := ev("other")
		return &pipeline.Batch{Events: []pipeline.Event{e1, e2, e3, e4}}
	}
	t.Run("patches", func(t *testing.T) {
		val := &recordingValidator{}
		m := pipeline.NewMetrics()
		s := mustStage(t, h, cfgFor(td("enrich.wasm")), stageOpts{metrics: m, valid: val})
		orig := in()
		shared := orig.Events[0].Metadata
		out, err := s.Process(context.Background(), orig)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) != 3 {
			t.Fatalf("got %d events, want 3 (debug.noise dropped)", len(out.Events))
		}
		e := out.Events[0]
		if got, _ := e.Meta("speed"); got != "slow" {
			t.Errorf("speed = %q, want slow", got)
		}
		if _, ok := e.Meta("secret"); ok {
			t.Error("secret not deleted")
		}
		if v, _ := e.Measurement("duration_us"); v != pipeline.IntValue(2000) {
			t.Errorf("duration_us = %v", v)
		}
		if shared[0].Key != "secret" {
			t.Error("patch wrote through the shared metadata array")
		}
		if got, _ := out.Events[1].Meta("speed"); got != "fast" {
			t.Errorf("second speed = %q", got)
		}
		if out.Events[2].Name != "other" || len(out.Events[2].Metadata) != 0 {
			t.Errorf("unchanged event changed: %+v", out.Events[2])
		}
		if len(val.calls) == 0 || val.calls[0] != "l:speed=slow" {
			t.Errorf("validator calls %v", val.calls)
		}
		if got := metric(t, m, "snakepipe_plugin_events_patched_total"); got != 2 {
			t.Errorf("patched = %v", got)
		}
	})
	t.Run("rejected", func(t *testing.T) {
		cfg := cfgFor(td("enrich.wasm"))
		cfg.Config = map[string]string{"bad_key": "1"}
		m := pipeline.NewMetrics()
		s := mustStage(t, h, cfg, stageOpts{metrics: m})
		out, err := s.Process(context.Background(), in())
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) != 3 {
			t.Fatalf("got %d events", len(out.Events))
		}
		for _, e := range out.Events {
			if _, ok := e.Meta("speed"); ok || len(e.Metadata) > 2 {
				t.Errorf("rejected patch applied: %+v", e)
			}
		}
		if got := metric(t, m, "snakepipe_plugin_patches_rejected_total"); got != 2 {
			t.Errorf("rejected = %v, want 2", got)
		}
		if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", "bad_output"); got != 0 {
			t.Errorf("a rejected patch counted as a failure")
		}
	})
}

type deadRecorder struct {
	mu     sync.Mutex
	sink   []string
	events int
	causes []error
}

func (d *deadRecorder) DeadLetter(_ context.Context, sink pipeline.ComponentID, b *pipeline.Batch, cause error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sink = append(d.sink, sink.String())
	d.events += b.Len()
	d.causes = append(d.causes, cause)
	return nil
}

func TestFailures(t *testing.T) {
	h := newTestHost(t)
	tests := []struct {
		file, kind, substr string
	}{
		{"trap.wasm", "trap", "unreachable"},
		{"loop.wasm", "timeout", "deadline"},
		{"grow.wasm", "oom", ""},
		{"grow_ret.wasm", "oom", "returned -3"},
		{"oob.wasm", "bad_output", "outside memory"},
		{"wronglen.wasm", "bad_output", "4 bytes for 3 events"},
		{"badverdict.wasm", "bad_output", "verdict 7"},
		{"negative.wasm", "error", "returned -2 (bad input)"},
	}
	for _, tc := range tests {
		for _, onErr := range []string{OnErrorPass, OnErrorDrop, OnErrorDeadLetter} {
			t.Run(tc.file+"/"+onErr, func(t *testing.T) {
				cfg := cfgFor(td(tc.file))
				cfg.OnError = onErr
				cfg.Instances = 1
				cfg.Deadline = time.Second // no spurious timeouts on a loaded machine
				if tc.kind == "timeout" {
					cfg.Deadline = 100 * time.Millisecond
				}
				cfg.MemoryLimitPages = 16
				if onErr == OnErrorDeadLetter {
					cfg.DeadLetter = "file/dlq"
				}
				m := pipeline.NewMetrics()
				dead := &deadRecorder{}
				s := mustStage(t, h, cfg, stageOpts{metrics: m, dead: dead})
				for round := 0; round < 2; round++ { // the replacement instance works the same way
					b := &pipeline.Batch{Events: []pipeline.Event{ev("a"), ev("b"), ev("c")}}
					out, err := s.Process(context.Background(), b)
					if err != nil {
						t.Fatalf("Process returned %v; failures must be handled by on_error", err)
					}
					want := 3
					if onErr != OnErrorPass {
						want = 0
					}
					if out.Len() != want {
						t.Fatalf("round %d: %d events out, want %d", round, out.Len(), want)
					}
				}
				if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", tc.kind); got != 2 {
					t.Errorf("failures{kind=%s} = %v, want 2", tc.kind, got)
				}
				if got := metric(t, m, "snakepipe_plugin_instance_restarts_total", "reason", "failure"); got != 2 {
					t.Errorf("restarts = %v, want 2", got)
				}
				if got := metric(t, m, "snakepipe_plugin_on_error_events_total", "action", onErr); got != 6 {
					t.Errorf("on_error{%s} = %v, want 6", onErr, got)
				}
				if onErr == OnErrorDeadLetter {
					if dead.events != 6 || dead.sink[0] != "file/dlq" {
						t.Errorf("dead letters: %d events to %v", dead.events, dead.sink)
					}
					if !strings.Contains(dead.causes[0].Error(), tc.kind) || !strings.Contains(dead.causes[0].Error(), tc.substr) {
						t.Errorf("cause %q does not name %s / %q", dead.causes[0], tc.kind, tc.substr)
					}
				}
			})
		}
	}
}

func TestBreaker(t *testing.T) {
	h := newTestHost(t)
	for _, behavior := range []string{DisabledBypass, DisabledDrop} {
		t.Run(behavior, func(t *testing.T) {
			cfg := cfgFor(td("trap.wasm"))
			cfg.OnError = OnErrorDrop
			cfg.DisabledBehavior = behavior
			m := pipeline.NewMetrics()
			s := mustStage(t, h, cfg, stageOpts{metrics: m})
			now := time.Unix(1000, 0)
			var mu sync.Mutex
			s.breaker.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			run := func() int {
				out, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}})
				if err != nil {
					t.Fatal(err)
				}
				return out.Len()
			}
			for i := 0; i < breakerThreshold; i++ {
				if run() != 0 {
					t.Fatal("failed batch not dropped")
				}
			}
			if metric(t, m, "snakepipe_plugin_breaker_open") != 1 {
				t.Fatal("breaker not open after 5 failures")
			}
			wantOpen := 1
			if behavior == DisabledDrop {
				wantOpen = 0
			}
			if got := run(); got != wantOpen {
				t.Fatalf("open breaker: %d events out, want %d", got, wantOpen)
			}
			if metric(t, m, "snakepipe_plugin_failures_total", "kind", "trap") != breakerThreshold {
				t.Fatal("plugin called while the breaker was open")
			}
			mu.Lock()
			now = now.Add(breakerMinBackoff)
			mu.Unlock()
			run() // trial: fails again
			if metric(t, m, "snakepipe_plugin_failures_total", "kind", "trap") != breakerThreshold+1 {
				t.Fatal("no trial batch after the back-off")
			}
			mu.Lock()
			now = now.Add(breakerMinBackoff) // back-off doubled to 2s: not yet
			mu.Unlock()
			run()
			if metric(t, m, "snakepipe_plugin_failures_total", "kind", "trap") != breakerThreshold+1 {
				t.Fatal("trial ran before the doubled back-off")
			}
			// A good version closes the breaker at once.
			s.path = td("meta.wasm")
			if _, err := s.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := run(); got != 1 || metric(t, m, "snakepipe_plugin_breaker_open") != 0 {
				t.Fatalf("after a good swap: %d out, breaker %v", got, metric(t, m, "snakepipe_plugin_breaker_open"))
			}
		})
	}
}

func TestLogFlood(t *testing.T) {
	h := newTestHost(t)
	m := pipeline.NewMetrics()
	cfg := cfgFor(td("logflood.wasm"))
	cfg.Deadline = time.Second // 10000 host calls can pass 50 ms under -race on a loaded machine
	s := mustStage(t, h, cfg, stageOpts{metrics: m})
	out, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}})
	if err != nil || out.Len() != 1 {
		t.Fatalf("out %d, err %v", out.Len(), err)
	}
	// 10000 lines in one batch: at most 2 windows of 100 can pass.
	if got := metric(t, m, "snakepipe_plugin_log_lines_dropped_total"); got < 9800 {
		t.Errorf("dropped log lines = %v, want >= 9800", got)
	}
}

func TestOversizeAndSplit(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("filter.wasm"))
	cfg.Config = map[string]string{"min_duration_ns": "100"}
	cfg.OnError = OnErrorDeadLetter
	cfg.DeadLetter = "file/dlq"
	m := pipeline.NewMetrics()
	dead := &deadRecorder{}
	s := mustStage(t, h, cfg, stageOpts{metrics: m, dead: dead})
	var evs []pipeline.Event
	pad := strings.Repeat("x", 3000)
	for i := 0; i < 200; i++ { // ~600 KB: split across ~10 calls
		e := ev("python.call.stop", mi("duration", int64(i)))
		e.Metadata = []pipeline.Label{{Key: "pad", Value: pad}}
		e.Seq = uint64(i)
		evs = append(evs, e)
	}
	huge := ev("python.call.stop", mi("duration", 1000))
	huge.Metadata = []pipeline.Label{{Key: "pad", Value: strings.Repeat("y", 70000)}}
	huge.Seq = 999
	evs = append(evs[:50], append([]pipeline.Event{huge}, evs[50:]...)...)
	out, err := s.Process(context.Background(), &pipeline.Batch{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 100 {
		t.Fatalf("%d events kept, want 100", out.Len())
	}
	for i, e := range out.Events {
		if e.Seq != uint64(100+i) {
			t.Fatalf("event %d is seq %d, want %d", i, e.Seq, 100+i)
		}
	}
	if dead.events != 1 || metric(t, m, "snakepipe_plugin_oversize_events_total") != 1 {
		t.Errorf("oversize: %d dead-lettered, metric %v", dead.events, metric(t, m, "snakepipe_plugin_oversize_events_total"))
	}
}

func TestRecycleAtHighWater(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("filter.wasm"))
	cfg.MemoryLimitPages = 24 // filter.wasm starts at 22 pages: over 75% at once
	m := pipeline.NewMetrics()
	s := mustStage(t, h, cfg, stageOpts{metrics: m})
	for i := 0; i < 3; i++ {
		if out, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}}); err != nil || out.Len() != 1 {
			t.Fatalf("out %v err %v", out.Len(), err)
		}
	}
	if got := metric(t, m, "snakepipe_plugin_instance_restarts_total", "reason", "recycle"); got != 3 {
		t.Errorf("recycled %v instances, want 3", got)
	}
}

func TestGuestStdoutGoesToLog(t *testing.T) {
	h := newTestHost(t)
	var buf syncBuffer
	logger := hclogTo(&buf)
	s := mustStage(t, h, cfgFor(td("stdout.wasm")), stageOpts{logger: logger})
	if _, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "hello from stdout") {
		t.Errorf("guest stdout not logged: %q", buf.String())
	}
}

func TestShutdownThenProcess(t *testing.T) {
	h := newTestHost(t)
	s := mustStage(t, h, cfgFor(td("meta.wasm")), stageOpts{})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("a")}})
	if err != nil || out.Len() != 1 { // on_error pass
		t.Fatalf("after shutdown: %v events, %v", out.Len(), err)
	}
}

// An oversize event in the middle of a chunk with on_error: pass stays in
// its place among the filtered events (the verdicts of that chunk are
// scattered around it, not copied as one run).
func TestOversizePassKeepsOrder(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("filter.wasm"))
	cfg.Config = map[string]string{"min_duration_ns": "100"}
	cfg.OnError = OnErrorPass
	s := mustStage(t, h, cfg, stageOpts{})
	var evs []pipeline.Event
	for i := 0; i < 40; i++ {
		e := ev("python.call.stop", mi("duration", int64(i%4)*50)) // 0, 50 dropped; 100, 150 kept
		e.Seq = uint64(i)
		evs = append(evs, e)
	}
	huge := ev("python.call.stop", mi("duration", 0))
	huge.Metadata = []pipeline.Label{{Key: "pad", Value: strings.Repeat("y", 70000)}}
	huge.Seq = 999
	evs = append(evs[:13], append([]pipeline.Event{huge}, evs[13:]...)...)
	out, err := s.Process(context.Background(), &pipeline.Batch{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, e := range evs {
		if e.Seq == 999 || e.Seq%4 >= 2 {
			want = append(want, e.Seq)
		}
	}
	if got := seqs(out.Events); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}

// An oversize event inside an enricher's chunk: each action must still
// land on its own event (the chunk's records skip the oversize one).
func TestOversizeInEnrichChunk(t *testing.T) {
	h := newTestHost(t)
	cfg := cfgFor(td("enrich.wasm"))
	cfg.OnError = OnErrorPass
	s := mustStage(t, h, cfg, stageOpts{})
	var evs []pipeline.Event
	for i := 0; i < 30; i++ {
		var e pipeline.Event
		switch i % 3 {
		case 0:
			e = ev("python.call.stop", mi("duration", int64(i)*1000)) // patched: duration_us = i
		case 1:
			e = ev("debug.noise", mi("duration", 1)) // dropped
		default:
			e = ev("other") // unchanged
		}
		e.Seq = uint64(i)
		evs = append(evs, e)
	}
	huge := ev("python.call.stop", mi("duration", 7000))
	huge.Metadata = []pipeline.Label{{Key: "pad", Value: strings.Repeat("y", 70000)}}
	huge.Seq = 999
	evs = append(evs[:10], append([]pipeline.Event{huge}, evs[10:]...)...)
	var want []uint64
	for _, e := range evs {
		if e.Seq == 999 || e.Seq%3 != 1 {
			want = append(want, e.Seq)
		}
	}
	out, err := s.Process(context.Background(), &pipeline.Batch{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(out.Events); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	for _, e := range out.Events {
		us, ok := e.Measurement("duration_us")
		switch {
		case e.Seq == 999 || e.Seq%3 == 2:
			if ok {
				t.Errorf("event %d (not patched) has duration_us %v", e.Seq, us)
			}
		case !ok || us.Int != int64(e.Seq):
			t.Errorf("event %d: duration_us %v (present %v), want %d", e.Seq, us, ok, e.Seq)
		}
	}
}

// TestStageUnknownValueKind: an event with a measurement of a kind the
// wire format has no code for is refused by the encoder and handled as an
// oversize event (on_error), and the batch completes. (When encodedSize
// called it encodable, the stage took the refusal for a full chunk and
// retried the event forever: Process never returned.)
func TestStageUnknownValueKind(t *testing.T) {
	h := newTestHost(t)
	m := pipeline.NewMetrics()
	s := mustStage(t, h, cfgFor(td("filter.wasm")), stageOpts{metrics: m})
	bad := ev("bad", pipeline.Measurement{Key: "k", Value: pipeline.Value{Kind: pipeline.KindString + 1}})
	b := &pipeline.Batch{Events: []pipeline.Event{ev("x"), bad, ev("y")}}
	if _, err := s.Process(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, m, "snakepipe_plugin_oversize_events_total"); got != 1 {
		t.Errorf("oversize events = %v, want 1", got)
	}
}
