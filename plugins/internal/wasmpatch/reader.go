package wasmpatch

import "unicode/utf8"

// reader decodes the parts of a binary the rewriter must step over. After
// the first error every method returns zero values, so callers check err
// once after a sequence of reads.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) done() bool { return r.err != nil || r.pos >= len(r.b) }

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = unsupported("at byte %d: "+format, append([]any{r.pos}, args...)...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.fail("%d bytes needed, %d left", n, len(r.b)-r.pos)
		return nil
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s
}

// lebBytes steps over one LEB128 number of at most max bytes and returns
// its encoding.
func (r *reader) lebBytes(max int) []byte {
	start := r.pos
	for i := 0; i < max; i++ {
		if r.byte()&0x80 == 0 {
			if r.err != nil {
				return nil
			}
			return r.b[start:r.pos]
		}
	}
	r.fail("LEB128 number longer than %d bytes", max)
	return nil
}

func (r *reader) u32() uint32 {
	var v uint64
	for i := 0; i < 5; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if v > 0xffffffff {
				r.fail("u32 out of range")
				return 0
			}
			return uint32(v)
		}
	}
	r.fail("u32 longer than 5 bytes")
	return 0
}

func (r *reader) name() string {
	n := r.u32()
	s := r.bytes(int(n))
	if r.err == nil && !utf8.Valid(s) {
		r.fail("name is not UTF-8")
	}
	return string(s)
}

// valType accepts the value types of WebAssembly 2.0.
func (r *reader) valType() {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		r.fail("value type %#x", t)
	}
}

func (r *reader) refType() {
	switch t := r.byte(); t {
	case 0x70, 0x6f:
	default:
		r.fail("reference type %#x", t)
	}
}

// limits accepts memory32/table limits without the shared flag (threads).
func (r *reader) limits() {
	switch f := r.byte(); f {
	case 0x00:
		r.u32()
	case 0x01:
		r.u32()
		r.u32()
	default:
		r.fail("limits flag %#x", f)
	}
}

// blockType steps over a block type: 0x40, a value type, or a type index
// (a non-negative s33).
func (r *reader) blockType() {
	if r.err != nil || r.pos >= len(r.b) {
		r.fail("unexpected end")
		return
	}
	switch c := r.b[r.pos]; c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.pos++
		return
	default:
		if c&0x40 != 0 && c&0x80 == 0 { // a negative one-byte s33 that is no type
			r.fail("block type %#x", c)
			return
		}
	}
	enc := r.lebBytes(5)
	if r.err == nil && enc[len(enc)-1]&0x40 != 0 { // negative: not a type index
		r.fail("block type is a negative number")
	}
}

// memArg steps over align and offset of a memory instruction. Bit 6 of
// align announces a memory index (multi-memory), which is not supported.
func (r *reader) memArg() {
	align := r.u32()
	if r.err == nil && align >= 64 {
		r.fail("memarg alignment %d (multi-memory?)", align)
	}
	r.u32()
}

func (r *reader) memIndex() {
	if idx := r.u32(); r.err == nil && idx != 0 {
		r.fail("memory index %d (multi-memory)", idx)
	}
}

// miscOp steps over an instruction of the 0xfc prefix: saturating
// truncation, bulk memory and table instructions.
func (r *reader) miscOp() {
	switch op := r.u32(); {
	case r.err != nil:
	case op <= 0x07: // i32/i64.trunc_sat_*
	case op == 0x08: // memory.init data, mem
		r.u32()
		r.memIndex()
	case op == 0x09: // data.drop
		r.u32()
	case op == 0x0a: // memory.copy mem, mem
		r.memIndex()
		r.memIndex()
	case op == 0x0b: // memory.fill mem
		r.memIndex()
	case op == 0x0c: // table.init elem, table
		r.u32()
		r.u32()
	case op == 0x0d: // elem.drop
		r.u32()
	case op == 0x0e: // table.copy table, table
		r.u32()
		r.u32()
	case op >= 0x0f && op <= 0x11: // table.grow/size/fill
		r.u32()
	default:
		r.fail("opcode 0xfc %#x", op)
	}
}

// simdNoImmediate holds the 0xfd sub-opcodes without immediates that
// WebAssembly 2.0 defines (the gaps are unassigned numbers).
var simdNoImmediate = func() (t [256]bool) {
	for op := 0x0e; op <= 0x14; op++ { // swizzle, splats
		t[op] = true
	}
	for op := 0x23; op <= 0x53; op++ { // comparisons, v128 bitwise, any_true
		t[op] = true
	}
	for op := 0x5e; op <= 0xff; op++ {
		t[op] = true
	}
	for _, op := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		t[op] = false
	}
	return t
}()

// simdOp steps over an instruction of the 0xfd prefix (128-bit SIMD).
func (r *reader) simdOp() {
	switch op := r.u32(); {
	case r.err != nil:
	case op <= 0x0b || op == 0x5c || op == 0x5d: // v128 loads and store
		r.memArg()
	case op == 0x0c || op == 0x0d: // v128.const, i8x16.shuffle
		r.bytes(16)
	case op >= 0x15 && op <= 0x22: // extract/replace lane
		r.byte()
	case op >= 0x54 && op <= 0x5b: // load/store lane
		r.memArg()
		r.byte()
	case op < 256 && simdNoImmediate[op]:
	default:
		r.fail("opcode 0xfd %#x", op)
	}
}
