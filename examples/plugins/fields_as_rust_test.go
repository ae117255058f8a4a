package examples_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/snakepipe/snakepipe/pipeline"
)

// asRustFieldsMeasurements is the snk_fields bit of measurements
// (docs/plugin-abi.md): the only group the slow_calls and duration_class
// examples read.
const asRustFieldsMeasurements = 1

// asRustFieldsExamples are the AssemblyScript and Rust examples that declare
// measurements only (slow_calls_str.wasm as slow_calls.wasm, so the two
// lookup variants are sent the same records).
var asRustFieldsExamples = []string{
	"assemblyscript/slow_calls.wasm",
	"assemblyscript/slow_calls_str.wasm",
	"assemblyscript/duration_class.wasm",
	"rust/slow_calls.wasm",
	"rust/duration_class.wasm",
}

// TestFieldsExportASRust: each example exports snk_fields () -> i32, and
// after _initialize and snk_init (with each golden config) it returns 1,
// measurements only.
func TestFieldsExportASRust(t *testing.T) {
	for _, path := range asRustFieldsExamples {
		for _, gc := range goldenCases {
			if !strings.Contains(path, gc.plugin) {
				continue
			}
			t.Run(path+"/"+gc.name, func(t *testing.T) {
				g, err := loadGuest(context.Background(), path, gc.cfg)
				if err != nil {
					t.Fatalf("%s: %v (build the example plugins with `make plugins`)", path, err)
				}
				defer g.close()
				f := g.mod.ExportedFunction("snk_fields")
				if f == nil {
					t.Fatal("no snk_fields export")
				}
				d := f.Definition()
				if len(d.ParamTypes()) != 0 || len(d.ResultTypes()) != 1 || d.ResultTypes()[0] != api.ValueTypeI32 {
					t.Fatalf("snk_fields has params %v results %v, want () -> i32", d.ParamTypes(), d.ResultTypes())
				}
				r, err := f.Call(g.ctx)
				if err != nil {
					t.Fatalf("snk_fields: %v", err)
				}
				if got := int32(r[0]); got != asRustFieldsMeasurements {
					t.Fatalf("snk_fields() = %d, want %d (measurements)", got, asRustFieldsMeasurements)
				}
			})
		}
	}
}

// TestFieldsMeasurementsSufficeASRust: what the examples declare is all they
// read. Over the golden input with host context added, each gives the same
// result frame (verdicts or patches) whether a record carries every field
// or only its measurements, as a host honouring snk_fields = 1 sends it.
func TestFieldsMeasurementsSufficeASRust(t *testing.T) {
	full := readInput(t)
	for i := range full {
		full[i].Origin = &pipeline.Origin{WorkerID: "w-1", Pool: "default", Hostname: "host-a", PID: 4242}
	}
	if len(full) == 0 || len(full[0].Metadata) == 0 {
		t.Fatal("the golden input has no metadata: nothing would be left out")
	}
	measurementsOnly := make([]pipeline.Event, len(full))
	for i, e := range full {
		e.Metadata, e.Origin = nil, nil
		measurementsOnly[i] = e
	}
	fullBatch := encodeBatch(nil, full)
	projected := encodeBatch(nil, measurementsOnly)
	if len(projected) >= len(fullBatch) {
		t.Fatalf("projected batch is %d bytes, full %d: nothing left out", len(projected), len(fullBatch))
	}
	for _, path := range asRustFieldsExamples {
		for _, gc := range goldenCases {
			if !strings.Contains(path, gc.plugin) {
				continue
			}
			t.Run(path+"/"+gc.name, func(t *testing.T) {
				g, err := loadGuest(context.Background(), path, gc.cfg)
				if err != nil {
					t.Fatalf("%s: %v (build the example plugins with `make plugins`)", path, err)
				}
				defer g.close()
				fn := g.filter
				if fn == nil {
					fn = g.enrich
				}
				want, err := g.callRaw(fn, len(full), fullBatch)
				if err != nil {
					t.Fatalf("all fields: %v", err)
				}
				want = bytes.Clone(want) // the result frame is reused by the next call
				got, err := g.callRaw(fn, len(measurementsOnly), projected)
				if err != nil {
					t.Fatalf("measurements only: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("measurements only: result frame\n%x\nwant (all fields)\n%x", got, want)
				}
			})
		}
	}
}

// TestFieldsFromConfigASRust: a declaration made at run time. The
// AssemblyScript test plugin calls declareFields in onInit, the Rust one
// answers through fields_fn!, both with config "fields": snk_fields returns
// what init set (the host asks after snk_init), FIELDS_ALL (7, every field,
// as with no export) when the config says nothing, and a value with other
// bits unchanged for the host to refuse.
func TestFieldsFromConfigASRust(t *testing.T) {
	for _, path := range []string{"assemblyscript/testdata/fields.wasm", "rust/testdata/fields.wasm"} {
		for _, tc := range []struct {
			name string
			cfg  map[string]string
			want int32
		}{
			{"undeclared", nil, 7},
			{"measurements", map[string]string{"fields": "1"}, 1},
			{"metadata_and_host_context", map[string]string{"fields": "6"}, 6},
			{"all", map[string]string{"fields": "7"}, 7},
			{"none", map[string]string{"fields": "0"}, 0},
			{"invalid_passed_on", map[string]string{"fields": "9"}, 9},
		} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				g, err := loadGuest(context.Background(), path, tc.cfg)
				if err != nil {
					t.Fatalf("%v (build the test plugins with `make plugins`)", err)
				}
				defer g.close()
				f := g.mod.ExportedFunction("snk_fields")
				if f == nil {
					t.Fatal("no snk_fields export")
				}
				r, err := f.Call(g.ctx)
				if err != nil {
					t.Fatalf("snk_fields: %v", err)
				}
				if got := int32(r[0]); got != tc.want {
					t.Fatalf("snk_fields() = %d, want %d", got, tc.want)
				}
			})
		}
	}
}
