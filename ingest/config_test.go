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
		MaxStreams: 64, StreamWindowBytes: 128 << 10, ConnWindowBytes: 512 << 10, DrainTimeout: time.Second, ReconnectAfter: 750 * time.Millisecond,
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

func TestConfigWindows(t *testing.T) {
	tests := []struct {
		name         string
		stream, conn int
		wantKey      string // "" = valid
	}{
		{"defaults", 256 << 10, 1 << 20, ""},
		{"equal", 64 << 10, 64 << 10, ""},
		{"largest", 64 << 20, 64 << 20, ""},
		{"stream under gRPC's minimum", 32 << 10, 1 << 20, "ingest.stream_window_bytes"},
		{"stream too large", 128 << 20, 128 << 20, "ingest.stream_window_bytes"},
		{"conn zero", 256 << 10, 0, "ingest.conn_window_bytes"},
		{"conn smaller than stream", 1 << 20, 256 << 10, "ingest.conn_window_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.StreamWindowBytes, cfg.ConnWindowBytes = tt.stream, tt.conn
			err := cfg.Validate()
			switch {
			case tt.wantKey == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tt.wantKey)):
				t.Errorf("Validate = %v, want an error naming %s", err, tt.wantKey)
			}
		})
	}
	if d := DefaultConfig(); d.StreamWindowBytes != 256<<10 || d.ConnWindowBytes != 1<<20 {
		t.Errorf("defaults %d/%d, docs/config.md says 262144/1048576", d.StreamWindowBytes, d.ConnWindowBytes)
	}
}
