package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
)

// Inspect reads, compiles and checks the module at path with a temporary
// host (no disk cache, no watching) and reports what it found. err is
// non-nil only if the file cannot be read; check problems are listed in
// Info.Problems.
func Inspect(ctx context.Context, path string) (_ Info, err error) {
	cfg := DefaultHostConfig()
	cfg.Cache, cfg.Watch = false, false
	h, err := NewHost(cfg, nil, nil)
	if err != nil {
		return Info{}, err
	}
	defer func() { err = errors.Join(err, h.Close(ctx)) }()
	return h.Inspect(ctx, path)
}

// Inspect is Inspect with this host's runtime and limits.
func (h *Host) Inspect(ctx context.Context, path string) (Info, error) {
	info := Info{Path: path}
	bin, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	sum := sha256.Sum256(bin)
	info.Size, info.SHA256 = len(bin), hex.EncodeToString(sum[:])
	problem := func(err error) { info.Problems = append(info.Problems, err.Error()) }
	if len(bin) > h.cfg.MaxModuleBytes {
		problem(fmt.Errorf("%w: %d bytes, plugins.max_module_bytes is %d", ErrTooLarge, len(bin), h.cfg.MaxModuleBytes))
	}
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		problem(fmt.Errorf("%w: no Wasm magic \\0asm at the start", ErrNotWasm))
		return info, nil
	}
	h.mu.Lock()
	r, err := h.runtime(ctx, true) // the original module: its start section, if any, runs at instantiation
	h.mu.Unlock()
	if err != nil {
		return info, err
	}
	start := time.Now()
	cm, err := h.compileModule(ctx, r, bin)
	info.CompileTime = time.Since(start)
	switch {
	case errors.Is(err, ErrHostClosed):
		return info, err
	case errors.Is(err, ErrCompileTimeout):
		problem(err)
		return info, nil
	case err != nil:
		problem(fmt.Errorf("%w: %w", ErrNotWasm, err))
		return info, nil
	}
	defer cm.Close(ctx)
	m := &module{cm: cm, rt: r}
	errs := describe(cm, &info, m)
	for _, e := range errs {
		problem(e)
	}
	if m.minPages > h.cfg.MemoryLimitPages {
		problem(fmt.Errorf("memory: needs %d pages at start, over plugins.memory_limit_pages %d", m.minPages, h.cfg.MemoryLimitPages))
	}
	loadable := len(errs) == 0 && m.minPages <= hardMaxPages
	if loadable {
		v, err := abiVersionOf(ctx, r, cm, m)
		info.ABIVersion = v
		if err != nil {
			problem(err)
			loadable = false
		}
	}
	h.inspectFields(ctx, m, &info, loadable)
	return info, nil
}

// inspectFields fills info.Fields and info.FieldsNote. snk_fields runs
// after snk_init (its answer may depend on the config), so it is called in
// an instance started as a stage starts one, with an empty config. A
// failure of snk_fields itself is a problem; a failure before it (such as
// snk_init refusing an empty config) only leaves the groups unknown.
func (h *Host) inspectFields(ctx context.Context, m *module, info *Info, loadable bool) {
	all := FieldsAll
	switch {
	case !m.hasFields && !hasExport(info.Exports, "snk_fields"):
		info.Fields, info.FieldsNote = &all, "no snk_fields export"
		return
	case !m.hasFields:
		info.FieldsNote = "unknown: snk_fields has the wrong signature"
		return
	case !loadable:
		info.FieldsNote = "unknown: the module has problems"
		return
	}
	plog := newPluginLog(hclog.NewNullLogger(), nil)
	frame, _ := EncodeConfig(nil)
	inst, err := newInstance(ctx, m, m.kinds[0], plog, h.cfg.MemoryLimitPages, defaultInBuf, frame)
	var ferr *fieldsError
	switch {
	case errors.As(err, &ferr):
		info.Problems = append(info.Problems, err.Error())
		info.FieldsNote = "unknown: snk_fields failed"
	case err != nil:
		// First line only: a trap's error carries a wasm stack trace, and
		// the note is one line of the text output (and of fields_note).
		msg, _, _ := strings.Cut(err.Error(), "\n")
		info.FieldsNote = "unknown: no instance started with an empty config to call snk_fields in: " + msg
	default:
		g := inst.fields
		inst.close(true, false)
		info.Fields, info.FieldsNote = &g, fmt.Sprintf("snk_fields() returned %d with an empty config", g)
	}
}

func hasExport(fs []FuncInfo, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// abiVersionOf instantiates cm, runs _initialize and snk_abi_version.
func abiVersionOf(ctx context.Context, r wazero.Runtime, cm wazero.CompiledModule, m *module) (int32, error) {
	plog := newPluginLog(hclog.NewNullLogger(), nil)
	ictx, cancel := context.WithTimeout(context.WithValue(ctx, logKey{}, plog), initDeadline)
	defer cancel()
	mod, err := r.InstantiateModule(ictx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return 0, fmt.Errorf("%w: instantiate: %w", ErrInit, err)
	}
	defer mod.Close(ctx)
	if m.hasInitialize {
		if _, err := mod.ExportedFunction("_initialize").Call(ictx); err != nil {
			return 0, fmt.Errorf("%w: _initialize: %w", ErrInit, err)
		}
	}
	res, err := mod.ExportedFunction("snk_abi_version").Call(ictx)
	if err != nil {
		return 0, fmt.Errorf("%w: snk_abi_version: %w", ErrInit, err)
	}
	v := int32(uint32(res[0]))
	if v != ABIVersion {
		return v, fmt.Errorf("%w: snk_abi_version() returned %d, this host speaks ABI %d", ErrABIVersion, v, ABIVersion)
	}
	return v, nil
}

// Write prints info for people (`snakepipe plugin inspect`).
func (info Info) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "file:        %s (%d bytes, sha256 %s)\n", info.Path, info.Size, info.SHA256)
	fmt.Fprintf(&b, "abi version: %d\n", info.ABIVersion)
	kinds := make([]string, len(info.Kinds))
	for i, k := range info.Kinds {
		kinds[i] = k.String()
	}
	fmt.Fprintf(&b, "kind:        %s\n", strings.Join(kinds, ", "))
	if info.Fields != nil {
		fmt.Fprintf(&b, "fields:      %s (%s)\n", *info.Fields, info.FieldsNote)
	} else if info.FieldsNote != "" {
		fmt.Fprintf(&b, "fields:      %s\n", info.FieldsNote)
	} else {
		b.WriteString("fields:      unknown\n") // not a module that compiles
	}
	mx := "none"
	if info.MemoryMaxPages > 0 {
		mx = fmt.Sprint(info.MemoryMaxPages)
	}
	fmt.Fprintf(&b, "memory:      %d pages initial (%d KiB), max %s\n", info.MemoryMinPages, info.MemoryMinPages*64, mx)
	if info.Meta != nil {
		fmt.Fprintf(&b, "meta:        name=%q version=%q kind=%q description=%q\n", info.Meta.Name, info.Meta.Version, info.Meta.Kind, info.Meta.Description)
	} else {
		b.WriteString("meta:        (no snakepipe.meta section)\n")
	}
	fmt.Fprintf(&b, "compile:     %s\n", info.CompileTime.Round(time.Microsecond))
	b.WriteString("exports:\n")
	for _, f := range info.Exports {
		fmt.Fprintf(&b, "  %s%s\n", f.Name, f.Signature())
	}
	b.WriteString("imports:\n")
	if len(info.Imports) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, f := range info.Imports {
		mark := ""
		if !f.Allowed {
			mark = "   <- NOT ALLOWED"
		}
		fmt.Fprintf(&b, "  %s.%s%s%s\n", f.Module, f.Name, f.Signature(), mark)
	}
	if len(info.Problems) == 0 {
		b.WriteString("status:      ok, loadable\n")
	} else {
		b.WriteString("problems:\n")
		for _, p := range info.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
