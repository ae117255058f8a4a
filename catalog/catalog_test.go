package catalog

import (
	"errors"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

func TestBuiltinLayers(t *testing.T) {
	c := MustNew(DefaultConfig())
	perLayer := map[string]int{}
	for _, e := range c.Events() {
		perLayer[e.Layer]++
	}
	// seed-notes §3: Snakepit's events/0 has 47 events: 13 legacy, 14
	// infrastructure, 11 Python, 9 gRPC.
	want := map[string]int{"legacy": 13, "infrastructure": 14, "python": 11, "grpc": 9, "snakepipe": 11}
	for layer, n := range want {
		if perLayer[layer] != n {
			t.Errorf("layer %s: %d events, want %d", layer, perLayer[layer], n)
		}
	}
	if len(perLayer) != len(want) {
		t.Errorf("layers %v, want %v", perLayer, want)
	}
	if got := perLayer["legacy"] + perLayer["infrastructure"] + perLayer["python"] + perLayer["grpc"]; got != 47 {
		t.Errorf("Snakepit events: %d, want 47", got)
	}
	var ids []string
	for _, l := range c.Layers() {
		ids = append(ids, l.ID)
	}
	if got := strings.Join(ids, ","); got != "legacy,infrastructure,python,grpc,snakepipe" {
		t.Errorf("layers order %s", got)
	}
}

func TestBuiltinPythonWireNames(t *testing.T) {
	// seed-notes §4.1: Snakepit's exact-match table of worker event names.
	c := MustNew(DefaultConfig())
	for _, parts := range [][]string{
		{"python", "call", "start"}, {"python", "call", "stop"}, {"python", "call", "exception"},
		{"python", "memory", "sampled"}, {"python", "cpu", "sampled"}, {"python", "gc", "completed"},
		{"python", "error", "occurred"},
		{"tool", "execution", "start"}, {"tool", "execution", "stop"}, {"tool", "execution", "exception"},
		{"tool", "result_size"},
	} {
		name, ok := c.LookupParts(parts)
		if !ok || name != strings.Join(parts, ".") {
			t.Errorf("LookupParts(%q) = %q, %v", parts, name, ok)
			continue
		}
		d, _ := c.Lookup(name)
		if d.Layer != "python" {
			t.Errorf("%s: layer %s", name, d.Layer)
		}
	}
}

func TestBuiltinSchemas(t *testing.T) {
	c := MustNew(DefaultConfig())
	tests := []struct {
		event, key string
		typ        Type
		unit       string
	}{
		{"python.call.start", "system_time", TypeInt, "epoch_ns"},
		{"python.call.stop", "duration", TypeInt, "ns"},
		{"python.call.exception", "duration", TypeInt, "ns"},
		{"tool.execution.start", "system_time", TypeInt, "epoch_ns"},
		{"tool.execution.stop", "duration", TypeInt, "ns"},
		{"tool.execution.exception", "duration", TypeInt, "ns"},
		{"tool.result_size", "bytes", TypeInt, "bytes"},
		{"tool.result_size", "message_size", TypeInt, "bytes"},
		{"python.memory.sampled", "rss_bytes", TypeInt, "bytes"},
		{"python.memory.sampled", "vms_bytes", TypeInt, "bytes"},
		{"python.memory.sampled", "system_time", TypeInt, "epoch_ns"},
		{"python.cpu.sampled", "cpu_percent", TypeFloat, "percent"},
		{"python.cpu.sampled", "system_time", TypeInt, "epoch_ns"},
		{"python.gc.completed", "duration", TypeInt, "ns"},
		{"python.gc.completed", "collected", TypeInt, "count"},
		{"python.gc.completed", "generation", TypeInt, ""},
		{"snakepit.pool.worker.spawned", "duration", TypeInt, "ns"},
		{"snakepit.pool.worker.terminated", "lifetime", TypeInt, "ns"},
		{"snakepit.heartbeat.pong_received", "latency_ms", TypeNumber, "ms"},
		{"snakepit.grpc.stream.message", "message_size", TypeInt, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.event+"/"+tt.key, func(t *testing.T) {
			d, ok := c.Lookup(tt.event)
			if !ok {
				t.Fatal("event missing")
			}
			m, ok := d.Measurement(tt.key)
			if !ok || m.Type != tt.typ || m.Unit != tt.unit {
				t.Errorf("got %+v, %v; want type %s unit %q", m, ok, tt.typ, tt.unit)
			}
		})
	}
	// span() metadata on exceptions.
	for _, name := range []string{"python.call.exception", "tool.execution.exception"} {
		d, _ := c.Lookup(name)
		md := strings.Join(d.Metadata, ",")
		if !strings.Contains(md, "error_type") || !strings.Contains(md, "error_message") {
			t.Errorf("%s metadata %s lacks error_type/error_message", name, md)
		}
	}
	// snakepipe's own events.
	for _, name := range []string{
		"snakepipe.worker.connected", "snakepipe.worker.disconnected", "snakepipe.events.rejected",
		"snakepipe.batch.dropped", "snakepipe.plugin.loaded", "snakepipe.plugin.swapped",
		"snakepipe.plugin.failed", "snakepipe.plugin.quarantined", "snakepipe.sink.error",
		"snakepipe.config.reloaded", "snakepipe.policy.changed",
	} {
		if d, ok := c.Lookup(name); !ok || d.Layer != "snakepipe" {
			t.Errorf("%s missing or in the wrong layer", name)
		}
	}
}

func TestParseBuiltinErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "layers:\n  - id: a\n    events:\n      - name: a.b\n        colour: red\n", "field colour not found"},
		{"duplicate", "layers:\n  - id: a\n    events:\n      - name: a.b\n      - name: a.b\n", `layers[0].events[1].name: "a.b" is defined twice`},
		{"bad type", "layers:\n  - id: a\n    events:\n      - name: a.b\n        measurements:\n          x: {type: huge}\n", `layers[0].events[0].measurements.x.type: "huge" is not one of`},
		{"bad layer", "layers:\n  - id: user\n", `layers[0].id: "user" must be a new`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBuiltin([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEventsSortedAndCopied(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Events = []EventConfig{{Name: "aaa.first", Measurements: map[string]MeasurementConfig{"z": {Type: "int"}, "a": {Type: "float"}}}}
	c := MustNew(cfg)
	evs := c.Events()
	if !sort.SliceIsSorted(evs, func(i, j int) bool { return evs[i].Name < evs[j].Name }) {
		t.Fatal("Events not sorted by name")
	}
	if evs[0].Name != "aaa.first" || evs[0].Layer != LayerUser {
		t.Fatalf("first event %+v", evs[0])
	}
	if got := []string{evs[0].Measurements[0].Key, evs[0].Measurements[1].Key}; got[0] != "a" || got[1] != "z" {
		t.Fatalf("measurements not sorted: %v", got)
	}
	evs[0].Measurements[0].Key = "mutated"
	if d, _ := c.Lookup("aaa.first"); d.Measurements[0].Key != "a" {
		t.Fatal("Events returned the catalog's own slices")
	}
	if l := c.Layers(); l[len(l)-1].ID != LayerUser {
		t.Fatalf("user layer missing: %+v", l)
	}
}

func TestLookupParts(t *testing.T) {
	c := MustNew(DefaultConfig())
	long := strings.Repeat("a", 300)
	tests := []struct {
		parts []string
		want  string
		ok    bool
	}{
		{[]string{"python", "call", "stop"}, "python.call.stop", true},
		{[]string{"snakepit", "pool", "worker", "spawned"}, "snakepit.pool.worker.spawned", true},
		{[]string{"tool", "result_size"}, "tool.result_size", true},
		{[]string{"python.call", "stop"}, "python.call.stop", true}, // = Lookup(join)
		{[]string{"python", "call"}, "", false},
		{[]string{"python", "", "call", "stop"}, "", false},
		{[]string{"Python", "call", "stop"}, "", false},
		{[]string{"snakepit", "python", "call", "stop"}, "", false},
		{nil, "", false},
		{[]string{""}, "", false},
		{[]string{long}, "", false},
		{[]string{"python", long}, "", false},
		{strings.Split(strings.Repeat("a.", 200)+"a", "."), "", false},
	}
	for _, tt := range tests {
		name, ok := c.LookupParts(tt.parts)
		if name != tt.want || ok != tt.ok {
			t.Errorf("LookupParts(%q) = %q, %v; want %q, %v", tt.parts, name, ok, tt.want, tt.ok)
		}
		// Must agree with Lookup of the joined name.
		if _, lok := c.Lookup(strings.Join(tt.parts, ".")); lok != ok {
			t.Errorf("LookupParts(%q) ok=%v but Lookup(join) ok=%v", tt.parts, ok, lok)
		}
	}
	// The result is the interned string.
	name, _ := c.LookupParts([]string{"python", "call", "stop"})
	d, _ := c.Lookup("python.call.stop")
	if strings.Clone(name) != d.Name || !sameString(name, d.Name) {
		t.Error("LookupParts did not return the interned name")
	}
	parts := []string{"python", "call", "stop"}
	if n := testing.AllocsPerRun(100, func() { c.LookupParts(parts) }); n != 0 {
		t.Errorf("LookupParts allocates %v times", n)
	}
}

func TestCheckInternsName(t *testing.T) {
	c := MustNew(DefaultConfig())
	ev := pipeline.Event{Name: string([]byte("python.call.stop"))}
	if _, err := c.Check(&ev); err != nil {
		t.Fatal(err)
	}
	d, _ := c.Lookup("python.call.stop")
	if !sameString(ev.Name, d.Name) {
		t.Error("Check did not intern the name")
	}
}

func TestReasons(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if !snake.MatchString(s) || seen[s] {
			t.Errorf("reason %d label %q not unique snake_case", r, s)
		}
		seen[s] = true
		err := &RejectError{Reason: r, Event: "e.v", Key: "k"}
		if err.Unwrap() == nil {
			t.Errorf("reason %s unwraps to nil", s)
		}
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks reason", err.Error())
		}
	}
	for _, want := range []string{"unknown_event", "bad_name", "unknown_measurement", "bad_value_type", "non_finite", "unset_value", "too_many_measurements"} {
		if !seen[want] {
			t.Errorf("reason %s missing", want)
		}
	}
	if got := Reason(200).String(); got != "reason_200" {
		t.Errorf("unknown reason label %q", got)
	}
	var err error = reject(ReasonUnsetValue, "a.b", "k")
	if !errors.Is(err, ErrBadValue) {
		t.Error("unset_value does not unwrap to ErrBadValue")
	}
	long := strings.Repeat("x", 500)
	if e := reject(ReasonUnknownEvent, long, ""); len(e.Error()) > 200 {
		t.Errorf("error message not shortened: %d bytes", len(e.Error()))
	}
}

func TestFixes(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	seen := map[string]bool{}
	for _, f := range AllFixes() {
		if s := f.String(); !snake.MatchString(s) || seen[s] {
			t.Errorf("fix label %q", s)
		} else {
			seen[s] = true
		}
	}
	var fx Fixes
	if fx.Any() || fx.String() != "none" {
		t.Fatal("zero Fixes not empty")
	}
	fx.add(FixControlChars, 2)
	fx.add(FixValueTruncated, 1)
	var o Fixes
	o.add(FixControlChars, 1)
	fx.Merge(o)
	var got []string
	fx.Each(func(kind string, n int) { got = append(got, kind+"="+string(rune('0'+n))) })
	if strings.Join(got, " ") != "value_truncated=1 control_chars=3" {
		t.Errorf("Each: %v", got)
	}
	if fx.Count(FixControlChars) != 3 || fx.Count(Fix(250)) != 0 {
		t.Error("Count")
	}
	fx.add(FixKeyLimit, 1<<40)
	if fx.Count(FixKeyLimit) != 1<<32-1 {
		t.Errorf("Fixes do not saturate: %d", fx.Count(FixKeyLimit))
	}
}

func TestTypes(t *testing.T) {
	for _, typ := range []Type{TypeInt, TypeFloat, TypeNumber, TypeString} {
		got, err := ParseType(typ.String())
		if err != nil || got != typ {
			t.Errorf("ParseType(%s) = %v, %v", typ, got, err)
		}
	}
	if _, err := ParseType("integer"); err == nil {
		t.Error("ParseType(integer) succeeded")
	}
	accept := map[Type][]pipeline.ValueKind{
		TypeInt:    {pipeline.KindInt},
		TypeFloat:  {pipeline.KindFloat},
		TypeNumber: {pipeline.KindInt, pipeline.KindFloat},
		TypeString: {pipeline.KindString},
		Type(0):    nil,
	}
	for typ, kinds := range accept {
		for _, k := range []pipeline.ValueKind{pipeline.KindInvalid, pipeline.KindInt, pipeline.KindFloat, pipeline.KindString} {
			want := false
			for _, a := range kinds {
				want = want || a == k
			}
			if typ.Accepts(k) != want {
				t.Errorf("%s.Accepts(%s) = %v", typ, k, !want)
			}
		}
	}
}

// TestConcurrentCheck hammers one Catalog from many goroutines released
// together (run with -race).
func TestConcurrentCheck(t *testing.T) {
	c := MustNew(DefaultConfig())
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			<-start
			for i := range 200 {
				ev := pipeline.Event{
					Name:         "tool.execution.stop",
					Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(int64(i))}},
					Metadata:     []pipeline.Label{{Key: "tool", Value: "t\x00"}, {Key: "pid", Value: "1"}},
				}
				fx, err := c.Check(&ev)
				if err != nil || fx.Count(FixControlChars) != 1 || len(ev.Metadata) != 1 || ev.Metadata[0].Value != "t" {
					errs <- errors.New("unexpected result in goroutine " + string(rune('0'+g)))
					return
				}
				c.LookupParts([]string{"python", "call", "stop"})
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
