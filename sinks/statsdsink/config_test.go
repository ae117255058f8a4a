package statsdsink

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/snakepipe/snakepipe/pipeline"
)

// decode loads testdata/config.yaml and decodes sinks.<id> onto the
// factory's defaults with the loader's rules (unknown keys fail).
func decode(t *testing.T, id string) (*Config, error) {
	t.Helper()
	k := koanf.New("::")
	if err := k.Load(file.Provider("testdata/config.yaml"), yaml.Parser()); err != nil {
		t.Fatal(err)
	}
	sinks, _ := k.Raw()["sinks"].(map[string]any)
	body, ok := sinks[id]
	if !ok {
		t.Fatalf("no sinks.%s in testdata/config.yaml", id)
	}
	cfg, ok := NewFactory().CreateDefaultConfig().(*Config)
	if !ok {
		t.Fatal("default config is not *Config")
	}
	if body == nil {
		return cfg, nil
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName: "koanf", ErrorUnused: true, WeaklyTypedInput: true, Result: cfg,
		DecodeHook: mapstructure.StringToTimeDurationHookFunc(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dec.Decode(body)
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := decode(t, "statsd")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if cfg.Network != "udp" || cfg.Address != "127.0.0.1:8125" || cfg.MaxPacketBytes != 1432 ||
		cfg.TagStyle != "dogstatsd" || !cfg.DefaultMappings || cfg.AggregateCounters {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	s, err := NewFactory().CreateSink(context.Background(), pipeline.Settings{ID: pipeline.MustComponentID("statsd")}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*Sink); !ok {
		t.Fatalf("factory made %T", s)
	}
	if NewFactory().Type() != "statsd" {
		t.Errorf("type %q", NewFactory().Type())
	}
}

func TestConfigFull(t *testing.T) {
	cfg, err := decode(t, "statsd/full")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Network != "tcp" || cfg.FlushInterval != 10*time.Second || cfg.WriteTimeout != 2*time.Second ||
		!reflect.DeepEqual(cfg.Tags, map[string]string{"env": "prod", "region": "eu-west-1"}) ||
		len(cfg.Mappings) != 4 || cfg.Mappings[0].FromUnit != "ns" || cfg.MaxAggregateKeys != 500 {
		t.Errorf("decoded %+v", cfg)
	}
	if cfg.Mappings[1].Tags != nil {
		t.Errorf("unset tags decoded as %#v, want nil (all tag_keys)", cfg.Mappings[1].Tags)
	}
	if cfg.Mappings[2].Tags == nil || len(cfg.Mappings[2].Tags) != 0 {
		t.Errorf("tags: [] decoded as %#v, want an empty list (no event tags)", cfg.Mappings[2].Tags)
	}
	// The decoded config renders as documented.
	cfg.Network, cfg.Address = "udp", "127.0.0.1:9"
	got := render(t, cfg, pipeline.Event{
		Name: "python.memory.sampled", SampleRate: 1,
		Measurements: []pipeline.Measurement{{Key: "rss_bytes", Value: pipeline.IntValue(3 << 20)}},
		Origin:       &pipeline.Origin{WorkerID: "w1", Pool: "p"},
	})
	want := []string{
		"myapp.python.memory.rss_mib,env=prod,region=eu-west-1:3|g",
		"myapp.python.workers,env=prod,region=eu-west-1,pool=p,worker_id=w1:w1|s",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rendered %q, want %q", got, want)
	}
}

func TestConfigErrorsNameKeys(t *testing.T) {
	cfg, err := decode(t, "statsd/bad")
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Validate() = %v, want ErrBadConfig", err)
	}
	for _, key := range []string{
		"network:", "prefix:", "tags.bad key:", "tag_style:", "tag_keys[1]:", "max_packet_bytes:", "write_timeout:",
		"mappings[0].events:", "mappings[0].type:", "mappings[0].name:",
		"mappings[1].from_unit:", "mappings[1].tags[0]:", "mappings[2].metadata:",
	} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %q:\n%v", key, err)
		}
	}
	if _, err := New(pipeline.Settings{}, cfg); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func TestConfigUnknownKeyFails(t *testing.T) {
	if _, err := decode(t, "statsd/typo"); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("decoding a typo = %v, want an error naming it", err)
	}
}

func TestConfigValidateTable(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"unixgram needs path", func(c *Config) { c.Network, c.Address = "unixgram", "" }, "address:"},
		{"aggregate needs interval", func(c *Config) { c.AggregateCounters, c.FlushInterval = true, 0 }, "flush_interval:"},
		{"nothing to send", func(c *Config) { c.DefaultMappings = false }, "mappings:"},
		{"gauge needs measurement", func(c *Config) {
			c.Mappings = []Mapping{{Events: "*", Type: "gauge", Name: "g"}}
		}, "mappings[0].measurement:"},
		{"scale and units", func(c *Config) {
			c.Mappings = []Mapping{{Events: "*", Type: "timer", Name: "t", Measurement: "d", Scale: 2, FromUnit: "s", ToUnit: "ms"}}
		}, "mappings[0].scale:"},
		{"too many tag keys", func(c *Config) {
			for i := 0; i <= MaxTagKeys; i++ {
				c.TagKeys = append(c.TagKeys, "k"+strings.Repeat("x", i))
			}
		}, "tag_keys:"},
		{"dotted tag key", func(c *Config) { c.TagKeys = []string{"a.b"} }, "tag_keys[0]:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.key)
			}
		})
	}
	for _, unit := range [][2]string{{"ns", "ms"}, {"us", "ms"}, {"s", "ms"}, {"b", "mib"}, {"h", "min"}} {
		c := DefaultConfig()
		c.Mappings = []Mapping{{Events: "*", Type: "timer", Name: "t", Measurement: "d", FromUnit: unit[0], ToUnit: unit[1]}}
		if err := c.Validate(); err != nil {
			t.Errorf("units %v rejected: %v", unit, err)
		}
	}
}
