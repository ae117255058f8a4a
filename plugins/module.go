package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Kind is what a plugin does with a batch.
type Kind uint8

const (
	// KindAuto means "take the kind from the module's exports".
	KindAuto Kind = iota
	KindFilter
	KindEnrich
)

func (k Kind) String() string {
	switch k {
	case KindFilter:
		return "filter"
	case KindEnrich:
		return "enrich"
	default:
		return "auto"
	}
}

// MarshalText writes the kind's name ("filter", "enrich", "auto").
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses what MarshalText writes.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	*k = v
	return err
}

// ParseKind parses "", "filter" or "enrich".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "", "auto":
		return KindAuto, nil
	case "filter":
		return KindFilter, nil
	case "enrich":
		return KindEnrich, nil
	}
	return KindAuto, fmt.Errorf("kind %q is not filter or enrich", s)
}

// Sentinel errors of module checks. Each check error wraps one of them and
// says exactly what is wrong.
var (
	// ErrNotWasm: the bytes are not a valid WebAssembly module.
	ErrNotWasm = errors.New("not a valid WebAssembly module")
	// ErrTooLarge: the module is larger than plugins.max_module_bytes.
	ErrTooLarge = errors.New("module too large")
	// ErrForbiddenImport: the module imports something outside the allowlist.
	ErrForbiddenImport = errors.New("forbidden import")
	// ErrBadExports: a required export is missing or has the wrong signature.
	ErrBadExports = errors.New("bad exports")
	// ErrABIVersion: snk_abi_version() did not return ABIVersion.
	ErrABIVersion = errors.New("unsupported ABI version")
	// ErrBadMeta: the snakepipe.meta custom section is malformed.
	ErrBadMeta = errors.New("bad snakepipe.meta section")
	// ErrInit: _initialize, snk_in_buf, snk_init or snk_fields failed.
	ErrInit = errors.New("plugin initialisation failed")
)

// Meta is the optional snakepipe.meta custom section (docs/plugin-abi.md §11).
type Meta struct {
	Name        string `json:"name,omitempty"`
	Version     string `json:"version,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Description string `json:"description,omitempty"`
}

const metaSection = "snakepipe.meta"

func parseMeta(data []byte) (*Meta, error) {
	if len(data) > 4096 {
		return nil, fmt.Errorf("%w: %d bytes, at most 4096", ErrBadMeta, len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Meta
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrBadMeta)
	}
	var errs []error
	if len(m.Name) > 64 {
		errs = append(errs, fmt.Errorf("%w: name is %d bytes, at most 64", ErrBadMeta, len(m.Name)))
	}
	if len(m.Version) > 64 {
		errs = append(errs, fmt.Errorf("%w: version is %d bytes, at most 64", ErrBadMeta, len(m.Version)))
	}
	if len(m.Description) > 256 {
		errs = append(errs, fmt.Errorf("%w: description is %d bytes, at most 256", ErrBadMeta, len(m.Description)))
	}
	if m.Kind != "" && m.Kind != "filter" && m.Kind != "enrich" {
		errs = append(errs, fmt.Errorf("%w: kind %q is not filter or enrich", ErrBadMeta, m.Kind))
	}
	return &m, errors.Join(errs...)
}

// FuncInfo describes an imported or exported function.
type FuncInfo struct {
	Module  string   `json:"module,omitempty"` // import module ("" for exports)
	Name    string   `json:"name"`
	Params  []string `json:"params"`
	Results []string `json:"results"`
	// Allowed is false for an import outside the allowlist (always true
	// for an export).
	Allowed bool `json:"allowed"`
}

// Signature formats the function type as "(i32, i32) -> i64".
func (f FuncInfo) Signature() string {
	s := "(" + strings.Join(f.Params, ", ") + ")"
	if len(f.Results) > 0 {
		s += " -> " + strings.Join(f.Results, ", ")
	}
	return s
}

// Info is what Inspect reports about a module.
type Info struct {
	Path   string `json:"path"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	// ABIVersion is what snk_abi_version returned (0 if it could not run).
	ABIVersion int32 `json:"abi_version"`
	// Kinds are the kinds the module can serve (from its exports).
	Kinds []Kind `json:"kinds"`
	// Fields are the field groups a stage sends the module
	// (docs/plugin-abi.md §5.1): FieldsAll without a snk_fields export,
	// else what snk_fields returned in an instance started with an empty
	// config; nil when that could not be found out (FieldsNote says why).
	Fields *FieldGroups `json:"fields"`
	// FieldsNote says where Fields comes from, or why it is unknown.
	FieldsNote string     `json:"fields_note"`
	Exports    []FuncInfo `json:"exports"`
	Imports    []FuncInfo `json:"imports"`
	// MemoryMinPages and MemoryMaxPages describe the exported memory
	// (MemoryMaxPages 0 = no maximum declared).
	MemoryMinPages uint32        `json:"memory_min_pages"`
	MemoryMaxPages uint32        `json:"memory_max_pages"`
	Meta           *Meta         `json:"meta,omitempty"`
	CompileTime    time.Duration `json:"compile_ns"`
	// Problems are the reasons the module would be refused (empty: loadable).
	Problems []string `json:"problems"`
}

// MarshalJSON writes Info with its lists as [] rather than null when they
// are empty (a module with no imports, one that is not Wasm at all), so
// that consumers of `snakepipe plugin inspect --json` need no null checks.
func (i Info) MarshalJSON() ([]byte, error) {
	type plain Info // without the method
	p := plain(i)
	p.Kinds, p.Exports, p.Imports, p.Problems = orEmpty(p.Kinds), orEmpty(p.Exports), orEmpty(p.Imports), orEmpty(p.Problems)
	return json.Marshal(p)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// module is a compiled module that passed the static checks.
type module struct {
	cm          wazero.CompiledModule
	rt          wazero.Runtime
	key         moduleKey
	sha         string
	size        int
	compileTime time.Duration
	refs        int // under Host.mu
	checkErr    error
	// interrupt: the module was instrumented (InstrumentForDeadline): its
	// deadline sets InterruptGlobal. Otherwise an untrusted module runs in
	// the close-on-context-done runtime.
	interrupt bool
	// hasStart: call StartExport right after instantiation.
	hasStart bool

	kinds         []Kind
	meta          *Meta
	hasInitialize bool
	hasInit       bool
	hasClose      bool
	hasFields     bool
	minPages      uint32
}

type sig struct{ params, results []api.ValueType }

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// allowedImports is the import allowlist of ABI v1 (docs/plugin-abi.md §3);
// a nil signature means "the WASI signature wazero implements".
var allowedImports = map[string]map[string]*sig{
	HostModule: {
		"log":    {params: []api.ValueType{i32, i32, i32}},
		"now_ns": {results: []api.ValueType{i64}},
	},
	"wasi_snapshot_preview1": {
		"fd_write": nil, "clock_time_get": nil, "clock_res_get": nil, "random_get": nil,
		"args_get": nil, "args_sizes_get": nil, "environ_get": nil, "environ_sizes_get": nil,
		"proc_exit": nil, "sched_yield": nil, "poll_oneoff": nil,
		"fd_close": nil, "fd_fdstat_get": nil, "fd_fdstat_set_flags": nil,
		"fd_prestat_get": nil, "fd_prestat_dir_name": nil,
	},
	"env": {
		"abort": {params: []api.ValueType{i32, i32, i32, i32}},
	},
}

var requiredExports = map[string]sig{
	"snk_abi_version": {results: []api.ValueType{i32}},
	"snk_in_buf":      {params: []api.ValueType{i32}, results: []api.ValueType{i32}},
}

var optionalExports = map[string]sig{
	"snk_filter":  {params: []api.ValueType{i32, i32}, results: []api.ValueType{i64}},
	"snk_enrich":  {params: []api.ValueType{i32, i32}, results: []api.ValueType{i64}},
	"_initialize": {},
	"snk_init":    {params: []api.ValueType{i32}, results: []api.ValueType{i32}},
	"snk_close":   {},
	"snk_fields":  {results: []api.ValueType{i32}},
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sigString(s sig) string {
	return FuncInfo{Params: typeNames(s.params), Results: typeNames(s.results)}.Signature()
}

// describe fills the static parts of info from cm and returns the check
// problems (each wrapping a sentinel above).
func describe(cm wazero.CompiledModule, info *Info, m *module) []error {
	var errs []error
	var bad []string
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		fi := FuncInfo{Module: mod, Name: name, Params: typeNames(f.ParamTypes()), Results: typeNames(f.ResultTypes())}
		want, ok := allowedImports[mod][name]
		fi.Allowed = ok && (want == nil || sameTypes(want.params, f.ParamTypes()) && sameTypes(want.results, f.ResultTypes()))
		if !fi.Allowed {
			if ok {
				bad = append(bad, fmt.Sprintf("%s.%s%s (allowed signature is %s)", mod, name, fi.Signature(), sigString(*want)))
			} else {
				bad = append(bad, fmt.Sprintf("%s.%s%s", mod, name, fi.Signature()))
			}
		}
		info.Imports = append(info.Imports, fi)
	}
	for _, mem := range cm.ImportedMemories() {
		mod, name, _ := mem.Import()
		bad = append(bad, fmt.Sprintf("memory %s.%s (the module must define its own memory)", mod, name))
	}
	if len(bad) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s; allowed: snakepipe_v1.{log,now_ns}, a subset of wasi_snapshot_preview1, env.abort (docs/plugin-abi.md §3)",
			ErrForbiddenImport, strings.Join(bad, ", ")))
	}

	exports := cm.ExportedFunctions()
	names := make([]string, 0, len(exports))
	for n := range exports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := exports[n]
		// Allowed concerns imports only; an export is never refused for
		// being one (a required export's signature is checked below).
		info.Exports = append(info.Exports, FuncInfo{Name: n, Params: typeNames(f.ParamTypes()), Results: typeNames(f.ResultTypes()), Allowed: true})
	}
	checkSig := func(name string, want sig, required bool) bool {
		f, ok := exports[name]
		if !ok {
			if required {
				errs = append(errs, fmt.Errorf("%w: missing required export %s%s", ErrBadExports, name, sigString(want)))
			}
			return false
		}
		if !sameTypes(f.ParamTypes(), want.params) || !sameTypes(f.ResultTypes(), want.results) {
			got := FuncInfo{Params: typeNames(f.ParamTypes()), Results: typeNames(f.ResultTypes())}
			errs = append(errs, fmt.Errorf("%w: export %s has signature %s, want %s", ErrBadExports, name, got.Signature(), sigString(want)))
			return false
		}
		return true
	}
	for _, n := range []string{"snk_abi_version", "snk_in_buf"} {
		checkSig(n, requiredExports[n], true)
	}
	if checkSig("snk_filter", optionalExports["snk_filter"], false) {
		info.Kinds = append(info.Kinds, KindFilter)
	}
	if checkSig("snk_enrich", optionalExports["snk_enrich"], false) {
		info.Kinds = append(info.Kinds, KindEnrich)
	}
	_, hasFilter := exports["snk_filter"]
	_, hasEnrich := exports["snk_enrich"]
	if !hasFilter && !hasEnrich {
		errs = append(errs, fmt.Errorf("%w: exports neither snk_filter(i32, i32) -> i64 nor snk_enrich(i32, i32) -> i64", ErrBadExports))
	}
	if _, ok := exports["_start"]; ok {
		errs = append(errs, fmt.Errorf("%w: module exports _start (a WASI command): build it as a reactor (Go: -buildmode=c-shared; C: -Wl,--no-entry)", ErrBadExports))
	}
	m.hasInitialize = checkSig("_initialize", optionalExports["_initialize"], false)
	m.hasInit = checkSig("snk_init", optionalExports["snk_init"], false)
	m.hasClose = checkSig("snk_close", optionalExports["snk_close"], false)
	m.hasFields = checkSig("snk_fields", optionalExports["snk_fields"], false)

	mems := cm.ExportedMemories()
	if mem, ok := mems["memory"]; !ok {
		errs = append(errs, fmt.Errorf("%w: missing exported memory \"memory\"", ErrBadExports))
	} else {
		info.MemoryMinPages = mem.Min()
		if mx, ok := mem.Max(); ok {
			info.MemoryMaxPages = mx
		}
		m.minPages = mem.Min()
	}

	for _, cs := range cm.CustomSections() {
		if cs.Name() != metaSection {
			continue
		}
		if info.Meta != nil {
			errs = append(errs, fmt.Errorf("%w: more than one %s section", ErrBadMeta, metaSection))
			continue
		}
		meta, err := parseMeta(cs.Data())
		info.Meta = meta
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if meta.Kind != "" {
			k, _ := ParseKind(meta.Kind)
			if !hasKind(info.Kinds, k) {
				errs = append(errs, fmt.Errorf("%w: kind %q but the module does not export snk_%s", ErrBadMeta, meta.Kind, meta.Kind))
			}
		}
	}
	m.kinds = info.Kinds
	m.meta = info.Meta
	return errs
}

func hasKind(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// resolveKind picks the kind a stage runs the module as.
func resolveKind(kinds []Kind, want Kind, meta *Meta) (Kind, error) {
	if want != KindAuto {
		if !hasKind(kinds, want) {
			return 0, fmt.Errorf("%w: kind %s configured but the module does not export snk_%s", ErrBadExports, want, want)
		}
		return want, nil
	}
	switch len(kinds) {
	case 1:
		return kinds[0], nil
	case 2:
		if meta != nil && meta.Kind != "" {
			k, _ := ParseKind(meta.Kind)
			return k, nil
		}
		return 0, fmt.Errorf("%w: module exports both snk_filter and snk_enrich: set kind: filter or kind: enrich", ErrBadExports)
	}
	return 0, fmt.Errorf("%w: no usable snk_filter or snk_enrich export", ErrBadExports)
}
