package plugins

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

const (
	initDeadline  = 5 * time.Second
	closeDeadline = 100 * time.Millisecond
)

// limitedMemory backs one instance's linear memory and refuses to grow past
// a limit (the per-plugin memory_limit_pages; the runtime-wide limit is the
// hard maximum). refused records that a growth was refused, so a failure
// that follows is classified as out-of-memory.
type limitedMemory struct {
	buf     []byte
	limit   uint64
	refused atomic.Bool
}

func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused.Store(true)
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		// Memory never shrinks, so bytes past len were never written: zero.
		m.buf = m.buf[:size]
		return m.buf
	}
	newCap := 2 * uint64(cap(m.buf))
	if newCap < size {
		newCap = size
	}
	if newCap > m.limit {
		newCap = m.limit
	}
	nb := make([]byte, size, newCap)
	copy(nb, m.buf)
	m.buf = nb
	return nb
}

func (m *limitedMemory) Free() { m.buf = nil }

// instance is one instantiated plugin module. It is used by one goroutine
// at a time (it sits in its version's pool between batches).
type instance struct {
	mod     api.Module
	mem     api.Memory
	call    api.Function // snk_filter or snk_enrich
	closeFn api.Function // snk_close, may be nil
	lm      *limitedMemory
	callCtx context.Context // carries the plugin log (and nothing else)
	stack   []uint64

	// The per-batch deadline, reused across calls (see armDeadline).
	dlCtx    context.Context
	dlCancel context.CancelFunc
	dlTimer  *time.Timer
	// interrupt is the module's InterruptGlobal (nil when the module was
	// not instrumented): the deadline timer sets it to 1.
	interrupt api.MutableGlobal
	// fired is closed when the timer's function has finished.
	fired chan struct{}
	// expired: the deadline timer fired, so dlCtx is cancelled and the
	// interrupt global set for good: the instance must not be used again.
	expired bool

	in, cap_ uint32
	batches  uint64
	// fields are the field groups the instance is sent: what its
	// snk_fields returned, FieldsAll without that export.
	fields FieldGroups

	// scratch reused across batches
	verdicts []byte
	idx      []int32
	acts     []action
	origins  originCache
}

// newInstance instantiates m anonymously and runs the ABI start sequence:
// _initialize, snk_abi_version, snk_in_buf, snk_init(config), snk_fields.
func newInstance(ctx context.Context, m *module, kind Kind, plog *pluginLog, limitPages uint32, minCap uint32, cfgFrame []byte) (*instance, error) {
	lm := &limitedMemory{limit: uint64(limitPages) * pageSize}
	base := context.WithValue(context.Background(), logKey{}, plog)
	ictx, cancel := context.WithTimeout(experimental.WithMemoryAllocator(base, experimental.MemoryAllocatorFunc(
		func(capBytes, _ uint64) experimental.LinearMemory {
			if capBytes > lm.limit {
				capBytes = lm.limit
			}
			lm.buf = make([]byte, 0, capBytes)
			return lm
		})), initDeadline)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithStdout(&lineWriter{plog: plog, level: 2}).WithStderr(&lineWriter{plog: plog, level: 3}).
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	mod, err := m.rt.InstantiateModule(ictx, m.cm, mc)
	if err != nil {
		return nil, fmt.Errorf("%w: instantiate: %w", ErrInit, err)
	}
	inst := &instance{mod: mod, mem: mod.Memory(), lm: lm, callCtx: base, stack: make([]uint64, 2)}
	fail := func(err error) (*instance, error) {
		inst.close(false, true)
		return nil, err
	}
	if inst.mem == nil {
		return fail(fmt.Errorf("%w: no memory after instantiation", ErrInit))
	}
	// call runs one init-time export. In an instrumented module the timer
	// stops it (ictx is not watched there); otherwise ictx does.
	call := func(name string, params ...uint64) ([]uint64, error) {
		f := mod.ExportedFunction(name)
		if inst.interrupt == nil {
			return f.Call(ictx, params...)
		}
		res, err := f.Call(inst.armDeadline(initDeadline), params...)
		inst.disarmDeadline()
		if inst.expired {
			return nil, fmt.Errorf("ran past the %s init deadline: %w", initDeadline, errors.Join(context.DeadlineExceeded, err))
		}
		return res, err
	}
	if m.interrupt {
		g, ok := mod.ExportedGlobal(InterruptGlobal).(api.MutableGlobal)
		if !ok {
			return fail(fmt.Errorf("%w: the instrumented module has no mutable %s global", ErrInit, InterruptGlobal))
		}
		inst.interrupt = g
		if m.hasStart {
			if _, err := call(StartExport); err != nil {
				return fail(fmt.Errorf("%w: start function: %w", ErrInit, err))
			}
		}
	}
	if m.hasInitialize {
		if _, err := call("_initialize"); err != nil {
			return fail(fmt.Errorf("%w: _initialize: %w", ErrInit, err))
		}
	}
	res, err := call("snk_abi_version")
	if err != nil {
		return fail(fmt.Errorf("%w: snk_abi_version: %w", ErrInit, err))
	}
	if v := int32(uint32(res[0])); v != ABIVersion {
		return fail(fmt.Errorf("%w: snk_abi_version() returned %d, this host speaks ABI %d", ErrABIVersion, v, ABIVersion))
	}
	res, err = call("snk_in_buf", uint64(minCap))
	if err != nil {
		return fail(fmt.Errorf("%w: snk_in_buf(%d): %w", ErrInit, minCap, err))
	}
	inst.in, inst.cap_ = uint32(res[0]), minCap
	if inst.in == 0 {
		return fail(fmt.Errorf("%w: snk_in_buf(%d) returned 0: the plugin must provide an input buffer of at least %d bytes", ErrInit, minCap, minCap))
	}
	if _, ok := inst.mem.Read(inst.in, minCap); !ok {
		return fail(fmt.Errorf("%w: snk_in_buf(%d) returned %#x, which does not leave %d bytes inside memory (%d bytes)", ErrInit, minCap, inst.in, minCap, inst.mem.Size()))
	}
	if m.hasInit {
		if len(cfgFrame) > int(minCap) {
			return fail(fmt.Errorf("%w: config frame is %d bytes, larger than the %d-byte input buffer", ErrInit, len(cfgFrame), minCap))
		}
		inst.mem.Write(inst.in, cfgFrame)
		res, err = call("snk_init", uint64(len(cfgFrame)))
		if err != nil {
			return fail(fmt.Errorf("%w: snk_init: %w", ErrInit, err))
		}
		if rc := int32(uint32(res[0])); rc != 0 {
			return fail(fmt.Errorf("%w: snk_init returned %d (%s): the plugin refused its config", ErrInit, rc, codeName(int64(rc))))
		}
	} else if len(cfgFrame) > 2 {
		return fail(fmt.Errorf("%w: the stage has a config, but the plugin exports no snk_init to receive it", ErrInit))
	}
	// snk_fields after snk_init, so that its answer may depend on the
	// config; before the first batch, which is encoded with it.
	inst.fields = FieldsAll
	if m.hasFields {
		res, err = call("snk_fields")
		if err != nil {
			return fail(fmt.Errorf("%w: %w", ErrInit, &fieldsError{fmt.Errorf("snk_fields: %w", err)}))
		}
		g, err := checkFields(int32(uint32(res[0])))
		if err != nil {
			return fail(fmt.Errorf("%w: %w", ErrInit, &fieldsError{err}))
		}
		inst.fields = g
	}
	name := "snk_filter"
	if kind == KindEnrich {
		name = "snk_enrich"
	}
	inst.call = mod.ExportedFunction(name)
	if m.hasClose {
		inst.closeFn = mod.ExportedFunction("snk_close")
	}
	return inst, nil
}

// fieldsError is a failure of snk_fields (a trap, or a value with bits
// that are not field groups). newInstance wraps it with ErrInit; Inspect
// tells it from a failure before snk_fields (such as snk_init refusing an
// empty config), which it does not count as a problem.
type fieldsError struct{ err error }

func (e *fieldsError) Error() string { return e.err.Error() }
func (e *fieldsError) Unwrap() error { return e.err }

// armDeadline starts the deadline of a call that must end within d and
// returns the context to call with.
//
// Why not context.WithTimeout per call: it allocates a context and a timer
// every batch (≈ 200–300 ns and 5 allocations measured here), and wazero
// would watch it with a goroutine per call. Instead each instance has one
// stopped timer (and one cancellable context); a call resets the timer,
// and disarmDeadline stops it. If the timer fires, it sets the instance's
// interrupt global (an instrumented module traps within
// wasmpatch.YieldEvery iterations of its current loop)
// and cancels the context (in the fallback runtime, wazero's
// WithCloseOnContextDone then stops the guest). Either is for good: the
// instance is discarded.
func (inst *instance) armDeadline(d time.Duration) context.Context {
	if inst.dlTimer == nil {
		inst.dlCtx, inst.dlCancel = context.WithCancel(inst.callCtx)
		inst.fired = make(chan struct{})
		inst.dlTimer = time.AfterFunc(time.Hour, inst.onDeadline)
		inst.dlTimer.Stop()
	}
	inst.dlTimer.Reset(d)
	return inst.dlCtx
}

// onDeadline runs on the timer's goroutine, at most once per instance (an
// instance whose timer fired is never armed again).
func (inst *instance) onDeadline() {
	if inst.interrupt != nil {
		inst.interrupt.Set(1)
	}
	inst.dlCancel()
	close(inst.fired)
}

// disarmDeadline stops the timer armDeadline started. If it had fired
// already (even just after the guest returned), the instance is marked
// expired.
func (inst *instance) disarmDeadline() {
	if !inst.dlTimer.Stop() {
		inst.expired = true
	}
}

// invoke runs one guest call on n records already written (len bytes). It
// returns the result frame (a view into guest memory, valid until the next
// call) or a failure.
func (inst *instance) invoke(deadline time.Duration, n, length uint32) ([]byte, failKind, error) {
	if inst.expired {
		return nil, failTimeout, errors.New("instance expired by an earlier deadline")
	}
	inst.stack[0], inst.stack[1] = uint64(n), uint64(length)
	var err error
	if deadline > 0 {
		err = inst.call.CallWithStack(inst.armDeadline(deadline), inst.stack)
		inst.disarmDeadline()
	} else {
		err = inst.call.CallWithStack(inst.callCtx, inst.stack)
	}
	if err != nil {
		fk := inst.classify(err)
		if fk == failTimeout {
			if inst.interrupt != nil {
				err = errInterrupted // not the "unreachable" trap it is made of
			}
			err = fmt.Errorf("the batch ran past its %s deadline: %w", deadline, err)
		}
		return nil, fk, err
	}
	r := int64(inst.stack[0])
	if r < 0 {
		k := failError
		if r == -3 {
			k = failOOM
		}
		return nil, k, fmt.Errorf("plugin returned %d (%s)", r, codeName(r))
	}
	ptr, ln := uint32(r>>32), uint32(r)
	res, ok := inst.mem.Read(ptr, ln)
	if !ok {
		return nil, failBadOutput, fmt.Errorf("%w: result [%#x, +%d) is outside memory (%d bytes)", ErrBadOutput, ptr, ln, inst.mem.Size())
	}
	inst.batches++
	return res, 0, nil
}

func (inst *instance) classify(err error) failKind {
	if inst.expired {
		// The timer fired before the call ended: an instrumented guest
		// traps ("unreachable") at its next yield, one in the fallback
		// runtime exits with a context exit code. Only the timer cancels
		// the call's context, so a context exit code without it is the
		// guest's own proc_exit: a trap (§3), not a timeout.
		return failTimeout
	}
	if inst.lm.refused.Load() {
		return failOOM
	}
	return failTrap
}

// close calls snk_close (best effort, if planned) and closes the module.
func (inst *instance) close(planned bool, trusted bool) {
	if planned && inst.closeFn != nil {
		switch {
		case inst.interrupt != nil && !inst.expired:
			_, _ = inst.closeFn.Call(inst.armDeadline(closeDeadline)) // best effort by contract
			inst.disarmDeadline()
		case inst.interrupt != nil || trusted:
			// Trusted, or expired: the interrupt global stays set, so a
			// loop in snk_close traps at once.
			_, _ = inst.closeFn.Call(inst.callCtx)
		default:
			ctx, cancel := context.WithTimeout(inst.callCtx, closeDeadline)
			_, _ = inst.closeFn.Call(ctx) // best effort by contract
			cancel()
		}
	}
	if inst.dlTimer != nil {
		inst.dlTimer.Stop()
		if inst.expired {
			<-inst.fired // the timer's goroutine may still be setting the global
		}
		inst.dlCancel()
	}
	_ = inst.mod.Close(context.Background()) // nothing to do about a close error
}

func codeName(r int64) string {
	switch r {
	case -1:
		return "generic error"
	case -2:
		return "bad input"
	case -3:
		return "out of memory"
	case -4:
		return "config error"
	}
	return "unknown code"
}

// failKind classifies a batch failure (docs/plugin-abi.md §9).
type failKind uint8

const (
	failNone failKind = iota
	failTrap
	failTimeout
	failOOM
	failError
	failBadOutput
	failInstantiate
	numFailKinds
)

func (k failKind) String() string {
	return [...]string{"none", "trap", "timeout", "oom", "error", "bad_output", "instantiate"}[k]
}
