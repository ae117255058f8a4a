package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/cmd/snakepipe/internal/loadgen"
)

// TestLoadgenAgainstService runs `snakepipe loadgen --count` against a real
// service (gRPC, catalog, pipeline, file sink, admin /metrics): every event
// sent is received by the host and is one line in the file, and the report
// reads the host's figures from its metrics.
func TestLoadgenAgainstService(t *testing.T) {
	dir := t.TempDir()
	svc := startService(t, fileSinkConfig(dir, ""), "SNAKEPIPE_ADMIN__LISTEN=127.0.0.1:0")
	const workers, count = 4, 1000 // not a multiple of the batch: the last batch is partial
	code, stdout, stderr := runCLI(t, nil, "loadgen", "--target", svc.IngestAddr(), "--admin", svc.AdminAddr(),
		"--workers", "4", "--batch", "64", "--count", "1000", "--json")
	if code != 0 {
		t.Fatalf("loadgen exit %d\nstderr:\n%s", code, stderr)
	}
	var r loadgen.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout)
	}
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	worker, host := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	if r.EventsSent != count || r.Errors != 0 {
		t.Errorf("sent %d events with %d errors (%s), want %d and none", r.EventsSent, r.Errors, r.FirstError, count)
	}
	if r.Host == nil {
		t.Fatal("no host figures with --admin")
	}
	if r.Host.EventsReceived != count || len(worker) != count {
		t.Errorf("host received %v, file has %d worker events; want both %d", r.Host.EventsReceived, len(worker), count)
	}
	// The sink also wrote each stream's connected and disconnected events.
	if want := float64(count + 2*workers); r.Host.EventsWritten != want || len(host) != 2*workers {
		t.Errorf("host written %v (file: %d host events), want %v", r.Host.EventsWritten, len(host), want)
	}
	pools := map[string]bool{}
	for _, e := range worker {
		pools[e.Origin.Pool] = true
	}
	if len(pools) != 1 || !pools["loadgen"] {
		t.Errorf("pools %v, want only the default \"loadgen\"", pools)
	}
	if r.Host.CPUSeconds <= 0 || r.Host.RSSEndBytes <= 0 || r.LoadgenCPUSeconds <= 0 {
		t.Errorf("host CPU %v s, RSS %v, loadgen CPU %v s: want all read", r.Host.CPUSeconds, r.Host.RSSEndBytes, r.LoadgenCPUSeconds)
	}
	if r.Host.LatencyObservations != 0 {
		t.Errorf("latency reported without --latency: %v observations", r.Host.LatencyObservations)
	}
}

// TestLoadgenHumanReport: latency mode at a fixed rate, the aligned table.
func TestLoadgenHumanReport(t *testing.T) {
	svc := startService(t, fileSinkConfig(t.TempDir(), ""), "SNAKEPIPE_ADMIN__LISTEN=127.0.0.1:0")
	defer func() { _ = svc.Shutdown(context.Background()) }()
	code, stdout, stderr := runCLI(t, nil, "loadgen", "--target", svc.IngestAddr(), "--admin", svc.AdminAddr(),
		"--workers", "2", "--batch", "10", "--count", "2000", "--rate", "20000", "--latency", "--pool", "bench")
	if code != 0 {
		t.Fatalf("loadgen exit %d\nstderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"run                  2 workers, batches of 10, target 20,000 events/s",
		"\nevents sent          2,000 (200 frames, ",
		"\nhost received        2,000\n",
		"\nhost written (sink)  2,004, ",
		"\nhost dropped         0\n",
		"\nlatency send→sink    p50 ",
		"(2,004 events)",
		"\nhost RSS             ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress with carriage returns on a non-terminal:\n%q", stderr)
	}
}

// TestLoadgenProgress: --progress prints a progress line a second even
// when stderr is not a terminal, as plain lines.
func TestLoadgenProgress(t *testing.T) {
	svc := startService(t, fileSinkConfig(t.TempDir(), ""))
	defer func() { _ = svc.Shutdown(context.Background()) }()
	// 250 events at 200/s: a little over a second.
	code, _, stderr := runCLI(t, nil, "loadgen", "--target", svc.IngestAddr(), "--admin", "",
		"--workers", "1", "--batch", "10", "--count", "250", "--rate", "200", "--progress")
	if code != 0 {
		t.Fatalf("loadgen exit %d\nstderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "s  sent ") || !strings.Contains(stderr, " ev/s  errors 0\n") || strings.Contains(stderr, "\r") {
		t.Errorf("stderr lacks a plain progress line:\n%q", stderr)
	}
}

func TestLoadgenFlags(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{args: []string{"loadgen", "--help"}, code: 0, stdout: "Usage: snakepipe loadgen"},
		{args: []string{"loadgen"}, code: 2, stderr: "set --duration or --count"},
		{args: []string{"loadgen", "--count", "10", "--workers", "0"}, code: 2, stderr: "--workers and --batch must be at least 1"},
		// Nothing listens on port 1 of the loopback: the admin scrape fails
		// first, with a hint.
		{args: []string{"loadgen", "--count", "10", "--admin", "127.0.0.1:1"}, code: 1, stderr: `--admin "" runs without host figures`},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d with %q / %q", tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
}

// TestRunProfiles: `snakepipe run --cpuprofile --memprofile` writes both
// profiles (gzipped pprof protobufs) when the run ends.
func TestRunProfiles(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "snakepipe.yaml")
	if err := os.WriteFile(cfgPath, []byte(fileSinkConfig(dir, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	cpu, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb,
		signals: func() (<-chan os.Signal, func()) { cancel(); return make(chan os.Signal), func() {} },
		exit:    func(code int) { t.Errorf("exit(%d)", code) }}
	// signals() cancels ctx: the run starts, then shuts down at once.
	if code := realMain(ctx, c, []string{"run", "-c", cfgPath, "--cpuprofile", cpu, "--memprofile", mem}); code != 0 {
		t.Fatalf("run exit %d:\n%s", code, errb.String())
	}
	for _, p := range []string{cpu, mem} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: %d bytes, err %v: want a gzipped profile", p, len(b), err)
		}
	}
}
