package statsdsink

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// collectSink is the "other sink" of a fan-out: it records event counts.
type collectSink struct {
	mu     sync.Mutex
	events int
}

func (c *collectSink) Start(context.Context) error    { return nil }
func (c *collectSink) Shutdown(context.Context) error { return nil }
func (c *collectSink) Write(_ context.Context, b *pipeline.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events += b.Len()
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func metric(m *pipeline.Metrics, name string, kv ...string) float64 {
	v, _ := m.Value(name, pipeline.L(kv...)...)
	return v
}

// TestStatsdAbsentDoesNotAffectPipeline fans batches out to a statsd sink
// whose server is absent (udp: closed port; tcp: nothing listening) and to
// another sink. The other sink gets everything, the fan-out never blocks,
// and the failures show in the counters. For tcp, the server then comes up
// and the queued batches are delivered once the circuit's probe succeeds.
func TestStatsdAbsentDoesNotAffectPipeline(t *testing.T) {
	for _, network := range []string{NetworkUDP, NetworkTCP} {
		t.Run(network, func(t *testing.T) {
			var addr string
			if network == NetworkUDP {
				c, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = c.LocalAddr().String()
				_ = c.Close()
			} else {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = l.Addr().String()
				_ = l.Close()
			}
			m := pipeline.NewMetrics()
			cfg := issueConfig("dogstatsd")
			cfg.Network, cfg.Address = network, addr
			ssink, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/down"), Metrics: m}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ecfg := pipeline.DefaultExporterConfig()
			ecfg.Retry.InitialInterval = 5 * time.Millisecond
			ecfg.Retry.MaxInterval = 20 * time.Millisecond
			ecfg.Circuit = pipeline.CircuitConfig{FailureThreshold: 3, OpenDuration: 50 * time.Millisecond}
			ecfg.Queue.MaxEvents = 1000
			statsd := pipeline.NewExporter(pipeline.Settings{ID: pipeline.MustComponentID("statsd/down"), Metrics: m}, ssink, ecfg)
			other := &collectSink{}
			file := pipeline.NewExporter(pipeline.Settings{ID: pipeline.MustComponentID("collect"), Metrics: m}, other, pipeline.DefaultExporterConfig())
			ctx := context.Background()
			for _, e := range []*pipeline.Exporter{statsd, file} {
				if err := e.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
			const batches = 200
			for i := 0; i < batches; i++ {
				b := batchOf(callStop(int64(i), 1), callStop(int64(i), 0.5))
				for _, e := range []*pipeline.Exporter{statsd, file} {
					if err := e.Write(ctx, b); err != nil {
						t.Fatal(err)
					}
				}
				if network == NetworkUDP {
					time.Sleep(100 * time.Microsecond) // let ICMP errors come back
				}
			}
			waitFor(t, "the other sink to get every event", func() bool {
				other.mu.Lock()
				defer other.mu.Unlock()
				return other.events == 2*batches
			})
			id := []string{"sink", "statsd/down"}
			waitFor(t, "statsd failures to be counted", func() bool {
				return metric(m, "snakepipe_sink_failed_total", append(id, "reason", "transient")...) > 0
			})
			errReason := "conn_refused"
			if network == NetworkTCP {
				errReason = "dial"
			}
			if got := metric(m, "snakepipe_statsd_send_errors_total", append(id, "reason", errReason)...); got == 0 {
				t.Errorf("send_errors{%s} = 0", errReason)
			}
			if network == NetworkUDP {
				shutdownAll(t, statsd, file)
				return
			}
			// tcp: nothing was delivered, so the circuit must have opened.
			waitFor(t, "the circuit to open", func() bool { return metric(m, "snakepipe_sink_circuit_open", id...) == 1 })
			// The server comes up on the same address; the half-open probe
			// succeeds and the queue drains into it.
			srv := listenTCPAt(t, addr)
			waitFor(t, "the circuit to close", func() bool { return metric(m, "snakepipe_sink_circuit_open", id...) == 0 })
			shutdownAll(t, statsd, file)
			written := metric(m, "snakepipe_sink_events_written_total", id...)
			dropped := 0.0
			for _, r := range []string{"queue_full", "evicted_oldest", "permanent", "retries_exhausted", "shutdown"} {
				dropped += metric(m, "snakepipe_sink_dropped_total", append(id, "reason", r)...)
			}
			if written == 0 || written+dropped != 2*batches {
				t.Fatalf("written %v + dropped %v != %d events", written, dropped, 2*batches)
			}
			lines := srv.waitLines(t, int(written)*2) // timer + counter per event
			for _, l := range lines {
				if !lineRE.MatchString(l) {
					t.Fatalf("bad line after recovery: %q", l)
				}
			}
		})
	}
}

func shutdownAll(t *testing.T, cs ...pipeline.Component) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range cs {
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// lineServer is a tcp statsd stand-in on a fixed address.
type lineServer struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	wg    sync.WaitGroup
}

func listenTCPAt(t *testing.T, addr string) *lineServer {
	t.Helper()
	var ln net.Listener
	var err error
	waitFor(t, "to listen on "+addr, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	s := &lineServer{ln: ln}
	var conns []net.Conn
	var cmu sync.Mutex
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns = append(conns, c)
			cmu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				buf := make([]byte, 64<<10)
				var pending string
				for {
					n, err := c.Read(buf)
					if n > 0 {
						pending += string(buf[:n])
						parts := strings.Split(pending, "\n")
						pending = parts[len(parts)-1]
						s.mu.Lock()
						s.lines = append(s.lines, parts[:len(parts)-1]...)
						s.mu.Unlock()
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		cmu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		cmu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *lineServer) waitLines(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	waitFor(t, "lines to arrive", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		out = append(out[:0], s.lines...)
		return len(out) >= n
	})
	return out
}
