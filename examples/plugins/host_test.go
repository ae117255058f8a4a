package examples_test

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/plugins"
)

// cacheDir is the compilation cache shared by every host of this test
// binary, so each module is compiled once, not once per test.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "snakepipe-examples-cache-")
	if err == nil {
		cacheDir = dir
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
		os.Exit(code)
	}))
}

// newHost returns a plugins host sharing the test binary's compilation
// cache, with no file watching.
func newHost(tb testing.TB) *plugins.Host {
	tb.Helper()
	cfg := plugins.DefaultHostConfig()
	cfg.CacheDir = cacheDir
	if cacheDir == "" {
		cfg.CacheDir = tb.TempDir()
	}
	cfg.Watch = false
	h, err := plugins.NewHost(cfg, hclog.NewNullLogger(), pipeline.NewMetrics())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

// loadStage loads path as a `wasm` stage with plugin config cfg, logging
// to logw (nil: nowhere). Failures drop the batch (on_error: drop), so a
// failing plugin cannot match an expected output by passing events through.
// The deadline is the maximum (1 s): its cost does not depend on its value,
// and a loaded machine must not turn a test or benchmark into timeouts.
func loadStage(tb testing.TB, h *plugins.Host, path string, cfg map[string]string, trusted bool, logw io.Writer) (*plugins.Stage, error) {
	tb.Helper()
	c := plugins.DefaultConfig()
	c.Path = path
	c.Config = cfg
	c.OnError = plugins.OnErrorDrop
	c.Instances = 1
	c.Trusted = trusted
	c.Deadline = time.Second
	logger := hclog.NewNullLogger()
	if logw != nil {
		logger = hclog.New(&hclog.LoggerOptions{Output: logw, Level: hclog.Trace})
	}
	set := pipeline.Settings{ID: pipeline.MustComponentID("wasm/example"), Pipeline: "golden", Logger: logger, Metrics: pipeline.NewMetrics()}
	s, err := plugins.NewStage(context.Background(), h, set, c, nil, nil)
	if err == nil {
		tb.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	}
	return s, err
}

func mustStage(tb testing.TB, h *plugins.Host, path string, cfg map[string]string, trusted bool) *plugins.Stage {
	tb.Helper()
	s, err := loadStage(tb, h, path, cfg, trusted, nil)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return s
}

// runStage passes copies of events through s in batches of size n.
func runStage(tb testing.TB, s *plugins.Stage, events []pipeline.Event, n int) []pipeline.Event {
	tb.Helper()
	var out []pipeline.Event
	for i := 0; i < len(events); i += n {
		j := min(i+n, len(events))
		b := &pipeline.Batch{Events: append([]pipeline.Event(nil), events[i:j]...)}
		got, err := s.Process(context.Background(), b)
		if err != nil {
			tb.Fatalf("batch [%d:%d]: %v", i, j, err)
		}
		out = append(out, got.Events...)
	}
	return out
}
