package pipeline

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Metrics is snakepipe's own registry of counters and gauges. Components
// create their series once (at construction) and update them lock-free on
// the hot path. The admin side exports a snapshot in Prometheus text format.
//
// Label values must come from configuration or code (pipeline, stage, sink,
// plugin, reason), never from worker input, so cardinality stays bounded.
type Metrics struct {
	mu     sync.Mutex
	series map[string]*series // key: name + "\xff" + canonical labels
	help   map[string]metricHelp
}

type metricHelp struct {
	help string
	kind MetricKind
}

// MetricKind is counter or gauge.
type MetricKind uint8

const (
	KindCounter MetricKind = iota + 1
	KindGauge
)

func (k MetricKind) String() string {
	switch k {
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "counter"
}

type series struct {
	name   string
	labels []Label
	kind   MetricKind
	c      *Counter
	g      *Gauge
	h      *Histogram
	fn     func() float64
}

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics {
	return &Metrics{series: map[string]*series{}, help: map[string]metricHelp{}}
}

// Counter is a monotonically increasing count. The zero value is ready; a nil
// *Counter ignores updates, so components can run without a registry.
type Counter struct{ v atomic.Uint64 }

// Add adds n.
func (c *Counter) Add(n uint64) {
	if c != nil {
		c.v.Add(n)
	}
}

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Load returns the current count.
func (c *Counter) Load() uint64 {
	if c == nil {
		return 0
	}
	return c.v.Load()
}

// Gauge is a value that goes up and down. A nil *Gauge ignores updates.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(v float64) {
	if g != nil {
		g.bits.Store(math.Float64bits(v))
	}
}

// Add adds d (may be negative).
func (g *Gauge) Add(d float64) {
	if g == nil {
		return
	}
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Load returns the value.
func (g *Gauge) Load() float64 {
	if g == nil {
		return 0
	}
	return math.Float64frombits(g.bits.Load())
}

// L builds a label list from key, value pairs: L("stage", "filter/x").
func L(kv ...string) []Label {
	out := make([]Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Label{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func seriesKey(name string, labels []Label) string {
	var b strings.Builder
	b.WriteString(name)
	for _, l := range labels {
		b.WriteByte(0xff)
		b.WriteString(l.Key)
		b.WriteByte('=')
		b.WriteString(l.Value)
	}
	return b.String()
}

func sortedLabels(labels []Label) []Label {
	ls := append([]Label(nil), labels...)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Key < ls[j].Key })
	return ls
}

func (m *Metrics) get(name, help string, kind MetricKind, labels []Label) *series {
	ls := sortedLabels(labels)
	key := seriesKey(name, ls)
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.series[key]; ok {
		return s
	}
	if _, ok := m.help[name]; !ok {
		m.help[name] = metricHelp{help: help, kind: kind}
	}
	s := &series{name: name, labels: ls, kind: kind}
	m.series[key] = s
	return s
}

// Counter returns the counter for name and labels, creating it on first use.
// Calling it again with the same name and labels returns the same counter.
// A nil *Metrics returns a fresh unregistered counter.
func (m *Metrics) Counter(name, help string, labels ...Label) *Counter {
	if m == nil {
		return &Counter{}
	}
	s := m.get(name, help, KindCounter, labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.c == nil {
		s.c = &Counter{}
	}
	return s.c
}

// Gauge returns the gauge for name and labels, creating it on first use.
func (m *Metrics) Gauge(name, help string, labels ...Label) *Gauge {
	if m == nil {
		return &Gauge{}
	}
	s := m.get(name, help, KindGauge, labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.g == nil {
		s.g = &Gauge{}
	}
	return s.g
}

// GaugeFunc registers a gauge whose value is read from fn at export time.
// Registering the same name and labels again replaces fn.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64, labels ...Label) {
	if m == nil {
		return
	}
	s := m.get(name, help, KindGauge, labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	s.fn = fn
}

// Sample is one series' value at snapshot time.
type Sample struct {
	Name   string
	Help   string
	Kind   MetricKind
	Labels []Label
	// Value is the counter or gauge value; for a histogram, its count.
	Value float64
	// Histogram is set for KindHistogram.
	Histogram *HistogramSnapshot
}

// Snapshot returns every series, sorted by name then labels.
func (m *Metrics) Snapshot() []Sample {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	all := make([]*series, 0, len(m.series))
	for _, s := range m.series {
		all = append(all, s)
	}
	help := make(map[string]metricHelp, len(m.help))
	for k, v := range m.help {
		help[k] = v
	}
	m.mu.Unlock()
	out := make([]Sample, 0, len(all))
	for _, s := range all {
		var v float64
		var hs *HistogramSnapshot
		switch {
		case s.h != nil:
			snap := s.h.Snapshot()
			hs, v = &snap, float64(snap.Count)
		case s.fn != nil:
			v = s.fn()
		case s.c != nil:
			v = float64(s.c.Load())
		case s.g != nil:
			v = s.g.Load()
		}
		h := help[s.name]
		out = append(out, Sample{Name: s.name, Help: h.help, Kind: h.kind, Labels: s.labels, Value: v, Histogram: hs})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return seriesKey("", out[i].Labels) < seriesKey("", out[j].Labels)
	})
	return out
}

// Value returns the current value of one series, and whether it exists.
// Tests use it to assert on counters.
func (m *Metrics) Value(name string, labels ...Label) (float64, bool) {
	if m == nil {
		return 0, false
	}
	key := seriesKey(name, sortedLabels(labels))
	m.mu.Lock()
	s, ok := m.series[key]
	m.mu.Unlock()
	if !ok {
		return 0, false
	}
	switch {
	case s.h != nil:
		return float64(s.h.Snapshot().Count), true
	case s.fn != nil:
		return s.fn(), true
	case s.c != nil:
		return float64(s.c.Load()), true
	case s.g != nil:
		return s.g.Load(), true
	}
	return 0, true
}
