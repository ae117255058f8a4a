package ingest

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// TestStreamWindowBoundsBufferedBytes: while the pipeline applies
// backpressure (the consumer blocks), a worker can get at most about
// ingest.stream_window_bytes ahead of it; the frames wait in gRPC's
// receive buffer, so this is what bounds their memory. gRPC's dynamic
// (BDP) windows would let it run far past the window, or hold it to the
// 64 KiB starting window.
func TestStreamWindowBoundsBufferedBytes(t *testing.T) {
	const window = 512 << 10
	cfg := testConfig()
	cfg.StreamWindowBytes = window
	ts := startServer(t, cfg, nil)
	gate := make(chan struct{})
	ts.rec.mu.Lock()
	ts.rec.gate = gate
	ts.rec.mu.Unlock()
	var released sync.Once
	release := func() { released.Do(func() { close(gate) }) }
	defer release()

	w := openStream(t, ts.addr)
	w.send(hello("window-1", "pool-a"))
	// ~8 KiB frames: 8 events with a 1000-byte metadata value each.
	evs := make([]*pb.Event, 8)
	for i := range evs {
		evs[i] = namedEvent("python.call.stop", int64(i+1))
		evs[i].Metadata = append(evs[i].Metadata, &pb.MetadataEntry{Key: "command", Value: strings.Repeat("x", 1000)})
	}
	frame := batch(evs...)
	frameBytes := int64(proto.Size(frame)) + 5 // gRPC message header
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if err := w.stream.Send(frame); err != nil {
				return // the stream was cancelled at the end of the test
			}
			sent.Add(frameBytes)
		}
	}()
	// Wait until sending stalls: no progress over half a second.
	deadline := time.Now().Add(waitLimit)
	last := int64(-1)
	for stable := 0; stable < 5; {
		time.Sleep(100 * time.Millisecond)
		if now := sent.Load(); now == last {
			stable++
		} else {
			last, stable = now, 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("sending never stalled: %d bytes sent to a blocked pipeline", sent.Load())
		}
	}
	// Ahead of the blocked consumer: the window on the server, gRPC's
	// 64 KiB client write quota, and the frames the receive goroutine holds.
	got := sent.Load()
	if upper := int64(window + 64<<10 + 4*frameBytes); got > upper || got < window/2 {
		t.Errorf("%d bytes sent before the stream stalled; want about the %d-byte window (at most %d)", got, window, upper)
	}
	w.cancel()
	release()
	<-done
}
