package filesink_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/sinks/filesink"
)

// TestExporterFileSinkDirectoryRemoved runs the file sink behind the
// exporter (as the pipeline does) and removes its directory mid-run: the
// failures are counted, the circuit opens, nothing is lost or duplicated
// once the directory is recreated, and every line in the file parses.
func TestExporterFileSinkDirectoryRemoved(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m := pipeline.NewMetrics()
	set := pipeline.Settings{ID: pipeline.MustComponentID("file/main"), Metrics: m}
	cfg := filesink.DefaultConfig()
	cfg.Path = filepath.Join(dir, "events.jsonl")
	cfg.FlushInterval = 0 // every batch reaches the file (or fails) within its Write
	cfg.Fsync = filesink.FsyncNever
	cfg.CreateDirs = false
	fs, err := filesink.New(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ecfg := pipeline.DefaultExporterConfig()
	ecfg.Retry.InitialInterval = time.Millisecond
	ecfg.Retry.MaxInterval = 5 * time.Millisecond
	ecfg.Circuit = pipeline.CircuitConfig{FailureThreshold: 3, OpenDuration: 20 * time.Millisecond}
	ecfg.Queue.FullPolicy = "block"
	e := pipeline.NewExporter(set, fs, ecfg)
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	value := func(name string, kv ...string) float64 {
		v, _ := m.Value(name, pipeline.L(append([]string{"sink", "file/main"}, kv...)...)...)
		return v
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ts := int64(0)
	writeBatches := func(n int) {
		for i := 0; i < n; i++ {
			b := &pipeline.Batch{}
			for j := 0; j < 3; j++ {
				ts++
				b.Events = append(b.Events, pipeline.Event{Name: "python.call.stop", TimestampNs: ts, SampleRate: 1,
					Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(ts * 10)}}})
			}
			if err := e.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeBatches(5)
	waitFor("the first events to be written", func() bool { return value("snakepipe_sink_events_written_total") == 15 })

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	writeBatches(5)
	waitFor("the circuit to open", func() bool { return value("snakepipe_sink_circuit_open") == 1 })
	if got := value("snakepipe_sink_failed_total", "reason", "transient"); got < 3 {
		t.Errorf("failed{transient} = %v, want >= 3", got)
	}
	if got := value("snakepipe_sink_events_written_total"); got != 15 {
		t.Errorf("written = %v while the directory was gone, want 15", got)
	}

	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor("recovery", func() bool { return value("snakepipe_sink_events_written_total") == 30 })
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if got := value("snakepipe_sink_circuit_open"); got != 0 {
		t.Errorf("circuit still open after recovery")
	}
	f, err := os.Open(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := pipeline.ReadEventsJSON(f)
	if err != nil {
		t.Fatalf("corrupted line in the recovered file: %v", err)
	}
	// The first 15 went with the removed directory; the recreated file
	// holds the other 15, once each, in order.
	if len(got) != 15 {
		t.Fatalf("recovered file holds %d events, want 15", len(got))
	}
	for i := range got {
		if got[i].TimestampNs != int64(16+i) {
			t.Fatalf("event %d has timestamp %d, want %d (lost, duplicated or reordered)", i, got[i].TimestampNs, 16+i)
		}
	}
	for _, r := range []string{"queue_full", "evicted_oldest", "permanent", "retries_exhausted", "shutdown"} {
		if got := value("snakepipe_sink_dropped_total", "reason", r); got != 0 {
			t.Errorf("dropped{%s} = %v, want 0", r, got)
		}
	}
}
