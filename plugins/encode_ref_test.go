package plugins

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// refRecord is the reference encoder of one input record with the field
// groups fields: docs/plugin-abi.md §5.1 spelled out with appends, no
// tricks. The tuned encoder (encodeRecord) must produce the same bytes; ok
// is false when what is sent does not fit the format's u16 lengths or has
// an unset value (a group not sent does not count).
func refRecord(e *pipeline.Event, fields FieldGroups) (rec []byte, ok bool) {
	le := binary.LittleEndian
	u16 := func(n int) bool { return n <= math.MaxUint16 }
	field := func(b []byte, kind byte, key string, val []byte) []byte {
		b = append(b, kind, 0)
		b = le.AppendUint16(b, uint16(len(key)))
		b = le.AppendUint32(b, uint32(len(val)))
		b = append(b, key...)
		return append(b, val...)
	}
	var b []byte
	b = le.AppendUint32(b, 0) // rec_len, set at the end
	b = le.AppendUint64(b, uint64(e.TimestampNs))
	if !u16(len(e.Name)) || !u16(len(e.CorrelationID)) {
		return nil, false
	}
	b = le.AppendUint16(b, uint16(len(e.Name)))
	b = append(b, e.Name...)
	b = le.AppendUint16(b, uint16(len(e.CorrelationID)))
	b = append(b, e.CorrelationID...)
	ms, md, origin := e.Measurements, e.Metadata, e.Origin
	if fields&FieldsMeasurements == 0 {
		ms = nil
	}
	if fields&FieldsMetadata == 0 {
		md = nil
	}
	if fields&FieldsHostContext == 0 {
		origin = nil
	}
	nf := len(ms) + len(md)
	if origin != nil {
		nf += 4
	}
	if !u16(nf) {
		return nil, false
	}
	b = le.AppendUint16(b, uint16(nf))
	for _, m := range ms {
		if !u16(len(m.Key)) {
			return nil, false
		}
		switch m.Value.Kind {
		case pipeline.KindInt:
			b = field(b, fieldInt, m.Key, le.AppendUint64(nil, uint64(m.Value.Int)))
		case pipeline.KindFloat:
			b = field(b, fieldFloat, m.Key, le.AppendUint64(nil, math.Float64bits(m.Value.Float)))
		case pipeline.KindString:
			b = field(b, fieldString, m.Key, []byte(m.Value.Str))
		default:
			return nil, false
		}
	}
	for _, l := range md {
		if !u16(len(l.Key)) {
			return nil, false
		}
		b = field(b, fieldMeta, l.Key, []byte(l.Value))
	}
	if o := origin; o != nil {
		b = field(b, fieldContext, pipeline.KeyWorkerID, []byte(o.WorkerID))
		b = field(b, fieldContext, pipeline.KeyPool, []byte(o.Pool))
		b = field(b, fieldContext, pipeline.KeyHostname, []byte(o.Hostname))
		b = field(b, fieldContext, pipeline.KeyPID, []byte(strconv.FormatInt(o.PID, 10)))
	}
	le.PutUint32(b, uint32(len(b)-recHeaderLen))
	return b, true
}

// encodeRecord encodes the one event e with the field groups fields at
// the start of dst and returns the bytes written, 0 if encodeRecords
// refused it.
func encodeRecord(dst []byte, e *pipeline.Event, fields FieldGroups, oc *originCache) int {
	if oc == nil {
		oc = &originCache{}
	}
	off, _ := encodeRecords(dst, []pipeline.Event{*e}, len(dst), fields, oc)
	return off
}

// checkEncode runs checkEncodeFields with every set of field groups, 0..7.
func checkEncode(t *testing.T, e *pipeline.Event, shortBufs bool) {
	t.Helper()
	for g := FieldGroups(0); g <= FieldsAll; g++ {
		checkEncodeFields(t, e, g, shortBufs)
	}
}

// checkEncodeFields encodes e with the field groups g with encodeRecord
// into a dirty buffer and compares the bytes with refRecord, the size and
// the encodability with encodedSize, and checks that every buffer too
// small for the record is refused.
func checkEncodeFields(t *testing.T, e *pipeline.Event, g FieldGroups, shortBufs bool) {
	t.Helper()
	want, ok := refRecord(e, g)
	size, sizeOK := encodedSize(e, g, nil)
	if sizeOK != ok {
		t.Fatalf("fields %d: encodedSize says encodable=%v, reference %v", g, sizeOK, ok)
	}
	if cached, cachedOK := encodedSize(e, g, &originCache{}); cached != size || cachedOK != sizeOK {
		t.Fatalf("fields %d: encodedSize with an origin cache says %d %v, without %d %v", g, cached, cachedOK, size, sizeOK)
	}
	var oc originCache
	buf := bytes.Repeat([]byte{0xa5}, len(want)+64)
	n := encodeRecord(buf, e, g, &oc)
	if !ok {
		if n != 0 {
			t.Fatalf("fields %d: encoded an unencodable event (%d bytes)", g, n)
		}
		return
	}
	if n != len(want) || size != n || !bytes.Equal(buf[:n], want) {
		t.Fatalf("fields %d: encodeRecord wrote %d bytes (encodedSize %d)\n got %x\nwant %x", g, n, size, buf[:n], want)
	}
	if again := encodeRecord(buf, e, g, &oc); again != n || !bytes.Equal(buf[:n], want) { // origin now from the cache
		t.Fatalf("fields %d: second encode (cached origin) differs: %x", g, buf[:again])
	}
	if shortBufs {
		for l := 0; l < n; l++ {
			short := bytes.Repeat([]byte{0xa5}, l)
			if got := encodeRecord(short[:l:l], e, g, &oc); got != 0 {
				t.Fatalf("fields %d: a %d-byte buffer took a %d-byte record (returned %d)", g, l, n, got)
			}
		}
	}
}

// strOf returns a string of n bytes that differ from each other, so a
// copy from the wrong offset shows.
func strOf(n int, seed byte) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)*7
	}
	return string(b)
}

// Every string of the record at every length from 0 to 40 (the inline
// copies cover 4..16 bytes; shorter and longer go through copy), with
// every value kind, against the reference encoder.
func TestEncodeRecordMatchesReference(t *testing.T) {
	base := func() pipeline.Event {
		return pipeline.Event{Name: "python.call.stop", TimestampNs: -1234567890123, CorrelationID: "c0ffee",
			Measurements: []pipeline.Measurement{mi("duration", -5), mf("ratio", math.NaN()),
				{Key: "status", Value: pipeline.StringValue("ok")}},
			Metadata: []pipeline.Label{{Key: "function", Value: "handler"}, {Key: "module", Value: "app.views"}},
			Origin:   &pipeline.Origin{WorkerID: "w-1", Pool: "default", Hostname: "host-a", PID: 4242}}
	}
	slots := []func(e *pipeline.Event, s string){
		func(e *pipeline.Event, s string) { e.Name = s },
		func(e *pipeline.Event, s string) { e.CorrelationID = s },
		func(e *pipeline.Event, s string) { e.Measurements[0].Key = s },
		func(e *pipeline.Event, s string) { e.Measurements[1].Key = s + "f" },
		func(e *pipeline.Event, s string) { e.Measurements[2].Value = pipeline.StringValue(s) },
		func(e *pipeline.Event, s string) { e.Metadata[0].Key = s },
		func(e *pipeline.Event, s string) { e.Metadata[1].Value = s },
		func(e *pipeline.Event, s string) {
			e.Origin = &pipeline.Origin{WorkerID: s, Pool: s, Hostname: s, PID: int64(len(s)) - 3}
		},
	}
	for si, set := range slots {
		for n := 0; n <= 40; n++ {
			e := base()
			set(&e, strOf(n, byte(si)))
			checkEncode(t, &e, n%5 == 0)
		}
	}
	bare := pipeline.Event{}
	checkEncode(t, &bare, true)
	// Not encodable: refused, like the reference refuses it.
	for name, mutate := range map[string]func(e *pipeline.Event){
		"unset value": func(e *pipeline.Event) { e.Measurements[1].Value = pipeline.Value{} },
		// A kind past KindString: encodeRecords refuses it, so encodedSize
		// must call it unencodable, or the stage takes the refusal for a
		// full chunk and retries the event forever (TestStageUnknownValueKind).
		"unknown kind": func(e *pipeline.Event) {
			e.Measurements[0].Value = pipeline.Value{Kind: pipeline.KindString + 1, Int: 1}
		},
		"long name":     func(e *pipeline.Event) { e.Name = strOf(math.MaxUint16+1, 1) },
		"long corr":     func(e *pipeline.Event) { e.CorrelationID = strOf(math.MaxUint16+1, 1) },
		"long key":      func(e *pipeline.Event) { e.Metadata[1].Key = strOf(math.MaxUint16+1, 1) },
		"long meas key": func(e *pipeline.Event) { e.Measurements[2].Key = strOf(math.MaxUint16+1, 1) },
		"many fields":   func(e *pipeline.Event) { e.Metadata = make([]pipeline.Label, math.MaxUint16-3) },
	} {
		t.Run(name, func(t *testing.T) {
			e := base()
			mutate(&e)
			checkEncode(t, &e, false)
		})
	}
	// The longest u16 lengths still encode.
	e := base()
	e.Name, e.Metadata[0].Key = strOf(math.MaxUint16, 3), strOf(math.MaxUint16, 4)
	e.Metadata = append(e.Metadata, make([]pipeline.Label, math.MaxUint16-len(e.Measurements)-len(e.Metadata)-4)...)
	checkEncode(t, &e, false)
}

func FuzzEncodeRecord(f *testing.F) {
	f.Add("python.call.stop", "c0ffee", int64(5), "duration", uint8(1), int64(-7), "function", "handler", "module", "app.views", true, int64(42), uint16(0))
	f.Add("", "", int64(0), "", uint8(0), int64(0), "", "", "k", "", false, int64(-1), uint16(3))
	f.Add("a.b", "0123456789abcdef0", int64(-1), "k2345678", uint8(3), int64(9), "0123", "01234567", "abc", "0123456789abcdefg", true, int64(math.MinInt64), uint16(100))
	f.Fuzz(func(t *testing.T, name, corr string, ts int64, mkey string, kind uint8, iv int64, lk1, lv1, lk2, lv2 string, origin bool, pid int64, cut uint16) {
		e := pipeline.Event{Name: name, CorrelationID: corr, TimestampNs: ts,
			Metadata: []pipeline.Label{{Key: lk1, Value: lv1}, {Key: lk2, Value: lv2}}}
		for k := range kind % 6 { // kinds 0..4: invalid, int, float, string, unknown
			v := pipeline.Value{Kind: pipeline.ValueKind(k), Int: iv, Float: float64(iv) / 3, Str: lv1 + lv2}
			e.Measurements = append(e.Measurements, pipeline.Measurement{Key: mkey + strconv.Itoa(int(k)), Value: v})
		}
		if origin {
			e.Origin = &pipeline.Origin{WorkerID: lk1, Pool: lv2, Hostname: name, PID: pid}
		}
		checkEncode(t, &e, false)
		// A buffer cut short anywhere: refused, or (if long enough) the same bytes.
		for g := FieldGroups(0); g <= FieldsAll; g++ {
			want, ok := refRecord(&e, g)
			l := int(cut) % (len(want) + 1)
			buf := bytes.Repeat([]byte{0x5a}, l)
			n := encodeRecord(buf[:l:l], &e, g, nil)
			switch {
			case !ok || l < len(want):
				if n != 0 {
					t.Fatalf("fields %d: %d-byte buffer, %d-byte record (encodable %v): returned %d", g, l, len(want), ok, n)
				}
			case n != len(want) || !bytes.Equal(buf[:n], want):
				t.Fatalf("fields %d: exact-size buffer: %x, want %x", g, buf[:n], want)
			}
		}
	})
}

// encodeRecords over a batch: the records of the events it took, back to
// back, byte for byte; it stops at the first event that is not encodable,
// larger than maxRec or does not fit in the rest of the buffer.
func TestEncodeRecordsStopsAtRefusedEvent(t *testing.T) {
	origin := &pipeline.Origin{WorkerID: "w-1", Pool: "p", Hostname: "h", PID: 7}
	mk := func(name string, val int) pipeline.Event {
		return pipeline.Event{Name: name, TimestampNs: int64(val), CorrelationID: strOf(val%20, 2), Origin: origin,
			Measurements: []pipeline.Measurement{mi("duration", int64(val))},
			Metadata:     []pipeline.Label{{Key: "function", Value: strOf(val, 1)}}}
	}
	var evs []pipeline.Event
	for i := range 12 {
		evs = append(evs, mk("python.call.stop", i*9))
	}
	bad := mk("x", 1)
	bad.Measurements[0].Value = pipeline.Value{}
	var want []byte
	var sizes []int
	for i := range evs {
		rec, _ := refRecord(&evs[i], FieldsAll)
		want = append(want, rec...)
		sizes = append(sizes, len(rec))
	}
	for _, tc := range []struct {
		name    string
		evs     []pipeline.Event
		buf     int
		maxRec  int
		wantN   int
		wantOff int
	}{
		{"all fit", evs, len(want), 1 << 20, len(evs), len(want)},
		{"buffer one byte short", evs, len(want) - 1, 1 << 20, len(evs) - 1, len(want) - sizes[len(sizes)-1]},
		{"record over maxRec", evs, len(want), sizes[4] - 1, 4, sizes[0] + sizes[1] + sizes[2] + sizes[3]},
		{"unencodable third", append(append(slices.Clone(evs[:2]), bad), evs[2:]...), len(want), 1 << 20, 2, sizes[0] + sizes[1]},
		{"empty batch", nil, 100, 100, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := bytes.Repeat([]byte{0xa5}, tc.buf)
			off, n := encodeRecords(buf, tc.evs, tc.maxRec, FieldsAll, &originCache{})
			if n != tc.wantN || off != tc.wantOff || !bytes.Equal(buf[:off], want[:off]) {
				t.Fatalf("encoded %d events, %d bytes; want %d, %d\n got %x\nwant %x", n, off, tc.wantN, tc.wantOff, buf[:off], want[:tc.wantOff])
			}
		})
	}
}
