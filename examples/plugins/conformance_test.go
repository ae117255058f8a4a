package examples_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
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
// trap, never a callback on garbage) and the instance keeps working after.
func TestMalformedBatches(t *testing.T) {
	good := rawRecord("python.call.stop", intField("duration", 5))
	setU32 := func(b []byte, off int, v uint32) []byte {
		c := bytes.Clone(b)
		binary.LittleEndian.PutUint32(c[off:], v)
		return c
	}
	nameOff := 4 + 8
	fieldOff := nameOff + 2 + len("python.call.stop") + 2 + 2
	cases := []struct {
		name  string
		n     int
		batch []byte
	}{
		{"more events than records", 2, good},
		{"trailing byte", 1, append(bytes.Clone(good), 0)},
		{"rec_len past the end", 1, setU32(good, 0, uint32(len(good)))},
		{"rec_len too small", 1, setU32(good, 0, 3)},
		{"truncated record", 1, good[:len(good)-1]},
		{"short header", 1, good[:3]},
		{"name_len past record", 1, func() []byte {
			c := bytes.Clone(good)
			binary.LittleEndian.PutUint16(c[nameOff:], 0xffff)
			return c
		}()},
		{"nfields too many", 1, func() []byte {
			c := bytes.Clone(good)
			binary.LittleEndian.PutUint16(c[fieldOff-2:], 2)
			return c
		}()},
		{"unknown field kind", 1, func() []byte {
			c := bytes.Clone(good)
			c[fieldOff] = 9
			return c
		}()},
		{"kind 0", 1, func() []byte {
			c := bytes.Clone(good)
			c[fieldOff] = 0
			return c
		}()},
		{"int with val_len 4", 1, rawRecord("x", appendField(nil, 1, "duration", []byte{1, 2, 3, 4}))},
		{"float with val_len 9", 1, rawRecord("x", appendField(nil, 2, "duration", make([]byte, 9)))},
		{"val_len past record", 1, setU32(good, fieldOff+4, 0xffffffff)},
		{"zero events, some bytes", 0, good},
	}
	ctx := context.Background()
	for _, lang := range languages {
		for _, plugin := range []string{"slow_calls", "duration_class"} {
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
					_, err := g.callRaw(fn, c.n, c.batch)
					var code errCode
					if !errors.As(err, &code) || code != -2 {
						t.Errorf("%s: err = %v, want guest code -2", c.name, err)
					}
					res, err := g.callRaw(fn, 1, good)
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
