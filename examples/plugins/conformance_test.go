package examples_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// rawRecord encodes one record by hand so tests can corrupt it.
func rawRecord(name string, fields ...[]byte) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.LittleEndian.AppendUint64(b, 7)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fields)))
	for _, f := range fields {
		b = append(b, f...)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func intField(key string, v int64) []byte {
	return appendField(nil, 1, key, binary.LittleEndian.AppendUint64(nil, uint64(v)))
}

// TestMalformedBatches: every SDK answers a malformed batch with -2 (never a
// trap) and the instance keeps working after. The record frame (lengths,
// name, correlation id, field count) is always checked. Fields are checked
// lazily by every SDK: a malformed field that a lookup walks over or
// returns fails the batch, one that no lookup reaches may not (then the
// result must still be well formed).
func TestMalformedBatches(t *testing.T) {
	good := rawRecord("python.call.stop", intField("duration", 5))
	setU32 := func(b []byte, off int, v uint32) []byte {
		c := bytes.Clone(b)
		binary.LittleEndian.PutUint32(c[off:], v)
		return c
	}
	nameOff := 4 + 8
	fieldOff := nameOff + 2 + len("python.call.stop") + 2 + 2
	// unread: the malformation is in a field no lookup of the plugin has to
	// reach (slow_calls reads no field of an event not named
	// python.call.stop; both stop at the duration field).
	type malformed struct {
		name   string
		n      int
		batch  []byte
		unread map[string]bool
	}
	both := map[string]bool{"slow_calls": true, "duration_class": true}
	slowOnly := map[string]bool{"slow_calls": true}
	cases := []malformed{
		// the record frame
		{"more events than records", 2, good, nil},
		{"trailing byte", 1, append(bytes.Clone(good), 0), nil},
		{"rec_len past the end", 1, setU32(good, 0, uint32(len(good))), nil},
		{"rec_len too small", 1, setU32(good, 0, 3), nil},
		{"truncated record", 1, good[:len(good)-1], nil},
		{"short header", 1, good[:3], nil},
		{"name_len past record", 1, func() []byte {
			c := bytes.Clone(good)
			binary.LittleEndian.PutUint16(c[nameOff:], 0xffff)
			return c
		}(), nil},
		{"corr_len past record", 1, func() []byte {
			c := bytes.Clone(good)
			binary.LittleEndian.PutUint16(c[fieldOff-4:], 30)
			return c
		}(), nil},
		{"zero events, some bytes", 0, good, nil},
		// fields every lookup of duration walks over or returns
		{"val_len past record", 1, setU32(good, fieldOff+4, 0xffffffff), nil},
		{"key_len past record", 1, func() []byte {
			c := bytes.Clone(good)
			binary.LittleEndian.PutUint16(c[fieldOff+2:], 0xffff)
			return c
		}(), nil},
		{"field before duration past record", 1, setU32(rawRecord("python.call.stop",
			appendField(nil, 4, "a", []byte("b")), intField("duration", 5)), fieldOff+4, 1000), nil},
		{"int duration with val_len 4", 1, rawRecord("python.call.stop", appendField(nil, 1, "duration", []byte{1, 2, 3, 4})), nil},
		{"float duration with val_len 9", 1, rawRecord("python.call.stop", appendField(nil, 2, "duration", make([]byte, 9))), nil},
		{"field count past the fields, no duration", 1, setU16(rawRecord("python.call.stop", appendField(nil, 4, "a", []byte("b"))), fieldOff-2, 2), nil},
		// fields a lazy SDK need not read
		{"nfields too many", 1, setU16(good, fieldOff-2, 2), both},
		{"unknown field kind", 1, func() []byte {
			c := bytes.Clone(good)
			c[fieldOff] = 9
			return c
		}(), both},
		{"kind 0", 1, func() []byte {
			c := bytes.Clone(good)
			c[fieldOff] = 0
			return c
		}(), both},
		{"int with val_len 4, other name", 1, rawRecord("x", appendField(nil, 1, "duration", []byte{1, 2, 3, 4})), slowOnly},
		{"float with val_len 9, other name", 1, rawRecord("x", appendField(nil, 2, "duration", make([]byte, 9))), slowOnly},
		{"bad field after duration", 1, rawRecord("python.call.stop", intField("duration", 5), appendField(nil, 1, "x", nil)), both},
	}
	ctx := context.Background()
	for _, lang := range append(append([]string(nil), languages...), asStrKeys) {
		for _, plugin := range []string{"slow_calls", "duration_class"} {
			if lang == asStrKeys && plugin != "slow_calls" {
				continue
			}
			t.Run(lang+"/"+plugin, func(t *testing.T) {
				g, err := loadGuest(ctx, wasmPath(t, lang, plugin), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer g.close()
				fn := g.filter
				if fn == nil {
					fn = g.enrich
				}
				for _, c := range cases {
					res, err := g.callRaw(fn, c.n, c.batch)
					var code errCode
					switch {
					case errors.As(err, &code) && code == -2:
					case err == nil && c.unread[plugin]:
						if msg := checkResult(res, c.n, g.filter != nil); msg != "" {
							t.Errorf("%s: malformed result %v: %s", c.name, res, msg)
						}
					default:
						t.Errorf("%s: err = %v, want guest code -2", c.name, err)
					}
					res, err = g.callRaw(fn, 1, good)
					if err != nil {
						t.Fatalf("after %s: good batch failed: %v", c.name, err)
					}
					if len(res) == 0 {
						t.Fatalf("after %s: empty result for a good batch", c.name)
					}
				}
				res, err := g.callRaw(fn, 0, nil)
				if err != nil || len(res) != 0 {
					t.Errorf("empty batch: res=%v err=%v, want an empty result", res, err)
				}
			})
		}
	}
}

func setU16(b []byte, off int, v uint16) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint16(c[off:], v)
	return c
}

// checkResult returns why res is not a well-formed result for n events
// ("" when it is).
func checkResult(res []byte, n int, filter bool) string {
	if !filter {
		if err := checkActions(res, n); err != nil {
			return err.Error()
		}
		return ""
	}
	if len(res) != n {
		return "wrong number of verdicts"
	}
	for _, v := range res {
		if v > 1 {
			return "verdict not 0 or 1"
		}
	}
	return ""
}

// TestLargeBatches: batches past the SDKs' static buffers (input > 64 KiB,
// results > 16 KiB, one 200 KiB event) give the same output as one event at
// a time.
func TestLargeBatches(t *testing.T) {
	var big, many []pipeline.Event
	pad := strings.Repeat("x", 4096)
	for i := 0; i < 256; i++ {
		big = append(big, pipeline.Event{
			Name: "python.call.stop", TimestampNs: int64(i), SampleRate: 1,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(int64(i) * 1_000_000)}},
			Metadata:     []pipeline.Label{{Key: "pad", Value: pad}},
		})
	}
	for i := 0; i < 20000; i++ {
		many = append(many, pipeline.Event{
			Name: "python.call.stop", TimestampNs: int64(i), SampleRate: 1,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.FloatValue(float64(i) * 10_000.5)}},
		})
	}
	huge := []pipeline.Event{{
		Name: "python.call.stop", SampleRate: 1,
		Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(2_000_000)}},
		Metadata:     []pipeline.Label{{Key: "blob", Value: strings.Repeat("é", 100<<10)}},
	}}
	ctx := context.Background()
	cfgs := map[string]map[string]string{
		"slow_calls":     {"min_duration_ns": "50000000"},
		"duration_class": {"fast_ns": "3000000", "slow_ns": "150000000"},
	}
	for _, lang := range languages {
		for plugin, cfg := range cfgs {
			t.Run(lang+"/"+plugin, func(t *testing.T) {
				g, err := loadGuest(ctx, wasmPath(t, lang, plugin), cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer g.close()
				for name, events := range map[string][]pipeline.Event{"big": big, "many": many, "huge": huge} {
					all := toJSONL(runBatched(t, g, events, len(events)))
					one := toJSONL(runBatched(t, g, events, 1))
					if !bytes.Equal(all, one) {
						t.Errorf("%s: one batch of %d differs from one event at a time", name, len(events))
					}
					if len(all) == 0 && plugin == "duration_class" {
						t.Errorf("%s: enricher returned nothing", name)
					}
				}
			})
		}
	}
}

// TestEnrichPatchShape: the enricher emits exactly one set-metadata patch for
// an event with duration and op 0 for one without, in every language.
func TestEnrichPatchShape(t *testing.T) {
	batch := append(rawRecord("a", intField("duration", 1)), rawRecord("b", intField("other", 1))...)
	want := []byte{2, 0, 1, 0, 4, 1}
	want = binary.LittleEndian.AppendUint16(want, uint16(len("duration_class")))
	want = binary.LittleEndian.AppendUint32(want, uint32(len("fast")))
	want = append(want, "duration_classfast"...)
	want = append(want, 0, 0, 0, 0)
	ctx := context.Background()
	for _, lang := range languages {
		t.Run(lang, func(t *testing.T) {
			g, err := loadGuest(ctx, wasmPath(t, lang, "duration_class"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer g.close()
			res, err := g.callRaw(g.enrich, 2, batch)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res, want) {
				t.Errorf("result frame = %v, want %v", res, want)
			}
		})
	}
}

// TestManyFields: lookups past the fields the SDKs visit without a loop
// (the first 8) find duration, and miss it, the same way in every SDK.
func TestManyFields(t *testing.T) {
	mk := func(ts int64, n int, duration *pipeline.Value) pipeline.Event {
		e := pipeline.Event{Name: "python.call.stop", TimestampNs: ts, SampleRate: 1}
		for i := 0; i < n; i++ {
			e.Measurements = append(e.Measurements, pipeline.Measurement{Key: fmt.Sprintf("durat%03d", i), Value: pipeline.IntValue(int64(i))})
		}
		if duration != nil {
			e.Measurements = append(e.Measurements, pipeline.Measurement{Key: "duration", Value: *duration})
		}
		e.Metadata = []pipeline.Label{{Key: "duration", Value: "not a measurement"}}
		return e
	}
	slow, fast := pipeline.IntValue(5_000_000), pipeline.FloatValue(10)
	var events []pipeline.Event
	for _, n := range []int{0, 7, 8, 9, 30} {
		events = append(events, mk(int64(3*n), n, &slow), mk(int64(3*n+1), n, &fast), mk(int64(3*n+2), n, nil))
	}
	ctx := context.Background()
	for _, lang := range languages {
		t.Run(lang, func(t *testing.T) {
			g, err := loadGuest(ctx, wasmPath(t, lang, "slow_calls"), map[string]string{"min_duration_ns": "1000000"})
			if err != nil {
				t.Fatal(err)
			}
			defer g.close()
			out, err := g.run(events)
			if err != nil {
				t.Fatal(err)
			}
			var kept []int64
			for _, e := range out {
				kept = append(kept, e.TimestampNs)
			}
			want := []int64{0, 2, 21, 23, 24, 26, 27, 29, 90, 92}
			if fmt.Sprint(kept) != fmt.Sprint(want) {
				t.Errorf("slow_calls kept %v, want %v", kept, want)
			}

			d, err := loadGuest(ctx, wasmPath(t, lang, "duration_class"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.close()
			out, err = d.run(events)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range out {
				got, _ := e.Meta("duration_class")
				want := []string{"normal", "fast", ""}[i%3]
				if got != want {
					t.Errorf("duration_class of event %d (%d fields before duration) = %q, want %q", i, len(e.Measurements)-1, got, want)
				}
			}
		})
	}
}
