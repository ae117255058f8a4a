// Package examples_test runs the example plugins of every guest language
// (examples/plugins/<lang>/*.wasm, built by `make plugins`) as `wasm`
// stages of the plugins host on one golden input, and asserts they all
// produce the expected output.
package examples_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/plugins"
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
	switch lang {
	case "wat": // the raw WAT example (no SDK) is a filter only
		p = filepath.Join("wat", "filter.wasm")
	case asStrKeys:
		p = filepath.Join("assemblyscript", plugin+"_str.wasm")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (build the example plugins with `make plugins`)", p, err)
	}
	return p
}

// asStrKeys names AssemblyScript's slow_calls_str.wasm: slow_calls with Str
// keys, where slow_calls.wasm compares with constants (two lookup paths of
// the SDK).
const asStrKeys = "assemblyscript_str"

// modules lists the languages with an example of plugin: every SDK, plus
// the raw WAT filter and AssemblyScript's Str-key variant for slow_calls.
func modules(plugin string) []string {
	if plugin == "slow_calls" {
		return append(append([]string(nil), languages...), "wat", asStrKeys)
	}
	return languages
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

// TestGoldenAllLanguages: the same golden input through each language's
// plugin, in batches of 1, 5 and 64, gives the expected file's output, so
// the same output in every language.
func TestGoldenAllLanguages(t *testing.T) {
	input := readInput(t)
	h := newHost(t)
	for _, gc := range goldenCases {
		t.Run(gc.plugin+"/"+gc.name, func(t *testing.T) {
			expPath := filepath.Join("testdata", gc.plugin+"."+gc.name+".expected.jsonl")
			if *update {
				s := mustStage(t, h, wasmPath(t, "c", gc.plugin), gc.cfg, false)
				if err := os.WriteFile(expPath, toJSONL(runStage(t, s, input, len(input))), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(expPath)
			if err != nil {
				t.Fatal(err)
			}
			outputs := map[string][]byte{}
			for _, lang := range modules(gc.plugin) {
				t.Run(lang, func(t *testing.T) {
					s := mustStage(t, h, wasmPath(t, lang, gc.plugin), gc.cfg, false)
					for _, n := range []int{1, 5, 64} {
						got := toJSONL(runStage(t, s, input, n))
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
			for _, lang := range modules(gc.plugin) {
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

// TestGoldenTrusted: every golden case through trusted stages (no
// deadline: the original module, in the host's plain runtime) gives the
// same output as through the default, untrusted stages of
// TestGoldenAllLanguages (the module rewritten for the deadline, see
// TestExamplesInstrumented).
func TestGoldenTrusted(t *testing.T) {
	input := readInput(t)
	h := newHost(t)
	for _, gc := range goldenCases {
		t.Run(gc.plugin+"/"+gc.name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", gc.plugin+"."+gc.name+".expected.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			for _, lang := range modules(gc.plugin) {
				t.Run(lang, func(t *testing.T) {
					s := mustStage(t, h, wasmPath(t, lang, gc.plugin), gc.cfg, true)
					if got := toJSONL(runStage(t, s, input, 64)); !bytes.Equal(got, want) {
						t.Errorf("output differs\n got:\n%s\nwant:\n%s", got, want)
					}
				})
			}
		})
	}
}

// TestExamplesInstrumented: every example plugin can be rewritten for the
// cheap deadline (so the untrusted golden runs use the rewritten module,
// not the close-on-context-done fallback) and has loops to check.
func TestExamplesInstrumented(t *testing.T) {
	for _, plugin := range []string{"slow_calls", "duration_class"} {
		for _, lang := range modules(plugin) {
			path := wasmPath(t, lang, plugin)
			bin, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ins, err := plugins.InstrumentForDeadline(bin)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if ins.Loops == 0 {
				t.Errorf("%s: no loop instrumented", path)
			}
			t.Logf("%s: %d loops, %d -> %d bytes", path, ins.Loops, len(bin), len(ins.Binary))
		}
	}
}

// TestConfigErrors: every SDK refuses a malformed config (snk_init returns
// -4, so the host refuses the stage) and accepts the edge values.
func TestConfigErrors(t *testing.T) {
	type plugCfg struct {
		plugin string
		cfg    map[string]string
	}
	bad := []plugCfg{
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
	good := []plugCfg{
		{"slow_calls", map[string]string{"min_duration_ns": "9223372036854775807"}},
		{"slow_calls", map[string]string{"min_duration_ns": "-9223372036854775808"}},
		{"slow_calls", map[string]string{"min_duration_ns": "-0"}},
		{"duration_class", map[string]string{"fast_ns": "007"}},
	}
	h := newHost(t)
	for _, lang := range languages {
		t.Run(lang, func(t *testing.T) {
			for _, c := range bad {
				_, err := loadStage(t, h, wasmPath(t, lang, c.plugin), c.cfg, false, nil)
				if err == nil {
					t.Errorf("%s %v: stage loaded, want the config refused", c.plugin, c.cfg)
					continue
				}
				if !strings.Contains(err.Error(), "snk_init returned -4") {
					t.Errorf("%s %v: err = %v, want snk_init returned -4", c.plugin, c.cfg, err)
				}
			}
			for _, c := range good {
				if _, err := loadStage(t, h, wasmPath(t, lang, c.plugin), c.cfg, false, nil); err != nil {
					t.Errorf("%s %v: %v", c.plugin, c.cfg, err)
				}
			}
		})
	}
}

// TestConfigErrorIsLogged: the guest's reason for refusing its config
// reaches snakepipe's log at error level, naming the key.
func TestConfigErrorIsLogged(t *testing.T) {
	h := newHost(t)
	for _, lang := range languages {
		t.Run(lang, func(t *testing.T) {
			var logs bytes.Buffer
			_, err := loadStage(t, h, wasmPath(t, lang, "slow_calls"), map[string]string{"bogus_key": "1"}, false, &logs)
			if err == nil {
				t.Fatal("stage loaded with an unknown config key")
			}
			found := false
			for _, line := range strings.Split(logs.String(), "\n") {
				found = found || (strings.Contains(line, "[ERROR]") && strings.Contains(line, "bogus_key"))
			}
			if !found {
				t.Errorf("no error-level log line names bogus_key; logs:\n%s", logs.String())
			}
		})
	}
}

// TestPluginTestTool: `snakepipe plugin test` (plugins.RunTest) on every
// language's examples reports the kept / dropped / changed counts the
// expected files imply.
func TestPluginTestTool(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // RunTest uses the user cache dir
	input, err := os.ReadFile(filepath.Join("testdata", "input.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	events := readInput(t)
	kept, err := os.ReadFile(filepath.Join("testdata", "slow_calls.min_1ms.expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	wantKept := bytes.Count(kept, []byte{'\n'})
	wantChanged := 0 // duration_class changes every event with a numeric duration
	for i := range events {
		if v, ok := events[i].Measurement("duration"); ok && v.Kind != pipeline.KindString {
			wantChanged++
		}
	}
	for _, lang := range languages {
		t.Run(lang, func(t *testing.T) {
			var out bytes.Buffer
			sum, err := plugins.RunTest(context.Background(), &out, plugins.TestOptions{
				Path: wasmPath(t, lang, "slow_calls"), Config: goldenCases[0].cfg,
				Input: bytes.NewReader(input), BatchSize: 7, TimeBudget: time.Millisecond,
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if sum.Kept != wantKept || sum.Dropped != len(events)-wantKept || sum.Changed != 0 {
				t.Errorf("slow_calls: %+v, want %d kept, %d dropped\n%s", sum, wantKept, len(events)-wantKept, out.String())
			}
			out.Reset()
			sum, err = plugins.RunTest(context.Background(), &out, plugins.TestOptions{
				Path: wasmPath(t, lang, "duration_class"), Input: bytes.NewReader(input), TimeBudget: time.Millisecond,
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if sum.Changed != wantChanged || sum.Dropped != 0 || !strings.Contains(out.String(), "duration_class") {
				t.Errorf("duration_class: %+v, want %d changed\n%s", sum, wantChanged, out.String())
			}
		})
	}
}
