package metadatastage

import (
	"errors"
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
		{id: "metadata", want: DefaultConfig()},
		{id: "metadata/enrich", want: &Config{
			Events: "python.*",
			Set:    map[string]string{"env": "prod", "origin": "${pool}/${worker_id}", "price": "$$5"},
			Rename: map[string]string{"tool": "tool_name"},
			Delete: []string{"secret", "token"},
		}},
		{id: "metadata/bad", wantErr: []string{
			"events: bad glob",
			`set.worker_id: reserved host key "worker_id"`,
			"set.label: bad template", "unknown reference ${nope}",
			"set.cost: bad template", "set.: key must not be empty",
			`rename.pool: reserved host key "pool"`,
			`rename.a: target: reserved host key "pid"`,
			`rename.c: "b" and "c" both rename to "same"`,
			`delete[0]: reserved host key "hostname"`,
			"delete[1]: key must not be empty",
		}},
		{id: "metadata/typo", wantErr: []string{"sett"}},
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

func TestReservedKeyIsSentinel(t *testing.T) {
	err := (&Config{Events: "*", Set: map[string]string{"pool": "x"}}).Validate()
	if !errors.Is(err, ErrReservedKey) {
		t.Fatalf("Validate() = %v, want ErrReservedKey", err)
	}
}

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: "plain"}, {in: ""}, {in: "$$"}, {in: "${name}-${meta.a.b}"},
		{in: "${", wantErr: "unterminated"},
		{in: "${meta.}", wantErr: "unknown reference"},
		{in: "a$", wantErr: "must start ${...}"},
		{in: "${Name}", wantErr: "unknown reference"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := parseTemplate(tt.in)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("parseTemplate(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"${name}", "$$x", "${meta.tool}/${pid}", "${", "$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseTemplate(s)
		if err != nil {
			return
		}
		// Literal-only templates expand to the input with $$ unescaped.
		if lit, ok := tm.constant(); ok && !strings.Contains(s, "${") && lit != strings.ReplaceAll(s, "$$", "$") {
			t.Fatalf("constant %q from %q", lit, s)
		}
	})
}
