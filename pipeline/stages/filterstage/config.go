package filterstage

import (
	"errors"
	"fmt"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Op is a metadata comparison.
type Op string

const (
	// OpEq holds when the key is present and its value equals Value.
	OpEq Op = "eq"
	// OpNe holds when the key is absent or its value differs from Value.
	OpNe Op = "ne"
	// OpGlob holds when the key is present and its value matches the glob Value.
	OpGlob Op = "glob"
	// OpExists holds when the key is present (Value must be empty).
	OpExists Op = "exists"
)

// Mode says what happens to events for which the match conditions hold.
type Mode string

const (
	// ModeKeep keeps matching events and drops the rest.
	ModeKeep Mode = "keep"
	// ModeDrop drops matching events and keeps the rest.
	ModeDrop Mode = "drop"
)

// Condition is one metadata test. Key may be a host key (worker_id, pool,
// hostname, pid), read from the event's origin.
type Condition struct {
	Key   string `koanf:"key"`
	Op    Op     `koanf:"op"`
	Value string `koanf:"value"`
}

// Config is the filter stage's configuration.
type Config struct {
	// Allow and Deny are event-name globs: deny wins, an empty allow list
	// allows every name.
	Allow []string `koanf:"allow"`
	Deny  []string `koanf:"deny"`
	// Match conditions are ANDed: an event matches when all of them hold.
	// Empty means the stage filters by name only.
	Match []Condition `koanf:"match"`
	// Mode is "keep" (default: keep only matching events) or "drop".
	Mode Mode `koanf:"mode"`
}

// DefaultConfig passes everything.
func DefaultConfig() *Config { return &Config{Mode: ModeKeep} }

// Validate reports every problem with its key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := pipeline.CompileGlobs(c.Allow); err != nil {
		errs = append(errs, fmt.Errorf("allow%w", err))
	}
	if _, err := pipeline.CompileGlobs(c.Deny); err != nil {
		errs = append(errs, fmt.Errorf("deny%w", err))
	}
	for i, m := range c.Match {
		if m.Key == "" {
			errs = append(errs, fmt.Errorf("match[%d].key: must not be empty", i))
		}
		switch m.Op {
		case OpEq, OpNe:
		case OpGlob:
			if _, err := pipeline.CompileGlob(m.Value); err != nil {
				errs = append(errs, fmt.Errorf("match[%d].value: %w", i, err))
			}
		case OpExists:
			if m.Value != "" {
				errs = append(errs, fmt.Errorf("match[%d].value: must be empty with op exists", i))
			}
		default:
			errs = append(errs, fmt.Errorf("match[%d].op: %q is not one of eq, ne, glob, exists", i, string(m.Op)))
		}
	}
	switch c.Mode {
	case ModeKeep, ModeDrop:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not one of keep, drop", string(c.Mode)))
	}
	return errors.Join(errs...)
}
