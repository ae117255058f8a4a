package ingest

import (
	"sync"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Metric names (docs/operations.md lists them).
const (
	metricStreams        = "snakepipe_ingest_streams"
	metricReceived       = "snakepipe_ingest_events_received_total"
	metricRejected       = "snakepipe_ingest_events_rejected_total"
	metricFixed          = "snakepipe_ingest_metadata_fixed_total"
	metricFramesInvalid  = "snakepipe_ingest_frames_invalid_total"
	metricBytes          = "snakepipe_ingest_bytes_received_total"
	metricFrames         = "snakepipe_ingest_frames_received_total"
	metricStreamsRefused = "snakepipe_ingest_streams_refused_total"
	metricConsumeErrors  = "snakepipe_ingest_consume_errors_total"
	metricDialConnects   = "snakepipe_ingest_dial_connects_total"
)

// Reasons for snakepipe_ingest_frames_invalid_total. Each ends its stream.
const (
	invalidTooLarge    = "too_large"     // larger than max_message_bytes
	invalidMalformed   = "malformed"     // not valid wire data for WorkerMessage
	invalidNoHello     = "no_hello"      // first frame was not a Hello
	invalidBadHello    = "bad_hello"     // Hello failed validation
	invalidSecondHello = "second_hello"  // a Hello after the first
	invalidHelloTime   = "hello_timeout" // no frame at all within hello_timeout
	invalidOverLimit   = "over_limit"    // too many events, or entries in one event
)

// metrics holds the server's series. Labels come only from code and the
// catalog's fixed reason lists, never from worker input.
type metrics struct {
	reg            *pipeline.Metrics
	streams        *pipeline.Gauge
	received       *pipeline.Counter
	bytes          *pipeline.Counter
	frames         *pipeline.Counter
	streamsRefused *pipeline.Counter
	consumeErrors  *pipeline.Counter
	dialConnects   *pipeline.Counter

	mu       sync.RWMutex
	rejected map[string]*pipeline.Counter
	fixed    map[string]*pipeline.Counter
	invalid  map[string]*pipeline.Counter
}

func newMetrics(reg *pipeline.Metrics) *metrics {
	m := &metrics{
		reg:            reg,
		streams:        reg.Gauge(metricStreams, "Live worker streams (including dial-mode connections)."),
		received:       reg.Counter(metricReceived, "Events decoded from worker frames, accepted or rejected."),
		bytes:          reg.Counter(metricBytes, "Bytes of worker frames received."),
		frames:         reg.Counter(metricFrames, "Worker frames received."),
		streamsRefused: reg.Counter(metricStreamsRefused, "Streams refused because max_streams were live."),
		consumeErrors:  reg.Counter(metricConsumeErrors, "Batches the pipeline refused (its queue dropped them; counted there by reason)."),
		dialConnects:   reg.Counter(metricDialConnects, "Dial-mode connection attempts to Snakepit workers."),
		rejected:       map[string]*pipeline.Counter{},
		fixed:          map[string]*pipeline.Counter{},
		invalid:        map[string]*pipeline.Counter{},
	}
	for _, r := range knownReasons() {
		m.rejectedFor(r)
	}
	for _, r := range []string{invalidTooLarge, invalidMalformed, invalidNoHello, invalidBadHello, invalidSecondHello, invalidHelloTime, invalidOverLimit} {
		m.invalidFor(r)
	}
	return m
}

func (m *metrics) labelled(set map[string]*pipeline.Counter, name, help, key, value string) *pipeline.Counter {
	m.mu.RLock()
	c, ok := set[value]
	m.mu.RUnlock()
	if ok {
		return c
	}
	c = m.reg.Counter(name, help, pipeline.Label{Key: key, Value: value})
	m.mu.Lock()
	set[value] = c
	m.mu.Unlock()
	return c
}

func (m *metrics) rejectedFor(reason string) *pipeline.Counter {
	return m.labelled(m.rejected, metricRejected, "Events rejected by the catalog, by reason.", "reason", reason)
}

func (m *metrics) fixedFor(fix string) *pipeline.Counter {
	return m.labelled(m.fixed, metricFixed, "Repairs the sanitizer made to accepted events, by kind.", "fix", fix)
}

func (m *metrics) invalidFor(reason string) *pipeline.Counter {
	return m.labelled(m.invalid, metricFramesInvalid, "Frames that ended their stream, by reason.", "reason", reason)
}
