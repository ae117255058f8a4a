package catalog

import (
	"strings"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// benchCheck runs Check on a fresh copy of the template's slices each time,
// as ingest does with freshly decoded events (the copy is part of the
// measured time, ~10 ns).
func benchCheck(b *testing.B, tmpl pipeline.Event) {
	c := MustNew(DefaultConfig())
	ms := make([]pipeline.Measurement, len(tmpl.Measurements))
	md := make([]pipeline.Label, len(tmpl.Metadata))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ev := tmpl
		copy(ms, tmpl.Measurements)
		copy(md, tmpl.Metadata)
		ev.Measurements, ev.Metadata = ms, md
		if _, err := c.Check(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	b.Run("clean", func(b *testing.B) {
		benchCheck(b, pipeline.Event{
			Name:          "tool.execution.stop",
			CorrelationID: "req-8f14e45f",
			SampleRate:    1,
			Measurements: []pipeline.Measurement{
				{Key: "duration", Value: pipeline.IntValue(1200)},
				{Key: "count", Value: pipeline.IntValue(1)},
			},
			Metadata: []pipeline.Label{
				{Key: "tool", Value: "search"},
				{Key: "operation", Value: "query"},
				{Key: "model", Value: "bert-base-uncased"},
			},
		})
	})
	b.Run("needs_repair", func(b *testing.B) {
		benchCheck(b, pipeline.Event{
			Name:          "tool.execution.stop",
			CorrelationID: "req\n8f14e45f",
			SampleRate:    1,
			Measurements: []pipeline.Measurement{
				{Key: "duration", Value: pipeline.IntValue(1200)},
				{Key: "count", Value: pipeline.IntValue(1)},
			},
			Metadata: []pipeline.Label{
				{Key: "tool", Value: "sea\xffrch"},
				{Key: "pid", Value: "42"},
				{Key: "traceback", Value: strings.Repeat("line\n", 400)},
			},
		})
	})
	b.Run("huge_values", func(b *testing.B) {
		// 4 MiB values: one clean ASCII, one junk; both cut to 1 KiB.
		benchCheck(b, pipeline.Event{
			Name: "python.error.occurred",
			Metadata: []pipeline.Label{
				{Key: "traceback", Value: strings.Repeat("x", 4<<20)},
				{Key: "error_message", Value: strings.Repeat("\xffé\x00x", 1<<20)},
			},
		})
	})
	b.Run("unknown_event", func(b *testing.B) {
		c := MustNew(DefaultConfig())
		b.ReportAllocs()
		for b.Loop() {
			ev := pipeline.Event{Name: "python.call.stopp"}
			if _, err := c.Check(&ev); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

func BenchmarkLookupParts(b *testing.B) {
	c := MustNew(DefaultConfig())
	for _, parts := range [][]string{
		{"python", "call", "stop"},
		{"snakepit", "grpc", "connection", "established"},
		{"python", "call", "stopp"}, // miss
	} {
		b.Run(strings.Join(parts, "_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.LookupParts(parts)
			}
		})
	}
}
