// Package metadatastage is the built-in `metadata` stage: it sets, renames
// and deletes metadata keys, copy-on-write (an event's Metadata array may be
// shared with other pipelines, so it is never written through).
package metadatastage

import (
	"context"
	"fmt"
	"slices"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in configs.
const Type = "metadata"

// NewFactory returns the factory for `metadata` stages.
func NewFactory() pipeline.StageFactory {
	return pipeline.NewStageFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Stage, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("metadata stage %s: config is %T, want *metadatastage.Config", set.ID, cfg)
			}
			return New(set, c)
		})
}

// Stage is a metadata stage; it is stateless and safe for concurrent use.
// It never drops events.
type Stage struct {
	events pipeline.Glob
	rename []pipeline.Label // Key: old, Value: new
	delete []string
	set    []setter
	// constSet is set when every set value is a literal: expansion cannot
	// depend on the event.
	constSet bool
}

type setter struct {
	key  string
	tmpl template
	lit  string
}

var _ pipeline.Stage = (*Stage)(nil)

// New validates cfg and builds the stage.
func New(_ pipeline.Settings, cfg *Config) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Stage{events: pipeline.MustGlob(cfg.Events), delete: slices.Clone(cfg.Delete), constSet: true}
	for _, k := range sortedKeys(cfg.Rename) {
		s.rename = append(s.rename, pipeline.Label{Key: k, Value: cfg.Rename[k]})
	}
	for _, k := range sortedKeys(cfg.Set) {
		t, _ := parseTemplate(cfg.Set[k])
		st := setter{key: k, tmpl: t}
		if lit, ok := t.constant(); ok {
			st.lit, st.tmpl = lit, nil
		} else {
			s.constSet = false
		}
		s.set = append(s.set, st)
	}
	return s, nil
}

// Start does nothing.
func (s *Stage) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (s *Stage) Shutdown(context.Context) error { return nil }

// Process applies the operations to every matching event. The new
// metadata slices of one batch are carved from one allocation, each capped
// at its own length so that no event can grow into its neighbour's.
func (s *Stage) Process(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	need := 0
	for i := range b.Events {
		if e := &b.Events[i]; s.events.Match(e.Name) && s.touches(e.Metadata) {
			need += len(e.Metadata) + len(s.set)
		}
	}
	if need == 0 {
		return b, nil
	}
	slab := make([]pipeline.Label, need)
	for i := range b.Events {
		if e := &b.Events[i]; s.events.Match(e.Name) && s.touches(e.Metadata) {
			n := len(e.Metadata) + len(s.set)
			s.apply(e, slab[:0:n])
			slab = slab[n:]
		}
	}
	return b, nil
}

func (s *Stage) renamed(key string) (string, bool) {
	for _, r := range s.rename {
		if r.Key == key {
			return r.Value, true
		}
	}
	return "", false
}

func (s *Stage) touches(md []pipeline.Label) bool {
	if len(s.set) > 0 {
		return true
	}
	for _, l := range md {
		if _, ok := s.renamed(l.Key); ok || slices.Contains(s.delete, l.Key) {
			return true
		}
	}
	return false
}

// Apply changes e's metadata. It replaces e.Metadata with a new slice
// when anything changes and never writes to the old one.
func (s *Stage) Apply(e *pipeline.Event) {
	if s.touches(e.Metadata) {
		s.apply(e, make([]pipeline.Label, 0, len(e.Metadata)+len(s.set)))
	}
}

// apply builds e's new metadata in md (empty, with room for the old
// labels plus every set key).
func (s *Stage) apply(e *pipeline.Event, md []pipeline.Label) {
	old := e.Metadata
	// Expand templates against the event as it arrived (before renames).
	var values []string
	if !s.constSet {
		values = make([]string, len(s.set))
		for i := range s.set {
			if s.set[i].tmpl != nil {
				values[i] = s.set[i].tmpl.expand(e)
			}
		}
	}
	// Rename: a renamed label replaces a label already holding its new key.
	for _, l := range old {
		if to, ok := s.renamed(l.Key); ok {
			l.Key = to
		} else if s.isRenameTargetPresent(old, l.Key) {
			continue
		}
		md = append(md, l)
	}
	// Delete.
	if len(s.delete) > 0 {
		md = slices.DeleteFunc(md, func(x pipeline.Label) bool { return slices.Contains(s.delete, x.Key) })
	}
	// Set.
	for i := range s.set {
		v := s.set[i].lit
		if values != nil && s.set[i].tmpl != nil {
			v = values[i]
		}
		j := slices.IndexFunc(md, func(x pipeline.Label) bool { return x.Key == s.set[i].key })
		if j >= 0 {
			md[j].Value = v
		} else {
			md = append(md, pipeline.Label{Key: s.set[i].key, Value: v})
		}
	}
	e.Metadata = md
}

// isRenameTargetPresent reports whether key is the target of a rename whose
// source is in md (so the label holding key is replaced by the renamed one).
func (s *Stage) isRenameTargetPresent(md []pipeline.Label, key string) bool {
	for _, r := range s.rename {
		if r.Value != key {
			continue
		}
		for _, l := range md {
			if l.Key == r.Key {
				return true
			}
		}
	}
	return false
}
