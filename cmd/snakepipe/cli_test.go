package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// runCLI runs one invocation in-process.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{
		stdout:  &out,
		stderr:  &errb,
		environ: env,
		signals: func() (<-chan os.Signal, func()) { return make(chan os.Signal), func() {} },
		exit:    func(code int) { t.Fatalf("exit(%d) called", code) },
	}
	code = realMain(context.Background(), c, args)
	return code, out.String(), errb.String()
}

func TestCLIHelpAndErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderr     []string
		stdoutNone bool
	}{
		{name: "overview", args: []string{"--help"}, code: 0,
			stdout: []string{"Usage:\n  snakepipe <command> [flags]", "  run ", "  validate ", "  demo ", "  version ", "snakepipe validate -c snakepipe.yaml"}},
		{name: "no args", args: nil, code: 2, stderr: []string{"Commands:"}, stdoutNone: true},
		{name: "unknown command", args: []string{"rn"}, code: 2, stderr: []string{`unknown command "rn"`, "Commands:"}},
		{name: "run help", args: []string{"run", "--help"}, code: 0,
			stdout: []string{"Usage: snakepipe run [-c FILE]", "-listen ADDR", "-log-level LEVEL", "-shutdown-timeout", "Examples:"}},
		{name: "help run", args: []string{"help", "run"}, code: 0, stdout: []string{"Usage: snakepipe run"}},
		{name: "validate help", args: []string{"validate", "-h"}, code: 0, stdout: []string{"Usage: snakepipe validate [-c FILE]", "-c FILE"}},
		{name: "bad flag", args: []string{"run", "--lisen", "x"}, code: 2, stderr: []string{"flag provided but not defined: -lisen"}},
		{name: "stray argument", args: []string{"validate", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"snakepipe dev\n", "commit:", "go:       go1.", "protocol: snakepipe.v1 (version 1)\n", "plugins:  ABI v1\n", "wazero:   v"}},
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
			if tt.stdoutNone && stdout != "" {
				t.Errorf("stdout should be empty, got:\n%s", stdout)
			}
		})
	}
}

func TestCLIValidate(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout string
		stderr []string
	}{
		{name: "built-in config", args: nil, code: 0, stdout: "valid\n"},
		{name: "full example", args: []string{"-c", "testdata/full.yaml"}, code: 0, stdout: "valid\n"},
		{name: "unused sink warns", args: []string{"-c", "testdata/unused.yaml"}, code: 0, stdout: "valid\n",
			stderr: []string{"warning: sinks.file/spare: no pipeline uses this sink"}},
		{name: "typos", args: []string{"-c", "testdata/typos.yaml"}, code: 1, stderr: []string{
			"snakepipe: testdata/typos.yaml has 4 problems:\n",
			"  ingest.lisen: unknown key (did you mean listen?)\n",
			"  pipelines.default.sinks[0]: unknown sink \"fille\"",
			"  sinks.file/main.max_bytes: ",
			"  stages.sample/x.rate: ",
		}},
		{name: "env typo", args: nil, env: []string{"SNAKEPIPE_LOG__LEVL=debug"}, code: 1,
			stderr: []string{"snakepipe: the built-in config has 1 problem:\n  log.levl: unknown key (did you mean level?)\n"}},
		{name: "catalog problem", args: []string{"-c", "testdata/bad_catalog.yaml"}, code: 1, stderr: []string{"  catalog.events[0]"}},
		{name: "missing file", args: []string{"-c", "testdata/nope.yaml"}, code: 1, stderr: []string{"snakepipe: config file testdata/nope.yaml: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.env, append([]string{"validate"}, tt.args...)...)
			if code != tt.code || stdout != tt.stdout {
				t.Errorf("exit %d stdout %q, want %d %q\nstderr:\n%s", code, stdout, tt.code, tt.stdout, stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// buildBinary builds cmd/snakepipe once per test binary.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func snakepipeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "snakepipe-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "snakepipe")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// TestBinary runs the real binary: validate, then run with a file sink, a
// worker streaming to it, and SIGTERM, which must drain everything to the
// file and exit 0.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := snakepipeBinary(t)

	out, err := exec.Command(bin, "validate", "-c", "testdata/full.yaml").CombinedOutput()
	if err != nil || string(out) != "valid\n" {
		t.Errorf("validate full.yaml: %v %q", err, out)
	}
	cmd := exec.Command(bin, "validate", "-c", "testdata/typos.yaml")
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "ingest.lisen: unknown key") {
		t.Errorf("validate typos.yaml: exit %d, %v, %q", cmd.ProcessState.ExitCode(), err, out)
	}

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "snakepipe.yaml")
	if err := os.WriteFile(cfgPath, []byte(fileSinkConfig(dir, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(bin, "run", "-c", cfgPath, "--log-format", "json", "--log-level", "info")
	run.Env = append(os.Environ(), "SNAKEPIPE_ADMIN__LISTEN=") // no admin listener
	stderr, err := run.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = run.Process.Kill() }()

	// The "snakepipe started" log line carries the bound address.
	lines := bufio.NewScanner(stderr)
	var addr string
	var logTail []string
	for addr == "" && lines.Scan() {
		logTail = append(logTail, lines.Text())
		var entry map[string]any
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry["@message"] == "snakepipe started" {
			addr, _ = entry["ingest"].(string)
		}
	}
	if addr == "" {
		t.Fatalf("no 'snakepipe started' line; stderr:\n%s", strings.Join(logTail, "\n"))
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	w := dialWorker(t, addr, "bin-worker")
	const n = 500
	for i := range n / 50 {
		evs := make([]*pb.Event, 50)
		for j := range evs {
			ts := int64(i*50 + j)
			evs[j] = callStop(ts, "", ts, "c")
		}
		w.batch(evs...)
	}
	// SIGTERM while the stream is still open: the host sends GoAway, the
	// worker half-closes, everything sent reaches the file.
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	w.awaitGoAway()
	w.finish()
	if err := run.Wait(); err != nil {
		t.Fatalf("snakepipe run exited with %v after SIGTERM, want 0", err)
	}
	got, host := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	if len(host) != 2 {
		t.Errorf("host events %v, want connected and disconnected", names(host))
	}
	if len(got) != n {
		t.Fatalf("file has %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.TimestampNs != int64(i) || e.Name != "python.call.stop" || e.Origin == nil || e.Origin.WorkerID != "bin-worker" {
			t.Fatalf("event %d = %s", i, pipeline.AppendJSON(nil, &e))
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and a polling reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDemo runs `snakepipe demo` in-process until its events and the
// reject report are on stderr, then stops it like Ctrl-C does. Log lines
// (JSON) and event lines (text) share stderr and never interleave.
func TestDemo(t *testing.T) {
	var stderr lockedBuffer
	sigs := make(chan os.Signal, 1)
	c := &cli{
		stdout:  io.Discard,
		stderr:  &stderr,
		signals: func() (<-chan os.Signal, func()) { return sigs, func() {} },
		exit:    func(code int) { t.Errorf("exit(%d) called", code) },
	}
	code := make(chan int, 1)
	go func() { code <- realMain(context.Background(), c, []string{"demo", "--log-format", "json"}) }()

	// The burst has 9 events, one of them unknown: 8 event lines, then the
	// reject notice. The test's own timeout bounds the wait.
	ready := func(out string) bool {
		return strings.Count(out, "python.memory.sampled") >= 1 && strings.Contains(out, "the host rejected events") &&
			strings.Count(out, "\n20") >= 8
	}
	for !ready(stderr.String()) {
		select {
		case c := <-code:
			t.Fatalf("demo exited early with %d:\n%s", c, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	sigs <- syscall.SIGINT
	if got := <-code; got != 0 {
		t.Errorf("demo exited with %d after SIGINT, want 0", got)
	}
	out := stderr.String()
	var events, logs int
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "{"):
			var entry map[string]any
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Errorf("torn log line %q: %v", line, err)
			}
			logs++
		case len(line) > 28 && line[4] == '-' && line[26] == 'Z':
			events++
		default:
			t.Errorf("line is neither a log entry nor an event: %q", line)
		}
	}
	for _, name := range []string{"python.call.start", "python.call.stop", "python.call.exception", "tool.execution.stop", "python.cpu.sampled"} {
		if !strings.Contains(out, name) {
			t.Errorf("no %s event in the output", name)
		}
	}
	if strings.Contains(out, "python.cal.stop ") {
		t.Error("the misspelt event reached the sink")
	}
	if !strings.Contains(out, "unknown_event=1") {
		t.Errorf("the reject was not reported as unknown_event=1:\n%s", out)
	}
	if !strings.Contains(out, "shutdown complete") {
		t.Error("no 'shutdown complete' log line")
	}
	t.Logf("%d event lines, %d log lines", events, logs)
}

// TestSecondSignalExitsAtOnce: while a graceful shutdown is still running,
// a second signal ends the process (exit 1) without waiting for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	exited := make(chan int, 1)
	release := make(chan struct{})
	c := &cli{stderr: io.Discard, exit: func(code int) { exited <- code; close(release) }}
	code := make(chan int, 1)
	go func() {
		code <- serveUntilSignal(context.Background(), c, hclog.NewNullLogger(), sigs, time.Minute, nil,
			func(context.Context) error { <-release; return nil }) // a shutdown that hangs
	}()
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGTERM
	if got := <-exited; got != 1 {
		t.Errorf("exit(%d), want exit(1)", got)
	}
	<-code // the hung shutdown returns once released
}

// TestCLIValidatePlugins: validate loads each wasm stage as run does and
// says, under the stage's key, why run would refuse it.
func TestCLIValidatePlugins(t *testing.T) {
	fixture := func(name string) string {
		p, err := filepath.Abs(filepath.Join("..", "..", "plugins", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		path   string
		stage  string // more keys of the stage, YAML lines
		extra  []string
		code   int
		stderr []string
	}{
		{name: "loadable filter", path: fixture("filter.wasm"), code: 0},
		{name: "kind matches", path: fixture("enrich.wasm"), stage: "kind: enrich", code: 0},
		{name: "missing file", path: fixture("nope.wasm"), code: 1,
			stderr: []string{"  stages.wasm/x: ", "nope.wasm: no such file or directory"}},
		{name: "not wasm", path: fixture("notwasm.wasm"), code: 1,
			stderr: []string{"  stages.wasm/x: ", "Wasm magic"}},
		{name: "forbidden import", path: fixture("forbidden.wasm"), code: 1,
			stderr: []string{"  stages.wasm/x: ", "forbidden import"}},
		{name: "wrong ABI version", path: fixture("wrongabi.wasm"), code: 1,
			stderr: []string{"  stages.wasm/x: ", "unsupported ABI version"}},
		{name: "wrong kind", path: fixture("filter.wasm"), stage: "kind: enrich", code: 1,
			stderr: []string{"  stages.wasm/x: ", "kind enrich configured but the module does not export snk_enrich"}},
		{name: "both kinds, none set", path: fixture("swap_even.wasm"), code: 1,
			stderr: []string{"  stages.wasm/x: ", "set kind"}},
		// The stage's own memory limit counts, not plugins.memory_limit_pages.
		{name: "stage memory limit allows a big module", path: fixture("bigmem.wasm"), stage: "memory_limit_pages: 512", code: 0},
		{name: "stage memory limit too small", path: fixture("filter.wasm"), stage: "memory_limit_pages: 1", code: 1,
			stderr: []string{"  stages.wasm/x: ", "over memory_limit_pages 1"}},
		{name: "config refused by snk_init", path: fixture("filter.wasm"), stage: `config: {min_duration_ns: "soon"}`, code: 1,
			stderr: []string{"  stages.wasm/x: ", "the plugin refused its config"}},
		{name: "no-plugins skips the files", path: fixture("nope.wasm"), extra: []string{"--no-plugins"}, code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fmt.Sprintf("stages:\n  wasm/x:\n    path: %q\n", tt.path)
			if tt.stage != "" {
				cfg += "    " + tt.stage + "\n"
			}
			cfg += "sinks:\n  stderr: {}\npipelines:\n  default:\n    stages: [wasm/x]\n    sinks: [stderr]\n"
			file := filepath.Join(t.TempDir(), "wasm.yaml")
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCLI(t, nil, append([]string{"validate", "-c", file}, tt.extra...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			if tt.code == 0 && stdout != "valid\n" {
				t.Errorf("stdout %q, want valid", stdout)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}
