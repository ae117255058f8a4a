package statsdsink

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/sinks/sinktest"
)

// TestConformance runs the sink conformance suite. StatsD output is lossy:
// each event becomes one counter line "<event name>:1|c[|@rate]", read back
// from a local UDP socket, so Same compares the name and the sample rate.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		t.Cleanup(func() { _ = c.Close() })
		cfg := DefaultConfig()
		cfg.Address = c.LocalAddr().String()
		cfg.DefaultMappings = false
		cfg.Mappings = []Mapping{{Events: "*", Type: "counter", Name: "{event}"}}
		s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/conformance")}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got []pipeline.Event
		return sinktest.Harness{
			Sink: s,
			// Loopback UDP queues a datagram in the receiver's buffer
			// before the send returns, so after Shutdown everything sent is
			// already readable: drain without waiting for more.
			Delivered: func(t *testing.T) []pipeline.Event {
				buf := make([]byte, 1<<16)
				for {
					_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
					n, err := c.Read(buf)
					if errors.Is(err, os.ErrDeadlineExceeded) {
						return got
					}
					if err != nil {
						t.Fatal(err)
					}
					for _, line := range strings.Split(string(buf[:n]), "\n") {
						got = append(got, parseCounter(t, line))
					}
				}
			},
			Same: func(want, got *pipeline.Event) bool {
				return want.Name == got.Name && sampleRate(want) == got.SampleRate
			},
		}
	})
}

func parseCounter(t *testing.T, line string) pipeline.Event {
	t.Helper()
	if !lineRE.MatchString(line) {
		t.Fatalf("bad line %q", line)
	}
	name, rest, _ := strings.Cut(line, ":")
	e := pipeline.Event{Name: name, SampleRate: 1}
	parts := strings.Split(rest, "|")
	if parts[0] != "1" || parts[1] != "c" {
		t.Fatalf("line %q is not a counter of 1", line)
	}
	if len(parts) > 2 && strings.HasPrefix(parts[2], "@") {
		r, err := strconv.ParseFloat(parts[2][1:], 64)
		if err != nil {
			t.Fatalf("line %q: rate: %v", line, err)
		}
		e.SampleRate = r
	}
	return e
}
