// Package samplestage is the built-in `sample` stage: it keeps a fraction of
// events, per event-name pattern, and multiplies each kept event's
// SampleRate by the rate it was kept at so counting sinks can scale back up.
package samplestage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in configs.
const Type = "sample"

// NewFactory returns the factory for `sample` stages.
func NewFactory() pipeline.StageFactory {
	return pipeline.NewStageFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Stage, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("sample stage %s: config is %T, want *samplestage.Config", set.ID, cfg)
			}
			return New(set, c)
		})
}

// Stage is a sample stage. It is safe for concurrent Process calls.
type Stage struct {
	rate    float64
	rules   []rule
	byCorr  bool
	seed    uint64
	rnd     func() float64
	dropped *pipeline.Counter
}

type rule struct {
	glob pipeline.Glob
	rate float64
}

var _ pipeline.Stage = (*Stage)(nil)

// New validates cfg and builds the stage.
func New(set pipeline.Settings, cfg *Config) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Stage{
		rate:   cfg.Rate,
		byCorr: cfg.By == ByCorrelationID,
		seed:   cfg.Seed,
		rnd:    rand.Float64,
		dropped: set.Metrics.Counter("snakepipe_stage_events_dropped_total",
			"Events a stage dropped, by reason.",
			pipeline.L("pipeline", set.Pipeline, "stage", set.ID.String(), "reason", "sampled")...),
	}
	for _, r := range cfg.Rules {
		s.rules = append(s.rules, rule{glob: pipeline.MustGlob(r.Pattern), rate: r.Rate})
	}
	if cfg.Seed != 0 {
		var mu sync.Mutex
		r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
		s.rnd = func() float64 {
			mu.Lock()
			defer mu.Unlock()
			return r.Float64()
		}
	}
	return s, nil
}

// Start does nothing.
func (s *Stage) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (s *Stage) Shutdown(context.Context) error { return nil }

// RateFor returns the rate that applies to an event name.
func (s *Stage) RateFor(name string) float64 {
	for i := range s.rules {
		if s.rules[i].glob.Match(name) {
			return s.rules[i].rate
		}
	}
	return s.rate
}

// Process keeps each event with the probability its rule gives and scales
// the SampleRate of kept events. Events whose SampleRate is not in (0, 1]
// are treated as unsampled (rate 1) before scaling.
func (s *Stage) Process(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	out := b.Events[:0]
	for i := range b.Events {
		e := &b.Events[i]
		rate := s.RateFor(e.Name)
		if rate < 1 && !s.keep(e, rate) {
			continue
		}
		if rate < 1 {
			if !(e.SampleRate > 0 && e.SampleRate <= 1) {
				e.SampleRate = 1
			}
			e.SampleRate *= rate
		}
		out = append(out, *e)
	}
	if n := len(b.Events) - len(out); n > 0 {
		s.dropped.Add(uint64(n))
		clear(b.Events[len(out):])
	}
	b.Events = out
	return b, nil
}

func (s *Stage) keep(e *pipeline.Event, rate float64) bool {
	if rate <= 0 {
		return false
	}
	if s.byCorr && e.CorrelationID != "" {
		return unitHash(s.seed, e.CorrelationID) < rate
	}
	return s.rnd() < rate
}

// unitHash maps a string to [0, 1) with FNV-1a 64 and a final avalanche
// (splitmix64), so the same correlation id gets the same value in every
// snakepipe process with the same seed.
func unitHash(seed uint64, s string) float64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset) ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return float64(h>>11) / (1 << 53)
}
