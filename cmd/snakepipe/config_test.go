package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Fake components, so the loader is tested on its own rules. The real
// factories are covered by TestLoadRealComponents.

type fakeStageConfig struct {
	Rate     float64       `koanf:"rate"`
	Timeout  time.Duration `koanf:"timeout"`
	Patterns []string      `koanf:"patterns"`
}

func (c *fakeStageConfig) Validate() error {
	if c.Rate < 0 || c.Rate > 1 {
		return fmt.Errorf("rate: %v is not in [0, 1]", c.Rate)
	}
	return nil
}

type storeSinkConfig struct {
	Path     string `koanf:"path"`
	MaxBytes int    `koanf:"max_bytes"`
}

func (c *storeSinkConfig) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: must be set"))
	}
	if c.MaxBytes <= 0 {
		errs = append(errs, errors.New("max_bytes: must be > 0"))
	}
	return errors.Join(errs...)
}

func fakeFactories(t testing.TB) pipeline.Factories {
	t.Helper()
	f, err := pipeline.MakeFactories(
		[]pipeline.StageFactory{pipeline.NewStageFactory("fake",
			func() pipeline.Config { return &fakeStageConfig{Rate: 1, Timeout: time.Second} },
			func(context.Context, pipeline.Settings, pipeline.Config) (pipeline.Stage, error) {
				return pipeline.StageFunc(func(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) { return b, nil }), nil
			})},
		[]pipeline.SinkFactory{pipeline.NewSinkFactory("store",
			func() pipeline.Config { return &storeSinkConfig{MaxBytes: 100 << 20} },
			func(context.Context, pipeline.Settings, pipeline.Config) (pipeline.Sink, error) {
				return pipeline.SinkFunc(func(context.Context, *pipeline.Batch) error { return nil }), nil
			})},
	)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func loadTestdata(t *testing.T, name string, env []string, flags map[string]any) (*Config, error) {
	t.Helper()
	return LoadConfig(LoadOptions{
		File:      filepath.Join("testdata", "config", name),
		Env:       env,
		Flags:     flags,
		Factories: fakeFactories(t),
	})
}

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestLoadGoodYAML(t *testing.T) {
	cfg, err := loadTestdata(t, "good.yaml", nil, nil)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if cfg.Log != (LogConfig{Level: "debug", Format: "json"}) {
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.Policy.DefaultSampleRate != 0.5 || len(cfg.Policy.SamplingRules) != 1 || cfg.Policy.SamplingRules[0].Rate != 0.1 ||
		!slices.Equal(cfg.Policy.Deny, []string{"python.gc.*"}) || !cfg.Policy.Enabled {
		t.Errorf("policy = %+v", cfg.Policy)
	}
	if cfg.Admin.Listen != "127.0.0.1:0" || cfg.Admin.TapMaxEventsPerSecond != 1000 {
		t.Errorf("admin = %+v (tap default must survive)", cfg.Admin)
	}

	slow := cfg.Stages[pipeline.MustComponentID("fake/slow")].(*fakeStageConfig)
	if slow.Rate != 0.25 || slow.Timeout != 1500*time.Millisecond || !slices.Equal(slow.Patterns, []string{"python.call.*"}) {
		t.Errorf("stages.fake/slow = %+v", slow)
	}
	unused := cfg.Stages[pipeline.MustComponentID("fake/unused")].(*fakeStageConfig)
	if unused.Rate != 1 || unused.Timeout != time.Second {
		t.Errorf("stages.fake/unused lost its defaults: %+v", unused)
	}

	main := cfg.Sinks[pipeline.MustComponentID("store/main")]
	if sc := main.Sink.(*storeSinkConfig); sc.Path != "/tmp/events.jsonl" || sc.MaxBytes != 1<<20 {
		t.Errorf("sinks.store/main = %+v", sc)
	}
	wantExp := pipeline.DefaultExporterConfig()
	wantExp.Queue.MaxEvents = 1000
	wantExp.Queue.FullPolicy = "block"
	wantExp.Retry.InitialInterval = 50 * time.Millisecond
	wantExp.Workers = 2
	if main.Exporter != wantExp {
		t.Errorf("sinks.store/main exporter = %+v, want %+v", main.Exporter, wantExp)
	}
	if errs := cfg.Sinks[pipeline.MustComponentID("store/errors")]; errs.Exporter != pipeline.DefaultExporterConfig() || errs.Sink.(*storeSinkConfig).MaxBytes != 100<<20 {
		t.Errorf("sinks.store/errors = %+v %+v", errs.Sink, errs.Exporter)
	}

	def := cfg.Pipelines["default"]
	if !slices.Equal(def.Stages, []string{"fake/slow"}) || !slices.Equal(def.Sinks, []string{"store/main"}) ||
		def.Workers != 1 || def.Queue != pipeline.DefaultQueueConfig() {
		t.Errorf("pipelines.default = %+v", def)
	}
	e := cfg.Pipelines["errors"]
	wantQ := pipeline.DefaultQueueConfig()
	wantQ.MaxEvents, wantQ.FullPolicy = 10, "drop_oldest"
	if e.Queue != wantQ || e.Workers != pipeline.DefaultPipelineConfig().Workers {
		t.Errorf("pipelines.errors = %+v", e)
	}
	if want := []string{"stages.fake/unused: no pipeline uses this stage"}; !slices.Equal(cfg.Warnings, want) {
		t.Errorf("warnings = %q, want %q", cfg.Warnings, want)
	}
}

func TestLoadFormats(t *testing.T) {
	for _, name := range []string{"good.toml", "good.json"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadTestdata(t, name, nil, nil)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if cfg.Log.Level != "warn" || cfg.Log.Format != "text" {
				t.Errorf("log = %+v", cfg.Log)
			}
			if p := cfg.Sinks[pipeline.MustComponentID("store/main")].Sink.(*storeSinkConfig).Path; p != "/tmp/events.jsonl" {
				t.Errorf("path = %q", p)
			}
			if got := cfg.Pipelines["default"].Sinks; !slices.Equal(got, []string{"store/main"}) {
				t.Errorf("pipelines.default.sinks = %v", got)
			}
			if name == "good.json" { // JSON numbers are floats until decoded
				if p := cfg.Pipelines["default"]; p.Workers != 3 || p.Queue.MaxEvents != 100 {
					t.Errorf("pipelines.default = %+v", p)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // every line of the error, in order
	}{
		{"unknown_keys.yaml", []string{
			"admin.lisen: unknown key (did you mean listen?)",
			"log.levl: unknown key (did you mean level?)",
			"pipeline: unknown key (did you mean pipelines?)",
			"pipelines.default.qeue: unknown key (did you mean queue?)",
			"sinks.store/main.max_byte: unknown key (did you mean max_bytes?)",
			"sinks.store/main.queue.max_evnts: unknown key (did you mean max_events?)",
			"stages.fake/a.rat: unknown key (did you mean rate?)",
			"stages.fake/a.zzzzzz: unknown key\x00",
		}},
		{"bad_values.yaml", []string{
			`log.format: "xml" is not one of text, json`,
			`log.level: "loud" is not one of trace, debug, info, warn, error, off`,
			`pipelines.default.sinks[0]: unknown sink "fille" (no sinks.fille section)`,
			`pipelines.default.stages[1]: unknown stage "filter/x" (no stages.filter/x section)`,
			"pipelines.default.workers: 0 is not in [1, 256]",
			"pipelines.second.sinks: a pipeline needs at least one sink",
			`pipelines.second.stages[1]: "fake/a" is already listed at stages[0]`,
			"policy.allow[0]: bad glob",
			"policy.default_sample_rate: 2 is not in [0, 1]",
			"sinks.store/main.max_bytes: must be > 0",
			"sinks.store/main.path: must be set",
			"sinks.store/main.queue.max_events: 0 must be in [1, 16777216]",
			"stages.fake/a.rate: 1.5 is not in [0, 1]",
		}},
		{"bad_types.yaml", []string{
			"log.level: expected string, got a list ([info])",
			"pipelines.default.queue.max_events: 2.5 is not a whole number",
			"pipelines.default.sinks: expected a list, got a string",
			"pipelines.default.workers: expected int, got a string (two)",
			"stages.fake/a.patterns: expected a list, got a string",
			"stages.fake/a.rate: expected float64, got a string (fast)",
			`stages.fake/a.timeout: 5 has no unit: write a duration like "5s" or "5ms"`,
		}},
		{"bad_components.yaml", []string{
			`sinks: must be a map of id to settings, not a list`,
			`stages.Fake/Upper: bad component id "Fake/Upper": type "Fake" must be lower-case letters, digits and '_'`,
			"stages.fake/list: must be a map of settings, not a list",
			`stages.nope/a: unknown stage type "nope" (known: fake)`,
		}},
		{"no_pipelines.yaml", []string{"pipelines: at least one pipeline is needed"}},
		// Decode and validation problems together; a key that failed to
		// decode is not reported again by validation (workers: 0).
		{"mixed.yaml", []string{
			"admin.lisen: unknown key",
			`pipelines.default.sinks[0]: unknown sink "fille" (no sinks.fille section)`,
			"pipelines.default.workers: expected int, got a string (many)",
			"sinks.store/main.max_bytes: must be > 0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadTestdata(t, tt.file, nil, nil)
			got := errLines(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if w, exact := strings.CutSuffix(tt.want[i], "\x00"); exact && got[i] != w {
					t.Errorf("error %d:\n got  %s\n want %s", i, got[i], w)
				} else if !strings.HasPrefix(got[i], tt.want[i]) && !exact {
					t.Errorf("error %d:\n got  %s\n want %s...", i, got[i], tt.want[i])
				}
			}
			for _, e := range flattenConfigErrors(err) {
				if e.Key == "" {
					t.Errorf("error without a key: %v", e)
				}
			}
		})
	}
}

func flattenConfigErrors(err error) []*ConfigError {
	var out []*ConfigError
	for _, e := range pipeline.FlattenErrors(err) {
		var ce *ConfigError
		if errors.As(e, &ce) {
			out = append(out, ce)
		}
	}
	return out
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"syntax.yaml", "config file testdata/config/syntax.yaml: yaml: line 3"},
		{"missing.yaml", "config file testdata/config/missing.yaml: "},
		{"config.ini", `config file testdata/config/config.ini: unknown extension ".ini"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadTestdata(t, tt.file, nil, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestLoadEnvAndFlags(t *testing.T) {
	env := []string{
		"SNAKEPIPE_LOG__LEVEL=trace",
		"SNAKEPIPE_LOG__FORMAT=json",
		"SNAKEPIPE_PIPELINES__DEFAULT__WORKERS=4",
		"SNAKEPIPE_PIPELINES__DEFAULT__QUEUE__FULL_POLICY=drop_newest",
		"SNAKEPIPE_POLICY__ALLOW=[python.*, tool.*]",
		"SNAKEPIPE_POLICY__DEFAULT_SAMPLE_RATE=0.25",
		"SNAKEPIPE_STAGES__FAKE__TIMEOUT=3s", // not an id: becomes stages.fake (default config)
		"SNAKEPIPE_ENDPOINT=127.0.0.1:7417",  // the worker library's, not config
		"SNAKEPIPE_WORKER_ID=w1",
		"OTHER__THING=1",
	}
	cfg, err := loadTestdata(t, "good.yaml", env, map[string]any{"log.level": "error"})
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if cfg.Log.Level != "error" {
		t.Errorf("log.level = %q: flags must win over the environment", cfg.Log.Level)
	}
	if cfg.Log.Format != "json" {
		t.Errorf("log.format = %q", cfg.Log.Format)
	}
	def := cfg.Pipelines["default"]
	if def.Workers != 4 || def.Queue.FullPolicy != "drop_newest" || !slices.Equal(def.Stages, []string{"fake/slow"}) {
		t.Errorf("pipelines.default = %+v", def)
	}
	if !slices.Equal(cfg.Policy.Allow, []string{"python.*", "tool.*"}) || cfg.Policy.DefaultSampleRate != 0.25 {
		t.Errorf("policy = %+v", cfg.Policy)
	}
	if got := cfg.Stages[pipeline.MustComponentID("fake")].(*fakeStageConfig).Timeout; got != 3*time.Second {
		t.Errorf("stages.fake.timeout = %v", got)
	}

	_, err = loadTestdata(t, "good.yaml", []string{"SNAKEPIPE_LOG__LEVL=debug", "SNAKEPIPE_PIPELINES__DEFAULT__WORKERS=many"}, nil)
	want := []string{"log.levl: unknown key (did you mean level?)", "pipelines.default.workers: expected int, got a string (many)"}
	if got := errLines(err); !slices.Equal(got, want) {
		t.Errorf("env typo errors = %q, want %q", got, want)
	}
}

func TestParseEnvValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"5", 5},
		{"0.5", 0.5},
		{"true", true},
		{"2s", "2s"},
		{"127.0.0.1:7417", "127.0.0.1:7417"},
		{"", ""},
		{"[a, b]", []any{"a", "b"}},
		{"~", "~"},
		{"{unclosed", "{unclosed"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := parseEnvValue(tt.in)
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
				t.Errorf("parseEnvValue(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeKey(t *testing.T) {
	for in, want := range map[string]string{
		"pipelines[default].queue": "pipelines.default.queue",
		"policy.allow[2]":          "policy.allow[2]",
		"sinks[file/main].x[0].y":  "sinks.file/main.x[0].y",
		"broken[":                  "broken[",
	} {
		if got := normalizeKey(in); got != want {
			t.Errorf("normalizeKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzLoadConfig: no input makes the loader panic; whatever it accepts
// passes the graph check, and every error it reports names a key.
func FuzzLoadConfig(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "config"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			data, err := os.ReadFile(filepath.Join("testdata", "config", e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add(defaultConfigYAML)
	f.Add([]byte("sinks: {a: {queue: 5}}\npipelines: {p: {sinks: [a]}}"))
	fac := fakeFactories(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := LoadConfig(LoadOptions{File: "fuzz.yaml", Data: data, Factories: fac})
		if err != nil {
			return
		}
		if err := cfg.Graph().Validate(fac); err != nil {
			t.Fatalf("loader accepted a config the graph rejects: %v", err)
		}
	})
}

func TestLoadRealComponents(t *testing.T) {
	fac := builtinFactories(io.Discard, nil)
	cfg, err := LoadConfig(LoadOptions{File: "testdata/config/components.yaml", Factories: fac})
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if len(cfg.Stages) != 5 || len(cfg.Sinks) != 3 || len(cfg.Warnings) != 0 {
		t.Errorf("stages %d, sinks %d, warnings %q", len(cfg.Stages), len(cfg.Sinks), cfg.Warnings)
	}
	if got := cfg.Sinks[pipeline.MustComponentID("file/main")].Exporter.Queue.MaxEvents; got != 1000 {
		t.Errorf("sinks.file/main.queue.max_events = %d", got)
	}
	if got := cfg.Sinks[pipeline.MustComponentID("statsd")].Exporter.Retry.MaxInterval; got != 5*time.Second {
		t.Errorf("sinks.statsd.retry.max_interval = %v", got)
	}
	// The graph builds from it with the real factories (the file sink opens
	// its file on Start, not here).
	g, err := pipeline.NewGraph(context.Background(), pipeline.GraphSettings{}, fac, cfg.Graph())
	if err != nil {
		t.Fatalf("NewGraph: %v", err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of a graph never started: %v", err)
	}
	if got := g.Pipelines(); !slices.Equal(got, []string{"default", "slow"}) {
		t.Errorf("pipelines = %v", got)
	}
}

func TestSuggestKey(t *testing.T) {
	tests := []struct {
		path, unknown, want string
	}{
		{"", "polcy", "policy"},
		{"", "sink", "sinks"},
		{"log", "formt", "format"},
		{"policy.sampling_rules[0]", "pattren", "pattern"},
		{"admin", "completely_different", ""},
		{"nope", "x", ""},
	}
	for _, tt := range tests {
		if got := suggestKey(reflect.TypeFor[Config](), tt.path, tt.unknown); got != tt.want {
			t.Errorf("suggestKey(%q, %q) = %q, want %q", tt.path, tt.unknown, got, tt.want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance = %d, want 3", d)
	}
}
