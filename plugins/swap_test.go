package plugins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
)

// installFile puts src at dst the way the docs tell writers to: write a
// temporary file next to it, then rename it into place.
func installFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// TestHotSwapUnderLoad streams numbered events through a stage while its
// plugin is swapped repeatedly between two versions (and to broken ones
// that must be refused), then checks that every event came out exactly
// once and that each batch was judged by exactly one version.
func TestHotSwapUnderLoad(t *testing.T) {
	for _, kind := range []string{"filter", "enrich"} {
		t.Run(kind, func(t *testing.T) {
			h := newTestHost(t)
			path := filepath.Join(t.TempDir(), "plugin.wasm")
			installFile(t, td("swap_even.wasm"), path)
			cfg := cfgFor(path)
			cfg.Kind = kind
			cfg.Instances = 2
			cfg.SelfTest.Events = []string{`{"name":"self.test","timestamp_ns":1,"measurements":{"n":1}}`}
			// A generous deadline: on a loaded machine a descheduled batch
			// could otherwise time out, which is a failure (not a swap bug).
			cfg.Deadline = time.Second
			m := pipeline.NewMetrics()
			s := mustStage(t, h, cfg, stageOpts{metrics: m})

			const producers, batchSize = 3, 16
			type record struct{ in, out []uint64 }
			var (
				next, done atomic.Uint64
				stop       atomic.Bool
				mu         sync.Mutex
				records    []record
				wg         sync.WaitGroup
				tags       = map[string]int{}
			)
			for p := 0; p < producers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						b := &pipeline.Batch{}
						var in []uint64
						for i := 0; i < batchSize; i++ {
							n := next.Add(1)
							e := ev("numbered", mi("n", int64(n)))
							e.Seq = n
							b.Events = append(b.Events, e)
							in = append(in, n)
						}
						out, err := s.Process(context.Background(), b)
						if err != nil {
							t.Error(err)
							return
						}
						r := record{in: in}
						batchTags := map[string]bool{}
						for _, e := range out.Events {
							r.out = append(r.out, e.Seq)
							if kind == "enrich" {
								v, _ := e.Meta("version")
								batchTags[v] = true
							}
						}
						mu.Lock()
						records = append(records, r)
						if kind == "enrich" {
							if len(batchTags) != 1 {
								t.Errorf("batch %v tagged by %v: want exactly one version", in, batchTags)
							}
							for tag := range batchTags {
								tags[tag]++
							}
						}
						mu.Unlock()
						done.Add(1)
					}
				}()
			}
			steps := []struct {
				file string
				ok   bool
			}{
				{"swap_odd.wasm", true}, {"trap.wasm", false}, {"swap_even.wasm", true}, {"notwasm.wasm", false},
				{"swap_odd.wasm", true}, {"wrongabi.wasm", false}, {"swap_even.wasm", true}, {"swap_odd.wasm", true},
			}
			want := uint64(1)
			for _, st := range steps {
				installFile(t, td(st.file), path)
				v, err := s.Reload(context.Background())
				if st.ok {
					if err != nil {
						t.Fatalf("swap to %s: %v", st.file, err)
					}
					want++
					if v.Seq != want {
						t.Fatalf("swap to %s: seq %d, want %d", st.file, v.Seq, want)
					}
				} else if err == nil {
					t.Fatalf("broken %s was accepted", st.file)
				}
				if cur, _ := s.Current(); cur.Seq != want {
					t.Fatalf("after %s: live seq %d, want %d", st.file, cur.Seq, want)
				}
				// At most `producers` batches were in flight during the swap:
				// wait for more than that to finish, so at least one batch
				// started after it.
				target := done.Load() + producers + 1
				waitFor(t, func() bool { return done.Load() >= target })
			}
			stop.Store(true)
			wg.Wait()

			for k := failTrap; k < numFailKinds; k++ {
				if n := metric(t, m, "snakepipe_plugin_failures_total", "kind", k.String()); n != 0 {
					t.Fatalf("%v batches failed with %s during the swaps", n, k)
				}
			}
			seen := map[uint64]int{}
			judged := map[string]int{}
			for _, r := range records {
				for _, n := range r.out {
					seen[n]++
				}
				if kind == "enrich" {
					if len(r.out) != len(r.in) {
						t.Fatalf("enrich batch %v came out as %v", r.in, r.out)
					}
					continue
				}
				var even, odd []uint64
				for _, n := range r.in {
					if n%2 == 0 {
						even = append(even, n)
					} else {
						odd = append(odd, n)
					}
				}
				switch {
				case equalU64(r.out, even):
					judged["even"]++
				case equalU64(r.out, odd):
					judged["odd"]++
				default:
					t.Fatalf("batch %v came out as %v: not judged by exactly one version", r.in, r.out)
				}
			}
			if kind == "enrich" {
				judged = tags
			}
			for n, c := range seen {
				if c != 1 {
					t.Fatalf("event %d came out %d times", n, c)
				}
			}
			if kind == "enrich" && len(seen) != len(records)*batchSize {
				t.Fatalf("%d events out, %d in", len(seen), len(records)*batchSize)
			}
			if judged["even"] == 0 || judged["odd"] == 0 {
				t.Fatalf("versions judged %v: want both", judged)
			}
			// Old versions were closed once unused: only the live module remains.
			h.mu.Lock()
			live := len(h.modules)
			h.mu.Unlock()
			if live != 1 {
				t.Errorf("%d compiled modules still open, want 1 (old versions not closed)", live)
			}
		})
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWatchReloadsOnRename(t *testing.T) {
	cfg := DefaultHostConfig()
	cfg.CacheDir = t.TempDir()
	cfg.WatchDebounce = 20 * time.Millisecond
	m := pipeline.NewMetrics()
	h, err := NewHost(cfg, hclog.NewNullLogger(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	path := filepath.Join(t.TempDir(), "p.wasm")
	installFile(t, td("swap_even.wasm"), path)
	c := cfgFor(path)
	c.Kind = "filter"
	s := mustStage(t, h, c, stageOpts{metrics: m})
	first, _ := s.Current()

	installFile(t, td("swap_odd.wasm"), path)
	waitFor(t, func() bool { v, _ := s.Current(); return v.Seq == 2 })
	second, _ := s.Current()
	if second.SHA256 == first.SHA256 {
		t.Fatal("sha did not change")
	}
	out, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("x", mi("n", 1)), ev("x", mi("n", 2))}})
	if err != nil || out.Len() != 1 || out.Events[0].Measurements[0].Value.Int != 1 {
		t.Fatalf("new version not live: %+v %v", out, err)
	}

	// A broken file is refused; the running version stays.
	installFile(t, td("notwasm.wasm"), path)
	waitFor(t, func() bool { return metric(t, m, "snakepipe_plugin_reloads_total", "result", "failed") >= 1 })
	if v, _ := s.Current(); v.Seq != 2 {
		t.Fatalf("broken file replaced the running version: seq %d", v.Seq)
	}
	// Reload through the host entry point (what `ctl plugin reload` calls).
	installFile(t, td("swap_even.wasm"), path)
	waitFor(t, func() bool { v, _ := s.Current(); return v.Seq == 3 })
	if _, err := h.Reload(context.Background(), "wasm/nope"); err == nil {
		t.Fatal("reload of an unknown plugin succeeded")
	}
	v, err := h.Reload(context.Background(), "wasm/test")
	if err != nil || v.Seq != 4 {
		t.Fatalf("host reload: %+v %v", v, err)
	}
}

// A plugin reload (ctl, file watch) works on a copy of the stage list; a
// config reload may shut a stage down meanwhile. Reloading a shut-down
// stage must not bring a version back (nothing would ever retire it), and
// Host.Reload skips such a stage.
func TestReloadAfterShutdown(t *testing.T) {
	h := newTestHost(t)
	s := mustStage(t, h, cfgFor(td("filter.wasm")), stageOpts{})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(context.Background()); !errors.Is(err, ErrStageClosed) {
		t.Errorf("Reload after Shutdown: %v, want ErrStageClosed", err)
	}
	if v, ok := s.Current(); ok {
		t.Errorf("a shut-down stage has a live version again: %+v", v)
	}
	h.mu.Lock()
	mods := len(h.modules)
	h.mu.Unlock()
	if mods != 0 {
		t.Errorf("host still holds %d compiled modules", mods)
	}
}

// TestRebuiltStageContinuesVersionSeq: a config reload builds a new stage
// for the same pipeline and plugin on the same host; its first version
// continues the sequence (and snakepipe_plugin_version_seq) rather than
// starting again at 1. Another pipeline's stage has its own sequence.
func TestRebuiltStageContinuesVersionSeq(t *testing.T) {
	h := newTestHost(t)
	m := pipeline.NewMetrics()
	cfg := cfgFor(td("filter.wasm"))
	first := mustStage(t, h, cfg, stageOpts{metrics: m})
	if _, err := first.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := first.Current(); v.Seq != 2 {
		t.Fatalf("first stage after one reload: seq %d, want 2", v.Seq)
	}
	rebuilt := mustStage(t, h, cfg, stageOpts{metrics: m})
	if v, _ := rebuilt.Current(); v.Seq != 3 {
		t.Fatalf("rebuilt stage: seq %d, want 3 (continuing the first stage's)", v.Seq)
	}
	if got := gaugeValue(t, m, "snakepipe_plugin_version_seq"); got != 3 {
		t.Fatalf("snakepipe_plugin_version_seq = %v, want 3", got)
	}
	set := pipeline.Settings{ID: pipeline.MustComponentID("wasm/test"), Pipeline: "other", Logger: hclog.NewNullLogger(), Metrics: m}
	other, err := NewStage(context.Background(), h, set, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Shutdown(context.Background()) }()
	if v, _ := other.Current(); v.Seq != 1 {
		t.Fatalf("stage of another pipeline: seq %d, want 1", v.Seq)
	}
}

// gaugeValue is the value of the one series of name in pipeline "p".
func gaugeValue(t *testing.T, m *pipeline.Metrics, name string) float64 {
	t.Helper()
	for _, s := range m.Snapshot() {
		if s.Name != name {
			continue
		}
		for _, l := range s.Labels {
			if l.Key == "pipeline" && l.Value == "p" {
				return s.Value
			}
		}
	}
	t.Fatalf("no %s series for pipeline p", name)
	return 0
}
