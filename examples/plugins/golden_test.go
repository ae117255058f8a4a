// Package examples_test runs the example plugins of every guest language
// (examples/plugins/<lang>/*.wasm, built by `make plugins`) on one golden
// input and asserts they all produce the expected output.
package examples_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

var update = flag.Bool("update", false, "rewrite the expected files from the C plugins' output")

// languages are the SDK languages whose examples are built by make plugins.
var languages = []string{"go", "c", "assemblyscript", "rust", "zig"}

type goldenCase struct {
	plugin, name string
	cfg          map[string]string
}

var goldenCases = []goldenCase{
	{"slow_calls", "min_1ms", map[string]string{"min_duration_ns": "1000000"}},
	{"slow_calls", "default", nil},
	{"duration_class", "default", nil},
	{"duration_class", "custom", map[string]string{"fast_ns": "10", "slow_ns": "5000000"}},
}

func wasmPath(t testing.TB, lang, plugin string) string {
	t.Helper()
	p := filepath.Join(lang, plugin+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (build the example plugins with `make plugins`)", p, err)
	}
	return p
}

func readInput(t testing.TB) []pipeline.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "input.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := pipeline.ReadEventsJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func toJSONL(events []pipeline.Event) []byte {
	var b []byte
	for i := range events {
		b = pipeline.AppendJSON(b, &events[i])
		b = append(b, '\n')
	}
	return b
}

// runBatched passes events through g in batches of size n.
func runBatched(t testing.TB, g *guest, events []pipeline.Event, n int) []pipeline.Event {
	t.Helper()
	var out []pipeline.Event
	for i := 0; i < len(events); i += n {
		j := min(i+n, len(events))
		got, err := g.run(events[i:j])
		if err != nil {
			t.Fatalf("batch [%d:%d]: %v", i, j, err)
		}
		out = append(out, got...)
	}
	return out
}

func TestGoldenAllLanguages(t *testing.T) {
	input := readInput(t)
	ctx := context.Background()
	for _, gc := range goldenCases {
		t.Run(gc.plugin+"/"+gc.name, func(t *testing.T) {
			expPath := filepath.Join("testdata", gc.plugin+"."+gc.name+".expected.jsonl")
			if *update {
				g, err := loadGuest(ctx, wasmPath(t, "c", gc.plugin), gc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				out := toJSONL(runBatched(t, g, input, len(input)))
				g.close()
				if err := os.WriteFile(expPath, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(expPath)
			if err != nil {
				t.Fatal(err)
			}
			outputs := map[string][]byte{}
			for _, lang := range languages {
				t.Run(lang, func(t *testing.T) {
					g, err := loadGuest(ctx, wasmPath(t, lang, gc.plugin), gc.cfg)
					if err != nil {
						t.Fatal(err)
					}
					defer g.close()
					for _, n := range []int{1, 5, 64} {
						got := toJSONL(runBatched(t, g, input, n))
						if !bytes.Equal(got, want) {
							t.Errorf("batch size %d: output differs from %s\n got:\n%s\nwant:\n%s", n, expPath, got, want)
						}
						outputs[lang] = got
					}
				})
			}
			// Equal to one expected file means identical across languages;
			// say so explicitly when it is not.
			ref := ""
			for _, lang := range languages {
				out, ok := outputs[lang]
				if !ok {
					continue
				}
				if ref == "" {
					ref = lang
				} else if !bytes.Equal(out, outputs[ref]) {
					t.Errorf("%s output differs from %s output", lang, ref)
				}
			}
		})
	}
}

// TestConfigErrors: every SDK rejects a malformed config with -4 and logs why.
func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	bad := []struct {
		plugin string
		cfg    map[string]string
	}{
		{"slow_calls", map[string]string{"min_duration_ns": "abc"}},
		{"slow_calls", map[string]string{"min_duration_ns": ""}},
		{"slow_calls", map[string]string{"min_duration_ns": "+5"}},
		{"slow_calls", map[string]string{"min_duration_ns": " 5"}},
		{"slow_calls", map[string]string{"min_duration_ns": "9223372036854775808"}},
		{"slow_calls", map[string]string{"min_duration_ns": "-9223372036854775809"}},
		{"slow_calls", map[string]string{"min_duration_ns": "99999999999999999999999"}},
		{"slow_calls", map[string]string{"bogus": "1"}},
		{"duration_class", map[string]string{"fast_ns": "1", "slow_ns": "1x"}},
		{"duration_class", map[string]string{"fast_ns": "1", "min_duration_ns": "1"}},
	}
	good := []struct {
		plugin string
		cfg    map[string]string
	}{
		{"slow_calls", map[string]string{"min_duration_ns": "9223372036854775807"}},
		{"slow_calls", map[string]string{"min_duration_ns": "-9223372036854775808"}},
		{"slow_calls", map[string]string{"min_duration_ns": "-0"}},
		{"duration_class", map[string]string{"fast_ns": "007"}},
	}
	for _, lang := range languages {
		t.Run(lang, func(t *testing.T) {
			for _, c := range bad {
				g, err := loadGuest(ctx, wasmPath(t, lang, c.plugin), c.cfg)
				if err == nil {
					g.close()
					t.Errorf("%s %v: init succeeded, want error -4", c.plugin, c.cfg)
					continue
				}
				var code errCode
				if !errors.As(err, &code) || code != -4 {
					t.Errorf("%s %v: err = %v, want guest code -4", c.plugin, c.cfg, err)
				}
			}
			for _, c := range good {
				g, err := loadGuest(ctx, wasmPath(t, lang, c.plugin), c.cfg)
				if err != nil {
					t.Errorf("%s %v: %v", c.plugin, c.cfg, err)
					continue
				}
				g.close()
			}
		})
	}
}

// TestConfigErrorIsLogged: the reason for a config error reaches the host log.
func TestConfigErrorIsLogged(t *testing.T) {
	ctx := context.Background()
	for _, lang := range languages {
		t.Run(lang, func(t *testing.T) {
			g, err := loadGuestKeep(ctx, wasmPath(t, lang, "slow_calls"), map[string]string{"bogus_key": "1"})
			if err == nil {
				t.Fatal("init succeeded")
			}
			defer g.close()
			logs := strings.Join(g.logs, "\n")
			if !strings.Contains(logs, "bogus_key") || !strings.HasPrefix(logs, "4: ") {
				t.Errorf("logs = %q, want an error-level line naming bogus_key", logs)
			}
		})
	}
}

// loadGuestKeep is loadGuest but returns the guest (for its logs) on error.
func loadGuestKeep(ctx context.Context, path string, cfg map[string]string) (*guest, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g, err := newGuest(ctx)
	if err != nil {
		return nil, err
	}
	return g, g.setup(bin, cfg)
}
