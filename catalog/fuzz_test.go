package catalog

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/snakepipe/snakepipe/pipeline"
)

// fuzzCatalog has small limits so that the fuzzer reaches them, and a user
// event with a string measurement.
func fuzzCatalog(t testing.TB) *Catalog {
	cfg := DefaultConfig()
	cfg.Limits = Limits{
		MaxNameBytes: 64, MaxMetadataKeys: 4, MaxKeyBytes: 8, MaxValueBytes: 16,
		MaxMeasurements: 3, MaxCorrelationIDBytes: 16,
	}
	cfg.Events = []EventConfig{{Name: "model.loaded", Measurements: map[string]MeasurementConfig{
		"version": {Type: "string"}, "duration": {Type: "int"}, "score": {Type: "number"},
	}}}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fuzzEvent builds an event from fuzz input. Measurements: mkeys split on
// "|", the i-th value's kind from kinds[i]; metadata: meta split on "\x1f"
// into key, value, key, value…
func fuzzEvent(name, mkeys string, kinds []byte, ival int64, fval float64, sval, meta, corr string, rate float64) pipeline.Event {
	ev := pipeline.Event{Name: name, CorrelationID: corr, SampleRate: rate}
	if mkeys != "" {
		for i, k := range strings.Split(mkeys, "|") {
			var kind byte
			if i < len(kinds) {
				kind = kinds[i]
			}
			var v pipeline.Value
			switch kind % 4 {
			case 1:
				v = pipeline.IntValue(ival + int64(i))
			case 2:
				v = pipeline.FloatValue(fval)
			case 3:
				v = pipeline.StringValue(sval)
			}
			ev.Measurements = append(ev.Measurements, pipeline.Measurement{Key: k, Value: v})
		}
	}
	if meta != "" {
		parts := strings.Split(meta, "\x1f")
		for i := 0; i < len(parts); i += 2 {
			l := pipeline.Label{Key: parts[i]}
			if i+1 < len(parts) {
				l.Value = parts[i+1]
			}
			ev.Metadata = append(ev.Metadata, l)
		}
	}
	return ev
}

func FuzzCheck(f *testing.F) {
	f.Add("python.call.stop", "duration|count", []byte{1, 1}, int64(1200), 0.5, "", "tool\x1fx\x1fop\x1fy", "req", 1.0)
	f.Add("python.cpu.sampled", "cpu_percent", []byte{2}, int64(0), math.NaN(), "", "", "", 0.0)
	f.Add("model.loaded", "version|score|score", []byte{3, 2, 1}, int64(-1), 1.5, "v\x00\xff1.2.3-long-version", "a\x1f1\x1fa\x1f2\x1fpid\x1f3\x1fb\xff\x1f4", "\n\xffcorrelation-id-too-long", 0.25)
	f.Add("tool.execution.stop", "duration", []byte{1}, int64(5), 0.0, "", "k1\x1fv\x1fk2\x1fv\x1fk3\x1fv\x1fk4\x1fv\x1fk5\x1fv\x1fverylongkey\x1fv", strings.Repeat("é", 20), 1.0)
	f.Add("Bad..Name", "", []byte(nil), int64(0), 0.0, "", "", "", 2.0)
	f.Add("snakepit.heartbeat.pong_received", "latency_ms|count", []byte{2, 0}, int64(3), math.Inf(-1), "", "", "", 1.0)
	c := fuzzCatalog(f)
	lim := c.Limits()
	f.Fuzz(func(t *testing.T, name, mkeys string, kinds []byte, ival int64, fval float64, sval, meta, corr string, rate float64) {
		ev := fuzzEvent(name, mkeys, kinds, ival, fval, sval, meta, corr, rate)
		fx, err := c.Check(&ev)

		// Deterministic: the same input gives the same output.
		ev2 := fuzzEvent(name, mkeys, kinds, ival, fval, sval, meta, corr, rate)
		fx2, err2 := c.Check(&ev2)
		if fx != fx2 || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v/%v %v/%v", fx, fx2, err, err2)
		}

		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) || !slices.Contains(Reasons(), re.Reason) {
				t.Fatalf("error %v is not a *RejectError with a known reason", err)
			}
			return
		}
		out := pipeline.AppendJSON(nil, &ev)
		if out2 := pipeline.AppendJSON(nil, &ev2); !bytes.Equal(out, out2) {
			t.Fatalf("not deterministic:\n%s\n%s", out, out2)
		}

		// Accepted events only hold what the catalog allows.
		d, ok := c.Lookup(ev.Name)
		if !ok || !sameString(d.Name, ev.Name) {
			t.Fatalf("accepted name %q not interned from the catalog", ev.Name)
		}
		if !(ev.SampleRate > 0 && ev.SampleRate <= 1) {
			t.Fatalf("sample rate %v", ev.SampleRate)
		}
		if len(ev.Measurements) > lim.MaxMeasurements {
			t.Fatalf("%d measurements", len(ev.Measurements))
		}
		seenM := map[string]bool{}
		for _, m := range ev.Measurements {
			md, ok := d.Measurement(m.Key)
			if !ok || !md.Type.Accepts(m.Value.Kind) || seenM[m.Key] {
				t.Fatalf("measurement %q %v not allowed (or duplicate)", m.Key, m.Value)
			}
			seenM[m.Key] = true
			if f, ok := m.Value.AsFloat(); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				t.Fatalf("non-finite %q", m.Key)
			}
			if m.Value.Kind == pipeline.KindString {
				checkCleanString(t, "string measurement", m.Value.Str, lim.MaxValueBytes)
			}
		}
		if len(ev.Metadata) > lim.MaxMetadataKeys {
			t.Fatalf("%d metadata keys", len(ev.Metadata))
		}
		seen := map[string]bool{}
		for _, l := range ev.Metadata {
			if pipeline.IsHostKey(l.Key) || seen[l.Key] || l.Key == "" {
				t.Fatalf("metadata key %q reserved, empty or duplicate", l.Key)
			}
			seen[l.Key] = true
			checkCleanString(t, "metadata key", l.Key, lim.MaxKeyBytes)
			checkCleanString(t, "metadata value", l.Value, lim.MaxValueBytes)
		}
		checkCleanString(t, "correlation id", ev.CorrelationID, lim.MaxCorrelationIDBytes)

		// Idempotent: a checked event passes again unchanged.
		again := ev
		again.Measurements = slices.Clone(ev.Measurements)
		again.Metadata = slices.Clone(ev.Metadata)
		fx3, err := c.Check(&again)
		if err != nil || fx3.Any() || !bytes.Equal(pipeline.AppendJSON(nil, &again), out) {
			t.Fatalf("second Check changed the event: %v %v", fx3, err)
		}
		_ = fx
	})
}

func checkCleanString(t *testing.T, what, s string, limit int) {
	t.Helper()
	if len(s) > limit {
		t.Fatalf("%s %q is %d bytes, over %d", what, s, len(s), limit)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q is not valid UTF-8", what, s)
	}
	for _, r := range s {
		if isControl(r) {
			t.Fatalf("%s %q holds control character %U", what, s, r)
		}
	}
}

// FuzzSanitizeString checks the string repair on its own, with arbitrary
// limits.
func FuzzSanitizeString(f *testing.F) {
	f.Add("hello", 16)
	f.Add("a\xff\xfe\x00b\tc\u0085"+strings.Repeat("🐍", 10), 16)
	f.Add(strings.Repeat("é", 100), 17)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit < minTruncBytes || limit > HardMaxValueBytes {
			limit = minTruncBytes + (limit&0xff+0xff)%0xff
		}
		var fx Fixes
		got := sanitizeString(s, limit, &fx, FixValueTruncated)
		checkCleanString(t, "result", got, limit)
		if !fx.Any() && got != s {
			t.Fatalf("changed %q to %q without a fix", s, got)
		}
		if fx.Any() && got == s {
			t.Fatalf("fixes %s but %q unchanged", fx, s)
		}
		if fx.Count(FixValueTruncated) > 0 && !strings.HasSuffix(got, ellipsis) {
			t.Fatalf("truncated %q without marker", got)
		}
		var fx2 Fixes
		if again := sanitizeString(got, limit, &fx2, FixValueTruncated); again != got || fx2.Any() {
			t.Fatalf("not idempotent: %q -> %q", got, again)
		}
	})
}

// FuzzCleanLabels checks cleanLabels, the fast path of the metadata rules:
// whenever it says a label set needs no repair, the full rules leave it
// unchanged and count no fix; and it says so for every printable ASCII set
// the rules keep (false for other text only costs the slow path).
func FuzzCleanLabels(f *testing.F) {
	f.Add("command\x1fpredict_batch\x1fmodule\x1fmodel.inference")
	f.Add("a\x1f1\x1fa\x1f2")
	f.Add("pid\x1f3")
	f.Add("k\x1f" + strings.Repeat("v", 17) + "\x1fk2\x1fvalue with spaces ~")
	f.Add("k\x1fv\x7f\x1fk2\x1f\tx")
	f.Add("\x1fempty key\x1fé\x1fx")
	f.Add("k1\x1fv\x1fk2\x1fv\x1fk3\x1fv\x1fk4\x1fv\x1fk5\x1fv")
	c := fuzzCatalog(f)
	lim := c.Limits()
	f.Fuzz(func(t *testing.T, meta string) {
		md := fuzzEvent("python.call.stop", "", nil, 0, 0, "", meta, "", 1).Metadata
		clean := cleanLabels(md, lim.MaxMetadataKeys, lim.MaxKeyBytes, lim.MaxValueBytes)
		ev := pipeline.Event{Metadata: slices.Clone(md)}
		var fx Fixes
		c.sanitizeMetadataRules(&ev, &fx)
		changed := fx.Any() || !slices.Equal(ev.Metadata, md)
		if clean && changed {
			t.Fatalf("cleanLabels(%q) = true, but the rules changed it to %q (fixes %v)", md, ev.Metadata, fx)
		}
		ascii := true // the fast path is for printable ASCII only
		for _, l := range md {
			ascii = ascii && !strings.ContainsFunc(l.Key+l.Value, func(r rune) bool { return r < 0x20 || r >= 0x7f })
		}
		if !clean && !changed && ascii && len(md) <= cleanLabelsMax {
			t.Fatalf("cleanLabels(%q) = false for printable ASCII labels the rules keep as they are", md)
		}
	})
}
