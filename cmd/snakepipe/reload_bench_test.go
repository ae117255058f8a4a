package main

import (
	"testing"

	"github.com/snakepipe/snakepipe/catalog"
	"github.com/snakepipe/snakepipe/ingest"
	"github.com/snakepipe/snakepipe/pipeline"
)

// BenchmarkCatalogCheckSwappable compares what ingest pays per event for
// the swappable catalog (an atomic load more) with the catalog itself, both
// called through the ingest.Checker interface as ingest calls them.
func BenchmarkCatalogCheckSwappable(b *testing.B) {
	cat := catalog.MustNew(catalog.DefaultConfig())
	tmpl := pipeline.Event{
		Name: "python.call.stop", SampleRate: 1,
		Measurements: []pipeline.Measurement{{Key: "duration", Value: pipeline.IntValue(1200)}},
		Metadata:     []pipeline.Label{{Key: "command", Value: "embed"}},
	}
	for _, bc := range []struct {
		name    string
		checker ingest.Checker
	}{{"direct", cat}, {"swappable", newCatalogRef(cat)}} {
		b.Run(bc.name, func(b *testing.B) {
			ms := make([]pipeline.Measurement, len(tmpl.Measurements))
			md := make([]pipeline.Label, len(tmpl.Metadata))
			b.ReportAllocs()
			for b.Loop() {
				ev := tmpl
				copy(ms, tmpl.Measurements)
				copy(md, tmpl.Metadata)
				ev.Measurements, ev.Metadata = ms, md
				if _, err := bc.checker.Check(&ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
