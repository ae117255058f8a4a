package snk

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

func field(kind byte, key string, val []byte) []byte {
	b := []byte{kind, 0}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
	return append(append(b, key...), val...)
}

func record(ts int64, name, corr string, fields ...[]byte) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(corr)))
	b = append(b, corr...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fields)))
	for _, f := range fields {
		b = append(b, f...)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func i64(v int64) []byte   { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
func f64(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }

func TestForEachReadsFields(t *testing.T) {
	batch := append(
		record(42, "python.call.stop", "c1",
			field(KindInt, "duration", i64(-7)),
			field(KindFloat, "ratio", f64(0.5)),
			field(KindString, "unit", []byte("ns")),
			field(KindMetadata, "tool", []byte("grep")),
			field(KindHostContext, "pid", []byte("42"))),
		record(43, "gc", "")...)
	var seen []string
	err := ForEach(batch, 2, func(i int, e *Event) {
		seen = append(seen, string(e.Name))
		if i != 0 {
			if e.NumFields() != 0 {
				t.Errorf("event 1 has %d fields", e.NumFields())
			}
			return
		}
		if e.TimestampNS != 42 || string(e.CorrelationID) != "c1" || !e.NameIs("python.call.stop") {
			t.Errorf("header = %d %q %q", e.TimestampNS, e.CorrelationID, e.Name)
		}
		if v, _, isInt, ok := e.Number("duration"); !ok || !isInt || v != -7 {
			t.Errorf("duration = %d %v %v", v, isInt, ok)
		}
		if _, f, isInt, ok := e.Number("ratio"); !ok || isInt || f != 0.5 {
			t.Errorf("ratio = %v %v %v", f, isInt, ok)
		}
		if _, _, _, ok := e.Number("unit"); ok {
			t.Error("a string measurement is not a number")
		}
		if f, ok := e.Measurement("unit"); !ok || f.Kind != KindString || string(f.Value) != "ns" {
			t.Errorf("unit = %+v %v", f, ok)
		}
		if v, ok := e.Metadata("tool"); !ok || string(v) != "grep" {
			t.Errorf("tool = %q %v", v, ok)
		}
		if _, ok := e.Metadata("pid"); ok {
			t.Error("host context must not be found as metadata")
		}
		if v, ok := e.HostContext("pid"); !ok || string(v) != "42" {
			t.Errorf("pid = %q %v", v, ok)
		}
		n := 0
		e.Fields(func(Field) bool { n++; return true })
		if n != 5 {
			t.Errorf("Fields visited %d", n)
		}
	})
	if err != nil || len(seen) != 2 {
		t.Fatalf("err=%v seen=%v", err, seen)
	}
}

// TestRejectsMalformed: a bad record frame fails the batch whatever the
// callback does; a bad field fails it when a lookup or Fields reaches it
// (on the way to a later field or as the field itself), in ForEach and in
// FilterBatch. A bad field no walk reaches is not checked (lazy, as in the
// other SDKs).
func TestRejectsMalformed(t *testing.T) {
	good := record(1, "a", "", field(KindInt, "d", i64(1)))
	walks := map[string]func(*Event){
		"nothing":  func(*Event) {},
		"Number":   func(e *Event) { e.Number("d") },
		"Metadata": func(e *Event) { e.Metadata("zzz") },
		"Fields":   func(e *Event) { e.Fields(func(Field) bool { return true }) },
	}
	cases := []struct {
		name     string
		n        int
		b        []byte
		lazyOnly bool   // a field: only a walk finds it
		missedBy string // a walk that stops before the bad field
	}{
		{"too few records", 2, good, false, ""},
		{"trailing", 1, append(bytes.Clone(good), 9), false, ""},
		{"truncated", 1, good[:len(good)-1], false, ""},
		{"empty with n = 1", 1, nil, false, ""},
		{"name past the record", 1, record(1, "a", "", nil)[:16], false, ""},
		{"bad kind", 1, record(1, "a", "", field(6, "d", nil)), true, ""},
		{"kind 0", 1, record(1, "a", "", field(0, "d", nil)), true, ""},
		{"int of 7 bytes", 1, record(1, "a", "", field(KindInt, "d", make([]byte, 7))), true, ""},
		{"float of 9 bytes", 1, record(1, "a", "", field(KindFloat, "d", make([]byte, 9))), true, ""},
		{"value past the record", 1, func() []byte {
			b := record(1, "a", "", field(KindMetadata, "m", []byte("v")), field(KindInt, "d", i64(1)))
			binary.LittleEndian.PutUint32(b[4+8+2+1+2+2+4:], 1000) // the first field's val_len
			return b
		}(), true, ""},
		{"more fields than the record holds", 1, func() []byte {
			b := record(1, "a", "", field(KindInt, "d", i64(1)))
			binary.LittleEndian.PutUint16(b[4+8+2+1+2:], 2)
			return b
		}(), true, "Number"}, // it finds d first
	}
	for _, c := range cases {
		for wname, walk := range walks {
			t.Run(c.name+"/"+wname, func(t *testing.T) {
				want := !c.lazyOnly || wname != "nothing" && wname != c.missedBy
				err := ForEach(c.b, c.n, func(_ int, e *Event) { walk(e) })
				_, ferr := FilterBatch(c.b, c.n, nil, func(e *Event) bool { walk(e); return true })
				if (err != nil) != want || (ferr != nil) != want {
					t.Errorf("ForEach: %v, FilterBatch: %v; want an error: %v", err, ferr, want)
				}
			})
		}
	}
}

func TestEnrichBatchFrame(t *testing.T) {
	batch := append(record(1, "a", "", field(KindInt, "duration", i64(5))), record(2, "b", "")...)
	batch = append(batch, record(3, "c", "")...)
	out, err := EnrichBatch(batch, 3, nil, func(e *Event, p *Patch) {
		switch {
		case e.NameIs("a"):
			p.SetMetadata("k", "v")
			p.DeleteMeasurement("duration")
		case e.NameIs("c"):
			p.SetInt("x", 1)
			p.Drop()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{2, 0, 2, 0}
	want = append(want, field(KindMetadata, "k", []byte("v"))...)
	want[len(want)-len(field(KindMetadata, "k", []byte("v")))+1] = 1 // opcode set
	del := field(KindInt, "duration", nil)
	del[1] = 2
	want = append(want, del...)
	want = append(want, 0, 0, 0, 0, 1, 0, 0, 0)
	if !bytes.Equal(out, want) {
		t.Errorf("frame\n got %v\nwant %v", out, want)
	}
}

func TestFilterBatch(t *testing.T) {
	batch := append(record(1, "keep", ""), record(2, "drop", "")...)
	out, err := FilterBatch(batch, 2, nil, func(e *Event) bool { return e.NameIs("keep") })
	if err != nil || !bytes.Equal(out, []byte{1, 0}) {
		t.Fatalf("out=%v err=%v", out, err)
	}
}

func TestParseInt(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"007", 7, true}, {"1000000", 1000000, true},
		{"9223372036854775807", math.MaxInt64, true}, {"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false}, {"", 0, false}, {"-", 0, false}, {"+1", 0, false},
		{" 1", 0, false}, {"1 ", 0, false}, {"1e3", 0, false}, {"1_000", 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, ok := ParseInt(c.in)
			if ok != c.ok || got != c.want {
				t.Errorf("ParseInt(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	frame := binary.LittleEndian.AppendUint16(nil, 2)
	frame = append(frame, field(KindMetadata, "a", []byte("12"))...)
	frame = append(frame, field(KindMetadata, "b", []byte("x"))...)
	c, err := ParseConfig(frame)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Int64("a", 0); err != nil || v != 12 {
		t.Errorf("a = %d %v", v, err)
	}
	if v, err := c.Int64("missing", 9); err != nil || v != 9 {
		t.Errorf("missing = %d %v", v, err)
	}
	if _, err := c.Int64("b", 0); err == nil {
		t.Error("b parsed as int")
	}
	if err := c.Only("a"); err == nil {
		t.Error("Only(a) accepted key b")
	}
	if err := c.Only("a", "b"); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]byte{{1}, {1, 0}, append(binary.LittleEndian.AppendUint16(nil, 1), field(KindInt, "a", i64(1))...), append(bytes.Clone(frame), 0)} {
		if _, err := ParseConfig(bad); err == nil {
			t.Errorf("ParseConfig(%v) accepted", bad)
		}
	}
}

// FuzzForEach: no input makes the reader panic, and what it accepts walks.
func FuzzForEach(f *testing.F) {
	f.Add(record(1, "a", "c", field(KindInt, "d", i64(1)), field(KindMetadata, "m", []byte("v"))), 1)
	f.Add([]byte{}, 0)
	f.Add(record(1, "python.call.stop", "", field(KindInt, "cpu_ns", i64(1)), field(KindInt, "duration", i64(2)), field(KindHostContext, "pid", []byte("7"))), 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		_ = ForEach(b, n, func(_ int, e *Event) {
			e.Fields(func(f Field) bool { _ = f.Int() + int64(f.Float()); return true })
			e.Number("d")
			e.Metadata("m")
		})
		_, _ = EnrichBatch(b, n, nil, func(e *Event, p *Patch) { p.SetMetadata("k", string(e.Name)) })
		_, _ = FilterBatch(b, n, nil, func(e *Event) bool {
			_, _, _, ok := e.Number("duration")
			_, ok2 := e.HostContext("pid")
			return ok || ok2
		})
	})
}

// FuzzParseConfig: no config frame makes the parser panic.
func FuzzParseConfig(f *testing.F) {
	f.Add(append(binary.LittleEndian.AppendUint16(nil, 1), field(KindMetadata, "a", []byte("1"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err == nil {
			for i := 0; i < c.Len(); i++ {
				k, _ := c.Entry(i)
				c.Get(k)
			}
		}
	})
}
