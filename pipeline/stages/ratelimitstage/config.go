package ratelimitstage

import (
	"errors"
	"fmt"
	"math"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Rule limits the events whose name matches Pattern, together, to Rate per
// second with bursts of up to Burst.
type Rule struct {
	Pattern string  `koanf:"pattern"`
	Rate    float64 `koanf:"rate"`
	// Burst is the bucket size: how many events may pass at once after a
	// quiet period. 0 means max(1, ceil(rate)).
	Burst int `koanf:"burst"`
}

// Config is the rate limit stage's configuration.
type Config struct {
	// Rules are checked in order; the first match decides the bucket.
	// Events matching no rule pass unlimited.
	Rules []Rule `koanf:"rules"`
}

// DefaultConfig has no rules; at least one must be configured.
func DefaultConfig() *Config { return &Config{} }

// Validate reports every problem with its key.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Rules) == 0 {
		errs = append(errs, errors.New("rules: at least one rule is required"))
	}
	for i, r := range c.Rules {
		if _, err := pipeline.CompileGlob(r.Pattern); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d].pattern: %w", i, err))
		}
		if !(r.Rate > 0) || math.IsInf(r.Rate, 0) {
			errs = append(errs, fmt.Errorf("rules[%d].rate: %v must be a positive number of events per second", i, r.Rate))
		}
		if r.Burst < 0 {
			errs = append(errs, fmt.Errorf("rules[%d].burst: %d must be >= 0", i, r.Burst))
		}
	}
	return errors.Join(errs...)
}
