package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Component is anything with a lifecycle. Start is called before the first
// batch, Shutdown after the last one. Shutdown must flush whatever the
// component buffers, must honour ctx's deadline, and must be safe to call
// twice.
type Component interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Stage transforms a batch: filter, sample, enrich.
//
// Process is called from one goroutine per pipeline worker; a stage used by
// a pipeline with several workers is called concurrently and must be safe
// for that. The stage owns b (see Batch). Returning a batch with no events
// and a nil error means every event was dropped. An error means the stage
// failed for the whole batch; the pipeline counts it and drops the batch
// (stages that want fail-open behaviour handle their own errors).
type Stage interface {
	Component
	Process(ctx context.Context, b *Batch) (*Batch, error)
}

// StageFunc adapts a function to a Stage with no lifecycle.
type StageFunc func(ctx context.Context, b *Batch) (*Batch, error)

// Process calls f.
func (f StageFunc) Process(ctx context.Context, b *Batch) (*Batch, error) { return f(ctx, b) }

// Start does nothing.
func (StageFunc) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (StageFunc) Shutdown(context.Context) error { return nil }

// Sink delivers batches somewhere outside snakepipe.
//
// Write may be called concurrently. It must not modify b and must not keep
// references to b or its events after returning (copy what it buffers, or
// encode it). A returned error wrapped with Permanent means retrying cannot
// help (the batch is dropped and counted); any other error is transient and
// the caller may retry with backoff.
type Sink interface {
	Component
	Write(ctx context.Context, b *Batch) error
}

// SinkFunc adapts a function to a Sink with no lifecycle.
type SinkFunc func(ctx context.Context, b *Batch) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, b *Batch) error { return f(ctx, b) }

// Start does nothing.
func (SinkFunc) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (SinkFunc) Shutdown(context.Context) error { return nil }

// ErrPermanent marks errors that retrying cannot fix. Test with
// errors.Is(err, ErrPermanent) or IsPermanent.
var ErrPermanent = errors.New("permanent")

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() []error {
	return []error{p.err, ErrPermanent}
}

// Permanent wraps err so that IsPermanent reports true. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err (or anything it wraps) is permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// ComponentID names a configured component: "type" or "type/name"
// ("statsd/main", "file", "wasm/slow_calls").
type ComponentID struct {
	Type string
	Name string
}

// ErrBadComponentID is returned by ParseComponentID.
var ErrBadComponentID = errors.New("bad component id")

// ParseComponentID parses "type" or "type/name". Both parts must be
// non-empty snake_case words ([a-z0-9_], name may also use '-' and '.').
func ParseComponentID(s string) (ComponentID, error) {
	typ, name, hasName := strings.Cut(s, "/")
	if !validWord(typ, false) {
		return ComponentID{}, fmt.Errorf("%w %q: type %q must be lower-case letters, digits and '_'", ErrBadComponentID, s, typ)
	}
	if hasName && !validWord(name, true) {
		return ComponentID{}, fmt.Errorf("%w %q: name %q must be letters, digits, '_', '-' or '.'", ErrBadComponentID, s, name)
	}
	return ComponentID{Type: typ, Name: name}, nil
}

// MustComponentID is ParseComponentID for static input; it panics on error.
func MustComponentID(s string) ComponentID {
	id, err := ParseComponentID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func validWord(s string, name bool) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case name && (c >= 'A' && c <= 'Z' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// String returns "type" or "type/name".
func (id ComponentID) String() string {
	if id.Name == "" {
		return id.Type
	}
	return id.Type + "/" + id.Name
}

// Config is a component's user-facing configuration: a struct with koanf
// tags (snake_case keys), filled from the config file on top of the
// factory's default, then validated. Validate returns every problem it
// finds (errors.Join), each naming its key relative to the component.
type Config interface {
	Validate() error
}

// Settings is what code passes to a component when creating it (as opposed
// to Config, which users write).
type Settings struct {
	ID ComponentID
	// Pipeline is the name of the pipeline the component is created for
	// ("" for sinks, which pipelines share).
	Pipeline string
	Logger   hclog.Logger
	Metrics  *Metrics
}

// StageFactory creates stages of one type.
type StageFactory interface {
	Type() string
	// CreateDefaultConfig returns a pointer to a new Config holding defaults.
	CreateDefaultConfig() Config
	CreateStage(ctx context.Context, set Settings, cfg Config) (Stage, error)
}

// SinkFactory creates sinks of one type.
type SinkFactory interface {
	Type() string
	CreateDefaultConfig() Config
	CreateSink(ctx context.Context, set Settings, cfg Config) (Sink, error)
}

// NewStageFactory builds a StageFactory from functions.
func NewStageFactory(typ string, defaults func() Config, create func(ctx context.Context, set Settings, cfg Config) (Stage, error)) StageFactory {
	return stageFactory{typ: typ, defaults: defaults, create: create}
}

type stageFactory struct {
	typ      string
	defaults func() Config
	create   func(ctx context.Context, set Settings, cfg Config) (Stage, error)
}

func (f stageFactory) Type() string                { return f.typ }
func (f stageFactory) CreateDefaultConfig() Config { return f.defaults() }
func (f stageFactory) CreateStage(ctx context.Context, set Settings, cfg Config) (Stage, error) {
	return f.create(ctx, set, cfg)
}

// NewSinkFactory builds a SinkFactory from functions.
func NewSinkFactory(typ string, defaults func() Config, create func(ctx context.Context, set Settings, cfg Config) (Sink, error)) SinkFactory {
	return sinkFactory{typ: typ, defaults: defaults, create: create}
}

type sinkFactory struct {
	typ      string
	defaults func() Config
	create   func(ctx context.Context, set Settings, cfg Config) (Sink, error)
}

func (f sinkFactory) Type() string                { return f.typ }
func (f sinkFactory) CreateDefaultConfig() Config { return f.defaults() }
func (f sinkFactory) CreateSink(ctx context.Context, set Settings, cfg Config) (Sink, error) {
	return f.create(ctx, set, cfg)
}

// Factories is the set of component factories a program knows, built by hand
// in cmd/snakepipe/components.go (no init-time registration).
type Factories struct {
	Stages map[string]StageFactory
	Sinks  map[string]SinkFactory
}

// ErrDuplicateFactory is returned by MakeFactories for a repeated type.
var ErrDuplicateFactory = errors.New("duplicate factory type")

// MakeFactories indexes factories by type.
func MakeFactories(stages []StageFactory, sinks []SinkFactory) (Factories, error) {
	f := Factories{Stages: map[string]StageFactory{}, Sinks: map[string]SinkFactory{}}
	var errs []error
	for _, s := range stages {
		if _, dup := f.Stages[s.Type()]; dup {
			errs = append(errs, fmt.Errorf("%w: stage %q", ErrDuplicateFactory, s.Type()))
		}
		f.Stages[s.Type()] = s
	}
	for _, s := range sinks {
		if _, dup := f.Sinks[s.Type()]; dup {
			errs = append(errs, fmt.Errorf("%w: sink %q", ErrDuplicateFactory, s.Type()))
		}
		f.Sinks[s.Type()] = s
	}
	return f, errors.Join(errs...)
}
