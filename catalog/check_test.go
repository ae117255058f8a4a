package catalog

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/snakepipe/snakepipe/pipeline"
)

// sameString reports whether a and b share their bytes (interned).
func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

func TestSanitizeString(t *testing.T) {
	tests := []struct {
		name, in string
		limit    int
		want     string
		fixes    string
	}{
		{"ascii", "hello world", 16, "hello world", "none"},
		{"empty", "", 16, "", "none"},
		{"exact limit", "0123456789abcdef", 16, "0123456789abcdef", "none"},
		{"over limit", "0123456789abcdefg", 16, "0123456789abc…", "value_truncated=1"},
		{"utf8 kept", "héllo ✓ 🐍", 32, "héllo ✓ 🐍", "none"},
		{"utf8 over limit at boundary", strings.Repeat("é", 10), 16, "éééééé…", "value_truncated=1"},
		{"4-byte runes cut", strings.Repeat("🐍", 5), 16, "🐍🐍🐍…", "value_truncated=1"},
		{"invalid byte", "a\xffb", 16, "a\uFFFDb", "invalid_utf8=1"},
		{"invalid run is one replacement", "a\xff\xfe\xfdb", 16, "a\uFFFDb", "invalid_utf8=1"},
		{"truncated rune", "ab\xe2\x82", 16, "ab\uFFFD", "invalid_utf8=1"},
		{"surrogate", "\xed\xa0\x80x", 16, "\uFFFDx", "invalid_utf8=1"},
		{"overlong", "\xc0\xafx", 16, "\uFFFDx", "invalid_utf8=1"},
		{"two runs", "\xffa\xff", 16, "\uFFFDa\uFFFD", "invalid_utf8=1"},
		{"whitespace controls", "a\tb\nc\rd", 16, "a b c d", "control_chars=1"},
		{"other controls", "a\x00b\x1bc\x7fd", 16, "abcd", "control_chars=1"},
		{"c1 controls", "a\u0085b\u009fc\u0080", 16, "abc", "control_chars=1"},
		{"both", "\x00\xff", 16, "\uFFFD", "invalid_utf8=1 control_chars=1"},
		{"repair then truncate", "\x01" + strings.Repeat("x", 40), 16, "xxxxxxxxxxxxx…", "value_truncated=1 control_chars=1"},
		{"repair makes it fit", strings.Repeat("x", 16) + "\x00\x00\x00", 16, strings.Repeat("x", 16), "control_chars=1"},
		{"replacement near cut", strings.Repeat("x", 12) + "\xff" + strings.Repeat("y", 10), 16, "xxxxxxxxxxxx…", "value_truncated=1 invalid_utf8=1"},
		{"only controls", "\x00\x01\x02", 16, "", "control_chars=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fx Fixes
			got := sanitizeString(tt.in, tt.limit, &fx, FixValueTruncated)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if fx.String() != tt.fixes {
				t.Errorf("fixes %s, want %s", fx, tt.fixes)
			}
			if len(got) > tt.limit || !cleanText(got) {
				t.Errorf("result %q not clean or over the limit", got)
			}
			if got == tt.in && tt.in != "" && !sameString(got, tt.in) {
				t.Error("unchanged input was copied")
			}
		})
	}
}

func TestSanitizeStringLargeInputStopsEarly(t *testing.T) {
	// A 4 MiB value of mixed junk is cut without reading all of it into the
	// result.
	in := strings.Repeat("\xffé\x00x", 1<<20)
	var fx Fixes
	got := sanitizeString(in, 1024, &fx, FixValueTruncated)
	if len(got) > 1024 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("len %d, valid %v", len(got), utf8.ValidString(got))
	}
	if fx.Count(FixValueTruncated) != 1 || fx.Count(FixInvalidUTF8) != 1 || fx.Count(FixControlChars) != 1 {
		t.Errorf("fixes %s", fx)
	}
}

func newEvent(name string, ms []pipeline.Measurement, md ...string) pipeline.Event {
	ev := pipeline.Event{Name: name, Measurements: ms, SampleRate: 1}
	for i := 0; i+1 < len(md); i += 2 {
		ev.Metadata = append(ev.Metadata, pipeline.Label{Key: md[i], Value: md[i+1]})
	}
	return ev
}

func TestCheckRejects(t *testing.T) {
	c := MustNew(DefaultConfig())
	iv, fv, sv := pipeline.IntValue, pipeline.FloatValue, pipeline.StringValue
	m := func(k string, v pipeline.Value) pipeline.Measurement { return pipeline.Measurement{Key: k, Value: v} }
	tests := []struct {
		name     string
		ev       pipeline.Event
		reason   Reason
		sentinel error
		key      string
	}{
		{"empty name", newEvent("", nil), ReasonBadName, ErrBadName, ""},
		{"upper case", newEvent("Python.call.stop", nil), ReasonBadName, ErrBadName, ""},
		{"too long", newEvent(strings.Repeat("a", 129), nil), ReasonBadName, ErrBadName, ""},
		{"unknown", newEvent("python.call.stopp", nil), ReasonUnknownEvent, ErrUnknownEvent, ""},
		{"unknown key", newEvent("python.call.stop", []pipeline.Measurement{m("duration", iv(1)), m("x", iv(1))}), ReasonUnknownMeasurement, ErrUnknownMeasurement, "x"},
		{"float for int", newEvent("python.call.stop", []pipeline.Measurement{m("duration", fv(1))}), ReasonBadValueType, ErrBadValue, "duration"},
		{"int for float", newEvent("python.cpu.sampled", []pipeline.Measurement{m("cpu_percent", iv(1))}), ReasonBadValueType, ErrBadValue, "cpu_percent"},
		{"string not declared", newEvent("python.call.stop", []pipeline.Measurement{m("duration", sv("1"))}), ReasonBadValueType, ErrBadValue, "duration"},
		{"unset", newEvent("python.call.stop", []pipeline.Measurement{m("duration", pipeline.Value{})}), ReasonUnsetValue, ErrBadValue, "duration"},
		{"nan", newEvent("python.cpu.sampled", []pipeline.Measurement{m("cpu_percent", fv(math.NaN()))}), ReasonNonFinite, ErrNonFinite, "cpu_percent"},
		{"inf number", newEvent("snakepit.heartbeat.pong_received", []pipeline.Measurement{m("latency_ms", fv(math.Inf(1)))}), ReasonNonFinite, ErrNonFinite, "latency_ms"},
		{"too many", newEvent("python.call.stop", make([]pipeline.Measurement, 33)), ReasonTooManyMeasurements, ErrTooManyMeasurements, ""},
		{"sample rate nan", func() pipeline.Event { e := newEvent("python.call.stop", nil); e.SampleRate = math.NaN(); return e }(), ReasonBadSampleRate, ErrBadSampleRate, ""},
		{"sample rate >1", func() pipeline.Event { e := newEvent("python.call.stop", nil); e.SampleRate = 1.01; return e }(), ReasonBadSampleRate, ErrBadSampleRate, ""},
		{"sample rate <0", func() pipeline.Event { e := newEvent("python.call.stop", nil); e.SampleRate = -1; return e }(), ReasonBadSampleRate, ErrBadSampleRate, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			_, err := c.Check(&ev)
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a *RejectError", err)
			}
			if re.Reason != tt.reason || re.Key != tt.key || !errors.Is(err, tt.sentinel) {
				t.Errorf("got reason %s key %q (%v); want %s key %q", re.Reason, re.Key, err, tt.reason, tt.key)
			}
			if tt.reason != ReasonBadName && tt.reason != ReasonUnknownEvent && re.Event != ev.Name {
				t.Errorf("Event %q, want %q", re.Event, ev.Name)
			}
		})
	}
}

func TestRejectEventNameBounded(t *testing.T) {
	c := MustNew(DefaultConfig())
	ev := newEvent(strings.Repeat("a", 1<<20), nil)
	_, err := c.Check(&ev)
	var re *RejectError
	if !errors.As(err, &re) || re.Reason != ReasonBadName || len(re.Event) != DefaultMaxNameBytes {
		t.Fatalf("err %v, Event %d bytes", err, len(re.Event))
	}
}

func TestCheckSampleRateZeroMeansOne(t *testing.T) {
	c := MustNew(DefaultConfig())
	ev := newEvent("python.call.stop", nil)
	ev.SampleRate = 0
	if _, err := c.Check(&ev); err != nil || ev.SampleRate != 1 {
		t.Fatalf("err %v rate %v", err, ev.SampleRate)
	}
}

func TestCheckMetadataRules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.MaxMetadataKeys = 3
	cfg.Limits.MaxKeyBytes = 8
	c := MustNew(cfg)
	tests := []struct {
		name  string
		in    []string
		want  []string
		fixes string
	}{
		{"clean", []string{"a", "1", "b", "2"}, []string{"a", "1", "b", "2"}, "none"},
		{"host keys removed", []string{"worker_id", "x", "a", "1", "pool", "y", "hostname", "z", "pid", "9", "received_ns", "0"}, []string{"a", "1"}, "reserved_key=5"},
		{"long key dropped", []string{"abcdefghi", "x", "abcdefgh", "y"}, []string{"abcdefgh", "y"}, "key_too_long=1"},
		{"bad keys dropped", []string{"", "x", "a\x00", "y", "b\xff", "z", "c\u0085", "w", "ok", "v"}, []string{"ok", "v"}, "bad_key=4"},
		{"non-ascii and space keys kept", []string{"clé", "x", "a b", "y"}, []string{"clé", "x", "a b", "y"}, "none"},
		{"limit", []string{"a", "1", "b", "2", "c", "3", "d", "4", "e", "5"}, []string{"a", "1", "b", "2", "c", "3"}, "key_limit=2"},
		{"last wins at first position", []string{"a", "1", "b", "2", "a", "3"}, []string{"a", "3", "b", "2"}, "duplicate_key=1"},
		{"duplicate after limit updates", []string{"a", "1", "b", "2", "c", "3", "d", "4", "b", "x"}, []string{"a", "1", "b", "x", "c", "3"}, "key_limit=1 duplicate_key=1"},
		{"duplicate value repaired", []string{"a", "1", "a", "\x00z"}, []string{"a", "z"}, "control_chars=1 duplicate_key=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvent("tool.execution.stop", nil, tt.in...)
			fx, err := c.Check(&ev)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range ev.Metadata {
				got = append(got, l.Key, l.Value)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("metadata %q, want %q", got, tt.want)
			}
			if fx.String() != tt.fixes {
				t.Errorf("fixes %s, want %s", fx, tt.fixes)
			}
		})
	}
}

func TestCheckManyMetadataKeysUsesMap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.MaxMetadataKeys = 100
	c := MustNew(cfg)
	var md []string
	for i := range 300 {
		md = append(md, "k"+strings.Repeat("x", i%150), "v")
	}
	ev := newEvent("tool.execution.stop", nil, md...)
	fx, err := c.Check(&ev)
	if err != nil {
		t.Fatal(err)
	}
	// Keys longer than 64 bytes are dropped; "k"+x*i for i<64 are 64
	// distinct keys, each seen twice (i and i+150).
	if len(ev.Metadata) != 64 || fx.Count(FixDuplicateKey) != 64 || fx.Count(FixKeyTooLong) != 2*(150-64) {
		t.Fatalf("kept %d, fixes %s", len(ev.Metadata), fx)
	}
	seen := map[string]bool{}
	for _, l := range ev.Metadata {
		if seen[l.Key] {
			t.Fatalf("duplicate %q kept", l.Key)
		}
		seen[l.Key] = true
	}
}

func TestCheckCleanDoesNotAllocate(t *testing.T) {
	c := MustNew(DefaultConfig())
	ms := []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200)}, {Key: "count", Value: pipeline.IntValue(1)}}
	md := []pipeline.Label{{Key: "tool", Value: "search"}, {Key: "operation", Value: "query"}, {Key: "model", Value: "bert-base"}}
	ev := pipeline.Event{Name: "tool.execution.stop", CorrelationID: "req-1", SampleRate: 1}
	n := testing.AllocsPerRun(200, func() {
		ev.Name = "tool.execution.stop"
		ev.Measurements, ev.Metadata = ms, md
		if _, err := c.Check(&ev); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("clean Check allocates %v times per event", n)
	}
}

func TestCheckMeasurement(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Events = []EventConfig{{Name: "model.loaded", Measurements: map[string]MeasurementConfig{"version": {Type: "string"}}}}
	c := MustNew(cfg)
	tests := []struct {
		event, key string
		v          pipeline.Value
		reason     Reason
	}{
		{"python.call.stop", "duration", pipeline.IntValue(5), 0},
		{"python.call.stop", "duration", pipeline.FloatValue(5), ReasonBadValueType},
		{"python.call.stop", "nope", pipeline.IntValue(5), ReasonUnknownMeasurement},
		{"python.cpu.sampled", "cpu_percent", pipeline.FloatValue(math.NaN()), ReasonNonFinite},
		{"python.cpu.sampled", "cpu_percent", pipeline.Value{}, ReasonUnsetValue},
		{"no.such", "x", pipeline.IntValue(1), ReasonUnknownEvent},
		{"No Such", "x", pipeline.IntValue(1), ReasonBadName},
		{"model.loaded", "version", pipeline.StringValue("1.0"), 0},
		{"model.loaded", "version", pipeline.StringValue("1.0\n"), ReasonBadString},
		{"model.loaded", "version", pipeline.StringValue(strings.Repeat("x", 1025)), ReasonBadString},
	}
	for _, tt := range tests {
		err := c.CheckMeasurement(tt.event, tt.key, tt.v)
		if tt.reason == 0 {
			if err != nil {
				t.Errorf("%s %s: %v", tt.event, tt.key, err)
			}
			continue
		}
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != tt.reason {
			t.Errorf("%s %s %v: err %v, want %s", tt.event, tt.key, tt.v, err, tt.reason)
		}
	}
}

func TestSanitizeLabel(t *testing.T) {
	c := MustNew(DefaultConfig())
	tests := []struct {
		key, value string
		wantV      string
		sentinel   error
		fixes      string
	}{
		{"tool", "search", "search", nil, "none"},
		{"tool", "a\x00b\xff", "ab\uFFFD", nil, "invalid_utf8=1 control_chars=1"},
		{"tool", strings.Repeat("x", 2000), strings.Repeat("x", 1021) + "…", nil, "value_truncated=1"},
		{"worker_id", "x", "", ErrReservedKey, "none"},
		{"pid", "x", "", ErrReservedKey, "none"},
		{strings.Repeat("k", 65), "x", "", ErrKeyTooLong, "none"},
		{"", "x", "", ErrBadKey, "none"},
		{"a\nb", "x", "", ErrBadKey, "none"},
	}
	for _, tt := range tests {
		k, v, fx, err := c.SanitizeLabel(tt.key, tt.value)
		if tt.sentinel != nil {
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("SanitizeLabel(%q): err %v, want %v", tt.key, err, tt.sentinel)
			}
			continue
		}
		if err != nil || k != tt.key || v != tt.wantV || fx.String() != tt.fixes {
			t.Errorf("SanitizeLabel(%q, %q) = %q, %q, %s, %v", tt.key, tt.value, k, v, fx, err)
		}
	}
}

// Check finds an interned name by address and any other equal string by
// value, and a string that merely lies inside the interned names (a prefix
// of one, or spanning two) is not mistaken for an event.
func TestCheckInternedName(t *testing.T) {
	c := MustNew(DefaultConfig())
	interned, ok := c.LookupParts([]string{"python", "call", "stop"})
	if !ok {
		t.Fatal("python.call.stop not in the catalog")
	}
	if c.byAddress(interned) == nil {
		t.Fatal("LookupParts' name not found by address")
	}
	for _, name := range []string{interned, strings.Clone(interned)} {
		ev := newEvent(name, nil)
		if _, err := c.Check(&ev); err != nil {
			t.Fatalf("Check(%q): %v", name, err)
		}
		if !sameString(ev.Name, interned) {
			t.Fatal("Check did not leave the interned name")
		}
	}
	// Every start offset, with every wrong length, inside the block.
	for off := range c.names {
		for end := off + 1; end <= len(c.names) && end <= off+HardMaxNameBytes; end++ {
			s := c.names[off:end]
			d := c.byAddress(s)
			if d != nil && d.Name != s {
				t.Fatalf("byAddress(%q) = %q", s, d.Name)
			}
			if want := c.events[s]; d != nil && d != want {
				t.Fatalf("byAddress(%q) found another event than the map", s)
			}
		}
	}
	prefix := newEvent(interned[:len("python.call")], nil)
	if _, err := c.Check(&prefix); err == nil && prefix.Name == interned {
		t.Fatal("a prefix of an interned name resolved to the whole name")
	}
	if c.byAddress("") != nil || c.byAddress(strings.Clone(interned)) != nil {
		t.Fatal("byAddress matched a string that is not interned")
	}
}

// printablePrefix and printableASCII (8 bytes at a time) agree with a
// byte-by-byte scan for every byte value at every position of a word, with
// clean and dirty neighbours, and at every length up to three words.
func TestPrintablePrefix(t *testing.T) {
	slow := func(s string) int {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] >= 0x7f {
				return i
			}
		}
		return len(s)
	}
	for n := 0; n <= 24; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("~", n))
				b[pos] = byte(c)
				s := string(b)
				if got, want := printableASCII(s), slow(s) == n; got != want {
					t.Fatalf("printableASCII(%q) = %v", s, got)
				}
				if got, want := printablePrefix(s, n), slow(s); got != want {
					t.Fatalf("printablePrefix(%q) = %d, want %d", s, got, want)
				}
			}
		}
	}
	for _, fill := range []byte{'a', 0x20, 0x7e, 0x1f, 0x7f, 0x80, 0xff, 0x00} {
		for pos := 0; pos < 17; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("x", 17))
				if fill != 'a' {
					b[16] = fill
				}
				b[pos] = byte(c)
				s := string(b)
				if got, want := printablePrefix(s, len(s)), slow(s); got != want {
					t.Fatalf("printablePrefix(%q) = %d, want %d", s, got, want)
				}
			}
		}
	}
	// Every word of the edge bytes, up to three dirty bytes in a word.
	edges := []byte{0x00, 0x1f, 0x20, 'a', 0x7e, 0x7f, 0x80, 0xff}
	for x := 0; x < len(edges)*len(edges)*len(edges); x++ {
		for p := 0; p < 6; p++ {
			b := []byte("abcdefgh")
			b[p] = edges[x%8]
			b[p+1] = edges[x/8%8]
			b[p+2] = edges[x/64]
			s := string(b)
			if got, want := printablePrefix(s, len(s)), slow(s); got != want {
				t.Fatalf("printablePrefix(%q) = %d, want %d", s, got, want)
			}
			for n := 0; n <= len(s); n++ {
				if got, want := printableASCII(s[:n]), slow(s[:n]) == n; got != want {
					t.Fatalf("printableASCII(%q) = %v", s[:n], got)
				}
			}
		}
	}
}
