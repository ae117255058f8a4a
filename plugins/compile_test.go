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

// Closing the host while a compile given up on still runs waits for it
// (wazero crashes if its runtime is closed under a compile), and gives up
// cleanly when Close's context ends first.
func TestCloseWaitsForAbandonedCompile(t *testing.T) {
	h, err := NewHost(func() HostConfig { c := DefaultHostConfig(); c.Cache, c.Watch = false, false; return c }(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.CompileTimeout = 20 * time.Millisecond
	release := make(chan struct{})
	h.compileFn = func(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
		<-release
		return r.CompileModule(ctx, bin)
	}
	if _, err := h.Inspect(context.Background(), td("filter.wasm")); err != nil {
		t.Fatal(err) // the timeout is a problem in Info, not an error
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a compile running: %v, want the context's deadline", err)
	}
	if _, err := h.Inspect(context.Background(), td("filter.wasm")); !errors.Is(err, ErrHostClosed) {
		t.Errorf("Inspect after Close: %v, want ErrHostClosed", err)
	}
	close(release) // the compile ends into a runtime that is still open
	h2, err := NewHost(func() HostConfig { c := DefaultHostConfig(); c.Cache, c.Watch = false, false; return c }(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h2.cfg.CompileTimeout = 20 * time.Millisecond
	release2 := make(chan struct{})
	h2.compileFn = func(ctx context.Context, r wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
		<-release2
		return r.CompileModule(ctx, bin)
	}
	if _, err := h2.Inspect(context.Background(), td("filter.wasm")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- h2.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a compile still ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release2)
	if err := <-closed; err != nil {
		t.Fatalf("Close after the compile ended: %v", err)
	}
}
