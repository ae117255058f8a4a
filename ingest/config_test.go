package ingest

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/snakepipe/snakepipe/internal/componenttest"
)

func loadIngestYAML(t *testing.T, text string) (Config, error) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	err := componenttest.DecodeMap(doc["ingest"], &cfg)
	return cfg, err
}

func TestConfigFromYAML(t *testing.T) {
	text, err := os.ReadFile("testdata/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadIngestYAML(t, string(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen: "0.0.0.0:9417", Reflection: false, MaxMessageBytes: 1 << 20, MaxBatchEvents: 500,
		HelloTimeout: 3 * time.Second, StatsInterval: 2 * time.Second, RejectNoticeInterval: 250 * time.Millisecond,
		MaxStreams: 64, StreamWindowBytes: 128 << 10, DrainTimeout: time.Second, ReconnectAfter: 750 * time.Millisecond,
		Keepalive: KeepaliveConfig{Time: 20 * time.Second, Timeout: 5 * time.Second, MinClientInterval: 5 * time.Second},
		Dial: []DialTarget{
			{Address: "127.0.0.1:50052", WorkerID: "snakepit-1", Pool: "gpu"},
			{Address: "127.0.0.1:50053", WorkerID: "snakepit-2"},
		},
		DialBackoff: BackoffConfig{Initial: 100 * time.Millisecond, Max: 10 * time.Second},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestConfigUnknownKey(t *testing.T) {
	_, err := loadIngestYAML(t, "ingest:\n  listen: 127.0.0.1:1\n  max_mesage_bytes: 10\n")
	if err == nil || !strings.Contains(err.Error(), "max_mesage_bytes") {
		t.Errorf("typo in a key: %v, want an error naming it", err)
	}
}
