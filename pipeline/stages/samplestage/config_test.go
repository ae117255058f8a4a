package samplestage

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
		wantErr []string // substrings, one per expected problem
	}{
		{id: "sample", want: DefaultConfig()},
		{id: "sample/custom", want: &Config{
			Rate: 0.25, By: ByCorrelationID, Seed: 42,
			Rules: []Rule{{Pattern: "python.memory.*", Rate: 0.1}, {Pattern: "python.call.*", Rate: 1}},
		}},
		{id: "sample/bad", wantErr: []string{"rate: 1.5 is not in [0, 1]", "rules[0].pattern:", "rules[0].rate: -1", `by: "sometimes"`}},
		{id: "sample/typo", wantErr: []string{"rat"}},
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
