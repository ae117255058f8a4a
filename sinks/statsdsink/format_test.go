package statsdsink

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// render formats a batch the way Write does and returns the lines (in
// packet order) without sending anything.
func render(t testing.TB, cfg *Config, events ...pipeline.Event) []string {
	t.Helper()
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/test")}, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.buf, s.pkts = s.buf[:0], s.pkts[:0]
	for i := range events {
		s.appendEvent(&events[i])
	}
	var out []string
	for _, p := range s.pkts {
		out = append(out, strings.Split(strings.TrimSuffix(string(s.buf[p.start:p.end]), "\n"), "\n")...)
	}
	return out
}

func callStop(durNs int64, rate float64, md ...pipeline.Label) pipeline.Event {
	return pipeline.Event{
		Name:         "python.call.stop",
		SampleRate:   rate,
		Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(durNs)}},
		Metadata:     md,
		Origin:       &pipeline.Origin{WorkerID: "w-1", Pool: "gpu", Hostname: "h1", PID: 4242},
	}
}

func issueConfig(style string) *Config {
	c := DefaultConfig()
	c.DefaultMappings = false
	c.TagStyle = style
	c.TagKeys = []string{"pool", "tool", "pid"}
	c.Mappings = []Mapping{
		{Events: "python.call.stop", Type: "timer", Name: "python.call.duration", Measurement: "duration", FromUnit: "ns", ToUnit: "ms"},
		{Events: "python.call.stop", Type: "counter", Name: "python.call.count"},
	}
	return c
}

func TestFormatTagStyles(t *testing.T) {
	ev := callStop(1_500_000, 1, pipeline.Label{Key: "tool", Value: "resize"}, pipeline.Label{Key: "secret", Value: "nope"})
	tests := []struct {
		style string
		tags  map[string]string
		want  []string
	}{
		{"dogstatsd", nil, []string{
			"python.call.duration:1.5|ms|#pool:gpu,tool:resize,pid:4242",
			"python.call.count:1|c|#pool:gpu,tool:resize,pid:4242",
		}},
		{"dogstatsd", map[string]string{"env": "prod", "dc": "eu.1"}, []string{
			"python.call.duration:1.5|ms|#dc:eu.1,env:prod,pool:gpu,tool:resize,pid:4242",
			"python.call.count:1|c|#dc:eu.1,env:prod,pool:gpu,tool:resize,pid:4242",
		}},
		{"influxdb", map[string]string{"env": "prod"}, []string{
			"python.call.duration,env=prod,pool=gpu,tool=resize,pid=4242:1.5|ms",
			"python.call.count,env=prod,pool=gpu,tool=resize,pid=4242:1|c",
		}},
		{"graphite", map[string]string{"dc": "eu.1"}, []string{
			"python.call.duration.dc.eu_1.pool.gpu.tool.resize.pid.4242:1.5|ms",
			"python.call.count.dc.eu_1.pool.gpu.tool.resize.pid.4242:1|c",
		}},
		{"none", map[string]string{"env": "prod"}, []string{
			"python.call.duration:1.5|ms",
			"python.call.count:1|c",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.style, func(t *testing.T) {
			cfg := issueConfig(tt.style)
			cfg.Tags = tt.tags
			got := render(t, cfg, ev)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestFormatValuesAndRates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DefaultMappings = false
	cfg.Prefix = "app"
	cfg.Mappings = []Mapping{
		{Events: "python.call.stop", Type: "timer", Name: "{base}.duration", Measurement: "duration", Scale: 1e-6},
		{Events: "python.call.*", Type: "counter", Name: "{event}"},
		{Events: "python.memory.sampled", Type: "gauge", Name: "mem.delta", Measurement: "delta"},
		{Events: "python.memory.sampled", Type: "set", Name: "workers", Metadata: "worker_id"},
		{Events: "python.memory.sampled", Type: "histogram", Name: "mem.rss", Measurement: "rss_bytes", FromUnit: "b", ToUnit: "mib"},
		{Events: "python.memory.sampled", Type: "distribution", Name: "mem.label", Measurement: "label"},
	}
	mem := pipeline.Event{
		Name:       "python.memory.sampled",
		SampleRate: 0.25,
		Measurements: []pipeline.Measurement{
			{Key: "delta", Value: pipeline.IntValue(-7)},
			{Key: "rss_bytes", Value: pipeline.IntValue(3 << 20)},
			{Key: "label", Value: pipeline.StringValue("x")},
		},
		Origin: &pipeline.Origin{WorkerID: "w|1:#x"},
	}
	got := render(t, cfg,
		callStop(2_000_000, 0.1),
		callStop(-5, 1),
		pipeline.Event{Name: "python.call.start", SampleRate: 0.5},
		mem,
	)
	want := []string{
		"app.python.call.duration:2|ms|@0.1",
		"app.python.call.stop:1|c|@0.1",
		// negative timer dropped (invalid_value), counter still sent
		"app.python.call.stop:1|c",
		"app.python.call.start:1|c|@0.5",
		// gauges and sets carry no rate; a negative gauge is set via 0 first
		"app.mem.delta:0|g",
		"app.mem.delta:-7|g",
		"app.workers:w_1__x|s",
		"app.mem.rss:3|h|@0.25",
		// the string measurement is skipped (not_numeric)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAppendNumber(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 1: "1", -3: "-3", 1.5: "1.5", 0.0012: "0.0012", 1e-7: "1e-07",
		123456789012345: "123456789012345", 1e20: "1e+20", math.Copysign(0, -1): "0",
	} {
		if got := string(appendNumber(nil, v)); got != want {
			t.Errorf("appendNumber(%v) = %q, want %q", v, got, want)
		}
	}
	if got := string(appendRate(nil, 1e-7)); got != "0.0000001" {
		t.Errorf("appendRate(1e-7) = %q: etsy statsd needs plain decimals", got)
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"a.b-c_D9":       "a.b-c_D9",
		"a:b|c#d,e=f g":  "a_b_c_d_e_f_g",
		"new\nline\r":    "new_line_",
		"héllo":          "h_llo",
		"日本":             "__",
		"\xff\xfe":       "__",
		"":               "",
		"tab\tand/slash": "tab_and_slash",
	} {
		if got := string(appendEscaped(nil, in, true)); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
	if got := string(appendEscaped(nil, "a.b", false)); got != "a_b" {
		t.Errorf("escape without dots = %q", got)
	}
}

func TestDefaultMappings(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TagKeys = []string{"pool"}
	got := render(t, cfg,
		callStop(3_000_000, 1),
		pipeline.Event{Name: "python.memory.sampled", SampleRate: 1,
			Measurements: []pipeline.Measurement{{Key: "rss_bytes", Value: pipeline.IntValue(100)}, {Key: "vms_bytes", Value: pipeline.IntValue(200)}},
			Origin:       &pipeline.Origin{WorkerID: "w1", Pool: "p"}},
		pipeline.Event{Name: "python.gc.completed", SampleRate: 1,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1500)}, {Key: "collected", Value: pipeline.IntValue(42)}}},
		pipeline.Event{Name: "tool.execution.exception", SampleRate: 1,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.FloatValue(2e6)}}},
	)
	want := []string{
		"python.call.stop.count:1|c|#pool:gpu",
		"python.call.duration:3|ms|#pool:gpu",
		"python.memory.sampled.count:1|c|#pool:p",
		"python.memory.rss_bytes:100|g|#pool:p",
		"python.memory.vms_bytes:200|g|#pool:p",
		"python.workers.sampling:w1|s",
		"python.gc.completed.count:1|c",
		"python.gc.duration:1.5|ms",
		"python.gc.collected:42|c",
		"tool.execution.exception.count:1|c",
		"tool.execution.exception.duration:2|ms",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// lineRE is the StatsD line grammar snakepipe promises: escaped name,
// optional influx tags, one value, a type, optional rate, optional
// dogstatsd tags. No stray '|', ':', '#', ',' or newline can appear.
var lineRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_\-]+=[A-Za-z0-9_.\-]+)*` +
	`:(-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?|[A-Za-z0-9_.\-]+)` +
	`\|(c|g|ms|h|d|s)` +
	`(\|@(0\.[0-9]+|1))?` +
	`(\|#[A-Za-z0-9_\-]+:[A-Za-z0-9_.\-]+(,[A-Za-z0-9_\-]+:[A-Za-z0-9_.\-]+)*)?$`)

func FuzzLines(f *testing.F) {
	f.Add("python.call.stop", "resize", "w1", int64(1200), 0.5, 0.1, "x", uint8(0))
	f.Add("a:b|c#d", "v\n|#,=:", "w:1", int64(-3), math.NaN(), 2.0, "s|\n", uint8(1))
	f.Add("日本.stop", "\xff", "", int64(0), math.Inf(1), -1.0, "", uint8(2))
	f.Fuzz(func(t *testing.T, name, tagVal, worker string, iv int64, fv, rate float64, sv string, style uint8) {
		styles := []string{"dogstatsd", "influxdb", "graphite", "none"}
		cfg := DefaultConfig()
		cfg.TagStyle = styles[int(style)%len(styles)]
		cfg.TagKeys = []string{"tool", "worker_id", "pid"}
		cfg.Tags = map[string]string{"env": tagVal + "x"}
		cfg.Mappings = []Mapping{
			{Events: "*", Type: "timer", Name: "{base}.t", Measurement: "i"},
			{Events: "*", Type: "gauge", Name: "{event}.g", Measurement: "f"},
			{Events: "*", Type: "histogram", Name: "h", Measurement: "f"},
			{Events: "*", Type: "set", Name: "{event}.s", Measurement: "s"},
			{Events: "*", Type: "set", Name: "ws", Metadata: "worker_id"},
			{Events: "*", Type: "counter", Name: "c", Measurement: "i"},
		}
		ev := pipeline.Event{
			Name:       name,
			SampleRate: rate,
			Measurements: []pipeline.Measurement{
				{Key: "i", Value: pipeline.IntValue(iv)},
				{Key: "f", Value: pipeline.FloatValue(fv)},
				{Key: "s", Value: pipeline.StringValue(sv)},
			},
			Metadata: []pipeline.Label{{Key: "tool", Value: tagVal}},
			Origin:   &pipeline.Origin{WorkerID: worker, PID: iv},
		}
		for _, line := range render(t, cfg, ev) {
			if !lineRE.MatchString(line) {
				t.Fatalf("style %s: line %q is not a valid StatsD line", cfg.TagStyle, line)
			}
		}
	})
}

func BenchmarkMapAndFormat(b *testing.B) {
	cfg := issueConfig("dogstatsd")
	cfg.DefaultMappings = true
	cfg.Tags = map[string]string{"env": "prod"}
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/bench")}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ev := callStop(1_234_567, 0.5, pipeline.Label{Key: "tool", Value: "resize"})
	s.appendEvent(&ev) // warm the name cache and buffers
	b.ReportAllocs()
	b.ResetTimer()
	lines := 0
	for i := 0; i < b.N; i++ {
		if i%64 == 0 {
			s.buf, s.pkts = s.buf[:0], s.pkts[:0]
		}
		s.appendEvent(&ev)
	}
	for _, p := range s.pkts {
		lines += p.lines
	}
	if lines == 0 {
		b.Fatal("no lines")
	}
}

func TestLineTooLongIsSkipped(t *testing.T) {
	cfg := issueConfig("dogstatsd")
	cfg.TagKeys = []string{"tool"}
	for i := 0; i < 20; i++ {
		cfg.TagKeys = append(cfg.TagKeys, "k"+strings.Repeat("x", i))
	}
	var md []pipeline.Label
	for _, k := range cfg.TagKeys {
		md = append(md, pipeline.Label{Key: k, Value: strings.Repeat("v", 4000)})
	}
	m := pipeline.NewMetrics()
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/test"), Metrics: m}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := callStop(1, 1, md...)
	s.appendEvent(&ev)
	if len(s.pkts) != 0 {
		t.Fatalf("a %d-byte line was packed", len(s.buf))
	}
	if got, _ := m.Value("snakepipe_statsd_mapping_skipped_total", pipeline.L("sink", "statsd/test", "reason", "line_too_long")...); got != 2 {
		t.Errorf("skipped{line_too_long} = %v, want 2", got)
	}
}
