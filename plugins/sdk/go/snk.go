// Package snk is the Go guest SDK for snakepipe Wasm plugins (ABI
// snakepipe_v1, see docs/plugin-abi.md). It hides the wire format: a plugin
// registers a per-event callback and reads typed fields; the SDK owns the
// input buffer, walks the record batch (checking each record's frame, and
// each field when a lookup reaches it), and writes the verdict or patch
// frame.
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
	fields        []byte // the field area: nfields fields, checked as they are walked
	bad           bool   // a walk met a malformed field
}

// NameIs reports whether the event's name equals name.
func (e *Event) NameIs(name string) bool { return equal(e.Name, name) }

// equal reports whether b holds s. (Go's wasm port compares strings a
// byte at a time; this compares 8 bytes at a time.)
func equal(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for len(s) >= 8 {
		if binary.LittleEndian.Uint64(b) != uint64(s[0])|uint64(s[1])<<8|uint64(s[2])<<16|uint64(s[3])<<24|
			uint64(s[4])<<32|uint64(s[5])<<40|uint64(s[6])<<48|uint64(s[7])<<56 {
			return false
		}
		b, s = b[8:], s[8:]
	}
	for i := range len(s) {
		if b[i] != s[i] {
			return false
		}
	}
	return true
}

// NumFields is the number of fields (all kinds).
func (e *Event) NumFields() int { return e.nfields }

// Fields calls fn for every field in wire order (measurements, then
// metadata, then host context) until fn returns false.
func (e *Event) Fields(fn func(Field) bool) {
	b := e.fields
	for i := 0; i < e.nfields; i++ {
		kind, kl, vl, ok := fieldHeader(b)
		if !ok {
			e.bad = true
			return
		}
		if !fn(Field{Kind: kind, Key: b[8 : 8+kl], Value: b[8+kl : 8+kl+vl]}) {
			return
		}
		b = b[8+kl+vl:]
	}
}

// find returns the first field whose kind is in [lo, hi] and whose key is
// key. It walks offsets by hand: in Go's wasm code every call and every
// bounds check is costly.
func (e *Event) find(lo, hi uint8, key string) (Field, bool) {
	b := e.fields
	for i := 0; i < e.nfields; i++ {
		// fieldHeader, by hand: it is too large to be inlined.
		if len(b) < 8 {
			e.bad = true
			return Field{}, false
		}
		h := (*[8]byte)(b)
		kind := h[0]
		kl := uint(h[2]) | uint(h[3])<<8
		vl := uint(h[4]) | uint(h[5])<<8 | uint(h[6])<<16 | uint(h[7])<<24
		if kind < KindInt || kind > KindHostContext || (kind <= KindFloat && vl != 8) || uint64(kl)+uint64(vl) > uint64(len(b)-8) {
			e.bad = true
			return Field{}, false
		}
		if kind >= lo && kind <= hi && kl == uint(len(key)) {
			// equal(b[8:8+kl], key), by hand, for the same reason.
			k, s := b[8:8+kl], key
			for len(s) >= 8 && binary.LittleEndian.Uint64(k) == uint64(s[0])|uint64(s[1])<<8|uint64(s[2])<<16|uint64(s[3])<<24|
				uint64(s[4])<<32|uint64(s[5])<<40|uint64(s[6])<<48|uint64(s[7])<<56 {
				k, s = k[8:], s[8:]
			}
			same := len(s) < 8
			for i := 0; same && i < len(s); i++ {
				same = k[i] == s[i]
			}
			if same {
				return Field{Kind: kind, Key: b[8 : 8+kl], Value: b[8+kl : 8+kl+vl]}, true
			}
		}
		b = b[8+kl+vl:]
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

// fieldHeader reads the header of the field at the start of b and checks
// the field: a known kind, 8-byte numbers, key and value inside b. Fields
// are checked only when a walk reaches them (parseRecord checks the
// record's frame), as in the other SDKs: a walk that meets a malformed one
// marks the event bad, and the batch then fails with ErrBadInput. The sum
// kl+vl is taken in uint64: in a 32-bit uint (a native 386 or arm build) it
// can wrap and pass the check.
func fieldHeader(b []byte) (kind uint8, kl, vl uint, ok bool) {
	if len(b) < 8 {
		return 0, 0, 0, false
	}
	h := (*[8]byte)(b)
	kind, kl = h[0], uint(h[2])|uint(h[3])<<8
	vl = uint(h[4]) | uint(h[5])<<8 | uint(h[6])<<16 | uint(h[7])<<24
	return kind, kl, vl, kind-KindInt <= KindHostContext-KindInt && (kind > KindFloat || vl == 8) && uint64(kl)+uint64(vl) <= uint64(len(b)-8)
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
	e.fields = rec[p+2:]
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
	if len(b) != 0 || e.bad {
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
	if len(b) != 0 || e.bad {
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
