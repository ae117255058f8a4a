package thresholdstage

import (
	"errors"
	"fmt"
	"math"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Op compares an event's measurement (left) with the configured value (right).
type Op string

const (
	OpGt Op = "gt"
	OpGe Op = "ge"
	OpLt Op = "lt"
	OpLe Op = "le"
	OpEq Op = "eq"
	OpNe Op = "ne"
)

// Action says what happens to an event when the comparison holds; events
// for which it does not hold get the opposite.
type Action string

const (
	ActionKeep Action = "keep"
	ActionDrop Action = "drop"
)

// Config is the threshold stage's configuration.
type Config struct {
	// Events is a name glob: only matching events are judged; the others
	// pass untouched. Default "*".
	Events string `koanf:"events"`
	// Measurement is the key compared. Required.
	Measurement string `koanf:"measurement"`
	// Op is one of gt, ge, lt, le, eq, ne.
	Op Op `koanf:"op"`
	// Value is the right-hand side. Int measurements are compared as
	// float64 (exact up to 2^53).
	Value float64 `koanf:"value"`
	// Action is "keep" (keep events where the comparison holds, drop the
	// rest) or "drop" (drop events where it holds, keep the rest).
	Action Action `koanf:"action"`
	// Missing says what happens to judged events that lack the measurement
	// or carry it as a string: "keep" (default) or "drop".
	Missing Action `koanf:"missing"`
}

// DefaultConfig judges every event; Measurement and Op must still be set.
func DefaultConfig() *Config {
	return &Config{Events: "*", Action: ActionKeep, Missing: ActionKeep}
}

// Validate reports every problem with its key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := pipeline.CompileGlob(c.Events); err != nil {
		errs = append(errs, fmt.Errorf("events: %w", err))
	}
	if c.Measurement == "" {
		errs = append(errs, errors.New("measurement: required"))
	}
	switch c.Op {
	case OpGt, OpGe, OpLt, OpLe, OpEq, OpNe:
	case "":
		errs = append(errs, errors.New("op: required (gt, ge, lt, le, eq or ne)"))
	default:
		errs = append(errs, fmt.Errorf("op: %q is not one of gt, ge, lt, le, eq, ne", string(c.Op)))
	}
	if math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
		errs = append(errs, fmt.Errorf("value: %v is not a finite number", c.Value))
	}
	for _, f := range []struct {
		key string
		a   Action
	}{{"action", c.Action}, {"missing", c.Missing}} {
		if f.a != ActionKeep && f.a != ActionDrop {
			errs = append(errs, fmt.Errorf("%s: %q is not one of keep, drop", f.key, string(f.a)))
		}
	}
	return errors.Join(errs...)
}
