package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// signalWriter is a log output that closes seen when a line containing
// want is written (it never blocks: hclog holds its lock while writing).
type signalWriter struct {
	mu   sync.Mutex
	want string
	seen chan struct{}
	buf  bytes.Buffer
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.seen != nil && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}

// hookComponent (a pipeline.Component) runs fn when it is shut down;
// Shutdown holds s.mu then.
type hookComponent struct{ fn func() }

func (h hookComponent) Start(context.Context) error    { return nil }
func (h hookComponent) Shutdown(context.Context) error { h.fn(); return nil }

// startLoggedReloadService starts a service on reloadConfig with the admin
// API and run's kind of ConfigLoader, and a client of its admin API.
// entered is closed when the service logs "reloading config" (a
// ReloadConfig handler got in).
func startLoggedReloadService(t *testing.T) (svc *Service, client pb.AdminClient, entered <-chan struct{}, path string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "snakepipe.yaml")
	yaml := strings.Replace(reloadConfig(dir, "v1", false, ""), "admin:\n  listen: \"\"", "admin:\n  listen: 127.0.0.1:0", 1)
	writeFile(t, path, strings.Replace(yaml, "log: {level: error}", "log: {level: info}", 1))
	cfg, err := loadFile(path)()
	if err != nil {
		t.Fatal(err)
	}
	logw := &signalWriter{want: "reloading config", seen: make(chan struct{})}
	entered = logw.seen
	svc, err = NewService(context.Background(), cfg, ServiceOptions{
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: logw}), ConfigLoader: loadFile(path)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(svc.AdminAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return svc, pb.NewAdminClient(conn), entered, path
}

// TestShutdownWithAdminReloadWaiting: a ReloadConfig RPC that reached its
// handler while Shutdown holds s.mu waits for s.mu; Shutdown must still
// stop the admin API and finish. Before the fix the admin server's
// shutdown waited for that handler, which waited for Shutdown: a deadlock
// until ctx ended, and ingest and the graph then drained with an expired
// ctx.
func TestShutdownWithAdminReloadWaiting(t *testing.T) {
	svc, client, entered, _ := startLoggedReloadService(t)
	if _, err := client.Stats(context.Background(), &pb.StatsRequest{}); err != nil { // connected
		t.Fatal(err)
	}
	rpcDone := make(chan error, 1)
	// Shut down last-started first: this hook runs with s.mu held. It sends
	// ReloadConfig and returns once the handler is in (it logs, then waits
	// for s.mu), or once the call failed (the admin API was stopped
	// before s.mu was taken).
	svc.started = append(svc.started, hookComponent{fn: func() {
		go func() {
			_, err := client.ReloadConfig(context.Background(), &pb.ReloadConfigRequest{})
			rpcDone <- err
		}()
		select {
		case <-entered:
		case err := <-rpcDone:
			rpcDone <- err
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a ReloadConfig call waiting: %v", err)
	}
	if err := <-rpcDone; err == nil {
		t.Error("ReloadConfig during shutdown succeeded")
	}
}

// TestShutdownDuringQueuedAdminReload: a ReloadConfig call queued behind a
// reload in progress (SIGHUP's) when Shutdown begins: Shutdown waits for
// both and finishes within ctx, and nothing is left to an expired ctx.
func TestShutdownDuringQueuedAdminReload(t *testing.T) {
	svc, client, entered, path := startLoggedReloadService(t)

	inLoad, release := make(chan struct{}), make(chan struct{})
	hupDone := make(chan error, 1)
	go func() {
		hupDone <- svc.Reload(context.Background(), func() (*Config, error) {
			close(inLoad)
			<-release
			return loadFile(path)()
		})
	}()
	<-inLoad // s.mu is held
	rpcDone := make(chan error, 1)
	go func() {
		_, err := client.ReloadConfig(context.Background(), &pb.ReloadConfigRequest{})
		rpcDone <- err
	}()
	<-entered // the handler waits for s.mu
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutDone := make(chan error, 1)
	go func() { shutDone <- svc.Shutdown(ctx) }()
	close(release)
	if err := <-hupDone; err != nil {
		t.Errorf("the reload in progress: %v", err)
	}
	if err := <-shutDone; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// Either answer is fine: the call ran before Shutdown, or saw it begin.
	if err := <-rpcDone; err != nil {
		t.Logf("ReloadConfig during shutdown: %v", err)
	}
}
