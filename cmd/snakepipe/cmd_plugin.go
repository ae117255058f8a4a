package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/plugins"
)

var pluginCommand = &command{
	name:    "plugin",
	summary: "inspect a Wasm plugin, or run events through it (plugin inspect, plugin test)",
	run:     runPlugin,
}

const pluginHelp = `
Usage: snakepipe plugin <inspect|test> PLUGIN.wasm [flags]

Tools for writing Wasm plugins (docs/plugin-abi.md §12). Neither starts a
pipeline; both load the plugin with the same checks as a wasm stage.

  inspect   print the ABI version, kind, exports, imports, memory and
            snakepipe.meta of a module, and every problem that would refuse it
  test      run JSON-lines events through the plugin and print, for every
            event, whether it was kept, dropped or changed, and the time per event

Exit codes: 0 ok; 1 the plugin was refused or failed a batch; 2 usage
(bad flags, unreadable file, malformed input events).

Examples:
  snakepipe plugin inspect slow_calls.wasm
  snakepipe plugin test slow_calls.wasm --config min_duration_ns=1000000 --input events.jsonl

Run 'snakepipe plugin inspect --help' or 'snakepipe plugin test --help' for flags.
`

func runPlugin(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, strings.TrimLeft(pluginHelp, "\n"))
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, strings.TrimLeft(pluginHelp, "\n"))
		return 0
	case "inspect":
		return runPluginInspect(ctx, c, args[1:])
	case "test":
		return runPluginTest(ctx, c, args[1:])
	}
	fmt.Fprintf(c.stderr, "snakepipe plugin: unknown subcommand %q (want inspect or test)\n", args[0])
	return 2
}

const pluginInspectHelp = `
Usage: snakepipe plugin inspect PLUGIN.wasm [--json]

Compiles and checks PLUGIN.wasm (in memory, no cache) against plugin ABI v1
and prints its ABI version, kind, exports with signatures, imports (marking
any that are not allowed), memory (initial / maximum pages), the
snakepipe.meta section, size and sha256, and every problem that would
refuse the module. Exits 0 if the module is loadable, 1 if not.

Examples:
  snakepipe plugin inspect slow_calls.wasm
  snakepipe plugin inspect --json slow_calls.wasm | jq .imports
`

func runPluginInspect(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "plugin inspect", pluginInspectHelp)
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	path, code, ok := parsePluginFlags(c, fs, args)
	if !ok {
		return code
	}
	info, err := plugins.Inspect(ctx, path)
	if err != nil {
		fmt.Fprintf(c.stderr, "snakepipe plugin inspect: %v\n", err)
		return 2
	}
	if *asJSON {
		if info.Problems == nil {
			info.Problems = []string{}
		}
		if err := writeJSON(c.stdout, info); err != nil {
			fmt.Fprintf(c.stderr, "snakepipe plugin inspect: %v\n", err)
			return 1
		}
	} else if err := info.Write(c.stdout); err != nil {
		fmt.Fprintf(c.stderr, "snakepipe plugin inspect: %v\n", err)
		return 1
	}
	if len(info.Problems) > 0 {
		// The text output lists the problems already; with --json, stderr
		// is where a person sees them.
		fmt.Fprintf(c.stderr, "snakepipe plugin inspect: %s would be refused (%d problems)\n", path, len(info.Problems))
		if *asJSON {
			for _, p := range info.Problems {
				fmt.Fprintf(c.stderr, "  %s\n", p)
			}
		}
		return 1
	}
	return 0
}

const pluginTestHelp = `
Usage: snakepipe plugin test PLUGIN.wasm --input FILE [--config KEY=VALUE]... [--kind filter|enrich] [--batch N] [--trusted] [--json]

Loads PLUGIN.wasm as a wasm stage would (checks, snk_init with the
--config values), runs the events of FILE through it in batches, and
prints for every event whether it was kept, dropped or changed (with each
change, old -> new), then the totals and the mean time per event (encode,
guest call, decode, apply; measured by repeating the input for 200ms,
with the 1s per-call deadline unless --trusted).

FILE holds one JSON event per line, the format the file and stderr sinks
write:
  {"name":"python.call.stop","timestamp_ns":1,"measurements":{"duration":2000000},"metadata":{"function":"f"}}

A batch the plugin fails (trap, timeout, bad result, ...) is reported with
the failure kind, and the command exits 1. The plugin's own log lines
(snakepipe_v1.log, stdout, stderr; rate-limited) are printed on stderr.

Examples:
  snakepipe plugin test slow_calls.wasm --input events.jsonl
  snakepipe plugin test slow_calls.wasm --config min_duration_ns=1000000 --input events.jsonl
  snakepipe plugin test both.wasm --kind enrich --batch 1 --json --input events.jsonl
`

// configPairs collects repeated --config KEY=VALUE flags.
type configPairs map[string]string

func (p configPairs) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + p[k]
	}
	return strings.Join(keys, ",")
}

func (p configPairs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	if _, dup := p[k]; dup {
		return fmt.Errorf("key %q given twice", k)
	}
	p[k] = v
	return nil
}

func runPluginTest(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "plugin test", pluginTestHelp)
	cfg := configPairs{}
	fs.Var(cfg, "config", "plugin config `KEY=VALUE` passed to snk_init (repeat for more keys)")
	input := fs.String("input", "", "JSON-lines event `FILE` to run through the plugin (required)")
	kind := fs.String("kind", "", "`KIND` to run a module exporting both snk_filter and snk_enrich as: filter or enrich")
	batch := fs.Int("batch", 64, "events per guest call (`N`)")
	asJSON := fs.Bool("json", false, "print one JSON object (every event's outcome and the totals) instead of text")
	trusted := fs.Bool("trusted", false, "run without the 1s deadline, as a `trusted: true` stage (the time per event is then the no-deadline figure; an infinite loop hangs the command)")
	path, code, ok := parsePluginFlags(c, fs, args)
	if !ok {
		return code
	}
	var problems []string
	if *input == "" {
		problems = append(problems, "--input FILE is required")
	}
	if _, err := plugins.ParseKind(*kind); err != nil {
		problems = append(problems, "--kind: "+err.Error())
	}
	if *batch < 1 {
		problems = append(problems, fmt.Sprintf("--batch: %d must be >= 1", *batch))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(c.stderr, "snakepipe plugin test: %s\n", p)
		}
		return 2
	}
	in, err := os.Open(*input)
	if err != nil {
		fmt.Fprintf(c.stderr, "snakepipe plugin test: --input: %v\n", err)
		return 2
	}
	defer func() { _ = in.Close() }() // read-only: a close error changes nothing
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(c.stderr, "snakepipe plugin test: %v\n", err)
		return 2
	}
	text := c.stdout
	if *asJSON {
		text = io.Discard
	}
	// The guest's log lines (snakepipe_v1.log, stdout, stderr) go to
	// stderr: they often say why a plugin refused its config.
	guestLog := hclog.New(&hclog.LoggerOptions{Name: "guest", Output: c.stderr, Level: hclog.Trace, DisableTime: true})
	sum, err := plugins.RunTest(ctx, text, plugins.TestOptions{
		Path: path, Config: cfg, Kind: *kind, Input: in, BatchSize: *batch, Logger: guestLog, Trusted: *trusted,
	})
	switch {
	case errors.Is(err, plugins.ErrTestInput):
		fmt.Fprintf(c.stderr, "snakepipe plugin test: %s: %v\n", *input, err)
		return 2
	case err != nil && !errors.Is(err, plugins.ErrTestFailed):
		fmt.Fprintf(c.stderr, "snakepipe plugin test: %s refused: %v\n", path, err)
		return 1
	}
	if *asJSON {
		if werr := writeJSON(c.stdout, sum); werr != nil {
			fmt.Fprintf(c.stderr, "snakepipe plugin test: %v\n", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "snakepipe plugin test: %v\n", err)
		return 1
	}
	return 0
}

// parsePluginFlags parses args holding exactly one PLUGIN.wasm argument,
// before, between or after the flags. It returns (path, exit code, false)
// when the command should stop: after --help (0) or a usage error (2).
func parsePluginFlags(c *cli, fs *flag.FlagSet, args []string) (string, int, bool) {
	var (
		pos  []string
		rest = args
	)
	for {
		if code, ok := parseFlagsAllowArgs(c, fs, rest); !ok {
			return "", code, false
		}
		if fs.NArg() == 0 {
			break
		}
		if i := len(rest) - fs.NArg() - 1; i >= 0 && rest[i] == "--" { // everything after -- is an argument
			pos = append(pos, fs.Args()...)
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch len(pos) {
	case 0:
		fmt.Fprintf(c.stderr, "%s: missing PLUGIN.wasm argument (see --help)\n", fs.Name())
		return "", 2, false
	case 1:
		return pos[0], 0, true
	}
	fmt.Fprintf(c.stderr, "%s: unexpected argument %q (one PLUGIN.wasm at a time)\n", fs.Name(), pos[1])
	return "", 2, false
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // signatures hold "->"
	return enc.Encode(v)
}
