package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/plugins"
)

var validateCommand = &command{
	name:    "validate",
	summary: "check a config file without running it",
	run:     runValidate,
}

const validateHelp = `
Usage: snakepipe validate [-c FILE]

Checks a config file (with SNAKEPIPE_ environment overrides applied) without
starting anything: every key is known, every value is in range, every id a
pipeline names is configured, and every wasm stage's .wasm file loads (it
is read, compiled and checked as "snakepipe plugin inspect" does, and its
kind matches the stage's). Prints "valid" and exits 0, or prints every
problem, one per line with its key path, and exits 1:

  snakepipe: snakepipe.yaml has 3 problems:
    ingest.lisen: unknown key
    pipelines.default.sinks[0]: unknown sink "fille" (no sinks.fille section)
    sinks.file/main.max_bytes: -1 must be >= 0 (0 never rotates)

Without -c it checks the built-in config. --no-plugins skips reading the
.wasm files (to validate a config on a machine that does not have them).
`

func runValidate(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "validate", validateHelp)
	var cf configFlags
	cf.register(fs, false)
	noPlugins := fs.Bool("no-plugins", false, "do not load the wasm stages' .wasm files")
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	cfg, err := cf.load(c, fs, builtinFactories(io.Discard, nil))
	if err == nil {
		err = checkConfig(cfg)
	}
	if err == nil && !*noPlugins {
		err = checkPluginFiles(ctx, cfg)
	}
	if err != nil {
		printConfigErrors(c.stderr, cf.source(), err)
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	fmt.Fprintln(c.stdout, "valid")
	return 0
}

// checkPluginFiles loads every wasm stage's module the way `run` would (with
// the config's plugins limits, without the disk cache) and reports, under
// the stage's key, why one would be refused. `run` would refuse to start on
// the same problems; validate finds them without starting anything.
func checkPluginFiles(ctx context.Context, cfg *Config) error {
	var ids []pipeline.ComponentID
	for id, sc := range cfg.Stages {
		if _, ok := sc.(*plugins.Config); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	hc := cfg.Plugins
	hc.Cache, hc.Watch = false, false
	host, err := plugins.NewHost(hc, nil, nil)
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	var errs []error
	for _, id := range ids {
		pc := cfg.Stages[id].(*plugins.Config)
		key := "stages." + id.String() + ".path"
		info, err := host.Inspect(ctx, pc.Path)
		if err != nil {
			errs = append(errs, &ConfigError{Key: key, Msg: err.Error()})
			continue
		}
		for _, p := range info.Problems {
			errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf("%s: %s", pc.Path, p)})
		}
		if len(info.Problems) > 0 || pc.Kind == "" {
			continue
		}
		if k, err := plugins.ParseKind(pc.Kind); err == nil && k != plugins.KindAuto && !slices.Contains(info.Kinds, k) {
			errs = append(errs, &ConfigError{Key: "stages." + id.String() + ".kind",
				Msg: fmt.Sprintf("%s cannot run as kind %s: it serves %v", pc.Path, k, info.Kinds)})
		}
	}
	return errors.Join(append(errs, host.Close(ctx))...)
}
