package filesink

import (
	"errors"
	"fmt"
	"time"
)

// Fsync says when the sink asks the OS to put written data on disk.
type Fsync string

const (
	// FsyncNever leaves it to the OS (data survives a snakepipe crash but
	// not necessarily a power loss).
	FsyncNever Fsync = "never"
	// FsyncInterval syncs after each timed flush (every flush_interval, if
	// anything was written), before rotating, and at shutdown.
	FsyncInterval Fsync = "interval"
	// FsyncAlways writes and syncs within every Write call: when Write
	// returns nil the batch is on disk. Slowest.
	FsyncAlways Fsync = "always"
)

// Config is the file sink's configuration (sinks: {"file/main": {...}}).
type Config struct {
	// Path of the live file. Required. Rotated files are Path.1 (newest)
	// … Path.N (oldest).
	Path string `koanf:"path"`
	// MaxBytes rotates the file before a write would take it past this
	// size (whole lines only; a single longer line gets a file of its
	// own). 0 never rotates. Default 100 MiB.
	MaxBytes int64 `koanf:"max_bytes"`
	// MaxFiles is how many rotated files are kept; older ones are removed.
	// 0 keeps none (rotation truncates). Default 5.
	MaxFiles int `koanf:"max_files"`
	// FlushInterval is how often buffered lines are written to the file.
	// 0 writes every batch within its Write call. Default 1s.
	FlushInterval time.Duration `koanf:"flush_interval"`
	// BufferBytes flushes early when this much is buffered. Default 256 KiB.
	BufferBytes int `koanf:"buffer_bytes"`
	// Fsync is never, interval (default) or always.
	Fsync Fsync `koanf:"fsync"`
	// CreateDirs creates the file's directory (again, if it was removed)
	// when opening. Default true.
	CreateDirs bool `koanf:"create_dirs"`
}

// DefaultConfig returns the defaults; Path must still be set.
func DefaultConfig() *Config {
	return &Config{
		MaxBytes:      100 << 20,
		MaxFiles:      5,
		FlushInterval: time.Second,
		BufferBytes:   256 << 10,
		Fsync:         FsyncInterval,
		CreateDirs:    true,
	}
}

// maxKept bounds max_files so a typo cannot ask for a million renames per
// rotation.
const maxKept = 1000

// Validate reports every problem with its key.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: required"))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes: %d must be >= 0 (0 never rotates)", c.MaxBytes))
	}
	if c.MaxFiles < 0 || c.MaxFiles > maxKept {
		errs = append(errs, fmt.Errorf("max_files: %d is not in [0, %d]", c.MaxFiles, maxKept))
	}
	if c.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("flush_interval: %v must be >= 0", c.FlushInterval))
	}
	if c.BufferBytes <= 0 {
		errs = append(errs, fmt.Errorf("buffer_bytes: %d must be > 0", c.BufferBytes))
	}
	switch c.Fsync {
	case FsyncNever, FsyncAlways:
	case FsyncInterval:
		if c.FlushInterval == 0 {
			errs = append(errs, errors.New("fsync: interval needs flush_interval > 0 (use always or never with flush_interval 0)"))
		}
	default:
		errs = append(errs, fmt.Errorf("fsync: %q is not one of never, interval, always", string(c.Fsync)))
	}
	return errors.Join(errs...)
}
