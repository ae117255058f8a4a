// Package loadgen emulates a fleet of workers against a running snakepipe:
// many real gRPC streams sending pre-encoded batches of a realistic event
// mix, at a target rate or as fast as possible, and reports what was sent,
// what the host says it did (from its /metrics), CPU cost per event on both
// sides and, in latency mode, send-to-sink latency.
package loadgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of snakepipe.v1 messages (proto/snakepipe/v1/ingest.proto).
// The loadgen writes frames by hand so encoding costs it almost nothing per
// event; a test checks the bytes decode with the generated code.
const (
	fieldWorkerMsgBatch = 2
	fieldBatchEvents    = 1
	fieldBatchSequence  = 2
	fieldEventMeas      = 2
	fieldEventMeta      = 3
	fieldEventTs        = 4
	fieldEventCorr      = 5
	fieldEventName      = 7
	fieldEntryKey       = 1
	fieldEntryValue     = 2
	fieldValueInt       = 1
	fieldValueFloat     = 2
)

// template is one event shape of the mix.
type template struct {
	name  string
	ints  []string
	flts  []string
	meta  []string // metadata keys; values drawn from small realistic sets
	share int      // relative frequency
}

// mix is a realistic workload of the built-in catalog: calls dominate, with
// spans, tool executions and samplers around them.
var mix = []template{
	{name: "python.call.start", ints: []string{"system_time"}, meta: []string{"command", "session_id"}, share: 30},
	{name: "python.call.stop", ints: []string{"duration"}, meta: []string{"command", "session_id", "result"}, share: 30},
	{name: "python.call.exception", ints: []string{"duration"}, meta: []string{"command", "error_type", "error_message"}, share: 2},
	{name: "tool.execution.start", ints: []string{"system_time"}, meta: []string{"tool", "operation"}, share: 12},
	{name: "tool.execution.stop", ints: []string{"duration"}, meta: []string{"tool", "operation"}, share: 12},
	{name: "python.memory.sampled", ints: []string{"rss_bytes", "vms_bytes"}, share: 6},
	{name: "python.cpu.sampled", flts: []string{"cpu_percent"}, share: 4},
	{name: "python.gc.completed", ints: []string{"duration", "collected", "generation"}, share: 4},
}

var metaValues = map[string][]string{
	"command":       {"predict", "embed", "tokenize", "rerank", "classify"},
	"session_id":    {"sess-7f3a9c", "sess-0b12de", "sess-9e8d7c", "sess-44aa01"},
	"result":        {"success"},
	"error_type":    {"ValueError", "TimeoutError", "KeyError"},
	"error_message": {"input shape (3, 224) does not match model", "deadline exceeded after 30s"},
	"tool":          {"search_docs", "run_sql", "fetch_url", "summarize"},
	"operation":     {"execute", "validate"},
}

// frame is one pre-encoded WorkerMessage{batch}, with the offsets of every
// event's timestamp varint so latency mode can stamp the send time in place.
type frame struct {
	buf    []byte
	tsOffs []int
	events int
}

// stamped returns a copy of the frame with every event timestamp set to ns.
// Timestamps are written as 9-byte varints (every Unix-ns time from 2002 to
// 2262 is one), so the length never changes.
func (f *frame) stamped(ns int64) []byte {
	b := append([]byte(nil), f.buf...)
	for _, off := range f.tsOffs {
		putVarint9(b[off:off+9], uint64(ns))
	}
	return b
}

func putVarint9(dst []byte, v uint64) {
	for i := 0; i < 8; i++ {
		dst[i] = byte(v) | 0x80
		v >>= 7
	}
	dst[8] = byte(v)
}

// appendTagLen appends a length-delimited field header.
func appendTagLen(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = appendTagLen(b, num, len(s))
	return append(b, s...)
}

// encodeEvent appends one Event message body and returns the offset of its
// timestamp varint within the body.
func encodeEvent(t template, rng *rand.Rand, ts int64) (body []byte, tsOff int) {
	b := appendString(nil, fieldEventName, t.name)
	for _, k := range t.ints {
		v := rng.Int64N(5_000_000) + 1000
		var val []byte
		val = protowire.AppendTag(val, fieldValueInt, protowire.VarintType)
		val = protowire.AppendVarint(val, uint64(v))
		entry := appendString(nil, fieldEntryKey, k)
		entry = appendTagLen(entry, fieldEntryValue, len(val))
		entry = append(entry, val...)
		b = appendTagLen(b, fieldEventMeas, len(entry))
		b = append(b, entry...)
	}
	for _, k := range t.flts {
		var val []byte
		val = protowire.AppendTag(val, fieldValueFloat, protowire.Fixed64Type)
		val = binary.LittleEndian.AppendUint64(val, math.Float64bits(rng.Float64()*100))
		entry := appendString(nil, fieldEntryKey, k)
		entry = appendTagLen(entry, fieldEntryValue, len(val))
		entry = append(entry, val...)
		b = appendTagLen(b, fieldEventMeas, len(entry))
		b = append(b, entry...)
	}
	for _, k := range t.meta {
		vals := metaValues[k]
		entry := appendString(nil, fieldEntryKey, k)
		entry = appendString(entry, fieldEntryValue, vals[rng.IntN(len(vals))])
		b = appendTagLen(b, fieldEventMeta, len(entry))
		b = append(b, entry...)
	}
	b = protowire.AppendTag(b, fieldEventTs, protowire.VarintType)
	tsOff = len(b)
	b = append(b, make([]byte, 9)...)
	putVarint9(b[tsOff:], uint64(ts))
	b = appendString(b, fieldEventCorr, fmt.Sprintf("sp-%024x", rng.Uint64()))
	return b, tsOff
}

// buildFrame encodes one batch of n events drawn from the mix.
func buildFrame(rng *rand.Rand, n int, seq uint64, ts int64) *frame {
	total := 0
	for _, t := range mix {
		total += t.share
	}
	var batch []byte
	var tsOffs []int
	for i := 0; i < n; i++ {
		pick := rng.IntN(total)
		var t template
		for _, c := range mix {
			if pick < c.share {
				t = c
				break
			}
			pick -= c.share
		}
		body, off := encodeEvent(t, rng, ts)
		batch = appendTagLen(batch, fieldBatchEvents, len(body))
		tsOffs = append(tsOffs, len(batch)+off)
		batch = append(batch, body...)
	}
	batch = protowire.AppendTag(batch, fieldBatchSequence, protowire.VarintType)
	batch = protowire.AppendVarint(batch, seq)
	msg := appendTagLen(nil, fieldWorkerMsgBatch, len(batch))
	hdr := len(msg)
	msg = append(msg, batch...)
	for i := range tsOffs {
		tsOffs[i] += hdr
	}
	return &frame{buf: msg, tsOffs: tsOffs, events: n}
}
