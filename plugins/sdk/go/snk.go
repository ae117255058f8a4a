// Package snk is the Go guest SDK for snakepipe Wasm plugins (ABI
// snakepipe_v1, see docs/plugin-abi.md). It hides the wire format: a plugin
// registers a per-event callback and reads typed fields; the SDK owns the
// input buffer, walks and validates the record batch, and writes the verdict
// or patch frame.
//
// A filter plugin imports package filter and an enricher package enrich; each
// of those exports the kind's entry point, while this package exports
// snk_abi_version, snk_in_buf and snk_init. Build with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// The batch reader and writers are plain Go over byte slices, so they also
// compile and are tested natively.
package snk

import (
	"encoding/binary"
	"errors"
	"math"
)

// ABIVersion is the value snk_abi_version returns.
const ABIVersion = 1

// Field kinds of the wire format.
const (
	KindInt         = 1 // measurement int64
	KindFloat       = 2 // measurement float64
	KindString      = 3 // measurement string
	KindMetadata    = 4 // metadata string
	KindHostContext = 5 // host context (worker_id, pool, hostname, pid), read-only
)

// Error codes returned for a whole batch (or from snk_init).
const (
	ErrGeneric  = -1
	ErrBadInput = -2
	ErrOOM      = -3
	ErrConfig   = -4
)

// Log levels for Log.
const (
	LevelTrace = 0
	LevelDebug = 1
	LevelInfo  = 2
	LevelWarn  = 3
	LevelError = 4
)

// maxBuf bounds what snk_in_buf will allocate; larger requests return 0.
const maxBuf = 32 << 20

var errMalformed = errors.New("snk: malformed input batch")

// Field is one field of an event: a measurement, a metadata entry or a
// host-context entry. Key and Value alias the input buffer and are valid only
// during the callback.
type Field struct {
	Kind  uint8
	Key   []byte
	Value []byte
}

// Int returns a KindInt value (0 for other kinds).
func (f Field) Int() int64 {
	if f.Kind != KindInt {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(f.Value))
}

// Float returns a KindFloat value (0 for other kinds).
func (f Field) Float() float64 {
	if f.Kind != KindFloat {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(f.Value))
}

// Event is a read-only view of one record of the input batch, valid only
// during the callback.
type Event struct {
	TimestampNS   int64
	Name          []byte
	CorrelationID []byte
	nfields       int
	fields        []byte // the validated field area
}

// NameIs reports whether the event's name equals name.
func (e *Event) NameIs(name string) bool { return string(e.Name) == name }

// NumFields is the number of fields (all kinds).
func (e *Event) NumFields() int { return e.nfields }

// Fields calls fn for every field in wire order (measurements, then
// metadata, then host context) until fn returns false.
func (e *Event) Fields(fn func(Field) bool) {
	b := e.fields
	for i := 0; i < e.nfields; i++ {
		f, rest := nextField(b)
		b = rest
		if !fn(f) {
			return
		}
	}
}

// find returns the first field whose kind is in [lo, hi] and whose key is
// key. It walks offsets by hand: in Go's wasm code every call is costly.
func (e *Event) find(lo, hi uint8, key string) (Field, bool) {
	b := e.fields
	p := 0
	for i := 0; i < e.nfields; i++ {
		kind := b[p]
		kl := int(b[p+2]) | int(b[p+3])<<8
		vl := int(b[p+4]) | int(b[p+5])<<8 | int(b[p+6])<<16 | int(b[p+7])<<24
		if kind >= lo && kind <= hi && kl == len(key) && string(b[p+8:p+8+kl]) == key {
			return Field{Kind: kind, Key: b[p+8 : p+8+kl], Value: b[p+8+kl : p+8+kl+vl]}, true
		}
		p += 8 + kl + vl
	}
	return Field{}, false
}

// Measurement returns the measurement key (kind 1, 2 or 3).
func (e *Event) Measurement(key string) (Field, bool) {
	return e.find(KindInt, KindString, key)
}

// Number returns measurement key when it is an int or a float. For an int,
// isInt is true and i holds it; for a float, f holds it.
func (e *Event) Number(key string) (i int64, f float64, isInt, ok bool) {
	fl, found := e.find(KindInt, KindFloat, key)
	if !found {
		return 0, 0, false, false
	}
	if fl.Kind == KindInt {
		return fl.Int(), 0, true, true
	}
	return 0, fl.Float(), false, true
}

// Metadata returns the metadata value for key.
func (e *Event) Metadata(key string) ([]byte, bool) {
	f, ok := e.find(KindMetadata, KindMetadata, key)
	return f.Value, ok
}

// HostContext returns a host-context value (worker_id, pool, hostname, pid).
func (e *Event) HostContext(key string) ([]byte, bool) {
	f, ok := e.find(KindHostContext, KindHostContext, key)
	return f.Value, ok
}

// nextField decodes one field from an area already checked by parseRecord.
func nextField(b []byte) (Field, []byte) {
	kl := int(binary.LittleEndian.Uint16(b[2:]))
	vl := int(binary.LittleEndian.Uint32(b[4:]))
	end := 8 + kl + vl
	return Field{Kind: b[0], Key: b[8 : 8+kl], Value: b[8+kl : end]}, b[end:]
}

// parseRecord reads the record at the start of b into e and returns the rest
// of b. Every length is checked, so Event accessors never go out of bounds.
func parseRecord(b []byte, e *Event) ([]byte, error) {
	if len(b) < 4 {
		return nil, errMalformed
	}
	rl := binary.LittleEndian.Uint32(b)
	if uint64(rl) > uint64(len(b)-4) {
		return nil, errMalformed
	}
	rec, rest := b[4:4+int(rl)], b[4+int(rl):]
	if len(rec) < 10 {
		return nil, errMalformed
	}
	e.TimestampNS = int64(binary.LittleEndian.Uint64(rec))
	p := 8
	var ok bool
	if e.Name, p, ok = str16(rec, p); !ok {
		return nil, errMalformed
	}
	if e.CorrelationID, p, ok = str16(rec, p); !ok {
		return nil, errMalformed
	}
	if len(rec)-p < 2 {
		return nil, errMalformed
	}
	e.nfields = int(binary.LittleEndian.Uint16(rec[p:]))
	p += 2
	start := p
	for i := 0; i < e.nfields; i++ {
		if len(rec)-p < 8 {
			return nil, errMalformed
		}
		kind := rec[p]
		kl := uint64(binary.LittleEndian.Uint16(rec[p+2:]))
		vl := uint64(binary.LittleEndian.Uint32(rec[p+4:]))
		if kind < KindInt || kind > KindHostContext || ((kind == KindInt || kind == KindFloat) && vl != 8) {
			return nil, errMalformed
		}
		if 8+kl+vl > uint64(len(rec)-p) {
			return nil, errMalformed
		}
		p += 8 + int(kl) + int(vl)
	}
	e.fields = rec[start:p] // trailing bytes inside a record are skipped
	return rest, nil
}

// str16 reads a u16-length-prefixed byte string at rec[p:].
func str16(rec []byte, p int) ([]byte, int, bool) {
	if len(rec)-p < 2 {
		return nil, p, false
	}
	l := int(binary.LittleEndian.Uint16(rec[p:]))
	p += 2
	if len(rec)-p < l {
		return nil, p, false
	}
	return rec[p : p+l], p + l, true
}

// ForEach walks the n records of batch, calling fn for each. It fails with
// an error if the batch does not hold exactly n well-formed records.
func ForEach(batch []byte, n int, fn func(i int, e *Event)) error {
	var e Event
	b := batch
	for i := 0; i < n; i++ {
		var err error
		if b, err = parseRecord(b, &e); err != nil {
			return err
		}
		fn(i, &e)
	}
	if len(b) != 0 {
		return errMalformed
	}
	return nil
}

// FilterBatch runs keep over the batch and appends one verdict byte per
// event (1 keep, 0 drop) to out.
func FilterBatch(batch []byte, n int, out []byte, keep func(*Event) bool) ([]byte, error) {
	var e Event
	b := batch
	for i := 0; i < n; i++ {
		var err error
		if b, err = parseRecord(b, &e); err != nil {
			return out, err
		}
		v := byte(0)
		if keep(&e) {
			v = 1
		}
		out = append(out, v)
	}
	if len(b) != 0 {
		return out, errMalformed
	}
	return out, nil
}

// EnrichBatch runs fn over the batch and appends one action per event to out.
func EnrichBatch(batch []byte, n int, out []byte, fn func(*Event, *Patch)) ([]byte, error) {
	p := Patch{buf: out}
	err := ForEach(batch, n, func(_ int, e *Event) {
		p.begin()
		fn(e, &p)
		p.end()
	})
	if err == nil {
		err = p.err
	}
	return p.buf, err
}
