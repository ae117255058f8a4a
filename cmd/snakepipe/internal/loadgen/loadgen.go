package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
)

// Options configure a run.
type Options struct {
	// Target is the ingest address (host:port).
	Target string
	// Admin is the admin address whose /metrics is scraped before and after
	// ("" = no host figures).
	Admin string
	// AdminToken is sent as a bearer token to the admin listener.
	AdminToken string
	// Workers is the number of emulated worker processes (streams).
	Workers int
	// Duration bounds the run; Count bounds the events sent (0 = no bound;
	// at least one of the two must be set).
	Duration time.Duration
	Count    uint64
	// Rate is the total target events per second (0 = as fast as possible).
	Rate float64
	// Batch is events per frame.
	Batch int
	// Latency stamps the send time into every event so the host's sink
	// latency histogram measures send-to-sink-write.
	Latency bool
	// Pool is the pool name in every Hello.
	Pool string
	// Progress, when set, is called about once a second.
	Progress func(Progress)
}

// Progress is a live view of a run.
type Progress struct {
	Elapsed time.Duration
	Sent    uint64
	Errors  uint64
	Rate    float64 // events/s over the last interval
}

// Report is the result of a run.
type Report struct {
	Workers         int     `json:"workers"`
	Batch           int     `json:"batch"`
	TargetRate      float64 `json:"target_rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	EventsSent      uint64  `json:"events_sent"`
	FramesSent      uint64  `json:"frames_sent"`
	BytesSent       uint64  `json:"bytes_sent"`
	Errors          uint64  `json:"errors"`
	EventsPerSecond float64 `json:"events_per_second"`
	// LoadgenCPUSecondsPerMillion is this process's CPU (user+sys) per
	// million events sent.
	LoadgenCPUSeconds           float64 `json:"loadgen_cpu_seconds"`
	LoadgenCPUSecondsPerMillion float64 `json:"loadgen_cpu_seconds_per_million"`
	// Host figures, from the admin /metrics (absent without Admin).
	Host *HostReport `json:"host,omitempty"`
	// FirstError is the first error seen, for diagnosis.
	FirstError string `json:"first_error,omitempty"`
}

// HostReport is what the host's metrics say happened during the run.
type HostReport struct {
	EventsReceived       float64            `json:"events_received"`
	EventsRejected       float64            `json:"events_rejected"`
	EventsDropped        map[string]float64 `json:"events_dropped"`
	EventsWritten        float64            `json:"events_written"`
	CPUSeconds           float64            `json:"cpu_seconds"`
	CPUSecondsPerMillion float64            `json:"cpu_seconds_per_million"`
	RSSStartBytes        float64            `json:"rss_start_bytes"`
	RSSEndBytes          float64            `json:"rss_end_bytes"`
	LatencyP50Ms         float64            `json:"latency_p50_ms,omitempty"`
	LatencyP99Ms         float64            `json:"latency_p99_ms,omitempty"`
	LatencyMaxBucketMs   float64            `json:"latency_max_bucket_ms,omitempty"`
	LatencyObservations  float64            `json:"latency_observations,omitempty"`
	// DrainSeconds is how long after the last send the host took to account
	// for every event (measured by polling /metrics every 250 ms).
	DrainSeconds float64 `json:"drain_seconds"`
	// PluginFailures counts Wasm batches that failed (trap, timeout, ...):
	// their events took the stage's on_error path instead of the plugin.
	PluginFailures         float64 `json:"plugin_failures"`
	EventsWrittenPerSecond float64 `json:"events_written_per_second"`
}

// rawCodec sends pre-encoded frames as they are and decodes control frames
// with the generated code (they are few).
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(*[]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

var streamDesc = &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

// ErrNoBound is returned when neither Duration nor Count is set.
var ErrNoBound = errors.New("loadgen: set a duration or an event count")

func (o *Options) defaults() error {
	if o.Workers <= 0 {
		o.Workers = 64
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.Pool == "" {
		o.Pool = "loadgen"
	}
	if o.Duration <= 0 && o.Count == 0 {
		return ErrNoBound
	}
	if o.Target == "" {
		return errors.New("loadgen: --target is required")
	}
	return nil
}

type counters struct {
	events, frames, bytes, errors atomic.Uint64
	firstErr                      sync.Once
	firstErrMsg                   atomic.Value
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	c.firstErr.Do(func() { c.firstErrMsg.Store(err.Error()) })
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// Run emulates the workers until the duration or count is reached or ctx
// ends, then reports.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	var before *hostMetrics
	if o.Admin != "" {
		var err error
		if before, err = scrape(ctx, o.Admin, o.AdminToken); err != nil {
			return nil, fmt.Errorf("loadgen: admin metrics: %w", err)
		}
	}
	conn, err := grpc.NewClient(o.Target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
	)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	defer conn.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Duration > 0 {
		runCtx, cancel = context.WithTimeout(runCtx, o.Duration)
		defer cancel()
	}
	var c counters
	var budget atomic.Int64 // events left when Count is set
	budget.Store(int64(o.Count))
	perWorkerRate := o.Rate / float64(o.Workers)

	cpu0, start := cpuSeconds(), time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			runWorker(runCtx, conn, o, w, perWorkerRate, &c, &budget)
		}(w)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	progressDone := make(chan struct{})
	if o.Progress != nil {
		go func() { defer close(progressDone); progress(done, start, &c, o.Progress) }()
	} else {
		close(progressDone)
	}
	<-done
	<-progressDone // no Progress call runs once Run returns
	elapsed := time.Since(start)
	cpu := cpuSeconds() - cpu0

	r := &Report{
		Workers: o.Workers, Batch: o.Batch, TargetRate: o.Rate, DurationSeconds: elapsed.Seconds(),
		EventsSent: c.events.Load(), FramesSent: c.frames.Load(), BytesSent: c.bytes.Load(), Errors: c.errors.Load(),
		LoadgenCPUSeconds: cpu,
	}
	if msg, ok := c.firstErrMsg.Load().(string); ok {
		r.FirstError = msg
	}
	r.EventsPerSecond = float64(r.EventsSent) / elapsed.Seconds()
	if r.EventsSent > 0 {
		r.LoadgenCPUSecondsPerMillion = cpu / float64(r.EventsSent) * 1e6
	}
	if before != nil {
		// Give the host a moment to drain what is in flight to the sinks.
		// Each stream also makes two host events (worker connected and
		// disconnected) that go through the pipelines like worker events.
		after, err := settle(ctx, o.Admin, o.AdminToken, before, float64(r.EventsSent)+2*float64(o.Workers))
		if err != nil {
			return r, fmt.Errorf("loadgen: admin metrics: %w", err)
		}
		r.Host = hostReport(before, after, r.EventsSent, o.Latency)
		// What the sinks sustained: events written over the whole time the
		// host was busy with the run (sending, then draining its queues).
		r.Host.DrainSeconds = time.Since(start).Seconds() - elapsed.Seconds()
		r.Host.EventsWrittenPerSecond = r.Host.EventsWritten / time.Since(start).Seconds()
	}
	return r, nil
}

func progress(done <-chan struct{}, start time.Time, c *counters, f func(Progress)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last uint64
	lastT := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			sent := c.events.Load()
			f(Progress{Elapsed: now.Sub(start), Sent: sent, Errors: c.errors.Load(), Rate: float64(sent-last) / now.Sub(lastT).Seconds()})
			last, lastT = sent, now
		}
	}
}

// framesPerWorker is how many distinct pre-encoded frames each worker cycles
// through, so the host does not see one frame repeated.
const framesPerWorker = 16

func runWorker(ctx context.Context, conn *grpc.ClientConn, o Options, w int, rate float64, c *counters, budget *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(w)+1, 0x5eed))
	frames := make([]*frame, framesPerWorker)
	now := time.Now().UnixNano()
	for i := range frames {
		frames[i] = buildFrame(rng, o.Batch, uint64(i+1), now)
	}
	hostname, _ := os.Hostname()
	hello, err := proto.Marshal(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{
		WorkerId: fmt.Sprintf("loadgen-%d-%03d", os.Getpid(), w), Pool: o.Pool, Hostname: hostname, Pid: int64(os.Getpid()),
		LibraryName: "snakepipe-loadgen", LibraryVersion: "1", ProtocolVersion: 1,
	}}})
	if err != nil {
		c.fail(err)
		return
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stream, err := conn.NewStream(sctx, streamDesc, "/snakepipe.v1.Ingest/Stream")
	if err != nil {
		c.fail(err)
		return
	}
	if err := stream.SendMsg(&hello); err != nil {
		c.fail(err)
		return
	}
	// Drain control frames (Welcome, policy, reject notices) so the host's
	// sends never block on us. This goroutine is the stream's only reader;
	// ended is closed when the host ends the stream.
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			var m pb.ControlMessage
			if err := stream.RecvMsg(&m); err != nil {
				return
			}
		}
	}()

	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(o.Batch) / rate * float64(time.Second))
	}
	next := time.Now()
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			break
		}
		f := frames[i%len(frames)]
		last := false
		if o.Count > 0 {
			left := budget.Add(-int64(o.Batch))
			if left <= -int64(o.Batch) {
				break
			}
			if left < 0 {
				// The run's last, partial batch: exactly Count events in all.
				f = buildFrame(rng, o.Batch+int(left), uint64(framesPerWorker+1), time.Now().UnixNano())
				last = true
			}
		}
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
			}
		}
		buf := f.buf
		if o.Latency {
			// gRPC may still hold an earlier send of this frame's bytes in
			// its write queue, so stamp a copy (latency runs are at a fixed,
			// modest rate: the copy costs nothing that matters).
			buf = f.stamped(time.Now().UnixNano())
		}
		if err := stream.SendMsg(&buf); err != nil {
			c.fail(err)
			return
		}
		c.events.Add(uint64(f.events))
		c.frames.Add(1)
		c.bytes.Add(uint64(len(buf)))
		if last {
			break
		}
	}
	// Half-close and wait for the host to end the stream, so every frame we
	// sent has been received before the report is made.
	_ = stream.CloseSend()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		c.fail(errors.New("host did not end the stream within 10s of half-close"))
	}
}
