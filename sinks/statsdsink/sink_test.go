package statsdsink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/snakepipe/snakepipe/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// udpServer collects datagrams sent to it.
type udpServer struct {
	conn net.PacketConn
	mu   sync.Mutex
	pkts []string
	got  chan struct{}
	done chan struct{}
}

func newUDPServer(t testing.TB) *udpServer {
	t.Helper()
	return newPacketServer(t, "udp", "127.0.0.1:0")
}

func newPacketServer(t testing.TB, network, addr string) *udpServer {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if uc, ok := c.(interface{ SetReadBuffer(int) error }); ok {
		_ = uc.SetReadBuffer(4 << 20) // bursts of small datagrams in tests
	}
	s := &udpServer{conn: c, got: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 1<<16)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.pkts = append(s.pkts, string(buf[:n]))
			s.mu.Unlock()
			select {
			case s.got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *udpServer) close() { _ = s.conn.Close(); <-s.done }

func (s *udpServer) addr() string { return s.conn.LocalAddr().String() }

// waitLines waits until at least n lines arrived (loopback delivery is
// asynchronous) and returns all packets.
func (s *udpServer) waitLines(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		pkts := append([]string(nil), s.pkts...)
		s.mu.Unlock()
		if countLines(pkts) >= n {
			return pkts
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("got %d lines, want %d; first packets: %.600q", countLines(pkts), n, pkts)
		}
	}
}

func countLines(pkts []string) int {
	n := 0
	for _, p := range pkts {
		n += len(strings.Split(p, "\n"))
	}
	return n
}

func newSink(t testing.TB, cfg *Config) (*Sink, *pipeline.Metrics) {
	t.Helper()
	m := pipeline.NewMetrics()
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/test"), Metrics: m}, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s, m
}

func counterValue(m *pipeline.Metrics, name string, kv ...string) float64 {
	v, _ := m.Value(name, pipeline.L(append([]string{"sink", "statsd/test"}, kv...)...)...)
	return v
}

func batchOf(events ...pipeline.Event) *pipeline.Batch { return &pipeline.Batch{Events: events} }

func TestPackingRespectsMaxPacketBytes(t *testing.T) {
	for _, max := range []int{1432, 200, 0} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			srv := newUDPServer(t)
			cfg := issueConfig("dogstatsd")
			cfg.Address = srv.addr()
			cfg.MaxPacketBytes = max
			s, m := newSink(t, cfg)
			// One line per datagram is a burst of small datagrams that a
			// loopback socket buffer may not hold; keep that case small.
			events := 300
			if max == 0 {
				events = 50
			}
			var evs []pipeline.Event
			for i := 0; i < events; i++ {
				evs = append(evs, callStop(int64(i)*1000, 1, pipeline.Label{Key: "tool", Value: fmt.Sprintf("t%d", i%7)}))
			}
			if err := s.Write(context.Background(), batchOf(evs...)); err != nil {
				t.Fatal(err)
			}
			pkts := srv.waitLines(t, 2*events)
			for _, p := range pkts {
				if max > 0 && len(p) > max {
					t.Fatalf("datagram of %d bytes > max_packet_bytes %d", len(p), max)
				}
				if max == 0 && strings.Contains(p, "\n") {
					t.Fatalf("max_packet_bytes 0 must send one line per datagram, got %q", p)
				}
				for _, l := range strings.Split(p, "\n") {
					if !lineRE.MatchString(l) {
						t.Fatalf("bad line %q", l)
					}
				}
			}
			if countLines(pkts) != 2*events {
				t.Fatalf("got %d lines, want %d", countLines(pkts), 2*events)
			}
			if got := counterValue(m, "snakepipe_statsd_packets_total"); int(got) != len(pkts) {
				t.Errorf("packets_total = %v, want %d", got, len(pkts))
			}
			if max == 1432 && len(pkts) > 600*50/1432+5 {
				t.Errorf("%d datagrams for 600 short lines: not packed", len(pkts))
			}
			// Datagrams are filled: each one plus the next packet's first line would overflow.
			if max > 0 {
				for i := 0; i+1 < len(pkts); i++ {
					next := strings.SplitN(pkts[i+1], "\n", 2)[0]
					if len(pkts[i])+1+len(next) <= max {
						t.Fatalf("packet %d (%d bytes) had room for %q", i, len(pkts[i]), next)
					}
				}
			}
		})
	}
}

func TestSampleRateAndAggregation(t *testing.T) {
	srv := newUDPServer(t)
	cfg := issueConfig("dogstatsd")
	cfg.TagKeys = []string{"pool"}
	cfg.Address = srv.addr()
	cfg.AggregateCounters = true
	cfg.FlushInterval = time.Hour // flushed by hand below
	s, m := newSink(t, cfg)
	var evs []pipeline.Event
	for i := 0; i < 10; i++ {
		evs = append(evs, callStop(1e6, 0.1)) // pool gpu
	}
	other := callStop(1e6, 1)
	other.Origin = &pipeline.Origin{Pool: "cpu"}
	evs = append(evs, other, other)
	if err := s.Write(context.Background(), batchOf(evs...)); err != nil {
		t.Fatal(err)
	}
	// Timers are sent at once, with the rate; counters wait for the flush.
	pkts := srv.waitLines(t, 12)
	for _, l := range strings.Split(strings.Join(pkts, "\n"), "\n") {
		if !strings.HasPrefix(l, "python.call.duration:1|ms") {
			t.Fatalf("unexpected line before flush: %q", l)
		}
	}
	if got := strings.Count(strings.Join(pkts, "\n"), "|@0.1|#pool:gpu"); got != 10 {
		t.Errorf("%d timer lines carry |@0.1, want 10", got)
	}
	if got, _ := m.Value("snakepipe_statsd_aggregated_keys", pipeline.L("sink", "statsd/test")...); got != 2 {
		t.Errorf("aggregated_keys = %v, want 2", got)
	}
	// A second write adds to the same keys.
	if err := s.Write(context.Background(), batchOf(other)); err != nil {
		t.Fatal(err)
	}
	srv.waitLines(t, 13)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	pkts = srv.waitLines(t, 15)
	var counters []string
	for _, l := range strings.Split(strings.Join(pkts, "\n"), "\n") {
		if strings.HasPrefix(l, "python.call.count") {
			counters = append(counters, l)
		}
	}
	sort.Strings(counters)
	// 10 events kept at 0.1 stand for 100; 3 unsampled ones for 3.
	want := []string{"python.call.count:100|c|#pool:gpu", "python.call.count:3|c|#pool:cpu"}
	if strings.Join(counters, " ") != strings.Join(want, " ") {
		t.Errorf("aggregated counters %q, want %q (pre-scaled by 1/rate, no |@)", counters, want)
	}
	if got := counterValue(m, "snakepipe_statsd_lines_total"); got != 15 {
		t.Errorf("lines_total = %v, want 15", got)
	}
}

func TestAggregationOverflowSendsDirectly(t *testing.T) {
	srv := newUDPServer(t)
	cfg := issueConfig("dogstatsd")
	cfg.TagKeys = []string{"tool"}
	cfg.Address = srv.addr()
	cfg.AggregateCounters = true
	cfg.MaxAggregateKeys = 2
	cfg.FlushInterval = time.Hour
	s, _ := newSink(t, cfg)
	var evs []pipeline.Event
	for i := 0; i < 4; i++ {
		evs = append(evs, callStop(1e6, 1, pipeline.Label{Key: "tool", Value: fmt.Sprint("t", i)}))
	}
	if err := s.Write(context.Background(), batchOf(evs...)); err != nil {
		t.Fatal(err)
	}
	pkts := srv.waitLines(t, 6) // 4 timers + 2 counters over the bound
	if got := strings.Count(strings.Join(pkts, "\n"), "python.call.count:1|c"); got != 2 {
		t.Errorf("%d counters sent directly, want 2 (bound 2): %q", got, pkts)
	}
	if len(s.agg) != 2 {
		t.Errorf("aggregation map holds %d keys, bound is 2", len(s.agg))
	}
}

func TestShutdownFlushesAggregates(t *testing.T) {
	srv := newUDPServer(t)
	cfg := issueConfig("none")
	cfg.Address = srv.addr()
	cfg.AggregateCounters = true
	cfg.FlushInterval = time.Hour
	m := pipeline.NewMetrics()
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/test"), Metrics: m}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Write(context.Background(), batchOf(callStop(1, 0.5))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	pkts := srv.waitLines(t, 4)
	if !strings.Contains(strings.Join(pkts, "\n"), "python.call.count:6|c") {
		t.Errorf("shutdown did not flush the aggregated counter: %q", pkts)
	}
	if err := s.Write(context.Background(), batchOf(callStop(1, 1))); !pipeline.IsPermanent(err) || !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Shutdown = %v, want permanent ErrClosed", err)
	}
}

func TestUDPClosedPortIsTransientAndCounted(t *testing.T) {
	// Reserve a port, then close it: nothing listens there.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	_ = c.Close()
	cfg := issueConfig("none")
	cfg.Address = addr
	s, m := newSink(t, cfg)
	var errs int
	for i := 0; i < 50; i++ {
		err := s.Write(context.Background(), batchOf(callStop(1, 1)))
		if err != nil {
			if pipeline.IsPermanent(err) {
				t.Fatalf("refused UDP send reported as permanent: %v", err)
			}
			errs++
		}
		if errs >= 3 {
			break
		}
		time.Sleep(time.Millisecond) // let the ICMP error arrive
	}
	if errs == 0 {
		t.Fatal("no send to a closed UDP port ever failed")
	}
	if got := counterValue(m, "snakepipe_statsd_send_errors_total", "reason", "conn_refused"); got != float64(errs) {
		t.Errorf("send_errors{conn_refused} = %v, want %d", got, errs)
	}
}

// tcpServer accepts connections and collects newline-delimited lines.
type tcpServer struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	conns []net.Conn
	wg    sync.WaitGroup
	got   chan struct{}
}

func newTCPServer(t *testing.T) *tcpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln, got: make(chan struct{}, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
					select {
					case s.got <- struct{}{}:
					default:
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.dropConns()
		s.wg.Wait()
	})
	return s
}

func (s *tcpServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

func (s *tcpServer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		all := strings.Join(s.lines, "\n")
		s.mu.Unlock()
		if strings.Contains(all, want) {
			return
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("line %q never arrived; got %q", want, all)
		}
	}
}

func TestTCPReconnects(t *testing.T) {
	srv := newTCPServer(t)
	cfg := issueConfig("dogstatsd")
	cfg.Network = NetworkTCP
	cfg.Address = srv.ln.Addr().String()
	cfg.TagKeys = []string{"tool"}
	s, m := newSink(t, cfg)
	write := func(tool string) error {
		return s.Write(context.Background(), batchOf(callStop(1e6, 1, pipeline.Label{Key: "tool", Value: tool})))
	}
	if err := write("first"); err != nil {
		t.Fatal(err)
	}
	srv.waitFor(t, "python.call.count:1|c|#tool:first")
	// The server drops the connection; the sink notices on a later write,
	// reports a transient error, and the next attempt redials.
	srv.dropConns()
	var failures int
	for i := 0; i < 1000; i++ {
		err := write("again")
		if err == nil && failures > 0 {
			break
		}
		if err != nil {
			if pipeline.IsPermanent(err) {
				t.Fatalf("broken tcp connection reported as permanent: %v", err)
			}
			failures++
		}
		time.Sleep(time.Millisecond)
	}
	if failures == 0 {
		t.Fatal("writes on a dropped tcp connection never failed")
	}
	srv.waitFor(t, "python.call.count:1|c|#tool:again")
	if got := counterValue(m, "snakepipe_statsd_send_errors_total", "reason", "write") + counterValue(m, "snakepipe_statsd_send_errors_total", "reason", "conn_refused"); got < 1 {
		t.Errorf("send errors not counted")
	}
}

func TestTCPServerAbsent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg := issueConfig("none")
	cfg.Network = NetworkTCP
	cfg.Address = addr
	s, m := newSink(t, cfg)
	err = s.Write(context.Background(), batchOf(callStop(1, 1)))
	if err == nil || pipeline.IsPermanent(err) {
		t.Fatalf("Write to an absent tcp server = %v, want a transient error", err)
	}
	// One dial at Start, one at Write.
	if got := counterValue(m, "snakepipe_statsd_send_errors_total", "reason", "dial"); got != 2 {
		t.Errorf("send_errors{dial} = %v, want 2", got)
	}
}

func TestUnixgram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "statsd.sock")
	srv := newPacketServer(t, "unixgram", path)
	cfg := issueConfig("influxdb")
	cfg.Network = NetworkUnixgram
	cfg.Address = path
	s, _ := newSink(t, cfg)
	if err := s.Write(context.Background(), batchOf(callStop(2e6, 1))); err != nil {
		t.Fatal(err)
	}
	pkts := srv.waitLines(t, 2)
	want := "python.call.duration,pool=gpu,pid=4242:2|ms\npython.call.count,pool=gpu,pid=4242:1|c"
	if pkts[0] != want {
		t.Errorf("datagram %q, want %q", pkts[0], want)
	}
}

func TestWriteHonoursCancelledContext(t *testing.T) {
	srv := newUDPServer(t)
	cfg := issueConfig("none")
	cfg.Address = srv.addr()
	s, _ := newSink(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, batchOf(callStop(1, 1))); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	srv := newUDPServer(t)
	cfg := issueConfig("dogstatsd")
	cfg.Address = srv.addr()
	s, _ := newSink(t, cfg)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < 20; i++ {
				if err := s.Write(context.Background(), batchOf(callStop(1e6, 1), callStop(2e6, 0.5))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	pkts := srv.waitLines(t, 8*20*4)
	for _, p := range pkts {
		for _, l := range strings.Split(p, "\n") {
			if !lineRE.MatchString(l) {
				t.Fatalf("torn or bad line %q", l)
			}
		}
	}
}
