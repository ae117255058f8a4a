package sinktest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/sinks/sinktest"
)

// memSink is the smallest correct sink: it copies events under a lock.
type memSink struct {
	mu     sync.Mutex
	events []pipeline.Event
	closed bool
}

func (m *memSink) Start(context.Context) error { return nil }

func (m *memSink) Shutdown(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memSink) Write(ctx context.Context, b *pipeline.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return pipeline.Permanent(errors.New("closed"))
	}
	m.events = append(m.events, b.Events...)
	return nil
}

func TestSuiteAcceptsCorrectSink(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		m := &memSink{}
		return sinktest.Harness{Sink: m, Delivered: func(*testing.T) []pipeline.Event {
			m.mu.Lock()
			defer m.mu.Unlock()
			return slices.Clone(m.events)
		}}
	})
}

func TestEqual(t *testing.T) {
	b := sinktest.Batch("eq", 4)
	for i := range b.Events {
		e := b.Events[i]
		if !sinktest.Equal(&b.Events[i], &e) {
			t.Fatalf("event %d not equal to its copy", i)
		}
	}
	changes := map[string]func(e *pipeline.Event){
		"name": func(e *pipeline.Event) { e.Name += "x" },
		"rate": func(e *pipeline.Event) { e.SampleRate = 0.3 },
		"int as float": func(e *pipeline.Event) {
			e.Measurements = slices.Clone(e.Measurements)
			e.Measurements[0].Value = pipeline.FloatValue(float64(e.Measurements[0].Value.Int))
		},
		"metadata": func(e *pipeline.Event) { e.Metadata = e.Metadata[:1] },
		"origin":   func(e *pipeline.Event) { e.Origin = nil },
	}
	for name, change := range changes {
		e := b.Events[0]
		change(&e)
		if sinktest.Equal(&b.Events[0], &e) {
			t.Errorf("Equal ignores a change of %s", name)
		}
	}
}
