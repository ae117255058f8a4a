package pipeline

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{
			name: "full",
			ev: Event{
				Name: "python.call.stop", TimestampNs: 1732500000000000000, ReceivedNs: 1732500000000100000,
				CorrelationID: "abc", SampleRate: 1,
				Measurements: []Measurement{{"duration", IntValue(1200)}, {"ratio", FloatValue(0.5)}, {"whole", FloatValue(2)}, {"s", StringValue("x")}},
				Metadata:     []Label{{"tool", "x"}, {"a", "b"}},
				Origin:       &Origin{WorkerID: "w1", Pool: "p", Hostname: "h", PID: 42},
			},
			want: `{"name":"python.call.stop","timestamp_ns":1732500000000000000,"received_ns":1732500000000100000,"correlation_id":"abc","sample_rate":1,"measurements":{"duration":1200,"ratio":0.5,"whole":2.0,"s":"x"},"metadata":{"tool":"x","a":"b"},"worker_id":"w1","pool":"p","hostname":"h","pid":42}`,
		},
		{
			name: "minimal",
			ev:   Event{Name: "a.b", SampleRate: 0.25},
			want: `{"name":"a.b","timestamp_ns":0,"sample_rate":0.25,"measurements":{},"metadata":{}}`,
		},
		{
			name: "escapes",
			ev:   Event{Name: "a.b", SampleRate: 1, Metadata: []Label{{"k\"", "line\nbreak\x01\ttab\\"}}, Measurements: []Measurement{{"big", FloatValue(1e300)}}},
			want: `{"name":"a.b","timestamp_ns":0,"sample_rate":1,"measurements":{"big":1e+300},"metadata":{"k\"":"line\nbreak\u0001\ttab\\"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendJSON(nil, &tt.ev))
			if got != tt.want {
				t.Fatalf("AppendJSON:\n got %s\nwant %s", got, tt.want)
			}
			back, err := ParseEventJSON([]byte(got))
			if err != nil {
				t.Fatalf("ParseEventJSON: %v", err)
			}
			if !reflect.DeepEqual(back, tt.ev) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", back, tt.ev)
			}
		})
	}
}

func TestAppendJSONInvalidUTF8AndNaN(t *testing.T) {
	ev := Event{Name: "a", SampleRate: 1, Metadata: []Label{{"k", "ok\xffbad"}}, Measurements: []Measurement{{"n", FloatValue(math.NaN())}}}
	got := string(AppendJSON(nil, &ev))
	if !strings.Contains(got, `"k":"ok\ufffdbad"`) || !strings.Contains(got, `"n":null`) {
		t.Fatalf("got %s", got)
	}
}

func TestParseEventJSONErrors(t *testing.T) {
	for _, line := range []string{
		``, `[]`, `{"timestamp_ns":1}`, `{"name":"a","bogus":1}`, `{"name":"a","measurements":{"x":99999999999999999999}}`,
		`{"name":"a","metadata":{"x":1}}`, `{"name":"a"} trailing`, `{"name":1}`,
	} {
		if _, err := ParseEventJSON([]byte(line)); !errors.Is(err, ErrBadEventJSON) {
			t.Errorf("ParseEventJSON(%q) = %v, want ErrBadEventJSON", line, err)
		}
	}
}

func TestReadEventsJSON(t *testing.T) {
	evs, err := ReadEventsJSON(strings.NewReader("# comment\n{\"name\":\"a\"}\n\n{\"name\":\"b\"}\n"))
	if err != nil || len(evs) != 2 || evs[1].Name != "b" {
		t.Fatalf("got %v, %v", evs, err)
	}
	if _, err := ReadEventsJSON(strings.NewReader("{\"name\":\"a\"}\n{bad\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v does not name line 2", err)
	}
}

func FuzzParseEventJSON(f *testing.F) {
	f.Add([]byte(`{"name":"python.call.stop","timestamp_ns":1,"measurements":{"d":1,"f":1.5},"metadata":{"k":"v"},"worker_id":"w","pid":3}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := ParseEventJSON(line)
		if err != nil {
			return
		}
		// Whatever parses must re-encode and parse back to the same event.
		again, err := ParseEventJSON(AppendJSON(nil, &ev))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		a, b := AppendJSON(nil, &ev), AppendJSON(nil, &again)
		if string(a) != string(b) {
			t.Fatalf("not stable:\n%s\n%s", a, b)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	ev := Event{Name: "python.call.stop", TimestampNs: 1732500000000000000, ReceivedNs: 1732500000000100000, CorrelationID: "abc", SampleRate: 1,
		Measurements: []Measurement{{"duration", IntValue(1200)}}, Metadata: []Label{{"tool", "x"}, {"command", "predict"}},
		Origin: &Origin{WorkerID: "w1", Pool: "p", Hostname: "h", PID: 42}}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendJSON(buf[:0], &ev)
	}
}
