package pipeline

import (
	"errors"
	"fmt"
	"math"
)

// SamplingRule samples events whose name matches Pattern at Rate.
type SamplingRule struct {
	Pattern string  `koanf:"pattern" json:"pattern"`
	Rate    float64 `koanf:"rate" json:"rate"`
}

// Policy is what a worker is told to send: the same fields travel in the
// protocol's Welcome and Policy frames, are held per selector by control,
// and are enforced again by the host on arrival.
type Policy struct {
	Enabled bool `koanf:"enabled" json:"enabled"`
	// DefaultSampleRate applies to events matching no rule, in [0, 1].
	DefaultSampleRate float64 `koanf:"default_sample_rate" json:"default_sample_rate"`
	// SamplingRules are checked in order; the first match wins.
	SamplingRules []SamplingRule `koanf:"sampling_rules" json:"sampling_rules"`
	// Allow and Deny are name globs: deny wins, empty allow allows all.
	Allow []string `koanf:"allow" json:"allow"`
	Deny  []string `koanf:"deny" json:"deny"`
	// Version increases with every change (set by whoever holds the policy).
	Version uint64 `koanf:"-" json:"version"`
}

// DefaultPolicy sends everything.
func DefaultPolicy() Policy {
	return Policy{Enabled: true, DefaultSampleRate: 1}
}

// ErrBadPolicy is wrapped by Policy.Validate errors.
var ErrBadPolicy = errors.New("bad policy")

func validRate(r float64) bool { return !math.IsNaN(r) && r >= 0 && r <= 1 }

// Validate checks rates are in [0, 1] and globs compile, reporting every
// problem with its key.
func (p Policy) Validate() error {
	var errs []error
	if !validRate(p.DefaultSampleRate) {
		errs = append(errs, fmt.Errorf("%w: default_sample_rate: %v is not in [0, 1]", ErrBadPolicy, p.DefaultSampleRate))
	}
	for i, r := range p.SamplingRules {
		if !validRate(r.Rate) {
			errs = append(errs, fmt.Errorf("%w: sampling_rules[%d].rate: %v is not in [0, 1]", ErrBadPolicy, i, r.Rate))
		}
		if _, err := CompileGlob(r.Pattern); err != nil {
			errs = append(errs, fmt.Errorf("%w: sampling_rules[%d].pattern: %w", ErrBadPolicy, i, err))
		}
	}
	if _, err := CompileGlobs(p.Allow); err != nil {
		errs = append(errs, fmt.Errorf("%w: allow%w", ErrBadPolicy, err))
	}
	if _, err := CompileGlobs(p.Deny); err != nil {
		errs = append(errs, fmt.Errorf("%w: deny%w", ErrBadPolicy, err))
	}
	return errors.Join(errs...)
}

// CompiledPolicy is a validated Policy ready for per-event decisions.
type CompiledPolicy struct {
	Policy
	rules  []compiledRule
	filter AllowDeny
}

type compiledRule struct {
	glob Glob
	rate float64
}

// Compile validates and compiles p.
func (p Policy) Compile() (*CompiledPolicy, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &CompiledPolicy{Policy: p}
	for _, r := range p.SamplingRules {
		c.rules = append(c.rules, compiledRule{glob: MustGlob(r.Pattern), rate: r.Rate})
	}
	c.filter.Allow, _ = CompileGlobs(p.Allow)
	c.filter.Deny, _ = CompileGlobs(p.Deny)
	return c, nil
}

// Allowed reports whether the filter passes name (ignores Enabled).
func (c *CompiledPolicy) Allowed(name string) bool { return c.filter.Allowed(name) }

// SampleRate returns the rate that applies to name.
func (c *CompiledPolicy) SampleRate(name string) float64 {
	for i := range c.rules {
		if c.rules[i].glob.Match(name) {
			return c.rules[i].rate
		}
	}
	return c.DefaultSampleRate
}
