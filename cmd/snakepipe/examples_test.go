package main

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// TestExampleConfigs runs every config in examples/config: it must
// validate, start, take a worker's events and shut down cleanly. Relative
// file paths land in a temporary directory.
func TestExampleConfigs(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	wasm := filepath.Join(root, "examples/plugins/wat/filter.wasm")
	tests := []struct {
		file  string
		flags map[string]any
		check func(t *testing.T, svc *Service, dir string)
	}{
		{file: "basic.yaml", check: func(t *testing.T, svc *Service, dir string) {
			got, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "snakepipe-events.jsonl")))
			if len(got) != 3 {
				t.Errorf("file/all has %d worker events, want 3", len(got))
			}
			if v := metric(t, svc.Metrics(), "snakepipe_pipeline_stage_events_out_total", "pipeline", "slow_calls", "stage", "threshold/slow"); v != 1 {
				t.Errorf("slow calls = %v, want 1", v)
			}
		}},
		{file: "statsd.yaml", check: func(t *testing.T, svc *Service, dir string) {
			got, _ := splitHostEvents(readEvents(t, filepath.Join(dir, "snakepipe-events.jsonl")))
			if len(got) != 3 {
				t.Errorf("file/raw has %d worker events, want 3", len(got))
			}
		}},
		{file: "wasm.yaml", flags: map[string]any{"stages.wasm/slow_calls.path": wasm}, check: func(t *testing.T, svc *Service, dir string) {
			// The filter drops the fast call; the slow one and the memory
			// sample pass (and so do the host's connected/disconnected events).
			in := metric(t, svc.Metrics(), "snakepipe_pipeline_stage_events_in_total", "pipeline", "default", "stage", "wasm/slow_calls")
			out := metric(t, svc.Metrics(), "snakepipe_pipeline_stage_events_out_total", "pipeline", "default", "stage", "wasm/slow_calls")
			if in-out != 1 {
				t.Errorf("wasm stage in %v out %v, want 1 dropped", in, out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			flags := map[string]any{"ingest.listen": "127.0.0.1:0", "admin.listen": "127.0.0.1:0"}
			for k, v := range tt.flags {
				flags[k] = v
			}
			cfg, err := LoadConfig(LoadOptions{File: filepath.Join(root, "examples/config", tt.file), Flags: flags, Factories: builtinFactories(io.Discard, nil)})
			if err == nil {
				err = checkConfig(cfg)
			}
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			svc, err := NewService(context.Background(), cfg, ServiceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			w := dialWorker(t, svc.IngestAddr(), "example-worker")
			w.batch(
				callStop(1, "", 2_000_000, "fast"),
				callStop(2, "", 400_000_000, "slow"),
				memorySample(time.Unix(0, 3), 0),
			)
			w.finish()
			if err := svc.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			tt.check(t, svc, dir)
		})
	}
}
