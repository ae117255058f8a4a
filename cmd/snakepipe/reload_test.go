package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/control"
	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// These tests reload a running service's config the way `run` does (the
// same loader, from a real file) while real workers stream over real gRPC.

// reloadConfig is a config whose default pipeline writes every event to
// dir/events.jsonl through a metadata stage setting gen=<gen>. extraSink
// adds file/extra (dir/extra.jsonl) to the pipeline; catalog is appended
// as the catalog section.
func reloadConfig(dir, gen string, extraSink bool, catalog string) string {
	sinks := "[file/all]"
	extra := ""
	if extraSink {
		sinks = "[file/all, file/extra]"
		extra = fmt.Sprintf("  file/extra:\n    path: %s\n", filepath.Join(dir, "extra.jsonl"))
	}
	return fmt.Sprintf(`
log: {level: error}
ingest:
  listen: 127.0.0.1:0
admin:
  listen: ""
stages:
  metadata/gen:
    set: {gen: %s}
sinks:
  file/all:
    path: %s
    flush_interval: 0
    fsync: never
    queue: {full_policy: block}
%spipelines:
  default:
    stages: [metadata/gen]
    sinks: %s
    workers: 2
%s`, gen, filepath.Join(dir, "events.jsonl"), extra, sinks, catalog)
}

// startReloadService writes reloadConfig(dir, "v1", extraSink, "") to
// dir/snakepipe.yaml in a new temporary dir and starts a service on it.
func startReloadService(t *testing.T, extraSink bool) (svc *Service, dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "snakepipe.yaml")
	writeFile(t, path, reloadConfig(dir, "v1", extraSink, ""))
	return startServiceFile(t, path), dir, path
}

// shutdownEvents shuts svc down and returns the worker events in
// dir/events.jsonl (the file sink of reloadConfig).
func shutdownEvents(t *testing.T, svc *Service, dir string) []pipeline.Event {
	t.Helper()
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	events, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	return events
}

// userEventCatalog declares one user event, myapp.job.done.
const userEventCatalog = `catalog:
  events:
    - name: myapp.job.done
      measurements:
        items: {type: int, unit: count}
`

// loadFile is run's loader for the config file path.
func loadFile(path string) func() (*Config, error) {
	return func() (*Config, error) {
		cfg, err := LoadConfig(LoadOptions{File: path, Factories: builtinFactories(io.Discard, nil)})
		if err == nil {
			err = checkConfig(cfg)
		}
		return cfg, err
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	// Write then rename, as editors and config management do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startServiceFile starts the service from the config file at path.
func startServiceFile(t *testing.T, path string) *Service {
	t.Helper()
	return startLoaded(t, loadFile(path))
}

// streamingWorker sends numbered python.call.stop events (timestamp = the
// number) in batches until stopped, and watches its stream for anything
// but policy updates.
type streamingWorker struct {
	w        *testWorker
	sent     atomic.Int64 // events sent so far
	stop     chan struct{}
	done     chan error // the send loop's end
	recvDone chan error // the receive loop's end: io.EOF after the host ends the stream
	goAways  atomic.Int64
}

func startStreaming(t *testing.T, addr string) *streamingWorker {
	sw := &streamingWorker{w: dialWorker(t, addr, "streamer"), stop: make(chan struct{}), done: make(chan error, 1), recvDone: make(chan error, 1)}
	go func() {
		for {
			m, err := sw.w.stream.Recv()
			if err != nil {
				sw.recvDone <- err
				return
			}
			if m.GetGoAway() != nil {
				sw.goAways.Add(1)
			}
		}
	}()
	go func() {
		const size = 10
		var next int64
		for {
			select {
			case <-sw.stop:
				sw.done <- sw.w.stream.CloseSend()
				return
			default:
			}
			evs := make([]*pb.Event, size)
			for i := range evs {
				evs[i] = callStop(next+int64(i), "", 1, "c")
			}
			if err := sw.w.stream.Send(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: &pb.EventBatch{Events: evs}}}); err != nil {
				sw.done <- fmt.Errorf("send after %d events: %w", next, err)
				return
			}
			next += size
			sw.sent.Store(next)
		}
	}()
	return sw
}

// waitSent waits until at least n more events than now have been sent.
func (sw *streamingWorker) waitSent(t *testing.T, n int64) {
	t.Helper()
	target := sw.sent.Load() + n
	for sw.sent.Load() < target {
		select {
		case err := <-sw.done:
			t.Fatalf("the worker stopped sending: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
}

// finish stops sending, half-closes and waits for the host to end the
// stream; it returns how many events were sent.
func (sw *streamingWorker) finish(t *testing.T) int64 {
	t.Helper()
	close(sw.stop)
	if err := <-sw.done; err != nil {
		t.Fatalf("stream: %v", err)
	}
	if err := <-sw.recvDone; !errors.Is(err, io.EOF) {
		t.Errorf("the host ended the stream with %v, want a clean end (io.EOF)", err)
	}
	_ = sw.w.conn.Close()
	return sw.sent.Load()
}

// waitWorkerEvents waits until the file holds at least n whole lines of
// worker events: sending is asynchronous, and the next step of a test must
// not overtake what was sent before it.
func waitWorkerEvents(t *testing.T, path string, n int) {
	t.Helper()
	for {
		data, _ := os.ReadFile(path)
		got := 0
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			for _, line := range bytes.Split(data[:i], []byte("\n")) {
				if ev, err := pipeline.ParseEventJSON(line); err == nil && ev.Origin != nil {
					got++
				}
			}
		}
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func reloadCount(t *testing.T, svc *Service, result string) float64 {
	t.Helper()
	return metric(t, svc.Metrics(), "snakepipe_config_reloads_total", "result", result)
}

// TestReloadUnderTrafficLosesNothing: a worker streams numbered events
// without pause while the config is reloaded several times — a stage
// changed, a sink added, the stage changed again, nothing changed. Every
// event sent is in the file sink exactly once, the stream is never
// dropped, and events after each reload went through the new stage.
func TestReloadUnderTrafficLosesNothing(t *testing.T) {
	svc, dir, path := startReloadService(t, false)
	sw := startStreaming(t, svc.IngestAddr())

	steps := []struct {
		gen   string
		extra bool
	}{{"v2", false}, {"v3", true}, {"v4", true}, {"v4", true}}
	// The old graph has drained when Reload returns, so what the stage
	// passes on afterwards went through the new one.
	waitProcessed := func(n float64) {
		t.Helper()
		target := metric(t, svc.Metrics(), "snakepipe_pipeline_stage_events_out_total", "pipeline", "default", "stage", "metadata/gen") + n
		for metric(t, svc.Metrics(), "snakepipe_pipeline_stage_events_out_total", "pipeline", "default", "stage", "metadata/gen") < target {
			select {
			case err := <-sw.done:
				t.Fatalf("the worker stopped sending: %v", err)
			case <-time.After(time.Millisecond):
			}
		}
	}
	sw.waitSent(t, 500)
	for i, st := range steps {
		waitProcessed(300)
		writeFile(t, path, reloadConfig(dir, st.gen, st.extra, ""))
		before := svc.graph
		if err := svc.Reload(context.Background(), loadFile(path)); err != nil {
			t.Fatalf("reload to %s: %v", st.gen, err)
		}
		if unchanged := i > 0 && st == steps[i-1]; unchanged != (svc.graph == before) {
			t.Errorf("reload %d (%s): graph rebuilt = %v, want %v", i, st.gen, svc.graph != before, !unchanged)
		}
	}
	waitProcessed(300)
	sent := sw.finish(t)
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	all := readEvents(t, filepath.Join(dir, "events.jsonl"))
	events, host := splitHostEvents(all)
	if got := names(host); !slices.Equal(got, []string{"snakepipe.worker.connected", "snakepipe.worker.disconnected"}) {
		t.Errorf("host events %v: want one connect and one disconnect (the stream was never dropped)", got)
	}
	if n := sw.goAways.Load(); n != 0 {
		t.Errorf("the worker got %d GoAway frames during reloads", n)
	}
	var ts []int64
	gens := map[string]int{}
	for _, e := range events {
		ts = append(ts, e.TimestampNs)
		g, _ := e.Meta("gen")
		gens[g]++
	}
	slices.Sort(ts)
	want := make([]int64, sent)
	for i := range want {
		want[i] = int64(i)
	}
	if !slices.Equal(ts, want) {
		t.Fatalf("file has %d worker events, want each of the %d sent exactly once (first difference at %d)",
			len(ts), sent, firstDiff(ts, want))
	}
	for _, g := range []string{"v1", "v2", "v3", "v4"} {
		if gens[g] == 0 {
			t.Errorf("no event went through the stage of config %s (gens: %v)", g, gens)
		}
	}
	// The sink added by the reload got the events sent after it.
	extra, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "extra.jsonl")))
	if len(extra) == 0 {
		t.Error("the sink added by a reload got no events")
	}
	for _, e := range extra {
		if g, _ := e.Meta("gen"); g != "v3" && g != "v4" {
			t.Errorf("extra sink has an event from config %s, before it was added", g)
			break
		}
	}
	if v := reloadCount(t, svc, "ok"); v != float64(len(steps)) {
		t.Errorf("reloads{ok} = %v, want %d", v, len(steps))
	}
	for _, reason := range []string{"queue_full", "shutdown", "canceled"} {
		if v, ok := svc.Metrics().Value("snakepipe_pipeline_events_dropped_total", pipeline.L("pipeline", "default", "reason", reason)...); ok && v != 0 {
			t.Errorf("dropped{%s} = %v", reason, v)
		}
	}
}

func firstDiff(a, b []int64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestReloadInvalidConfigRefused: a config with problems is refused with
// each problem named, counted as invalid, and the running config keeps
// delivering.
func TestReloadInvalidConfigRefused(t *testing.T) {
	svc, dir, path := startReloadService(t, false)
	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(callStop(1, "", 1, "a"))

	bad := strings.Replace(reloadConfig(dir, "v2", false, ""), "sinks: [file/all]", "sinks: [file/nope]", 1) +
		"policy: {default_sample_rate: 2}\n"
	writeFile(t, path, bad)
	err := svc.Reload(context.Background(), loadFile(path))
	if !errors.Is(err, ErrConfigInvalid) {
		t.Fatalf("reload of an invalid config: %v, want ErrConfigInvalid", err)
	}
	for _, want := range []string{`unknown sink "file/nope"`, "policy.default_sample_rate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	w.batch(callStop(2, "", 1, "b"))
	w.finish()
	events := shutdownEvents(t, svc, dir)
	if len(events) != 2 {
		t.Fatalf("file has %d events, want both (before and after the refused reload)", len(events))
	}
	for _, e := range events {
		if g, _ := e.Meta("gen"); g != "v1" {
			t.Errorf("event %d went through config %q, want the running v1", e.TimestampNs, g)
		}
	}
	if v := reloadCount(t, svc, "invalid"); v != 1 {
		t.Errorf("reloads{invalid} = %v, want 1", v)
	}
	if v := reloadCount(t, svc, "ok"); v != 0 {
		t.Errorf("reloads{ok} = %v, want 0", v)
	}
	if v := metric(t, svc.Metrics(), "snakepipe_config_last_reload_successful"); v != 0 {
		t.Errorf("last_reload_successful = %v after a refused reload, want 0", v)
	}
}

// TestReloadFailedToApply: a valid config whose new sink cannot start (its
// directory would be inside a regular file) is counted as failed and changes nothing.
func TestReloadFailedToApply(t *testing.T) {
	svc, dir, path := startReloadService(t, false)
	defer func() { _ = svc.Shutdown(context.Background()) }()
	cfg := strings.Replace(reloadConfig(dir, "v2", true, ""), filepath.Join(dir, "extra.jsonl"), filepath.Join(path, "extra.jsonl"), 1)
	writeFile(t, path, cfg)
	if err := svc.Reload(context.Background(), loadFile(path)); !errors.Is(err, ErrReloadFailed) {
		t.Fatalf("reload with a sink that cannot open: %v, want ErrReloadFailed", err)
	}
	if v := reloadCount(t, svc, "failed"); v != 1 {
		t.Errorf("reloads{failed} = %v, want 1", v)
	}
	if v := metric(t, svc.Metrics(), "snakepipe_config_last_reload_successful"); v != 0 {
		t.Errorf("last_reload_successful = %v after a failed reload, want 0", v)
	}
	if v := metric(t, svc.Metrics(), "snakepipe_config_last_reload_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last success timestamp = %v, want the start time", v)
	}
	if got := svc.sinks[pipeline.MustComponentID("file/all")].shared.Refs(); got != 1 {
		t.Errorf("file/all has %d handles after the failed reload, want 1 (the running graph's)", got)
	}
	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(callStop(1, "", 1, "a"))
	w.finish()
	events := shutdownEvents(t, svc, dir)
	if len(events) != 1 {
		t.Fatalf("file has %d events, want 1", len(events))
	}
	if g, _ := events[0].Meta("gen"); g != "v1" {
		t.Errorf("event went through config %q, want the running v1", g)
	}
}

// TestReloadKeepsUnchangedSink: a reload that changes a stage keeps the
// file sink open (one instance, appending) instead of opening the file a
// second time; a sink whose settings change is replaced.
func TestReloadKeepsUnchangedSink(t *testing.T) {
	svc, dir, path := startReloadService(t, true)
	defer func() { _ = svc.Shutdown(context.Background()) }()
	all, extra := pipeline.MustComponentID("file/all"), pipeline.MustComponentID("file/extra")
	before := svc.sinks[all].shared
	beforeExtra := svc.sinks[extra].shared

	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(callStop(1, "", 1, "a"))
	cfg := strings.Replace(reloadConfig(dir, "v2", true, ""),
		fmt.Sprintf("path: %s\n", filepath.Join(dir, "extra.jsonl")),
		fmt.Sprintf("path: %s\n    flush_interval: 50ms\n", filepath.Join(dir, "extra.jsonl")), 1)
	writeFile(t, path, cfg)
	if err := svc.Reload(context.Background(), loadFile(path)); err != nil {
		t.Fatal(err)
	}
	if svc.sinks[all].shared != before {
		t.Error("the unchanged file sink was created again")
	}
	if got := before.Refs(); got != 1 {
		t.Errorf("unchanged sink has %d handles after the old graph shut down, want 1", got)
	}
	if svc.sinks[extra].shared == beforeExtra {
		t.Error("the sink whose flush_interval changed was kept")
	}
	if _, ok := beforeExtra.Acquire(); ok {
		t.Error("the replaced sink is still open")
	}
	w.batch(callStop(2, "", 1, "b"))
	w.finish()
	events := shutdownEvents(t, svc, dir)
	if len(events) != 2 || events[0].TimestampNs+events[1].TimestampNs != 3 {
		t.Errorf("file/all has %v, want events 1 and 2 appended to one file", events)
	}
	if v := metric(t, svc.Metrics(), "snakepipe_sink_file_torn_tails_total", "sink", "file/all"); v != 0 {
		t.Errorf("torn tails = %v: the file was reopened and repaired", v)
	}
}

// TestReloadAddsCatalogEvent: a user event is rejected until a reload adds
// it to the catalog, then accepted on the same stream; runtime policy set
// through the admin layer survives the reload.
func TestReloadAddsCatalogEvent(t *testing.T) {
	svc, dir, path := startReloadService(t, false)
	rate := 0.25
	if _, err := svc.store.Set(control.All, control.Patch{DefaultSampleRate: &rate}); err != nil {
		t.Fatal(err)
	}
	job := func(ts int64) *pb.Event {
		return &pb.Event{Name: "myapp.job.done", TimestampNs: ts, Measurements: []*pb.MeasurementEntry{intM("items", 3)}}
	}
	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(job(1))
	// Sending is asynchronous: wait until the host has rejected it.
	for metric(t, svc.Metrics(), "snakepipe_ingest_events_rejected_total", "reason", "unknown_event") < 1 {
		time.Sleep(time.Millisecond)
	}
	graphBefore := svc.graph
	writeFile(t, path, reloadConfig(dir, "v1", false, userEventCatalog)+"policy: {deny: [python.gc.*]}\n")
	if err := svc.Reload(context.Background(), loadFile(path)); err != nil {
		t.Fatal(err)
	}
	if svc.graph != graphBefore {
		t.Error("a reload that changed only the catalog and policy rebuilt the pipeline graph")
	}
	w.batch(job(2))
	var pushed *pb.Policy
	for _, m := range w.finish() {
		if p := m.GetPolicy(); p != nil {
			pushed = p
		}
	}
	if pushed == nil || !slices.Equal(pushed.GetDeny(), []string{"python.gc.*"}) || pushed.GetDefaultSampleRate() != 0.25 {
		t.Errorf("last Policy frame on the live stream = %v, want deny [python.gc.*] from the new config and the runtime rate 0.25", pushed)
	}
	events := shutdownEvents(t, svc, dir)
	var ts []int64
	for _, e := range events {
		ts = append(ts, e.TimestampNs)
	}
	if !slices.Equal(ts, []int64{2}) {
		t.Errorf("myapp.job.done accepted at %v, want only the one sent after the reload (2)", ts)
	}
	if v := metric(t, svc.Metrics(), "snakepipe_ingest_events_rejected_total", "reason", "unknown_event"); v != 1 {
		t.Errorf("rejected{unknown_event} = %v, want 1 (the event before the reload)", v)
	}
	eff := svc.store.Effective(control.All)
	if eff.DefaultSampleRate != 0.25 {
		t.Errorf("default_sample_rate after reload = %v, want 0.25 (the runtime change survives)", eff.DefaultSampleRate)
	}
	if !slices.Equal(eff.Deny, []string{"python.gc.*"}) {
		t.Errorf("deny after reload = %v, want the new config's [python.gc.*]", eff.Deny)
	}
}

// TestRunReloadsOnHangupAndFileChange: `snakepipe run` reloads on SIGHUP
// (injected) and when the config file changes, refuses an invalid file,
// and keeps serving the same worker stream throughout.
func TestRunReloadsOnHangupAndFileChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snakepipe.yaml")
	// Log at info (the test reads the log), admin API on a free port.
	config := func(gen, catalog string) string {
		return strings.NewReplacer("log: {level: error}", "log: {level: info}", "admin:\n  listen: \"\"", "admin:\n  listen: 127.0.0.1:0").
			Replace(reloadConfig(dir, gen, false, catalog))
	}
	writeFile(t, path, config("v1", ""))
	var stderr lockedBuffer
	sigs, hup := make(chan os.Signal, 1), make(chan os.Signal, 1)
	c := &cli{
		stdout:     io.Discard,
		stderr:     &stderr,
		signals:    func() (<-chan os.Signal, func()) { return sigs, func() {} },
		hangup:     func() (<-chan os.Signal, func()) { return hup, func() {} },
		configPoll: 20 * time.Millisecond,
		exit:       func(code int) { t.Errorf("exit(%d) called", code) },
	}
	code := make(chan int, 1)
	go func() { code <- realMain(context.Background(), c, []string{"run", "-c", path}) }()
	waitLog := func(what string, count int) {
		t.Helper()
		for strings.Count(stderr.String(), what) < count {
			select {
			case c := <-code:
				t.Fatalf("run exited early with %d:\n%s", c, stderr.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitLog("snakepipe started", 1)
	addr := regexp.MustCompile(`ingest=(127\.0\.0\.1:\d+)`).FindStringSubmatch(stderr.String())
	if addr == nil {
		t.Fatalf("no ingest address in the log:\n%s", stderr.String())
	}
	job := &pb.Event{Name: "myapp.job.done", TimestampNs: 1, Measurements: []*pb.MeasurementEntry{intM("items", 3)}}
	w := dialWorker(t, addr[1], "worker-1")
	w.batch(job, callStop(1, "", 1, "a"))
	events := filepath.Join(dir, "events.jsonl")
	waitWorkerEvents(t, events, 1)

	// SIGHUP: the file was changed without a poll noticing (same size and
	// content checks aside, the signal must reload on its own).
	writeFile(t, path, config("v2", userEventCatalog))
	hup <- syscall.SIGHUP
	waitLog("config reloaded", 1)
	job2 := &pb.Event{Name: "myapp.job.done", TimestampNs: 2, Measurements: []*pb.MeasurementEntry{intM("items", 3)}}
	w.batch(job2, callStop(2, "", 1, "b"))
	waitWorkerEvents(t, events, 3)

	// Touching the file does not reload; a change of content alone does.
	// The new listen address needs a restart: logged, and the stream stays.
	now := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, strings.Replace(config("v3", userEventCatalog), "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1))
	waitLog("config reloaded", 2)
	w.batch(callStop(3, "", 1, "c"))
	waitWorkerEvents(t, events, 4)

	// The admin API reloads with run's own loader: the same file again.
	admin := regexp.MustCompile(`admin=(127\.0\.0\.1:\d+)`).FindStringSubmatch(stderr.String())
	if admin == nil {
		t.Fatalf("no admin address in the log:\n%s", stderr.String())
	}
	if code, out, errOut := runCLI(t, nil, "ctl", "--admin", admin[1], "config", "reload"); code != 0 ||
		out != "config reloaded: nothing changed\nneeds a restart (the running value stays): ingest.listen\n" {
		t.Errorf("ctl config reload: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// An invalid file is refused; the running config stays.
	writeFile(t, path, "pipelines: {default: {sinks: []}}\n")
	waitLog("config reload refused", 1)
	w.batch(callStop(4, "", 1, "d"))
	w.finish()

	sigs <- syscall.SIGTERM
	if got := <-code; got != 0 {
		t.Fatalf("run exited with %d, want 0:\n%s", got, stderr.String())
	}
	out := stderr.String()
	if n := strings.Count(out, "reloading config"); n != 4 {
		t.Errorf("%d reloads, want 4 (SIGHUP, file change, ctl, invalid file; not the touch):\n%s", n, out)
	}
	for _, want := range []string{`reason=SIGHUP`, `reason="config file changed"`, `reason="admin API"`, "ingest.listen changed but needs a restart"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	got, host := splitHostEvents(readEvents(t, events))
	if len(host) != 2 {
		t.Errorf("host events %v, want one connect and one disconnect", names(host))
	}
	var seen []string
	for _, e := range got {
		g, _ := e.Meta("gen")
		seen = append(seen, fmt.Sprintf("%s@%d/%s", e.Name, e.TimestampNs, g))
	}
	slices.Sort(seen) // two pipeline workers may swap batches within one config
	want := []string{
		"python.call.stop@1/v1",
		"myapp.job.done@2/v2", "python.call.stop@2/v2",
		"python.call.stop@3/v3",
		"python.call.stop@4/v3",
	}
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Errorf("events:\n got  %v\n want %v", seen, want)
	}
}

// TestReloadRestartOnlySettings: changing a listener is logged as needing
// a restart and otherwise ignored; the rest of the config still applies.
func TestReloadRestartOnlySettings(t *testing.T) {
	cur := DefaultConfig()
	next := DefaultConfig()
	next.Ingest.Listen = "0.0.0.0:9999"
	next.Ingest.MaxMessageBytes = 12345
	next.Log.Format = "json"
	next.Log.Level = "debug"
	got := restartOnlyChanges(&cur, &next)
	want := []string{"ingest.listen", "ingest.max_message_bytes", "log.format"}
	if !slices.Equal(got, want) {
		t.Errorf("restart-only changes = %v, want %v", got, want)
	}
	kept := keepRestartOnly(&cur, &next)
	if kept.Ingest.Listen != cur.Ingest.Listen || kept.Log.Format != cur.Log.Format || kept.Log.Level != "debug" {
		t.Errorf("kept config: listen %q format %q level %q", kept.Ingest.Listen, kept.Log.Format, kept.Log.Level)
	}
}

// TestReloadChangesWasmStage: a reload that changes a wasm stage's config
// loads the plugin anew for the new graph and retires the old instance;
// the same worker stream's events go through the new settings.
func TestReloadChangesWasmStage(t *testing.T) {
	wasm, err := filepath.Abs("../../plugins/testdata/filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "snakepipe.yaml")
	withFilter := func(min string) string {
		return strings.Replace(fileSinkConfig(dir, ""), "    sinks: [file/all]", "    stages: [wasm/slow]\n    sinks: [file/all]", 1) +
			fmt.Sprintf("stages:\n  wasm/slow:\n    path: %s\n    config: {min_duration_ns: %q}\nplugins: {cache: false}\n", wasm, min)
	}
	writeFile(t, path, withFilter("1000"))
	svc := startServiceFile(t, path)
	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(callStop(1, "", 500, "a"), callStop(2, "", 1500, "b"))
	// The first batch must be in the old graph before the reload, or the
	// new threshold would judge it: wait until the wasm stage has it.
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, svc.Metrics(), "snakepipe_pipeline_stage_events_in_total", "pipeline", "default", "stage", "wasm/slow") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the first batch never reached the wasm stage")
		}
		time.Sleep(time.Millisecond)
	}
	writeFile(t, path, withFilter("2000"))
	if err := svc.Reload(context.Background(), loadFile(path)); err != nil {
		t.Fatal(err)
	}
	if vs := svc.plugins.Plugins(); len(vs) != 1 || vs[0].Plugin != "wasm/slow" {
		t.Errorf("plugins after reload = %+v, want only the new wasm/slow", vs)
	}
	w.batch(callStop(3, "", 1500, "c"), callStop(4, "", 2500, "d"))
	w.finish()
	got := shutdownEvents(t, svc, dir)
	var ts []int64
	for _, e := range got {
		ts = append(ts, e.TimestampNs)
	}
	if want := []int64{2, 4}; !slices.Equal(ts, want) {
		t.Errorf("kept timestamps %v, want %v (threshold 1000, then 2000 after the reload)", ts, want)
	}
}

// TestReloadLogLevel: log.level applies live.
func TestReloadLogLevel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snakepipe.yaml")
	writeFile(t, path, reloadConfig(dir, "v1", false, ""))
	cfg, err := loadFile(path)()
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	log := newLogger(cfg.Log, &logs)
	svc, err := NewService(context.Background(), cfg, ServiceOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Shutdown(context.Background()) }()
	if log.IsDebug() {
		t.Fatal("debug logging on at level error")
	}
	writeFile(t, path, strings.Replace(reloadConfig(dir, "v1", false, ""), "log: {level: error}", "log: {level: debug}", 1))
	if err := svc.Reload(context.Background(), loadFile(path)); err != nil {
		t.Fatal(err)
	}
	if !log.IsDebug() || !svc.log.Named("pipeline").IsDebug() {
		t.Error("log.level debug did not apply on reload")
	}
	if !strings.Contains(logs.String(), "changed=log.level") {
		t.Errorf("reload log does not say what changed:\n%s", logs.String())
	}
}

// TestBinaryHangup: the real binary reloads on a real SIGHUP (instead of
// dying of it): a catalog event added to the file is accepted afterwards.
func TestBinaryHangup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := snakepipeBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "snakepipe.yaml")
	writeFile(t, path, reloadConfig(dir, "v1", false, ""))
	run := exec.Command(bin, "run", "-c", path, "--log-format", "json", "--log-level", "info")
	stderr, err := run.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = run.Process.Kill() }()
	messages := make(chan map[string]any, 100)
	go func() {
		defer close(messages)
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			var entry map[string]any
			if json.Unmarshal(lines.Bytes(), &entry) == nil {
				messages <- entry
			}
		}
	}()
	await := func(msg string) map[string]any {
		t.Helper()
		for entry := range messages {
			if entry["@message"] == msg {
				return entry
			}
		}
		t.Fatalf("snakepipe exited before logging %q", msg)
		return nil
	}
	addr, _ := await("snakepipe started")["ingest"].(string)

	w := dialWorker(t, addr, "bin-worker")
	writeFile(t, path, reloadConfig(dir, "v2", false, userEventCatalog))
	if err := run.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	await("config reloaded")
	w.batch(&pb.Event{Name: "myapp.job.done", TimestampNs: 7, Measurements: []*pb.MeasurementEntry{intM("items", 3)}})
	w.finish()
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range messages {
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("snakepipe run exited with %v, want 0", err)
	}
	got, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "events.jsonl")))
	if len(got) != 1 || got[0].Name != "myapp.job.done" {
		t.Fatalf("events after SIGHUP = %v, want the newly cataloged myapp.job.done", names(got))
	}
	if g, _ := got[0].Meta("gen"); g != "v2" {
		t.Errorf("event went through config %q, want v2", g)
	}
}

// TestReloadSameConfigChangesNothing: loading the same file twice gives
// configs that compare equal for every built-in stage and sink type (the
// examples and the full test config use them all), so a reload of an
// unchanged file leaves the running graph alone. (A type whose config
// could not be compared would rebuild the graph on every reload.)
func TestReloadSameConfigChangesNothing(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "examples/config/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rl := filepath.Join(t.TempDir(), "ratelimit.yaml")
	writeFile(t, rl, `
stages:
  ratelimit/calls:
    rules: [{pattern: "python.call.*", rate: 10, burst: 20}]
sinks:
  stderr: {}
pipelines:
  default:
    stages: [ratelimit/calls]
    sinks: [stderr]
`)
	files = append(files, "testdata/full.yaml", "testdata/unused.yaml", rl)
	for _, f := range files {
		load := func() *Config {
			cfg, err := LoadConfig(LoadOptions{File: f, Factories: builtinFactories(io.Discard, nil)})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			return cfg
		}
		a, b := load(), load()
		if d := diffGraph(a, b); len(d) != 0 {
			t.Errorf("%s loaded twice differs in %v", filepath.Base(f), d)
		}
		if r := restartOnlyChanges(a, b); len(r) != 0 {
			t.Errorf("%s loaded twice differs in %v", filepath.Base(f), r)
		}
	}
}

// TestReloadRuntime: the runtime section is applied at start and again when
// a reload changes it (not when it stays the same).
func TestReloadRuntime(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snakepipe.yaml")
	writeFile(t, path, reloadConfig(dir, "v1", false, ""))
	cfg, err := loadFile(path)()
	if err != nil {
		t.Fatal(err)
	}
	var applied []RuntimeConfig
	svc, err := NewService(context.Background(), cfg, ServiceOptions{
		ApplyRuntime: func(rc RuntimeConfig) { applied = append(applied, rc) }, // reloads are serialized
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Shutdown(context.Background()) }()
	if err := svc.Reload(context.Background(), loadFile(path)); err != nil { // unchanged
		t.Fatal(err)
	}
	writeFile(t, path, reloadConfig(dir, "v1", false, "")+"runtime: {gc_percent: 150, memory_limit_bytes: 0}\n")
	if err := svc.Reload(context.Background(), loadFile(path)); err != nil {
		t.Fatal(err)
	}
	want := []RuntimeConfig{DefaultRuntimeConfig(), {GCPercent: 150}}
	if !slices.Equal(applied, want) {
		t.Errorf("applied %+v, want %+v", applied, want)
	}
}

// TestConfigWatchSeesSameSizeSameMtimeEdit: an edit that keeps the file's
// size and modification time (a coarse-timestamp filesystem, or a tool
// that restores the mtime) still triggers a reload; touching the file
// without changing it does not.
func TestConfigWatchSeesSameSizeSameMtimeEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snakepipe.yaml")
	if err := os.WriteFile(path, []byte("log: {level: info}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	w := newConfigWatch(path, 5*time.Millisecond, nil, hclog.NewNullLogger())
	reasons := make(chan string, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, func(r string) { reasons <- r }) }()
	defer func() { cancel(); <-done }()

	// Touch only: same content, new mtime. No reload.
	later := st.ModTime().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reasons:
		t.Fatalf("reload %q after a touch that changed nothing", r)
	case <-time.After(100 * time.Millisecond):
	}
	// Same size, same mtime, different content.
	if err := os.WriteFile(path, []byte("log: {level: warn}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reasons:
		if r != "config file changed" {
			t.Fatalf("reload reason %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an edit keeping size and mtime was not seen")
	}
}

// TestConfigWatchAfterLoadNow: a reload the watch did not start (the admin
// API's, through loadNow) makes the file's new content the one loaded, so
// the next polls do not reload it again; a later edit still reloads.
func TestConfigWatchAfterLoadNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snakepipe.yaml")
	writeFile(t, path, "log: {level: info}\n")
	w := newConfigWatch(path, 5*time.Millisecond, nil, hclog.NewNullLogger())
	writeFile(t, path, "log: {level: warn}\n")
	loads := 0
	if _, err := w.loadNow(func() (*Config, error) { loads++; return nil, nil })(); err != nil || loads != 1 {
		t.Fatalf("loadNow: %v, %d loads", err, loads)
	}
	reasons := make(chan string, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, func(r string) { reasons <- r }) }()
	defer func() { cancel(); <-done }()
	select {
	case r := <-reasons:
		t.Fatalf("reload %q of the content loadNow loaded", r)
	case <-time.After(100 * time.Millisecond):
	}
	writeFile(t, path, "log: {level: error}\n")
	select {
	case <-reasons:
	case <-time.After(5 * time.Second):
		t.Fatal("an edit after loadNow was not seen")
	}
}

// TestCtlConfigReload: `snakepipe ctl config reload` over the real admin
// API reloads the config file like SIGHUP, says what changed and what
// needs a restart, refuses an invalid config (INVALID_ARGUMENT) and one that
// cannot be applied (FAILED_PRECONDITION) without changing anything, and a
// process with no config loader says it cannot reload.
func TestCtlConfigReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snakepipe.yaml")
	withAdmin := func(yaml string) string {
		return strings.Replace(yaml, "admin:\n  listen: \"\"", "admin:\n  listen: 127.0.0.1:0", 1)
	}
	writeFile(t, path, withAdmin(reloadConfig(dir, "v1", false, "")))
	cfg, err := loadFile(path)()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(context.Background(), cfg, ServiceOptions{ConfigLoader: loadFile(path)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Shutdown(context.Background()) }()
	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append([]string{"ctl", "--admin", svc.AdminAddr()}, args...)...)
	}
	w := dialWorker(t, svc.IngestAddr(), "worker-1")
	w.batch(callStop(1, "", 1, "a"))
	// Sending is asynchronous: the reload must not overtake event 1.
	waitWorkerEvents(t, filepath.Join(dir, "events.jsonl"), 1)

	// A changed stage, and a listener that needs a restart.
	v2 := strings.Replace(withAdmin(reloadConfig(dir, "v2", false, "")), "  listen: 127.0.0.1:0\nadmin", "  listen: 127.0.0.1:1\nadmin", 1)
	writeFile(t, path, v2)
	code, out, errOut := ctl("config", "reload")
	if code != 0 || !strings.Contains(out, "config reloaded: changed stages.metadata/gen\n") ||
		!strings.Contains(out, "needs a restart (the running value stays): ingest.listen\n") {
		t.Fatalf("ctl config reload: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	w.batch(callStop(2, "", 1, "b"))
	var resp struct {
		Changed      []string `json:"changed"`
		NeedsRestart []string `json:"needs_restart"`
	}
	code, out, _ = ctl("--json", "config", "reload")
	if err := json.Unmarshal([]byte(out), &resp); code != 0 || err != nil || len(resp.Changed) != 0 || !slices.Equal(resp.NeedsRestart, []string{"ingest.listen"}) {
		t.Errorf("ctl --json config reload of the same file: exit %d, %+v (%v)\n%s", code, resp, err, out)
	}

	// Invalid: refused with every problem named; nothing changes.
	writeFile(t, path, strings.Replace(v2, "sinks: [file/all]", "sinks: [file/nope]", 1)+"policy: {default_sample_rate: 2}\n")
	code, _, errOut = ctl("config", "reload")
	if code != 1 || !strings.Contains(errOut, "InvalidArgument") || !strings.Contains(errOut, `unknown sink "file/nope"`) ||
		!strings.Contains(errOut, "policy.default_sample_rate") {
		t.Errorf("ctl config reload of an invalid file: exit %d, %s", code, errOut)
	}
	// Valid but not applicable (the new sink's directory is a file).
	writeFile(t, path, strings.Replace(withAdmin(reloadConfig(dir, "v3", true, "")), filepath.Join(dir, "extra.jsonl"), filepath.Join(path, "extra.jsonl"), 1))
	code, _, errOut = ctl("config", "reload")
	if code != 1 || !strings.Contains(errOut, "FailedPrecondition") || !strings.Contains(errOut, "could not be applied") {
		t.Errorf("ctl config reload of a config that cannot apply: exit %d, %s", code, errOut)
	}
	w.batch(callStop(3, "", 1, "c"))
	w.finish()
	for result, want := range map[string]float64{"ok": 2, "invalid": 1, "failed": 1} {
		if v := reloadCount(t, svc, result); v != want {
			t.Errorf("reloads{%s} = %v, want %v", result, v, want)
		}
	}
	events := shutdownEvents(t, svc, dir)
	var gens []string
	for _, e := range events {
		g, _ := e.Meta("gen")
		gens = append(gens, fmt.Sprintf("%d/%s", e.TimestampNs, g))
	}
	slices.Sort(gens)
	if want := []string{"1/v1", "2/v2", "3/v2"}; !slices.Equal(gens, want) {
		t.Errorf("events went through %v, want %v", gens, want)
	}

	// A service with no loader (not started by `run`).
	other := startServiceFile(t, func() string {
		p := filepath.Join(t.TempDir(), "other.yaml")
		writeFile(t, p, withAdmin(reloadConfig(filepath.Dir(p), "v1", false, "")))
		return p
	}())
	defer func() { _ = other.Shutdown(context.Background()) }()
	code, _, errOut = runCLI(t, nil, "ctl", "--admin", other.AdminAddr(), "config", "reload")
	if code != 1 || !strings.Contains(errOut, "FailedPrecondition") || !strings.Contains(errOut, "not started by `snakepipe run`") {
		t.Errorf("ctl config reload without a loader: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "ctl", "--admin", other.AdminAddr(), "config", "load"); code != 2 || !strings.Contains(errOut, "config reload") {
		t.Errorf("ctl config load: exit %d, %s (want a usage error)", code, errOut)
	}
}
