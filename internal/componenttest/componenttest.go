// Package componenttest decodes component configs from YAML files in tests
// the way the config loader does: koanf reads the file, mapstructure decodes
// a component's section onto a struct already holding the factory defaults,
// with unknown keys as errors and durations from strings such as "2s".
package componenttest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/snakepipe/snakepipe/pipeline"
)

// ErrNoSection is returned by Decode when the file has no such component.
var ErrNoSection = errors.New("no such section")

// Decode reads the YAML file at path and decodes section.id (for example
// "stages" and "sample/gc") onto cfg, which must be a pointer to a struct
// holding defaults. An id with no body ("sample/x:" or "sample/x: {}")
// leaves the defaults. It does not call Validate.
func Decode(path, section, id string, cfg any) error {
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	top, ok := k.Raw()[section].(map[string]any)
	if !ok {
		return fmt.Errorf("%w: %s in %s", ErrNoSection, section, path)
	}
	body, ok := top[id]
	if !ok {
		return fmt.Errorf("%w: %s.%s in %s", ErrNoSection, section, id, path)
	}
	if body == nil {
		return nil
	}
	return DecodeMap(body, cfg)
}

// DecodeMap decodes one component's raw config (a map from a YAML parser)
// onto cfg with the loader's rules.
func DecodeMap(body any, cfg any) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:          "koanf",
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		Result:           cfg,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
	})
	if err != nil {
		return err
	}
	return dec.Decode(body)
}

// Load is Decode followed by Validate, failing t on any error.
func Load(t testing.TB, path, section, id string, cfg pipeline.Config) {
	t.Helper()
	if err := Decode(path, section, id, cfg); err != nil {
		t.Fatalf("decode %s.%s: %v", section, id, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate %s.%s: %v", section, id, err)
	}
}
