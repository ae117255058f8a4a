// Package wasmpatch rewrites a WebAssembly binary so that a host can stop
// it cheaply: every loop header and function entry counts down a fuel global, and every
// YieldEvery iterations yields to Go and traps if an exported interrupt
// global is non-zero (see loopCheck).
//
// Why: wazero's own way to stop a running guest (WithCloseOnContextDone)
// makes every loop iteration call out to Go to check the module's exit
// code, and every top-level call start a goroutine. Counting down a global
// is a load, a store and a predicted branch. The host sets the interrupt
// global from its deadline timer (api.MutableGlobal.Set) and the guest
// traps within YieldEvery loop iterations.
//
// The rewriter walks every instruction of every function body, so it must
// know the immediates of every opcode the runtime accepts. It knows the
// WebAssembly 2.0 core instruction set (what wazero's CoreFeaturesV2
// enables: MVP, sign extension, non-trapping float-to-int, bulk memory,
// reference types, multi-value, 128-bit SIMD). Anything else (threads,
// tail calls, exception handling, GC, memory64, multi-memory, relaxed SIMD)
// returns an error wrapping ErrUnsupported, and the caller falls back to
// its slower mechanism.
package wasmpatch

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrUnsupported is wrapped by every error of Instrument: the module uses
// something the rewriter does not decode, is malformed, or already uses a
// reserved export name.
var ErrUnsupported = errors.New("module cannot be instrumented")

// Names are the export names the rewriter adds.
type Names struct {
	// Interrupt names the exported mutable i32 global the guest checks at
	// every loop header.
	Interrupt string
	// Start names the export of the former start function (the start
	// section is removed so the host runs it itself, with its deadline
	// armed).
	Start string
}

// Result describes what Instrument did.
type Result struct {
	// Binary is the rewritten module.
	Binary []byte
	// HasStart reports that the module had a start section, now removed
	// and exported under Names.Start: call it right after instantiation.
	HasStart bool
	// Loops counts the loop headers that got a check.
	Loops int
}

const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank is the required order of the non-custom sections.
var sectionRank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

type section struct {
	id   byte
	body []byte
}

// Instrument returns bin with a loop-header interrupt check; bin is not
// modified. See the package comment.
func Instrument(bin []byte, names Names) (Result, error) {
	if names.Interrupt == "" || names.Start == "" || names.Interrupt == names.Start {
		return Result{}, unsupported("two distinct export names are needed")
	}
	if len(bin) < 8 || !bytes.Equal(bin[:8], []byte{0, 'a', 's', 'm', 1, 0, 0, 0}) {
		return Result{}, unsupported("not a version 1 WebAssembly binary")
	}
	var secs []section
	r := reader{b: bin, pos: 8}
	last := 0
	for !r.done() {
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return Result{}, r.err
		}
		if id != secCustom {
			rank, ok := sectionRank[id]
			if !ok {
				return Result{}, unsupported("unknown section id %d", id)
			}
			if rank <= last {
				return Result{}, unsupported("section %d out of order or repeated", id)
			}
			last = rank
		}
		secs = append(secs, section{id, body})
	}

	var (
		importedGlobals, definedGlobals uint32
		startFunc                       []byte // the LEB-encoded index, verbatim
		hasStart, hasMemory             bool
	)
	for _, s := range secs {
		var err error
		switch s.id {
		case secImport:
			var mems uint32
			importedGlobals, mems, err = countImports(s.body)
			hasMemory = hasMemory || mems > 0
		case secMemory:
			sr := reader{b: s.body}
			hasMemory = hasMemory || sr.u32() > 0
			err = sr.err
		case secGlobal:
			sr := reader{b: s.body}
			definedGlobals = sr.u32()
			err = sr.err
		case secExport:
			err = checkExportNames(s.body, names)
		case secStart:
			sr := reader{b: s.body}
			startFunc = sr.lebBytes(5)
			if sr.err == nil && !sr.done() {
				sr.err = unsupported("trailing bytes in the start section")
			}
			err = sr.err
			hasStart = true
		}
		if err != nil {
			return Result{}, err
		}
	}
	if !hasMemory {
		// The yield below is a memory.grow.
		return Result{}, unsupported("the module has no memory")
	}
	interrupt := importedGlobals + definedGlobals
	fuel := interrupt + 1
	if fuel < importedGlobals {
		return Result{}, unsupported("too many globals")
	}
	check := loopCheck(interrupt, fuel)

	// The new globals: (global $interrupt (mut i32) (i32.const 0)) and
	// (global $fuel (mut i32) (i32.const YieldEvery)).
	newGlobals := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41}
	newGlobals = appendS32(newGlobals, YieldEvery)
	newGlobals = append(newGlobals, 0x0b)
	newExports := appendName(nil, names.Interrupt)
	newExports = append(newExports, 0x03)
	newExports = appendU32(newExports, interrupt)
	nNewExports := uint32(1)
	if hasStart {
		newExports = appendName(newExports, names.Start)
		newExports = append(newExports, 0x00)
		newExports = append(newExports, startFunc...)
		nNewExports++
	}

	out := make([]byte, 0, len(bin)+len(bin)/8+64)
	out = append(out, bin[:8]...)
	wroteGlobal, wroteExport := false, false
	loops := 0
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// flushBefore writes the sections Instrument adds that must precede a
	// section of rank rank (and that the module did not have).
	flushBefore := func(rank int) {
		if !wroteGlobal && rank > sectionRank[secGlobal] {
			emit(secGlobal, append([]byte{2}, newGlobals...))
			wroteGlobal = true
		}
		if !wroteExport && rank > sectionRank[secExport] {
			emit(secExport, append(appendU32(nil, nNewExports), newExports...))
			wroteExport = true
		}
	}
	for _, s := range secs {
		if s.id != secCustom {
			flushBefore(sectionRank[s.id])
		}
		switch s.id {
		case secGlobal:
			sr := reader{b: s.body}
			n := sr.u32()
			body := appendU32(nil, n+2)
			body = append(body, sr.b[sr.pos:]...)
			emit(secGlobal, append(body, newGlobals...))
			wroteGlobal = true
		case secExport:
			sr := reader{b: s.body}
			n := sr.u32()
			body := appendU32(nil, n+nNewExports)
			body = append(body, sr.b[sr.pos:]...)
			emit(secExport, append(body, newExports...))
			wroteExport = true
		case secStart:
			// Dropped: exported instead (see Names.Start).
		case secCode:
			body, n, err := instrumentCode(s.body, check)
			if err != nil {
				return Result{}, err
			}
			loops += n
			emit(secCode, body)
		default:
			emit(s.id, s.body)
		}
	}
	flushBefore(1 << 30)
	return Result{Binary: out, HasStart: hasStart, Loops: loops}, nil
}

// countImports returns the number of imported globals and memories.
func countImports(b []byte) (globals, mems uint32, err error) {
	r := reader{b: b}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // func: type index
			r.u32()
		case 0x01: // table: reftype, limits
			r.refType()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
			mems++
		case 0x03: // global: valtype, mutability
			r.valType()
			if m := r.byte(); m > 1 {
				r.fail("global mutability %#x", m)
			}
			globals++
		default:
			r.fail("import kind %#x", kind)
		}
	}
	if r.err == nil && !r.done() {
		r.fail("trailing bytes in the import section")
	}
	return globals, mems, r.err
}

func checkExportNames(b []byte, names Names) error {
	r := reader{b: b}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		if r.err == nil && (name == names.Interrupt || name == names.Start) {
			return unsupported("the module already exports %q, a name reserved for the host", name)
		}
		r.byte()
		r.u32()
	}
	if r.err == nil && !r.done() {
		r.fail("trailing bytes in the export section")
	}
	return r.err
}

// instrumentCode rewrites the code section body: each function body gets
// check inserted after every loop's block type.
func instrumentCode(b []byte, check []byte) ([]byte, int, error) {
	r := reader{b: b}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(b)+len(b)/8), n)
	loops := 0
	var fn []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			break
		}
		var k int
		var err error
		fn, k, err = instrumentBody(fn[:0], body, check)
		if err != nil {
			return nil, 0, fmt.Errorf("function body %d: %w", i, err)
		}
		loops += k
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if r.err == nil && !r.done() {
		r.fail("trailing bytes in the code section")
	}
	return out, loops, r.err
}

// instrumentBody copies one function body (locals and instructions) to
// out, inserting check at the function entry and at the start of every loop body.
func instrumentBody(out, body, check []byte) ([]byte, int, error) {
	r := reader{b: body}
	nLocals := r.u32()
	for j := uint32(0); j < nLocals && r.err == nil; j++ {
		r.u32()
		r.valType()
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	out = append(out, body[:r.pos]...)
	// The same check at every function entry: a call tree without loops
	// (recursion) must also be stoppable and must also yield to Go, or it
	// holds up the garbage collector and with it the whole process.
	out = append(out, check...)
	copied := r.pos
	loops := 0
	depth := 1 // the function's own block
	for !r.done() && r.err == nil {
		if depth == 0 {
			r.fail("instructions after the function's final end")
			break
		}
		op := r.byte()
		switch {
		case op == 0x02 || op == 0x04: // block, if
			r.blockType()
			depth++
		case op == 0x03: // loop
			r.blockType()
			depth++
			if r.err == nil {
				out = append(out, body[copied:r.pos]...)
				out = append(out, check...)
				copied = r.pos
				loops++
			}
		case op == 0x0b: // end
			depth--
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f: // unreachable, nop, else, return
		case op == 0x0c || op == 0x0d: // br, br_if
			r.u32()
		case op == 0x0e: // br_table
			k := r.u32()
			for j := uint32(0); j <= k && r.err == nil; j++ {
				r.u32()
			}
		case op == 0x10: // call
			r.u32()
		case op == 0x11: // call_indirect: type, table
			r.u32()
			r.u32()
		case op == 0x1a || op == 0x1b: // drop, select
		case op == 0x1c: // select t*
			k := r.u32()
			for j := uint32(0); j < k && r.err == nil; j++ {
				r.valType()
			}
		case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
			r.u32()
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.memArg()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			r.memIndex()
		case op == 0x41: // i32.const
			r.lebBytes(5)
		case op == 0x42: // i64.const
			r.lebBytes(10)
		case op == 0x43: // f32.const
			r.bytes(4)
		case op == 0x44: // f64.const
			r.bytes(8)
		case op >= 0x45 && op <= 0xc4: // numeric, sign extension
		case op == 0xd0: // ref.null t
			r.refType()
		case op == 0xd1: // ref.is_null
		case op == 0xd2: // ref.func
			r.u32()
		case op == 0xfc:
			r.miscOp()
		case op == 0xfd:
			r.simdOp()
		default:
			r.fail("opcode %#x", op)
		}
	}
	if r.err == nil && depth != 0 {
		r.fail("function body does not end with end")
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	return append(out, body[copied:]...), loops, nil
}

// YieldEvery is how many loop iterations a guest runs between two yields
// to Go (see loopCheck).
const YieldEvery = 4096

// loopCheck returns the code inserted at the start of every loop body:
//
//	global.set $fuel (i32.sub (global.get $fuel) (i32.const 1))
//	if (i32.eqz (global.get $fuel))
//	  global.set $fuel (i32.const YieldEvery)
//	  drop (memory.grow (i32.const 0))
//	  if (global.get $interrupt) unreachable
//
// It is stack-neutral, so it is valid in any loop whatever its parameters.
//
// Why the fuel and the yield: a goroutine running compiled Wasm cannot be
// preempted by Go, so a long guest loop that never leaves the guest blocks
// a garbage collection's stop-the-world, which stops every other
// goroutine, including the deadline timer that would set $interrupt: the
// process hangs. memory.grow(0) is the cheapest instruction that leaves
// the guest for Go (wazero runs it in Go and changes nothing for a zero
// delta), where the goroutine can be preempted. Every YieldEvery
// iterations is rare enough to cost little (wazero's own
// WithCloseOnContextDone leaves the guest at every iteration) and often
// enough to bound both the GC pause and the time from deadline to stop.
// $interrupt is read right after the yield, so a timer that ran while the
// guest was in Go is seen at once.
func loopCheck(interrupt, fuel uint32) []byte {
	b := []byte{0x23}
	b = appendU32(b, fuel)
	b = append(b, 0x41, 0x01, 0x6b, 0x24)
	b = appendU32(b, fuel)
	b = append(b, 0x23)
	b = appendU32(b, fuel)
	b = append(b, 0x45, 0x04, 0x40, 0x41)
	b = appendS32(b, YieldEvery)
	b = append(b, 0x24)
	b = appendU32(b, fuel)
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x23)
	b = appendU32(b, interrupt)
	return append(b, 0x04, 0x40, 0x00, 0x0b, 0x0b)
}

// appendS32 appends v as signed LEB128.
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// appendU32 appends v as unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}
