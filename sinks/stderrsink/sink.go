// Package stderrsink is the `stderr` sink: events as JSON lines or a
// readable text format, written to the process's standard error (or any
// writer the program supplies).
//
// snakepipe's logger writes to stderr too. The run command builds one
// pipeline.SyncWriter around os.Stderr, gives it to the logger, and passes
// it to NewFactoryWithWriter; each Write of this sink is a single call
// carrying whole lines, so log lines and event lines never interleave.
package stderrsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in configs.
const Type = "stderr"

// ErrClosed is returned (wrapped in pipeline.Permanent) by Write after
// Shutdown: the pipeline has stopped using the sink, so retrying cannot
// help.
var ErrClosed = errors.New("sink is shut down")

var defaultWriter = sync.OnceValue(func() io.Writer { return pipeline.NewSyncWriter(os.Stderr) })

// NewFactory returns the factory for `stderr` sinks writing to os.Stderr
// through a package-wide pipeline.SyncWriter.
func NewFactory() pipeline.SinkFactory {
	return newFactory(defaultWriter)
}

// NewFactoryWithWriter returns the factory for `stderr` sinks writing to w,
// typically the SyncWriter the logger also writes to. w need not be safe
// for concurrent use by itself: each sink serializes its writes, but
// several sinks (or a logger) sharing w must share a SyncWriter.
func NewFactoryWithWriter(w io.Writer) pipeline.SinkFactory {
	return newFactory(func() io.Writer { return w })
}

func newFactory(w func() io.Writer) pipeline.SinkFactory {
	return pipeline.NewSinkFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Sink, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("stderr sink %s: config is %T, want *stderrsink.Config", set.ID, cfg)
			}
			return New(set, c, w())
		})
}

// Sink writes batches to a writer, one Write call per batch.
//
// Write checks its context first: with a cancelled context it returns an
// error wrapping ctx.Err() and writes nothing. Otherwise it encodes the
// batch and writes it in one call; a failed or short write is returned as
// a transient error (the writer may have taken part of the batch).
type Sink struct {
	id     string
	w      io.Writer
	encode func(dst []byte, e *pipeline.Event) []byte

	mu     sync.Mutex // serializes writes; guards closed
	closed bool
}

var _ pipeline.Sink = (*Sink)(nil)

// New validates cfg and builds a sink writing to w.
func New(set pipeline.Settings, cfg *Config, w io.Writer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{id: set.ID.String(), w: w, encode: appendJSONLine}
	if cfg.Format == FormatText {
		s.encode = AppendText
	}
	return s, nil
}

func appendJSONLine(dst []byte, e *pipeline.Event) []byte {
	return append(pipeline.AppendJSON(dst, e), '\n')
}

// Start does nothing.
func (s *Sink) Start(context.Context) error { return nil }

// Shutdown waits for a Write in progress and makes later Writes fail. The
// sink buffers nothing, so there is nothing to flush. It is idempotent.
func (s *Sink) Shutdown(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled bounds the buffers kept for reuse so one huge batch does not
// pin its buffer forever.
const maxPooled = 1 << 20

// Write encodes b and writes it in one call.
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stderr sink %s: %w", s.id, err)
	}
	if b.Len() == 0 {
		return s.checkOpen()
	}
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for i := range b.Events {
		buf = s.encode(buf, &b.Events[i])
	}
	s.mu.Lock()
	var err error
	if s.closed {
		err = pipeline.Permanent(fmt.Errorf("stderr sink %s: %w", s.id, ErrClosed))
	} else if _, werr := s.w.Write(buf); werr != nil {
		err = fmt.Errorf("stderr sink %s: %w", s.id, werr)
	}
	s.mu.Unlock()
	if cap(buf) <= maxPooled {
		*bp = buf
		bufPool.Put(bp)
	}
	return err
}

func (s *Sink) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return pipeline.Permanent(fmt.Errorf("stderr sink %s: %w", s.id, ErrClosed))
	}
	return nil
}
