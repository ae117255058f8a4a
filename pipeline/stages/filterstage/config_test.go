package filterstage

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
		{id: "filter", want: DefaultConfig()},
		{id: "filter/python_only", want: &Config{Allow: []string{"python.*"}, Deny: []string{"python.memory.*"}, Mode: ModeKeep}},
		{id: "filter/prod_pool", want: &Config{Mode: ModeDrop, Match: []Condition{
			{Key: "pool", Op: OpEq, Value: "prod"}, {Key: "tool", Op: OpGlob, Value: "search_*"},
		}}},
		{id: "filter/bad", wantErr: []string{
			"allow[0]: bad glob", "match[0].key: must not be empty", `match[0].op: "like"`,
			"match[1].value: must be empty with op exists", "match[2].value: bad glob", `mode: "maybe"`,
		}},
		{id: "filter/typo", wantErr: []string{"alow"}},
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
