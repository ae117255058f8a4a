package plugins

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// The worked example of docs/plugin-abi.md §5.1, byte for byte.
func TestRecordMatchesDocExample(t *testing.T) {
	e := pipeline.Event{Name: "a.b", TimestampNs: 5, Measurements: []pipeline.Measurement{mi("d", 7)},
		Metadata: []pipeline.Label{{Key: "t", Value: "x"}}}
	want := strings.Join([]string{
		"2c000000", "0500000000000000", "0300612e62", "0000", "0200",
		"010001000800000064", "0700000000000000", "04000100010000007478",
	}, "")
	buf := make([]byte, recordSize(&e))
	n := encodeRecord(buf, &e, FieldsAll, nil)
	if got := hex.EncodeToString(buf[:n]); got != want || n != 48 {
		t.Fatalf("record %s (%d bytes), want %s", got, n, want)
	}
}

func TestEncodeConfig(t *testing.T) {
	got, err := EncodeConfig(map[string]string{"z": "1", "a": "xy"})
	if err != nil {
		t.Fatal(err)
	}
	want := "0200" + "0400010002000000" + "61" + "7879" + "0400010001000000" + "7a" + "31"
	if hex.EncodeToString(got) != want {
		t.Fatalf("config %x, want %s", got, want)
	}
	if got, _ := EncodeConfig(nil); !bytes.Equal(got, []byte{0, 0}) {
		t.Fatalf("empty config %x", got)
	}
}

// decodeRecord is the test's independent reader of the input format.
func decodeRecord(t *testing.T, b []byte) pipeline.Event {
	t.Helper()
	le := binary.LittleEndian
	if int(le.Uint32(b))+4 != len(b) {
		t.Fatalf("rec_len %d for %d bytes", le.Uint32(b), len(b))
	}
	p := 4
	var e pipeline.Event
	e.TimestampNs = int64(le.Uint64(b[p:]))
	p += 8
	str := func() string {
		n := int(le.Uint16(b[p:]))
		s := string(b[p+2 : p+2+n])
		p += 2 + n
		return s
	}
	e.Name = str()
	e.CorrelationID = str()
	nf := int(le.Uint16(b[p:]))
	p += 2
	var o pipeline.Origin
	for i := 0; i < nf; i++ {
		kind, flags := b[p], b[p+1]
		kl, vl := int(le.Uint16(b[p+2:])), int(le.Uint32(b[p+4:]))
		key, val := string(b[p+8:p+8+kl]), b[p+8+kl:p+8+kl+vl]
		p += 8 + kl + vl
		if flags != 0 {
			t.Fatalf("flags %d", flags)
		}
		switch kind {
		case fieldInt:
			e.Measurements = append(e.Measurements, mi(key, int64(le.Uint64(val))))
		case fieldFloat:
			e.Measurements = append(e.Measurements, mf(key, math.Float64frombits(le.Uint64(val))))
		case fieldString:
			e.Measurements = append(e.Measurements, pipeline.Measurement{Key: key, Value: pipeline.StringValue(string(val))})
		case fieldMeta:
			e.Metadata = append(e.Metadata, pipeline.Label{Key: key, Value: string(val)})
		case fieldContext:
			switch key {
			case "worker_id":
				o.WorkerID = string(val)
			case "pool":
				o.Pool = string(val)
			case "hostname":
				o.Hostname = string(val)
			case "pid":
				o.PID, _ = strconv.ParseInt(string(val), 10, 64)
				e.Origin = &o
			}
		default:
			t.Fatalf("kind %d", kind)
		}
	}
	if p != len(b) {
		t.Fatalf("%d trailing bytes", len(b)-p)
	}
	return e
}

func FuzzRecordRoundTrip(f *testing.F) {
	f.Add("python.call.stop", "corr", int64(5), "duration", int64(-7), 1.5, "tool", "x", true, int64(42))
	f.Add("", "", int64(0), "", int64(0), math.Inf(1), "", "", false, int64(-1))
	f.Fuzz(func(t *testing.T, name, corr string, ts int64, mkey string, iv int64, fv float64, lk, lv string, origin bool, pid int64) {
		e := pipeline.Event{Name: name, CorrelationID: corr, TimestampNs: ts,
			Measurements: []pipeline.Measurement{mi(mkey, iv), mf(mkey+"f", fv), {Key: mkey + "s", Value: pipeline.StringValue(lv)}},
			Metadata:     []pipeline.Label{{Key: lk, Value: lv}}}
		if origin {
			e.Origin = &pipeline.Origin{WorkerID: lk, Pool: lv, Hostname: name, PID: pid}
		}
		if !encodable(&e) {
			return
		}
		buf := make([]byte, recordSize(&e)+16)
		n := encodeRecord(buf, &e, FieldsAll, &originCache{})
		if n != recordSize(&e) {
			t.Fatalf("wrote %d, size %d", n, recordSize(&e))
		}
		got := decodeRecord(t, buf[:n])
		if got.Name != e.Name || got.CorrelationID != e.CorrelationID || got.TimestampNs != ts || len(got.Measurements) != 3 ||
			got.Measurements[0] != e.Measurements[0] || got.Measurements[2] != e.Measurements[2] || got.Metadata[0] != e.Metadata[0] {
			t.Fatalf("round trip %+v -> %+v", e, got)
		}
		if g, w := got.Measurements[1].Value.Float, fv; math.Float64bits(g) != math.Float64bits(w) {
			t.Fatalf("float %v -> %v", w, g)
		}
		if origin && (got.Origin == nil || *got.Origin != *e.Origin) {
			t.Fatalf("origin %+v -> %+v", e.Origin, got.Origin)
		}
	})
}

func FuzzDecodeActions(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0}, 2)
	f.Add([]byte{2, 0, 1, 0, 4, 1, 1, 0, 1, 0, 0, 0, 'k', 'v'}, 1)
	f.Add([]byte{2, 0, 1, 0, 1, 1, 1, 0, 8, 0, 0, 0, 'k', 1, 2, 3, 4, 5, 6, 7, 8}, 1)
	f.Fuzz(func(t *testing.T, res []byte, n int) {
		if n < 0 || n > 1000 {
			return
		}
		acts, err := decodeActions(res, n, nil)
		if err != nil {
			return
		}
		if len(acts) != n {
			t.Fatalf("%d actions for n=%d", len(acts), n)
		}
		size := 0
		for _, a := range acts {
			size += actionHdrLen
			for _, op := range a.ops {
				size += fieldHdrLen + len(op.key) + len(op.val)
			}
			e := pipeline.Event{Name: "x"}
			_ = applyAction(&e, &a, BasicValidator{}) // must not panic
		}
		if size != len(res) {
			t.Fatalf("actions cover %d of %d bytes", size, len(res))
		}
	})
}

func FuzzCheckVerdicts(f *testing.F) {
	f.Add([]byte{0, 1, 1}, 3)
	f.Fuzz(func(t *testing.T, res []byte, n int) {
		if err := checkVerdicts(res, n); err == nil {
			for _, v := range res {
				if v > 1 || len(res) != n {
					t.Fatal("accepted a bad verdict frame")
				}
			}
		}
	})
}
