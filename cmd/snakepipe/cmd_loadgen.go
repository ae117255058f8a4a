package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/snakepipe/snakepipe/cmd/snakepipe/internal/loadgen"
)

var loadgenCommand = &command{
	name:    "loadgen",
	summary: "emulate many workers against a running snakepipe and report throughput, CPU and latency",
	run:     runLoadgen,
}

const loadgenHelp = `
Usage: snakepipe loadgen [--target ADDR] [--workers N] (--duration D | --count N) [--rate R] [--batch B] [--latency] [--json]

Emulates N workers (N real gRPC streams of the worker protocol) sending a
realistic mix of catalog events (calls, tool spans, memory/CPU/GC samples
with metadata of realistic sizes) to a running snakepipe, as fast as
possible or at a total target rate, for a duration or an event count.
Batches are encoded once up front, so the load generator spends little CPU
of its own per event; it reports what it used.

With --admin (default 127.0.0.1:7418, the built-in config's admin API) the
host's /metrics is read before and after the run: events received,
written by the sinks, rejected and dropped, the host's CPU seconds per
million events and its resident memory. With --latency every event carries
its send time, and the host's sink latency histogram gives p50/p99/max
from send to the end of the sink write (buckets 1.25x apart: ±12 %).

Sink figures include two host events per stream (worker connected and
disconnected). The exit code is 1 if a stream failed.

Examples:
  snakepipe run -c bench/scenarios/nostages.yaml &
  snakepipe loadgen --duration 10s                      64 workers, full speed
  snakepipe loadgen --count 1000000 --workers 8 --batch 256
  snakepipe loadgen --duration 30s --rate 100000 --latency
  snakepipe loadgen --duration 10s --admin "" --json    no host figures, JSON report
`

func runLoadgen(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "loadgen", loadgenHelp)
	var o loadgen.Options
	fs.StringVar(&o.Target, "target", "127.0.0.1:7417", "ingest address of the snakepipe under load (host:port)")
	fs.IntVar(&o.Workers, "workers", 64, "emulated workers: one gRPC stream each")
	fs.DurationVar(&o.Duration, "duration", 0, "how long to send (0: until --count events are sent)")
	fs.Uint64Var(&o.Count, "count", 0, "events to send in all (0: until --duration is over)")
	fs.Float64Var(&o.Rate, "rate", 0, "total target events per second (0: as fast as possible)")
	fs.IntVar(&o.Batch, "batch", 64, "events per frame")
	fs.BoolVar(&o.Latency, "latency", false, "stamp the send time into every event and report send→sink latency")
	fs.StringVar(&o.Admin, "admin", "127.0.0.1:7418", `admin address of the host, for its metrics ("" = no host figures)`)
	fs.StringVar(&o.AdminToken, "token", "", "admin bearer token (default $SNAKEPIPE_ADMIN_TOKEN)")
	fs.StringVar(&o.Pool, "pool", "loadgen", "pool name the emulated workers announce")
	asJSON := fs.Bool("json", false, "print the report as JSON (for scripts)")
	progressFlag := fs.Bool("progress", false, "print progress every second even when stderr is not a terminal")
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	if o.Duration <= 0 && o.Count == 0 {
		fmt.Fprintln(c.stderr, "snakepipe loadgen: set --duration or --count")
		return 2
	}
	if o.Workers < 1 || o.Batch < 1 || o.Rate < 0 || math.IsNaN(o.Rate) {
		fmt.Fprintln(c.stderr, "snakepipe loadgen: --workers and --batch must be at least 1, --rate at least 0")
		return 2
	}
	if o.AdminToken == "" {
		o.AdminToken = envValue(c.environ, "SNAKEPIPE_ADMIN_TOKEN")
	}
	tty := isTerminal(c.stderr)
	if tty || *progressFlag {
		o.Progress = func(p loadgen.Progress) {
			line := fmt.Sprintf("%6.1fs  sent %s  rate %s ev/s  errors %s",
				p.Elapsed.Seconds(), thousands(float64(p.Sent)), thousands(p.Rate), thousands(float64(p.Errors)))
			if tty {
				fmt.Fprintf(c.stderr, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(c.stderr, line)
			}
		}
	}
	r, err := loadgen.Run(ctx, o)
	if tty && o.Progress != nil {
		fmt.Fprint(c.stderr, "\r\033[K")
	}
	if r == nil {
		fmt.Fprintf(c.stderr, "snakepipe loadgen: %v\n", err)
		if o.Admin != "" && strings.Contains(err.Error(), "admin metrics") {
			fmt.Fprintln(c.stderr, `  (is the host's admin API on `+o.Admin+`? --admin ADDR points elsewhere, --admin "" runs without host figures)`)
		}
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(r); e != nil {
			fmt.Fprintf(c.stderr, "snakepipe loadgen: %v\n", e)
			return 1
		}
	} else {
		writeLoadgenReport(c.stdout, r)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "snakepipe loadgen: %v\n", err)
		return 1
	}
	if r.Errors > 0 {
		fmt.Fprintf(c.stderr, "snakepipe loadgen: %d stream errors; first: %s\n", r.Errors, r.FirstError)
		return 1
	}
	return 0
}

// writeLoadgenReport prints the report as an aligned two-column table.
func writeLoadgenReport(w io.Writer, r *loadgen.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	rate := "as fast as possible"
	if r.TargetRate > 0 {
		rate = "target " + thousands(r.TargetRate) + " events/s"
	}
	row("run", "%d workers, batches of %d, %s, %.1f s", r.Workers, r.Batch, rate, r.DurationSeconds)
	row("events sent", "%s (%s frames, %s)", thousands(float64(r.EventsSent)), thousands(float64(r.FramesSent)), bytesIEC(float64(r.BytesSent)))
	row("events/s", "%s", thousands(r.EventsPerSecond))
	row("stream errors", "%d", r.Errors)
	row("loadgen CPU", "%.2f s, %s", r.LoadgenCPUSeconds, perEvent(r.LoadgenCPUSecondsPerMillion))
	if h := r.Host; h != nil {
		row("host received", "%s", thousands(h.EventsReceived))
		row("host written (sink)", "%s, %s events/s (drained %.2f s after the last send)",
			thousands(h.EventsWritten), thousands(h.EventsWrittenPerSecond), h.DrainSeconds)
		row("host rejected", "%s", thousands(h.EventsRejected))
		dropped := 0.0
		var reasons []string
		for _, k := range slices.Sorted(maps.Keys(h.EventsDropped)) {
			dropped += h.EventsDropped[k]
			reasons = append(reasons, k+" "+thousands(h.EventsDropped[k]))
		}
		if len(reasons) > 0 {
			row("host dropped", "%s: %s", thousands(dropped), strings.Join(reasons, ", "))
		} else {
			row("host dropped", "0")
		}
		if h.PluginFailures > 0 {
			row("plugin failures", "%s batches (snakepipe_plugin_failures_total)", thousands(h.PluginFailures))
		}
		row("host CPU", "%.2f s, %s", h.CPUSeconds, perEvent(h.CPUSecondsPerMillion))
		if h.LatencyObservations > 0 {
			row("latency send→sink", "p50 %.2f ms, p99 %.2f ms, max ≤ %.2f ms (%s events)",
				h.LatencyP50Ms, h.LatencyP99Ms, h.LatencyMaxBucketMs, thousands(h.LatencyObservations))
		}
		if h.RSSEndBytes > 0 {
			row("host RSS", "%s at start, %s at end", bytesIEC(h.RSSStartBytes), bytesIEC(h.RSSEndBytes))
		}
	}
	if r.FirstError != "" {
		row("first error", "%s", r.FirstError)
	}
	_ = tw.Flush()
}

// perEvent renders CPU seconds per million events, which is also µs per event.
func perEvent(secPerMillion float64) string {
	return fmt.Sprintf("%.2f s per million events (%.2f µs/event)", secPerMillion, secPerMillion)
}

// thousands renders v rounded to an integer with comma separators.
func thousands(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func bytesIEC(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// isTerminal reports whether w is a character device (a terminal), so
// progress lines with carriage returns do not end up in logs and pipes.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
