// Package ratelimitstage is the built-in `ratelimit` stage: a token bucket
// per event-name pattern caps how many matching events per second pass;
// the rest are dropped and counted (reason "rate_limited").
package ratelimitstage

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in configs.
const Type = "ratelimit"

// NewFactory returns the factory for `ratelimit` stages.
func NewFactory() pipeline.StageFactory {
	return pipeline.NewStageFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Stage, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("ratelimit stage %s: config is %T, want *ratelimitstage.Config", set.ID, cfg)
			}
			return New(set, c)
		})
}

// Stage is a rate limit stage, safe for concurrent use. Each stage
// instance (one per pipeline using it) has its own buckets.
type Stage struct {
	rules   []*bucket
	now     func() time.Time
	dropped *pipeline.Counter
}

type bucket struct {
	glob  pipeline.Glob
	rate  float64 // tokens per second
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

var _ pipeline.Stage = (*Stage)(nil)

// New validates cfg and builds the stage. Buckets start full.
func New(set pipeline.Settings, cfg *Config) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Stage{
		now: time.Now,
		dropped: set.Metrics.Counter("snakepipe_stage_events_dropped_total", "Events a stage dropped, by reason.",
			pipeline.L("pipeline", set.Pipeline, "stage", set.ID.String(), "reason", "rate_limited")...),
	}
	for _, r := range cfg.Rules {
		burst := float64(r.Burst)
		if r.Burst == 0 {
			burst = max(1, math.Ceil(r.Rate))
		}
		s.rules = append(s.rules, &bucket{glob: pipeline.MustGlob(r.Pattern), rate: r.Rate, burst: burst, tokens: burst})
	}
	return s, nil
}

// Start does nothing.
func (s *Stage) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (s *Stage) Shutdown(context.Context) error { return nil }

// take refills the bucket up to now and takes one token if there is one.
func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.last = now
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// Process drops the events their bucket has no token for.
func (s *Stage) Process(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	now := s.now()
	out := b.Events[:0]
	for i := range b.Events {
		if bk := s.bucketFor(b.Events[i].Name); bk == nil || bk.take(now) {
			out = append(out, b.Events[i])
		}
	}
	if n := len(b.Events) - len(out); n > 0 {
		s.dropped.Add(uint64(n))
		clear(b.Events[len(out):])
	}
	b.Events = out
	return b, nil
}

func (s *Stage) bucketFor(name string) *bucket {
	for _, r := range s.rules {
		if r.glob.Match(name) {
			return r
		}
	}
	return nil
}
