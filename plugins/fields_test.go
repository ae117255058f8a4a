package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// fieldsEvents: one event with every field group (two measurements, one
// metadata label, host context), one with measurements only, one with
// nothing but the frame.
func fieldsEvents() *pipeline.Batch {
	full := ev("python.call.stop", mi("duration", 7), mf("ratio", 0.5))
	full.Metadata = []pipeline.Label{{Key: "function", Value: "handler"}}
	full.Origin = &pipeline.Origin{WorkerID: "w-1", Pool: "default", Hostname: "host-a", PID: 42}
	full.CorrelationID = "c0ffee"
	evs := []pipeline.Event{full, ev("python.call.start", mi("duration", 1)), ev("bare")}
	for i := range evs {
		evs[i].Seq = uint64(i)
	}
	return &pipeline.Batch{Events: evs}
}

// seenFor is what testdata/fields.wasm reports for e when sent the groups g:
// "n=<nfields> kinds=<kind of each field sent, in order>".
func seenFor(e *pipeline.Event, g FieldGroups) string {
	var kinds strings.Builder
	if g&FieldsMeasurements != 0 {
		for _, m := range e.Measurements {
			kinds.WriteString(map[pipeline.ValueKind]string{pipeline.KindInt: "1", pipeline.KindFloat: "2", pipeline.KindString: "3"}[m.Value.Kind])
		}
	}
	if g&FieldsMetadata != 0 {
		kinds.WriteString(strings.Repeat("4", len(e.Metadata)))
	}
	if g&FieldsHostContext != 0 && e.Origin != nil {
		kinds.WriteString("5555")
	}
	return fmt.Sprintf("n=%d kinds=%s", kinds.Len(), kinds.String())
}

// TestFieldsSentToGuest: a real guest (testdata/fields.wasm, an enricher
// whose snk_fields returns its config value `fields`) is sent exactly the
// field groups it declares, for every set 0..7, in order, with nfields
// and rec_len counting only what is sent (the guest fails the batch if its
// walk over nfields fields does not end at rec_len).
func TestFieldsSentToGuest(t *testing.T) {
	h := newTestHost(t)
	for g := FieldGroups(0); g <= FieldsAll; g++ {
		t.Run(strconv.Itoa(int(g)), func(t *testing.T) {
			cfg := cfgFor(td("fields.wasm"))
			cfg.Config = map[string]string{"fields": strconv.Itoa(int(g))}
			// The self-test runs on the probe: the groups must hold there too.
			cfg.SelfTest.Events = []string{`{"name":"self","timestamp_ns":1,"measurements":{"n":1},"metadata":{"a":"b"}}`}
			m := pipeline.NewMetrics()
			s := mustStage(t, h, cfg, stageOpts{metrics: m})
			if v, _ := s.Current(); v.Fields != g {
				t.Fatalf("version fields %d, want %d", v.Fields, g)
			}
			in := fieldsEvents()
			want := make([]string, len(in.Events))
			for i := range in.Events {
				want[i] = seenFor(&in.Events[i], g)
			}
			out, err := s.Process(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if f := metric(t, m, "snakepipe_plugin_failures_total", "kind", "error"); f != 0 {
				t.Fatalf("%v batches failed (the guest's walk over the fields did not end at rec_len)", f)
			}
			if out.Len() != len(want) {
				t.Fatalf("%d events out, want %d", out.Len(), len(want))
			}
			for i, e := range out.Events {
				if got, _ := e.Meta("seen"); got != want[i] {
					t.Errorf("event %s: the guest saw %q, want %q", e.Name, got, want[i])
				}
			}
		})
	}
	// A stage with a config starts a module whose snk_init refuses an empty
	// one, and asks its snk_fields. (That snk_init runs first, with the
	// config, is shown by the fields.wasm cases above: there snk_fields
	// answers the config's value.)
	needCfg := cfgFor(td("fields_needcfg.wasm"))
	needCfg.Config = map[string]string{"any": "x"}
	if v, _ := mustStage(t, h, needCfg, stageOpts{}).Current(); v.Fields != FieldsMeasurements {
		t.Errorf("fields_needcfg.wasm with a config: fields %d, want 1", v.Fields)
	}
	// Every instance asks snk_fields, not only the probe.
	cfg := cfgFor(td("fields.wasm"))
	cfg.Config = map[string]string{"fields": "5"}
	s := mustStage(t, h, cfg, stageOpts{})
	inst, err := s.instantiate(context.Background(), s.cur.Load())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.close(true, false)
	if inst.fields != FieldsMeasurements|FieldsHostContext {
		t.Errorf("a second instance has fields %d, want 5", inst.fields)
	}
}

// An event whose metadata is over max_event_bytes is oversize only for a
// plugin that is sent metadata: the size counts only the groups sent.
func TestFieldsOversizeCountsSentGroups(t *testing.T) {
	h := newTestHost(t)
	for _, tc := range []struct {
		fields   string
		oversize float64
		seen     string
	}{
		{"1", 0, "n=1 kinds=1"},
		{"7", 1, ""},
	} {
		t.Run("fields="+tc.fields, func(t *testing.T) {
			cfg := cfgFor(td("fields.wasm"))
			cfg.Config = map[string]string{"fields": tc.fields}
			m := pipeline.NewMetrics()
			s := mustStage(t, h, cfg, stageOpts{metrics: m})
			big := ev("big", mi("duration", 1))
			big.Metadata = []pipeline.Label{{Key: "pad", Value: strings.Repeat("x", 70000)}}
			out, err := s.Process(context.Background(), &pipeline.Batch{Events: []pipeline.Event{ev("small"), big}})
			if err != nil {
				t.Fatal(err)
			}
			if got := metric(t, m, "snakepipe_plugin_oversize_events_total"); got != tc.oversize {
				t.Errorf("oversize events %v, want %v", got, tc.oversize)
			}
			if out.Len() != 2 { // on_error: pass (the default) keeps the oversize one
				t.Fatalf("%d events out, want 2", out.Len())
			}
			if got, _ := out.Events[1].Meta("seen"); got != tc.seen {
				t.Errorf("the big event: guest saw %q, want %q", got, tc.seen)
			}
		})
	}
}

// A snk_fields with bits that are not field groups, a trap in it, or a
// wrong signature refuse the module at load, with messages that say what
// is wrong.
func TestFieldsLoadRefused(t *testing.T) {
	h := newTestHost(t)
	const groups = "(1 measurements, 2 metadata, 4 host context)"
	tests := []struct {
		name   string
		file   string
		config map[string]string
		is     error
		msg    string // the whole message, or its start when prefix
		prefix bool
	}{
		{name: "bit 8", file: "fields.wasm", config: map[string]string{"fields": "9"}, is: ErrInit,
			msg: "plugin wasm/test: probe: plugin initialisation failed: snk_fields() returned 9: 8 is not a field group " + groups},
		{name: "bits 8 and 16", file: "fields.wasm", config: map[string]string{"fields": "26"}, is: ErrInit,
			msg: "plugin wasm/test: probe: plugin initialisation failed: snk_fields() returned 26: bits 0x18 are not field groups " + groups},
		{name: "negative", file: "fields.wasm", config: map[string]string{"fields": "4294967295"}, is: ErrInit,
			msg: "plugin wasm/test: probe: plugin initialisation failed: snk_fields() returned -1: bits 0xfffffff8 are not field groups " + groups},
		{name: "trap", file: "fields.wasm", config: map[string]string{"trap_fields": "1"}, is: ErrInit,
			msg: "plugin wasm/test: probe: plugin initialisation failed: snk_fields: wasm error: unreachable", prefix: true},
		{name: "constant 9", file: "fields_bad.wasm", is: ErrInit,
			msg: "plugin wasm/test: probe: plugin initialisation failed: snk_fields() returned 9: 8 is not a field group " + groups},
		{name: "signature", file: "fields_badsig.wasm", is: ErrBadExports,
			msg: "plugin wasm/test: bad exports: export snk_fields has signature (i32) -> i32, want () -> i32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfgFor(td(tc.file))
			cfg.Config = tc.config
			_, err := newTestStage(t, h, cfg, stageOpts{})
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
			if got := err.Error(); tc.prefix && !strings.HasPrefix(got, tc.msg) || !tc.prefix && got != tc.msg {
				t.Errorf("error\n %q\nwant %q (prefix %v)", got, tc.msg, tc.prefix)
			}
		})
	}
}

// A hot swap to a version whose snk_fields returns bad bits is refused;
// the running version stays and keeps being sent its own groups.
func TestFieldsHotSwapRefused(t *testing.T) {
	h := newTestHost(t)
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	installFile(t, td("fields.wasm"), path)
	cfg := cfgFor(path)
	cfg.Config = map[string]string{"fields": "1"}
	m := pipeline.NewMetrics()
	s := mustStage(t, h, cfg, stageOpts{metrics: m})
	before, _ := s.Current()
	installFile(t, td("fields_bad.wasm"), path)
	_, err := s.Reload(context.Background())
	const want = "plugin wasm/test: probe: plugin initialisation failed: snk_fields() returned 9: 8 is not a field group (1 measurements, 2 metadata, 4 host context)"
	if err == nil || err.Error() != want {
		t.Fatalf("reload error %v, want %q", err, want)
	}
	if after, _ := s.Current(); after.Seq != before.Seq || after.SHA256 != before.SHA256 || after.Fields != FieldsMeasurements {
		t.Fatalf("version after the refused swap: %+v, want the old one %+v", after, before)
	}
	if got := metric(t, m, "snakepipe_plugin_reloads_total", "result", "failed"); got != 1 {
		t.Errorf("failed reloads %v, want 1", got)
	}
	in := fieldsEvents()
	out, err := s.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := out.Events[0].Meta("seen"); got != "n=2 kinds=12" {
		t.Errorf("after the refused swap the guest saw %q, want the measurements only", got)
	}
}

// RunTest (`snakepipe plugin test`) says which groups the plugin is sent,
// and counts an event as too large by the groups sent.
func TestRunTestFields(t *testing.T) {
	input := `{"name":"big","timestamp_ns":1,"measurements":{"duration":5},"metadata":{"pad":"` + strings.Repeat("x", 70000) + `"}}` + "\n"
	for _, tc := range []struct {
		path     string
		config   map[string]string
		line     string
		tooLarge int
	}{
		{td("fields.wasm"), map[string]string{"fields": "1"}, ", deadline 1s, fields measurements (snk_fields() returned 1)\n", 0},
		{td("fields.wasm"), map[string]string{"fields": "6"}, ", deadline 1s, fields metadata, host context (snk_fields() returned 6)\n", 1},
		{td("enrich.wasm"), nil, ", deadline 1s, fields all (no snk_fields export)\n", 1},
	} {
		t.Run(tc.line, func(t *testing.T) {
			var out bytes.Buffer
			sum, err := RunTest(context.Background(), &out, TestOptions{Path: tc.path, Config: tc.config, Input: strings.NewReader(input), TimeBudget: time.Millisecond})
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), tc.line) || sum.TooLarge != tc.tooLarge {
				t.Errorf("too large %d, want %d; output lacks %q?\n%s", sum.TooLarge, tc.tooLarge, tc.line, out.String())
			}
		})
	}
}

// Inspect reports the declared groups, calling snk_fields in an instance
// started with an empty config, and lists a bad snk_fields as a problem.
func TestInspectFields(t *testing.T) {
	for _, tc := range []struct {
		file    string
		line    string
		fields  FieldGroups // when known
		problem string
	}{
		{file: "fields.wasm", line: "fields:      all (snk_fields() returned 7 with an empty config)\n", fields: FieldsAll},
		{file: "enrich.wasm", line: "fields:      all (no snk_fields export)\n", fields: FieldsAll},
		{file: "fields_bad.wasm", line: "fields:      unknown: snk_fields failed\n",
			problem: "plugin initialisation failed: snk_fields() returned 9: 8 is not a field group (1 measurements, 2 metadata, 4 host context)"},
		{file: "fields_badsig.wasm", line: "fields:      unknown: snk_fields has the wrong signature\n",
			problem: "bad exports: export snk_fields has signature (i32) -> i32, want () -> i32"},
		{file: "notwasm.wasm", line: "fields:      unknown\n", problem: "not a valid WebAssembly module: no Wasm magic \\0asm at the start"},
		{file: "initfail.wasm", line: "fields:      all (no snk_fields export)\n", fields: FieldsAll},
		// snk_fields exists, but snk_init refuses an empty config: unknown, not a problem.
		{file: "fields_needcfg.wasm", line: "fields:      unknown: no instance started with an empty config to call snk_fields in: " +
			"plugin initialisation failed: snk_init returned -4 (config error): the plugin refused its config\n"},
		// snk_init traps: the error's wasm stack trace stays out of the one-line note.
		{file: "fields_inittrap.wasm", line: "fields:      unknown: no instance started with an empty config to call snk_fields in: " +
			"plugin initialisation failed: snk_init: wasm error: unreachable\nmemory:"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			info, err := Inspect(context.Background(), td(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := info.Write(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.line) {
				t.Errorf("output lacks %q:\n%s", tc.line, b.String())
			}
			if known := !strings.HasPrefix(tc.line, "fields:      unknown"); known && (info.Fields == nil || *info.Fields != tc.fields) || !known && info.Fields != nil {
				t.Errorf("Fields %v, want %d (known %v)", info.Fields, tc.fields, known)
			}
			if strings.Contains(info.FieldsNote, "\n") {
				t.Errorf("FieldsNote has more than one line: %q", info.FieldsNote)
			}
			if got := strings.Join(info.Problems, "\n"); got != tc.problem {
				t.Errorf("problems %q, want %q", got, tc.problem)
			}
		})
	}
}

// TestEnrichResultLimitPerEvent: the enrich result limit has a per-event
// part, so an enricher sent small records (here: no field group at all)
// may still return a patch of up to 256 bytes per event; a result over the
// limit is still a bad_output failure. fields.wasm appends config `pad`
// bytes to each event's patch.
func TestEnrichResultLimitPerEvent(t *testing.T) {
	h := newTestHost(t)
	const n = 1024
	for _, tc := range []struct {
		name   string
		pad    int
		events int
		failed float64
	}{
		// ~19-byte records, ~226-byte patches: over 2×input + 64 KiB
		// (~104 KiB for 231 KiB of patches), within the per-event part.
		{"small_records_large_patches", 200, n, 0},
		// one event, a patch of 70,000 bytes: over 2×19 + 256 + 64 KiB.
		{"over_the_limit", 70000, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfgFor(td("fields.wasm"))
			cfg.Config = map[string]string{"fields": "0", "pad": strconv.Itoa(tc.pad)}
			m := pipeline.NewMetrics()
			s := mustStage(t, h, cfg, stageOpts{metrics: m})
			in := &pipeline.Batch{Events: make([]pipeline.Event, tc.events)}
			for i := range in.Events {
				in.Events[i] = ev("e", mi("duration", int64(i)))
			}
			out, err := s.Process(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if got := metric(t, m, "snakepipe_plugin_failures_total", "kind", "bad_output"); got != tc.failed {
				t.Fatalf("bad_output failures %v, want %v", got, tc.failed)
			}
			if tc.failed != 0 {
				return
			}
			want := "n=0 kinds=" + strings.Repeat("x", tc.pad)
			for i, e := range out.Events {
				if got, _ := e.Meta("seen"); got != want {
					t.Fatalf("event %d: seen %q, want %q", i, got, want)
				}
			}
		})
	}
}
