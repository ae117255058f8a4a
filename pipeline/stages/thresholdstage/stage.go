// Package thresholdstage is the built-in `threshold` stage: it keeps or
// drops events by comparing one measurement with a fixed value, e.g. keep
// only python.call.stop events with duration > 100ms.
package thresholdstage

import (
	"context"
	"fmt"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in configs.
const Type = "threshold"

// NewFactory returns the factory for `threshold` stages.
func NewFactory() pipeline.StageFactory {
	return pipeline.NewStageFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Stage, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("threshold stage %s: config is %T, want *thresholdstage.Config", set.ID, cfg)
			}
			return New(set, c)
		})
}

// Stage is a threshold stage; it is stateless and safe for concurrent use.
// Drops are counted with reason "threshold" (the comparison decided) or
// "missing" (the measurement was absent or not a number).
type Stage struct {
	events      pipeline.Glob
	measurement string
	op          Op
	value       float64
	keepOnHold  bool
	keepMissing bool

	droppedThreshold *pipeline.Counter
	droppedMissing   *pipeline.Counter
}

var _ pipeline.Stage = (*Stage)(nil)

// New validates cfg and builds the stage.
func New(set pipeline.Settings, cfg *Config) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	counter := func(reason string) *pipeline.Counter {
		return set.Metrics.Counter("snakepipe_stage_events_dropped_total", "Events a stage dropped, by reason.",
			pipeline.L("pipeline", set.Pipeline, "stage", set.ID.String(), "reason", reason)...)
	}
	return &Stage{
		events:           pipeline.MustGlob(cfg.Events),
		measurement:      cfg.Measurement,
		op:               cfg.Op,
		value:            cfg.Value,
		keepOnHold:       cfg.Action == ActionKeep,
		keepMissing:      cfg.Missing == ActionKeep,
		droppedThreshold: counter("threshold"),
		droppedMissing:   counter("missing"),
	}, nil
}

// Start does nothing.
func (s *Stage) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (s *Stage) Shutdown(context.Context) error { return nil }

// Keep reports whether e is kept and, if not, the drop reason.
func (s *Stage) Keep(e *pipeline.Event) (bool, string) {
	if !s.events.Match(e.Name) {
		return true, ""
	}
	v, ok := e.Measurement(s.measurement)
	var x float64
	if ok {
		x, ok = v.AsFloat()
	}
	if !ok {
		if s.keepMissing {
			return true, ""
		}
		return false, "missing"
	}
	if s.compare(x) == s.keepOnHold {
		return true, ""
	}
	return false, "threshold"
}

func (s *Stage) compare(x float64) bool {
	switch s.op {
	case OpGt:
		return x > s.value
	case OpGe:
		return x >= s.value
	case OpLt:
		return x < s.value
	case OpLe:
		return x <= s.value
	case OpEq:
		return x == s.value
	default: // OpNe
		return x != s.value
	}
}

// Process compacts the batch in place to the kept events.
func (s *Stage) Process(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	out := b.Events[:0]
	var byThreshold, byMissing uint64
	for i := range b.Events {
		keep, reason := s.Keep(&b.Events[i])
		switch {
		case keep:
			out = append(out, b.Events[i])
		case reason == "missing":
			byMissing++
		default:
			byThreshold++
		}
	}
	if byThreshold > 0 {
		s.droppedThreshold.Add(byThreshold)
	}
	if byMissing > 0 {
		s.droppedMissing.Add(byMissing)
	}
	clear(b.Events[len(out):])
	b.Events = out
	return b, nil
}
