package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestRuntimeConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  RuntimeConfig
		errs []string
	}{
		{name: "defaults", cfg: DefaultRuntimeConfig()},
		{name: "collector off with a limit", cfg: RuntimeConfig{GCPercent: -1, MemoryLimitBytes: 1 << 30}},
		{name: "no limit", cfg: RuntimeConfig{GCPercent: 100}},
		{name: "zero percent", cfg: RuntimeConfig{GCPercent: 0}, errs: []string{"gc_percent: 0 must be -1"}},
		{name: "below -1", cfg: RuntimeConfig{GCPercent: -5}, errs: []string{"gc_percent: -5 must be -1"}},
		{name: "negative limit", cfg: RuntimeConfig{GCPercent: 100, MemoryLimitBytes: -1}, errs: []string{"memory_limit_bytes: -1 must be >= 0"}},
		{name: "off without a limit", cfg: RuntimeConfig{GCPercent: -1}, errs: []string{"needs a memory_limit_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.errs)
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// TestApplyGoRuntime: the runtime section sets the collector, except where
// GOGC / GOMEMLIMIT in the environment already did.
func TestApplyGoRuntime(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	current := func() (int, int64) {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1) // a negative limit only reads it
	}
	log := hclog.NewNullLogger()

	applyGoRuntime(RuntimeConfig{GCPercent: 400, MemoryLimitBytes: 256 << 20}, nil, log)
	if p, l := current(); p != 400 || l != 256<<20 {
		t.Errorf("after apply: GOGC %d, limit %d; want 400, %d", p, l, 256<<20)
	}
	applyGoRuntime(RuntimeConfig{GCPercent: 200}, nil, log)
	if p, l := current(); p != 200 || l != math.MaxInt64 {
		t.Errorf("after apply without a limit: GOGC %d, limit %d; want 200, no limit", p, l)
	}
	applyGoRuntime(RuntimeConfig{GCPercent: 300}, []string{"GOGC="}, log) // empty: unset, as Go reads it
	if p, _ := current(); p != 300 {
		t.Errorf("with an empty GOGC: GOGC %d, want the config's 300", p)
	}
	applyGoRuntime(RuntimeConfig{GCPercent: 200}, nil, log)
	applyGoRuntime(RuntimeConfig{GCPercent: 800, MemoryLimitBytes: 1 << 30}, []string{"GOGC=150", "GOMEMLIMIT=2GiB"}, log)
	if p, l := current(); p != 200 || l != math.MaxInt64 {
		t.Errorf("with GOGC and GOMEMLIMIT in the environment: GOGC %d, limit %d; want them untouched (200, no limit)", p, l)
	}
}
