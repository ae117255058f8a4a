// Package filesink is the `file` sink: events as JSON lines in a file, with
// size-based rotation, buffered writes flushed on a timer, an fsync policy,
// and recovery when the destination fails.
//
// Only whole lines are ever left in the file. When a write fails part way
// (disk full), the file is truncated back to its last good size; when the
// sink opens a file whose last byte is not '\n' (snakepipe died mid-write),
// it truncates the partial tail away, counts and logs it. When the file or
// its directory disappears, or the disk fills, Write returns a transient
// error (counted) and the next write or flush reopens the file, recreating
// the directory if create_dirs is set, so the sink recovers by itself once
// the condition clears.
package filesink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the component type in configs.
const Type = "file"

// ErrClosed is returned (wrapped in pipeline.Permanent) by Write after
// Shutdown.
var ErrClosed = errors.New("sink is shut down")

// NewFactory returns the factory for `file` sinks.
func NewFactory() pipeline.SinkFactory {
	return pipeline.NewSinkFactory(Type,
		func() pipeline.Config { return DefaultConfig() },
		func(_ context.Context, set pipeline.Settings, cfg pipeline.Config) (pipeline.Sink, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("file sink %s: config is %T, want *filesink.Config", set.ID, cfg)
			}
			return New(set, c)
		})
}

// file is what the sink needs from an open file; tests inject failures
// through it.
type file interface {
	io.Writer
	io.ReaderAt
	Truncate(size int64) error
	Sync() error
	Stat() (fs.FileInfo, error)
	Close() error
}

func openOSFile(path string) (file, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
}

// Sink writes JSON lines to a file. It is safe for concurrent use.
//
// Write encodes the batch and appends it to an in-memory buffer; the
// buffer is written to the file when it reaches buffer_bytes, every
// flush_interval, and at Shutdown (with flush_interval 0 or fsync always,
// within Write). A Write with an already cancelled context returns an
// error wrapping ctx.Err() and buffers nothing. When Write returns an
// error, nothing of its batch is kept (retrying is safe); when it returns
// nil the batch is written or buffered.
type Sink struct {
	cfg    Config
	id     string
	logger hclog.Logger
	open   func(path string) (file, error)

	mu      sync.Mutex
	f       file
	size    int64 // bytes in f: always a whole number of lines
	buf     []byte
	dirty   bool // written since the last fsync
	lastErr error
	closed  bool

	stop     chan struct{}
	loopDone chan struct{}
	stopOnce sync.Once

	errOpen, errWrite, errSync, errRotate *pipeline.Counter
	rotations, reopens                    *pipeline.Counter
	tornTails, tornBytes                  *pipeline.Counter
	droppedShutdown                       *pipeline.Counter
}

var _ pipeline.Sink = (*Sink)(nil)

// New validates cfg and builds the sink. It touches no file until Start.
func New(set pipeline.Settings, cfg *Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := set.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	id := set.ID.String()
	m := set.Metrics
	errs := func(op string) *pipeline.Counter {
		return m.Counter("snakepipe_sink_file_errors_total", "File sink I/O errors, by operation.",
			pipeline.L("sink", id, "op", op)...)
	}
	return &Sink{
		cfg:       *cfg,
		id:        id,
		logger:    logger,
		open:      openOSFile,
		stop:      make(chan struct{}),
		errOpen:   errs("open"),
		errWrite:  errs("write"),
		errSync:   errs("sync"),
		errRotate: errs("rotate"),
		rotations: m.Counter("snakepipe_sink_file_rotations_total", "File sink rotations.", pipeline.L("sink", id)...),
		reopens: m.Counter("snakepipe_sink_file_reopens_total",
			"Times the file sink found its file gone or replaced and opened it again.", pipeline.L("sink", id)...),
		tornTails: m.Counter("snakepipe_sink_file_torn_tails_total",
			"Partial last lines (from a crash mid-write) truncated away when opening.", pipeline.L("sink", id)...),
		tornBytes: m.Counter("snakepipe_sink_file_torn_bytes_total",
			"Bytes of partial last lines truncated away when opening.", pipeline.L("sink", id)...),
		droppedShutdown: m.Counter("snakepipe_sink_events_dropped_total", "Events a sink accepted but could not deliver.",
			pipeline.L("sink", id, "reason", "shutdown_flush_failed")...),
	}, nil
}

// Start opens the file (creating directories if configured, repairing a
// torn tail) and starts the flush timer.
func (s *Sink) Start(ctx context.Context) error {
	return s.start(ctx, nil)
}

// start takes the flush clock so tests can tick it by hand.
func (s *Sink) start(_ context.Context, tick <-chan time.Time) error {
	s.mu.Lock()
	err := s.ensureOpen()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("file sink %s: %w", s.id, err)
	}
	if s.cfg.FlushInterval > 0 && s.loopDone == nil {
		s.loopDone = make(chan struct{})
		var ticker *time.Ticker
		if tick == nil {
			ticker = time.NewTicker(s.cfg.FlushInterval)
			tick = ticker.C
		}
		go s.loop(tick, ticker)
	}
	return nil
}

func (s *Sink) loop(tick <-chan time.Time, ticker *time.Ticker) {
	defer close(s.loopDone)
	if ticker != nil {
		defer ticker.Stop()
	}
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
			s.timedFlush()
		}
	}
}

// timedFlush writes the buffer and, with fsync interval, syncs the file.
// The fsync runs without the lock: it can take tens of milliseconds, and
// Writes (which only buffer) must not wait for it, or every event arriving
// meanwhile carries that wait in its latency. A rotation or reopen during
// the fsync closes the file; dirty stays set until the fsync is known to
// cover everything written, so a rotation still syncs the file itself, and
// an error from the file it closed is then not a failure.
func (s *Sink) timedFlush() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	// A failure is counted and remembered; the next Write returns it, so
	// it is logged only when it starts.
	err := s.flushLocked(false)
	f, size := s.f, s.size
	syncNow := err == nil && s.cfg.Fsync == FsyncInterval && s.dirty && f != nil
	s.mu.Unlock()
	if !syncNow {
		return
	}
	serr := f.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case f != s.f:
		// Rotated meanwhile (rotation synced the file it closed), or
		// reopened (the old file was removed or moved away).
	case serr != nil:
		s.errSync.Inc()
		s.noteErr(fmt.Errorf("fsync %s: %w", s.cfg.Path, serr))
	case s.size == size: // nothing written during the fsync
		s.dirty = false
	}
}

// Shutdown stops the timer, writes what is buffered, syncs (unless fsync
// is never) and closes the file. If the final write fails, the buffered
// events are counted as dropped and the error is returned. A second call
// does nothing.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.loopDone != nil {
		select {
		case <-s.loopDone:
		case <-ctx.Done():
			return fmt.Errorf("file sink %s: shutdown: %w", s.id, ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.flushLocked(s.cfg.Fsync != FsyncNever)
	if err != nil {
		n := bytes.Count(s.buf, []byte{'\n'})
		s.droppedShutdown.Add(uint64(n))
		err = fmt.Errorf("file sink %s: %d buffered events lost at shutdown: %w", s.id, n, err)
	}
	s.buf = nil
	if s.f != nil {
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("file sink %s: close: %w", s.id, cerr)
		}
		s.f = nil
	}
	return err
}

var encPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooled = 1 << 20

// Write appends b's events as JSON lines.
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file sink %s: %w", s.id, err)
	}
	if b.Len() == 0 {
		return s.add(nil)
	}
	bp := encPool.Get().(*[]byte)
	enc := (*bp)[:0]
	for i := range b.Events {
		enc = pipeline.AppendJSON(enc, &b.Events[i])
		enc = append(enc, '\n')
	}
	err := s.add(enc)
	if cap(enc) <= maxPooled {
		*bp = enc
		encPool.Put(bp)
	}
	return err
}

func (s *Sink) add(enc []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return pipeline.Permanent(fmt.Errorf("file sink %s: %w", s.id, ErrClosed))
	}
	if len(enc) == 0 {
		return nil
	}
	s.buf = append(s.buf, enc...)
	if s.cfg.FlushInterval > 0 && s.cfg.Fsync != FsyncAlways && len(s.buf) < s.cfg.BufferBytes && s.lastErr == nil {
		return nil
	}
	err := s.flushLocked(s.cfg.Fsync == FsyncAlways)
	if err == nil {
		return nil
	}
	if len(s.buf) >= len(enc) {
		// None of this batch reached the file: take it back, so that the
		// caller's retry does not duplicate it.
		s.buf = s.buf[:len(s.buf)-len(enc)]
		return fmt.Errorf("file sink %s: %w", s.id, err)
	}
	// Part of the batch was written before the failure (a rotation
	// boundary): the rest stays buffered and will follow.
	return nil
}

// flushLocked writes the buffer as whole lines, rotating as needed, then
// syncs if asked. On error, s.buf holds what was not written, the file
// holds only whole lines, and the error is counted and remembered.
func (s *Sink) flushLocked(doSync bool) error {
	if len(s.buf) == 0 && !(doSync && s.dirty) {
		return nil
	}
	err := s.writeBuffered()
	if err == nil && doSync && s.dirty && s.f != nil {
		if err = s.f.Sync(); err != nil {
			s.errSync.Inc()
			err = fmt.Errorf("fsync %s: %w", s.cfg.Path, err)
		} else {
			s.dirty = false
		}
	}
	s.noteErr(err)
	return err
}

// noteErr remembers the outcome of a flush, logging when failures start
// and end.
func (s *Sink) noteErr(err error) {
	switch {
	case err != nil && s.lastErr == nil:
		s.logger.Warn("file sink failing; will reopen and retry", "sink", s.id, "path", s.cfg.Path, "error", err)
	case err == nil && s.lastErr != nil:
		s.logger.Info("file sink recovered", "sink", s.id, "path", s.cfg.Path)
	}
	s.lastErr = err
}

func (s *Sink) writeBuffered() error {
	if err := s.ensureOpen(); err != nil {
		return err
	}
	written := 0
	defer func() {
		if written > 0 {
			n := copy(s.buf, s.buf[written:])
			s.buf = s.buf[:n]
		}
	}()
	for written < len(s.buf) {
		chunk := s.buf[written:]
		if max := s.cfg.MaxBytes; max > 0 && s.size+int64(len(chunk)) > max {
			fit := 0
			if room := max - s.size; room > 0 {
				fit = bytes.LastIndexByte(chunk[:min(int64(len(chunk)), room)], '\n') + 1
			}
			if fit == 0 && s.size > 0 {
				if err := s.rotate(); err != nil {
					return err
				}
				continue
			}
			if fit == 0 { // one line longer than max_bytes: give it the empty file
				fit = bytes.IndexByte(chunk, '\n') + 1
			}
			chunk = chunk[:fit]
		}
		n, err := s.f.Write(chunk)
		if err == nil && n != len(chunk) {
			err = io.ErrShortWrite
		}
		if err != nil {
			s.errWrite.Inc()
			s.undoPartial(int64(n))
			return fmt.Errorf("write %s: %w", s.cfg.Path, err)
		}
		s.size += int64(n)
		s.dirty = true
		written += n
	}
	return nil
}

// undoPartial truncates away the n bytes of a failed write. If that fails
// too, the file is closed: reopening repairs the torn tail.
func (s *Sink) undoPartial(n int64) {
	if n > 0 {
		// Cut n bytes from the file's real end rather than back to s.size:
		// during a config reload a second instance of this sink (the new
		// graph's) may have appended whole lines to the same file meanwhile.
		if st, err := s.f.Stat(); err == nil && st.Size() >= n {
			if err := s.f.Truncate(st.Size() - n); err == nil {
				s.size = st.Size() - n
				return
			}
		}
	}
	// Nothing reached the file, or the truncate failed: open afresh next
	// time (the cause may be a vanished directory or a bad handle).
	_ = s.f.Close()
	s.f = nil
}

// ensureOpen makes s.f the file at Path: it opens it when closed, and
// reopens it when the path no longer names the open file (deleted,
// directory removed, moved away by an external rotator).
func (s *Sink) ensureOpen() error {
	if s.f != nil {
		pst, perr := os.Stat(s.cfg.Path)
		fst, ferr := s.f.Stat()
		if perr == nil && ferr == nil && os.SameFile(pst, fst) {
			return nil
		}
		s.reopens.Inc()
		s.logger.Warn("file sink: file gone or replaced, reopening", "sink", s.id, "path", s.cfg.Path)
		_ = s.f.Close()
		s.f = nil
	}
	if s.cfg.CreateDirs {
		if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o755); err != nil {
			s.errOpen.Inc()
			return fmt.Errorf("create directory: %w", err)
		}
	}
	f, err := s.open(s.cfg.Path)
	if err != nil {
		s.errOpen.Inc()
		return fmt.Errorf("open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		s.errOpen.Inc()
		return fmt.Errorf("stat %s: %w", s.cfg.Path, err)
	}
	size, err := repairTail(f, st.Size())
	if err != nil {
		_ = f.Close()
		s.errOpen.Inc()
		return fmt.Errorf("repair %s: %w", s.cfg.Path, err)
	}
	if torn := st.Size() - size; torn > 0 {
		s.tornTails.Inc()
		s.tornBytes.Add(uint64(torn))
		s.logger.Warn("file sink: removed a partial last line left by an interrupted write",
			"sink", s.id, "path", s.cfg.Path, "bytes", torn)
	}
	s.f, s.size = f, size
	return nil
}

// repairTail truncates f (of the given size) after its last '\n' and
// returns the new size. A file with no '\n' at all becomes empty.
func repairTail(f file, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	end := size
	keep := int64(0)
	for end > 0 {
		start := max(end-chunk, 0)
		p := buf[:end-start]
		if _, err := f.ReadAt(p, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
			keep = start + int64(i) + 1
			break
		}
		end = start
	}
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	return keep, nil
}

// rotate closes the full file and shifts Path → Path.1 → … → Path.N,
// removing the oldest, then opens a new Path.
func (s *Sink) rotate() error {
	if s.cfg.Fsync != FsyncNever && s.dirty {
		if err := s.f.Sync(); err != nil {
			s.errSync.Inc()
			return fmt.Errorf("fsync before rotation: %w", err)
		}
	}
	_ = s.f.Close()
	s.f, s.dirty = nil, false
	p := s.cfg.Path
	var err error
	if s.cfg.MaxFiles == 0 {
		err = os.Remove(p)
	} else {
		err = os.Remove(p + "." + strconv.Itoa(s.cfg.MaxFiles))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		for i := s.cfg.MaxFiles - 1; i >= 1 && err == nil; i-- {
			err = os.Rename(p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1))
			if errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
		if err == nil {
			err = os.Rename(p, p+".1")
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.errRotate.Inc()
		return fmt.Errorf("rotate: %w", err)
	}
	s.rotations.Inc()
	return s.ensureOpen()
}
