package examples_test

// A raw snakepipe_v1 driver on wazero, independent of package plugins, for
// the SDK conformance tests and the guest-only benchmark: it hands guests
// frames the real host never sends (malformed batches, batches larger than
// the host's split size so the SDKs' buffers must grow), returns the exact
// result frame, and calls the guest with nothing else around it. It encodes
// batches as docs/plugin-abi.md says and applies verdicts and patches
// strictly (any malformed result frame is an error). The golden test runs
// through the real host (host_test.go).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// compileCache shares compiled code between the many short-lived runtimes.
var compileCache = wazero.NewCompilationCache()

type guest struct {
	ctx    context.Context
	rt     wazero.Runtime
	mod    api.Module
	mem    api.Memory
	inBuf  api.Function
	filter api.Function
	enrich api.Function
	inPtr  uint32
	inCap  uint32
	enc    []byte
	stack  []uint64

	mu   sync.Mutex
	logs []string
}

// errCode is a negative guest return code.
type errCode int64

func (e errCode) Error() string { return "guest returned " + strconv.FormatInt(int64(e), 10) }

func loadGuest(ctx context.Context, path string, cfg map[string]string) (*guest, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g, err := newGuest(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.setup(bin, cfg); err != nil {
		_ = g.rt.Close(ctx)
		return nil, err
	}
	return g, nil
}

func newGuest(ctx context.Context) (*guest, error) {
	return newGuestOpt(ctx, false)
}

func newGuestOpt(ctx context.Context, closeOnDone bool) (*guest, error) {
	g := &guest{ctx: ctx, stack: make([]uint64, 2)}
	g.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithMemoryLimitPages(1024).WithCompilationCache(compileCache).WithCloseOnContextDone(closeOnDone))
	return g, nil
}

func (g *guest) setup(bin []byte, cfg map[string]string) error {
	ctx := g.ctx
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, g.rt); err != nil {
		return err
	}
	_, err := g.rt.NewHostModuleBuilder("snakepipe_v1").
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, level, ptr, n uint32) {
		b, ok := m.Memory().Read(ptr, n)
		if !ok {
			b = []byte("<out of bounds>")
		}
		g.mu.Lock()
		g.logs = append(g.logs, strconv.Itoa(int(level))+": "+string(b))
		g.mu.Unlock()
	}).Export("log").
		NewFunctionBuilder().WithFunc(func(context.Context) int64 { return 0 }).Export("now_ns").
		Instantiate(ctx)
	if err != nil {
		return err
	}
	cm, err := g.rt.CompileModule(ctx, bin)
	if err != nil {
		return err
	}
	g.mod, err = g.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		return err
	}
	if f := g.mod.ExportedFunction("_initialize"); f != nil {
		if _, err := f.Call(ctx); err != nil {
			return fmt.Errorf("_initialize: %w", err)
		}
	}
	if v := g.mod.ExportedFunction("snk_abi_version"); v == nil {
		return errors.New("no snk_abi_version export")
	} else if r, err := v.Call(ctx); err != nil || r[0] != 1 {
		return fmt.Errorf("snk_abi_version = %v: %w", r, err)
	}
	g.mem = g.mod.Memory()
	g.inBuf = g.mod.ExportedFunction("snk_in_buf")
	g.filter = g.mod.ExportedFunction("snk_filter")
	g.enrich = g.mod.ExportedFunction("snk_enrich")
	if g.mem == nil || g.inBuf == nil || (g.filter == nil) == (g.enrich == nil) {
		return errors.New("missing required exports")
	}
	if err := g.reserve(64 << 10); err != nil {
		return err
	}
	if init := g.mod.ExportedFunction("snk_init"); init != nil {
		frame := configFrame(cfg)
		if err := g.write(frame); err != nil {
			return err
		}
		r, err := init.Call(ctx, uint64(len(frame)))
		if err != nil {
			return fmt.Errorf("snk_init: %w", err)
		}
		if int32(r[0]) != 0 {
			return errCode(int32(r[0]))
		}
	}
	return nil
}

func (g *guest) close() { _ = g.rt.Close(g.ctx) }

func (g *guest) reserve(need uint32) error {
	if need <= g.inCap && g.inPtr != 0 {
		return nil
	}
	r, err := g.inBuf.Call(g.ctx, uint64(need))
	if err != nil {
		return fmt.Errorf("snk_in_buf: %w", err)
	}
	if uint32(r[0]) == 0 {
		return fmt.Errorf("snk_in_buf(%d) = 0", need)
	}
	g.inPtr, g.inCap = uint32(r[0]), need
	return nil
}

func (g *guest) write(b []byte) error {
	if err := g.reserve(uint32(len(b))); err != nil {
		return err
	}
	if !g.mem.Write(g.inPtr, b) {
		return errors.New("input buffer outside memory")
	}
	return nil
}

// callRaw writes an already encoded batch and calls fn(n, len).
func (g *guest) callRaw(fn api.Function, n int, batch []byte) ([]byte, error) {
	if err := g.write(batch); err != nil {
		return nil, err
	}
	g.stack[0], g.stack[1] = uint64(n), uint64(len(batch))
	if err := fn.CallWithStack(g.ctx, g.stack); err != nil {
		return nil, err
	}
	r := int64(g.stack[0])
	if r < 0 {
		return nil, errCode(r)
	}
	res, ok := g.mem.Read(uint32(r>>32), uint32(r))
	if !ok {
		return nil, errors.New("result frame outside memory")
	}
	return res, nil
}

// run passes events through the plugin and returns what comes out.
func (g *guest) run(events []pipeline.Event) ([]pipeline.Event, error) {
	g.enc = encodeBatch(g.enc[:0], events)
	if g.filter != nil {
		res, err := g.callRaw(g.filter, len(events), g.enc)
		if err != nil {
			return nil, err
		}
		if len(res) != len(events) {
			return nil, fmt.Errorf("filter result has %d bytes for %d events", len(res), len(events))
		}
		var out []pipeline.Event
		for i, v := range res {
			switch v {
			case 1:
				out = append(out, events[i])
			case 0:
			default:
				return nil, fmt.Errorf("verdict %d", v)
			}
		}
		return out, nil
	}
	res, err := g.callRaw(g.enrich, len(events), g.enc)
	if err != nil {
		return nil, err
	}
	return applyActions(events, res)
}

func configFrame(cfg map[string]string) []byte {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(keys)))
	for _, k := range keys {
		b = appendField(b, 4, k, []byte(cfg[k]))
	}
	return b
}

func appendField(b []byte, kind byte, key string, val []byte) []byte {
	b = append(b, kind, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
	b = append(b, key...)
	return append(b, val...)
}

func encodeBatch(b []byte, events []pipeline.Event) []byte {
	for i := range events {
		e := &events[i]
		start := len(b)
		b = append(b, 0, 0, 0, 0)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.TimestampNs))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.CorrelationID)))
		b = append(b, e.CorrelationID...)
		n := len(e.Measurements) + len(e.Metadata)
		if e.Origin != nil {
			n += 4
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(n))
		for _, m := range e.Measurements {
			switch m.Value.Kind {
			case pipeline.KindInt:
				b = appendField(b, 1, m.Key, binary.LittleEndian.AppendUint64(nil, uint64(m.Value.Int)))
			case pipeline.KindFloat:
				b = appendField(b, 2, m.Key, binary.LittleEndian.AppendUint64(nil, math.Float64bits(m.Value.Float)))
			default:
				b = appendField(b, 3, m.Key, []byte(m.Value.Str))
			}
		}
		for _, l := range e.Metadata {
			b = appendField(b, 4, l.Key, []byte(l.Value))
		}
		if o := e.Origin; o != nil {
			b = appendField(b, 5, pipeline.KeyWorkerID, []byte(o.WorkerID))
			b = appendField(b, 5, pipeline.KeyPool, []byte(o.Pool))
			b = appendField(b, 5, pipeline.KeyHostname, []byte(o.Hostname))
			b = appendField(b, 5, pipeline.KeyPID, strconv.AppendInt(nil, o.PID, 10))
		}
		binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	}
	return b
}

func applyActions(events []pipeline.Event, res []byte) ([]pipeline.Event, error) {
	var out []pipeline.Event
	for i := range events {
		if len(res) < 4 {
			return nil, fmt.Errorf("event %d: action truncated", i)
		}
		op, nops := res[0], int(binary.LittleEndian.Uint16(res[2:]))
		res = res[4:]
		e := events[i]
		switch op {
		case 0, 1:
			if nops != 0 {
				return nil, fmt.Errorf("event %d: op %d with %d patches", i, op, nops)
			}
		case 2:
		default:
			return nil, fmt.Errorf("event %d: op %d", i, op)
		}
		for j := 0; j < nops; j++ {
			if len(res) < 8 {
				return nil, fmt.Errorf("event %d: patch truncated", i)
			}
			kind, opcode := res[0], res[1]
			kl, vl := int(binary.LittleEndian.Uint16(res[2:])), int(binary.LittleEndian.Uint32(res[4:]))
			if len(res)-8 < kl+vl {
				return nil, fmt.Errorf("event %d: patch overruns frame", i)
			}
			key, val := string(res[8:8+kl]), res[8+kl:8+kl+vl]
			res = res[8+kl+vl:]
			switch {
			case opcode == 1 && kind == 4:
				e.SetMeta(key, string(val))
			case opcode == 1 && kind == 3:
				e.SetMeasurement(key, pipeline.StringValue(string(val)))
			case opcode == 1 && (kind == 1 || kind == 2) && vl == 8:
				u := binary.LittleEndian.Uint64(val)
				if kind == 1 {
					e.SetMeasurement(key, pipeline.IntValue(int64(u)))
				} else {
					e.SetMeasurement(key, pipeline.FloatValue(math.Float64frombits(u)))
				}
			case opcode == 2 && kind == 4 && vl == 0:
				e.DeleteMeta(key)
			case opcode == 2 && kind >= 1 && kind <= 3 && vl == 0:
				e.DeleteMeasurement(key)
			default:
				return nil, fmt.Errorf("event %d: bad patch kind %d opcode %d", i, kind, opcode)
			}
		}
		if op != 1 {
			out = append(out, e)
		}
	}
	if len(res) != 0 {
		return nil, fmt.Errorf("%d trailing bytes in enrich result", len(res))
	}
	return out, nil
}

// runBatched passes events through g in batches of size n.
func runBatched(t testing.TB, g *guest, events []pipeline.Event, n int) []pipeline.Event {
	t.Helper()
	var out []pipeline.Event
	for i := 0; i < len(events); i += n {
		j := min(i+n, len(events))
		got, err := g.run(events[i:j])
		if err != nil {
			t.Fatalf("batch [%d:%d]: %v", i, j, err)
		}
		out = append(out, got...)
	}
	return out
}
