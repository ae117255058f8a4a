package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInspect(t *testing.T) {
	tests := []struct {
		file    string
		abi     int32
		want    []string
		problem string
	}{
		{file: filepath.Join("..", "examples", "plugins", "wat", "filter.wasm"), abi: 1,
			want: []string{"kind:        filter", `name="slow_calls"`, "snk_filter(i32, i32) -> i64", "memory:      2 pages", "status:      ok"}},
		{file: td("logflood.wasm"), abi: 1, want: []string{"snakepipe_v1.log(i32, i32, i32)", "(no snakepipe.meta section)"}},
		{file: td("forbidden.wasm"), want: []string{"env.system(i32) -> i32   <- NOT ALLOWED"}, problem: "forbidden import"},
		{file: td("wrongabi.wasm"), abi: 2, problem: "returned 2"},
		{file: td("notwasm.wasm"), problem: "magic"},
		{file: td("swap_even.wasm"), abi: 1, want: []string{"kind:        filter, enrich"}},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			info, err := Inspect(context.Background(), tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if info.ABIVersion != tc.abi {
				t.Errorf("abi %d, want %d", info.ABIVersion, tc.abi)
			}
			var b bytes.Buffer
			if err := info.Write(&b); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.want {
				if !strings.Contains(b.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, b.String())
				}
			}
			if got := strings.Join(info.Problems, "\n"); (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("problems %q, want one with %q", got, tc.problem)
			}
		})
	}
}

func TestRunTest(t *testing.T) {
	input := strings.Join([]string{
		`{"name":"python.call.stop","timestamp_ns":1,"measurements":{"duration":2000000},"metadata":{"secret":"s"}}`,
		`{"name":"python.call.stop","timestamp_ns":2,"measurements":{"duration":10}}`,
		`{"name":"debug.noise","timestamp_ns":3}`,
		`{"name":"other","timestamp_ns":4}`,
	}, "\n")
	t.Run("enrich", func(t *testing.T) {
		var out bytes.Buffer
		sum, err := RunTest(context.Background(), &out, TestOptions{Path: td("enrich.wasm"), Input: strings.NewReader(input), BatchSize: 3, TimeBudget: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Events != 4 || sum.Changed != 2 || sum.Dropped != 1 || sum.Kept != 1 || sum.NsPerEvent <= 0 {
			t.Errorf("summary %+v", sum)
		}
		for _, s := range []string{
			"#1  changed  python.call.stop", `metadata speed: (none) -> "slow"`, `metadata secret: "s" -> (deleted)`,
			"measurement duration_us: (none) -> 2000", "#3  dropped  debug.noise", "#4  kept     other", "ns/event",
		} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("output lacks %q:\n%s", s, out.String())
			}
		}
	})
	t.Run("filter config", func(t *testing.T) {
		var out bytes.Buffer
		sum, err := RunTest(context.Background(), &out, TestOptions{Path: td("filter.wasm"), Config: map[string]string{"min_duration_ns": "100"},
			Input: strings.NewReader(input), TimeBudget: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Kept != 3 || sum.Dropped != 1 || !strings.Contains(out.String(), "#2  dropped  python.call.stop") {
			t.Errorf("summary %+v\n%s", sum, out.String())
		}
	})
	t.Run("trap", func(t *testing.T) {
		var out bytes.Buffer
		_, err := RunTest(context.Background(), &out, TestOptions{Path: td("trap.wasm"), Input: strings.NewReader(input)})
		if !errors.Is(err, ErrTestFailed) || !strings.Contains(out.String(), "FAILED  trap") {
			t.Errorf("err %v, output:\n%s", err, out.String())
		}
	})
	t.Run("bad input", func(t *testing.T) {
		_, err := RunTest(context.Background(), &bytes.Buffer{}, TestOptions{Path: td("filter.wasm"), Input: strings.NewReader("{nope")})
		if err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("err %v", err)
		}
	})
}

// The raw WAT example and the C reference filter agree on the example input.
func TestWATExampleMatchesReference(t *testing.T) {
	run := func(path string) string {
		var out bytes.Buffer
		in, err := readFileString(filepath.Join("..", "examples", "plugins", "wat", "events.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RunTest(context.Background(), &out, TestOptions{Path: path, Config: map[string]string{"min_duration_ns": "1000000"},
			Input: strings.NewReader(in), TimeBudget: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(out.String(), "\n")
		return strings.Join(lines[1:len(lines)-2], "\n") // drop header and summary (timing)
	}
	wat, ref := run(filepath.Join("..", "examples", "plugins", "wat", "filter.wasm")), run(td("filter.wasm"))
	if wat != ref {
		t.Fatalf("WAT example:\n%s\nreference:\n%s", wat, ref)
	}
	want := "#1  kept     python.call.stop\n#2  dropped  python.call.stop\n#3  kept     python.call.stop\n#4  kept     python.call.start\n#5  kept     python.call.stop"
	if wat != want {
		t.Fatalf("got\n%s\nwant\n%s", wat, want)
	}
}

// TestInspectJSONLists: `plugin inspect --json` writes empty lists as []
// (a module without imports, a file that is not Wasm), and every export
// as allowed (the allowlist is about imports).
func TestInspectJSONLists(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"filter.wasm", []string{`"imports":[]`, `"problems":[]`, `"name":"snk_filter","params":["i32","i32"],"results":["i64"],"allowed":true`}},
		{"notwasm.wasm", []string{`"kinds":[]`, `"exports":[]`, `"imports":[]`}},
		{"forbidden.wasm", []string{`"allowed":false`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			info, err := Inspect(context.Background(), td(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(info)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("JSON lacks %s:\n%s", w, b)
				}
			}
			if bytes.Contains(b, []byte("null")) && tc.file != "notwasm.wasm" {
				t.Errorf("JSON has a null:\n%s", b)
			}
		})
	}
}
