package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/snakepipe/snakepipe/pipeline"
	pb "github.com/snakepipe/snakepipe/proto/snakepipe/v1"
	bridge "github.com/snakepipe/snakepipe/proto/snakepit/bridge"
)

// testNames is a small nameResolver for unit tests: like the catalog, it
// returns one interned string per known name, without allocating.
type testNames []string

func (t testNames) LookupParts(parts []string) (string, bool) {
outer:
	for _, known := range t {
		rest := known
		for i, p := range parts {
			if i > 0 {
				if rest == "" || rest[0] != '.' {
					continue outer
				}
				rest = rest[1:]
			}
			if !strings.HasPrefix(rest, p) {
				continue outer
			}
			rest = rest[len(p):]
		}
		if rest == "" {
			return known, true
		}
	}
	return "", false
}

var knownNames = testNames{"python.call.start", "python.call.stop", "tool.execution.stop"}

// refDecode is the reference: generated code, then a straightforward
// conversion. decodeFrame must agree with it on every input.
func refDecode(buf []byte, names nameResolver) (frame, error) {
	msg := &pb.WorkerMessage{}
	if err := proto.Unmarshal(buf, msg); err != nil {
		return frame{}, err
	}
	switch m := msg.Msg.(type) {
	case *pb.WorkerMessage_Hello:
		return frame{kind: frameHello, msg: msg}, nil
	case *pb.WorkerMessage_Stats:
		return frame{kind: frameStats, msg: msg}, nil
	case *pb.WorkerMessage_Batch:
		var events []pipeline.Event
		for _, e := range m.Batch.GetEvents() {
			events = append(events, refEvent(e, names))
		}
		return frame{kind: frameBatch, events: events, seq: m.Batch.GetSequence()}, nil
	}
	return frame{kind: frameEmpty, msg: msg}, nil
}

func refEvent(e *pb.Event, names nameResolver) pipeline.Event {
	ev := pipeline.Event{
		TimestampNs:   e.GetTimestampNs(),
		CorrelationID: e.GetCorrelationId(),
		SampleRate:    wireSampleRate(e.GetSampleRate()),
	}
	switch {
	case e.GetName() != "":
		ev.Name = e.GetName()
	case len(e.GetEventParts()) > 0:
		ev.Name = resolveParts(names, e.GetEventParts())
	}
	for _, m := range e.GetMeasurements() {
		ev.Measurements = append(ev.Measurements, pipeline.Measurement{Key: m.GetKey(), Value: refValue(m.GetValue())})
	}
	for _, l := range e.GetMetadata() {
		ev.Metadata = append(ev.Metadata, pipeline.Label{Key: l.GetKey(), Value: l.GetValue()})
	}
	return ev
}

func refValue(v *pb.Value) pipeline.Value {
	switch x := v.GetValue().(type) {
	case *pb.Value_IntValue:
		return pipeline.IntValue(x.IntValue)
	case *pb.Value_FloatValue:
		return pipeline.FloatValue(x.FloatValue)
	case *pb.Value_StringValue:
		return pipeline.StringValue(x.StringValue)
	}
	return pipeline.Value{}
}

// resolveParts is the reference name resolution: the catalog's interned name for parts, or (unknown
// names only, so the allocation is on the reject path) the joined name.
func resolveParts(names nameResolver, parts []string) string {
	if names != nil {
		if name, ok := names.LookupParts(parts); ok {
			return name
		}
	}
	return strings.Join(parts, ".")
}

// eventsDiff describes the first difference between two event lists ("" if
// equal). Floats compare by bits so NaN payloads count.
func eventsDiff(got, want []pipeline.Event) string {
	if len(got) != len(want) {
		return fmt.Sprintf("len %d, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Name != w.Name || g.TimestampNs != w.TimestampNs || g.CorrelationID != w.CorrelationID ||
			math.Float64bits(g.SampleRate) != math.Float64bits(w.SampleRate) {
			return fmt.Sprintf("event %d: got %+v, want %+v", i, *g, *w)
		}
		if len(g.Measurements) != len(w.Measurements) || len(g.Metadata) != len(w.Metadata) {
			return fmt.Sprintf("event %d: entries got %+v, want %+v", i, *g, *w)
		}
		for j := range g.Measurements {
			gm, wm := g.Measurements[j], w.Measurements[j]
			if gm.Key != wm.Key || gm.Value.Kind != wm.Value.Kind || gm.Value.Int != wm.Value.Int ||
				gm.Value.Str != wm.Value.Str || math.Float64bits(gm.Value.Float) != math.Float64bits(wm.Value.Float) {
				return fmt.Sprintf("event %d measurement %d: got %+v, want %+v", i, j, gm, wm)
			}
		}
		for j := range g.Metadata {
			if g.Metadata[j] != w.Metadata[j] {
				return fmt.Sprintf("event %d metadata %d: got %+v, want %+v", i, j, g.Metadata[j], w.Metadata[j])
			}
		}
	}
	return ""
}

// realisticEvent is a python.call.stop event as the worker library sends
// it: about 170 bytes on the wire.
func realisticEvent(i int) *pb.Event {
	return &pb.Event{
		EventParts: []string{"python", "call", "stop"},
		Measurements: []*pb.MeasurementEntry{
			{Key: "duration", Value: &pb.Value{Value: &pb.Value_IntValue{IntValue: int64(1200 + i)}}},
			{Key: "response_size", Value: &pb.Value{Value: &pb.Value_IntValue{IntValue: 4096}}},
		},
		Metadata: []*pb.MetadataEntry{
			{Key: "command", Value: "predict_batch"},
			{Key: "module", Value: "model.inference"},
			{Key: "session_id", Value: "sess-8d1a4f5e"},
			{Key: "result", Value: "ok"},
		},
		TimestampNs:   1732500000000000000 + int64(i),
		CorrelationId: "3f2b9c0e-8d1a-4f5e-9b7c-1a2b3c4d5e6f",
	}
}

func realisticBatch(n int) *pb.WorkerMessage {
	b := &pb.EventBatch{Sequence: 7}
	for i := 0; i < n; i++ {
		b.Events = append(b.Events, realisticEvent(i))
	}
	return &pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: b}}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Hand-built wire fragments for cases generated code cannot produce.
func field(num protowire.Number, typ protowire.Type, payload []byte) []byte {
	b := protowire.AppendTag(nil, num, typ)
	return append(b, payload...)
}

func bytesField(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestDecodeFrame(t *testing.T) {
	ev := func(e *pb.Event) []byte { return mustMarshal(t, e) }
	batchOf := func(events ...[]byte) []byte {
		var b []byte
		for _, e := range events {
			b = append(b, bytesField(1, e)...)
		}
		return bytesField(2, b)
	}
	unknownVarint := field(99, protowire.VarintType, protowire.AppendVarint(nil, 5))
	tests := []struct {
		name     string
		buf      []byte
		kind     frameKind
		wantErr  bool
		wantName []string // event names, when kind is batch
	}{
		{name: "realistic batch", buf: mustMarshal(t, realisticBatch(3)), kind: frameBatch,
			wantName: []string{"python.call.stop", "python.call.stop", "python.call.stop"}},
		{name: "name field wins over parts", buf: batchOf(ev(&pb.Event{Name: "tool.execution.stop", EventParts: []string{"x"}})),
			kind: frameBatch, wantName: []string{"tool.execution.stop"}},
		{name: "unknown parts joined", buf: batchOf(ev(&pb.Event{EventParts: []string{"a", "", "b"}})),
			kind: frameBatch, wantName: []string{"a..b"}},
		{name: "no name at all", buf: batchOf(ev(&pb.Event{TimestampNs: 1})), kind: frameBatch, wantName: []string{""}},
		{name: "unknown fields everywhere are skipped",
			buf: cat(unknownVarint, bytesField(2, cat(unknownVarint, bytesField(1, cat(
				bytesField(7, []byte("python.call.start")), unknownVarint,
				bytesField(2, cat(bytesField(1, []byte("duration")), unknownVarint, bytesField(2, cat(unknownVarint, field(1, protowire.VarintType, protowire.AppendVarint(nil, 3)))))),
				field(50, protowire.StartGroupType, cat(unknownVarint, field(50, protowire.EndGroupType, nil))),
			))))),
			kind: frameBatch, wantName: []string{"python.call.start"}},
		{name: "known field with wrong wire type is skipped",
			buf:  batchOf(cat(bytesField(7, []byte("python.call.stop")), bytesField(4, []byte("not a varint")))),
			kind: frameBatch, wantName: []string{"python.call.stop"}},
		{name: "two batch members merge", buf: cat(batchOf(ev(&pb.Event{Name: "a.b"})), batchOf(ev(&pb.Event{Name: "c.d"}))),
			kind: frameBatch, wantName: []string{"a.b", "c.d"}},
		{name: "batch replaced by hello", buf: cat(batchOf(ev(&pb.Event{Name: "a.b"})), mustMarshal(t, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "w"}}})),
			kind: frameHello},
		{name: "hello replaced by batch", buf: cat(mustMarshal(t, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "w"}}}), batchOf(ev(&pb.Event{Name: "a.b"}))),
			kind: frameBatch, wantName: []string{"a.b"}},
		{name: "empty batch", buf: bytesField(2, nil), kind: frameBatch},
		{name: "stats", buf: mustMarshal(t, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Stats{Stats: &pb.WorkerStats{QueueDepth: 3}}}), kind: frameStats},
		{name: "empty frame", buf: nil, kind: frameEmpty},
		{name: "truncated event", buf: mustMarshal(t, realisticBatch(2))[:100], wantErr: true},
		{name: "invalid UTF-8 in metadata value", buf: batchOf(bytesField(3, cat(bytesField(1, []byte("k")), bytesField(2, []byte{0xff, 0xfe})))), wantErr: true},
		{name: "invalid UTF-8 in superseded hello", buf: cat(bytesField(1, bytesField(1, []byte{0xff})), batchOf(ev(&pb.Event{Name: "a.b"}))), wantErr: true},
		{name: "field number zero", buf: []byte{0x02, 0x00}, wantErr: true},
		{name: "field number above 2^29-1", buf: batchOf(ev(&pb.Event{Name: "a.b"}), []byte("\x80\xff\xff\xff00")), wantErr: true},
		{name: "length past the end", buf: []byte{0x12, 0x7f, 0x0a}, wantErr: true},
		{name: "unmatched end group", buf: batchOf(field(9, protowire.EndGroupType, nil)), wantErr: true},
		{name: "invalid wire type", buf: batchOf([]byte{0x0f}), wantErr: true},
		{name: "overlong varint", buf: batchOf(field(4, protowire.VarintType, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newDecoder(knownNames).decodeFrame(tt.buf)
			want, refErr := refDecode(tt.buf, knownNames)
			if (err != nil) != tt.wantErr || (refErr != nil) != tt.wantErr {
				t.Fatalf("decodeFrame err = %v, generated code err = %v, want error %v", err, refErr, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errMalformed) {
					t.Errorf("error %v does not wrap errMalformed", err)
				}
				return
			}
			if got.kind != tt.kind || want.kind != tt.kind {
				t.Fatalf("kind = %v (generated %v), want %v", got.kind, want.kind, tt.kind)
			}
			if d := eventsDiff(got.events, want.events); d != "" {
				t.Fatalf("differs from generated code: %s", d)
			}
			var names []string
			for _, e := range got.events {
				names = append(names, e.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantName, ",") {
				t.Errorf("names = %q, want %q", names, tt.wantName)
			}
		})
	}
}

func TestDecodeLayout(t *testing.T) {
	buf := mustMarshal(t, realisticBatch(3))
	f, err := newDecoder(knownNames).decodeFrame(buf)
	if err != nil {
		t.Fatal(err)
	}
	if f.seq != 7 {
		t.Errorf("seq = %d, want 7", f.seq)
	}
	e0, e1 := f.events[0], f.events[1]
	// One backing array per batch: event 1's entries follow event 0's.
	next := unsafe.Add(unsafe.Pointer(&e0.Measurements[0]), len(e0.Measurements)*int(unsafe.Sizeof(pipeline.Measurement{})))
	if next != unsafe.Pointer(&e1.Measurements[0]) {
		t.Error("measurements of one batch do not share one backing array")
	}
	// Each event's slice is capped at its length, so an append reallocates.
	if cap(e0.Metadata) != len(e0.Metadata) || cap(e0.Measurements) != len(e0.Measurements) {
		t.Errorf("cap/len metadata %d/%d measurements %d/%d", cap(e0.Metadata), len(e0.Metadata), cap(e0.Measurements), len(e0.Measurements))
	}
	_ = append(e0.Metadata, pipeline.Label{Key: "x", Value: "y"})
	if e1.Metadata[0].Key != "command" {
		t.Errorf("append to event 0 metadata overwrote event 1: %+v", e1.Metadata[0])
	}
	if e0.SampleRate != 1 || e0.Measurements[0].Value != pipeline.IntValue(1200) || e1.Measurements[0].Value != pipeline.IntValue(1201) {
		t.Errorf("values: %+v / %+v", e0, e1)
	}
}

func TestDecodeSnakepitEvent(t *testing.T) {
	// A Snakepit TelemetryEvent (maps on the wire) decodes as an Event.
	te := &bridge.TelemetryEvent{
		EventParts:    []string{"python", "call", "stop"},
		Measurements:  map[string]*bridge.TelemetryValue{"duration": {Value: &bridge.TelemetryValue_IntValue{IntValue: 42}}},
		Metadata:      map[string]string{"function": "f"},
		TimestampNs:   99,
		CorrelationId: "c1",
	}
	var ev pipeline.Event
	if err := newDecoder(knownNames).decodeSingleEvent(mustMarshal(t, te), &ev); err != nil {
		t.Fatal(err)
	}
	want := pipeline.Event{
		Name: "python.call.stop", TimestampNs: 99, CorrelationID: "c1", SampleRate: 1,
		Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(42)}},
		Metadata:     []pipeline.Label{{Key: "function", Value: "f"}},
	}
	if d := eventsDiff([]pipeline.Event{ev}, []pipeline.Event{want}); d != "" {
		t.Fatal(d)
	}
}

// FuzzDecodeDifferential checks that the hand-written decoder and the
// generated code agree on every input: same verdict (error or not), same
// frame kind, same events.
func FuzzDecodeDifferential(f *testing.F) {
	f.Add(mustMarshal(f, realisticBatch(2)))
	f.Add(mustMarshal(f, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Batch{Batch: &pb.EventBatch{Events: []*pb.Event{
		{Name: "a.b", SampleRate: 0.5, Measurements: []*pb.MeasurementEntry{{Key: "s", Value: &pb.Value{Value: &pb.Value_StringValue{StringValue: "v"}}}, {Key: "u"}}},
		{EventParts: []string{"tool", "execution", "stop"}, Metadata: []*pb.MetadataEntry{{Key: "", Value: "x"}}},
	}}}}))
	f.Add(mustMarshal(f, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "w", ProtocolVersion: 1}}}))
	f.Add(mustMarshal(f, &pb.WorkerMessage{Msg: &pb.WorkerMessage_Stats{Stats: &pb.WorkerStats{Dropped: map[string]uint64{"queue_full": 1}}}}))
	f.Add([]byte{0x12, 0x03, 0x0a, 0x01, 0x0a})
	f.Add([]byte("\x80\xff\xff\xff00"))               // field number above 2^29-1
	f.Add([]byte{0x92, 0x00, 0x02, 0xba, 0x00, 0x00}) // over-long tag encodings
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, err := newDecoder(knownNames).decodeFrame(buf)
		want, refErr := refDecode(buf, knownNames)
		if (err != nil) != (refErr != nil) {
			t.Fatalf("verdicts differ: decodeFrame err = %v, generated err = %v", err, refErr)
		}
		if err != nil {
			return
		}
		if got.kind != want.kind || got.seq != want.seq {
			t.Fatalf("kind/seq = %v/%d, generated %v/%d", got.kind, got.seq, want.kind, want.seq)
		}
		if d := eventsDiff(got.events, want.events); d != "" {
			t.Fatalf("events differ: %s", d)
		}
	})
}

// FuzzDecodeNoPanic feeds arbitrary bytes to every decoder entry point
// (and checks the single-event path against generated code as well).
func FuzzDecodeNoPanic(f *testing.F) {
	f.Add(mustMarshal(f, realisticEvent(1)), true)
	f.Add([]byte{0x0b, 0x0c}, false)
	f.Fuzz(func(t *testing.T, buf []byte, single bool) {
		d := newDecoder(nil)
		if single {
			// Dial mode decodes one Event per frame: it must agree with
			// generated code too.
			var ev pipeline.Event
			err := d.decodeSingleEvent(buf, &ev)
			var ref pb.Event
			refErr := proto.Unmarshal(buf, &ref)
			if (err != nil) != (refErr != nil) {
				t.Fatalf("verdicts differ: decodeSingleEvent err = %v, generated err = %v", err, refErr)
			}
			if err == nil {
				if diff := eventsDiff([]pipeline.Event{ev}, []pipeline.Event{refEvent(&ref, nil)}); diff != "" {
					t.Fatalf("single event differs: %s", diff)
				}
			}
			return
		}
		if f, err := d.decodeFrame(buf); err == nil && f.kind == frameBatch {
			for i := range f.events {
				_ = f.events[i].ApproxBytes()
			}
		}
	})
}

// BenchmarkDecode compares, per event, decoding a realistic 100-event batch
// with decodeFrame against proto.Unmarshal into the generated types plus the
// conversion to pipeline.Event.
func BenchmarkDecode(b *testing.B) {
	const n = 100
	for _, form := range []string{"parts", "name"} {
		msg := realisticBatch(n)
		if form == "name" { // what the snakepipe Python library sends
			for _, e := range msg.GetBatch().GetEvents() {
				e.Name, e.EventParts = strings.Join(e.EventParts, "."), nil
			}
		}
		buf := mustMarshal(b, msg)
		b.Run("protowire/"+form, func(b *testing.B) {
			d := newDecoder(knownNames)
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			cpu0 := processCPU()
			for b.Loop() {
				// The codec copies each frame once; include that copy.
				frame := append([]byte(nil), buf...)
				f, err := d.decodeFrame(frame)
				if err != nil || len(f.events) != n {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*n), "cpu-ns/event")
			b.ReportMetric(float64(len(buf))/n, "wire-bytes/event")
		})
		b.Run("generated/"+form, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				f, err := refDecode(buf, knownNames)
				if err != nil || len(f.events) != n {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

// BenchmarkDecodeCheck is the whole per-frame ingest path after gRPC hands
// over the bytes: copy, decode, catalog check and sanitize, host context,
// batch accounting, hand-off to a Consumer that keeps nothing.
func BenchmarkDecodeCheck(b *testing.B) {
	const n = 100
	buf := mustMarshal(b, realisticBatch(n))
	var checker Checker = testCatalog(b)
	s, err := New(pipeline.Settings{Metrics: pipeline.NewMetrics()}, DefaultConfig(), Deps{
		Consumer: pipeline.ConsumerFunc(func(context.Context, *pipeline.Batch) error { return nil }),
		Checker:  checker,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			b.Error(err)
		}
	})
	c := newConn(WorkerInfo{WorkerID: "w"}, &pipeline.Origin{WorkerID: "w"})
	d := newDecoder(checker)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	cpu0 := processCPU()
	for b.Loop() {
		frame := append([]byte(nil), buf...)
		f, err := d.decodeFrame(frame)
		if err != nil {
			b.Fatal(err)
		}
		s.acceptBatch(c, f.events, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*n), "cpu-ns/event")
}

// A decoder sizes a batch's arrays from the previous batch; a batch with
// many more entries per event regrows them and must still decode right.
func TestDecodeRegrow(t *testing.T) {
	d := newDecoder(knownNames)
	sparse := batch(&pb.Event{Name: "a.b"}, &pb.Event{Name: "a.c"})
	if _, err := d.decodeFrame(mustMarshal(t, sparse)); err != nil {
		t.Fatal(err)
	}
	dense := batch()
	for i := 0; i < 20; i++ {
		e := &pb.Event{Name: fmt.Sprintf("e.%d", i)}
		for j := 0; j < 10; j++ {
			e.Metadata = append(e.Metadata, &pb.MetadataEntry{Key: fmt.Sprintf("k%d", j), Value: fmt.Sprintf("v%d.%d", i, j)})
			e.Measurements = append(e.Measurements, &pb.MeasurementEntry{Key: fmt.Sprintf("m%d", j), Value: &pb.Value{Value: &pb.Value_IntValue{IntValue: int64(i*100 + j)}}})
		}
		dense.GetBatch().Events = append(dense.GetBatch().Events, e)
	}
	buf := mustMarshal(t, dense)
	got, err := d.decodeFrame(buf)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := refDecode(buf, knownNames)
	if diff := eventsDiff(got.events, want.events); diff != "" {
		t.Fatal(diff)
	}
	// Appending to one event never shows up in another.
	for i := range got.events {
		_ = append(got.events[i].Metadata, pipeline.Label{Key: "x"})
	}
	if diff := eventsDiff(got.events, want.events); diff != "" {
		t.Fatalf("after appends: %s", diff)
	}
}

func TestJoinsTo(t *testing.T) {
	names := []string{"python.call.stop", "a.b", "a", ""}
	partsList := [][]string{
		{"python", "call", "stop"}, {"python.call", "stop"}, {"python.call.stop"}, {"python", "call", "stopp"},
		{"python", "call"}, {"python", "", "call", "stop"}, {"a", "b"}, {"a.", "b"}, {"a", ".b"}, {"a"}, {""}, {"", ""},
	}
	for _, name := range names {
		for _, parts := range partsList {
			if got, want := joinsTo(parts, name), strings.Join(parts, ".") == name; got != want {
				t.Errorf("joinsTo(%q, %q) = %v, want %v", parts, name, got, want)
			}
		}
	}
}

// The decoder's last-name cache never changes a result: frames whose
// events alternate between known names, their parts forms and near misses
// decode as the reference does, one decoder for all of them.
func TestDecodeNameCache(t *testing.T) {
	d := newDecoder(knownNames)
	events := []*pb.Event{
		{Name: "python.call.stop"}, {EventParts: []string{"python", "call", "stop"}},
		{EventParts: []string{"python", "call", "stopp"}}, {Name: "python.call.stopp"},
		{Name: "python.call.stop"}, {EventParts: []string{"python.call", "stop"}},
		{Name: "tool.execution.stop"}, {EventParts: []string{"python", "call", "stop"}},
		{Name: "python.call.sto"}, {EventParts: []string{"python", "call", "sto"}},
	}
	for round := 0; round < 2; round++ {
		buf := mustMarshal(t, batch(events...))
		got, err := d.decodeFrame(buf)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := refDecode(buf, knownNames)
		if diff := eventsDiff(got.events, want.events); diff != "" {
			t.Fatalf("round %d: %s", round, diff)
		}
		slices.Reverse(events)
	}
}
