package pipeline

import (
	"math"
	"sort"
	"sync/atomic"
)

// KindHistogram is a distribution of observations in fixed buckets.
const KindHistogram MetricKind = 3

// Histogram counts observations into fixed buckets (upper bounds,
// inclusive, as in Prometheus). Observe is lock-free. A nil *Histogram
// ignores observations.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1; the last is +Inf
	count  atomic.Uint64
	sum    atomic.Uint64 // float64 bits
}

// ExponentialBuckets returns n upper bounds start, start*factor, ...
func ExponentialBuckets(start, factor float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start
		start *= factor
	}
	return out
}

// LatencyBuckets are 10 µs to ~80 s in steps of 1.25x (about ±12 % error
// on a quantile read from them), in seconds.
var LatencyBuckets = ExponentialBuckets(10e-6, 1.25, 72)

func newHistogram(bounds []float64) *Histogram {
	b := append([]float64(nil), bounds...)
	sort.Float64s(b)
	return &Histogram{bounds: b, counts: make([]atomic.Uint64, len(b)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	if h == nil || math.IsNaN(v) {
		return
	}
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v
	h.counts[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ObserveN records n observations of v (a batch of events with one latency).
func (h *Histogram) ObserveN(v float64, n uint64) {
	if h == nil || n == 0 || math.IsNaN(v) {
		return
	}
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(n)
	h.count.Add(n)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v*float64(n))) {
			return
		}
	}
}

// Bucket is one cumulative bucket of a histogram snapshot.
type Bucket struct {
	UpperBound float64 // +Inf for the last
	Count      uint64  // observations <= UpperBound
}

// HistogramSnapshot is a histogram's state at one moment.
type HistogramSnapshot struct {
	Buckets []Bucket
	Count   uint64
	Sum     float64
}

// Snapshot reads the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	if h == nil {
		return HistogramSnapshot{}
	}
	s := HistogramSnapshot{Buckets: make([]Bucket, len(h.counts)), Sum: math.Float64frombits(h.sum.Load())}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		ub := math.Inf(1)
		if i < len(h.bounds) {
			ub = h.bounds[i]
		}
		s.Buckets[i] = Bucket{UpperBound: ub, Count: cum}
	}
	s.Count = cum
	return s
}

// Quantile estimates the q-quantile (0..1) by linear interpolation inside
// the bucket that holds it. It returns NaN with no observations.
func (s HistogramSnapshot) Quantile(q float64) float64 {
	if s.Count == 0 || len(s.Buckets) == 0 {
		return math.NaN()
	}
	rank := q * float64(s.Count)
	lower, prev := 0.0, uint64(0)
	for _, b := range s.Buckets {
		if float64(b.Count) >= rank && b.Count > prev {
			if math.IsInf(b.UpperBound, 1) {
				return lower
			}
			frac := (rank - float64(prev)) / float64(b.Count-prev)
			return lower + (b.UpperBound-lower)*frac
		}
		if !math.IsInf(b.UpperBound, 1) {
			lower = b.UpperBound
		}
		prev = b.Count
	}
	return lower
}

// Sub returns s minus an earlier snapshot of the same histogram (the
// observations made between the two).
func (s HistogramSnapshot) Sub(earlier HistogramSnapshot) HistogramSnapshot {
	out := HistogramSnapshot{Count: s.Count - earlier.Count, Sum: s.Sum - earlier.Sum, Buckets: make([]Bucket, len(s.Buckets))}
	for i, b := range s.Buckets {
		out.Buckets[i] = b
		if i < len(earlier.Buckets) {
			out.Buckets[i].Count -= earlier.Buckets[i].Count
		}
	}
	return out
}

// Histogram returns the histogram for name and labels, creating it with
// bounds on first use.
func (m *Metrics) Histogram(name, help string, bounds []float64, labels ...Label) *Histogram {
	if m == nil {
		return newHistogram(bounds)
	}
	s := m.get(name, help, KindHistogram, labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.h == nil {
		s.h = newHistogram(bounds)
	}
	return s.h
}
