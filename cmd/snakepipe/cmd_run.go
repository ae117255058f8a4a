package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
)

var runCommand = &command{
	name:    "run",
	summary: "run the pipeline (on the built-in config without -c)",
	run:     runRun,
}

const runHelp = `
Usage: snakepipe run [-c FILE] [--listen ADDR] [--admin ADDR] [--log-level LEVEL] [--log-format FORMAT]

Runs snakepipe until SIGINT or SIGTERM. Workers connect to the ingest
listener; events that pass the catalog go through the configured pipelines
to their sinks. Without -c the built-in config is used: ingest on
127.0.0.1:7417, admin API on 127.0.0.1:7418, events printed to stderr.

The config is the file, then SNAKEPIPE_ environment variables
(SNAKEPIPE_LOG__LEVEL=debug sets log.level), then these flags. An invalid
config is refused with every problem listed.

On SIGHUP, and when the config file changes (checked every second), the
config is loaded again and what changed is applied without dropping worker
streams: catalog, policy, log level, stages, sinks, pipelines. An invalid
new config is refused with its problems logged, and the running one stays.
Listeners, ingest limits, the admin API and the plugins section need a
restart (the log says which).

On SIGINT/SIGTERM snakepipe stops accepting, tells workers to go away,
delivers everything already accepted to the sinks, flushes them and exits 0.
A second signal exits at once.

--cpuprofile and --memprofile write Go profiles of the run for
'go tool pprof' (docs/operations.md, "Load testing").

Examples:
  snakepipe run
  snakepipe run -c /etc/snakepipe/snakepipe.yaml
  snakepipe run --listen 0.0.0.0:7417 --log-level debug
  kill -HUP $(pidof snakepipe)        reload the config
  snakepipe run -c snakepipe.yaml --cpuprofile host.prof
`

func runRun(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "run", runHelp)
	var cf configFlags
	cf.register(fs, true)
	grace := fs.Duration("shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take before what is still queued is dropped (and counted)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE` (go tool pprof FILE)")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations since start, and what is live) to `FILE` on exit")
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	stopProfiles, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fmt.Fprintf(c.stderr, "snakepipe run: %v\n", err)
		return 1
	}
	defer func() {
		if err := stopProfiles(); err != nil {
			fmt.Fprintf(c.stderr, "snakepipe run: %v\n", err)
		}
	}()
	out := pipeline.NewSyncWriter(c.stderr)
	fac := builtinFactories(out, nil)
	load := func() (*Config, error) {
		cfg, err := cf.load(c, fs, fac)
		if err == nil {
			err = checkConfig(cfg)
		}
		return cfg, err
	}
	var hangup <-chan os.Signal
	if c.hangup != nil {
		ch, stop := c.hangup()
		defer stop()
		hangup = ch
	}
	poll := c.configPoll
	if poll <= 0 {
		poll = time.Second
	}
	// Fingerprint the file before loading it, so an edit made meanwhile
	// still triggers a reload.
	watch := newConfigWatch(cf.file, poll, hangup, hclog.NewNullLogger())
	cfg, err := load()
	if err != nil {
		printConfigErrors(c.stderr, cf.source(), err)
		return 1
	}
	log := newLogger(cfg.Log, out)
	log.Info("config loaded", "source", cf.source())
	watch.log = log

	sigs, stop := c.signals()
	defer stop()
	svc, err := NewService(ctx, cfg, ServiceOptions{Logger: log, Stderr: out,
		ApplyRuntime: func(rc RuntimeConfig) { applyGoRuntime(rc, c.environ, log) },
		DrainTimeout: *grace, ConfigLoader: watch.loadNow(load)})
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
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watch.run(wctx, func(reason string) {
			log.Info("reloading config", "reason", reason, "source", cf.source())
			rctx, cancel := context.WithTimeout(context.Background(), *grace)
			defer cancel()
			_ = svc.Reload(rctx, load) // logs its own outcome
		})
	}()
	stopReloads := func() {
		stopWatch()
		<-watchDone // a reload in progress finishes first
	}
	return serveUntilSignal(ctx, c, log, sigs, *grace, stopReloads, svc.Shutdown)
}

// serveUntilSignal waits for a signal (or ctx), then shuts down
// gracefully within grace; a second signal exits at once. before, if set,
// runs first on shutdown (demo stops its client there).
func serveUntilSignal(ctx context.Context, c *cli, log hclog.Logger, sigs <-chan os.Signal, grace time.Duration,
	before func(), shutdown func(context.Context) error) int {
	select {
	case sig := <-sigs:
		log.Info("signal received, shutting down gracefully (send it again to exit at once)", "signal", sig.String())
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(c.stderr, "snakepipe: second %s: exiting at once\n", sig)
			c.exit(1)
		case <-done:
		}
	}()
	defer close(done)
	if before != nil {
		before()
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		return 1
	}
	return 0
}

// startProfiles starts a CPU profile into cpuFile (if set); the returned
// stop ends it and writes a heap profile into memFile (if set).
func startProfiles(cpuFile, memFile string) (stop func() error, err error) {
	var cpu *os.File
	if cpuFile != "" {
		if cpu, err = os.Create(cpuFile); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			_ = cpu.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				errs = append(errs, fmt.Errorf("--cpuprofile: %w", err))
			}
		}
		if memFile != "" {
			runtime.GC() // the live heap as of the end of the run
			if err := writeHeapProfile(memFile); err != nil {
				errs = append(errs, fmt.Errorf("--memprofile: %w", err))
			}
		}
		return errors.Join(errs...)
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
