package plugins

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/snakepipe/snakepipe/pipeline"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func td(name string) string { return filepath.Join("testdata", name) }

func newTestHost(t testing.TB) *Host {
	t.Helper()
	cfg := DefaultHostConfig()
	cfg.CacheDir = t.TempDir()
	cfg.Watch = false
	h, err := NewHost(cfg, hclog.NewNullLogger(), pipeline.NewMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

type stageOpts struct {
	metrics *pipeline.Metrics
	dead    DeadLetters
	valid   PatchValidator
	logger  hclog.Logger
}

func newTestStage(t testing.TB, h *Host, cfg *Config, o stageOpts) (*Stage, error) {
	t.Helper()
	if o.metrics == nil {
		o.metrics = pipeline.NewMetrics()
	}
	if o.logger == nil {
		o.logger = hclog.NewNullLogger()
	}
	set := pipeline.Settings{ID: pipeline.MustComponentID("wasm/test"), Pipeline: "p", Logger: o.logger, Metrics: o.metrics}
	s, err := NewStage(context.Background(), h, set, cfg, o.valid, o.dead)
	if err == nil {
		t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	}
	return s, err
}

func mustStage(t testing.TB, h *Host, cfg *Config, o stageOpts) *Stage {
	t.Helper()
	s, err := newTestStage(t, h, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cfgFor(path string) *Config {
	c := DefaultConfig()
	c.Path = path
	c.Instances = 2
	return c
}

func ev(name string, ms ...pipeline.Measurement) pipeline.Event {
	return pipeline.Event{Name: name, TimestampNs: 1, SampleRate: 1, Measurements: ms}
}

func mi(k string, v int64) pipeline.Measurement {
	return pipeline.Measurement{Key: k, Value: pipeline.IntValue(v)}
}
func mf(k string, v float64) pipeline.Measurement {
	return pipeline.Measurement{Key: k, Value: pipeline.FloatValue(v)}
}

func names(b *pipeline.Batch) []string {
	var out []string
	for _, e := range b.Events {
		out = append(out, fmt.Sprintf("%s/%d", e.Name, e.Seq))
	}
	return out
}

func metric(t testing.TB, m *pipeline.Metrics, name string, kv ...string) float64 {
	t.Helper()
	v, _ := m.Value(name, pipeline.L(append([]string{"plugin", "wasm/test", "pipeline", "p"}, kv...)...)...)
	return v
}

// waitFor polls cond; it is not a timed assertion (the limit only stops a
// hung test).
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func hclogTo(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Trace})
}

func readFileString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
