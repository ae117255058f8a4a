package filesink

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/internal/componenttest"
)

func TestConfig(t *testing.T) {
	with := func(f func(c *Config)) *Config {
		c := DefaultConfig()
		f(c)
		return c
	}
	tests := []struct {
		id      string
		want    *Config
		wantErr []string
	}{
		{id: "file/minimal", want: with(func(c *Config) { c.Path = "/var/log/snakepipe/events.jsonl" })},
		{id: "file/full", want: &Config{
			Path: "/tmp/events.jsonl", MaxBytes: 1 << 20, MaxFiles: 3, FlushInterval: 250 * time.Millisecond,
			BufferBytes: 65536, Fsync: FsyncAlways, CreateDirs: false,
		}},
		{id: "file/write_through", want: with(func(c *Config) {
			c.Path, c.FlushInterval, c.Fsync = "/tmp/e.jsonl", 0, FsyncNever
		})},
		{id: "file/bad", wantErr: []string{
			"path: required", "max_bytes: -1", "max_files: 5000", "flush_interval: -1s", "buffer_bytes: 0", `fsync: "sometimes"`,
		}},
		{id: "file/interval_without_timer", wantErr: []string{"fsync: interval needs flush_interval > 0"}},
		{id: "file/typo", wantErr: []string{"max_byte"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			err := componenttest.Decode(filepath.Join("testdata", "config.yaml"), "sinks", tt.id, cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("want errors %q, got none", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tt.want) {
				t.Errorf("got %+v, want %+v", cfg, tt.want)
			}
		})
	}
}
