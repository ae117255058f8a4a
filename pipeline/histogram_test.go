package pipeline

import (
	"math"
	"testing"
)

func TestHistogramQuantiles(t *testing.T) {
	m := NewMetrics()
	h := m.Histogram("lat_seconds", "x", []float64{1, 2, 4, 8})
	for i := 1; i <= 100; i++ {
		h.Observe(float64(i%8) + 0.5) // 0.5 .. 7.5
	}
	s := h.Snapshot()
	if s.Count != 100 || s.Buckets[len(s.Buckets)-1].Count != 100 {
		t.Fatalf("count %d, +Inf bucket %d", s.Count, s.Buckets[len(s.Buckets)-1].Count)
	}
	if q := s.Quantile(0.5); q < 2 || q > 4.5 {
		t.Fatalf("p50 = %v, want within the bucket holding the median", q)
	}
	if q := s.Quantile(1); q != 8 {
		t.Fatalf("p100 = %v, want the top bound 8", q)
	}
	if !math.IsNaN((HistogramSnapshot{}).Quantile(0.5)) {
		t.Fatal("empty histogram quantile must be NaN")
	}
	before := s
	h.ObserveN(100, 10) // above every bound: +Inf bucket
	d := h.Snapshot().Sub(before)
	if d.Count != 10 || d.Sum != 1000 || d.Buckets[len(d.Buckets)-2].Count != 0 {
		t.Fatalf("delta = %+v", d)
	}
	if v, ok := m.Value("lat_seconds"); !ok || v != 110 {
		t.Fatalf("Value = %v %v", v, ok)
	}
	snap := m.Snapshot()
	if len(snap) != 1 || snap[0].Kind != KindHistogram || snap[0].Histogram == nil {
		t.Fatalf("Snapshot = %+v", snap)
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewMetrics().Histogram("x", "x", LatencyBuckets)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.Observe(0.001)
	}
}

func TestObserveLatency(t *testing.T) {
	h := NewMetrics().Histogram("l", "l", LatencyBuckets)
	now := int64(10e9)
	b := &Batch{Events: []Event{
		{TimestampNs: now - 1e6}, {TimestampNs: now - 1e6}, {TimestampNs: now - 2e6},
		{TimestampNs: 0}, {TimestampNs: now + 5e9}, // no timestamp; future (clock skew)
	}}
	observeLatency(h, b, now)
	s := h.Snapshot()
	if s.Count != 3 {
		t.Fatalf("observed %d, want 3 (skip missing and future timestamps)", s.Count)
	}
	if got, want := s.Sum, 0.004; math.Abs(got-want) > 1e-12 {
		t.Fatalf("sum %v, want %v", got, want)
	}
}
