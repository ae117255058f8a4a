package samplestage

import (
	"errors"
	"fmt"
	"math"

	"github.com/snakepipe/snakepipe/pipeline"
)

// By says what decides whether an event is kept.
type By string

const (
	// ByRandom keeps each event independently with probability rate.
	ByRandom By = "random"
	// ByCorrelationID keeps an event when a hash of its correlation id falls
	// below rate, so all events of one request are kept or dropped together
	// (and an event kept at rate r is also kept at every rate above r).
	// Events without a correlation id fall back to random.
	ByCorrelationID By = "correlation_id"
)

// Rule samples events whose name matches Pattern at Rate.
type Rule struct {
	Pattern string  `koanf:"pattern"`
	Rate    float64 `koanf:"rate"`
}

// Config is the sample stage's configuration (stages: {"sample/x": {...}}).
type Config struct {
	// Rate applies to events matching no rule, in [0, 1]. Default 1.
	Rate float64 `koanf:"rate"`
	// Rules are checked in order; the first whose pattern matches wins.
	Rules []Rule `koanf:"rules"`
	// By is "random" (default) or "correlation_id".
	By By `koanf:"by"`
	// Seed seeds the random source and the correlation-id hash. 0 (the
	// default) means a random source seeded by the runtime and an unseeded
	// hash; set it for reproducible runs.
	Seed uint64 `koanf:"seed"`
}

// DefaultConfig keeps everything.
func DefaultConfig() *Config {
	return &Config{Rate: 1, By: ByRandom}
}

func validRate(r float64) bool { return !math.IsNaN(r) && r >= 0 && r <= 1 }

// Validate reports every problem with its key.
func (c *Config) Validate() error {
	var errs []error
	if !validRate(c.Rate) {
		errs = append(errs, fmt.Errorf("rate: %v is not in [0, 1]", c.Rate))
	}
	for i, r := range c.Rules {
		if _, err := pipeline.CompileGlob(r.Pattern); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d].pattern: %w", i, err))
		}
		if !validRate(r.Rate) {
			errs = append(errs, fmt.Errorf("rules[%d].rate: %v is not in [0, 1]", i, r.Rate))
		}
	}
	switch c.By {
	case ByRandom, ByCorrelationID:
	default:
		errs = append(errs, fmt.Errorf("by: %q is not one of random, correlation_id", string(c.By)))
	}
	return errors.Join(errs...)
}
