// Package sinktest is a conformance suite every pipeline.Sink passes, in
// the manner of testing/slogtest. A sink's own tests call Run with a
// function that builds a fresh, unstarted sink and a way to read back what
// it delivered:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T) sinktest.Harness {
//			var buf syncBuffer
//			s := newSinkWriting(&buf)
//			return sinktest.Harness{Sink: s, Delivered: func(t *testing.T) []pipeline.Event {
//				return parse(t, buf.Bytes())
//			}}
//		})
//	}
//
// The suite checks the contract in pipeline.Sink and pipeline.Component:
//
//   - every event written is delivered, in batch order, with every field
//     the JSON line format carries (or what Harness.Same compares);
//   - Write does not modify the batch, its events, or their backing arrays;
//   - Write is safe for concurrent use (run the suite with -race);
//   - Shutdown flushes: everything written before it is delivered after it;
//   - a Write with an already cancelled context returns promptly, either
//     with an error wrapping context.Canceled and nothing of the batch
//     delivered, or with nil and all of it delivered (each sink documents
//     which);
//   - Shutdown twice is fine; Write after Shutdown returns an error marked
//     pipeline.Permanent (retrying cannot help) instead of panicking;
//   - no goroutine outlives Shutdown (checked with goleak, so the package
//     running the suite must not run other tests in parallel with it).
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Harness is one sink under test.
type Harness struct {
	// Sink is a new sink, not yet started. The suite calls Start.
	Sink pipeline.Sink
	// Delivered returns every event the sink has delivered so far, in
	// delivery order. The suite calls it after Shutdown.
	Delivered func(t *testing.T) []pipeline.Event
	// Same compares an event written (want) with one delivered (got). Nil
	// means Equal: every field the JSON line format carries. Sinks whose
	// output is lossy (a text format) compare what they keep.
	Same func(want, got *pipeline.Event) bool
}

// Run runs the conformance suite. newSink is called once per subtest.
func Run(t *testing.T, newSink func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"WritesEvents", testWritesEvents},
		{"EmptyBatch", testEmptyBatch},
		{"DoesNotMutateBatch", testDoesNotMutate},
		{"ConcurrentWrites", testConcurrentWrites},
		{"FlushesOnShutdown", testFlushesOnShutdown},
		{"CancelledContext", testCancelledContext},
		{"ShutdownTwice", testShutdownTwice},
		{"WriteAfterShutdown", testWriteAfterShutdown},
	}
	var leakBaseline goleak.Option
	tests = append(tests, struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{"NoGoroutineLeak", func(t *testing.T, h Harness) { testNoGoroutineLeak(t, h, leakBaseline) }})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakBaseline = goleak.IgnoreCurrent()
			h := newSink(t)
			if h.Sink == nil || h.Delivered == nil {
				t.Fatal("sinktest: Harness needs Sink and Delivered")
			}
			if h.Same == nil {
				h.Same = Equal
			}
			tt.fn(t, h)
		})
	}
}

// Batch builds a batch of n events whose names and correlation ids carry
// tag and their index, with every kind of value and awkward strings
// (quotes, newlines, non-ASCII) so that encoders are exercised.
func Batch(tag string, n int) *pipeline.Batch {
	origin := &pipeline.Origin{WorkerID: "w-" + tag, Pool: "pool\"1", Hostname: "host.example", PID: 4242}
	b := &pipeline.Batch{Events: make([]pipeline.Event, n)}
	for i := range b.Events {
		e := pipeline.Event{
			Name:          fmt.Sprintf("sinktest.%s.e%d", tag, i),
			TimestampNs:   1732500000000000000 + int64(i),
			CorrelationID: fmt.Sprintf("%s-%d", tag, i),
			SampleRate:    []float64{1, 0.5, 0.125}[i%3],
			Measurements: []pipeline.Measurement{
				{Key: "count", Value: pipeline.IntValue(int64(i) - 3)},
				{Key: "ratio", Value: pipeline.FloatValue(2)},
				{Key: "big", Value: pipeline.IntValue(math.MaxInt64 - int64(i))},
				{Key: "tiny", Value: pipeline.FloatValue(1.5e-300)},
				{Key: "label", Value: pipeline.StringValue("line1\nline2 \"q\" \\ é ✓")},
			},
			Metadata: []pipeline.Label{
				{Key: "tool", Value: "search"},
				{Key: "note", Value: "tab\there\x01 <&> \u2028"},
			},
		}
		if i%2 == 0 {
			e.Origin = origin
			e.ReceivedNs = e.TimestampNs + 100
		}
		if i%4 == 3 {
			e.CorrelationID = ""
			e.Metadata = nil
			e.Measurements = nil
		}
		b.Events[i] = e
	}
	b.ComputeBytes()
	return b
}

// Equal reports whether two events agree on every field the JSON line
// format carries (Origin.Addr and Seq are not carried; a zero SampleRate
// reads as 1; nil and empty slices are equal).
func Equal(want, got *pipeline.Event) bool {
	rate := func(r float64) float64 {
		if r == 0 {
			return 1
		}
		return r
	}
	if want.Name != got.Name || want.TimestampNs != got.TimestampNs || want.ReceivedNs != got.ReceivedNs ||
		want.CorrelationID != got.CorrelationID || rate(want.SampleRate) != rate(got.SampleRate) {
		return false
	}
	if !slices.Equal(want.Metadata, got.Metadata) || len(want.Measurements) != len(got.Measurements) {
		return false
	}
	for i := range want.Measurements {
		w, g := want.Measurements[i], got.Measurements[i]
		if w.Key != g.Key || w.Value.Kind != g.Value.Kind || w.Value.Int != g.Value.Int || w.Value.Str != g.Value.Str ||
			!(w.Value.Float == g.Value.Float || math.IsNaN(w.Value.Float) && math.IsNaN(g.Value.Float)) {
			return false
		}
	}
	if (want.Origin == nil) != (got.Origin == nil) {
		return false
	}
	if o, p := want.Origin, got.Origin; o != nil {
		return o.WorkerID == p.WorkerID && o.Pool == p.Pool && o.Hostname == p.Hostname && o.PID == p.PID
	}
	return true
}

func start(t *testing.T, h Harness) {
	t.Helper()
	if err := h.Sink.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func shutdown(t *testing.T, h Harness) {
	t.Helper()
	if err := h.Sink.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func write(t *testing.T, h Harness, b *pipeline.Batch) {
	t.Helper()
	if err := h.Sink.Write(context.Background(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// expectDelivered checks that got holds exactly the events of want, in
// order.
func expectDelivered(t *testing.T, h Harness, want []pipeline.Event, got []pipeline.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !h.Same(&want[i], &got[i]) {
			t.Fatalf("event %d delivered as\n  %+v\nwant\n  %+v", i, got[i], want[i])
		}
	}
}

func testWritesEvents(t *testing.T, h Harness) {
	start(t, h)
	b1, b2 := Batch("a", 7), Batch("b", 5)
	write(t, h, b1)
	write(t, h, b2)
	shutdown(t, h)
	expectDelivered(t, h, append(slices.Clone(b1.Events), b2.Events...), h.Delivered(t))
}

func testEmptyBatch(t *testing.T, h Harness) {
	start(t, h)
	write(t, h, &pipeline.Batch{})
	write(t, h, &pipeline.Batch{Events: []pipeline.Event{}})
	shutdown(t, h)
	if got := h.Delivered(t); len(got) != 0 {
		t.Fatalf("empty batches delivered %d events", len(got))
	}
}

// deepCopy copies b down to the backing arrays of every event.
func deepCopy(b *pipeline.Batch) *pipeline.Batch {
	c := &pipeline.Batch{Bytes: b.Bytes, Events: slices.Clone(b.Events)}
	for i := range c.Events {
		e := &c.Events[i]
		e.Measurements = slices.Clone(e.Measurements)
		e.Metadata = slices.Clone(e.Metadata)
		if e.Origin != nil {
			o := *e.Origin
			e.Origin = &o
		}
	}
	return c
}

func testDoesNotMutate(t *testing.T, h Harness) {
	start(t, h)
	b := Batch("m", 9)
	// Share one metadata array between events, as ingest may.
	b.Events[1].Metadata = b.Events[0].Metadata
	before := deepCopy(b)
	eventsArray := &b.Events[0]
	write(t, h, b)
	shutdown(t, h)
	if &b.Events[0] != eventsArray || len(b.Events) != len(before.Events) {
		t.Fatal("Write replaced or resized the batch's Events slice")
	}
	if !reflect.DeepEqual(before, b) {
		t.Fatalf("Write modified the batch:\nbefore %+v\nafter  %+v", before, b)
	}
}

func testConcurrentWrites(t *testing.T, h Harness) {
	const writers, batches, perBatch = 8, 20, 4
	start(t, h)
	var wg sync.WaitGroup
	release := make(chan struct{})
	errs := make(chan error, writers*batches)
	want := map[string]pipeline.Event{}
	all := make([][]*pipeline.Batch, writers)
	for g := range writers {
		for n := range batches {
			b := Batch(fmt.Sprintf("g%db%d", g, n), perBatch)
			all[g] = append(all[g], b)
			for _, e := range b.Events {
				want[e.Name] = e
			}
		}
	}
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			for _, b := range all[g] {
				if err := h.Sink.Write(context.Background(), b); err != nil {
					errs <- err
				}
			}
		}()
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Write: %v", err)
	}
	shutdown(t, h)
	got := h.Delivered(t)
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want %d", len(got), len(want))
	}
	seen := map[string]int{}
	for i := range got {
		w, ok := want[got[i].Name]
		if !ok || !h.Same(&w, &got[i]) {
			t.Fatalf("delivered unexpected or changed event %+v", got[i])
		}
		seen[got[i].Name]++
		if seen[got[i].Name] > 1 {
			t.Fatalf("event %s delivered twice", got[i].Name)
		}
	}
	// Events of one batch stay together and in order.
	for i := 0; i < len(got); i += perBatch {
		first := got[i].Name
		for j := 1; j < perBatch; j++ {
			if wantName := first[:len(first)-1] + fmt.Sprint(j); got[i+j].Name != wantName {
				t.Fatalf("batch split or reordered: %s after %s", got[i+j].Name, first)
			}
		}
	}
}

func testFlushesOnShutdown(t *testing.T, h Harness) {
	start(t, h)
	b := Batch("f", 3)
	write(t, h, b)
	shutdown(t, h)
	expectDelivered(t, h, b.Events, h.Delivered(t))
}

func testCancelledContext(t *testing.T, h Harness) {
	start(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Batch("c", 3)
	err := h.Sink.Write(ctx, b)
	shutdown(t, h)
	got := h.Delivered(t)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Write with cancelled ctx = %v, want an error wrapping context.Canceled (or nil)", err)
		}
		if len(got) != 0 {
			t.Fatalf("Write failed with %v but delivered %d events", err, len(got))
		}
		return
	}
	expectDelivered(t, h, b.Events, got)
}

func testShutdownTwice(t *testing.T, h Harness) {
	start(t, h)
	write(t, h, Batch("s", 2))
	shutdown(t, h)
	if err := h.Sink.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if got := h.Delivered(t); len(got) != 2 {
		t.Fatalf("delivered %d events, want 2", len(got))
	}
}

func testWriteAfterShutdown(t *testing.T, h Harness) {
	start(t, h)
	shutdown(t, h)
	err := h.Sink.Write(context.Background(), Batch("late", 2))
	if err == nil {
		t.Fatal("Write after Shutdown returned nil")
	}
	if !pipeline.IsPermanent(err) {
		t.Errorf("Write after Shutdown = %v, want a pipeline.Permanent error", err)
	}
	if got := h.Delivered(t); len(got) != 0 {
		t.Fatalf("Write after Shutdown delivered %d events", len(got))
	}
}

func testNoGoroutineLeak(t *testing.T, h Harness, leakBaseline goleak.Option) {
	start(t, h)
	write(t, h, Batch("l", 2))
	shutdown(t, h)
	goleak.VerifyNone(t, leakBaseline)
}
