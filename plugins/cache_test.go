package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
)

func cacheEntries(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	sub := filepath.Join(dir, cacheSubdir())
	fs, err := os.ReadDir(sub)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range fs {
		b, err := os.ReadFile(filepath.Join(sub, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name()] = b
	}
	return out
}

func compileIn(t *testing.T, dir string, maxBytes int64) {
	t.Helper()
	cfg := DefaultHostConfig()
	cfg.CacheDir, cfg.Watch = dir, false
	if maxBytes > 0 {
		cfg.CacheMaxBytes = maxBytes
	}
	h, err := NewHost(cfg, hclog.NewNullLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	bin, err := os.ReadFile(td("filter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.compile(context.Background(), bin, false)
	if err != nil {
		t.Fatal(err)
	}
	h.release(context.Background(), m)
}

// A restart (a new host on the same cache_dir) reads the compiled module
// from disk instead of compiling and writing it again.
func TestCompileCacheSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	compileIn(t, dir, 0)
	first := cacheEntries(t, dir)
	if len(first) != 1 {
		t.Fatalf("cache holds %d entries after the first compile, want 1", len(first))
	}
	var before os.FileInfo
	for name := range first {
		before, _ = os.Stat(filepath.Join(dir, cacheSubdir(), name))
	}
	compileIn(t, dir, 0)
	second := cacheEntries(t, dir)
	for name, b := range first {
		if !bytes.Equal(second[name], b) || len(second) != 1 {
			t.Fatalf("second start changed the cache: %d entries", len(second))
		}
		// A recompile would have written the entry again (temp file + rename).
		if after, err := os.Stat(filepath.Join(dir, cacheSubdir(), name)); err != nil || !os.SameFile(before, after) {
			t.Fatalf("second start rewrote the cache entry: the module was compiled again (%v)", err)
		}
		// Proof that the entry is read: wazero drops an entry it cannot
		// decode and compiles again, writing a good one.
		p := filepath.Join(dir, cacheSubdir(), name)
		if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		compileIn(t, dir, 0)
		if got := cacheEntries(t, dir)[name]; bytes.Equal(got, []byte("garbage")) || len(got) == 0 {
			t.Fatalf("a corrupt entry was not replaced (%d bytes): the cache is not read", len(got))
		}
	}
}

func TestPruneCache(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, cacheSubdir())
	stale := filepath.Join(dir, "wazero-v0.0.1-amd64-linux")
	for _, d := range []string{cur, stale} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1_800_000_000, 0)
	write := func(path string, size int, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		tm := now.Add(-age)
		if err := os.Chtimes(path, tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(stale, "aa"), 10, time.Minute)
	write(filepath.Join(dir, "README"), 10, 1000*time.Hour) // not ours: kept
	write(filepath.Join(cur, "e1"), 100, 4*time.Hour)       // least recently used
	write(filepath.Join(cur, "e2"), 100, 3*time.Hour)
	write(filepath.Join(cur, "e3"), 100, 2*time.Hour)
	write(filepath.Join(cur, "e4"), 100, time.Hour) // most recently used
	write(filepath.Join(cur, "e5.123.tmp"), 50, 2*time.Hour)
	write(filepath.Join(cur, "e6.456.tmp"), 50, time.Minute) // a write in progress: kept

	st, err := pruneCache(dir, 250, now)
	if err != nil {
		t.Fatal(err)
	}
	// 400 bytes > 250: remove the oldest until <= 187 (3/4): e1, e2, e3.
	var left []string
	for _, d := range []string{dir, cur} {
		fs, _ := os.ReadDir(d)
		for _, f := range fs {
			left = append(left, f.Name())
		}
	}
	sort.Strings(left)
	want := []string{"README", "e4", "e6.456.tmp", cacheSubdir()}
	sort.Strings(want)
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("left %v, want %v", left, want)
	}
	if st.staleDirs != 1 || st.files != 4 || st.bytes != 350 {
		t.Errorf("stats %+v, want 1 stale dir, 4 files (3 entries + 1 temp), 350 bytes", st)
	}
	// Under the bound: nothing more goes.
	if st, err := pruneCache(dir, 250, now); err != nil || st.files != 0 || st.staleDirs != 0 {
		t.Errorf("second prune %+v %v", st, err)
	}
}

// The host applies plugins.cache_max_bytes after a compile.
func TestHostPrunesCacheAfterCompile(t *testing.T) {
	dir := t.TempDir()
	compileIn(t, dir, 1) // any entry is over 1 byte
	if n := len(cacheEntries(t, dir)); n != 0 {
		t.Errorf("%d entries left with cache_max_bytes 1", n)
	}
	cfg := DefaultHostConfig()
	cfg.CacheMaxBytes = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "plugins.cache_max_bytes") {
		t.Errorf("Validate: %v", err)
	}
}

// TestUnreadableCacheEntryIsCleared: a compile that fails on an
// unreadable cache entry clears the cache and compiles again, on the main
// path and on the fallback path (the original module, compiled after its
// rewrite did not compile).
func TestUnreadableCacheEntryIsCleared(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			h, lc := newLoggedHost(t)
			orig, err := os.ReadFile(td("filter.wasm"))
			if err != nil {
				t.Fatal(err)
			}
			want := orig // the bytes whose first compile meets the bad entry
			if fallback {
				h.instrumentFn = func([]byte) (Instrumented, error) {
					return Instrumented{Binary: []byte("\x00asm\x01\x00\x00\x00\x01\x01\xff")}, nil
				}
			} else {
				ins, err := InstrumentForDeadline(orig)
				if err != nil {
					t.Fatal(err)
				}
				want = ins.Binary
			}
			var calls int
			h.compileFn = func(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
				if bytes.Equal(bin, want) {
					if calls++; calls == 1 {
						return nil, errors.New("compilationcache: reading entry: unexpected EOF")
					}
				}
				return r.CompileModule(ctx, bin)
			}
			if _, err := newTestStage(t, h, cfgFor(td("filter.wasm")), stageOpts{}); err != nil {
				t.Fatalf("load after an unreadable cache entry: %v", err)
			}
			if calls != 2 {
				t.Errorf("%d compiles of the module, want 2 (the failed one and the retry)", calls)
			}
			if !strings.Contains(lc.buf.String(), "clearing it and compiling again") {
				t.Errorf("no warning about the unreadable entry:\n%s", lc.buf.String())
			}
		})
	}
}
