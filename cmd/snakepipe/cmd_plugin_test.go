package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/plugins"
)

// The modules are real .wasm files built from source by `make plugins`
// (plugins/testdata: C and WAT fixtures; examples/plugins/wat: the raw WAT
// example). They are committed, so these tests need no toolchain.
func pluginFixture(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "plugins", "testdata", name)
	if name == "wat-example" {
		p = filepath.Join("..", "..", "examples", "plugins", "wat", "filter.wasm")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v (build the fixtures with `make plugins`)", err)
	}
	return p
}

const pluginTestEvents = `{"name":"python.call.stop","timestamp_ns":1,"measurements":{"duration":2000000},"metadata":{"secret":"s"}}
{"name":"python.call.stop","timestamp_ns":2,"measurements":{"duration":10}}
{"name":"debug.noise","timestamp_ns":3}
{"name":"other","timestamp_ns":4}
`

func writeEvents(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPluginCommand(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // plugin test compiles through the user cache dir
	events := writeEvents(t, pluginTestEvents)
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
	}{
		{name: "help", args: []string{"plugin", "--help"}, code: 0, stdout: []string{"Usage: snakepipe plugin <inspect|test>", "Exit codes:"}},
		{name: "no subcommand", args: []string{"plugin"}, code: 2, stderr: []string{"Usage: snakepipe plugin"}},
		{name: "unknown subcommand", args: []string{"plugin", "inspct", "x.wasm"}, code: 2, stderr: []string{`unknown subcommand "inspct"`}},
		{name: "inspect help", args: []string{"plugin", "inspect", "-h"}, code: 0, stdout: []string{"Usage: snakepipe plugin inspect PLUGIN.wasm", "-json"}},
		{name: "test help", args: []string{"plugin", "test", "--help"}, code: 0, stdout: []string{"Usage: snakepipe plugin test PLUGIN.wasm --input FILE", "-config KEY=VALUE", "Examples:"}},

		{name: "inspect wat example", args: []string{"plugin", "inspect", pluginFixture(t, "wat-example")}, code: 0,
			stdout: []string{"abi version: 1\n", "kind:        filter\nfields:      all (no snk_fields export)\n", "memory:      2 pages initial (128 KiB), max none", `name="slow_calls"`,
				"  snk_filter(i32, i32) -> i64\n", "  snk_init(i32) -> i32\n", "imports:\n  (none)\n", "status:      ok, loadable"}},
		{name: "inspect C fixture imports", args: []string{"plugin", "inspect", pluginFixture(t, "logflood.wasm")}, code: 0,
			stdout: []string{"  snakepipe_v1.log(i32, i32, i32)\n", "status:      ok"}},
		{name: "inspect forbidden import", args: []string{"plugin", "inspect", pluginFixture(t, "forbidden.wasm")}, code: 1,
			stdout: []string{"env.system(i32) -> i32   <- NOT ALLOWED", "problems:\n  - forbidden import: env.system(i32) -> i32"},
			stderr: []string{"would be refused (1 problems)"}},
		{name: "inspect not wasm", args: []string{"plugin", "inspect", pluginFixture(t, "notwasm.wasm")}, code: 1,
			stdout: []string{"not a valid WebAssembly module: no Wasm magic"}},
		{name: "inspect wrong abi", args: []string{"plugin", "inspect", pluginFixture(t, "wrongabi.wasm")}, code: 1,
			stdout: []string{"abi version: 2", "snk_abi_version() returned 2, this host speaks ABI 1"}},
		{name: "inspect declared fields", args: []string{"plugin", "inspect", pluginFixture(t, "fields.wasm")}, code: 0,
			stdout: []string{"kind:        enrich\nfields:      all (snk_fields() returned 7 with an empty config)\n", "  snk_fields() -> i32\n", "status:      ok"}},
		{name: "inspect bad fields", args: []string{"plugin", "inspect", pluginFixture(t, "fields_bad.wasm")}, code: 1,
			stdout: []string{"fields:      unknown: snk_fields failed\n",
				"problems:\n  - plugin initialisation failed: snk_fields() returned 9: 8 is not a field group (1 measurements, 2 metadata, 4 host context)\n"}},
		{name: "inspect missing file", args: []string{"plugin", "inspect", "nope.wasm"}, code: 2, stderr: []string{"nope.wasm: no such file"}},
		{name: "inspect no argument", args: []string{"plugin", "inspect", "--json"}, code: 2, stderr: []string{"missing PLUGIN.wasm argument"}},
		{name: "inspect two arguments", args: []string{"plugin", "inspect", "a.wasm", "b.wasm"}, code: 2, stderr: []string{`unexpected argument "b.wasm"`}},

		{name: "test filter with config", args: []string{"plugin", "test", pluginFixture(t, "wat-example"), "--config", "min_duration_ns=100", "--input", events}, code: 0,
			stdout: []string{": filter, sha256 e77da9cbd4263eb8, deadline 1s, fields all (no snk_fields export)\n", "#1  kept     python.call.stop\n#2  dropped  python.call.stop\n#3  kept     debug.noise\n#4  kept     other\n",
				"summary: 4 events: 3 kept, 1 dropped, 0 changed; 0 failed batches; batch size 64; ", " ns/event"}},
		{name: "test flags before plugin", args: []string{"plugin", "test", "--input", events, "--batch", "1", pluginFixture(t, "enrich.wasm")}, code: 0,
			stdout: []string{"#1  changed  python.call.stop\n", `metadata speed: (none) -> "slow"`, `metadata secret: "s" -> (deleted)`,
				"measurement duration_us: (none) -> 2000", "#3  dropped  debug.noise", "#4  kept     other", "batch size 1"}},
		{name: "test declared fields", args: []string{"plugin", "test", pluginFixture(t, "fields.wasm"), "--config", "fields=1", "--input", events}, code: 0,
			stdout: []string{", deadline 1s, fields measurements (snk_fields() returned 1)\n", "#1  changed  python.call.stop\n", `metadata seen: (none) -> "n=1 kinds=1"`}},
		{name: "test bad fields", args: []string{"plugin", "test", pluginFixture(t, "fields.wasm"), "--config", "fields=9", "--input", events}, code: 1,
			stderr: []string{"refused", "snk_fields() returned 9: 8 is not a field group (1 measurements, 2 metadata, 4 host context)"}},
		{name: "test config refused", args: []string{"plugin", "test", pluginFixture(t, "wat-example"), "--config", "min_duration_ns=abc", "--input", events}, code: 1,
			stderr: []string{"refused", "snk_init returned -4 (config error)"}},
		{name: "test trap", args: []string{"plugin", "test", pluginFixture(t, "trap.wasm"), "--input", events}, code: 1,
			stdout: []string{"#1-#4  FAILED  trap: "}, stderr: []string{"plugin failed on the test input: events #1-#4: trap:"}},
		{name: "test wrong-length result", args: []string{"plugin", "test", pluginFixture(t, "wronglen.wasm"), "--input", events}, code: 1,
			stdout: []string{"FAILED  bad_output: malformed plugin result: filter result is"}},
		{name: "test forbidden import", args: []string{"plugin", "test", pluginFixture(t, "forbidden.wasm"), "--input", events}, code: 1,
			stderr: []string{"refused", "forbidden import: env.system(i32) -> i32"}},
		{name: "test not wasm", args: []string{"plugin", "test", pluginFixture(t, "notwasm.wasm"), "--input", events}, code: 1,
			stderr: []string{"does not start with the Wasm magic"}},
		{name: "test wrong abi", args: []string{"plugin", "test", pluginFixture(t, "wrongabi.wasm"), "--input", events}, code: 1,
			stderr: []string{"snk_abi_version() returned 2"}},
		{name: "test both kinds needs --kind", args: []string{"plugin", "test", pluginFixture(t, "swap_even.wasm"), "--input", events}, code: 1,
			stderr: []string{"set kind: filter or kind: enrich"}},
		{name: "test both kinds as filter", args: []string{"plugin", "test", pluginFixture(t, "swap_even.wasm"), "--kind", "filter", "--input", events}, code: 0,
			stdout: []string{": filter, sha256 ", "summary: 4 events"}},

		{name: "test trusted", args: []string{"plugin", "test", "--trusted", pluginFixture(t, "wat-example"), "--config", "min_duration_ns=100", "--input", events}, code: 0,
			stdout: []string{": filter, sha256 e77da9cbd4263eb8, no deadline (trusted), fields all (no snk_fields export)\n", "#2  dropped  python.call.stop\n", "summary: 4 events: 3 kept, 1 dropped"}},
		{name: "test guest log on stderr", args: []string{"plugin", "test", pluginFixture(t, "logflood.wasm"), "--input", events}, code: 0,
			stdout: []string{"#4  kept     other"}, stderr: []string{"[INFO]  guest: flooding the log\n"}},
		{name: "test huge event", args: []string{"plugin", "test", pluginFixture(t, "wat-example"), "--config", "min_duration_ns=100", "--input",
			writeEvents(t, pluginTestEvents+`{"name":"big","timestamp_ns":5,"metadata":{"pad":"`+strings.Repeat("x", 70000)+`"}}`+"\n")}, code: 0,
			stdout: []string{"#2  dropped  python.call.stop\n", "#5  too large  big: 70032 bytes encoded, over max_event_bytes (65536); not given to the plugin\n",
				"summary: 5 events: 3 kept, 1 dropped, 0 changed; 1 too large; 0 failed batches"}},
		{name: "test missing input flag", args: []string{"plugin", "test", pluginFixture(t, "wat-example")}, code: 2, stderr: []string{"--input FILE is required"}},
		{name: "test input missing", args: []string{"plugin", "test", pluginFixture(t, "wat-example"), "--input", "nope.jsonl"}, code: 2, stderr: []string{"--input: open nope.jsonl"}},
		{name: "test bad input", args: []string{"plugin", "test", pluginFixture(t, "wat-example"), "--input", writeEvents(t, "{nope\n")}, code: 2,
			stderr: []string{"bad test input", "line 1"}},
		{name: "test bad config flag", args: []string{"plugin", "test", pluginFixture(t, "wat-example"), "--config", "novalue", "--input", events}, code: 2,
			stderr: []string{`"novalue" is not KEY=VALUE`}},
		{name: "test bad kind", args: []string{"plugin", "test", pluginFixture(t, "wat-example"), "--kind", "map", "--input", events}, code: 2,
			stderr: []string{`--kind: kind "map" is not filter or enrich`}},
		{name: "test missing plugin file", args: []string{"plugin", "test", "nope.wasm", "--input", events}, code: 2, stderr: []string{"nope.wasm: no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// An infinite loop is stopped by the deadline and reported as a timeout.
func TestPluginTestInfiniteLoop(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	code, stdout, stderr := runCLI(t, nil, "plugin", "test", pluginFixture(t, "loop.wasm"), "--input", writeEvents(t, pluginTestEvents))
	if code != 1 || !strings.Contains(stdout, "FAILED  timeout") || !strings.Contains(stderr, "timeout") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestPluginJSON(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Run("inspect", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, nil, "plugin", "inspect", "--json", pluginFixture(t, "wat-example"))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var info struct {
			ABIVersion int      `json:"abi_version"`
			Kinds      []string `json:"kinds"`
			Exports    []struct {
				Name    string   `json:"name"`
				Params  []string `json:"params"`
				Results []string `json:"results"`
			} `json:"exports"`
			Fields         *int            `json:"fields"`
			FieldsNote     string          `json:"fields_note"`
			MemoryMinPages int             `json:"memory_min_pages"`
			Meta           *plugins.Meta   `json:"meta"`
			Problems       []string        `json:"problems"`
			Imports        json.RawMessage `json:"imports"`
		}
		if err := json.Unmarshal([]byte(stdout), &info); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		found := false
		for _, e := range info.Exports {
			found = found || e.Name == "snk_filter" && strings.Join(e.Params, ",") == "i32,i32" && strings.Join(e.Results, ",") == "i64"
		}
		if info.ABIVersion != 1 || strings.Join(info.Kinds, ",") != "filter" || !found || info.MemoryMinPages != 2 ||
			info.Fields == nil || *info.Fields != 7 || info.FieldsNote != "no snk_fields export" ||
			info.Meta == nil || info.Meta.Name != "slow_calls" || info.Problems == nil || len(info.Problems) != 0 {
			t.Errorf("%+v\n%s", info, stdout)
		}
	})
	t.Run("inspect refused", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, nil, "plugin", "inspect", "--json", pluginFixture(t, "forbidden.wasm"))
		var info plugins.Info
		if err := json.Unmarshal([]byte(stdout), &info); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		if code != 1 || len(info.Problems) != 1 || !strings.Contains(stderr, "forbidden import: env.system") {
			t.Errorf("exit %d problems %q stderr %s", code, info.Problems, stderr)
		}
		for _, im := range info.Imports {
			if im.Name == "system" && im.Allowed {
				t.Errorf("env.system marked allowed")
			}
		}
	})
	t.Run("test", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, nil, "plugin", "test", "--json", pluginFixture(t, "enrich.wasm"), "--input", writeEvents(t, pluginTestEvents))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var sum plugins.TestSummary
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		var results []string
		for _, o := range sum.Outcomes {
			results = append(results, o.Result)
		}
		if sum.Kind != "enrich" || sum.Events != 4 || sum.Changed != 2 || sum.Dropped != 1 || sum.Kept != 1 || sum.NsPerEvent <= 0 ||
			strings.Join(results, ",") != "changed,changed,dropped,kept" || len(sum.Outcomes[0].Changes) == 0 {
			t.Errorf("%+v", sum)
		}
	})
	t.Run("test failed", func(t *testing.T) {
		code, stdout, _ := runCLI(t, nil, "plugin", "test", "--json", pluginFixture(t, "trap.wasm"), "--input", writeEvents(t, pluginTestEvents))
		var sum plugins.TestSummary
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		if code != 1 || sum.FailedBatches != 1 || len(sum.Outcomes) != 4 || sum.Outcomes[3].Result != "failed" || !strings.HasPrefix(sum.Outcomes[3].Failure, "trap: ") {
			t.Errorf("exit %d %+v", code, sum)
		}
	})
}

// The SDK examples of the guest languages (examples/plugins/<lang>, built
// by `make plugins`, which `make test` runs first): inspect finds each
// loadable, and test reports the same outcome for every event of the
// golden input in every language.
func TestPluginCommandSDKExamples(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	input := filepath.Join("..", "..", "examples", "plugins", "testdata", "input.jsonl")
	var want string
	// Go (wasip1) is left out: compiling its 2.5 MB module twice takes ~15 s
	// under -race; examples/plugins tests it through the same RunTest.
	for _, lang := range []string{"c", "assemblyscript", "rust", "zig"} {
		t.Run(lang, func(t *testing.T) {
			p := filepath.Join("..", "..", "examples", "plugins", lang, "slow_calls.wasm")
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("%v (build the example plugins with `make plugins`)", err)
			}
			code, stdout, stderr := runCLI(t, nil, "plugin", "inspect", p)
			if code != 0 || !strings.Contains(stdout, "abi version: 1\n") || !strings.Contains(stdout, "kind:        filter\n") {
				t.Fatalf("inspect: exit %d\n%s%s", code, stdout, stderr)
			}
			code, stdout, stderr = runCLI(t, nil, "plugin", "test", p, "--config", "min_duration_ns=1000000", "--batch", "7", "--json", "--input", input)
			if code != 0 {
				t.Fatalf("test: exit %d\n%s", code, stderr)
			}
			var sum plugins.TestSummary
			if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
				t.Fatal(err)
			}
			if sum.Kept == 0 || sum.Dropped == 0 || sum.Changed != 0 || sum.FailedBatches != 0 {
				t.Errorf("summary %+v: want some kept and some dropped", sum)
			}
			var b strings.Builder
			for _, o := range sum.Outcomes {
				b.WriteString(o.Result + " " + o.Name + "\n")
			}
			if want == "" {
				want = b.String()
			} else if b.String() != want {
				t.Errorf("outcomes differ from the C plugin's:\n%s\nwant\n%s", b.String(), want)
			}
		})
	}
}
