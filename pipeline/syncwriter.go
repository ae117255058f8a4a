package pipeline

import (
	"io"
	"sync"
)

// SyncWriter serializes writes to one underlying writer. The logger and the
// stderr sink share one SyncWriter around os.Stderr: each Write carries whole
// lines, so log lines and event lines never interleave mid-line.
type SyncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewSyncWriter wraps w.
func NewSyncWriter(w io.Writer) *SyncWriter { return &SyncWriter{w: w} }

// Write writes p in one call under the lock.
func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
