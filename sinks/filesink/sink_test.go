package filesink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/sinks/sinktest"
)

func settings(m *pipeline.Metrics) pipeline.Settings {
	return pipeline.Settings{ID: pipeline.MustComponentID("file/t"), Logger: hclog.NewNullLogger(), Metrics: m}
}

func newSink(t testing.TB, cfg *Config) (*Sink, *pipeline.Metrics) {
	t.Helper()
	m := pipeline.NewMetrics()
	s, err := NewFactory().CreateSink(context.Background(), settings(m), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Sink), m
}

func metric(m *pipeline.Metrics, name string, kv ...string) float64 {
	v, _ := m.Value(name, pipeline.L(append([]string{"sink", "file/t"}, kv...)...)...)
	return v
}

// files returns the sink's files oldest first: path.N … path.1, path.
func files(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for i := maxKept; i >= 1; i-- {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return out
}

// readEvents parses every file of the sink, oldest first, failing on any
// line that is not a whole event.
func readEvents(t *testing.T, path string) []pipeline.Event {
	t.Helper()
	var all []pipeline.Event
	for _, p := range files(t, path) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatalf("%s ends in a partial line", p)
		}
		events, err := pipeline.ReadEventsJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		all = append(all, events...)
	}
	return all
}

func TestConformance(t *testing.T) {
	variants := map[string]func(c *Config){
		"buffered":      func(c *Config) { c.FlushInterval = time.Hour },
		"write_through": func(c *Config) { c.FlushInterval, c.Fsync = 0, FsyncNever },
		"fsync_always":  func(c *Config) { c.Fsync = FsyncAlways },
		"rotating":      func(c *Config) { c.MaxBytes, c.MaxFiles, c.BufferBytes = 4096, maxKept, 1024 },
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Harness {
				cfg := DefaultConfig()
				cfg.Path = filepath.Join(t.TempDir(), "sub", "events.jsonl")
				change(cfg)
				s, _ := newSink(t, cfg)
				return sinktest.Harness{Sink: s, Delivered: func(t *testing.T) []pipeline.Event { return readEvents(t, cfg.Path) }}
			})
		})
	}
}

func TestRotation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	cfg.MaxBytes, cfg.MaxFiles, cfg.FlushInterval, cfg.Fsync = 2000, 2, 0, FsyncNever
	s, m := newSink(t, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 40 {
		b := sinktest.Batch(fmt.Sprintf("r%d", i), 3)
		for _, e := range b.Events {
			names = append(names, e.Name)
		}
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs := files(t, cfg.Path)
	if len(fs) != 3 || fs[0] != cfg.Path+".2" {
		t.Fatalf("files = %v, want path.2, path.1, path", fs)
	}
	for _, p := range fs {
		st, _ := os.Stat(p)
		if st.Size() > cfg.MaxBytes || st.Size() == 0 {
			t.Errorf("%s has %d bytes, want (0, %d]", p, st.Size(), cfg.MaxBytes)
		}
	}
	// What is kept is the newest events, in order.
	got := readEvents(t, cfg.Path)
	tail := names[len(names)-len(got):]
	for i := range got {
		if got[i].Name != tail[i] {
			t.Fatalf("kept event %d is %s, want %s", i, got[i].Name, tail[i])
		}
	}
	if r := metric(m, "snakepipe_sink_file_rotations_total"); r < 3 {
		t.Errorf("rotations = %v", r)
	}
}

func TestRotationKeepsNoneAndOversizedLine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	cfg.MaxBytes, cfg.MaxFiles, cfg.FlushInterval, cfg.Fsync = 100, 0, 0, FsyncNever
	s, _ := newSink(t, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := sinktest.Batch("big", 2) // each line is several hundred bytes
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, cfg.Path)
	if len(got) != 1 || got[0].Name != b.Events[1].Name {
		t.Fatalf("got %d events (%v); want only the last oversized line", len(got), got)
	}
	if fs := files(t, cfg.Path); len(fs) != 1 {
		t.Fatalf("files = %v, want only the live file", fs)
	}
}

func TestRepairsTornTailOnOpen(t *testing.T) {
	good := string(pipeline.AppendJSON(nil, &sinktest.Batch("ok", 1).Events[0])) + "\n"
	long := strings.Repeat("x", 200<<10) // longer than one backward-scan chunk
	tests := []struct {
		name, content, keep string
	}{
		{"clean", good + good, good + good},
		{"partial tail", good + `{"name":"half`, good},
		{"long partial tail", good + long, good},
		{"no newline at all", `{"name":"half`, ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
			cfg.FlushInterval, cfg.Fsync = 0, FsyncNever
			if err := os.WriteFile(cfg.Path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			s, m := newSink(t, cfg)
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			b := sinktest.Batch("after", 1)
			if err := s.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(cfg.Path)
			want := tt.keep + string(pipeline.AppendJSON(nil, &b.Events[0])) + "\n"
			if string(data) != want {
				t.Fatalf("file after repair and write:\n%.300q\nwant\n%.300q", data, want)
			}
			torn := float64(len(tt.content) - len(tt.keep))
			if got := metric(m, "snakepipe_sink_file_torn_bytes_total"); got != torn {
				t.Errorf("torn bytes = %v, want %v", got, torn)
			}
			wantTails := 0.0
			if torn > 0 {
				wantTails = 1
			}
			if got := metric(m, "snakepipe_sink_file_torn_tails_total"); got != wantTails {
				t.Errorf("torn tails = %v, want %v", got, wantTails)
			}
		})
	}
}

func FuzzRepairTail(f *testing.F) {
	for _, s := range []string{"", "\n", "a\nb", "abc", "a\n\n", "{\"x\":1}\n{\"y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		fh, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		size, err := repairTail(fh, int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		want := int64(bytes.LastIndexByte(content, '\n') + 1)
		if size != want {
			t.Fatalf("size %d, want %d", size, want)
		}
		data, _ := os.ReadFile(path)
		if !bytes.Equal(data, content[:want]) {
			t.Fatalf("content %q, want %q", data, content[:want])
		}
	})
}

func TestDirectoryRemovedIsRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(dir, "events.jsonl")
	cfg.FlushInterval, cfg.Fsync = 0, FsyncNever
	s, m := newSink(t, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), sinktest.Batch("before", 2)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	after := sinktest.Batch("after", 2)
	if err := s.Write(context.Background(), after); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, cfg.Path)
	if len(got) != 2 || got[0].Name != after.Events[0].Name {
		t.Fatalf("after removal the file holds %v, want the 2 new events", got)
	}
	if r := metric(m, "snakepipe_sink_file_reopens_total"); r != 1 {
		t.Errorf("reopens = %v, want 1", r)
	}
}

func TestDirectoryRemovedWithoutCreateDirs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(dir, "events.jsonl")
	cfg.FlushInterval, cfg.Fsync, cfg.CreateDirs = 0, FsyncNever, false
	s, m := newSink(t, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := s.Write(context.Background(), sinktest.Batch("lost", 2))
	if err == nil || pipeline.IsPermanent(err) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Write with the directory gone = %v, want a transient not-exist error", err)
	}
	if e := metric(m, "snakepipe_sink_file_errors_total", "op", "open"); e != 1 {
		t.Errorf("open errors = %v, want 1", e)
	}
	// The operator recreates the directory: the next Write recovers.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	back := sinktest.Batch("back", 2)
	if err := s.Write(context.Background(), back); err != nil {
		t.Fatalf("Write after recovery: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, cfg.Path)
	if len(got) != 2 || got[0].Name != back.Events[0].Name {
		t.Fatalf("file holds %v, want only the batch written after recovery", got)
	}
}

func TestStartFailsWhenPathUnusable(t *testing.T) {
	cfg := DefaultConfig()
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Path = filepath.Join(blocker, "events.jsonl")
	s, _ := newSink(t, cfg)
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded with a file where the directory should be")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown after failed Start: %v", err)
	}
}

// faultyFile wraps a real file like a filling disk: it accepts at most
// budget more bytes (a longer Write is cut short and fails with ENOSPC).
// budget < 0 means unlimited.
type faultyFile struct {
	*os.File
	mu     *sync.Mutex
	budget *int
	syncs  *int
	// truncFails is how many Truncate calls fail (EIO) before they work.
	truncFails *int
	// syncGate, when set, holds every Sync until it is closed (a slow
	// disk); syncing is told when a Sync starts waiting.
	syncGate *chan struct{}
	syncing  *chan struct{}
}

func (f faultyFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *f.budget < 0 || len(p) <= *f.budget {
		if *f.budget >= 0 {
			*f.budget -= len(p)
		}
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:*f.budget])
	*f.budget = 0
	return n, syscall.ENOSPC
}

func (f faultyFile) Sync() error {
	f.mu.Lock()
	*f.syncs++
	gate, syncing := *f.syncGate, *f.syncing
	f.mu.Unlock()
	if gate != nil {
		syncing <- struct{}{}
		<-gate
	}
	return f.File.Sync()
}

func (f faultyFile) Truncate(n int64) error {
	f.mu.Lock()
	fail := *f.truncFails > 0
	if fail {
		*f.truncFails--
	}
	f.mu.Unlock()
	if fail {
		return syscall.EIO
	}
	return f.File.Truncate(n)
}

type faults struct {
	mu         sync.Mutex
	budget     int
	syncs      int
	truncFails int
	syncGate   chan struct{}
	syncing    chan struct{}
}

func (fl *faults) set(budget int) {
	fl.mu.Lock()
	fl.budget = budget
	fl.mu.Unlock()
}

func (fl *faults) syncCount() int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.syncs
}

func inject(s *Sink, fl *faults) {
	s.open = func(path string) (file, error) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		return faultyFile{File: f, mu: &fl.mu, budget: &fl.budget, syncs: &fl.syncs, truncFails: &fl.truncFails,
			syncGate: &fl.syncGate, syncing: &fl.syncing}, nil
	}
}

func TestDiskFullInjected(t *testing.T) {
	for _, truncFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("truncate_fails=%v", truncFails), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
			cfg.FlushInterval, cfg.Fsync = 0, FsyncNever
			s, m := newSink(t, cfg)
			fl := &faults{budget: -1}
			if truncFails {
				fl.truncFails = 1
			}
			inject(s, fl)
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			first, lost, third := sinktest.Batch("first", 3), sinktest.Batch("lost", 3), sinktest.Batch("third", 3)
			if err := s.Write(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			fl.set(100) // room for part of one line only
			err := s.Write(context.Background(), lost)
			if !errors.Is(err, syscall.ENOSPC) || pipeline.IsPermanent(err) {
				t.Fatalf("Write on a full disk = %v, want transient ENOSPC", err)
			}
			if e := metric(m, "snakepipe_sink_file_errors_total", "op", "write"); e != 1 {
				t.Errorf("write errors = %v, want 1", e)
			}
			// Never a torn line, even before the sink touches the file again
			// (when truncate fails, the file is repaired on reopen).
			if !truncFails {
				data, _ := os.ReadFile(cfg.Path)
				if data[len(data)-1] != '\n' {
					t.Fatalf("file ends in a partial line after a short write")
				}
			}
			fl.set(-1) // space freed
			if err := s.Write(context.Background(), third); err != nil {
				t.Fatalf("Write after space was freed: %v", err)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if truncFails {
				if n := metric(m, "snakepipe_sink_file_torn_tails_total"); n != 1 {
					t.Errorf("torn tails repaired on reopen = %v, want 1", n)
				}
			}
			got := readEvents(t, cfg.Path)
			want := append(append([]pipeline.Event(nil), first.Events...), third.Events...)
			if len(got) != len(want) {
				t.Fatalf("file holds %d events, want %d (first + third; the failed batch is the caller's to retry)", len(got), len(want))
			}
			for i := range want {
				if !sinktest.Equal(&want[i], &got[i]) {
					t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestBufferedFailureKeepsEarlierLines(t *testing.T) {
	// Lines buffered by earlier successful Writes stay buffered through a
	// failed flush and reach the file once it works again.
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	cfg.FlushInterval, cfg.Fsync = time.Hour, FsyncInterval
	s, m := newSink(t, cfg)
	fl := &faults{budget: -1}
	inject(s, fl)
	tick := make(chan time.Time)
	if err := s.start(context.Background(), tick); err != nil {
		t.Fatal(err)
	}
	early := sinktest.Batch("early", 2)
	if err := s.Write(context.Background(), early); err != nil {
		t.Fatal(err)
	}
	fl.set(0)
	tick <- time.Time{} // the timed flush fails
	tick <- time.Time{} // (returns once the first flush is done)
	if e := metric(m, "snakepipe_sink_file_errors_total", "op", "write"); e < 1 {
		t.Fatalf("write errors = %v after a failing timed flush", e)
	}
	// Now a Write tries to flush at once and reports the failure.
	if err := s.Write(context.Background(), sinktest.Batch("refused", 1)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write while failing = %v, want ENOSPC", err)
	}
	fl.set(-1)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, cfg.Path)
	if len(got) != 2 || got[0].Name != early.Events[0].Name {
		t.Fatalf("file holds %v, want the 2 early events", got)
	}
}

func TestShutdownFlushFailureCountsDrops(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	cfg.FlushInterval = time.Hour
	s, m := newSink(t, cfg)
	fl := &faults{budget: -1}
	inject(s, fl)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), sinktest.Batch("x", 4)); err != nil {
		t.Fatal(err)
	}
	fl.set(0)
	if err := s.Shutdown(context.Background()); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Shutdown = %v, want ENOSPC", err)
	}
	if d, _ := m.Value("snakepipe_sink_events_dropped_total", pipeline.L("sink", "file/t", "reason", "shutdown_flush_failed")...); d != 4 {
		t.Fatalf("dropped = %v, want 4", d)
	}
}

func TestTimedFlushAndFsyncPolicy(t *testing.T) {
	tests := []struct {
		fsync Fsync
		// syncs after: one Write, one tick, Shutdown
		afterWrite, afterTick, afterShutdown int
	}{
		{FsyncNever, 0, 0, 0},
		{FsyncInterval, 0, 1, 1}, // nothing new to sync at shutdown
		{FsyncAlways, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.fsync), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
			cfg.FlushInterval, cfg.Fsync = time.Hour, tt.fsync
			s, _ := newSink(t, cfg)
			fl := &faults{budget: -1}
			inject(s, fl)
			tick := make(chan time.Time)
			if err := s.start(context.Background(), tick); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), sinktest.Batch("a", 2)); err != nil {
				t.Fatal(err)
			}
			if n := fl.syncCount(); n != tt.afterWrite {
				t.Errorf("fsyncs after Write = %d, want %d", n, tt.afterWrite)
			}
			onDisk := len(readEvents(t, cfg.Path))
			if wantOnDisk := map[bool]int{true: 2, false: 0}[tt.fsync == FsyncAlways]; onDisk != wantOnDisk {
				t.Errorf("%d events on disk before the timer, want %d", onDisk, wantOnDisk)
			}
			tick <- time.Time{}
			tick <- time.Time{}
			if n := len(readEvents(t, cfg.Path)); n != 2 {
				t.Errorf("%d events on disk after the timer, want 2", n)
			}
			if n := fl.syncCount(); n != tt.afterTick {
				t.Errorf("fsyncs after tick = %d, want %d", n, tt.afterTick)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := fl.syncCount(); n != tt.afterShutdown {
				t.Errorf("fsyncs after Shutdown = %d, want %d", n, tt.afterShutdown)
			}
		})
	}
}

// TestWriteDoesNotWaitForTimedFsync: with fsync interval, a Write arriving
// while the timed fsync runs buffers its batch without waiting for the
// disk; the next flush writes it and the shutdown syncs it.
func TestWriteDoesNotWaitForTimedFsync(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	cfg.FlushInterval, cfg.Fsync = time.Hour, FsyncInterval
	s, _ := newSink(t, cfg)
	fl := &faults{budget: -1, syncGate: make(chan struct{}), syncing: make(chan struct{}, 1)}
	inject(s, fl)
	tick := make(chan time.Time)
	if err := s.start(context.Background(), tick); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), sinktest.Batch("a", 2)); err != nil {
		t.Fatal(err)
	}
	tick <- time.Time{}
	<-fl.syncing // the timed flush wrote "a" and its fsync is now stuck on the disk
	wrote := make(chan error, 1)
	go func() { wrote <- s.Write(context.Background(), sinktest.Batch("b", 3)) }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // only keeps a broken sink from hanging the test
		close(fl.syncGate)
		t.Fatal("Write waited for the timed fsync")
	}
	fl.mu.Lock()
	close(fl.syncGate)
	fl.syncGate = nil
	fl.mu.Unlock()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(readEvents(t, cfg.Path)); n != 5 {
		t.Errorf("%d events in the file, want 5", n)
	}
	if n := fl.syncCount(); n != 2 {
		t.Errorf("%d fsyncs, want 2 (the timed one, and at shutdown for what came during it)", n)
	}
}

func TestBufferBytesFlushesEarly(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	cfg.FlushInterval, cfg.BufferBytes = time.Hour, 1000
	s, _ := newSink(t, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := s.Write(context.Background(), sinktest.Batch("a", 1)); err != nil {
		t.Fatal(err)
	}
	if n := len(readEvents(t, cfg.Path)); n != 0 {
		t.Fatalf("%d events written before the buffer filled", n)
	}
	if err := s.Write(context.Background(), sinktest.Batch("b", 5)); err != nil {
		t.Fatal(err)
	}
	if n := len(readEvents(t, cfg.Path)); n != 6 {
		t.Fatalf("%d events written after the buffer filled, want 6", n)
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name   string
		events int
		change func(c *Config)
	}{
		{"buffered/batch=100", 100, func(c *Config) { c.Fsync = FsyncNever }},
		{"buffered/batch=1000", 1000, func(c *Config) { c.Fsync = FsyncNever }},
		{"buffered_fsync_interval/batch=1000", 1000, func(c *Config) {}},
		{"write_through/batch=100", 100, func(c *Config) { c.FlushInterval, c.Fsync = 0, FsyncNever }},
		{"write_through/batch=1000", 1000, func(c *Config) { c.FlushInterval, c.Fsync = 0, FsyncNever }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Path = filepath.Join(b.TempDir(), "events.jsonl")
			cfg.MaxBytes = 64 << 20
			bc.change(cfg)
			s, _ := newSink(b, cfg)
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			batch := benchBatch(bc.events)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch.Len()), "ns/event")
			if err := s.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// benchBatch is a batch of typical python.call.stop events (309 bytes as
// a JSON line).
func benchBatch(n int) *pipeline.Batch {
	origin := &pipeline.Origin{WorkerID: "worker-17", Pool: "inference", Hostname: "gpu-node-3", PID: 31337}
	b := &pipeline.Batch{Events: make([]pipeline.Event, n)}
	for i := range b.Events {
		b.Events[i] = pipeline.Event{
			Name: "python.call.stop", TimestampNs: 1732500000000000000 + int64(i), ReceivedNs: 1732500000000100000 + int64(i),
			CorrelationID: "req-7f3a9c", SampleRate: 1,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200 + int64(i))}, {Key: "ratio", Value: pipeline.FloatValue(0.5)}},
			Metadata:     []pipeline.Label{{Key: "tool", Value: "search"}, {Key: "model", Value: "m1"}},
			Origin:       origin,
		}
	}
	return b
}

func TestNilBatch(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	s, _ := newSink(t, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), nil); err != nil {
		t.Fatalf("Write(nil) = %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), nil); !pipeline.IsPermanent(err) {
		t.Fatalf("Write(nil) after Shutdown = %v, want permanent", err)
	}
}

// During a config reload two instances of a file sink may append to the
// same file (the old graph drains while the new one writes). A failed
// write of one must cut only its own partial line, not the whole lines the
// other appended since its last write.
func TestShortWriteKeepsOtherWritersLines(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "events.jsonl")
	cfg.FlushInterval, cfg.Fsync = 0, FsyncNever
	old, _ := newSink(t, cfg)
	fl := &faults{budget: -1}
	inject(old, fl)
	next, _ := newSink(t, cfg)
	for _, s := range []*Sink{old, next} {
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := old.Write(ctx, sinktest.Batch("old-1", 2)); err != nil {
		t.Fatal(err)
	}
	if err := next.Write(ctx, sinktest.Batch("next-1", 3)); err != nil {
		t.Fatal(err)
	}
	fl.set(50) // the old instance's next write is cut short
	if err := old.Write(ctx, sinktest.Batch("old-lost", 2)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("short write: %v, want ENOSPC", err)
	}
	fl.set(-1)
	for _, s := range []*Sink{old, next} {
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[string]int{}
	for _, e := range readEvents(t, cfg.Path) { // fails on a partial line
		counts[strings.Split(e.Name, ".")[1]]++ // sinktest.<batch>.e<i>
	}
	if counts["old-1"] != 2 || counts["next-1"] != 3 {
		t.Errorf("events in the file by batch: %v, want old-1 ×2 and next-1 ×3", counts)
	}
}
