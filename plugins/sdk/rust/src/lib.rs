//! no_std guest SDK for snakepipe Wasm plugins (ABI `snakepipe_v1`, see
//! docs/plugin-abi.md). The SDK owns the input and result buffers, walks the
//! record batch (read lazily: the record frame per event, a field when a
//! lookup walks over it; a malformed batch returns [`ERR_BAD_INPUT`]) and
//! writes verdicts or patches. A plugin writes a per-event function and exports it with
//! [`filter!`] or [`enrich!`]; [`init!`] optionally receives the config;
//! [`fields!`] (or [`fields_fn!`]) optionally declares the field groups it
//! reads.
//!
//! ```ignore
//! #![no_std]
//! fn keep(e: &snakepipe::Event) -> bool { e.name == b"python.call.stop" }
//! snakepipe::filter!(keep);
//! ```
//!
//! Build (crate-type cdylib) for `wasm32-unknown-unknown`.
#![no_std]

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, Ordering};

pub const ABI_VERSION: i32 = 1;

pub const KIND_INT: u8 = 1;
pub const KIND_FLOAT: u8 = 2;
pub const KIND_STRING: u8 = 3;
pub const KIND_METADATA: u8 = 4;
pub const KIND_HOST_CONTEXT: u8 = 5;

pub const ERR_GENERIC: i32 = -1;
pub const ERR_BAD_INPUT: i32 = -2;
pub const ERR_OOM: i32 = -3;
pub const ERR_CONFIG: i32 = -4;

/// Field groups for [`fields!`] (the `snk_fields` export): the host sends
/// in each record only the fields of the groups a plugin declares; the
/// record frame (ts, name, correlation id) is always sent.
pub const FIELDS_MEASUREMENTS: i32 = 1;
pub const FIELDS_METADATA: i32 = 2;
pub const FIELDS_HOST_CONTEXT: i32 = 4;
/// Every field: what a plugin that declares nothing is sent.
pub const FIELDS_ALL: i32 = 7;

/// The host's limit of patch operations per event.
pub const MAX_PATCHES: usize = 64;

pub const TRACE: i32 = 0;
pub const DEBUG: i32 = 1;
pub const INFO: i32 = 2;
pub const WARN: i32 = 3;
pub const ERROR: i32 = 4;

#[cfg(all(target_arch = "wasm32", feature = "panic-handler", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "snakepipe_v1")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: i32);
}

/// Sends msg to snakepipe's logger (rate-limited by the host).
pub fn log(level: i32, msg: &[u8]) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        host_log(level, msg.as_ptr(), msg.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, msg);
}

#[inline(always)]
fn u16_at(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes([b[o], b[o + 1]]) as usize
}
#[inline(always)]
fn u32_at(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize
}
#[inline(always)]
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Compares two byte strings. Up to 16 bytes it uses no Wasm loop: with a
/// deadline, wazero instruments every loop iteration with a call, so the hot
/// paths of this crate avoid loops (and `memcmp`) where they can.
#[inline(always)]
pub fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    if n > 16 {
        loop {
            if u64_at(a, 0) != u64_at(b, 0) {
                return false;
            }
            a = &a[8..];
            b = &b[8..];
            if a.len() <= 16 {
                break;
            }
        }
    }
    let n = a.len();
    if n >= 8 {
        return u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8);
    }
    if n >= 4 {
        return u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4);
    }
    if n == 0 {
        return true;
    }
    a[0] == b[0] && a[n >> 1] == b[n >> 1] && a[n - 1] == b[n - 1]
}

/// One field: a measurement, a metadata entry or a host-context entry.
#[derive(Clone, Copy)]
pub struct Field<'a> {
    pub kind: u8,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> Field<'a> {
    /// The value of a [`KIND_INT`] field (0 otherwise).
    pub fn as_i64(&self) -> i64 {
        if self.kind == KIND_INT { u64_at(self.value, 0) as i64 } else { 0 }
    }
    /// The value of a [`KIND_FLOAT`] field (0 otherwise).
    pub fn as_f64(&self) -> f64 {
        if self.kind == KIND_FLOAT { f64::from_bits(u64_at(self.value, 0)) } else { 0.0 }
    }
}

/// An int or float measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

// Record access is lazy. Per event the SDK checks only the record frame
// (length, name, correlation id and field count fit in the record). A lookup
// ([`Event::find`] and the methods on it) checks that each field it walks
// over lies inside the record, and fully checks the field it returns (a
// known kind, an 8-byte value for int and float); the [`Fields`] iterator
// fully checks every field it yields. A walk that meets a malformed field
// stops ("not found" / end of iteration) and marks the batch bad: the SDK
// then answers the whole batch with [`ERR_BAD_INPUT`] whatever the callback
// returned. Fields no walk reaches are never read (the host never sends
// malformed records; the checks keep a bad batch from reading outside its
// record, and from trapping on a slice index).
static BAD: AtomicBool = AtomicBool::new(false);

#[cold]
fn mark_bad() {
    BAD.store(true, Ordering::Relaxed);
}

/// A known kind, and an 8-byte value for int and float (h: the header word).
#[inline(always)]
fn field_ok(h: u64) -> bool {
    let kind = h as u8;
    (KIND_INT..=KIND_HOST_CONTEXT).contains(&kind) && (kind > KIND_FLOAT || h >> 32 == 8)
}

/// The header word of the field at the start of b and the field's size, or
/// None when the field does not fit in b.
#[inline(always)]
fn field_header(b: &[u8]) -> Option<(u64, usize)> {
    if b.len() < 8 {
        return None;
    }
    let h = u64_at(b, 0);
    let size = 8 + ((h >> 16) & 0xffff) + (h >> 32);
    if size > b.len() as u64 {
        return None;
    }
    Some((h, size as usize))
}

/// The field at the start of b with header h (b holds the whole field).
#[inline(always)]
fn field_at(b: &[u8], h: u64, size: usize) -> Field<'_> {
    let kl = ((h >> 16) & 0xffff) as usize;
    // SAFETY: field_header checked 8 + kl + vl == size <= b.len().
    unsafe { Field { kind: h as u8, key: b.get_unchecked(8..8 + kl), value: b.get_unchecked(8 + kl..size) } }
}

/// Iterates the fields of an event in wire order.
pub struct Fields<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;
    #[inline(always)]
    fn next(&mut self) -> Option<Field<'a>> {
        if self.left == 0 {
            return None;
        }
        let b = self.rest;
        match field_header(b) {
            Some((h, size)) if field_ok(h) => {
                // SAFETY: size <= b.len() (field_header).
                self.rest = unsafe { b.get_unchecked(size..) };
                self.left -= 1;
                Some(field_at(b, h, size))
            }
            _ => {
                mark_bad();
                self.left = 0;
                None
            }
        }
    }
}

/// A read-only view of one record, valid only during the callback.
pub struct Event<'a> {
    pub ts_ns: i64,
    pub name: &'a [u8],
    pub correlation_id: &'a [u8],
    nfields: usize,
    /// From the first field to the end of the record (checked lazily).
    fields: &'a [u8],
}

impl<'a> Event<'a> {
    pub fn fields(&self) -> Fields<'a> {
        Fields { rest: self.fields, left: self.nfields }
    }
    /// First field with kind in lo..=hi and the given key. Per field walked
    /// over: one 8-byte header load, a bounds check and one compare of kind
    /// and key length together (flags, byte 1, are ignored); the key bytes
    /// are compared only when the lengths match. The first 8 fields are
    /// visited without a Wasm loop (see [`eq_bytes`]).
    #[inline(always)]
    pub fn find(&self, lo: u8, hi: u8, key: &[u8]) -> Option<Field<'a>> {
        if hi < lo || key.len() > 0xffff {
            return None;
        }
        let want = (key.len() as u32) << 16 | lo as u32;
        let span = (hi - lo) as u32;
        let mut b = self.fields;
        let mut left = self.nfields;
        macro_rules! step {
            () => {
                if left == 0 {
                    return None;
                }
                let (h, size) = match field_header(b) {
                    Some(x) => x,
                    None => {
                        mark_bad();
                        return None;
                    }
                };
                // SAFETY: the key length equals key.len() and the field fits in b.
                if (h as u32 & 0xffff00ff).wrapping_sub(want) <= span
                    && eq_bytes(unsafe { b.get_unchecked(8..8 + key.len()) }, key)
                {
                    if !field_ok(h) {
                        mark_bad();
                        return None;
                    }
                    return Some(field_at(b, h, size));
                }
                // SAFETY: size <= b.len() (field_header).
                b = unsafe { b.get_unchecked(size..) };
                left -= 1;
            };
        }
        step!();
        step!();
        step!();
        step!();
        step!();
        step!();
        step!();
        step!();
        loop {
            step!();
        }
    }
    pub fn measurement(&self, key: &[u8]) -> Option<Field<'a>> {
        self.find(KIND_INT, KIND_STRING, key)
    }
    pub fn metadata(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.find(KIND_METADATA, KIND_METADATA, key).map(|f| f.value)
    }
    pub fn host_context(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.find(KIND_HOST_CONTEXT, KIND_HOST_CONTEXT, key).map(|f| f.value)
    }
    /// An int or float measurement (None when absent or a string).
    #[inline(always)]
    pub fn number(&self, key: &[u8]) -> Option<Number> {
        let f = self.find(KIND_INT, KIND_FLOAT, key)?;
        Some(if f.kind == KIND_INT { Number::Int(f.as_i64()) } else { Number::Float(f.as_f64()) })
    }
}

/// Reads the record at the start of b: the event and the record's size.
/// Only the frame is checked here (the record, name, correlation id and
/// field count fit; no loop); fields are checked lazily, as they are read.
#[inline(always)]
pub fn parse_record(b: &[u8]) -> Option<(Event<'_>, usize)> {
    if b.len() < 4 {
        return None;
    }
    let rl = u32_at(b, 0);
    // 14 = ts (8) + name_len (2) + corr_len (2) + nfields (2)
    if rl > b.len() - 4 || rl < 14 {
        return None;
    }
    // SAFETY: 4 + rl <= b.len().
    let r = unsafe { b.get_unchecked(4..4 + rl) };
    let nl = u16_at(r, 8);
    if nl > rl - 14 {
        return None;
    }
    let cl = u16_at(r, 10 + nl);
    if cl > rl - 14 - nl {
        return None;
    }
    let o = 14 + nl + cl;
    // SAFETY: o <= rl == r.len() (the two checks above).
    let e = unsafe {
        Event {
            ts_ns: u64_at(r, 0) as i64,
            name: r.get_unchecked(10..10 + nl),
            correlation_id: r.get_unchecked(12 + nl..12 + nl + cl),
            nfields: u16_at(r, 12 + nl + cl),
            // bytes after the last field are skipped
            fields: r.get_unchecked(o..),
        }
    };
    Some((e, 4 + rl))
}

/// Parses `-?[0-9]+` into an i64 without overflow (the rule every SDK uses).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut u: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 || u > (1u64 << 63) / 10 {
            return None;
        }
        u = u * 10 + d as u64;
        if u > 1u64 << 63 {
            return None;
        }
    }
    if !neg && u > (1u64 << 63) - 1 {
        return None;
    }
    Some(if neg { 0u64.wrapping_sub(u) as i64 } else { u as i64 })
}

/// The plugin config (keys and values sorted by key), valid during init.
pub struct Config<'a> {
    frame: &'a [u8],
}

impl<'a> Config<'a> {
    /// Checks a config frame (u16 nfields, kind-4 fields); empty is allowed.
    pub fn parse(frame: &'a [u8]) -> Option<Config<'a>> {
        if frame.is_empty() {
            return Some(Config { frame });
        }
        if frame.len() < 2 {
            return None;
        }
        let n = u16_at(frame, 0);
        let mut o = 2;
        for _ in 0..n {
            if frame.len() - o < 8 || frame[o] != KIND_METADATA {
                return None;
            }
            let (kl, vl) = (u16_at(frame, o + 2), u32_at(frame, o + 4));
            if 8 + kl as u64 + vl as u64 > (frame.len() - o) as u64 {
                return None;
            }
            o += 8 + kl + vl;
        }
        if o != frame.len() {
            return None;
        }
        Some(Config { frame })
    }
    /// The (key, value) entries in order.
    pub fn entries(&self) -> Fields<'a> {
        if self.frame.is_empty() {
            return Fields { rest: self.frame, left: 0 };
        }
        Fields { rest: &self.frame[2..], left: u16_at(self.frame, 0) }
    }
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.entries().find(|f| f.key == key).map(|f| f.value)
    }
    /// key as a decimal int64, or def when absent. A bad value is logged
    /// and returned as Err(ERR_CONFIG).
    pub fn i64(&self, key: &[u8], def: i64) -> Result<i64, i32> {
        match self.get(key) {
            None => Ok(def),
            Some(v) => parse_i64(v).ok_or_else(|| {
                log(ERROR, key);
                log(ERROR, b"config value above is not a decimal int64");
                ERR_CONFIG
            }),
        }
    }
    /// Ok when every key is in known; else logs the first unknown key.
    pub fn only(&self, known: &[&[u8]]) -> Result<(), i32> {
        for f in self.entries() {
            if !known.contains(&f.key) {
                log(ERROR, b"config: unknown key:");
                log(ERROR, f.key);
                return Err(ERR_CONFIG);
            }
        }
        Ok(())
    }
}

// ---- buffers ----------------------------------------------------------

const STATIC_IN: usize = 64 << 10;
const STATIC_OUT: usize = 16 << 10;
const MAX_BUF: usize = 64 << 20;

/// The static input buffer, on a cache line: the host writes every record
/// into it (a buffer at 16 mod 64 cost ~1.5 ns/event more per stage).
#[repr(C, align(64))]
struct InStatic([u8; STATIC_IN]);
static mut IN_STATIC: InStatic = InStatic([0; STATIC_IN]);
static mut OUT_STATIC: [u8; STATIC_OUT] = [0; STATIC_OUT];

struct Buf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
    err: i32,
}

static mut IN: Buf = Buf { ptr: core::ptr::null_mut(), cap: 0, len: 0, err: 0 };
static mut OUT: Buf = Buf { ptr: core::ptr::null_mut(), cap: 0, len: 0, err: 0 };

/// A fresh region of at least need bytes from memory.grow (this crate links
/// no allocator; an allocator that grows memory itself only uses the pages
/// it grew), or None.
fn grow(need: usize) -> Option<(*mut u8, usize)> {
    if need > MAX_BUF {
        return None;
    }
    #[cfg(target_arch = "wasm32")]
    {
        let pages = (need + 0xFFFF) >> 16;
        let old = core::arch::wasm32::memory_grow(0, pages);
        if old == usize::MAX {
            return None;
        }
        Some(((old << 16) as *mut u8, pages << 16))
    }
    #[cfg(not(target_arch = "wasm32"))]
    None
}

unsafe fn in_buf() -> &'static mut Buf {
    let b = &mut *addr_of_mut!(IN);
    if b.ptr.is_null() {
        b.ptr = addr_of_mut!(IN_STATIC) as *mut u8;
        b.cap = STATIC_IN;
    }
    b
}

unsafe fn out_buf() -> &'static mut Buf {
    let b = &mut *addr_of_mut!(OUT);
    if b.ptr.is_null() {
        b.ptr = addr_of_mut!(OUT_STATIC) as *mut u8;
        b.cap = STATIC_OUT;
    }
    b
}

impl Buf {
    /// Room for n more bytes; false (with err set) when out of memory.
    fn reserve(&mut self, n: usize) -> bool {
        if self.err != 0 {
            return false;
        }
        if n <= self.cap - self.len {
            return true;
        }
        let need = self.len + n;
        let want = if need * 2 > MAX_BUF { need } else { need * 2 };
        match grow(want) {
            Some((p, cap)) => {
                unsafe { core::ptr::copy_nonoverlapping(self.ptr, p, self.len) };
                self.ptr = p;
                self.cap = cap;
                true
            }
            None => {
                self.err = ERR_OOM;
                false
            }
        }
    }
    fn push(&mut self, b: &[u8]) {
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), self.ptr.add(self.len), b.len()) };
        self.len += b.len();
    }
    fn result(&self) -> i64 {
        if self.err != 0 {
            return self.err as i64;
        }
        ((self.ptr as usize as u32 as i64) << 32) | self.len as i64
    }
}

// ---- patches ----------------------------------------------------------

/// The changes an enricher makes to one event, applied by the host in order.
pub struct Patch {
    nops: usize,
    drop: bool,
}

impl Patch {
    fn op(&mut self, kind: u8, opcode: u8, key: &[u8], val: &[u8]) {
        let out = unsafe { out_buf() };
        if key.len() > 0xFFFF || self.nops == MAX_PATCHES || val.len() > MAX_BUF {
            log(ERROR, b"patch: key longer than 65535 bytes, value too large or more than 64 patches for one event");
            out.err = ERR_GENERIC;
            return;
        }
        if !out.reserve(8 + key.len() + val.len()) {
            return;
        }
        let kl = key.len() as u16;
        let vl = val.len() as u32;
        out.push(&[kind, opcode]);
        out.push(&kl.to_le_bytes());
        out.push(&vl.to_le_bytes());
        out.push(key);
        out.push(val);
        self.nops += 1;
    }
    pub fn set_metadata(&mut self, key: &[u8], val: &[u8]) {
        self.op(KIND_METADATA, 1, key, val)
    }
    pub fn set_string(&mut self, key: &[u8], val: &[u8]) {
        self.op(KIND_STRING, 1, key, val)
    }
    pub fn set_i64(&mut self, key: &[u8], v: i64) {
        self.op(KIND_INT, 1, key, &v.to_le_bytes())
    }
    pub fn set_f64(&mut self, key: &[u8], v: f64) {
        self.op(KIND_FLOAT, 1, key, &v.to_bits().to_le_bytes())
    }
    pub fn delete_metadata(&mut self, key: &[u8]) {
        self.op(KIND_METADATA, 2, key, &[])
    }
    pub fn delete_measurement(&mut self, key: &[u8]) {
        self.op(KIND_INT, 2, key, &[])
    }
    /// Drops the event; its patches are discarded.
    pub fn drop_event(&mut self) {
        self.drop = true;
    }
}

// ---- drivers (called by the export macros) ----------------------------

#[doc(hidden)]
pub fn abi_in_buf(min: u32) -> u32 {
    let b = unsafe { in_buf() };
    if min as usize > b.cap {
        match grow(min as usize) {
            Some((p, cap)) => {
                b.ptr = p;
                b.cap = cap;
            }
            None => return 0,
        }
    }
    b.ptr as usize as u32
}

unsafe fn input(len: u32) -> Option<&'static [u8]> {
    let b = in_buf();
    if len as usize > b.cap {
        return None;
    }
    Some(core::slice::from_raw_parts(b.ptr, len as usize))
}

#[doc(hidden)]
pub fn abi_init(cfg_len: u32, f: fn(&Config) -> Result<(), i32>) -> i32 {
    let frame = match unsafe { input(cfg_len) } {
        Some(b) => b,
        None => return ERR_CONFIG,
    };
    match Config::parse(frame) {
        None => {
            log(ERROR, b"snk_init: malformed config frame");
            ERR_CONFIG
        }
        Some(c) => match f(&c) {
            Ok(()) => 0,
            Err(e) => e,
        },
    }
}

#[doc(hidden)]
pub fn abi_filter(n: u32, len: u32, keep: fn(&Event) -> bool) -> i64 {
    let mut b = match unsafe { input(len) } {
        Some(b) => b,
        None => return ERR_BAD_INPUT as i64,
    };
    let out = unsafe { out_buf() };
    out.len = 0;
    out.err = 0;
    if !out.reserve(n as usize) {
        return out.err as i64;
    }
    BAD.store(false, Ordering::Relaxed);
    for i in 0..n as usize {
        let (e, sz) = match parse_record(b) {
            Some(r) => r,
            None => return ERR_BAD_INPUT as i64,
        };
        unsafe { *out.ptr.add(i) = keep(&e) as u8 };
        b = &b[sz..];
    }
    if !b.is_empty() || BAD.load(Ordering::Relaxed) {
        return ERR_BAD_INPUT as i64;
    }
    out.len = n as usize;
    out.result()
}

#[doc(hidden)]
pub fn abi_enrich(n: u32, len: u32, f: fn(&Event, &mut Patch)) -> i64 {
    let mut b = match unsafe { input(len) } {
        Some(b) => b,
        None => return ERR_BAD_INPUT as i64,
    };
    let out = unsafe { out_buf() };
    out.len = 0;
    out.err = 0;
    BAD.store(false, Ordering::Relaxed);
    for _ in 0..n {
        let (e, sz) = match parse_record(b) {
            Some(r) => r,
            None => return ERR_BAD_INPUT as i64,
        };
        if !out.reserve(4) {
            return out.err as i64;
        }
        let head = out.len;
        out.len += 4;
        let mut p = Patch { nops: 0, drop: false };
        f(&e, &mut p);
        let out = unsafe { out_buf() };
        if out.err != 0 {
            return out.err as i64;
        }
        let hdr: [u8; 4] = if p.drop {
            out.len = head + 4;
            [1, 0, 0, 0]
        } else {
            let nops = (p.nops as u16).to_le_bytes();
            [if p.nops > 0 { 2 } else { 0 }, 0, nops[0], nops[1]]
        };
        unsafe { core::ptr::copy_nonoverlapping(hdr.as_ptr(), out.ptr.add(head), 4) };
        b = &b[sz..];
    }
    if !b.is_empty() || BAD.load(Ordering::Relaxed) {
        return ERR_BAD_INPUT as i64;
    }
    out.result()
}

/// Exports a filter: `fn keep(e: &Event) -> bool` (true keeps the event).
#[macro_export]
macro_rules! filter {
    ($keep:path) => {
        $crate::__common_exports!();
        #[no_mangle]
        pub extern "C" fn snk_filter(n: u32, len: u32) -> i64 {
            $crate::abi_filter(n, len, $keep)
        }
    };
}

/// Exports an enricher: `fn enrich(e: &Event, p: &mut Patch)`.
#[macro_export]
macro_rules! enrich {
    ($f:path) => {
        $crate::__common_exports!();
        #[no_mangle]
        pub extern "C" fn snk_enrich(n: u32, len: u32) -> i64 {
            $crate::abi_enrich(n, len, $f)
        }
    };
}

/// Exports snk_init: `fn init(c: &Config) -> Result<(), i32>` (Err(ERR_CONFIG)
/// after logging why). The config is valid only during the call.
#[macro_export]
macro_rules! init {
    ($f:path) => {
        #[no_mangle]
        pub extern "C" fn snk_init(cfg_len: u32) -> i32 {
            $crate::abi_init(cfg_len, $f)
        }
    };
}

/// Exports `snk_fields`: declares the field groups the plugin reads, an OR
/// of the `FIELDS_*` constants (0: name, timestamp and correlation id only),
/// e.g. `snakepipe::fields!(snakepipe::FIELDS_MEASUREMENTS);`. The host then
/// sends only those fields, so it encodes less per event. The value is a
/// constant, checked when the plugin is compiled (for one that depends on
/// the config, see [`fields_fn!`]). Without either macro the module has no
/// `snk_fields` export and is sent every field.
#[macro_export]
macro_rules! fields {
    ($groups:expr) => {
        #[no_mangle]
        pub extern "C" fn snk_fields() -> i32 {
            const GROUPS: i32 = $groups;
            const _: () = assert!(
                GROUPS & !$crate::FIELDS_ALL == 0,
                "snakepipe::fields!: not an OR of FIELDS_MEASUREMENTS, FIELDS_METADATA, FIELDS_HOST_CONTEXT"
            );
            GROUPS
        }
    };
}

/// `fields_fn!(f)` exports `snk_fields` answered at run time by the
/// plugin's `fn f() -> i32`: the host calls it once per instance after
/// `snk_init` succeeded, so it may return what `init` read from the config. Not checked here: a value with
/// a bit other than the `FIELDS_*` ones makes the host refuse the plugin.
#[macro_export]
macro_rules! fields_fn {
    ($f:path) => {
        #[no_mangle]
        pub extern "C" fn snk_fields() -> i32 {
            $f()
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __common_exports {
    () => {
        #[no_mangle]
        pub extern "C" fn snk_abi_version() -> i32 {
            $crate::ABI_VERSION
        }
        #[no_mangle]
        pub extern "C" fn snk_in_buf(min: u32) -> u32 {
            $crate::abi_in_buf(min)
        }
    };
}
