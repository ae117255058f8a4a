// Package filterstage is the built-in `filter` stage: it keeps or drops
// events by name (allow/deny globs) and by metadata conditions.
package filterstage

import (
	"context"
	"fmt"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in configs.
const Type = "filter"

// NewFactory returns the factory for `filter` stages.
func NewFactory() pipeline.StageFactory {
	return pipeline.NewStageFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Stage, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("filter stage %s: config is %T, want *filterstage.Config", set.ID, cfg)
			}
			return New(set, c)
		})
}

// Stage is a filter stage. It holds no mutable state and is safe for
// concurrent Process calls.
//
// An event is dropped with reason "name" when the allow/deny filter refuses
// its name; otherwise, when match conditions are configured, it is dropped
// with reason "match" if (mode keep) they do not all hold or (mode drop)
// they all hold.
type Stage struct {
	names      pipeline.AllowDeny
	conds      []cond
	dropOnHold bool

	droppedName  *pipeline.Counter
	droppedMatch *pipeline.Counter
}

type cond struct {
	key   string
	op    Op
	value string
	glob  pipeline.Glob
}

var _ pipeline.Stage = (*Stage)(nil)

// New validates cfg and builds the stage.
func New(set pipeline.Settings, cfg *Config) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Stage{dropOnHold: cfg.Mode == ModeDrop}
	s.names.Allow, _ = pipeline.CompileGlobs(cfg.Allow)
	s.names.Deny, _ = pipeline.CompileGlobs(cfg.Deny)
	for _, m := range cfg.Match {
		c := cond{key: m.Key, op: m.Op, value: m.Value}
		if m.Op == OpGlob {
			c.glob = pipeline.MustGlob(m.Value)
		}
		s.conds = append(s.conds, c)
	}
	counter := func(reason string) *pipeline.Counter {
		return set.Metrics.Counter("snakepipe_stage_events_dropped_total", "Events a stage dropped, by reason.",
			pipeline.L("pipeline", set.Pipeline, "stage", set.ID.String(), "reason", reason)...)
	}
	s.droppedName = counter("name")
	s.droppedMatch = counter("match")
	return s, nil
}

// Start does nothing.
func (s *Stage) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (s *Stage) Shutdown(context.Context) error { return nil }

// Keep reports whether the stage keeps e, and if not, the drop reason.
func (s *Stage) Keep(e *pipeline.Event) (bool, string) {
	if !s.names.Allowed(e.Name) {
		return false, "name"
	}
	if len(s.conds) == 0 {
		return true, ""
	}
	holds := true
	for i := range s.conds {
		if !s.conds[i].holds(e) {
			holds = false
			break
		}
	}
	if holds == s.dropOnHold {
		return false, "match"
	}
	return true, ""
}

func (c *cond) holds(e *pipeline.Event) bool {
	v, ok := e.Meta(c.key)
	switch c.op {
	case OpEq:
		return ok && v == c.value
	case OpNe:
		return !ok || v != c.value
	case OpGlob:
		return ok && c.glob.Match(v)
	default: // OpExists
		return ok
	}
}

// Process compacts the batch in place to the kept events.
func (s *Stage) Process(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	out := b.Events[:0]
	var byName, byMatch uint64
	for i := range b.Events {
		keep, reason := s.Keep(&b.Events[i])
		if keep {
			out = append(out, b.Events[i])
			continue
		}
		if reason == "name" {
			byName++
		} else {
			byMatch++
		}
	}
	if byName > 0 {
		s.droppedName.Add(byName)
	}
	if byMatch > 0 {
		s.droppedMatch.Add(byMatch)
	}
	clear(b.Events[len(out):])
	b.Events = out
	return b, nil
}
