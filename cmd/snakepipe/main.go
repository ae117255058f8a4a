// Command snakepipe is the telemetry pipeline for fleets of Python worker
// processes: `snakepipe run` accepts worker streams, checks and sanitizes
// events, runs them through stages and delivers them to sinks.
//
// Each subcommand lives in its own file (cmd_<name>.go) and is registered
// in the commands list below.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// command is one subcommand. run gets the arguments after the subcommand's
// name and returns the process exit code.
type command struct {
	name    string
	summary string // one line for the overview
	run     func(ctx context.Context, cli *cli, args []string) int
}

// commands is every subcommand, in the order `snakepipe --help` lists them.
var commands = []*command{
	runCommand,
	validateCommand,
	demoCommand,
	ctlCommand,
	pluginCommand,
	loadgenCommand,
	versionCommand,
}

// cli is what a subcommand may touch of the process, so tests can run
// subcommands in-process.
type cli struct {
	stdout  io.Writer
	stderr  io.Writer
	environ []string
	// signals starts delivering SIGINT/SIGTERM on the returned channel until
	// stop is called. Only long-running commands (run, demo) call it, so
	// Ctrl-C keeps its default meaning everywhere else.
	signals func() (ch <-chan os.Signal, stop func())
	// hangup starts delivering SIGHUP (reload the config) the same way; nil
	// means no SIGHUP. Only run calls it.
	hangup func() (ch <-chan os.Signal, stop func())
	// configPoll is how often run checks its config file for changes
	// (0: every second; tests shorten it).
	configPoll time.Duration
	// exit ends the process at once (a second Ctrl-C); tests replace it.
	exit func(code int)
}

const overview = `snakepipe: the telemetry pipeline for fleets of Python worker processes.

Workers stream events over gRPC; snakepipe checks them against the event
catalog, sanitizes them, runs them through stages (sampling, filters, Wasm
plugins) and delivers them to sinks (stderr, files, StatsD).

Usage:
  snakepipe <command> [flags]

Commands:
%s
Examples:
  snakepipe demo                        see events flow, no setup needed
  snakepipe run                         run on the built-in config (127.0.0.1:7417, stderr)
  snakepipe run -c snakepipe.yaml       run on your config
  snakepipe validate -c snakepipe.yaml  check a config without running it
  snakepipe plugin inspect f.wasm       check a Wasm plugin before using it

Run 'snakepipe <command> --help' for a command's flags.
Configuration reference: docs/config.md
`

func usage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, overview, b.String())
}

// realMain runs one invocation and returns its exit code.
func realMain(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 {
		usage(c.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return realMain(ctx, c, []string{args[1], "--help"})
		}
		usage(c.stdout)
		return 0
	case "-v", "-version", "--version":
		return versionCommand.run(ctx, c, nil)
	}
	for _, cmd := range commands {
		if cmd.name == args[0] {
			return cmd.run(ctx, c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "snakepipe: unknown command %q\n\n", args[0])
	usage(c.stderr)
	return 2
}

// newFlagSet returns a FlagSet whose --help prints the command's usage
// text followed by its flags.
func newFlagSet(c *cli, name, help string) *flag.FlagSet {
	fs := flag.NewFlagSet("snakepipe "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, strings.TrimLeft(help, "\n"))
		fmt.Fprintln(out, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, returning (exit code, false) when the command
// should stop: 0 after --help (usage on stdout), 2 after a bad flag
// (reported on stderr).
func parseFlags(c *cli, fs *flag.FlagSet, args []string) (int, bool) {
	if code, ok := parseFlagsAllowArgs(c, fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

// parseFlagsAllowArgs is parseFlags without the "no positional arguments"
// rule: the command reads fs.Args() itself.
func parseFlagsAllowArgs(c *cli, fs *flag.FlagSet, args []string) (int, bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(c.stdout)
			fs.Usage()
			return 0, false
		}
	}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	default:
		return 2, false
	}
}

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ(), signals: notifySignals, hangup: notifyHangup, exit: os.Exit}
	os.Exit(realMain(context.Background(), c, os.Args[1:]))
}
