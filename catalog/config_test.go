package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	l := DefaultConfig().Limits
	if l.MaxNameBytes != 128 || l.MaxMetadataKeys != 32 || l.MaxKeyBytes != 64 ||
		l.MaxValueBytes != 1024 || l.MaxMeasurements != 32 || l.MaxCorrelationIDBytes != 128 {
		t.Fatalf("defaults changed: %+v (update docs/config.md and docs/catalog.md too)", l)
	}
}

func TestConfigValidate(t *testing.T) {
	withEvents := func(evs ...EventConfig) Config {
		c := DefaultConfig()
		c.Events = evs
		return c
	}
	withLimits := func(f func(*Limits)) Config {
		c := DefaultConfig()
		f(&c.Limits)
		return c
	}
	m := func(kv ...string) map[string]MeasurementConfig {
		out := map[string]MeasurementConfig{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = MeasurementConfig{Type: kv[i+1]}
		}
		return out
	}
	tests := []struct {
		name string
		cfg  Config
		want []string // every line, in order; nil = valid
	}{
		{"default", DefaultConfig(), nil},
		{"good user events", withEvents(
			EventConfig{Name: "inference.batch.done", Description: "x", Measurements: m("duration", "int", "ratio", "float", "n", "number", "label", "string"), Metadata: []string{"model", "device name"}},
			EventConfig{Name: "a.b_c.d0"},
		), nil},
		{"bad type", withEvents(EventConfig{Name: "a.b"}, EventConfig{Name: "a.c"},
			EventConfig{Name: "a.d", Measurements: m("duration", "integer")}),
			[]string{`catalog.events[2].measurements.duration.type: "integer" is not one of int, float, number, string`}},
		{"missing type", withEvents(EventConfig{Name: "a.b", Measurements: m("x", "")}),
			[]string{`catalog.events[0].measurements.x.type: is required (one of int, float, number, string)`}},
		{"names", withEvents(
			EventConfig{Name: ""}, EventConfig{Name: "A.b"}, EventConfig{Name: "a..b"}, EventConfig{Name: "a.b."},
			EventConfig{Name: "a-b"}, EventConfig{Name: strings.Repeat("a", 129)},
		), []string{
			`catalog.events[0].name: is required`,
			`catalog.events[1].name: "A.b" is not a dotted name (lower-case segments of [a-z0-9_] joined by ".")`,
			`catalog.events[2].name: "a..b" is not a dotted name (lower-case segments of [a-z0-9_] joined by ".")`,
			`catalog.events[3].name: "a.b." is not a dotted name (lower-case segments of [a-z0-9_] joined by ".")`,
			`catalog.events[4].name: "a-b" is not a dotted name (lower-case segments of [a-z0-9_] joined by ".")`,
			`catalog.events[5].name: "` + strings.Repeat("a", 129) + `" is 129 bytes, longer than catalog.limits.max_name_bytes (128)`,
		}},
		{"duplicates and built-ins", withEvents(
			EventConfig{Name: "x.y"}, EventConfig{Name: "python.call.stop"}, EventConfig{Name: "x.y"},
		), []string{
			`catalog.events[1].name: "python.call.stop" is a built-in event and cannot be redefined`,
			`catalog.events[2].name: "x.y" is already defined by catalog.events[0]`,
		}},
		{"measurement keys and units", withEvents(EventConfig{Name: "a.b", Measurements: map[string]MeasurementConfig{
			"Dur":  {Type: "int"},
			"a.b":  {Type: "int"},
			"ok":   {Type: "int", Unit: "n s"},
			"ok2":  {Type: "int", Unit: strings.Repeat("u", 33)},
			"good": {Type: "float", Unit: "km/h"},
		}}), []string{
			`catalog.events[0].measurements["Dur"]: key "Dur" must be [a-z0-9_]+ and at most 64 bytes`,
			`catalog.events[0].measurements["a.b"]: key "a.b" must be [a-z0-9_]+ and at most 64 bytes`,
			`catalog.events[0].measurements.ok.unit: "n s" must be printable ASCII without spaces, at most 32 bytes`,
			`catalog.events[0].measurements.ok2.unit: "` + strings.Repeat("u", 33) + `" must be printable ASCII without spaces, at most 32 bytes`,
		}},
		{"metadata keys", withEvents(EventConfig{Name: "a.b", Metadata: []string{"", "ok", "pid", "ok", "bad\x01", strings.Repeat("k", 65)}}),
			[]string{
				`catalog.events[0].metadata[0]: "" must be non-empty valid UTF-8 without control characters`,
				`catalog.events[0].metadata[2]: "pid" is a reserved host key (the host adds it to every worker event)`,
				`catalog.events[0].metadata[3]: "ok" is listed twice`,
				`catalog.events[0].metadata[4]: "bad\x01" must be non-empty valid UTF-8 without control characters`,
				`catalog.events[0].metadata[5]: "` + strings.Repeat("k", 65) + `" is longer than catalog.limits.max_key_bytes (64)`,
			}},
		{"description", withEvents(EventConfig{Name: "a.b", Description: "bad\x00"}),
			[]string{`catalog.events[0].description: must be valid UTF-8 without control characters, at most 1024 bytes`}},
		{"too many measurements", func() Config {
			c := withEvents(EventConfig{Name: "a.b", Measurements: m("a", "int", "b", "int", "c", "int")})
			c.Limits.MaxMeasurements = 2
			return c
		}(), []string{`catalog.events[0].measurements: declares 3 keys, more than catalog.limits.max_measurements (2)`}},
		{"limits zero", Config{}, []string{
			`catalog.limits.max_name_bytes: 0 is out of range [1, 255]`,
			`catalog.limits.max_metadata_keys: 0 is out of range [1, 1024]`,
			`catalog.limits.max_key_bytes: 0 is out of range [1, 1024]`,
			`catalog.limits.max_value_bytes: 0 is out of range [16, 65536]`,
			`catalog.limits.max_measurements: 0 is out of range [1, 1024]`,
			`catalog.limits.max_correlation_id_bytes: 0 is out of range [16, 1024]`,
		}},
		{"limits too big", withLimits(func(l *Limits) {
			l.MaxNameBytes, l.MaxValueBytes, l.MaxMetadataKeys = 256, 1<<20, -1
		}), []string{
			`catalog.limits.max_name_bytes: 256 is out of range [1, 255]`,
			`catalog.limits.max_metadata_keys: -1 is out of range [1, 1024]`,
			`catalog.limits.max_value_bytes: 1048576 is out of range [16, 65536]`,
		}},
		{"name limit below built-ins", withLimits(func(l *Limits) { l.MaxNameBytes = 20 }), []string{
			`catalog.limits.max_name_bytes: 20 is shorter than built-in event names (the longest has 40 bytes)`,
		}},
		{"events checked with default limits when limits are bad", func() Config {
			c := withEvents(EventConfig{Name: strings.Repeat("a", 129)})
			c.Limits.MaxNameBytes = 0
			return c
		}(), []string{
			`catalog.limits.max_name_bytes: 0 is out of range [1, 255]`,
			`catalog.events[0].name: "` + strings.Repeat("a", 129) + `" is 129 bytes, longer than catalog.limits.max_name_bytes (128)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, err := New(tt.cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors differ\n--- got\n%s\n--- want\n%s", got, want)
			}
			if _, nerr := New(tt.cfg); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New did not return the Validate error: %v", nerr)
			}
		})
	}
}

func TestLoadConfigKoanf(t *testing.T) {
	cfg, err := loadConfig([]byte(`
catalog:
  limits:
    max_value_bytes: 2048
  events:
    - name: model.loaded
      description: A model was loaded.
      measurements:
        duration: {type: int, unit: ns}
        version: {type: string}
      metadata: [model]
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxValueBytes != 2048 || cfg.Limits.MaxNameBytes != DefaultMaxNameBytes {
		t.Errorf("limits %+v", cfg.Limits)
	}
	if len(cfg.Events) != 1 || cfg.Events[0].Measurements["duration"].Unit != "ns" ||
		cfg.Events[0].Measurements["version"].Type != "string" || cfg.Events[0].Metadata[0] != "model" {
		t.Errorf("events %+v", cfg.Events)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err = loadConfig([]byte("catalog:\n  events:\n    - name: a.b\n      measurement: {}\n"))
	if err == nil || !strings.Contains(err.Error(), "measurement") {
		t.Errorf("unknown key accepted: %v", err)
	}
}

// FuzzConfigValidate: Validate never panics and New agrees with it.
func FuzzConfigValidate(f *testing.F) {
	f.Add("a.b", "duration", "int", "ns", "model", 128, 1024)
	f.Add("python.call.stop", "x", "integer", "", "pid", 0, 4)
	f.Fuzz(func(t *testing.T, name, key, typ, unit, meta string, maxName, maxVal int) {
		cfg := DefaultConfig()
		cfg.Limits.MaxNameBytes, cfg.Limits.MaxValueBytes = maxName, maxVal
		cfg.Events = []EventConfig{{Name: name, Measurements: map[string]MeasurementConfig{key: {Type: typ, Unit: unit}}, Metadata: []string{meta}}}
		verr := cfg.Validate()
		c, nerr := New(cfg)
		if (verr == nil) != (nerr == nil) {
			t.Fatalf("Validate %v, New %v", verr, nerr)
		}
		if verr != nil {
			for _, line := range strings.Split(verr.Error(), "\n") {
				if !strings.HasPrefix(line, "catalog.") {
					t.Fatalf("error without key path: %q", line)
				}
			}
			return
		}
		if _, ok := c.Lookup(name); !ok {
			t.Fatalf("valid event %q not in catalog", name)
		}
		if errors.Is(verr, ErrBadName) {
			t.Fatal("config errors are not reject errors")
		}
	})
}
