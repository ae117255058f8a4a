package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/snakepipe/snakepipe/pipeline"
)

// hostMetrics is one scrape of the host's /metrics.
type hostMetrics struct {
	fams map[string]*dto.MetricFamily
}

func scrape(ctx context.Context, admin, token string) (*hostMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	return &hostMetrics{fams: fams}, nil
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// sum adds every series of a family.
func (h *hostMetrics) sum(name string) float64 {
	f := h.fams[name]
	if f == nil {
		return 0
	}
	t := 0.0
	for _, m := range f.Metric {
		t += metricValue(m)
	}
	return t
}

// max is the largest series of a family (events written: each sink of a
// single-route benchmark sees every event, so summing would double count).
func (h *hostMetrics) max(name string) float64 {
	f := h.fams[name]
	if f == nil {
		return 0
	}
	best := 0.0
	for _, m := range f.Metric {
		best = math.Max(best, metricValue(m))
	}
	return best
}

// dropped returns every *_dropped_total series keyed "metric{reason}".
func (h *hostMetrics) dropped() map[string]float64 {
	out := map[string]float64{}
	for name, f := range h.fams {
		if !strings.HasSuffix(name, "_dropped_total") {
			continue
		}
		for _, m := range f.Metric {
			reason := ""
			for _, l := range m.Label {
				if l.GetName() == "reason" {
					reason = l.GetValue()
				}
			}
			out[name+"{"+reason+"}"] += metricValue(m)
		}
	}
	return out
}

// latency returns the merged sink latency histogram.
func (h *hostMetrics) latency() pipeline.HistogramSnapshot {
	f := h.fams[latencyMetric]
	var s pipeline.HistogramSnapshot
	if f == nil {
		return s
	}
	for _, m := range f.Metric {
		hist := m.Histogram
		if hist == nil {
			continue
		}
		if s.Buckets == nil {
			for _, b := range hist.Bucket {
				s.Buckets = append(s.Buckets, pipeline.Bucket{UpperBound: b.GetUpperBound()})
			}
			s.Buckets = append(s.Buckets, pipeline.Bucket{UpperBound: math.Inf(1)})
		}
		for i, b := range hist.Bucket {
			if i < len(s.Buckets) {
				s.Buckets[i].Count += b.GetCumulativeCount()
			}
		}
		s.Buckets[len(s.Buckets)-1].Count += hist.GetSampleCount()
		s.Count += hist.GetSampleCount()
		s.Sum += hist.GetSampleSum()
	}
	return s
}

// Names of the host metrics the report reads (docs/operations.md).
const (
	receivedMetric = "snakepipe_ingest_events_received_total"
	rejectedMetric = "snakepipe_ingest_events_rejected_total"
	writtenMetric  = "snakepipe_sink_events_written_total"
	latencyMetric  = "snakepipe_sink_event_latency_seconds"
	cpuMetric      = "process_cpu_seconds_total"
	rssMetric      = "process_resident_memory_bytes"
	pluginFailures = "snakepipe_plugin_failures_total"
)

// settle scrapes until the host has accounted for want events (written,
// rejected or dropped) or its sink counter has not moved for a second (a
// sink can stall for a few hundred ms on a slow disk), at most 15 s.
func settle(ctx context.Context, admin, token string, before *hostMetrics, want float64) (*hostMetrics, error) {
	deadline := time.Now().Add(15 * time.Second)
	var last float64 = -1
	still := 0 // consecutive scrapes without progress
	for {
		after, err := scrape(ctx, admin, token)
		if err != nil {
			return nil, err
		}
		written := after.max(writtenMetric) - before.max(writtenMetric)
		rejected := after.sum(rejectedMetric) - before.sum(rejectedMetric)
		dropped := 0.0
		for k, v := range after.dropped() {
			dropped += v - before.dropped()[k]
		}
		done := written+rejected+dropped >= want
		if written == last {
			still++
		} else {
			still = 0
		}
		if done || still >= 4 || time.Now().After(deadline) {
			return after, nil
		}
		last = written
		select {
		case <-ctx.Done():
			return after, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// hostReport compares two scrapes. Latency figures are only meaningful when
// the events carried their send time (latency mode): otherwise their
// timestamps are when the frames were built.
func hostReport(before, after *hostMetrics, sent uint64, latency bool) *HostReport {
	r := &HostReport{
		EventsReceived: after.sum(receivedMetric) - before.sum(receivedMetric),
		EventsRejected: after.sum(rejectedMetric) - before.sum(rejectedMetric),
		EventsWritten:  after.max(writtenMetric) - before.max(writtenMetric),
		CPUSeconds:     after.sum(cpuMetric) - before.sum(cpuMetric),
		RSSStartBytes:  before.sum(rssMetric),
		RSSEndBytes:    after.sum(rssMetric),
		EventsDropped:  map[string]float64{},
		PluginFailures: after.sum(pluginFailures) - before.sum(pluginFailures),
	}
	b := before.dropped()
	for k, v := range after.dropped() {
		if d := v - b[k]; d > 0 {
			r.EventsDropped[k] = d
		}
	}
	if sent > 0 {
		r.CPUSecondsPerMillion = r.CPUSeconds / float64(sent) * 1e6
	}
	if lat := after.latency().Sub(before.latency()); latency && lat.Count > 0 {
		r.LatencyObservations = float64(lat.Count)
		r.LatencyP50Ms = lat.Quantile(0.50) * 1e3
		r.LatencyP99Ms = lat.Quantile(0.99) * 1e3
		r.LatencyMaxBucketMs = lat.Quantile(1) * 1e3
	}
	return r
}

// HostSnapshot is one reading of a host's /metrics, for callers (the bench
// runner) that watch a host while something other than Run loads it.
type HostSnapshot struct{ m *hostMetrics }

// ReadHost scrapes the admin listener's /metrics.
func ReadHost(ctx context.Context, admin, token string) (HostSnapshot, error) {
	m, err := scrape(ctx, admin, token)
	return HostSnapshot{m}, err
}

// RSSBytes is the host's resident memory (process_resident_memory_bytes).
func (s HostSnapshot) RSSBytes() float64 { return s.m.sum(rssMetric) }

// EventsReceived is the host's ingest counter of accepted worker events.
func (s HostSnapshot) EventsReceived() float64 { return s.m.sum(receivedMetric) }

// CompareHost reports what the host did between two snapshots; sent is what
// the caller sent (the per-million figures are per event sent).
func CompareHost(before, after HostSnapshot, sent uint64) *HostReport {
	return hostReport(before.m, after.m, sent, false)
}
