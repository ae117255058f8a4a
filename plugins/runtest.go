package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/pipeline"
)

// TestOptions configure RunTest (`snakepipe plugin test`).
type TestOptions struct {
	Path   string
	Config map[string]string
	// Kind is "", "filter" or "enrich" (for modules exporting both).
	Kind string
	// Input is a JSON-lines event stream (pipeline.ParseEventJSON format).
	Input io.Reader
	// BatchSize is the number of events per guest call (default 64).
	BatchSize int
	// TimeBudget bounds the timing pass that measures the time per event
	// (default 200ms; the input is repeated until it is spent).
	TimeBudget time.Duration
	// Trusted runs the plugin without the deadline (as a `trusted: true`
	// stage): the time per event is then the no-deadline figure, and an
	// infinite loop hangs RunTest.
	Trusted bool
	// Logger receives the guest's log lines (default: discarded).
	Logger hclog.Logger
}

// TestSummary is what RunTest found.
type TestSummary struct {
	Plugin    string `json:"plugin"`
	Kind      string `json:"kind"`
	SHA256    string `json:"sha256"`
	BatchSize int    `json:"batch_size"`
	// Fields are the field groups the plugin was sent (snk_fields).
	Fields        FieldGroups    `json:"fields"`
	Events        int            `json:"events"`
	Kept          int            `json:"kept"`
	Dropped       int            `json:"dropped"`
	Changed       int            `json:"changed"`
	TooLarge      int            `json:"too_large"`
	FailedBatches int            `json:"failed_batches"`
	NsPerEvent    float64        `json:"ns_per_event"`
	Outcomes      []EventOutcome `json:"outcomes"`
}

// EventOutcome is what the plugin did with one input event.
type EventOutcome struct {
	// Line is the event's 1-based position in the input.
	Line int    `json:"line"`
	Name string `json:"name"`
	// Result is "kept", "dropped", "changed", "failed" (its batch failed)
	// or "too_large" (over max_event_bytes: never given to the plugin; a
	// stage handles such an event by its on_error).
	Result string `json:"result"`
	// Changes lists what changed, "kind key: old -> new" (Result "changed").
	Changes []string `json:"changes,omitempty"`
	// Failure is the failure kind and error of the event's batch (Result "failed").
	Failure string `json:"failure,omitempty"`
}

// ErrTestFailed is returned by RunTest when a batch failed.
var ErrTestFailed = errors.New("plugin failed on the test input")

// ErrTestInput is returned by RunTest when the input is not valid JSON
// lines of events (nothing was run).
var ErrTestInput = errors.New("bad test input")

// RunTest runs the input events through the plugin and writes, for every
// event, whether it was kept, dropped or changed (with the changes), then
// a summary with the time per event. It returns an error wrapping
// ErrTestFailed if any batch failed, or the load error.
func RunTest(ctx context.Context, w io.Writer, opts TestOptions) (_ TestSummary, err error) {
	var sum TestSummary
	events, err := pipeline.ReadEventsJSON(opts.Input)
	if err != nil {
		return sum, fmt.Errorf("%w: %w", ErrTestInput, err)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 64
	}
	if opts.TimeBudget <= 0 {
		opts.TimeBudget = 200 * time.Millisecond
	}
	hcfg := DefaultHostConfig()
	hcfg.Watch = false
	h, err := NewHost(hcfg, nil, nil)
	if err != nil {
		hcfg.Cache = false // no user cache dir: compile in memory
		if h, err = NewHost(hcfg, nil, nil); err != nil {
			return sum, err
		}
	}
	defer func() { err = errors.Join(err, h.Close(ctx)) }()
	cfg := DefaultConfig()
	cfg.Path, cfg.Kind, cfg.Config, cfg.Instances = opts.Path, opts.Kind, opts.Config, 1
	cfg.Deadline = hardMaxDeadline
	cfg.Trusted = opts.Trusted
	s, err := NewStage(ctx, h, pipeline.Settings{ID: pipeline.ComponentID{Type: TypeName, Name: "test"}, Logger: guestOnlyLogger(opts.Logger)}, cfg, nil, nil)
	if err != nil {
		return sum, err
	}
	defer func() { err = errors.Join(err, s.Shutdown(ctx)) }()
	ver, _ := s.Current()
	sum.Plugin, sum.Kind, sum.SHA256, sum.BatchSize = opts.Path, ver.Kind.String(), ver.SHA256, opts.BatchSize
	sum.Outcomes = make([]EventOutcome, 0, len(events))
	var b strings.Builder
	deadline := "deadline " + hardMaxDeadline.String()
	if opts.Trusted {
		deadline = "no deadline (trusted)"
	}
	sum.Fields = ver.Fields
	fields := fmt.Sprintf("fields %s (snk_fields() returned %d)", ver.Fields, ver.Fields)
	if !s.cur.Load().mod.hasFields {
		fields = fmt.Sprintf("fields %s (no snk_fields export)", ver.Fields)
	}
	// One header line: tests that compare outputs drop it (its sha256 differs).
	fmt.Fprintf(&b, "plugin %s: %s, sha256 %s, %s, %s\n", opts.Path, ver.Kind, ver.SHA256[:16], deadline, fields)

	var firstErr error
	for start := 0; start < len(events); start += opts.BatchSize {
		end := min(start+opts.BatchSize, len(events))
		in := events[start:end]
		batch := &pipeline.Batch{Events: make([]pipeline.Event, len(in))}
		for i := range in {
			batch.Events[i] = in[i]
			batch.Events[i].Seq = uint64(start + i)
		}
		out, fk, err := s.runOnce(ctx, batch)
		if err != nil {
			sum.FailedBatches++
			firstErr = cmpErr(firstErr, fmt.Errorf("events #%d-#%d: %s: %w", start+1, end, fk, err))
			fmt.Fprintf(&b, "#%d-#%d  FAILED  %s: %v\n", start+1, end, fk, err)
			sum.Events += len(in)
			for i := range in {
				sum.Outcomes = append(sum.Outcomes, EventOutcome{Line: start + i + 1, Name: in[i].Name, Result: "failed", Failure: fmt.Sprintf("%s: %v", fk, err)})
			}
			continue
		}
		byIndex := make(map[uint64]*pipeline.Event, out.Len())
		for i := range out.Events {
			byIndex[out.Events[i].Seq] = &out.Events[i]
		}
		for i := range in {
			sum.Events++
			got, ok := byIndex[uint64(start+i)]
			changes := []string(nil)
			if ok {
				changes = diffEvents(&in[i], got)
			}
			o := EventOutcome{Line: start + i + 1, Name: in[i].Name}
			sz, encOK := encodedSize(&in[i], ver.Fields, nil)
			switch {
			case sz > s.cfg.MaxEventBytes || !encOK:
				sum.TooLarge++
				o.Result = "too_large"
				fmt.Fprintf(&b, "#%d  too large  %s: %d bytes encoded, over max_event_bytes (%d); not given to the plugin\n", start+i+1, in[i].Name, sz, s.cfg.MaxEventBytes)
			case !ok:
				sum.Dropped++
				o.Result = "dropped"
				fmt.Fprintf(&b, "#%d  dropped  %s\n", start+i+1, in[i].Name)
			case len(changes) > 0:
				sum.Changed++
				o.Result, o.Changes = "changed", changes
				fmt.Fprintf(&b, "#%d  changed  %s\n", start+i+1, in[i].Name)
				for _, c := range changes {
					fmt.Fprintf(&b, "      %s\n", c)
				}
			default:
				sum.Kept++
				o.Result = "kept"
				fmt.Fprintf(&b, "#%d  kept     %s\n", start+i+1, in[i].Name)
			}
			sum.Outcomes = append(sum.Outcomes, o)
		}
	}
	if len(events) > 0 && sum.FailedBatches == 0 {
		sum.NsPerEvent = s.timeEvents(ctx, events, opts.BatchSize, opts.TimeBudget)
	}
	tooLarge := ""
	if sum.TooLarge > 0 {
		tooLarge = fmt.Sprintf("%d too large; ", sum.TooLarge)
	}
	fmt.Fprintf(&b, "summary: %d events: %d kept, %d dropped, %d changed; %s%d failed batches; batch size %d; %.0f ns/event\n",
		sum.Events, sum.Kept, sum.Dropped, sum.Changed, tooLarge, sum.FailedBatches, opts.BatchSize, sum.NsPerEvent)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return sum, err
	}
	if firstErr != nil {
		return sum, fmt.Errorf("%w: %w", ErrTestFailed, firstErr)
	}
	return sum, nil
}

// guestOnly is a stage logger that discards the host's own messages
// ("plugin version live", ...) and sends the guest's (the stage logs them
// through Named("guest")) to guest.
type guestOnly struct {
	hclog.Logger
	guest hclog.Logger
}

func guestOnlyLogger(guest hclog.Logger) hclog.Logger {
	if guest == nil {
		return nil
	}
	return guestOnly{Logger: hclog.NewNullLogger(), guest: guest}
}

func (g guestOnly) Named(name string) hclog.Logger {
	if name == "guest" {
		return g.guest
	}
	return g
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// runOnce runs one batch on an instance of the live version and reports
// a failure instead of applying on_error.
func (s *Stage) runOnce(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, failKind, error) {
	v := s.acquire()
	if v == nil {
		return nil, failNone, ErrStageClosed
	}
	defer v.release()
	inst, err := v.get(ctx)
	if err != nil {
		return nil, failInstantiate, err
	}
	_, fk, err := s.runOn(inst, v.info.Kind, b) // events over max_event_bytes pass (on_error: pass)
	v.put(inst, err != nil)
	return b, fk, err
}

// timeEvents repeats the input in batches until budget is spent and
// returns the mean guest time per event (encode + call + decode + apply).
func (s *Stage) timeEvents(ctx context.Context, events []pipeline.Event, batchSize int, budget time.Duration) float64 {
	var (
		total time.Duration
		n     int
	)
	batch := &pipeline.Batch{Events: make([]pipeline.Event, 0, batchSize)}
	for total < budget {
		for start := 0; start < len(events); start += batchSize {
			end := min(start+batchSize, len(events))
			batch.Events = append(batch.Events[:0], events[start:end]...)
			t0 := time.Now()
			if _, _, err := s.runOnce(ctx, batch); err != nil {
				return 0
			}
			total += time.Since(t0)
			n += end - start
		}
	}
	return float64(total.Nanoseconds()) / float64(n)
}

// diffEvents lists what changed from a to b: measurements and metadata,
// "kind key: old -> new".
func diffEvents(a, b *pipeline.Event) []string {
	var out []string
	show := func(v pipeline.Value) string {
		switch v.Kind {
		case pipeline.KindString:
			return strconv.Quote(v.Str)
		case pipeline.KindFloat:
			s := strconv.FormatFloat(v.Float, 'g', -1, 64)
			if !strings.ContainsAny(s, ".eEn") {
				s += ".0"
			}
			return s
		}
		return v.String()
	}
	for _, m := range a.Measurements {
		nv, ok := b.Measurement(m.Key)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("measurement %s: %s -> (deleted)", m.Key, show(m.Value)))
		case nv != m.Value:
			out = append(out, fmt.Sprintf("measurement %s: %s -> %s", m.Key, show(m.Value), show(nv)))
		}
	}
	for _, m := range b.Measurements {
		if _, ok := a.Measurement(m.Key); !ok {
			out = append(out, fmt.Sprintf("measurement %s: (none) -> %s", m.Key, show(m.Value)))
		}
	}
	metaOf := func(e *pipeline.Event, k string) (string, bool) {
		for _, l := range e.Metadata {
			if l.Key == k {
				return l.Value, true
			}
		}
		return "", false
	}
	for _, l := range a.Metadata {
		nv, ok := metaOf(b, l.Key)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("metadata %s: %q -> (deleted)", l.Key, l.Value))
		case nv != l.Value:
			out = append(out, fmt.Sprintf("metadata %s: %q -> %q", l.Key, l.Value, nv))
		}
	}
	for _, l := range b.Metadata {
		if _, ok := metaOf(a, l.Key); !ok {
			out = append(out, fmt.Sprintf("metadata %s: (none) -> %q", l.Key, l.Value))
		}
	}
	return out
}
