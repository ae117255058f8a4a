package examples_test

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// TestGoExamplesDeclareFields: the built Go examples (make plugins) export
// snk_fields with the contract's signature () -> i32 and, after
// _initialize and snk_init, answer 1: they read measurements only
// (snk.DeclareFields(snk.Measurements)). Without the SDK's export the
// function is missing; without the declaration it answers 7.
func TestGoExamplesDeclareFields(t *testing.T) {
	for _, gc := range goldenCases {
		t.Run(gc.plugin+"/"+gc.name, func(t *testing.T) {
			ctx := context.Background()
			g, err := loadGuest(ctx, wasmPath(t, "go", gc.plugin), gc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer g.close()
			fn := g.mod.ExportedFunction("snk_fields")
			if fn == nil {
				t.Fatal("no snk_fields export")
			}
			def := fn.Definition()
			if len(def.ParamTypes()) != 0 || len(def.ResultTypes()) != 1 || def.ResultTypes()[0] != api.ValueTypeI32 {
				t.Fatalf("snk_fields signature: params %v results %v, want () -> i32", def.ParamTypes(), def.ResultTypes())
			}
			r, err := fn.Call(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := int32(r[0]); got != 1 {
				t.Errorf("snk_fields() = %d, want 1 (measurements)", got)
			}
		})
	}
}
