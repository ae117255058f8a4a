package pipeline_test

import (
	"context"
	"sync"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/sinks/sinktest"
)

// memSink keeps copies of what it is given.
type memSink struct {
	mu  sync.Mutex
	got []pipeline.Event
}

func (m *memSink) Start(context.Context) error    { return nil }
func (m *memSink) Shutdown(context.Context) error { return nil }
func (m *memSink) Write(_ context.Context, b *pipeline.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, b.Events...)
	return nil
}

// TestExporterConformance: the Exporter is itself a Sink and passes the
// sink conformance suite (one worker, so batch order is kept).
func TestExporterConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		mem := &memSink{}
		e := pipeline.NewExporter(pipeline.Settings{ID: pipeline.MustComponentID("mem")}, mem, pipeline.DefaultExporterConfig())
		return sinktest.Harness{Sink: e, Delivered: func(*testing.T) []pipeline.Event {
			mem.mu.Lock()
			defer mem.mu.Unlock()
			return append([]pipeline.Event(nil), mem.got...)
		}}
	})
}
