package plugins

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// A compile that does not finish within plugins.compile_timeout refuses
// the load (with a message naming the setting) instead of hanging it; the
// abandoned compile ends in the background, and a later load works.
func TestCompileTimeout(t *testing.T) {
	h := newTestHost(t)
	h.cfg.CompileTimeout = 20 * time.Millisecond
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h.compileFn = func(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release // a compile that takes "forever"
		return r.CompileModule(ctx, bin)
	}
	_, err := newTestStage(t, h, cfgFor(td("filter.wasm")), stageOpts{})
	if !errors.Is(err, ErrCompileTimeout) || !strings.Contains(err.Error(), "plugins.compile_timeout (20ms)") {
		t.Fatalf("load: %v, want a compile timeout", err)
	}
	<-started
	close(release) // the abandoned compile finishes and is closed
	h.cfg.CompileTimeout = time.Minute

	info, err := h.Inspect(context.Background(), td("filter.wasm"))
	if err != nil || len(info.Problems) != 0 {
		t.Fatalf("inspect after the timeout: %v %q", err, info.Problems)
	}
	s := mustStage(t, h, cfgFor(td("filter.wasm")), stageOpts{})
	if v, ok := s.Current(); !ok || v.Seq != 1 {
		t.Fatalf("stage after the timeout: %+v", v)
	}

	cfg := DefaultHostConfig()
	cfg.CompileTimeout = time.Millisecond
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "plugins.compile_timeout") {
		t.Errorf("Validate: %v", err)
	}
}
