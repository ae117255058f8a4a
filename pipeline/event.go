// Package pipeline is snakepipe's shared vocabulary: the event model, the
// Stage and Sink contracts, component factories, queues and self-metrics.
// It imports only the standard library and hclog, so that every other
// package (ingest, catalog, plugins, sinks, control) can speak it without
// depending on each other, and protobuf types stop at the edge.
package pipeline

import (
	"math"
	"strconv"
)

// ValueKind says which field of a Value is set.
type ValueKind uint8

const (
	// KindInvalid is the zero kind: no value was set (a wire Value with an
	// empty oneof). The catalog rejects it.
	KindInvalid ValueKind = iota
	KindInt
	KindFloat
	KindString
)

func (k ValueKind) String() string {
	switch k {
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindString:
		return "string"
	default:
		return "invalid"
	}
}

// Value is one measurement value: an int64, a float64 or a string.
type Value struct {
	Kind  ValueKind
	Int   int64
	Float float64
	Str   string
}

// IntValue, FloatValue and StringValue build Values.
func IntValue(v int64) Value     { return Value{Kind: KindInt, Int: v} }
func FloatValue(v float64) Value { return Value{Kind: KindFloat, Float: v} }
func StringValue(v string) Value { return Value{Kind: KindString, Str: v} }

// AsFloat returns the value as a float64 (ints converted; strings and invalid
// values give NaN and false).
func (v Value) AsFloat() (float64, bool) {
	switch v.Kind {
	case KindInt:
		return float64(v.Int), true
	case KindFloat:
		return v.Float, true
	default:
		return math.NaN(), false
	}
}

// String formats the value for people (text sinks, CLI output).
func (v Value) String() string {
	switch v.Kind {
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case KindString:
		return v.Str
	default:
		return "<invalid>"
	}
}

// Measurement is one named value of an event.
type Measurement struct {
	Key   string
	Value Value
}

// Label is one metadata pair.
type Label struct {
	Key   string
	Value string
}

// Origin is the host context of the worker stream an event arrived on. One
// Origin is shared, read-only, by every event of a stream: it is never
// mutated after the stream's Hello, so events may keep a pointer to it.
type Origin struct {
	WorkerID string
	Pool     string
	Hostname string
	PID      int64
	// Addr is the peer address of the stream ("127.0.0.1:53122").
	Addr string
}

// Host-context metadata keys. They are reserved: the sanitizer removes
// worker-sent metadata with these keys, so the host's values always win.
const (
	KeyWorkerID   = "worker_id"
	KeyPool       = "pool"
	KeyHostname   = "hostname"
	KeyPID        = "pid"
	KeyReceivedNs = "received_ns"
)

// Event is one telemetry event inside snakepipe.
//
// Ownership: the Measurements and Metadata backing arrays may be shared with
// other events of the same batch and with other pipelines reading the same
// input. Code that changes them must build new slices (copy-on-write), never
// write through the existing ones. Strings are immutable and may alias the
// wire buffer they were decoded from.
type Event struct {
	// Name is the dotted event name, e.g. "python.call.stop".
	Name          string
	TimestampNs   int64
	CorrelationID string
	// SampleRate is the rate in (0, 1] the event was kept at (worker sampling
	// times any sample stage). 1 means "not sampled". Sinks that count (StatsD)
	// scale by it.
	SampleRate   float64
	Measurements []Measurement
	Metadata     []Label
	// Origin is the host context (nil for events the host made itself).
	Origin *Origin
	// ReceivedNs is the host wall clock when the event's frame arrived.
	ReceivedNs int64
	// Seq is a per-process arrival sequence number assigned by ingest. Tests
	// and the latency tracker use it; it is not on the wire.
	Seq uint64
}

// Measurement returns the value of the measurement key.
func (e *Event) Measurement(key string) (Value, bool) {
	for i := range e.Measurements {
		if e.Measurements[i].Key == key {
			return e.Measurements[i].Value, true
		}
	}
	return Value{}, false
}

// Meta returns the metadata value for key. Host-context keys (worker_id,
// pool, hostname, pid) come from Origin.
func (e *Event) Meta(key string) (string, bool) {
	if e.Origin != nil {
		switch key {
		case KeyWorkerID:
			return e.Origin.WorkerID, true
		case KeyPool:
			return e.Origin.Pool, true
		case KeyHostname:
			return e.Origin.Hostname, true
		case KeyPID:
			return strconv.FormatInt(e.Origin.PID, 10), true
		}
	}
	for i := range e.Metadata {
		if e.Metadata[i].Key == key {
			return e.Metadata[i].Value, true
		}
	}
	return "", false
}

// IsHostKey reports whether key is a reserved host-context key.
func IsHostKey(key string) bool {
	switch key {
	case KeyWorkerID, KeyPool, KeyHostname, KeyPID, KeyReceivedNs:
		return true
	}
	return false
}

// SetMeta returns e with metadata key set to value, copying the Metadata
// slice first (copy-on-write) so shared backing arrays are never written.
func (e *Event) SetMeta(key, value string) {
	md := make([]Label, 0, len(e.Metadata)+1)
	replaced := false
	for _, l := range e.Metadata {
		if l.Key == key {
			l.Value = value
			replaced = true
		}
		md = append(md, l)
	}
	if !replaced {
		md = append(md, Label{Key: key, Value: value})
	}
	e.Metadata = md
}

// DeleteMeta removes metadata key, copying the slice first.
func (e *Event) DeleteMeta(key string) {
	md := make([]Label, 0, len(e.Metadata))
	for _, l := range e.Metadata {
		if l.Key != key {
			md = append(md, l)
		}
	}
	e.Metadata = md
}

// SetMeasurement sets measurement key, copying the slice first.
func (e *Event) SetMeasurement(key string, v Value) {
	ms := make([]Measurement, 0, len(e.Measurements)+1)
	replaced := false
	for _, m := range e.Measurements {
		if m.Key == key {
			m.Value = v
			replaced = true
		}
		ms = append(ms, m)
	}
	if !replaced {
		ms = append(ms, Measurement{Key: key, Value: v})
	}
	e.Measurements = ms
}

// DeleteMeasurement removes measurement key, copying the slice first.
func (e *Event) DeleteMeasurement(key string) {
	ms := make([]Measurement, 0, len(e.Measurements))
	for _, m := range e.Measurements {
		if m.Key != key {
			ms = append(ms, m)
		}
	}
	e.Measurements = ms
}

// ApproxBytes is the event's approximate in-memory size, used to bound
// queues in bytes as well as events.
func (e *Event) ApproxBytes() int {
	n := eventOverhead + len(e.Name) + len(e.CorrelationID)
	for i := range e.Measurements {
		n += measurementOverhead + len(e.Measurements[i].Key) + len(e.Measurements[i].Value.Str)
	}
	for i := range e.Metadata {
		n += labelOverhead + len(e.Metadata[i].Key) + len(e.Metadata[i].Value)
	}
	return n
}

const (
	eventOverhead       = 160 // sizeof(Event) rounded up
	measurementOverhead = 48
	labelOverhead       = 32
)

// Batch is a group of events that moves through the pipeline together.
//
// Ownership: a Stage owns the batch it is given: it may reorder, compact or
// replace elements of Events (copy-on-write rules of Event still apply to
// each event's slices) and return the same or another batch. A Sink must not
// modify the batch at all.
type Batch struct {
	Events []Event
	// Bytes is the sum of ApproxBytes of the events when the batch entered
	// the pipeline (0 if unknown). Queues use it for their byte bound.
	Bytes int
}

// Len is the number of events.
func (b *Batch) Len() int {
	if b == nil {
		return 0
	}
	return len(b.Events)
}

// Clone returns a batch with its own Events slice (events copied by value;
// their Measurements/Metadata arrays are shared, per the copy-on-write rule).
// The router clones before giving one input batch to several pipelines.
func (b *Batch) Clone() *Batch {
	ev := make([]Event, len(b.Events))
	copy(ev, b.Events)
	return &Batch{Events: ev, Bytes: b.Bytes}
}

// ComputeBytes sets b.Bytes from the events and returns it.
func (b *Batch) ComputeBytes() int {
	n := 0
	for i := range b.Events {
		n += b.Events[i].ApproxBytes()
	}
	b.Bytes = n
	return n
}
