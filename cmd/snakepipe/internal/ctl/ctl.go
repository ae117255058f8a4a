// Package ctl is `snakepipe ctl`, the command-line client of the admin API.
package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/snakepipe/snakepipe/control"
	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

const usage = `Usage: snakepipe ctl [--admin ADDR] [--token TOKEN] [--json] COMMAND [ARGS]

Steer a running snakepipe through its admin API.

Commands:
  workers                       list connected workers
  policy get [SELECTOR]         show the policy held at a selector and the effective one
  policy set [SELECTOR] FLAGS   change the policy (see 'snakepipe ctl policy set -h')
  policy reset [SELECTOR|--all] drop runtime changes, back to the config file's policy
  plugins                       list Wasm plugins: versions, fields sent, state
  plugin reload NAME            compile, check and swap in a plugin's file
  config reload                 load the config again and apply what changed (as SIGHUP)
  stats                         the pipeline's own metrics
  tap [FLAGS]                   stream live events (see 'snakepipe ctl tap -h')

SELECTOR is all (default), pool=NAME or worker=ID.

Global flags:
  --admin ADDR    admin address (default $SNAKEPIPE_ADMIN or 127.0.0.1:7418)
  --token TOKEN   bearer token (default $SNAKEPIPE_ADMIN_TOKEN)
  --json          machine-readable output
  --timeout D     per-call timeout (default 10s; tap is not limited)

Examples:
  snakepipe ctl workers
  snakepipe ctl policy set pool=gpu --enabled=false
  snakepipe ctl policy set --rule 'python.gc.*=0.01'
  snakepipe ctl policy set worker=w-3 --deny 'python.memory.*'
  snakepipe ctl tap --filter 'python.call.*' --format text
`

// ErrUsage marks command-line mistakes (exit code 2).
var ErrUsage = errors.New("usage")

type globals struct {
	admin, token string
	json         bool
	timeout      time.Duration
	out, errOut  io.Writer
}

// Main runs ctl with args (after "ctl") and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "snakepipe ctl: %v\n", err)
		return 2
	default:
		if st, ok := status.FromError(err); ok {
			fmt.Fprintf(stderr, "snakepipe ctl: %s: %s\n", st.Code(), st.Message())
		} else {
			fmt.Fprintf(stderr, "snakepipe ctl: %v\n", err)
		}
		return 1
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{out: stdout, errOut: stderr}
	fs := flag.NewFlagSet("snakepipe ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&g.admin, "admin", envOr("SNAKEPIPE_ADMIN", "127.0.0.1:7418"), "admin address")
	fs.StringVar(&g.token, "token", os.Getenv("SNAKEPIPE_ADMIN_TOKEN"), "bearer token")
	fs.BoolVar(&g.json, "json", false, "JSON output")
	fs.DurationVar(&g.timeout, "timeout", 10*time.Second, "per-call timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: a command is required", ErrUsage)
	}
	conn, err := grpc.NewClient(g.admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewAdminClient(conn)
	if g.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.token)
	}
	cmd, cargs := rest[0], rest[1:]
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, g.timeout) }
	switch cmd {
	case "workers":
		c, cancel := call()
		defer cancel()
		return workers(c, g, client)
	case "policy":
		if len(cargs) == 0 {
			return fmt.Errorf("%w: policy get|set|reset", ErrUsage)
		}
		c, cancel := call()
		defer cancel()
		switch cargs[0] {
		case "get":
			return policyGet(c, g, client, cargs[1:])
		case "set":
			return policySet(c, g, client, cargs[1:])
		case "reset":
			return policyReset(c, g, client, cargs[1:])
		}
		return fmt.Errorf("%w: policy %q: want get, set or reset", ErrUsage, cargs[0])
	case "plugins":
		c, cancel := call()
		defer cancel()
		return plugins(c, g, client)
	case "plugin":
		if len(cargs) != 2 || cargs[0] != "reload" {
			return fmt.Errorf("%w: plugin reload NAME", ErrUsage)
		}
		c, cancel := call()
		defer cancel()
		resp, err := client.ReloadPlugin(c, &pb.ReloadPluginRequest{Name: cargs[1]})
		if err != nil {
			return err
		}
		if g.json {
			return printJSON(g.out, resp)
		}
		p := resp.GetPlugin()
		fmt.Fprintf(g.out, "reloaded %s: version %d (sha256 %s, fields %s)\n", p.GetName(), p.GetVersion(), short(p.GetSha256()), orDash(p.GetFields()))
		return nil
	case "config":
		if len(cargs) != 1 || cargs[0] != "reload" {
			return fmt.Errorf("%w: config reload", ErrUsage)
		}
		c, cancel := call()
		defer cancel()
		return configReload(c, g, client)
	case "stats":
		c, cancel := call()
		defer cancel()
		return stats(c, g, client)
	case "tap":
		return tap(ctx, g, client, cargs)
	}
	return fmt.Errorf("%w: unknown command %q (see snakepipe ctl -h)", ErrUsage, cmd)
}

func configReload(ctx context.Context, g *globals, c pb.AdminClient) error {
	resp, err := c.ReloadConfig(ctx, &pb.ReloadConfigRequest{})
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g.out, resp)
	}
	if len(resp.Changed) == 0 {
		fmt.Fprintln(g.out, "config reloaded: nothing changed")
	} else {
		fmt.Fprintf(g.out, "config reloaded: changed %s\n", strings.Join(resp.Changed, ", "))
	}
	if len(resp.NeedsRestart) > 0 {
		fmt.Fprintf(g.out, "needs a restart (the running value stays): %s\n", strings.Join(resp.NeedsRestart, ", "))
	}
	return nil
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func mapString(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

func workers(ctx context.Context, g *globals, c pb.AdminClient) error {
	resp, err := c.ListWorkers(ctx, &pb.ListWorkersRequest{})
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g.out, resp)
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tPOOL\tHOST\tPID\tADDRESS\tCONNECTED\tEVENTS\tEVENTS/S\tQUEUED\tDROPPED\tREJECTED")
	for _, w := range resp.Workers {
		since := time.Since(time.Unix(0, w.ConnectedSinceUnixNs)).Truncate(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s ago\t%d\t%.1f\t%d/%d\t%s\t%s\n", w.WorkerId, w.Pool, w.Hostname, w.Pid, w.Address,
			since, w.EventsReceived, w.EventsPerSecond, w.QueueDepth, w.QueueCapacity, mapString(w.Dropped), mapString(w.Rejected))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(resp.Workers) == 0 {
		fmt.Fprintln(g.errOut, "(no workers connected)")
	}
	return nil
}

func parseSelectorArg(args []string) (*pb.Selector, []string, error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sel, err := control.ParseSelector(args[0])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		return control.SelectorToPB(sel), args[1:], nil
	}
	return control.SelectorToPB(control.All), args, nil
}

func policyGet(ctx context.Context, g *globals, c pb.AdminClient, args []string) error {
	sel, rest, err := parseSelectorArg(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected %q", ErrUsage, rest[0])
	}
	resp, err := c.GetPolicy(ctx, &pb.GetPolicyRequest{Selector: sel})
	if err != nil {
		return err
	}
	return printPolicy(g, resp)
}

func printPolicy(g *globals, resp *pb.PolicyResponse) error {
	if g.json {
		return printJSON(g.out, resp)
	}
	e := resp.GetEffective()
	sel := "all"
	switch t := resp.GetSelector().GetTarget().(type) {
	case *pb.Selector_Pool:
		sel = "pool=" + t.Pool
	case *pb.Selector_WorkerId:
		sel = "worker=" + t.WorkerId
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "selector\t%s\n", sel)
	fmt.Fprintf(tw, "enabled\t%v\n", e.GetEnabled())
	fmt.Fprintf(tw, "default_sample_rate\t%g\n", e.GetDefaultSampleRate())
	rules := make([]string, 0, len(e.GetSamplingRules()))
	for _, r := range e.GetSamplingRules() {
		rules = append(rules, fmt.Sprintf("%s=%g", r.GetPattern(), r.GetRate()))
	}
	fmt.Fprintf(tw, "sampling_rules\t%s\n", listOrDash(rules))
	fmt.Fprintf(tw, "allow\t%s\n", listOrDash(e.GetAllow()))
	fmt.Fprintf(tw, "deny\t%s\n", listOrDash(e.GetDeny()))
	fmt.Fprintf(tw, "version\t%d\n", e.GetVersion())
	if resp.WorkersNotified > 0 {
		fmt.Fprintf(tw, "workers_notified\t%d\n", resp.WorkersNotified)
	}
	return tw.Flush()
}

func listOrDash(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, " ")
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// optBool and optFloat record whether a flag was given.
type optBool struct{ v, set bool }

func (o *optBool) String() string { return strconv.FormatBool(o.v) }
func (o *optBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	o.v, o.set = b, true
	return err
}
func (o *optBool) IsBoolFlag() bool { return true }

type optFloat struct {
	v   float64
	set bool
}

func (o *optFloat) String() string { return strconv.FormatFloat(o.v, 'g', -1, 64) }
func (o *optFloat) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	o.v, o.set = f, true
	return err
}

func policySet(ctx context.Context, g *globals, c pb.AdminClient, args []string) error {
	sel, rest, err := parseSelectorArg(args)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("policy set", flag.ContinueOnError)
	fs.SetOutput(g.errOut)
	var enabled optBool
	var rate optFloat
	var rules, allow, deny stringList
	var clearRules, clearAllow, clearDeny bool
	fs.Var(&enabled, "enabled", "turn telemetry on or off (--enabled=false)")
	fs.Var(&rate, "rate", "default sample rate in [0,1]")
	fs.Var(&rules, "rule", "sampling rule GLOB=RATE (repeatable; replaces the rules)")
	fs.BoolVar(&clearRules, "clear-rules", false, "remove every sampling rule")
	fs.Var(&allow, "allow", "allow glob (repeatable; replaces the allow list)")
	fs.BoolVar(&clearAllow, "clear-allow", false, "empty the allow list (allow everything)")
	fs.Var(&deny, "deny", "deny glob (repeatable; replaces the deny list)")
	fs.BoolVar(&clearDeny, "clear-deny", false, "empty the deny list")
	fs.Usage = func() {
		fmt.Fprintln(g.errOut, "Usage: snakepipe ctl policy set [all|pool=NAME|worker=ID] FLAGS")
		fs.PrintDefaults()
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected %q", ErrUsage, fs.Arg(0))
	}
	patch := &pb.PolicyPatch{}
	if enabled.set {
		patch.Enabled = &enabled.v
	}
	if rate.set {
		patch.DefaultSampleRate = &rate.v
	}
	if len(rules) > 0 || clearRules {
		patch.SetSamplingRules = true
		for _, r := range rules {
			pat, v, ok := strings.Cut(r, "=")
			f, err := strconv.ParseFloat(v, 64)
			if !ok || err != nil {
				return fmt.Errorf("%w: --rule %q: want GLOB=RATE", ErrUsage, r)
			}
			patch.SamplingRules = append(patch.SamplingRules, &pb.SamplingRule{Pattern: pat, Rate: f})
		}
	}
	if len(allow) > 0 || clearAllow {
		patch.SetAllow, patch.Allow = true, allow
	}
	if len(deny) > 0 || clearDeny {
		patch.SetDeny, patch.Deny = true, deny
	}
	if proto.Equal(patch, &pb.PolicyPatch{}) {
		return fmt.Errorf("%w: nothing to change: give --enabled, --rate, --rule, --allow or --deny", ErrUsage)
	}
	resp, err := c.SetPolicy(ctx, &pb.SetPolicyRequest{Selector: sel, Patch: patch})
	if err != nil {
		return err
	}
	return printPolicy(g, resp)
}

func policyReset(ctx context.Context, g *globals, c pb.AdminClient, args []string) error {
	req := &pb.ResetPolicyRequest{}
	if len(args) == 1 && (args[0] == "--all" || args[0] == "-all") {
		req.Everything = true
		req.Selector = control.SelectorToPB(control.All)
	} else {
		sel, rest, err := parseSelectorArg(args)
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return fmt.Errorf("%w: unexpected %q", ErrUsage, rest[0])
		}
		req.Selector = sel
	}
	resp, err := c.ResetPolicy(ctx, req)
	if err != nil {
		return err
	}
	return printPolicy(g, resp)
}

func plugins(ctx context.Context, g *globals, c pb.AdminClient) error {
	resp, err := c.ListPlugins(ctx, &pb.ListPluginsRequest{})
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g.out, resp)
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tKIND\tVERSION\tSTATE\tFIELDS\tSHA256\tLOADED\tFAILURES\tPATH\tLAST ERROR")
	for _, p := range resp.Plugins {
		loaded := "-"
		if p.LoadedUnixNs > 0 {
			loaded = time.Unix(0, p.LoadedUnixNs).Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.Kind, p.Version, p.State, orDash(p.Fields),
			short(p.Sha256), loaded, p.Failures, p.Path, orDash(p.LastError))
	}
	return tw.Flush()
}

// orDash fills an empty table cell (no error; a server too old to report a
// plugin's fields) with "-", so that no column looks missing.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stats(ctx context.Context, g *globals, c pb.AdminClient) error {
	resp, err := c.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g.out, resp)
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tLABELS\tVALUE")
	for _, m := range resp.Metrics {
		keys := make([]string, 0, len(m.Labels))
		for k := range m.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var ls []string
		for _, k := range keys {
			ls = append(ls, k+"="+m.Labels[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, listOrDash(ls), strconv.FormatFloat(m.Value, 'f', -1, 64))
	}
	return tw.Flush()
}

func tap(ctx context.Context, g *globals, c pb.AdminClient, args []string) error {
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	fs.SetOutput(g.errOut)
	var allow, deny stringList
	fs.Var(&allow, "filter", "event name glob to show (repeatable; default all)")
	fs.Var(&deny, "deny", "event name glob to hide (repeatable)")
	selStr := fs.String("selector", "all", "all, pool=NAME or worker=ID")
	format := fs.String("format", "text", "json or text")
	rate := fs.Uint("rate", 0, "max events per second (0 = host default)")
	limit := fs.Uint64("limit", 0, "stop after this many events (0 = until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "json" && *format != "text" {
		return fmt.Errorf("%w: --format %q: want json or text", ErrUsage, *format)
	}
	if g.json {
		*format = "json"
	}
	sel, err := control.ParseSelector(*selStr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	stream, err := c.Tap(ctx, &pb.TapRequest{Allow: allow, Deny: deny, Selector: control.SelectorToPB(sel), MaxEventsPerSecond: uint32(*rate), Limit: *limit})
	if err != nil {
		return err
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Skipped > 0 {
			fmt.Fprintf(g.errOut, "(%d events skipped by the tap's rate cap)\n", ev.Skipped)
		}
		if *format == "json" {
			fmt.Fprintln(g.out, ev.Json)
			continue
		}
		e, err := pipeline.ParseEventJSON([]byte(ev.Json))
		if err != nil {
			return err
		}
		fmt.Fprintln(g.out, textLine(&e))
	}
}

// textLine formats an event for people: time, name, measurements, metadata,
// worker.
func textLine(e *pipeline.Event) string {
	var b strings.Builder
	b.WriteString(time.Unix(0, e.TimestampNs).UTC().Format("15:04:05.000000"))
	b.WriteString("  ")
	fmt.Fprintf(&b, "%-28s", e.Name)
	for _, m := range e.Measurements {
		fmt.Fprintf(&b, " %s=%s", m.Key, m.Value)
	}
	for _, l := range e.Metadata {
		fmt.Fprintf(&b, " %s=%q", l.Key, l.Value)
	}
	if e.Origin != nil {
		fmt.Fprintf(&b, "  [%s/%s]", e.Origin.Pool, e.Origin.WorkerID)
	}
	if e.SampleRate > 0 && e.SampleRate < 1 {
		fmt.Fprintf(&b, " @%g", e.SampleRate)
	}
	return b.String()
}
