package examples_test

// The optional snk_fields export (docs/plugin-abi.md): a plugin declares the
// field groups it reads and the host sends only those. These tests check
// the SDKs' way to declare it on the built modules, through the raw driver
// (rawabi_test.go), so they do not depend on the host supporting it.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/tetratelabs/wazero/api"
)

// Field groups of snk_fields.
const (
	fieldsMeasurements = 1
	fieldsMetadata     = 2
	fieldsHostContext  = 4
	fieldsAll          = 7
)

// declaringModules lists the modules of plugin (see modules) that declare
// the groups they read: every SDK's slow_calls and duration_class, and
// AssemblyScript's Str-key variant, declare measurements only (they read the
// duration measurement and nothing else). The raw WAT example declares
// nothing (it shows the minimal ABI).
func declaringModules(plugin string) []string {
	var out []string
	for _, m := range modules(plugin) {
		if m != "wat" {
			out = append(out, m)
		}
	}
	return out
}

// fieldsUndeclared are modules that declare nothing: they must not export
// snk_fields (or export it returning fieldsAll), as before snk_fields
// existed. One line per module.
var fieldsUndeclared = []string{
	"c/testdata/lookups.wasm", // C SDK, no SNAKEPIPE_FIELDS
	"wat/filter.wasm",         // the raw ABI example
	// declareFields without the snk_fields re-export: the declaration does
	// nothing (docs/plugin-sdks.md, AssemblyScript)
	"assemblyscript/testdata/fields_unexported.wasm",
}

// fieldsFromConfig are SDK test plugins that declare the groups given in
// config "fields" (default fieldsAll): the declaration may depend on the
// config, since the host asks after snk_init. One line per module.
var fieldsFromConfig = []string{
	"c/testdata/fields.wasm",              // SNAKEPIPE_FIELDS(expression)
	"zig/testdata/fields.wasm",            // exportFieldsFn
	"assemblyscript/testdata/fields.wasm", // declareFields in onInit
	"rust/testdata/fields.wasm",           // fields_fn!
}

// fieldsPath is path (relative to examples/plugins) after checking that it
// was built.
func fieldsPath(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: %v (build the example plugins with `make plugins`)", path, err)
	}
	return path
}

// callFields calls g's snk_fields, which must have the signature () -> i32.
// ok is false when g has no snk_fields export.
func callFields(t *testing.T, g *guest) (groups uint32, ok bool) {
	t.Helper()
	fn := g.mod.ExportedFunction("snk_fields")
	if fn == nil {
		return 0, false
	}
	def := fn.Definition()
	if len(def.ParamTypes()) != 0 || len(def.ResultTypes()) != 1 || def.ResultTypes()[0] != api.ValueTypeI32 {
		t.Fatalf("snk_fields has signature %v -> %v, want () -> i32", def.ParamTypes(), def.ResultTypes())
	}
	r, err := fn.Call(g.ctx)
	if err != nil {
		t.Fatalf("snk_fields: %v", err)
	}
	return uint32(r[0]), true
}

// declaredFields loads the module at path with cfg (through _initialize
// and snk_init) and calls its snk_fields; ok is false without the export.
func declaredFields(t *testing.T, path string, cfg map[string]string) (groups uint32, ok bool) {
	t.Helper()
	g, err := loadGuest(context.Background(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	return callFields(t, g)
}

// TestFieldsDeclared: every SDK's slow_calls and duration_class export
// snk_fields () -> i32 returning measurements only, after snk_init with
// each golden config.
func TestFieldsDeclared(t *testing.T) {
	for _, gc := range goldenCases {
		for _, lang := range declaringModules(gc.plugin) {
			t.Run(lang+"/"+gc.plugin+"/"+gc.name, func(t *testing.T) {
				groups, ok := declaredFields(t, wasmPath(t, lang, gc.plugin), gc.cfg)
				if !ok {
					t.Fatal("no snk_fields export")
				}
				if groups != fieldsMeasurements {
					t.Errorf("snk_fields() = %d, want %d (measurements)", groups, fieldsMeasurements)
				}
			})
		}
	}
}

// TestFieldsUndeclared: a module that declares nothing has no snk_fields
// export, or one that returns every group.
func TestFieldsUndeclared(t *testing.T) {
	for _, path := range fieldsUndeclared {
		t.Run(path, func(t *testing.T) {
			if groups, ok := declaredFields(t, fieldsPath(t, path), map[string]string{"key": "k"}); ok && groups != fieldsAll {
				t.Errorf("snk_fields() = %d, want no export or %d", groups, fieldsAll)
			}
		})
	}
}

// TestFieldsDeclaredFromConfig: a declaration computed at run time answers
// what init set (every set of groups, 0 included), and every group when the
// config says nothing.
func TestFieldsDeclaredFromConfig(t *testing.T) {
	for _, path := range fieldsFromConfig {
		for set := uint32(0); set <= fieldsAll+1; set++ {
			want, cfg := set, map[string]string{"fields": strconv.Itoa(int(set))}
			if set > fieldsAll {
				want, cfg = fieldsAll, nil // no config: the plugin's default
			}
			t.Run(path+"/"+strconv.Itoa(int(want))+"/cfg="+strconv.Itoa(len(cfg)), func(t *testing.T) {
				groups, ok := declaredFields(t, fieldsPath(t, path), cfg)
				if !ok {
					t.Fatal("no snk_fields export")
				}
				if groups != want {
					t.Errorf("snk_fields() = %d, want %d", groups, want)
				}
			})
		}
	}
}

// projectFields returns copies of events with only the fields of groups,
// as the host sends them to a plugin that declared groups.
func projectFields(events []pipeline.Event, groups uint32) []pipeline.Event {
	out := make([]pipeline.Event, len(events))
	for i, e := range events {
		if groups&fieldsMeasurements == 0 {
			e.Measurements = nil
		}
		if groups&fieldsMetadata == 0 {
			e.Metadata = nil
		}
		if groups&fieldsHostContext == 0 {
			e.Origin = nil
		}
		out[i] = e
	}
	return out
}

// runProjected passes events through g in batches of n, sending only the
// fields of groups, and applies the verdicts or patches to the events as
// they were (what the host does).
func runProjected(t *testing.T, g *guest, events []pipeline.Event, groups uint32, n int) []pipeline.Event {
	t.Helper()
	var out []pipeline.Event
	for i := 0; i < len(events); i += n {
		batch := events[i:min(i+n, len(events))]
		g.enc = encodeBatch(g.enc[:0], projectFields(batch, groups))
		if g.filter != nil {
			res, err := g.callRaw(g.filter, len(batch), g.enc)
			if err != nil {
				t.Fatalf("batch at %d: %v", i, err)
			}
			if len(res) != len(batch) {
				t.Fatalf("batch at %d: %d verdicts for %d events", i, len(res), len(batch))
			}
			for j, v := range res {
				if v == 1 {
					out = append(out, batch[j])
				}
			}
			continue
		}
		res, err := g.callRaw(g.enrich, len(batch), g.enc)
		if err != nil {
			t.Fatalf("batch at %d: %v", i, err)
		}
		got, err := applyActions(batch, res)
		if err != nil {
			t.Fatalf("batch at %d: %v", i, err)
		}
		out = append(out, got...)
	}
	return out
}

// TestFieldsProjectedGolden: the examples give the golden output when sent
// only the groups they declare (the input's metadata and host context left
// out), so their declaration is true: they read nothing else.
func TestFieldsProjectedGolden(t *testing.T) {
	input := readInput(t)
	var meta, host bool // the input has fields to leave out
	for _, e := range input {
		meta = meta || len(e.Metadata) > 0
		host = host || e.Origin != nil
	}
	if !meta || !host {
		t.Fatal("the golden input has no metadata or no host context")
	}
	ctx := context.Background()
	for _, gc := range goldenCases {
		want, err := os.ReadFile(filepath.Join("testdata", gc.plugin+"."+gc.name+".expected.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for _, lang := range declaringModules(gc.plugin) {
			t.Run(gc.plugin+"/"+gc.name+"/"+lang, func(t *testing.T) {
				g, err := loadGuest(ctx, wasmPath(t, lang, gc.plugin), gc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer g.close()
				groups, ok := callFields(t, g)
				if !ok {
					t.Fatal("no snk_fields export")
				}
				if groups == fieldsAll {
					t.Fatal("snk_fields() declares every group: nothing is left out")
				}
				for _, n := range []int{1, 5, 64} {
					if got := toJSONL(runProjected(t, g, input, groups, n)); !bytes.Equal(got, want) {
						t.Errorf("batch size %d, groups %d: output differs from the golden file\n got:\n%s\nwant:\n%s", n, groups, got, want)
					}
				}
			})
		}
	}
}
