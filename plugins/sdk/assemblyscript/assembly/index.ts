// AssemblyScript guest SDK for snakepipe Wasm plugins (ABI snakepipe_v1, see
// docs/plugin-abi.md). Raw load/store on SDK-owned buffers: no AssemblyScript
// string or object crosses the ABI, and nothing is allocated per event, so it
// works with `--runtime stub`.
//
// A plugin registers its callback with onFilter or onEnrich (and optionally
// onInit), then re-exports the entry points of its kind from this module:
//
//   export { snk_abi_version, snk_in_buf, snk_init, snk_filter } from "<sdk>";
//
// A plugin that reads only some field groups says so with declareFields and
// re-exports snk_fields too: the host then encodes only those fields.
//
// Keys and values are UTF-8 byte views (Str). Make them once at top level
// with utf8("..."): that allocates once, never per event. A key known when
// the plugin is compiled is faster as constants: see Event.nameIsWords.

export const ABI_VERSION: i32 = 1;

export const KIND_INT: u8 = 1;
export const KIND_FLOAT: u8 = 2;
export const KIND_STRING: u8 = 3;
export const KIND_METADATA: u8 = 4;
export const KIND_HOST_CONTEXT: u8 = 5;

export const ERR_GENERIC: i32 = -1;
export const ERR_BAD_INPUT: i32 = -2;
export const ERR_OOM: i32 = -3;
export const ERR_CONFIG: i32 = -4;

/** The host's limit of patch operations per event. */
export const MAX_PATCHES: u32 = 64;

export const TRACE: i32 = 0;
export const DEBUG: i32 = 1;
export const INFO: i32 = 2;
export const WARN: i32 = 3;
export const ERROR: i32 = 4;

// @ts-ignore: decorator
@external("snakepipe_v1", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): void;

/** A view of len UTF-8 bytes at ptr (not NUL-terminated). Its first and
 *  last 8 bytes are also kept as words (w0, w1), so a key or name compare
 *  (nameIs, find) is a length test and one or two 8-byte loads from the
 *  record compared with these words; the bytes in between (keys longer
 *  than 16 bytes) are compared from ptr. Make a Str once (top level), not
 *  per event: the words are computed when it is made. */
export class Str {
  /** Bytes 0..7 (zero-padded when len < 8). */
  w0: u64 = 0;
  /** Bytes len-8..len-1 (len >= 8), else 0. */
  w1: u64 = 0;
  /** Selects the len low bytes of a word when len < 8; all ones otherwise. */
  mask: u64 = 0;

  constructor(public ptr: usize, public len: u32) {
    const head = len < 8 ? len : 8;
    for (let i: u32 = 0; i < head; i++) this.w0 |= <u64>load<u8>(ptr + i) << (8 * i);
    if (len >= 8) {
      for (let i: u32 = 0; i < 8; i++) this.w1 |= <u64>load<u8>(ptr + len - 8 + i) << (8 * i);
      this.mask = ~<u64>0;
    } else {
      this.mask = (<u64>1 << (8 * len)) - 1;
    }
  }

  /** Bytes equal to other's. */
  equals(other: Str): bool {
    return bytesEq(this.ptr, this.len, other.ptr, other.len);
  }

  /** Decodes the bytes into an AssemblyScript string (allocates). */
  toString(): string {
    return String.UTF8.decodeUnsafe(this.ptr, this.len);
  }
}

/** utf8 encodes s once; keep the result in a top-level constant. */
export function utf8(s: string): Str {
  const buf = String.UTF8.encode(s);
  return new Str(changetype<usize>(buf), <u32>buf.byteLength);
}

// sameWords: the n bytes at p equal a key of n bytes whose first and last
// 8 bytes are w0 and w1 (mask selects the n low bytes of w0 when n < 8)
// and whose bytes 8..n-8 are at kp (n > 16 only). The caller has compared
// the lengths. It may load up to 8 bytes past p + n: callers pass bytes
// inside a checked record, and the input buffer has SLACK bytes after it.
// With constant n, w0, w1 (the *Words methods) it folds to one or two
// 8-byte compares with immediates.
// @ts-ignore: decorator
@inline
function sameWords(p: usize, n: u32, w0: u64, w1: u64, mask: u64, kp: usize): bool {
  if (n <= 8) return ((load<u64>(p) ^ w0) & mask) == 0;
  if (load<u64>(p) != w0 || load<u64>(p + n - 8) != w1) return false;
  return n <= 16 || eqBytes(p + 8, kp + 8, n - 16);
}

// wordsMask: the mask of sameWords for an n-byte key.
// @ts-ignore: decorator
@inline
function wordsMask(n: u32): u64 {
  return n >= 8 ? ~<u64>0 : (<u64>1 << (8 * <u64>n)) - 1;
}

/** wordsMatch: s is len bytes whose first 8 bytes (zero-padded) are w0
 *  and, when len > 8, whose last 8 bytes are w1 (w1 = 0 otherwise); the
 *  words the *Words methods take. Check a plugin's constants with it once,
 *  in onInit. */
export function wordsMatch(s: Str, len: u32, w0: u64, w1: u64): bool {
  return s.len == len && s.w0 == w0 && (len > 8 ? s.w1 : 0) == w1;
}

// @ts-ignore: decorator
@inline
function bytesEq(a: usize, al: u32, b: usize, bl: u32): bool {
  return al == bl && eqBytes(a, b, al);
}

// eqBytes compares n bytes. Up to 16 bytes it uses no Wasm loop: with a
// deadline, every loop iteration costs a fuel count (docs/plugin-abi.md
// §8.1), so the hot paths here avoid loops where they can.
// @ts-ignore: decorator
@inline
function eqBytes(a: usize, b: usize, n: u32): bool {
  if (n > 16) {
    // do-while behind an if: the loop header is only reached when needed
    do {
      if (load<u64>(a) != load<u64>(b)) return false;
      a += 8;
      b += 8;
      n -= 8;
    } while (n > 16);
  }
  if (n >= 8) return load<u64>(a) == load<u64>(b) && load<u64>(a + n - 8) == load<u64>(b + n - 8);
  if (n >= 4) return load<u32>(a) == load<u32>(b) && load<u32>(a + n - 4) == load<u32>(b + n - 4);
  if (n == 0) return true;
  return load<u8>(a) == load<u8>(b) && load<u8>(a + (n >> 1)) == load<u8>(b + (n >> 1)) &&
    load<u8>(a + n - 1) == load<u8>(b + n - 1);
}

/** log sends msg to snakepipe's logger (rate-limited by the host). */
export function log(level: i32, msg: Str): void {
  hostLog(level, msg.ptr, <i32>msg.len);
}

/** logString logs an AssemblyScript string (allocates; not for hot paths). */
export function logString(level: i32, msg: string): void {
  const buf = String.UTF8.encode(msg);
  hostLog(level, changetype<usize>(buf), buf.byteLength);
}

// ---- fields -------------------------------------------------------------

/** Field accessors take a field address from Event.find. */
export function fieldKind(f: usize): u8 { return load<u8>(f); }
export function fieldKey(f: usize): Str { return new Str(f + 8, <u32>load<u16>(f + 2)); }
export function fieldValuePtr(f: usize): usize { return f + 8 + <usize>load<u16>(f + 2); }
export function fieldValueLen(f: usize): u32 { return load<u32>(f + 4); }
export function fieldInt(f: usize): i64 { return load<i64>(fieldValuePtr(f)); }
export function fieldFloat(f: usize): f64 { return load<f64>(fieldValuePtr(f)); }

// @ts-ignore: decorator
@inline
function fieldSize(f: usize): usize {
  return 8 + <usize>load<u16>(f + 2) + <usize>load<u32>(f + 4);
}

// Record access is lazy. Per event the SDK checks only the record frame
// (length, name, correlation id and field count fit in the record). A
// lookup (find and the methods on it) checks that each field it walks over
// lies inside the record, and fully checks the field it returns (a known
// kind, an 8-byte value for int and float); field(i) fully checks the
// fields up to i. A walk that meets a malformed field stops, returns 0
// ("not found"), and marks the batch bad: the SDK then answers the whole
// batch with ERR_BAD_INPUT whatever the callback did. Fields no walk
// reaches are never looked at (the host never sends malformed records; the
// checks keep a bad batch from reading outside its record).
let badBatch = false;

// The input buffer is followed by SLACK readable bytes, so a fixed-size
// header can be loaded before its length is checked (a header that does
// not fit in the record fails the size check: a field is at least 8
// bytes), and a name or key of under 8 bytes is compared with one 8-byte
// load (sameWords: at most 8 bytes past the record's end).
const SLACK: u32 = 8;

// @ts-ignore: decorator
@inline
function malformed(): usize {
  badBatch = true;
  return 0;
}

// fieldOk: a known kind, and an 8-byte value for int and float.
// @ts-ignore: decorator
@inline
function fieldOk(h: u64): bool {
  const kind = <u32>h & 0xff;
  return kind - 1 <= <u32>KIND_HOST_CONTEXT - 1 && (kind > <u32>KIND_FLOAT || (h >> 32) == 8);
}

// The value number() found, as bits: one Wasm global, read by Event.int and
// Event.float.
let numBits: u64 = 0;

// The current record's first field and end, set by the batch loop when it
// checks the frame (Wasm globals: cheaper than reading the lengths again).
let evFields: usize = 0;
let evEnd: usize = 0;

/** One record of the input batch. An Event is the address of the record
 *  (after its rec_len, at ts_ns), not an object: the batch loop hands the
 *  callback the record itself (its frame checked) and keeps the first
 *  field and the end in two Wasm globals; the getters read the record.
 *  Only valid inside the callback. */
// @ts-ignore: decorator
@unmanaged
export class Event {
  /** The record after its rec_len (the ts_ns field). */
  get rec(): usize { return changetype<usize>(this); }
  /** The first field. */
  get fieldsPtr(): usize { return evFields; }
  /** End of the record: fields are checked against it as they are read. */
  get end(): usize { return evEnd; }
  /** Set by number(): the int or float value found. */
  get int(): i64 { return <i64>numBits; }
  get float(): f64 { return reinterpret<f64>(numBits); }

  get tsNs(): i64 { return load<i64>(this.rec); }
  get namePtr(): usize { return this.rec + 10; }
  get nameLen(): u32 { return <u32>load<u16>(this.rec, 8); }
  get corrPtr(): usize { return this.rec + 12 + <usize>load<u16>(this.rec, 8); }
  get corrLen(): u32 { return <u32>load<u16>(this.rec + <usize>load<u16>(this.rec, 8), 10); }
  get nfields(): u32 { return <u32>load<u16>(this.fieldsPtr - 2); }

  /** The name equals name's bytes: a length test and one or two 8-byte
   *  compares for names up to 16 bytes. */
  // @ts-ignore: decorator
  @inline
  nameIs(name: Str): bool {
    return this.nameLen == name.len &&
      sameWords(this.namePtr, name.len, name.w0, name.w1, name.mask, name.ptr);
  }

  /** nameIs for a name given as constants: len bytes (at most 16), the
   *  first 8 as the little-endian word w0 (zero-padded), the last 8 as w1
   *  (0 when len <= 8); see wordsMatch. With constant arguments (literals
   *  or top-level consts) the compare is a length test and one or two
   *  8-byte compares with immediates, like C's SNK_EQ. */
  // @ts-ignore: decorator
  @inline
  nameIsWords(len: u32, w0: u64, w1: u64): bool {
    if (len > 16) return false;
    return this.nameLen == len && sameWords(this.namePtr, len, w0, w1, wordsMask(len), 0);
  }

  /** Address of field i (checked, as are the fields before it), or 0 when
   *  i >= nfields or a field up to i is malformed (the batch then fails). */
  field(i: u32): usize {
    if (i >= this.nfields) return 0;
    let p = this.fieldsPtr;
    const end = this.end;
    for (let j: u32 = 0; ; j++) {
      const h = load<u64>(p);
      const size = 8 + ((h >> 16) & 0xffff) + (h >> 32);
      if (size > <u64>(end - p) || !fieldOk(h)) return malformed();
      if (j == i) return p;
      p += <usize>size;
    }
  }

  /** First field with kind in [lo, hi] and the given key, or 0. Per field
   *  walked over: one 8-byte header load, a bounds check and one compare of
   *  kind and key length together (flags, byte 1, are ignored); the key
   *  is compared only when the lengths match. */
  // @ts-ignore: decorator
  @inline
  find(lo: u8, hi: u8, key: Str): usize {
    return this.findIn(lo, hi, key.len, key.w0, key.w1, key.mask, key.ptr, false);
  }

  /** find for a key given as constants (len <= 16, see nameIsWords). */
  // @ts-ignore: decorator
  @inline
  findWords(lo: u8, hi: u8, len: u32, w0: u64, w1: u64): usize {
    if (len > 16) return 0;
    return this.findIn(lo, hi, len, w0, w1, wordsMask(len), 0, false);
  }

  // findIn: find, or with value (a constant) number: then the result is
  // the kind (0: not found) and the 8 bytes after the key go to numBits.
  // @ts-ignore: decorator
  @inline
  private findIn(lo: u8, hi: u8, kl: u32, w0: u64, w1: u64, mask: u64, kp: usize, value: bool): usize {
    if (hi < lo || kl > 0xffff) return 0;
    const want: u32 = (kl << 16) | <u32>lo;
    const span: u32 = <u32>(hi - lo);
    let p = evFields;
    const end = evEnd;
    let left = <u32>load<u16>(p - 2);
    let h: u64;
    let size: u64;
    // The first two fields without a Wasm loop (measurements come first, so
    // most lookups end here): with a deadline every loop iteration costs a
    // fuel count (docs/plugin-abi.md §8.1).
    if (left == 0) return 0;
    h = load<u64>(p);
    size = 8 + ((h >> 16) & 0xffff) + (h >> 32);
    if (size > <u64>(end - p)) return malformed();
    if ((<u32>h & 0xffff00ff) - want <= span && sameWords(p + 8, kl, w0, w1, mask, kp)) return foundIn(p, h, lo, hi, kl, value);
    p += <usize>size;
    if (--left == 0) return 0;
    h = load<u64>(p);
    size = 8 + ((h >> 16) & 0xffff) + (h >> 32);
    if (size > <u64>(end - p)) return malformed();
    if ((<u32>h & 0xffff00ff) - want <= span && sameWords(p + 8, kl, w0, w1, mask, kp)) return foundIn(p, h, lo, hi, kl, value);
    p += <usize>size;
    while (--left != 0) {
      h = load<u64>(p);
      size = 8 + ((h >> 16) & 0xffff) + (h >> 32);
      if (size > <u64>(end - p)) return malformed();
      if ((<u32>h & 0xffff00ff) - want <= span && sameWords(p + 8, kl, w0, w1, mask, kp)) return foundIn(p, h, lo, hi, kl, value);
      p += <usize>size;
    }
    return 0;
  }

  measurement(key: Str): usize { return this.find(KIND_INT, KIND_STRING, key); }
  metadata(key: Str): usize { return this.find(KIND_METADATA, KIND_METADATA, key); }
  hostContext(key: Str): usize { return this.find(KIND_HOST_CONTEXT, KIND_HOST_CONTEXT, key); }

  /** Finds an int or float measurement: returns KIND_INT (value in this.int),
   *  KIND_FLOAT (value in this.float) or 0 when absent or a string. */
  // @ts-ignore: decorator
  @inline
  number(key: Str): u8 {
    return <u8>this.findIn(KIND_INT, KIND_FLOAT, key.len, key.w0, key.w1, key.mask, key.ptr, true);
  }

  /** number for a key given as constants (len <= 16, see nameIsWords). */
  // @ts-ignore: decorator
  @inline
  numberWords(len: u32, w0: u64, w1: u64): u8 {
    if (len > 16) return 0;
    return <u8>this.findIn(KIND_INT, KIND_FLOAT, len, w0, w1, wordsMask(len), 0, true);
  }
}

// foundIn: the field at p (header h) matched a lookup of kinds [lo, hi];
// it is returned if well-formed (a known kind, an 8-byte int or float
// value), else the batch is marked bad. The kind is in [lo, hi], so only
// what that range allows is checked (for constant ranges this folds).
// @ts-ignore: decorator
@inline
function foundIn(p: usize, h: u64, lo: u8, hi: u8, kl: u32, value: bool): usize {
  const kind = <u32>h & 0xff;
  // kind 0 only when lo is 0 (written so that binaryen folds it away for a
  // constant lo > 0: `kind < 0` is false)
  if (kind < <u32>(lo == 0 ? 1 : 0)) return malformed();
  if (hi > KIND_HOST_CONTEXT) {
    if (kind > <u32>KIND_HOST_CONTEXT) return malformed();
  }
  if (hi <= KIND_FLOAT) {
    if ((h >> 32) != 8) return malformed();
  } else if (lo <= KIND_FLOAT) {
    if (kind <= <u32>KIND_FLOAT && (h >> 32) != 8) return malformed();
  }
  if (value) {
    // the key matched, so the value starts kl bytes after the header
    numBits = load<u64>(p + 8 + <usize>kl);
    return <usize>kind;
  }
  return p;
}

// frameEnd checks the frame of the record at p, before end: the length,
// and that the name, the correlation id and the field count fit in it (no
// loop; fields are checked lazily, see above). It sets evFields and evEnd
// and returns the end of the record (the next record), or 0 when the frame
// is malformed.
// @ts-ignore: decorator
@inline
function frameEnd(p: usize, end: usize): usize {
  const rl = load<u32>(p); // may read past the batch: SLACK
  // 14 = ts (8) + name_len (2) + corr_len (2) + nfields (2)
  // one compare for 14 <= rl <= end - p - 4: rl - 14 wraps when rl < 14
  const room = rl - 14;
  if (<u64>room + 18 > <u64>(end - p)) return 0;
  const nl = <u32>load<u16>(p, 12);
  if (nl > room) return 0;
  const cl = <u32>load<u16>(p + nl, 14);
  if (cl > room - nl) return 0;
  evFields = p + 18 + nl + cl;
  evEnd = p + 4 + rl;
  return p + 4 + rl; // bytes after the last field are skipped
}

// ---- config -------------------------------------------------------------

/** parseI64 parses -?[0-9]+ without overflow into parsed; false if not. */
export let parsed: i64 = 0;
export function parseI64(s: Str): bool {
  let i: u32 = 0;
  const neg = s.len > 0 && load<u8>(s.ptr) == 0x2d;
  if (neg) i = 1;
  if (i == s.len) return false;
  let u: u64 = 0;
  for (; i < s.len; i++) {
    const d = <u32>load<u8>(s.ptr + i) - 0x30;
    if (d > 9) return false;
    if (u > (<u64>1 << 63) / 10) return false;
    u = u * 10 + <u64>d;
    if (u > (<u64>1 << 63)) return false;
  }
  if (!neg && u > (<u64>1 << 63) - 1) return false;
  parsed = neg ? <i64>(0 - u) : <i64>u;
  return true;
}

/** The plugin config (string keys and values, sorted by key), valid only
 *  inside the onInit callback. Errors are logged and make ok false. */
export class Config {
  ok: bool = true;
  constructor(public ptr: usize, public len: u32) {}

  get count(): u32 { return this.len < 2 ? 0 : <u32>load<u16>(this.ptr); }

  /** Address of entry i (a kind-4 field). */
  entry(i: u32): usize {
    let p = this.ptr + 2;
    for (let j: u32 = 0; j < i; j++) p += fieldSize(p);
    return p;
  }

  /** The value for key, or null. */
  get(key: Str): Str | null {
    const n = this.count;
    let p = this.ptr + 2;
    for (let i: u32 = 0; i < n; i++) {
      const kl = <u32>load<u16>(p + 2);
      if (kl == key.len && memory.compare(p + 8, key.ptr, kl) == 0) {
        return new Str(p + 8 + kl, load<u32>(p + 4));
      }
      p += fieldSize(p);
    }
    return null;
  }

  /** key as a decimal int64, def when absent; a bad value logs and sets ok=false. */
  i64(key: Str, def: i64): i64 {
    const v = this.get(key);
    if (v == null) return def;
    if (!parseI64(v)) {
      logString(ERROR, "config " + key.toString() + ": \"" + v.toString() + "\" is not a decimal int64");
      this.ok = false;
      return def;
    }
    return parsed;
  }

  /** Every key is one of known; else logs the first unknown key, ok=false. */
  only(known: Str[]): bool {
    const n = this.count;
    for (let i: u32 = 0; i < n; i++) {
      const k = fieldKey(this.entry(i));
      let found = false;
      for (let j = 0; j < known.length && !found; j++) found = k.equals(known[j]);
      if (!found) {
        logString(ERROR, "config: unknown key \"" + k.toString() + "\"");
        this.ok = false;
        return false;
      }
    }
    return true;
  }
}

function configValid(p: usize, len: u32): bool {
  if (len == 0) return true;
  if (len < 2) return false;
  const n = <u32>load<u16>(p);
  let o: u32 = 2;
  for (let j: u32 = 0; j < n; j++) {
    if (len - o < 8 || load<u8>(p + o) != KIND_METADATA) return false;
    const kl = <u64>load<u16>(p + o + 2);
    const vl = <u64>load<u32>(p + o + 4);
    if (8 + kl + vl > <u64>(len - o)) return false;
    o += 8 + <u32>kl + <u32>vl;
  }
  return o == len;
}

// ---- buffers ------------------------------------------------------------

const STATIC_IN: u32 = 64 << 10;
const STATIC_OUT: u32 = 16 << 10;
const MAX_BUF: u32 = 64 << 20;
// The input buffer starts on a 64-byte (cache line) boundary: the host
// writes every record into it, and with the buffer at 16 mod 64 a filter
// stage cost ~1.5 ns/event more at batch 64 (FilterGuests, BENCHMARKS.md).
const IN_ALIGN: usize = 64;
let inPtr: usize = memory.data(STATIC_IN + SLACK, IN_ALIGN);
let inCap: u32 = STATIC_IN;
let outPtr: usize = memory.data(STATIC_OUT);
let outCap: u32 = STATIC_OUT;
let outLen: u32 = 0;
let outErr: i32 = 0;

// reserve makes room for n more result bytes (grows through the runtime's
// allocator, so it is safe with any --runtime); false when out of memory.
function reserve(n: u32): bool {
  if (outErr != 0) return false;
  if (n <= outCap - outLen) return true;
  const need = <u64>outLen + <u64>n;
  if (need > <u64>MAX_BUF) {
    outErr = ERR_OOM;
    return false;
  }
  const cap = <u32>(need * 2 > <u64>MAX_BUF ? need : need * 2);
  const p = heap.alloc(<usize>cap);
  memory.copy(p, outPtr, outLen);
  outPtr = p;
  outCap = cap;
  return true;
}

function result(): i64 {
  if (outErr != 0) return <i64>outErr;
  return (<i64>outPtr << 32) | <i64>outLen;
}

// ---- patches ------------------------------------------------------------

/** The changes an enricher makes to one event; the SDK reuses one instance. */
export class Patch {
  head: u32 = 0;
  nops: u32 = 0;
  dropped: bool = false;

  private op(kind: u8, opcode: u8, key: Str, val: usize, vl: u32): void {
    if (key.len > 0xffff || this.nops == MAX_PATCHES) {
      logString(ERROR, "patch: key longer than 65535 bytes or more than 64 patches for one event");
      outErr = ERR_GENERIC;
      return;
    }
    if (!reserve(8 + key.len + vl)) return;
    const o = outPtr + outLen;
    store<u8>(o, kind);
    store<u8>(o + 1, opcode);
    store<u16>(o + 2, <u16>key.len);
    store<u32>(o + 4, vl);
    memory.copy(o + 8, key.ptr, key.len);
    memory.copy(o + 8 + key.len, val, vl);
    outLen += 8 + key.len + vl;
    this.nops++;
  }

  setMetadata(key: Str, val: Str): void { this.op(KIND_METADATA, 1, key, val.ptr, val.len); }
  setString(key: Str, val: Str): void { this.op(KIND_STRING, 1, key, val.ptr, val.len); }
  setInt(key: Str, v: i64): void {
    store<i64>(scratch, v);
    this.op(KIND_INT, 1, key, scratch, 8);
  }
  setFloat(key: Str, v: f64): void {
    store<f64>(scratch, v);
    this.op(KIND_FLOAT, 1, key, scratch, 8);
  }
  deleteMetadata(key: Str): void { this.op(KIND_METADATA, 2, key, 0, 0); }
  deleteMeasurement(key: Str): void { this.op(KIND_INT, 2, key, 0, 0); }
  /** Drops the event; its patches are discarded. */
  drop(): void { this.dropped = true; }
}

const scratch: usize = memory.data(8);

// ---- registration and exports -------------------------------------------

const thePatch = new Patch();
let initFn: ((cfg: Config) => bool) | null = null;
let filterFn: ((e: Event) => bool) | null = null;
let enrichFn: ((e: Event, p: Patch) => void) | null = null;

/** onInit registers fn for the config; return false (after logging) to fail. */
export function onInit(fn: (cfg: Config) => bool): void { initFn = fn; }
/** onFilter registers keep: true keeps the event. */
export function onFilter(fn: (e: Event) => bool): void { filterFn = fn; }
/** onEnrich registers fn: it records changes in the patch. */
export function onEnrich(fn: (e: Event, p: Patch) => void): void { enrichFn = fn; }

export function snk_abi_version(): i32 { return ABI_VERSION; }

// ---- field groups (snk_fields) ------------------------------------------

/** Field groups for declareFields (docs/plugin-abi.md, snk_fields): the
 *  host sends in each record only the fields of the groups declared; the
 *  record frame (ts, name, correlation id) is always sent. */
export const FIELDS_MEASUREMENTS: i32 = 1;
export const FIELDS_METADATA: i32 = 2;
export const FIELDS_HOST_CONTEXT: i32 = 4;
export const FIELDS_ALL: i32 = 7;

// Every field until the plugin declares less: what a plugin without
// snk_fields gets.
let fieldGroups: i32 = FIELDS_ALL;

/** declareFields declares the field groups the plugin reads (an OR of
 *  FIELDS_*; 0: name, timestamp and correlation id only). Call it at top
 *  level, or in onInit when the answer depends on the config: the host asks
 *  (snk_fields) after snk_init, before the first batch. It takes effect
 *  only if the entry file re-exports snk_fields. A value with another bit
 *  is passed on as it is: the host then refuses the plugin, naming it. */
export function declareFields(groups: i32): void { fieldGroups = groups; }

/** The snk_fields export: the groups declareFields set, FIELDS_ALL if never
 *  called. */
export function snk_fields(): i32 { return fieldGroups; }

export function snk_in_buf(min: u32): u32 {
  if (min > inCap) {
    if (min > MAX_BUF) return 0;
    inPtr = (heap.alloc(<usize>min + SLACK + IN_ALIGN - 1) + IN_ALIGN - 1) & ~(IN_ALIGN - 1);
    inCap = min;
  }
  return <u32>inPtr;
}

export function snk_init(cfgLen: u32): i32 {
  if (cfgLen > inCap || !configValid(inPtr, cfgLen)) {
    logString(ERROR, "snk_init: malformed config frame");
    return ERR_CONFIG;
  }
  const fn = initFn;
  if (fn == null) return 0;
  const cfg = new Config(inPtr, cfgLen);
  return fn(cfg) && cfg.ok ? 0 : ERR_CONFIG;
}

/** A filter as a class, for filterBatch: keep returns true to keep. */
export interface Filter {
  keep(e: Event): bool;
}

/** An enricher as a class, for enrichBatch: records changes in the patch. */
export interface Enricher {
  enrich(e: Event, p: Patch): void;
}

// keepOne checks the frame of the record at p, stores f.keep's verdict at
// o and returns the next record, or 0 when the frame is malformed.
// @ts-ignore: decorator
@inline
function keepOne<F extends Filter>(p: usize, end: usize, o: usize, f: F): usize {
  const next = frameEnd(p, end);
  if (next == 0) return 0;
  store<u8>(o, f.keep(changetype<Event>(p + 4)) ? 1 : 0);
  return next;
}

/** filterBatch runs f.keep on every event of the batch: the body of a
 *  plugin's own `snk_filter` export. With f's concrete class as F, keep is
 *  a direct call (mark it `@inline` to have it inlined into the batch
 *  loop); a callback registered with onFilter costs an indirect call per
 *  event instead. */
// @ts-ignore: decorator
@inline
export function filterBatch<F extends Filter>(n: u32, len: u32, f: F): i64 {
  if (len > inCap) return <i64>ERR_BAD_INPUT;
  outLen = 0;
  outErr = 0;
  if (!reserve(n)) return <i64>outErr;
  let p = inPtr;
  const end = p + len;
  const out = outPtr;
  badBatch = false;
  // Two records per iteration: with a deadline, half the fuel counts
  // (docs/plugin-abi.md §8.1), and about 0.5 ns/event less without one.
  let i: u32 = 0;
  for (; i + 1 < n; i += 2) {
    p = keepOne(p, end, out + i, f);
    if (p == 0) return <i64>ERR_BAD_INPUT;
    p = keepOne(p, end, out + i + 1, f);
    if (p == 0) return <i64>ERR_BAD_INPUT;
  }
  if (i < n) {
    p = keepOne(p, end, out + i, f);
    if (p == 0) return <i64>ERR_BAD_INPUT;
  }
  if (p != end || badBatch) return <i64>ERR_BAD_INPUT;
  outLen = n;
  return result();
}

/** enrichBatch runs f.enrich on every event of the batch: the body of a
 *  plugin's own `snk_enrich` export (see filterBatch). */
// @ts-ignore: decorator
@inline
export function enrichBatch<F extends Enricher>(n: u32, len: u32, f: F): i64 {
  if (len > inCap) return <i64>ERR_BAD_INPUT;
  outLen = 0;
  outErr = 0;
  let p = inPtr;
  const end = p + len;
  const pt = thePatch;
  badBatch = false;
  for (let i: u32 = 0; i < n; i++) {
    const next = frameEnd(p, end);
    if (next == 0) return <i64>ERR_BAD_INPUT;
    if (!reserve(4)) return <i64>outErr;
    pt.head = outLen;
    pt.nops = 0;
    pt.dropped = false;
    outLen += 4;
    f.enrich(changetype<Event>(p + 4), pt);
    if (outErr != 0) return <i64>outErr;
    const h = outPtr + pt.head;
    if (pt.dropped) {
      outLen = pt.head + 4;
      store<u32>(h, 1);
    } else {
      store<u8>(h, pt.nops != 0 ? 2 : 0);
      store<u8>(h + 1, 0);
      store<u16>(h + 2, <u16>pt.nops);
    }
    p = next;
  }
  if (p != end || badBatch) return <i64>ERR_BAD_INPUT;
  return result();
}

// The callbacks of onFilter / onEnrich behind the two interfaces.
class RegisteredFilter implements Filter {
  keep(e: Event): bool { return filterFn!(e); }
}
class RegisteredEnricher implements Enricher {
  enrich(e: Event, p: Patch): void { enrichFn!(e, p); }
}
const registeredFilter = new RegisteredFilter();
const registeredEnricher = new RegisteredEnricher();

/** The snk_filter export for a callback registered with onFilter. */
export function snk_filter(n: u32, len: u32): i64 {
  if (filterFn == null) return <i64>ERR_GENERIC;
  return filterBatch(n, len, registeredFilter);
}

/** The snk_enrich export for a callback registered with onEnrich. */
export function snk_enrich(n: u32, len: u32): i64 {
  if (enrichFn == null) return <i64>ERR_GENERIC;
  return enrichBatch(n, len, registeredEnricher);
}
