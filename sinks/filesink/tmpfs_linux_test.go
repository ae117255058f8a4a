package filesink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/sinks/sinktest"
)

// TestDiskFullTmpfs fills a real 64 KiB tmpfs. It needs root (or
// CAP_SYS_ADMIN) to mount and is skipped otherwise.
func TestDiskFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root / CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 32<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(dir, "events.jsonl")
	cfg.FlushInterval, cfg.Fsync, cfg.MaxBytes = 0, FsyncNever, 0
	s, m := newSink(t, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want []pipeline.Event
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		b := sinktest.Batch(fmt.Sprintf("fill%d", i), 5)
		if werr = s.Write(context.Background(), b); werr == nil {
			want = append(want, b.Events...)
		}
	}
	if !errors.Is(werr, syscall.ENOSPC) || pipeline.IsPermanent(werr) {
		t.Fatalf("filling the disk: last Write = %v, want a transient ENOSPC", werr)
	}
	if e := metric(m, "snakepipe_sink_file_errors_total", "op", "write"); e < 1 {
		t.Errorf("write errors = %v", e)
	}
	// On the full disk the file holds exactly the accepted batches, as
	// whole lines (readEvents fails on a partial line).
	if got := readEvents(t, cfg.Path); len(got) != len(want) {
		t.Fatalf("full disk: file holds %d events, want %d", len(got), len(want))
	}
	// Free space: the sink recovers on the next Write.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	after := sinktest.Batch("after", 5)
	if err := s.Write(context.Background(), after); err != nil {
		t.Fatalf("Write after freeing space: %v", err)
	}
	want = append(want, after.Events...)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, cfg.Path)
	if len(got) != len(want) {
		t.Fatalf("file holds %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !sinktest.Equal(&want[i], &got[i]) {
			t.Fatalf("event %d = %s, want %s", i, got[i].Name, want[i].Name)
		}
	}
}
