// Command benchrun runs the load scenarios of `make bench` against real
// `snakepipe run` processes and prints one Markdown table, ready to paste
// into BENCHMARKS.md:
//
//  1. no stages → file sink, as fast as possible;
//  2. the C example Wasm filter (examples/plugins/c/slow_calls.wasm) → file
//     sink, and the same decision as the built-in threshold stage, rounds
//     interleaved with scenario 1 so the three share the machine's state;
//  3. send→sink latency and host CPU at a fixed 100k events/s through the
//     Wasm filter;
//  4. Python worker processes (the python/ library) at full speed;
//  5. a soak at a fixed rate, sampling the host's RSS (`make soak` runs it
//     for 10 minutes).
//
// The load is `snakepipe loadgen --json` in its own process, so the host's
// and the load generator's CPU are measured apart. Scenario configs are in
// bench/scenarios. Nothing here asserts a time; it reports.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snakepipe/snakepipe/cmd/snakepipe/internal/loadgen"
)

type options struct {
	bin, scenarios, python    string
	only                      string
	duration, latencyDuration time.Duration
	pythonDuration, soak      time.Duration
	rounds, workers, batch    int
	pythonWorkers             int
	latencyRate, soakRate     float64
	keep                      bool
	profiles                  string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/snakepipe", "the snakepipe binary (host and loadgen)")
	flag.StringVar(&o.scenarios, "scenarios", "bench/scenarios", "directory of the scenario configs")
	flag.StringVar(&o.python, "python", ".venv/bin/python", "Python with the snakepipe library installed (\"\" skips scenario 4)")
	flag.StringVar(&o.only, "only", "throughput,latency,python,soak", "scenarios to run, comma-separated")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of one throughput run")
	flag.IntVar(&o.rounds, "rounds", 2, "throughput rounds per scenario (interleaved; the best is reported)")
	flag.IntVar(&o.workers, "workers", 64, "loadgen workers")
	flag.IntVar(&o.batch, "batch", 64, "loadgen events per frame")
	flag.Float64Var(&o.latencyRate, "latency-rate", 100_000, "events/s of the latency run")
	flag.DurationVar(&o.latencyDuration, "latency-duration", 15*time.Second, "length of the latency run")
	flag.IntVar(&o.pythonWorkers, "python-workers", 2, "Python worker processes")
	flag.DurationVar(&o.pythonDuration, "python-duration", 10*time.Second, "length of the Python run")
	flag.DurationVar(&o.soak, "soak", 60*time.Second, "length of the soak run (0 skips it)")
	flag.Float64Var(&o.soakRate, "soak-rate", 100_000, "events/s of the soak run")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory (host logs, sink files)")
	flag.StringVar(&o.profiles, "profiles", "", "write each host's CPU profile into this directory (NN-scenario.prof; go tool pprof -top bin/snakepipe FILE)")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

// row is one line of the result table.
type row struct {
	scenario, rate, hostCPU, loadCPU, latency, rss, notes string
}

func run(ctx context.Context, o options, out io.Writer) error {
	scratch, err := os.MkdirTemp("", "snakepipe-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "benchrun: scratch directory", scratch)
	} else {
		defer func() { _ = os.RemoveAll(scratch) }()
	}
	only := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		only[strings.TrimSpace(s)] = true
	}
	r := &runner{o: o, scratch: scratch}
	started := time.Now()
	load0 := loadAverage()
	var rows []row
	var ratios []string
	if only["throughput"] {
		rs, rat, err := r.throughput(ctx)
		if err != nil {
			return err
		}
		rows, ratios = append(rows, rs...), rat
	}
	if only["latency"] {
		quiesce()
		rw, err := r.latency(ctx)
		if err != nil {
			return err
		}
		rows = append(rows, rw)
	}
	if only["python"] {
		quiesce()
		rw, err := r.pythonWorkers(ctx)
		if err != nil {
			return err
		}
		rows = append(rows, rw)
	}
	if only["soak"] && o.soak > 0 {
		quiesce()
		rw, err := r.soakRun(ctx)
		if err != nil {
			return err
		}
		rows = append(rows, rw)
	}
	printTable(out, o, rows, ratios, started, load0)
	return nil
}

// quiesce lets the disk catch up between scenarios: the full-speed runs
// leave hundreds of MB of dirty pages. In one run the latency scenario
// right after them stalled for seconds (p99 6 s) while the same scenario
// alone a minute later had a p99 of 9 ms; writeback is the likely cause.
func quiesce() {
	syscall.Sync()
	time.Sleep(2 * time.Second)
}

type runner struct {
	o       options
	scratch string
	n       int
}

// host is one `snakepipe run` process.
type host struct {
	cmd           *exec.Cmd
	ingest, admin string
	log           string
	exited        chan error
	// sinkFiles, when set, is removed after the host stops: a full-speed
	// run writes hundreds of MB (rotation bounds each host to ~600 MB).
	sinkFiles string
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// startHost runs the scenario config with its own ports and sink file and
// waits until it is ready.
func (r *runner) startHost(ctx context.Context, scenario string) (*host, error) {
	r.n++
	dir := filepath.Join(r.scratch, fmt.Sprintf("%02d-%s", r.n, scenario))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ingest, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	h := &host{ingest: ingest, admin: admin, log: filepath.Join(dir, "host.log"), exited: make(chan error, 1)}
	if !r.o.keep {
		h.sinkFiles = filepath.Join(dir, "events.jsonl*")
	}
	logf, err := os.Create(h.log)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "-c", filepath.Join(r.o.scenarios, scenario+".yaml"), "--listen", ingest, "--admin", admin}
	if r.o.profiles != "" {
		if err := os.MkdirAll(r.o.profiles, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--cpuprofile", filepath.Join(r.o.profiles, fmt.Sprintf("%02d-%s.prof", r.n, scenario)))
	}
	h.cmd = exec.Command(r.o.bin, args...)
	h.cmd.Env = append(os.Environ(), "SNAKEPIPE_SINKS__FILE__PATH="+filepath.Join(dir, "events.jsonl"))
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	go func() { h.exited <- h.cmd.Wait(); _ = logf.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-h.exited:
			return nil, fmt.Errorf("%s host exited before it was ready (%w); log:\n%s", scenario, err, tail(h.log))
		default:
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h, nil
			}
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("%s host not ready within 30s; log:\n%s", scenario, tail(h.log))
		}
		select {
		case <-ctx.Done():
			h.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the host gracefully (SIGTERM), killing it after 30 s.
func (h *host) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.exited:
		_ = err // the exit status of a SIGTERMed host says nothing more
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		err := <-h.exited
		_ = err // killed: the status is "killed"
	}
	if h.sinkFiles != "" {
		files, _ := filepath.Glob(h.sinkFiles)
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// loadgen runs `snakepipe loadgen --json` against h.
func (r *runner) loadgen(ctx context.Context, h *host, args ...string) (*loadgen.Report, error) {
	full := append([]string{"loadgen", "--json", "--target", h.ingest, "--admin", h.admin,
		"--workers", fmt.Sprint(r.o.workers), "--batch", fmt.Sprint(r.o.batch)}, args...)
	cmd := exec.CommandContext(ctx, r.o.bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep loadgen.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		return nil, errors.Join(fmt.Errorf("loadgen %v: reading its report: %w\n%s", args, jerr, stderr.String()), err)
	}
	if err != nil {
		return nil, fmt.Errorf("loadgen %v: %w\n%s", args, err, stderr.String())
	}
	if rep.Host == nil {
		return nil, fmt.Errorf("loadgen %v: the report has no host figures (admin %s unreachable?)\n%s", args, h.admin, stderr.String())
	}
	return &rep, nil
}

// throughputResult is one full-speed run.
type throughputResult struct {
	rate float64 // events through the pipeline per second (received over run + drain)
	rep  *loadgen.Report
}

func passRate(rep *loadgen.Report) float64 {
	return rep.Host.EventsReceived / (rep.DurationSeconds + rep.Host.DrainSeconds)
}

func (r *runner) fullSpeed(ctx context.Context, scenario string) (throughputResult, error) {
	h, err := r.startHost(ctx, scenario)
	if err != nil {
		return throughputResult{}, err
	}
	defer h.stop()
	rep, err := r.loadgen(ctx, h, "--duration", r.o.duration.String())
	if err != nil {
		return throughputResult{}, fmt.Errorf("%s: %w", scenario, err)
	}
	return throughputResult{rate: passRate(rep), rep: rep}, nil
}

func (r *runner) throughput(ctx context.Context) ([]row, []string, error) {
	scenarios := []struct{ name, label string }{
		{"nostages", "1. no stages → file sink"},
		{"wasm", "2a. Wasm filter (C example `slow_calls`) → file sink"},
		{"wasm-trusted", "2b. the same Wasm filter, `trusted: true` (no deadline) → file sink"},
		{"native", "2c. same filter as built-in `threshold` stage → file sink"},
	}
	results := map[string][]throughputResult{}
	for round := 0; round < r.o.rounds; round++ {
		for _, s := range scenarios {
			fmt.Fprintf(os.Stderr, "benchrun: round %d/%d, %s, %s at full speed\n", round+1, r.o.rounds, s.name, r.o.duration)
			res, err := r.fullSpeed(ctx, s.name)
			if err != nil {
				return nil, nil, err
			}
			fmt.Fprintf(os.Stderr, "benchrun:   %s events/s\n", fmtInt(res.rate))
			results[s.name] = append(results[s.name], res)
		}
	}
	best := map[string]throughputResult{}
	var rows []row
	for _, s := range scenarios {
		rs := results[s.name]
		b := slices.MaxFunc(rs, func(a, b throughputResult) int { return cmpF(a.rate, b.rate) })
		best[s.name] = b
		var all []string
		for _, x := range rs {
			all = append(all, fmtInt(x.rate))
		}
		notes := fmt.Sprintf("rounds: %s ev/s", strings.Join(all, ", "))
		if d := dropped(b.rep); d > 0 && s.name == "nostages" {
			notes += fmt.Sprintf("; %s dropped", fmtInt(d))
		}
		if s.name != "nostages" {
			notes += fmt.Sprintf("; filter dropped %s of %s", fmtInt(dropped(b.rep)), fmtInt(b.rep.Host.EventsReceived))
		}
		if f := b.rep.Host.PluginFailures; f > 0 {
			notes += fmt.Sprintf("; **%s plugin batch failures** (their events passed unfiltered)", fmtInt(f))
		}
		rows = append(rows, row{
			scenario: s.label,
			rate:     fmtInt(b.rate),
			hostCPU:  fmt.Sprintf("%.2f", b.rep.Host.CPUSecondsPerMillion),
			loadCPU:  fmt.Sprintf("%.2f", b.rep.LoadgenCPUSecondsPerMillion),
			rss:      rss(b.rep.Host.RSSStartBytes, b.rep.Host.RSSEndBytes),
			notes:    notes,
		})
	}
	n, w, wt, t := best["nostages"].rate, best["wasm"].rate, best["wasm-trusted"].rate, best["native"].rate
	ratios := []string{
		fmt.Sprintf("Wasm filter / no stages: **%.2f** (the filter costs %.0f %% of throughput)", w/n, (1-w/n)*100),
		fmt.Sprintf("Wasm filter, trusted / no stages: **%.2f** (%.0f %%)", wt/n, (1-wt/n)*100),
		fmt.Sprintf("native threshold / no stages: **%.2f** (%.0f %%)", t/n, (1-t/n)*100),
		fmt.Sprintf("Wasm filter / native threshold: **%.2f**", w/t),
		"Best of the rounds per scenario; rounds interleave the scenarios so each sees the same machine state.",
	}
	// On a machine shared with other work, throughput follows the other
	// work; CPU per event is steadier (it is the cost the throughput ratio
	// would show on a machine of our own).
	cpu := func(name string) float64 { return best[name].rep.Host.CPUSecondsPerMillion }
	c0 := cpu("nostages")
	for _, x := range []struct{ name, label string }{
		{"wasm", "Wasm filter"}, {"wasm-trusted", "Wasm filter, trusted"}, {"native", "native threshold"},
	} {
		ratios = append(ratios, fmt.Sprintf("host CPU per event, %s / no stages: **%.2f** (%+.0f %%)", x.label, cpu(x.name)/c0, (cpu(x.name)/c0-1)*100))
	}
	return rows, ratios, nil
}

func failures(h *loadgen.HostReport) string {
	if h.PluginFailures == 0 {
		return ""
	}
	return fmt.Sprintf("; **%s plugin batch failures**", fmtInt(h.PluginFailures))
}

func dropped(rep *loadgen.Report) float64 {
	t := 0.0
	for _, v := range rep.Host.EventsDropped {
		t += v
	}
	return t
}

func (r *runner) latency(ctx context.Context) (row, error) {
	fmt.Fprintf(os.Stderr, "benchrun: latency, wasm, %s at %s events/s\n", r.o.latencyDuration, fmtInt(r.o.latencyRate))
	h, err := r.startHost(ctx, "wasm")
	if err != nil {
		return row{}, err
	}
	defer h.stop()
	rep, err := r.loadgen(ctx, h, "--duration", r.o.latencyDuration.String(), "--rate", fmt.Sprint(r.o.latencyRate), "--latency")
	if err != nil {
		return row{}, fmt.Errorf("latency: %w", err)
	}
	hr := rep.Host
	return row{
		scenario: fmt.Sprintf("3. latency at %s events/s, Wasm filter → file sink", fmtInt(r.o.latencyRate)),
		rate:     fmtInt(passRate(rep)),
		hostCPU:  fmt.Sprintf("%.2f", hr.CPUSecondsPerMillion),
		loadCPU:  fmt.Sprintf("%.2f", rep.LoadgenCPUSecondsPerMillion),
		latency:  fmt.Sprintf("%.2f / %.2f / ≤ %.2f ms", hr.LatencyP50Ms, hr.LatencyP99Ms, hr.LatencyMaxBucketMs),
		rss:      rss(hr.RSSStartBytes, hr.RSSEndBytes),
		notes:    fmt.Sprintf("%s events timed; send→end of sink write%s", fmtInt(hr.LatencyObservations), failures(hr)),
	}, nil
}

// pyResult is what python/bench/load_worker.py prints.
type pyResult struct {
	Emitted     float64            `json:"emitted"`
	Sent        float64            `json:"sent"`
	Dropped     map[string]float64 `json:"dropped"`
	WallSeconds float64            `json:"wall_seconds"`
	CPUSeconds  float64            `json:"cpu_seconds"`
}

func (r *runner) pythonWorkers(ctx context.Context) (row, error) {
	label := fmt.Sprintf("4. Python workers (%d processes, `python/` library) at full speed → no stages → file sink", r.o.pythonWorkers)
	if r.o.python == "" {
		return row{scenario: label, notes: "skipped (-python \"\")"}, nil
	}
	if _, err := os.Stat(r.o.python); err != nil {
		return row{}, fmt.Errorf("python scenario: %w (make python-venv)", err)
	}
	fmt.Fprintf(os.Stderr, "benchrun: %d Python workers, %s\n", r.o.pythonWorkers, r.o.pythonDuration)
	h, err := r.startHost(ctx, "nostages")
	if err != nil {
		return row{}, err
	}
	defer h.stop()
	before, err := loadgen.ReadHost(ctx, h.admin, "")
	if err != nil {
		return row{}, err
	}
	script, err := filepath.Abs("python/bench/load_worker.py")
	if err != nil {
		return row{}, err
	}
	results := make([]pyResult, r.o.pythonWorkers)
	errs := make([]error, r.o.pythonWorkers)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, r.o.python, script, "--endpoint", h.ingest,
				"--worker-id", fmt.Sprintf("bench-py-%d", i), "--duration", fmt.Sprint(r.o.pythonDuration.Seconds()))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("python worker %d: %w\n%s", i, err, stderr.String())
				return
			}
			errs[i] = json.Unmarshal(lastLine(stdout.Bytes()), &results[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return row{}, err
	}
	var cpu, perProc []float64
	total := 0.0
	for _, x := range results {
		cpu = append(cpu, x.CPUSeconds)
		perProc = append(perProc, x.Emitted/x.WallSeconds)
		total += x.Emitted
	}
	// Wait for the host to have received what the workers sent.
	var after loadgen.HostSnapshot
	for deadline := time.Now().Add(10 * time.Second); ; {
		if after, err = loadgen.ReadHost(ctx, h.admin, ""); err != nil {
			return row{}, err
		}
		if after.EventsReceived()-before.EventsReceived() >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	hr := loadgen.CompareHost(before, after, uint64(total))
	sumCPU := 0.0
	for _, c := range cpu {
		sumCPU += c
	}
	var rates []string
	for _, p := range perProc {
		rates = append(rates, fmtInt(p))
	}
	return row{
		scenario: label,
		rate:     fmt.Sprintf("%s per process (%s in all)", fmtInt(mean(perProc)), fmtInt(sum(perProc))),
		hostCPU:  fmt.Sprintf("%.2f", hr.CPUSecondsPerMillion),
		loadCPU:  fmt.Sprintf("%.2f (worker)", sumCPU/total*1e6),
		rss:      rss(hr.RSSStartBytes, hr.RSSEndBytes),
		notes: fmt.Sprintf("per process: %s ev/s; host received %s of %s emitted",
			strings.Join(rates, ", "), fmtInt(hr.EventsReceived), fmtInt(total)),
	}, nil
}

func (r *runner) soakRun(ctx context.Context) (row, error) {
	fmt.Fprintf(os.Stderr, "benchrun: soak, no stages, %s at %s events/s\n", r.o.soak, fmtInt(r.o.soakRate))
	h, err := r.startHost(ctx, "nostages")
	if err != nil {
		return row{}, err
	}
	defer h.stop()
	// Sample the host's RSS while the load runs.
	type sample struct {
		at  time.Duration
		rss float64
	}
	var samples []sample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(sampled)
		t := time.NewTicker(max(r.o.soak/60, time.Second))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if s, err := loadgen.ReadHost(ctx, h.admin, ""); err == nil {
					samples = append(samples, sample{time.Since(start), s.RSSBytes()})
				}
			}
		}
	}()
	rep, err := r.loadgen(ctx, h, "--duration", r.o.soak.String(), "--rate", fmt.Sprint(r.o.soakRate))
	close(stop)
	<-sampled
	if err != nil {
		return row{}, fmt.Errorf("soak: %w", err)
	}
	hr := rep.Host
	// Warm: the first sample after a tenth of the run (queues and pools
	// have grown to their working size by then).
	warm, peak := hr.RSSStartBytes, 0.0
	for _, s := range samples {
		if s.at >= r.o.soak/10 && warm == hr.RSSStartBytes {
			warm = s.rss
		}
		peak = math.Max(peak, s.rss)
	}
	return row{
		scenario: fmt.Sprintf("5. soak %s at %s events/s, no stages → file sink", r.o.soak, fmtInt(r.o.soakRate)),
		rate:     fmtInt(passRate(rep)),
		hostCPU:  fmt.Sprintf("%.2f", hr.CPUSecondsPerMillion),
		loadCPU:  fmt.Sprintf("%.2f", rep.LoadgenCPUSecondsPerMillion),
		rss:      rss(hr.RSSStartBytes, hr.RSSEndBytes),
		notes: fmt.Sprintf("RSS idle %s, after %s %s, peak %s, end %s (%d samples)",
			mib(hr.RSSStartBytes), (r.o.soak / 10).String(), mib(warm), mib(peak), mib(hr.RSSEndBytes), len(samples)),
	}, nil
}

func printTable(w io.Writer, o options, rows []row, ratios []string, started time.Time, load0 string) {
	model := cpuModel()
	fmt.Fprintf(w, "Machine: %d cores (nproc), %s, %s %s/%s. Date: %s. Load average before/after: %s / %s.\n\n",
		runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH,
		started.UTC().Format("2006-01-02 15:04 UTC"), load0, loadAverage())
	target := "make bench"
	if o.only == "soak" {
		target = "make soak"
	}
	fmt.Fprintf(w, "Command: `%s` (benchrun -only %s -duration %s -rounds %d -workers %d -batch %d -latency-rate %s -soak %s -soak-rate %s -python-workers %d); loadgen and host on the same machine.\n\n",
		target, o.only, o.duration, o.rounds, o.workers, o.batch, fmt.Sprint(o.latencyRate), o.soak, fmt.Sprint(o.soakRate), o.pythonWorkers)
	fmt.Fprintln(w, "| scenario | events/s through the pipeline | host CPU µs/event | load CPU µs/event | latency p50 / p99 / max | host RSS start → end | notes |")
	fmt.Fprintln(w, "|---|--:|--:|--:|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.scenario, r.rate, r.hostCPU, r.loadCPU, dash(r.latency), dash(r.rss), r.notes)
	}
	if len(ratios) > 0 {
		fmt.Fprintln(w)
		for _, r := range ratios {
			fmt.Fprintf(w, "- %s\n", r)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func rss(a, b float64) string { return mib(a) + " → " + mib(b) }

func mib(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }

func fmtInt(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	s := fmt.Sprintf("%d", int64(math.Round(v)))
	var b strings.Builder
	if rest, neg := strings.CutPrefix(s, "-"); neg {
		b.WriteByte('-')
		s = rest
	}
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

func mean(xs []float64) float64 { return sum(xs) / float64(len(xs)) }

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
