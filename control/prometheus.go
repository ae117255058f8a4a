package control

import (
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/snakepipe/snakepipe/pipeline"
)

// metricsCollector exports a pipeline.Metrics registry. It is "unchecked"
// (Describe sends nothing) because components register series as they are
// built; label sets per metric name are fixed by code, so the exposition
// stays consistent.
type metricsCollector struct{ m *pipeline.Metrics }

func (metricsCollector) Describe(chan<- *prometheus.Desc) {}

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.m.Snapshot() {
		names := make([]string, len(s.Labels))
		values := make([]string, len(s.Labels))
		for i, l := range s.Labels {
			names[i], values[i] = l.Key, l.Value
		}
		desc := prometheus.NewDesc(s.Name, helpOf(s), names, nil)
		if s.Histogram != nil {
			buckets := make(map[float64]uint64, len(s.Histogram.Buckets))
			for _, b := range s.Histogram.Buckets {
				if !math.IsInf(b.UpperBound, 1) {
					buckets[b.UpperBound] = b.Count
				}
			}
			m, err := prometheus.NewConstHistogram(desc, s.Histogram.Count, s.Histogram.Sum, buckets, values...)
			if err != nil {
				m = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- m
			continue
		}
		vt := prometheus.CounterValue
		if s.Kind == pipeline.KindGauge {
			vt = prometheus.GaugeValue
		}
		m, err := prometheus.NewConstMetric(desc, vt, s.Value, values...)
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
}

func helpOf(s pipeline.Sample) string {
	if s.Help == "" {
		return s.Name
	}
	return s.Help
}

// NewPrometheusRegistry returns a registry exporting m plus the Go runtime
// and process collectors (memory, CPU, file descriptors).
func NewPrometheusRegistry(m *pipeline.Metrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metricsCollector{m: m})
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves m in the Prometheus text format.
func MetricsHandler(m *pipeline.Metrics) http.Handler {
	reg := NewPrometheusRegistry(m)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
