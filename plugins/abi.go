package plugins

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/snakepipe/snakepipe/pipeline"
)

// ABI v1 constants (docs/plugin-abi.md).
const (
	// ABIVersion is the only version snk_abi_version may return.
	ABIVersion = 1

	// HostModule is the import module name of snakepipe's host functions.
	HostModule = "snakepipe_v1"

	fieldInt     = 1
	fieldFloat   = 2
	fieldString  = 3
	fieldMeta    = 4
	fieldContext = 5

	opUnchanged = 0
	opDrop      = 1
	opPatch     = 2

	opcodeSet    = 1
	opcodeDelete = 2

	maxPatchOps   = 64
	recHeaderLen  = 4 // u32 rec_len
	fieldHdrLen   = 8 // u8 kind, u8 flags, u16 key_len, u32 val_len
	actionHdrLen  = 4 // u8 op, u8 reserved, u16 nops
	defaultInBuf  = 64 << 10
	maxEventBytes = 256 << 10

	// enrichResultPerEvent is the per-event part of the enrich result
	// limit (docs/plugin-abi.md §5.2).
	enrichResultPerEvent = 256
)

// FieldGroups is a set of the field groups of a record (docs/plugin-abi.md
// §5.1): what a plugin's optional snk_fields export declares it reads, and
// so what the host sends it. The record frame (timestamp, name,
// correlation id) is always sent.
type FieldGroups uint8

// The field groups, as snk_fields returns them.
const (
	FieldsMeasurements FieldGroups = 1 // kinds 1-3
	FieldsMetadata     FieldGroups = 2 // kind 4
	FieldsHostContext  FieldGroups = 4 // kind 5
	// FieldsAll is every field: what a module without snk_fields is sent.
	FieldsAll FieldGroups = 7
)

// String names the groups: "all", "none", or e.g. "measurements, host context".
func (g FieldGroups) String() string {
	switch g {
	case FieldsAll:
		return "all"
	case 0:
		return "none"
	}
	var names []string
	for _, x := range []struct {
		g    FieldGroups
		name string
	}{{FieldsMeasurements, "measurements"}, {FieldsMetadata, "metadata"}, {FieldsHostContext, "host context"}} {
		if g&x.g != 0 {
			names = append(names, x.name)
		}
	}
	if bad := g &^ FieldsAll; bad != 0 {
		names = append(names, fmt.Sprintf("invalid bits %#x", uint8(bad)))
	}
	return strings.Join(names, ", ")
}

// checkFields validates the value snk_fields returned.
func checkFields(v int32) (FieldGroups, error) {
	bad := uint32(v) &^ uint32(FieldsAll)
	switch {
	case bad == 0:
		return FieldGroups(v), nil
	case bad&(bad-1) == 0:
		return 0, fmt.Errorf("snk_fields() returned %d: %d is not a field group (1 measurements, 2 metadata, 4 host context)", v, bad)
	default:
		return 0, fmt.Errorf("snk_fields() returned %d: bits %#x are not field groups (1 measurements, 2 metadata, 4 host context)", v, bad)
	}
}

// ErrBadOutput is wrapped by errors about a malformed or out-of-bounds
// result frame. The instance that produced it is discarded.
var ErrBadOutput = errors.New("malformed plugin result")

// recordSize returns the encoded size of e with every field group,
// including the rec_len field.
func recordSize(e *pipeline.Event) int {
	n, _ := encodedSize(e, FieldsAll, nil)
	return n
}

// encodable reports whether e, with every field group, fits the wire
// format's u16 length fields.
func encodable(e *pipeline.Event) bool {
	_, ok := encodedSize(e, FieldsAll, nil)
	return ok
}

// sentParts returns the parts of e that a plugin reading the field groups
// fields is sent (docs/plugin-abi.md §5.1); the rest are nil. encodedSize
// and encodeRecords both take them from here, so they agree on what is
// sent. The one test of fields against FieldsAll keeps the common case
// (no snk_fields export) at one predictable branch per event.
func sentParts(e *pipeline.Event, fields FieldGroups) (ms []pipeline.Measurement, md []pipeline.Label, o *pipeline.Origin) {
	ms, md, o = e.Measurements, e.Metadata, e.Origin
	if fields != FieldsAll {
		if fields&FieldsMeasurements == 0 {
			ms = nil
		}
		if fields&FieldsMetadata == 0 {
			md = nil
		}
		if fields&FieldsHostContext == 0 {
			o = nil
		}
	}
	return ms, md, o
}

// encodedSize returns the size of e's record with the field groups fields
// (including the rec_len field), and whether encodeRecords can encode it
// (its lengths fit the format's u16 fields and every value it sends has a
// known kind), in one pass over the fields. Only the groups sent count: an
// oversize metadata value does not matter to a plugin that is not sent
// metadata. It must agree with encodeRecords on both (the stage takes a
// refusal of an event encodedSize calls encodable and within maxRec for a
// full chunk). The stage calls it only for an event encodeRecords refused
// (to tell "does not fit in this chunk" from "oversize"). With oc, the
// size of the host-context block comes from the cache (which encodes it
// when the Origin changes).
func encodedSize(e *pipeline.Event, fields FieldGroups, oc *originCache) (int, bool) {
	n := recHeaderLen + 8 + 2 + len(e.Name) + 2 + len(e.CorrelationID) + 2
	// A length fits in u16 iff the OR of all lengths does.
	lens := len(e.Name) | len(e.CorrelationID)
	ok := true
	ms, md, o := sentParts(e, fields)
	for i := range ms {
		m := &ms[i]
		n += fieldHdrLen + len(m.Key)
		lens |= len(m.Key)
		switch m.Value.Kind {
		case pipeline.KindString:
			n += len(m.Value.Str)
		case pipeline.KindInt, pipeline.KindFloat:
			n += 8
		default:
			// KindInvalid or an unknown kind: encodeRecords refuses it, and
			// the stage must not take that refusal for a full chunk.
			ok = false
			n += 8
		}
	}
	for i := range md {
		n += fieldHdrLen + len(md[i].Key) + len(md[i].Value)
		lens |= len(md[i].Key)
	}
	nf := len(ms) + len(md)
	if o != nil {
		nf += 4
		if oc != nil {
			n += len(oc.block(o))
		} else {
			n += originLen(o)
		}
	}
	return n, ok && lens <= math.MaxUint16 && nf <= math.MaxUint16
}

func originLen(o *pipeline.Origin) int {
	return 4*fieldHdrLen + len(pipeline.KeyWorkerID) + len(o.WorkerID) + len(pipeline.KeyPool) + len(o.Pool) +
		len(pipeline.KeyHostname) + len(o.Hostname) + len(pipeline.KeyPID) + pidLen(o.PID)
}

func pidLen(pid int64) int {
	if pid >= 0 && pid < 1e9 { // the common case, without formatting
		n := 1
		for p := pid; p >= 10; p /= 10 {
			n++
		}
		return n
	}
	var buf [20]byte
	return len(strconv.AppendInt(buf[:0], pid, 10))
}

// originCache holds the encoded host-context fields of the last Origin
// seen: events of one stream share their Origin, so the four fields are
// encoded once and copied as one block.
type originCache struct {
	o   *pipeline.Origin
	enc []byte
}

func (c *originCache) block(o *pipeline.Origin) []byte {
	if c.o != o {
		n := originLen(o)
		if cap(c.enc) < n {
			c.enc = make([]byte, n)
		}
		b := c.enc[:n]
		p := putStrField(b, 0, fieldContext, pipeline.KeyWorkerID, o.WorkerID)
		p = putStrField(b, p, fieldContext, pipeline.KeyPool, o.Pool)
		p = putStrField(b, p, fieldContext, pipeline.KeyHostname, o.Hostname)
		p = putFieldHdr(b, p, fieldContext, pipeline.KeyPID, pidLen(o.PID))
		strconv.AppendInt(b[p:p], o.PID, 10)
		c.o, c.enc = o, b
	}
	return c.enc
}

// encodeRecords encodes evs in order into dst, one record after the
// other, with only the fields of the groups fields (the frame, timestamp,
// name and correlation id, always), and stops at the first event whose
// record does not fit in what is left of dst, is larger than maxRec bytes,
// or is not encodable. It returns the bytes written and the number of
// events encoded; encodedSize (with the same fields) tells the stage why
// the next event was refused, and it asks only then. Bytes of dst past off
// may have been written to.
//
// The groups not sent are dropped per event up front: the event's slices
// and Origin are replaced by nil behind one branch, fields != FieldsAll,
// that goes the same way for every event of a call (so it is predicted),
// and the loops below see only what is sent and nfields counts only that.
// (Three separate tests per event, and the Origin read again after the
// fields, took about 4% more time with every group sent in
// BenchmarkEncodeRecords/fields=all; this form is within 1% of the encoder
// before field groups.)
//
// This is the per-event hot path of every wasm stage: one pass over each
// event, each part (the fixed head with name and correlation id, each
// field, the host-context block) checked against the room left before it
// is written, then written through unchecked stores (the put functions),
// strings of 4 to 16 bytes with fixed-size loads and stores inline, the
// host-context block copied from the per-instance cache. (The same code
// with bounds-checked slice stores took about 40% more time in
// BenchmarkEncodeRecords: the checks and the slices' lengths crowd the
// registers.) The reference encoder in
// encode_ref_test.go and FuzzEncodeRecord check the bytes and the
// refusals, with buffers cut to every length.
func encodeRecords(dst []byte, evs []pipeline.Event, maxRec int, fields FieldGroups, oc *originCache) (off, n int) {
	base := unsafe.Pointer(unsafe.SliceData(dst))
	for n = range evs {
		e := &evs[n]
		// room is the largest record that may be written here; every part
		// is checked against it before it is written (see putU64).
		room := min(len(dst)-off, maxRec)
		name, corr := e.Name, e.CorrelationID
		q := recHeaderLen + 8 + 2 + len(name) + 2 + len(corr) + 2
		if q > room {
			return off, n
		}
		r := unsafe.Add(base, off)
		// A length fits in u16 iff the OR of all lengths does.
		lens := len(name) | len(corr)
		putU64(r, recHeaderLen, uint64(e.TimestampNs))
		putU16(r, recHeaderLen+8, uint16(len(name)))
		if !put8to16(r, recHeaderLen+10, name) {
			putOther(r, recHeaderLen+10, name)
		}
		c := recHeaderLen + 10 + len(name)
		putU16(r, c, uint16(len(corr)))
		if !put8to16(r, c+2, corr) {
			putOther(r, c+2, corr)
		}
		ms, md, o := sentParts(e, fields)
		nf := len(ms) + len(md)
		if o != nil {
			nf += 4
		}
		putU16(r, q-2, uint16(nf))
		for i := range ms {
			m := &ms[i]
			k := m.Key
			lens |= len(k)
			hdr, num, vl := uint64(fieldInt|8<<32), uint64(m.Value.Int), 8
			switch m.Value.Kind {
			case pipeline.KindInt:
			case pipeline.KindFloat:
				hdr, num = fieldFloat|8<<32, math.Float64bits(m.Value.Float)
			case pipeline.KindString:
				vl = len(m.Value.Str)
				hdr = fieldString | uint64(uint32(vl))<<32
			default:
				return off, n
			}
			// vl, not the header's u32 (which would wrap above 4 GiB): the
			// check must cover every byte the stores below write.
			end := q + fieldHdrLen + len(k) + vl
			if end > room {
				return off, n
			}
			putU64(r, q, hdr|uint64(uint16(len(k)))<<16)
			q += fieldHdrLen
			if !put8to16(r, q, k) {
				putOther(r, q, k)
			}
			q += len(k)
			if hdr&0xff != fieldString {
				putU64(r, q, num)
			} else if v := m.Value.Str; !put8to16(r, q, v) {
				putOther(r, q, v)
			}
			q = end
		}
		for i := range md {
			l := &md[i]
			k, v := l.Key, l.Value
			lens |= len(k)
			end := q + fieldHdrLen + len(k) + len(v)
			if end > room {
				return off, n
			}
			putU64(r, q, fieldMeta|uint64(uint16(len(k)))<<16|uint64(uint32(len(v)))<<32)
			q += fieldHdrLen
			if !put8to16(r, q, k) {
				putOther(r, q, k)
			}
			q += len(k)
			if !put8to16(r, q, v) {
				putOther(r, q, v)
			}
			q = end
		}
		if (lens | nf) > math.MaxUint16 {
			return off, n
		}
		if o != nil {
			blk := oc.enc
			if oc.o != o {
				blk = oc.block(o)
			}
			if len(blk) > room-q {
				return off, n
			}
			putBlock(r, q, blk)
			q += len(blk)
		}
		putU32(r, 0, uint32(q-recHeaderLen))
		off += q
	}
	return off, len(evs)
}

// The put functions write a record's parts at r+q without bounds checks:
// encodeRecords checks that each part ends within the room left in dst
// before it writes it (TestEncodeRecordMatchesReference and
// FuzzEncodeRecord check the bytes and the refusals against the reference
// encoder, with buffers cut to every length). An address is formed only
// for a write of at least one byte, so none points past dst; strings are
// read only within their length. Stores go through encoding/binary: the
// bytes are little-endian on every host. They are plain functions of
// (r, q), not methods of a writer struct: the compiler kept such a struct
// in memory, and every q += n became a load and a store.
func putU16(r unsafe.Pointer, q int, v uint16) {
	binary.LittleEndian.PutUint16((*[2]byte)(unsafe.Add(r, q))[:], v)
}

func putU32(r unsafe.Pointer, q int, v uint32) {
	binary.LittleEndian.PutUint32((*[4]byte)(unsafe.Add(r, q))[:], v)
}

func putU64(r unsafe.Pointer, q int, v uint64) {
	binary.LittleEndian.PutUint64((*[8]byte)(unsafe.Add(r, q))[:], v)
}

// put8to16 copies s to r+q and returns true if s has 8 to 16 bytes (most
// keys and many values): two overlapping fixed-size loads and stores.
// Otherwise it returns false and the caller uses putOther. (One function
// for all lengths would be too large to be inlined, and a call spills the
// encoder loop's registers around it.)
func put8to16(r unsafe.Pointer, q int, s string) bool {
	n := len(s)
	if uint(n-8) > 8 {
		return false
	}
	src, d := unsafe.Pointer(unsafe.StringData(s)), unsafe.Add(r, q)
	*(*[8]byte)(d) = *(*[8]byte)(src)
	*(*[8]byte)(unsafe.Add(d, n-8)) = *(*[8]byte)(unsafe.Add(src, n-8))
	return true
}

// putOther copies s, which is not 8 to 16 bytes long, to r+q: 4 to 7
// bytes inline, others through copy.
func putOther(r unsafe.Pointer, q int, s string) {
	n := len(s)
	if uint(n-4) <= 3 {
		src, d := unsafe.Pointer(unsafe.StringData(s)), unsafe.Add(r, q)
		*(*[4]byte)(d) = *(*[4]byte)(src)
		*(*[4]byte)(unsafe.Add(d, n-4)) = *(*[4]byte)(unsafe.Add(src, n-4))
	} else if n > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Add(r, q)), n), s)
	}
}

// putBlock copies b to r+q: 16 bytes or more (the host-context block is
// 60 to 100 bytes for typical worker, pool and host names) as 16-byte
// loads and stores, the last one overlapping, shorter through copy.
// (Fixed-size copies above 16 bytes are compiled into calls to memmove.)
func putBlock(r unsafe.Pointer, q int, b []byte) {
	n := len(b)
	if n < 16 {
		if n > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Add(r, q)), n), b)
		}
		return
	}
	src, d := unsafe.Pointer(unsafe.SliceData(b)), unsafe.Add(r, q)
	for i := 0; i < n-16; i += 16 {
		*(*[16]byte)(unsafe.Add(d, i)) = *(*[16]byte)(unsafe.Add(src, i))
	}
	*(*[16]byte)(unsafe.Add(d, n-16)) = *(*[16]byte)(unsafe.Add(src, n-16))
}

func putFieldHdr(dst []byte, p int, kind byte, key string, valLen int) int {
	// u8 kind, u8 flags (0), u16 key_len, u32 val_len: one 8-byte store.
	binary.LittleEndian.PutUint64(dst[p:], uint64(kind)|uint64(uint16(len(key)))<<16|uint64(uint32(valLen))<<32)
	p += fieldHdrLen
	return p + copy(dst[p:], key)
}

func putStrField(dst []byte, p int, kind byte, key, val string) int {
	p = putFieldHdr(dst, p, kind, key, len(val))
	return p + copy(dst[p:], val)
}

// EncodeConfig returns the config frame for cfg: u16 nfields, then one
// kind-4 field per entry, sorted by key.
func EncodeConfig(cfg map[string]string) ([]byte, error) {
	if len(cfg) > math.MaxUint16 {
		return nil, fmt.Errorf("config has %d keys, at most %d allowed", len(cfg), math.MaxUint16)
	}
	keys := make([]string, 0, len(cfg))
	size := 2
	for k, v := range cfg {
		if len(k) > math.MaxUint16 {
			return nil, fmt.Errorf("config key %.32q… is %d bytes, at most %d allowed", k, len(k), math.MaxUint16)
		}
		keys = append(keys, k)
		size += fieldHdrLen + len(k) + len(v)
	}
	sort.Strings(keys)
	out := make([]byte, size)
	binary.LittleEndian.PutUint16(out, uint16(len(keys)))
	p := 2
	for _, k := range keys {
		p = putStrField(out, p, fieldMeta, k, cfg[k])
	}
	return out, nil
}

// checkVerdicts validates a filter result frame for n events.
func checkVerdicts(res []byte, n int) error {
	if len(res) != n {
		return fmt.Errorf("%w: filter result is %d bytes for %d events (must be equal)", ErrBadOutput, len(res), n)
	}
	i := 0
	for ; i+8 <= len(res); i += 8 { // 8 at a time: no bit but bit 0 may be set
		if binary.LittleEndian.Uint64(res[i:])&^allKeep != 0 {
			break
		}
	}
	for ; i < len(res); i++ {
		if v := res[i]; v > 1 {
			return fmt.Errorf("%w: verdict %d for event %d (must be 0 drop or 1 keep)", ErrBadOutput, v, i)
		}
	}
	return nil
}

// patchOp is one decoded patch of an enrich action. key and str alias the
// guest's result frame: copy before keeping them.
type patchOp struct {
	kind   byte
	opcode byte
	key    []byte
	val    []byte
}

// action is one decoded enrich action.
type action struct {
	op  byte
	ops []patchOp
}

// decodeActions parses an enrich result frame for n events into acts
// (reused) and returns it. Structural errors wrap ErrBadOutput.
func decodeActions(res []byte, n int, acts []action) ([]action, error) {
	le := binary.LittleEndian
	acts = acts[:0]
	p := 0
	for i := 0; i < n; i++ {
		if len(res)-p < actionHdrLen {
			return acts, fmt.Errorf("%w: enrich result ends after %d of %d actions", ErrBadOutput, i, n)
		}
		op, nops := res[p], int(le.Uint16(res[p+2:]))
		p += actionHdrLen
		a := action{op: op}
		switch op {
		case opUnchanged, opDrop:
			if nops != 0 {
				return acts, fmt.Errorf("%w: action %d: op %d with %d patches (must be 0)", ErrBadOutput, i, op, nops)
			}
		case opPatch:
			if nops == 0 || nops > maxPatchOps {
				return acts, fmt.Errorf("%w: action %d: %d patches (must be 1..%d)", ErrBadOutput, i, nops, maxPatchOps)
			}
		default:
			return acts, fmt.Errorf("%w: action %d: unknown op %d", ErrBadOutput, i, op)
		}
		if nops > 0 {
			// Reuse the ops backing array of a previous decode when possible.
			if i < cap(acts) {
				a.ops = acts[:i+1][i].ops[:0]
			}
		}
		for j := 0; j < nops; j++ {
			if len(res)-p < fieldHdrLen {
				return acts, fmt.Errorf("%w: action %d: patch %d header truncated", ErrBadOutput, i, j)
			}
			kind, opcode := res[p], res[p+1]
			kl, vl := int(le.Uint16(res[p+2:])), int(le.Uint32(res[p+4:]))
			p += fieldHdrLen
			if kl > len(res)-p || vl > len(res)-p-kl {
				return acts, fmt.Errorf("%w: action %d: patch %d key/value past the end of the result", ErrBadOutput, i, j)
			}
			if kind < fieldInt || kind > fieldContext {
				return acts, fmt.Errorf("%w: action %d: patch %d: unknown kind %d", ErrBadOutput, i, j, kind)
			}
			switch opcode {
			case opcodeSet:
				if (kind == fieldInt || kind == fieldFloat) && vl != 8 {
					return acts, fmt.Errorf("%w: action %d: patch %d: kind %d value is %d bytes (must be 8)", ErrBadOutput, i, j, kind, vl)
				}
			case opcodeDelete:
				if vl != 0 {
					return acts, fmt.Errorf("%w: action %d: patch %d: delete with a %d-byte value (must be 0)", ErrBadOutput, i, j, vl)
				}
			default:
				return acts, fmt.Errorf("%w: action %d: patch %d: unknown opcode %d", ErrBadOutput, i, j, opcode)
			}
			a.ops = append(a.ops, patchOp{kind: kind, opcode: opcode, key: res[p : p+kl], val: res[p+kl : p+kl+vl]})
			p += kl + vl
		}
		acts = append(acts, a)
	}
	if p != len(res) {
		return acts, fmt.Errorf("%w: enrich result has %d bytes after the %d actions", ErrBadOutput, len(res)-p, n)
	}
	return acts, nil
}
