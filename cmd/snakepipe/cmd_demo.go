package main

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

var demoCommand = &command{
	name:    "demo",
	summary: "run snakepipe with a demo worker streaming events (what `make run` does)",
	run:     runDemo,
}

const demoHelp = `
Usage: snakepipe demo [-c FILE] [--listen ADDR] [--admin ADDR] [--log-level LEVEL] [--log-format FORMAT]

Starts snakepipe (the built-in config unless -c is given) on a free loopback
port, and a demo worker: a real gRPC client of the worker protocol that says
Hello, streams a batch of realistic events (calls, tool spans, memory and
CPU samples) — one of them with a misspelt name, which the host rejects and
reports back — and then a memory sample every 2 seconds. Events appear on
stderr. Ctrl-C stops the worker, then snakepipe, delivering everything
first.
`

func runDemo(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "demo", demoHelp)
	var cf configFlags
	cf.register(fs, true)
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	out := pipeline.NewSyncWriter(c.stderr)
	fac := builtinFactories(out, nil)
	flags := map[string]any{"ingest.listen": "127.0.0.1:0", "admin.listen": "127.0.0.1:0"}
	for k, v := range cf.flagMap(fs) {
		flags[k] = v
	}
	cfg, err := LoadConfig(LoadOptions{File: cf.file, Env: c.environ, Flags: flags, Factories: fac})
	if err == nil {
		err = checkConfig(cfg)
	}
	if err != nil {
		printConfigErrors(c.stderr, cf.source(), err)
		return 1
	}
	log := newLogger(cfg.Log, out)

	sigs, stop := c.signals()
	defer stop()
	svc, err := NewService(ctx, cfg, ServiceOptions{Logger: log, Stderr: out})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	if err := svc.Start(ctx); err != nil {
		log.Error("cannot start", "error", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			log.Error("the address is taken: is another snakepipe running? Pick another with --listen / --admin")
		}
		return 1
	}
	log.Info("demo: snakepipe is running; a demo worker connects now. Press Ctrl-C to stop.")

	clientCtx, stopClient := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d := &demoClient{addr: svc.IngestAddr(), log: log.Named("demo_worker"), workerID: "demo-worker-1", every: 2 * time.Second}
		if err := d.run(clientCtx); err != nil {
			log.Error("demo worker stopped", "error", err)
		}
	}()
	return serveUntilSignal(ctx, c, log, sigs, 30*time.Second, func() {
		stopClient()
		wg.Wait()
	}, svc.Shutdown)
}
