package plugins

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDeadlineStop: how long after its deadline a call stuck in an
// infinite loop (testdata/loop.wasm) returns its timeout: the stop
// latency, reported as ns-late/op (instantiating the next instance is not
// timed).
func BenchmarkDeadlineStop(b *testing.B) {
	h := newTestHost(b)
	cfg := cfgFor(td("loop.wasm"))
	cfg.Instances = 1
	s := mustStage(b, h, cfg, stageOpts{})
	const deadline = time.Millisecond
	var late time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		v := s.acquire()
		inst, err := v.get(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		_, fk, err := inst.invoke(deadline, 0, 0)
		late += time.Since(start) - deadline
		b.StopTimer()
		if fk != failTimeout {
			b.Fatalf("kind %s, err %v; want a timeout", fk, err)
		}
		v.put(inst, true)
		v.release()
		b.StartTimer()
	}
	b.ReportMetric(float64(late.Nanoseconds())/float64(b.N), "ns-late/op")
}
