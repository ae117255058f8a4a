package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// The hand-written frames must be exactly what the generated code decodes,
// and stamping the time must change only the timestamps.
func TestFramesDecodeWithGeneratedCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ts := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixNano()
	f := buildFrame(rng, 64, 7, ts)
	var msg pb.WorkerMessage
	if err := proto.Unmarshal(f.buf, &msg); err != nil {
		t.Fatalf("generated code cannot decode the frame: %v", err)
	}
	b := msg.GetBatch()
	if b == nil || len(b.Events) != 64 || b.Sequence != 7 {
		t.Fatalf("decoded %v", &msg)
	}
	names := map[string]bool{}
	for _, e := range b.Events {
		if e.TimestampNs != ts || e.Name == "" || len(e.CorrelationId) != 27 {
			t.Fatalf("event %v", e)
		}
		names[e.Name] = true
		if len(e.Measurements) == 0 {
			t.Fatalf("event without measurements: %v", e)
		}
	}
	if len(names) < 5 {
		t.Fatalf("mix too narrow: %v", names)
	}
	later := ts + 123456789
	orig := append([]byte(nil), f.buf...)
	stamped := f.stamped(later)
	if string(f.buf) != string(orig) {
		t.Fatal("stamped changed the frame's own bytes (gRPC may still be sending them)")
	}
	var again pb.WorkerMessage
	if err := proto.Unmarshal(stamped, &again); err != nil {
		t.Fatal(err)
	}
	for i, e := range again.GetBatch().Events {
		if e.TimestampNs != later {
			t.Fatalf("event %d timestamp %d after stamping, want %d", i, e.TimestampNs, later)
		}
		e.TimestampNs = ts
		if !proto.Equal(e, b.Events[i]) {
			t.Fatalf("stamping changed more than the timestamp of event %d", i)
		}
	}
	if per := len(f.buf) / 64; per < 90 || per > 260 {
		t.Fatalf("%d bytes per event: not a realistic size", per)
	}
}

func BenchmarkStampTime(b *testing.B) {
	f := buildFrame(rand.New(rand.NewPCG(1, 2)), 64, 1, time.Now().UnixNano())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = f.stamped(int64(i) + 1<<60)
	}
}
