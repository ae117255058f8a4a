package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
pipeline names is configured, and every wasm stage loads as run would
load it (the module's checks, its kind, the stage's memory limit, snk_init
with the stage's config, the self-test). Prints "valid" and exits 0, or prints every
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

// checkPluginFiles loads every wasm stage the way `run` does — the same
// plugins.NewStage on one host with the config's plugins limits (without
// the disk cache): compile, imports, exports, ABI version, kind, the
// stage's memory limit and the host's total, snk_init with the stage's
// config, the self-test batch — and reports why one would be refused,
// under the stage's key. Sharing run's code path keeps the two from
// disagreeing.
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
	var errs, stops []error
	var stages []*plugins.Stage
	for _, id := range ids {
		st, err := plugins.NewStage(ctx, host, pipeline.Settings{ID: id}, cfg.Stages[id].(*plugins.Config), nil, nil)
		if err != nil {
			errs = append(errs, &ConfigError{Key: "stages." + id.String(), Msg: err.Error()})
			continue
		}
		stages = append(stages, st) // kept until the end: the host's memory total counts every stage
	}
	for _, st := range stages {
		stops = append(stops, st.Shutdown(ctx))
	}
	return errors.Join(append(append(errs, stops...), host.Close(ctx))...)
}
