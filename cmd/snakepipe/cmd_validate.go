package main

import (
	"context"
	"fmt"
	"io"
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
pipeline names is configured. Prints "valid" and exits 0, or prints every
problem, one per line with its key path, and exits 1:

  snakepipe: snakepipe.yaml has 3 problems:
    ingest.lisen: unknown key
    pipelines.default.sinks[0]: unknown sink "fille" (no sinks.fille section)
    sinks.file/main.max_bytes: -1 must be >= 0 (0 never rotates)

Without -c it checks the built-in config.
`

func runValidate(_ context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "validate", validateHelp)
	var cf configFlags
	cf.register(fs, false)
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	cfg, err := cf.load(c, fs, builtinFactories(io.Discard, nil))
	if err == nil {
		err = checkConfig(cfg)
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
