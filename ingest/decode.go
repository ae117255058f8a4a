package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// This file is the hot path: it decodes WorkerMessage / EventBatch / Event
// wire bytes straight into pipeline.Events, with the same result as
// proto.Unmarshal into the generated types followed by a conversion
// (decode_test.go checks that by differential fuzzing), but without building
// the generated messages:
//
//   - the frame is one []byte owned by the batch; every string aliases it
//     (unsafe.String), so the frame stays alive while any event does and
//     must never be written;
//   - all Measurements of a batch share one backing array, all Metadata
//     another (sized from the previous batch; rarely two after a regrow);
//     each event's slices are capped at their length, so an append by a
//     later stage reallocates instead of overwriting a neighbour;
//   - a name the catalog knows (the name field, or event_parts) becomes the
//     catalog's interned string, with no allocation and no UTF-8 pass
//     (catalog names are ASCII), and Check then finds it by address;
//   - string headers are stored once, straight into their final place:
//     each store of a pointer is a write barrier while the GC marks, and
//     barriers were the largest single cost after parsing itself.
//
// Semantics follow the protobuf spec as the generated code implements it:
// unknown fields and known fields with an unexpected wire type are skipped;
// for a repeated message field every occurrence is a new element; a
// non-repeated message field that occurs twice is merged (its scalars: last
// one wins); of a oneof the last member on the wire wins; strings must be
// valid UTF-8 (proto3). Anything that is not well-formed wire data is an
// error wrapping errMalformed, never a panic.

// errMalformed is wrapped by every decode error for data that is not valid
// protobuf.
var errMalformed = errors.New("malformed frame")

// errOverLimit is wrapped by decode errors for valid protobuf that exceeds
// the decoder's limits (which bound the memory a small frame can cost:
// every event takes ~120 bytes and every entry 32-56 bytes in memory, from
// as little as 2 bytes on the wire).
var errOverLimit = errors.New("frame over limits")

// maxEventEntries bounds measurements plus metadata entries of one event.
// The catalog keeps far fewer (max_measurements, max_metadata_keys).
const maxEventEntries = 256

// maxSmallFrameBytes bounds Hello and WorkerStats frames, which generated
// code decodes (a 4 MiB stats frame of tiny map entries would otherwise
// build a million-entry map). A valid Hello is under 16 KiB.
const maxSmallFrameBytes = 64 << 10

// nameResolver resolves event_parts to the interned dotted event name.
// *catalog.Catalog implements it; ok is false for unknown names.
type nameResolver interface {
	LookupParts(parts []string) (name string, ok bool)
}

// frameKind is which WorkerMessage oneof member a frame carries.
type frameKind uint8

const (
	frameEmpty frameKind = iota // no member set (or only unknown fields)
	frameHello
	frameBatch
	frameStats
)

func (k frameKind) String() string {
	switch k {
	case frameHello:
		return "hello"
	case frameBatch:
		return "batch"
	case frameStats:
		return "stats"
	default:
		return "empty"
	}
}

// frame is one decoded WorkerMessage.
type frame struct {
	kind frameKind
	// events and seq are set for frameBatch.
	events []pipeline.Event
	seq    uint64
	// msg is set for frameHello and frameStats (generated code: rare frames).
	msg *pb.WorkerMessage
}

// decoder decodes frames of one stream. It keeps scratch slices between
// frames and is not safe for concurrent use.
type decoder struct {
	names nameResolver // nil: names are joined from parts
	// maxEvents bounds events per frame; limits enables maxEventEntries and
	// maxSmallFrameBytes. Both are off in differential tests against
	// generated code, which has no limits.
	maxEvents int
	limits    bool
	segs      [][]byte
	parts     []string
	one       [1]string // a name field as parts, for names.LookupParts
	// lastName is the name names resolved last: a one-entry cache, as
	// events of one worker mostly repeat a few names. It holds no frame
	// memory (it is the resolver's own string). A stale entry after a
	// catalog reload is harmless: Check, not the decoder, decides.
	lastName string
	// Entries per event of the previous batch, to size the next one.
	lastEvents, lastMs, lastMd int
}

// estimate scales the previous batch's entry count to count events, with a
// little headroom.
func estimate(count, lastEntries, lastEvents int) int {
	if lastEvents == 0 {
		return count * 4
	}
	return (count*lastEntries+lastEvents-1)/lastEvents + 2
}

func makeOrNil[T any](n int) []T {
	if n == 0 {
		return nil
	}
	return make([]T, 0, n)
}

func newDecoder(names nameResolver) *decoder {
	return &decoder{names: names}
}

func malformed(what string, n int) error {
	return fmt.Errorf("%w: %s: %w", errMalformed, what, protowire.ParseError(n))
}

// consumeTag is protowire.ConsumeTag with a fast path for one-byte tags.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		num := protowire.Number(b[0] >> 3)
		if num == 0 {
			return 0, 0, -1
		}
		return num, protowire.Type(b[0] & 7), 1
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		// protowire accepts up to MaxInt32; the protobuf spec (and
		// generated code) only up to 2^29-1.
		return 0, 0, -2
	}
	return num, typ, n
}

// consumeVarint is protowire.ConsumeVarint with a fast path for one byte.
func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// consumeBytes is protowire.ConsumeBytes with a fast path for one-byte
// lengths.
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		l := int(b[0])
		if l+1 > len(b) {
			return nil, -1 // truncated, as protowire reports it
		}
		return b[1 : 1+l : 1+l], 1 + l
	}
	return protowire.ConsumeBytes(b)
}

// skip consumes one unknown field's value.
func skip(num protowire.Number, typ protowire.Type, b []byte, what string) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, malformed(what, n)
	}
	return n, nil
}

// aliasString returns v as a string sharing v's memory, checking that it is
// valid UTF-8 as proto3 requires.
func aliasString(v []byte, what string) (string, error) {
	if len(v) == 0 {
		return "", nil
	}
	if !validUTF8(v) {
		return "", fmt.Errorf("%w: %s: invalid UTF-8", errMalformed, what)
	}
	return unsafe.String(&v[0], len(v)), nil
}

// validUTF8 is utf8.Valid with an inlinable ASCII fast path, 8 bytes at a
// time: telemetry strings are nearly always ASCII.
func validUTF8(v []byte) bool {
	i := 0
	for ; i+8 <= len(v); i += 8 {
		if binary.LittleEndian.Uint64(v[i:])&0x8080808080808080 != 0 {
			return utf8.Valid(v[i:])
		}
	}
	for ; i < len(v); i++ {
		if v[i] >= 0x80 {
			return utf8.Valid(v[i:])
		}
	}
	return true
}

// decodeFrame decodes one WorkerMessage. For a batch, events' strings alias
// buf, which must not be modified afterwards.
func (d *decoder) decodeFrame(buf []byte) (frame, error) {
	d.segs = d.segs[:0]
	kind := frameEmpty
	superseded := false
	b := buf
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return frame{}, malformed("WorkerMessage", n)
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= 1 && num <= 3 {
			v, n := consumeBytes(b)
			if n < 0 {
				return frame{}, malformed("WorkerMessage", n)
			}
			b = b[n:]
			k := frameKind(num)
			if kind != frameEmpty && kind != k {
				superseded = true
			}
			if k == frameBatch {
				if kind != frameBatch {
					d.segs = d.segs[:0]
				}
				d.segs = append(d.segs, v)
			}
			kind = k
			continue
		}
		n, err := skip(num, typ, b, "WorkerMessage")
		if err != nil {
			return frame{}, err
		}
		b = b[n:]
	}
	if kind != frameBatch && d.limits && len(buf) > maxSmallFrameBytes {
		return frame{}, fmt.Errorf("%w: %s frame of %d bytes, more than %d", errOverLimit, kind, len(buf), maxSmallFrameBytes)
	}
	if kind != frameBatch || superseded {
		// Rare shapes go through generated code, which also validates
		// members that a later one replaced.
		msg := &pb.WorkerMessage{}
		if err := proto.Unmarshal(buf, msg); err != nil {
			return frame{}, fmt.Errorf("%w: %w", errMalformed, err)
		}
		if kind != frameBatch {
			return frame{kind: kind, msg: msg}, nil
		}
	}
	events, seq, err := d.decodeBatch(d.segs)
	if err != nil {
		return frame{}, err
	}
	return frame{kind: frameBatch, events: events, seq: seq}, nil
}

// decodeBatch decodes the occurrences of one EventBatch (merged, as the
// protobuf spec says for a message field seen several times).
func (d *decoder) decodeBatch(segs [][]byte) ([]pipeline.Event, uint64, error) {
	// Count events first so that the Events array is allocated once.
	count := 0
	for _, seg := range segs {
		for b := seg; len(b) > 0; {
			num, typ, n := consumeTag(b)
			if n < 0 {
				return nil, 0, malformed("EventBatch", n)
			}
			b = b[n:]
			if num == 1 && typ == protowire.BytesType {
				count++
			}
			n, err := skip(num, typ, b, "EventBatch")
			if err != nil {
				return nil, 0, err
			}
			b = b[n:]
		}
	}
	if d.maxEvents > 0 && count > d.maxEvents {
		return nil, 0, fmt.Errorf("%w: %d events in one frame, more than max_batch_events (%d)", errOverLimit, count, d.maxEvents)
	}
	if count == 0 {
		seq, err := d.batchSeq(segs)
		return nil, seq, err
	}
	events := make([]pipeline.Event, count)
	// Decode straight into the batch's backing arrays, sized from the
	// previous batch's entries per event. An underestimate costs one regrow:
	// events decoded before it keep pointing into the old array, which
	// append never writes again, so their entries stay correct.
	// They are locals, not decoder fields, passed through decodeEvent: every
	// store of a slice header into the (heap) decoder is a write barrier
	// while the GC marks.
	ms := makeOrNil[pipeline.Measurement](estimate(count, d.lastMs, d.lastEvents))
	md := makeOrNil[pipeline.Label](estimate(count, d.lastMd, d.lastEvents))
	var seq uint64
	i := 0
	for _, seg := range segs {
		for b := seg; len(b) > 0; {
			num, typ, n := consumeTag(b) // checked by the counting pass
			b = b[n:]
			switch {
			case num == 1 && typ == protowire.BytesType:
				v, n := consumeBytes(b)
				b = b[n:]
				var err error
				if ms, md, err = d.decodeEvent(v, &events[i], ms, md); err != nil {
					return nil, 0, fmt.Errorf("event %d: %w", i, err)
				}
				i++
				continue
			case num == 2 && typ == protowire.VarintType:
				v, n := consumeVarint(b)
				if n < 0 {
					return nil, 0, malformed("EventBatch.sequence", n)
				}
				seq = v
				b = b[n:]
				continue
			}
			n, _ = skip(num, typ, b, "EventBatch")
			b = b[n:]
		}
	}
	d.lastEvents, d.lastMs, d.lastMd = count, len(ms), len(md)
	clear(d.parts) // drop references to this frame's strings
	d.one = [1]string{}
	return events, seq, nil
}

// batchSeq reads only the sequence of an EventBatch without events.
func (d *decoder) batchSeq(segs [][]byte) (uint64, error) {
	var seq uint64
	for _, seg := range segs {
		for b := seg; len(b) > 0; {
			num, typ, n := consumeTag(b)
			b = b[n:]
			if num == 2 && typ == protowire.VarintType {
				v, n := consumeVarint(b)
				if n < 0 {
					return 0, malformed("EventBatch.sequence", n)
				}
				seq = v
				b = b[n:]
				continue
			}
			n, _ = skip(num, typ, b, "EventBatch")
			b = b[n:]
		}
	}
	return seq, nil
}

// decodeEvent decodes one Event (snakepipe.v1.Event, or the wire-identical
// snakepit.bridge.TelemetryEvent) into ev, appending its entries to ms and
// md (the batch's backing arrays) and returning them.
func (d *decoder) decodeEvent(b []byte, ev *pipeline.Event, ms []pipeline.Measurement, md []pipeline.Label) ([]pipeline.Measurement, []pipeline.Label, error) {
	ms0, md0 := len(ms), len(md)
	parts := d.parts[:0]
	// name and parts are not UTF-8 checked yet (see resolveName).
	var name []byte
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return nil, nil, malformed("Event", n)
		}
		b = b[n:]
		switch num {
		case 1, 2, 3, 5, 7:
			if typ != protowire.BytesType {
				break
			}
			v, n := consumeBytes(b)
			if n < 0 {
				return nil, nil, malformed("Event", n)
			}
			b = b[n:]
			var err error
			switch num {
			case 1:
				parts = append(parts, unsafeString(v))
			case 2:
				// Decode into the next (zeroed) element in place: copying a
				// decoded entry in would store each string header twice.
				ms = nextSlot(ms)
				err = decodeMeasurement(v, &ms[len(ms)-1])
			case 3:
				md = nextSlot(md)
				err = decodeLabel(v, &md[len(md)-1])
			case 5:
				ev.CorrelationID, err = aliasString(v, "correlation_id")
			case 7:
				// Last one wins; an earlier one must still be valid UTF-8.
				if name != nil && !validUTF8(name) {
					return nil, nil, fmt.Errorf("%w: name: invalid UTF-8", errMalformed)
				}
				name = v
			}
			if err != nil {
				return nil, nil, err
			}
			continue
		case 4:
			if typ != protowire.VarintType {
				break
			}
			v, n := consumeVarint(b)
			if n < 0 {
				return nil, nil, malformed("Event.timestamp_ns", n)
			}
			ev.TimestampNs = int64(v)
			b = b[n:]
			continue
		case 6:
			if typ != protowire.Fixed64Type {
				break
			}
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return nil, nil, malformed("Event.sample_rate", n)
			}
			ev.SampleRate = math.Float64frombits(v)
			b = b[n:]
			continue
		}
		n, err := skip(num, typ, b, "Event")
		if err != nil {
			return nil, nil, err
		}
		b = b[n:]
	}
	if cap(parts) != cap(d.parts) {
		d.parts = parts // grown: keep the larger scratch
	}
	if d.limits && len(ms)+len(md)-ms0-md0 > maxEventEntries {
		return nil, nil, fmt.Errorf("%w: more than %d measurements and metadata entries in one event", errOverLimit, maxEventEntries)
	}
	ev.SampleRate = wireSampleRate(ev.SampleRate)
	if err := d.resolveName(ev, name, parts); err != nil {
		return nil, nil, err
	}
	// Capped at their length: a later append reallocates instead of
	// overwriting the next event's entries.
	if n := len(ms); n > ms0 {
		ev.Measurements = ms[ms0:n:n]
	}
	if n := len(md); n > md0 {
		ev.Metadata = md[md0:n:n]
	}
	return ms, md, nil
}

// resolveName sets ev.Name from the name field (if not empty) or else the
// event_parts, and checks that all of them are valid UTF-8. A name the
// catalog knows is set to the catalog's interned string, so that Check
// finds it without hashing and does not store it again; and it needs no
// UTF-8 check of its own: catalog names are ASCII, so wire bytes equal to
// one are valid.
func (d *decoder) resolveName(ev *pipeline.Event, name []byte, parts []string) error {
	resolved := false
	if len(name) > 0 {
		if string(name) == d.lastName { // (no allocation: compared in place)
			ev.Name, resolved = d.lastName, true
		} else if d.names != nil {
			// A decoder field, not a local: a local array would escape to
			// the heap through the interface call, once per event.
			d.one[0] = unsafeString(name)
			if ev.Name, resolved = d.names.LookupParts(d.one[:]); resolved {
				d.lastName = ev.Name
			}
		}
		if !resolved {
			s, err := aliasString(name, "name")
			if err != nil {
				return err
			}
			ev.Name = s
		}
		// The parts are unused but must be valid too (below).
	} else if len(parts) > 0 && d.names != nil {
		if d.lastName != "" && joinsTo(parts, d.lastName) {
			ev.Name = d.lastName
			return nil
		}
		if ev.Name, resolved = d.names.LookupParts(parts); resolved {
			d.lastName = ev.Name
			return nil
		}
	}
	for _, p := range parts {
		if !validUTF8(unsafe.Slice(unsafe.StringData(p), len(p))) {
			return fmt.Errorf("%w: event_parts: invalid UTF-8", errMalformed)
		}
	}
	if len(name) == 0 && len(parts) > 0 {
		// Unknown (or no catalog): the joined name, allocated on the
		// reject path only.
		ev.Name = strings.Join(parts, ".")
	}
	return nil
}

// joinsTo reports whether strings.Join(parts, ".") == name, without
// joining.
func joinsTo(parts []string, name string) bool {
	for i, p := range parts {
		if i > 0 {
			if name == "" || name[0] != '.' {
				return false
			}
			name = name[1:]
		}
		if len(p) > len(name) || name[:len(p)] != p {
			return false
		}
		name = name[len(p):]
	}
	return name == ""
}

// unsafeString returns v as a string sharing v's memory, without the UTF-8
// check: the caller checks it before the string leaves the decoder.
func unsafeString(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

// nextSlot extends s by one element, growing it if full. The new element
// is zero: the decoder's backing arrays are fresh (make, or a grow's zeroed
// tail) and only ever extended here.
func nextSlot[T any](s []T) []T {
	if len(s) == cap(s) {
		s = slices.Grow(s, 1)
	}
	return s[:len(s)+1]
}

// wireSampleRate maps the wire's 0 (unset) to 1 (not sampled).
func wireSampleRate(r float64) float64 {
	if r == 0 {
		return 1
	}
	return r
}

// decodeMeasurement decodes a MeasurementEntry (or a map<string,
// TelemetryValue> entry: the same wire shape) into m, which must be zero.
func decodeMeasurement(b []byte, m *pipeline.Measurement) error {
	// Fast path for the usual encoding: a short key (field 1) then a short
	// Value (field 2) holding one int64 or one double, nothing else.
	if len(b) >= 4 && b[0] == 0x0a && b[1] < 0x80 {
		kl := int(b[1])
		if 4+kl <= len(b) && b[2+kl] == 0x12 && b[3+kl] < 0x80 && 4+kl+int(b[3+kl]) == len(b) {
			k, v := b[2:2+kl], b[4+kl:]
			if validUTF8(k) && len(v) >= 2 {
				switch {
				case v[0] == 0x08:
					if x, n := consumeVarint(v[1:]); n == len(v)-1 {
						if kl > 0 {
							m.Key = unsafe.String(&k[0], kl)
						}
						// Field by field: m is zero, so Value.Str needs no
						// store (a write barrier while the GC marks).
						m.Value.Kind, m.Value.Int = pipeline.KindInt, int64(x)
						return nil
					}
				case v[0] == 0x11 && len(v) == 9:
					if kl > 0 {
						m.Key = unsafe.String(&k[0], kl)
					}
					m.Value.Kind, m.Value.Float = pipeline.KindFloat, math.Float64frombits(binary.LittleEndian.Uint64(v[1:]))
					return nil
				}
			}
		}
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return malformed("MeasurementEntry", n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := consumeBytes(b)
			if n < 0 {
				return malformed("MeasurementEntry", n)
			}
			b = b[n:]
			var err error
			if num == 1 {
				m.Key, err = aliasString(v, "measurement key")
			} else {
				err = decodeValue(v, &m.Value)
			}
			if err != nil {
				return err
			}
			continue
		}
		n, err := skip(num, typ, b, "MeasurementEntry")
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// decodeValue merges a Value message into v (last oneof member wins).
func decodeValue(b []byte, v *pipeline.Value) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return malformed("Value", n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			x, n := consumeVarint(b)
			if n < 0 {
				return malformed("Value.int_value", n)
			}
			*v = pipeline.Value{Kind: pipeline.KindInt, Int: int64(x)}
			b = b[n:]
			continue
		case num == 2 && typ == protowire.Fixed64Type:
			x, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return malformed("Value.float_value", n)
			}
			*v = pipeline.Value{Kind: pipeline.KindFloat, Float: math.Float64frombits(x)}
			b = b[n:]
			continue
		case num == 3 && typ == protowire.BytesType:
			x, n := consumeBytes(b)
			if n < 0 {
				return malformed("Value.string_value", n)
			}
			s, err := aliasString(x, "string_value")
			if err != nil {
				return err
			}
			*v = pipeline.Value{Kind: pipeline.KindString, Str: s}
			b = b[n:]
			continue
		}
		n, err := skip(num, typ, b, "Value")
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// decodeLabel decodes a MetadataEntry (or a map<string, string> entry) into
// l, which must be zero.
func decodeLabel(b []byte, l *pipeline.Label) error {
	// Fast path for the usual encoding: key (field 1) then value (field 2),
	// both shorter than 128 bytes, nothing else.
	if len(b) >= 4 && b[0] == 0x0a && b[1] < 0x80 {
		kl := int(b[1])
		if 2+kl+2 <= len(b) && b[2+kl] == 0x12 && b[3+kl] < 0x80 && 4+kl+int(b[3+kl]) == len(b) {
			k, v := b[2:2+kl], b[4+kl:]
			// The four tag and length bytes are ASCII too, so one check of
			// the whole entry covers key and value.
			if validUTF8(b) {
				if kl > 0 {
					l.Key = unsafe.String(&k[0], kl)
				}
				if len(v) > 0 {
					l.Value = unsafe.String(&v[0], len(v))
				}
				return nil
			}
		}
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return malformed("MetadataEntry", n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := consumeBytes(b)
			if n < 0 {
				return malformed("MetadataEntry", n)
			}
			b = b[n:]
			var err error
			if num == 1 {
				l.Key, err = aliasString(v, "metadata key")
			} else {
				l.Value, err = aliasString(v, "metadata value")
			}
			if err != nil {
				return err
			}
			continue
		}
		n, err := skip(num, typ, b, "MetadataEntry")
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// decodeSingleEvent decodes one top-level Event frame (dial mode: each
// TelemetryEvent is its own gRPC message) into ev, with its own exact-size
// measurement and metadata arrays.
func (d *decoder) decodeSingleEvent(buf []byte, ev *pipeline.Event) error {
	_, _, err := d.decodeEvent(buf, ev, nil, nil)
	clear(d.parts) // drop references to this frame's strings
	d.one = [1]string{}
	return err
}
