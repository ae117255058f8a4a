package ingest

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the `ingest` section of the config file.
type Config struct {
	// Listen is the TCP address the gRPC server binds ("127.0.0.1:7417").
	Listen string `koanf:"listen"`
	// Reflection registers gRPC server reflection, so grpcurl can list and
	// describe the service without the .proto files.
	Reflection bool `koanf:"reflection"`
	// MaxMessageBytes is the largest frame accepted from a worker; a larger
	// one ends that stream with ResourceExhausted. Told to workers in Welcome.
	MaxMessageBytes int `koanf:"max_message_bytes"`
	// MaxBatchEvents bounds the events in one frame; a frame with more ends
	// its stream with ResourceExhausted. Together with max_message_bytes it
	// bounds the memory one frame can cost.
	MaxBatchEvents int `koanf:"max_batch_events"`
	// HelloTimeout is how long a new stream may take to send its Hello.
	HelloTimeout time.Duration `koanf:"hello_timeout"`
	// StatsInterval is how often workers are asked to send WorkerStats.
	StatsInterval time.Duration `koanf:"stats_interval"`
	// RejectNoticeInterval is the shortest gap between two RejectNotice
	// frames on one stream (sent only when the counts changed).
	RejectNoticeInterval time.Duration `koanf:"reject_notice_interval"`
	// MaxStreams bounds the number of live worker streams (all connections
	// together). A stream over the bound ends with ResourceExhausted.
	MaxStreams int `koanf:"max_streams"`
	// StreamWindowBytes is the HTTP/2 flow-control window of one stream:
	// how many bytes a worker may send ahead of what snakepipe has taken
	// into its pipeline. It bounds the memory of frames waiting in gRPC at
	// streams × this. Setting it also turns off gRPC's dynamic window
	// growth, which otherwise lets every stream buffer up to 16 MiB while
	// the pipeline applies backpressure (64 workers: 1 GiB).
	StreamWindowBytes int `koanf:"stream_window_bytes"`
	// DrainTimeout is how long Shutdown waits, after sending GoAway, for
	// workers to half-close their streams before ending them.
	DrainTimeout time.Duration `koanf:"drain_timeout"`
	// ReconnectAfter is the wait suggested to workers in GoAway.
	ReconnectAfter time.Duration `koanf:"reconnect_after"`
	// Keepalive detects dead peers.
	Keepalive KeepaliveConfig `koanf:"keepalive"`
	// Dial lists Snakepit workers to attach to (dial mode).
	Dial []DialTarget `koanf:"dial"`
	// DialBackoff bounds the reconnect backoff of dial mode.
	DialBackoff BackoffConfig `koanf:"dial_backoff"`
}

// KeepaliveConfig is the server's HTTP/2 keepalive behaviour.
type KeepaliveConfig struct {
	// Time: after this long without any frame from a connection, the server
	// pings it.
	Time time.Duration `koanf:"time"`
	// Timeout: a ping not answered within this closes the connection (and
	// its stream): the peer is gone.
	Timeout time.Duration `koanf:"timeout"`
	// MinClientInterval is the most often a client may ping; a client
	// pinging more often is disconnected (GOAWAY "too_many_pings").
	MinClientInterval time.Duration `koanf:"min_client_interval"`
}

// DialTarget is one Snakepit worker snakepipe dials.
type DialTarget struct {
	// Address of the worker's gRPC server ("127.0.0.1:50052").
	Address string `koanf:"address"`
	// WorkerID identifies the worker in snakepipe (Snakepit workers send no
	// Hello). Required and unique.
	WorkerID string `koanf:"worker_id"`
	// Pool of the worker; "" means "default".
	Pool string `koanf:"pool"`
}

// BackoffConfig is an exponential backoff with full jitter.
type BackoffConfig struct {
	Initial time.Duration `koanf:"initial"`
	Max     time.Duration `koanf:"max"`
}

// Limits the config may not exceed.
const (
	// Bounds of stream_window_bytes: gRPC's minimum window, and the most
	// its dynamic growth would reach.
	minStreamWindowBytes = 64 << 10
	maxStreamWindowBytes = 16 << 20
	// MaxMessageBytesLimit caps max_message_bytes (64 MiB): one frame is
	// copied once into memory and held until its events leave the pipeline.
	MaxMessageBytesLimit = 64 << 20
	minMessageBytes      = 4 << 10
	maxWorkerIDBytes     = 128
)

// DefaultConfig returns the defaults documented in docs/config.md.
func DefaultConfig() Config {
	return Config{
		Listen:               "127.0.0.1:7417",
		Reflection:           true,
		MaxMessageBytes:      4 << 20,
		MaxBatchEvents:       10000,
		HelloTimeout:         10 * time.Second,
		StatsInterval:        5 * time.Second,
		RejectNoticeInterval: time.Second,
		MaxStreams:           4096,
		StreamWindowBytes:    256 << 10,
		DrainTimeout:         5 * time.Second,
		ReconnectAfter:       time.Second,
		Keepalive: KeepaliveConfig{
			Time:              30 * time.Second,
			Timeout:           10 * time.Second,
			MinClientInterval: 10 * time.Second,
		},
		DialBackoff: BackoffConfig{Initial: 500 * time.Millisecond, Max: 30 * time.Second},
	}
}

// Validate reports every problem, each naming its key under "ingest".
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ingest.%s: "+format, append([]any{key}, args...)...))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port: %w", c.Listen, err)
	}
	if c.MaxMessageBytes < minMessageBytes || c.MaxMessageBytes > MaxMessageBytesLimit {
		bad("max_message_bytes", "%d is not in [%d, %d]", c.MaxMessageBytes, minMessageBytes, MaxMessageBytesLimit)
	}
	if c.MaxBatchEvents < 1 || c.MaxBatchEvents > 1_000_000 {
		bad("max_batch_events", "%d is not in [1, 1000000]", c.MaxBatchEvents)
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be positive, got %s", d)
		}
	}
	positive("hello_timeout", c.HelloTimeout)
	positive("stats_interval", c.StatsInterval)
	positive("reject_notice_interval", c.RejectNoticeInterval)
	positive("drain_timeout", c.DrainTimeout)
	if c.StatsInterval > time.Duration(1<<32-1)*time.Millisecond {
		bad("stats_interval", "%s is too long", c.StatsInterval)
	}
	if c.ReconnectAfter < 0 || c.ReconnectAfter > time.Hour {
		bad("reconnect_after", "%s is not in [0, 1h]", c.ReconnectAfter)
	}
	if c.MaxStreams < 1 || c.MaxStreams > 1<<20 {
		bad("max_streams", "%d is not in [1, %d]", c.MaxStreams, 1<<20)
	}
	if c.StreamWindowBytes < minStreamWindowBytes || c.StreamWindowBytes > maxStreamWindowBytes {
		bad("stream_window_bytes", "%d is not in [%d, %d]", c.StreamWindowBytes, minStreamWindowBytes, maxStreamWindowBytes)
	}
	positive("keepalive.time", c.Keepalive.Time)
	positive("keepalive.timeout", c.Keepalive.Timeout)
	if c.Keepalive.MinClientInterval < 0 {
		bad("keepalive.min_client_interval", "must not be negative, got %s", c.Keepalive.MinClientInterval)
	}
	positive("dial_backoff.initial", c.DialBackoff.Initial)
	if c.DialBackoff.Max < c.DialBackoff.Initial {
		bad("dial_backoff.max", "%s is shorter than dial_backoff.initial %s", c.DialBackoff.Max, c.DialBackoff.Initial)
	}
	seen := map[string]int{}
	for i, d := range c.Dial {
		key := fmt.Sprintf("dial[%d]", i)
		if _, _, err := net.SplitHostPort(d.Address); err != nil {
			bad(key+".address", "%q is not host:port: %w", d.Address, err)
		}
		if err := checkWorkerID(d.WorkerID); err != nil {
			bad(key+".worker_id", "%w", err)
		} else if j, dup := seen[d.WorkerID]; dup {
			bad(key+".worker_id", "%q is already used by dial[%d]", d.WorkerID, j)
		} else {
			seen[d.WorkerID] = i
		}
		if len(d.Pool) > maxWorkerIDBytes {
			bad(key+".pool", "longer than %d bytes", maxWorkerIDBytes)
		}
	}
	return errors.Join(errs...)
}

// checkWorkerID checks a worker id: non-empty, at most 128 bytes, no
// control characters.
func checkWorkerID(id string) error {
	if id == "" {
		return errors.New("worker_id is required")
	}
	if len(id) > maxWorkerIDBytes {
		return fmt.Errorf("worker_id is %d bytes, more than %d", len(id), maxWorkerIDBytes)
	}
	if hasControl(id) {
		return fmt.Errorf("worker_id %q holds control characters", id)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}
