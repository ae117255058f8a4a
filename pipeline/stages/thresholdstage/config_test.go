package thresholdstage

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/internal/componenttest"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		id      string
		want    *Config
		wantErr []string
	}{
		{id: "threshold/slow_calls", want: &Config{Events: "python.call.stop", Measurement: "duration", Op: OpGt, Value: 1e8, Action: ActionKeep, Missing: ActionKeep}},
		{id: "threshold/drop_small", want: &Config{Events: "*", Measurement: "bytes", Op: OpLt, Value: 1.5, Action: ActionDrop, Missing: ActionDrop}},
		{id: "threshold/bad", wantErr: []string{"events: bad glob", "measurement: required", `op: "between"`, `action: "maybe"`, `missing: "perhaps"`}},
		{id: "threshold/typo", wantErr: []string{"valu"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			err := componenttest.Decode(filepath.Join("testdata", "config.yaml"), "stages", tt.id, cfg)
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

func TestDefaultConfigNeedsMeasurementAndOp(t *testing.T) {
	err := DefaultConfig().Validate()
	if err == nil || !strings.Contains(err.Error(), "measurement: required") || !strings.Contains(err.Error(), "op: required") {
		t.Fatalf("Validate() = %v", err)
	}
}
