package statsdsink

import (
	"context"
	"net"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// benchUDP measures lines per second handed to a local UDP listener, with
// packing up to maxPacket bytes (0 = one line per datagram).
func benchUDP(b *testing.B, maxPacket int) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			// Read, not ReadFrom: no per-datagram address allocation in
			// the listener, so allocs/op show the sink's own.
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	defer func() { _ = c.Close(); <-done }()
	cfg := issueConfig("dogstatsd")
	cfg.Address = c.LocalAddr().String()
	cfg.MaxPacketBytes = maxPacket
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/bench")}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Shutdown(ctx) }()
	var evs []pipeline.Event
	for i := 0; i < 256; i++ {
		evs = append(evs, callStop(int64(i)*1000+1, 1, pipeline.Label{Key: "tool", Value: "resize"}))
	}
	batch := &pipeline.Batch{Events: evs}
	if err := s.Write(ctx, batch); err != nil {
		b.Fatal(err)
	}
	lines := 2 * len(evs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

func BenchmarkUDPPacked1432(b *testing.B)         { benchUDP(b, 1432) }
func BenchmarkUDPOneLinePerDatagram(b *testing.B) { benchUDP(b, 0) }
