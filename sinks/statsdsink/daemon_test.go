package statsdsink

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// etsyState accumulates what a real etsy statsd daemon reported over its
// flushes: counters and timer counts summed, timer values appended, gauges
// last value, set members united.
type etsyState struct {
	mu            sync.Mutex
	counters      map[string]float64
	timers        map[string][]float64
	timerCounters map[string]float64
	gauges        map[string]float64
	sets          map[string]map[string]bool
	flushes       int
	changed       chan struct{}
	stderr        strings.Builder
}

type etsyFlush struct {
	Counters      map[string]float64   `json:"counters"`
	Timers        map[string][]float64 `json:"timers"`
	TimerCounters map[string]float64   `json:"timer_counters"`
	Gauges        map[string]float64   `json:"gauges"`
	Sets          map[string][]string  `json:"sets"`
}

func (s *etsyState) add(f etsyFlush) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range f.Counters {
		s.counters[k] += v
	}
	for k, v := range f.Timers {
		s.timers[k] = append(s.timers[k], v...)
	}
	for k, v := range f.TimerCounters {
		s.timerCounters[k] += v
	}
	for k, v := range f.Gauges {
		s.gauges[k] = v
	}
	for k, v := range f.Sets {
		if s.sets[k] == nil {
			s.sets[k] = map[string]bool{}
		}
		for _, m := range v {
			s.sets[k][m] = true
		}
	}
	s.flushes++
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitUntil waits (up to a generous bound, for a loaded machine) until cond
// holds on the accumulated state, then returns with the state locked.
func (s *etsyState) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s.mu.Lock()
		if cond() {
			return
		}
		s.mu.Unlock()
		select {
		case <-s.changed:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("statsd never showed %s; counters=%v timers=%v gauges=%v sets=%v\nstderr: %s",
				what, s.counters, s.timers, s.gauges, s.sets, s.stderr.String())
		}
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtsyStatsd installs (if needed) and starts the pinned etsy statsd
// daemon with a UDP and a TCP server on free ports and the JSON test
// backend, and waits until it parses a probe counter.
func startEtsyStatsd(t *testing.T) (udpAddr, tcpAddr string, st *etsyState) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the real etsy statsd daemon cannot run (make test installs npm packages, not node)")
	}
	dir, err := filepath.Abs("testdata/statsd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".snakepipe-installed")); err != nil {
		out, err := exec.Command("bash", filepath.Join(dir, "install.sh")).CombinedOutput()
		if err != nil {
			t.Fatalf("installing the statsd daemon: %v\n%s", err, out)
		}
	}
	daemon := filepath.Join(dir, "node_modules", "statsd", "stats.js")
	if _, err := os.Stat(daemon); err != nil {
		t.Fatalf("statsd daemon not installed (%v); run make statsd-daemon", err)
	}
	udpPort, tcpPort, mgmtPort := freePort(t, "udp"), freePort(t, "tcp"), freePort(t, "tcp")
	conf := map[string]any{
		"servers": []map[string]any{
			{"server": "./servers/udp", "address": "127.0.0.1", "port": udpPort},
			{"server": "./servers/tcp", "address": "127.0.0.1", "port": tcpPort},
		},
		"mgmt_address":    "127.0.0.1",
		"mgmt_port":       mgmtPort,
		"flushInterval":   200,
		"deleteIdleStats": true,
		"backends":        []string{filepath.Join(dir, "jsonbackend.js")},
		"title":           false,
	}
	confPath := filepath.Join(t.TempDir(), "statsd.json")
	raw, _ := json.Marshal(conf)
	if err := os.WriteFile(confPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, daemon, confPath)
	cmd.Dir = filepath.Join(dir, "node_modules", "statsd")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	st = &etsyState{
		counters: map[string]float64{}, timers: map[string][]float64{}, timerCounters: map[string]float64{},
		gauges: map[string]float64{}, sets: map[string]map[string]bool{}, changed: make(chan struct{}, 1),
	}
	cmd.Stderr = &lockedWriter{mu: &st.mu, b: &st.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "SNAKEPIPE_FLUSH ")
			if !ok {
				continue
			}
			var f etsyFlush
			if err := json.Unmarshal([]byte(line), &f); err != nil {
				t.Errorf("bad flush line from the backend: %v", err)
				continue
			}
			st.add(f)
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-readDone
		_ = cmd.Wait()
	})
	udpAddr = fmt.Sprintf("127.0.0.1:%d", udpPort)
	tcpAddr = fmt.Sprintf("127.0.0.1:%d", tcpPort)
	// Readiness: resend a probe until a flush shows it.
	probe, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	ready := time.NewTicker(50 * time.Millisecond)
	defer ready.Stop()
	deadline := time.After(60 * time.Second)
	for {
		_, _ = probe.Write([]byte("snakepipe.probe:1|c"))
		st.mu.Lock()
		up := st.counters["snakepipe.probe"] > 0
		st.mu.Unlock()
		if up {
			return udpAddr, tcpAddr, st
		}
		select {
		case <-ready.C:
		case <-deadline:
			t.Fatalf("etsy statsd did not come up; stderr: %s", st.stderr.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestEtsyStatsdParsesWhatWeSend sends mapped events to a real etsy statsd
// daemon over UDP and TCP and asserts what it parsed: names, values, tags
// (etsy folds DogStatsD tags into the key as name;k=v), sample-rate scaling
// of counters and timer counts, gauges (including a negative one), sets,
// client-side aggregation, and that no line was rejected as bad.
func TestEtsyStatsdParsesWhatWeSend(t *testing.T) {
	udpAddr, tcpAddr, st := startEtsyStatsd(t)

	cfg := DefaultConfig()
	cfg.DefaultMappings = false
	cfg.Address = udpAddr
	cfg.TagKeys = []string{"pool", "tool"}
	cfg.Mappings = []Mapping{
		{Events: "python.call.stop", Type: "timer", Name: "python.call.duration", Measurement: "duration", FromUnit: "ns", ToUnit: "ms"},
		{Events: "python.call.stop", Type: "counter", Name: "python.call.count"},
		{Events: "python.memory.sampled", Type: "gauge", Name: "python.memory.rss_bytes", Measurement: "rss_bytes", Tags: []string{}},
		{Events: "python.memory.sampled", Type: "gauge", Name: "python.memory.delta", Measurement: "delta", Tags: []string{}},
		{Events: "python.memory.sampled", Type: "set", Name: "python.workers", Metadata: "worker_id", Tags: []string{}},
	}
	udp, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/udp")}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tcpCfg := *cfg
	tcpCfg.Network = NetworkTCP
	tcpCfg.Address = tcpAddr
	tcpCfg.Prefix = "tcp"
	tcpCfg.AggregateCounters = true
	tcpCfg.FlushInterval = time.Hour // flushed by Shutdown
	tcp, err := New(pipeline.Settings{ID: pipeline.MustComponentID("statsd/tcp")}, &tcpCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range []*Sink{udp, tcp} {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	var evs []pipeline.Event
	for i := 0; i < 10; i++ { // kept at 1 in 10: stands for 100 calls
		evs = append(evs, callStop(2_000_000, 0.1, pipeline.Label{Key: "tool", Value: "resize"}))
	}
	for i := 0; i < 5; i++ { // unsampled, another pool, hostile tool name
		e := callStop(500_000, 1, pipeline.Label{Key: "tool", Value: "a:b|c#d,e\nf"})
		e.Origin = &pipeline.Origin{WorkerID: "w-2", Pool: "cpu"}
		evs = append(evs, e)
	}
	for i, w := range []string{"w-1", "w-2", "w-1"} {
		evs = append(evs, pipeline.Event{
			Name: "python.memory.sampled", SampleRate: 1,
			Measurements: []pipeline.Measurement{
				{Key: "rss_bytes", Value: pipeline.IntValue(int64(1000 * (i + 1)))},
				{Key: "delta", Value: pipeline.IntValue(-7)},
			},
			Origin: &pipeline.Origin{WorkerID: w},
		})
	}
	b := &pipeline.Batch{Events: evs}
	if err := udp.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	// The same events over TCP, counters aggregated client-side.
	if err := tcp.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Sink{udp, tcp} {
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}

	gpuCount := "python.call.count;pool=gpu;tool=resize"
	cpuCount := "python.call.count;pool=cpu;tool=a_b_c_d_e_f"
	gpuTimer := "python.call.duration;pool=gpu;tool=resize"
	cpuTimer := "python.call.duration;pool=cpu;tool=a_b_c_d_e_f"
	st.waitUntil(t, "every metric", func() bool {
		return st.counters[gpuCount] >= 100 && st.counters[cpuCount] >= 5 &&
			len(st.timers[gpuTimer]) >= 10 && len(st.timers[cpuTimer]) >= 5 &&
			len(st.sets["python.workers"]) >= 2 && st.gauges["python.memory.rss_bytes"] != 0 &&
			st.counters["tcp."+gpuCount] >= 100 && st.counters["tcp."+cpuCount] >= 5 &&
			len(st.timers["tcp."+gpuTimer]) >= 10 && len(st.timers["tcp."+cpuTimer]) >= 5
	})
	defer st.mu.Unlock()

	for _, c := range []struct {
		key  string
		want float64
	}{
		{gpuCount, 100}, // 10 lines |@0.1, scaled by the server
		{cpuCount, 5},
		{"tcp." + gpuCount, 100}, // one aggregated line "…:100|c", pre-scaled
		{"tcp." + cpuCount, 5},
		{"statsd.bad_lines_seen", 0},
	} {
		if got := st.counters[c.key]; got != c.want {
			t.Errorf("counter %s = %v, want %v", c.key, got, c.want)
		}
	}
	for _, c := range []struct {
		key   string
		value float64
		n     int
		count float64
	}{
		{gpuTimer, 2, 10, 100}, // timer count scaled by 1/0.1 as well
		{cpuTimer, 0.5, 5, 5},
		{"tcp." + gpuTimer, 2, 10, 100},
	} {
		vals := st.timers[c.key]
		if len(vals) != c.n {
			t.Errorf("timer %s has %d values, want %d", c.key, len(vals), c.n)
		}
		for _, v := range vals {
			if v != c.value {
				t.Errorf("timer %s value %v, want %v ms", c.key, v, c.value)
				break
			}
		}
		if got := st.timerCounters[c.key]; got != c.count {
			t.Errorf("timer %s count = %v, want %v", c.key, got, c.count)
		}
	}
	if got := st.gauges["python.memory.rss_bytes"]; got != 3000 {
		t.Errorf("gauge python.memory.rss_bytes = %v, want the last value 3000", got)
	}
	if got := st.gauges["python.memory.delta"]; got != -7 {
		t.Errorf("gauge python.memory.delta = %v, want -7 (a negative gauge, not a decrement)", got)
	}
	var members []string
	for m := range st.sets["python.workers"] {
		members = append(members, m)
	}
	sort.Strings(members)
	if !reflect.DeepEqual(members, []string{"w-1", "w-2"}) {
		t.Errorf("set python.workers = %v, want [w-1 w-2]", members)
	}
}
