package main

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// RuntimeConfig is the `runtime` section: how the Go runtime's garbage
// collector is tuned for this process.
//
// The defaults trade memory for CPU where it was measured to pay: at full
// speed the ingest path allocates one batch of events per frame, and with
// Go's default GOGC=100 the collector ran often enough to cost about 10 %
// of the host's CPU per event more than GOGC=400 with a soft memory limit,
// at the same resident memory (BENCHMARKS.md, "GC settings"). The soft
// limit keeps the larger GOGC from growing the heap to five times the live
// data: past it, the collector runs more often instead.
type RuntimeConfig struct {
	// GCPercent is Go's GOGC: the heap may grow this many percent over the
	// live data before a collection. -1 turns the collector off (only
	// sensible with MemoryLimitBytes).
	GCPercent int `koanf:"gc_percent"`
	// MemoryLimitBytes is Go's GOMEMLIMIT, a soft limit on the memory the Go
	// runtime uses (0: none).
	MemoryLimitBytes int64 `koanf:"memory_limit_bytes"`
}

// DefaultRuntimeConfig returns the defaults documented in docs/config.md.
func DefaultRuntimeConfig() RuntimeConfig {
	return RuntimeConfig{GCPercent: 400, MemoryLimitBytes: 512 << 20}
}

// Validate reports every problem, each naming its key under `runtime.`.
func (c RuntimeConfig) Validate() error {
	var errs []error
	if c.GCPercent < -1 || c.GCPercent == 0 {
		errs = append(errs, fmt.Errorf("gc_percent: %d must be -1 (collector off) or > 0", c.GCPercent))
	}
	if c.MemoryLimitBytes < 0 {
		errs = append(errs, fmt.Errorf("memory_limit_bytes: %d must be >= 0 (0 = no limit)", c.MemoryLimitBytes))
	}
	if c.GCPercent == -1 && c.MemoryLimitBytes == 0 {
		errs = append(errs, errors.New("gc_percent: -1 (collector off) needs a memory_limit_bytes, or memory grows without bound"))
	}
	return errors.Join(errs...)
}

// applyGoRuntime sets the collector from c, except where the environment
// already set GOGC or GOMEMLIMIT: the Go runtime read those at start, and
// an operator who set them means them.
func applyGoRuntime(c RuntimeConfig, environ []string, log hclog.Logger) {
	env := func(name string) bool { // set and not empty, as the Go runtime reads it
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, name+"="); ok && v != "" {
				return true
			}
		}
		return false
	}
	if env("GOGC") {
		log.Debug("GOGC is set in the environment; runtime.gc_percent is not applied")
	} else {
		debug.SetGCPercent(c.GCPercent)
	}
	if env("GOMEMLIMIT") {
		log.Debug("GOMEMLIMIT is set in the environment; runtime.memory_limit_bytes is not applied")
	} else if c.MemoryLimitBytes > 0 {
		debug.SetMemoryLimit(c.MemoryLimitBytes)
	} else {
		debug.SetMemoryLimit(math.MaxInt64) // Go's "no limit"
	}
}
