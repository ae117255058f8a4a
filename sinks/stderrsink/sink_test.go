package stderrsink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/internal/componenttest"
	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/sinks/sinktest"
)

// lockedBuffer is a bytes.Buffer safe for reading while the sink writes,
// that also counts Write calls.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func newSink(t testing.TB, format Format, w *lockedBuffer) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Format = format
	s, err := NewFactoryWithWriter(w).CreateSink(context.Background(),
		pipeline.Settings{ID: pipeline.MustComponentID("stderr/t"), Logger: hclog.NewNullLogger(), Metrics: pipeline.NewMetrics()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		id      string
		want    *Config
		wantErr string
	}{
		{id: "stderr", want: &Config{Format: FormatJSON}},
		{id: "stderr/human", want: &Config{Format: FormatText}},
		{id: "stderr/bad", wantErr: `format: "yaml" is not one of json, text`},
		{id: "stderr/typo", wantErr: "fromat"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			err := componenttest.Decode(filepath.Join("testdata", "config.yaml"), "sinks", tt.id, cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tt.want) {
				t.Errorf("got %+v, want %+v", cfg, tt.want)
			}
		})
	}
}

func TestConformanceJSON(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		var buf lockedBuffer
		return sinktest.Harness{
			Sink: newSink(t, FormatJSON, &buf),
			Delivered: func(t *testing.T) []pipeline.Event {
				events, err := pipeline.ReadEventsJSON(bytes.NewReader(buf.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				return events
			},
		}
	})
}

// parseText reads back the name and correlation id of each text line.
func parseText(t *testing.T, data []byte) []pipeline.Event {
	var out []pipeline.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			t.Fatalf("short text line %q", sc.Text())
		}
		e := pipeline.Event{Name: fields[1]}
		for _, f := range fields[2:] {
			if cid, ok := strings.CutPrefix(f, "cid="); ok {
				e.CorrelationID = cid
			}
		}
		out = append(out, e)
	}
	return out
}

func TestConformanceText(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		var buf lockedBuffer
		return sinktest.Harness{
			Sink:      newSink(t, FormatText, &buf),
			Delivered: func(t *testing.T) []pipeline.Event { return parseText(t, buf.Bytes()) },
			Same: func(want, got *pipeline.Event) bool {
				return want.Name == got.Name && want.CorrelationID == got.CorrelationID
			},
		}
	})
}

func TestAppendText(t *testing.T) {
	origin := &pipeline.Origin{WorkerID: "w1", Pool: "p", Hostname: "h", PID: 42}
	tests := []struct {
		name string
		e    pipeline.Event
		want string
	}{
		{"full", pipeline.Event{
			Name: "python.call.stop", TimestampNs: 1732500000123456789, CorrelationID: "abc", SampleRate: 0.1,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200)}, {Key: "ratio", Value: pipeline.FloatValue(0.5)}},
			Metadata:     []pipeline.Label{{Key: "tool", Value: "x"}}, Origin: origin,
		}, "2024-11-25T02:00:00.123456Z python.call.stop         duration=1200 ratio=0.5  tool=x  worker=w1 pool=p host=h pid=42  cid=abc rate=0.1\n"},
		{"bare", pipeline.Event{Name: "a.b", TimestampNs: 0, SampleRate: 1},
			"1970-01-01T00:00:00.000000Z a.b                      -\n"},
		{"quoting keeps one line", pipeline.Event{
			Name: "custom.event.with.a.very.long.name", TimestampNs: 1,
			Measurements: []pipeline.Measurement{{Key: "msg", Value: pipeline.StringValue("two\nlines")}, {Key: "f", Value: pipeline.FloatValue(2)}},
			Metadata:     []pipeline.Label{{Key: "k", Value: "a b=c"}, {Key: "e", Value: ""}, {Key: "u", Value: "é"}},
		}, `1970-01-01T00:00:00.000000Z custom.event.with.a.very.long.name msg="two\nlines" f=2  k="a b=c" e="" u="é"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendText(nil, &tt.e)); got != tt.want {
				t.Errorf("AppendText =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestOneWritePerBatch(t *testing.T) {
	for _, format := range []Format{FormatJSON, FormatText} {
		t.Run(string(format), func(t *testing.T) {
			var buf lockedBuffer
			s := newSink(t, format, &buf)
			if err := s.Write(context.Background(), sinktest.Batch("x", 50)); err != nil {
				t.Fatal(err)
			}
			if buf.writes != 1 {
				t.Fatalf("%d writes for one batch, want 1", buf.writes)
			}
			if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 50 {
				t.Fatalf("%d lines for 50 events", n)
			}
		})
	}
}

// TestSharedWithLogger hammers a logger and the sink writing through one
// SyncWriter: every line must be either a whole log line or a whole event.
func TestSharedWithLogger(t *testing.T) {
	var out lockedBuffer
	sw := pipeline.NewSyncWriter(&out)
	logger := hclog.New(&hclog.LoggerOptions{Output: sw, Level: hclog.Info, JSONFormat: false})
	s := newSink(t, FormatJSON, nil)
	s.w = sw
	var wg sync.WaitGroup
	release := make(chan struct{})
	for g := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-release
			for i := range 50 {
				logger.Info("log line from the host", "g", g, "i", i)
			}
		}()
		go func() {
			defer wg.Done()
			<-release
			for i := range 50 {
				if err := s.Write(context.Background(), sinktest.Batch(fmt.Sprintf("g%di%d", g, i), 3)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	close(release)
	wg.Wait()
	logs, events := 0, 0
	for _, line := range strings.Split(strings.TrimSuffix(string(out.Bytes()), "\n"), "\n") {
		if strings.HasPrefix(line, "{") {
			if _, err := pipeline.ParseEventJSON([]byte(line)); err != nil {
				t.Fatalf("torn event line %q: %v", line, err)
			}
			events++
			continue
		}
		if !strings.Contains(line, "[INFO]  log line from the host: g=") {
			t.Fatalf("torn log line %q", line)
		}
		logs++
	}
	if logs != 200 || events != 600 {
		t.Fatalf("%d log lines and %d events, want 200 and 600", logs, events)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteErrorIsTransient(t *testing.T) {
	s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("stderr")}, DefaultConfig(), failWriter{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(context.Background(), sinktest.Batch("e", 1))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("Write = %v, want a transient error", err)
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, format := range []Format{FormatJSON, FormatText} {
		b.Run(string(format), func(b *testing.B) {
			s, err := New(pipeline.Settings{ID: pipeline.MustComponentID("stderr")}, &Config{Format: format}, discard{})
			if err != nil {
				b.Fatal(err)
			}
			batch := benchBatch(1000)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch.Len()), "ns/event")
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// benchBatch is a batch of typical python.call.stop events.
func benchBatch(n int) *pipeline.Batch {
	origin := &pipeline.Origin{WorkerID: "worker-17", Pool: "inference", Hostname: "gpu-node-3", PID: 31337}
	b := &pipeline.Batch{Events: make([]pipeline.Event, n)}
	for i := range b.Events {
		b.Events[i] = pipeline.Event{
			Name: "python.call.stop", TimestampNs: 1732500000000000000 + int64(i), ReceivedNs: 1732500000000100000 + int64(i),
			CorrelationID: "req-7f3a9c", SampleRate: 1,
			Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200 + int64(i))}, {Key: "ratio", Value: pipeline.FloatValue(0.5)}},
			Metadata:     []pipeline.Label{{Key: "tool", Value: "search"}, {Key: "model", Value: "m1"}},
			Origin:       origin,
		}
	}
	return b
}
