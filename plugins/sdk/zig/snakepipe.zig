//! Zig guest SDK for snakepipe Wasm plugins (ABI snakepipe_v1, see
//! docs/plugin-abi.md), for wasm32-freestanding. The SDK owns the input and
//! result buffers, walks the record batch (read lazily: the record frame per
//! event, a field when a lookup walks over it; a malformed batch returns
//! err_bad_input) and writes verdicts or patches. A plugin writes per-event functions and exports them:
//!
//!     const snk = @import("snakepipe");
//!     fn keep(e: *const snk.Event) bool { ... }
//!     comptime { snk.exportFilter(keep); snk.exportInit(init); }
//!
//! exportFields(snk.fields_measurements) (optional) declares the field groups
//! the plugin reads: the host then sends only those.
const std = @import("std");

pub const abi_version: i32 = 1;

pub const kind_int: u8 = 1;
pub const kind_float: u8 = 2;
pub const kind_string: u8 = 3;
pub const kind_metadata: u8 = 4;
pub const kind_host_context: u8 = 5;

/// Field groups, for exportFields (snk_fields, docs/plugin-abi.md): the
/// host sends each record only the fields of the groups a plugin declares.
/// i32, as the export returns (and as the other SDKs' constants are).
pub const fields_measurements: i32 = 1; // kinds 1-3
pub const fields_metadata: i32 = 2; // kind 4
pub const fields_host_context: i32 = 4; // kind 5
/// Every field: also what no declaration means.
pub const fields_all: i32 = 7;

pub const err_generic: i32 = -1;
pub const err_bad_input: i32 = -2;
pub const err_oom: i32 = -3;
pub const err_config: i32 = -4;

/// The host's limit of patch operations per event.
pub const max_patches: usize = 64;

pub const Level = enum(i32) { trace = 0, debug = 1, info = 2, warn = 3, err = 4 };

extern "snakepipe_v1" fn log(level: i32, ptr: [*]const u8, len: i32) void;

/// Sends msg to snakepipe's logger (rate-limited by the host).
pub fn logMsg(level: Level, msg: []const u8) void {
    log(@intFromEnum(level), msg.ptr, @intCast(msg.len));
}

/// Compares two byte strings. Up to 16 bytes it uses no Wasm loop: with a
/// deadline, wazero instruments every loop iteration with a call, so the hot
/// paths here avoid loops where they can.
pub inline fn eqBytes(a0: []const u8, b0: []const u8) bool {
    if (a0.len != b0.len) return false;
    var a = a0;
    var b = b0;
    if (a.len > 16) {
        while (true) {
            if (rd64(a, 0) != rd64(b, 0)) return false;
            a = a[8..];
            b = b[8..];
            if (a.len <= 16) break;
        }
    }
    const n = a.len;
    if (n >= 8) return rd64(a, 0) == rd64(b, 0) and rd64(a, n - 8) == rd64(b, n - 8);
    if (n >= 4) return rd32(a, 0) == rd32(b, 0) and rd32(a, n - 4) == rd32(b, n - 4);
    if (n == 0) return true;
    return a[0] == b[0] and a[n >> 1] == b[n >> 1] and a[n - 1] == b[n - 1];
}

fn rd16(b: []const u8, o: usize) usize {
    return std.mem.readIntLittle(u16, b[o..][0..2]);
}
fn rd32(b: []const u8, o: usize) usize {
    return std.mem.readIntLittle(u32, b[o..][0..4]);
}
fn rd64(b: []const u8, o: usize) u64 {
    return std.mem.readIntLittle(u64, b[o..][0..8]);
}
inline fn ld16(p: [*]const u8) u32 {
    return std.mem.readIntLittle(u16, p[0..2]);
}
inline fn ld32(p: [*]const u8) u32 {
    return std.mem.readIntLittle(u32, p[0..4]);
}
inline fn ld64(p: [*]const u8) u64 {
    return std.mem.readIntLittle(u64, p[0..8]);
}

/// One field: a measurement, a metadata entry or a host-context entry.
pub const Field = struct {
    kind: u8,
    key: []const u8,
    value: []const u8,

    pub fn int(f: Field) i64 {
        return if (f.kind == kind_int) @bitCast(rd64(f.value, 0)) else 0;
    }
    pub fn float(f: Field) f64 {
        return if (f.kind == kind_float) @bitCast(rd64(f.value, 0)) else 0;
    }
};

pub const Number = union(enum) { int: i64, float: f64 };

// Record access is lazy. Per event the SDK checks only the record frame
// (length, name, correlation id and field count fit in the record). A lookup
// (Event.find and the functions on it) checks that each field it walks over
// lies inside the record, and fully checks the field it returns (a known
// kind, an 8-byte value for int and float); FieldIterator fully checks every
// field it yields. A walk that meets a malformed field stops (null) and
// marks the batch bad: the SDK then answers the whole batch with
// err_bad_input whatever the callback returned. Fields no walk reaches are
// never read (the host never sends malformed records; the checks keep a bad
// batch from reading outside its record: ReleaseFast has no bounds checks).
var bad_batch: bool = false;

fn markBad() void {
    @setCold(true);
    bad_batch = true;
}

/// A known kind, and an 8-byte value for int and float (h: the header word).
inline fn fieldOk(h: u64) bool {
    const kind: u8 = @truncate(h);
    return kind >= kind_int and kind <= kind_host_context and (kind > kind_float or (h >> 32) == 8);
}

/// The header word of the field at the start of b and the field's size, or
/// null when the field does not fit in b.
inline fn fieldHeader(b: []const u8) ?struct { h: u64, size: usize } {
    if (b.len < 8) return null;
    const h = rd64(b, 0);
    const size = 8 + ((h >> 16) & 0xffff) + (h >> 32);
    if (size > b.len) return null;
    return .{ .h = h, .size = @intCast(size) };
}

/// The field at the start of b with header h (b holds the whole field).
inline fn fieldAt(b: []const u8, h: u64, size: usize) Field {
    const kl: usize = @intCast((h >> 16) & 0xffff);
    return Field{ .kind = @truncate(h), .key = b[8 .. 8 + kl], .value = b[8 + kl .. size] };
}

pub const FieldIterator = struct {
    rest: []const u8,
    left: usize,

    pub fn next(it: *FieldIterator) ?Field {
        if (it.left == 0) return null;
        const b = it.rest;
        const fh = fieldHeader(b) orelse {
            markBad();
            it.left = 0;
            return null;
        };
        if (!fieldOk(fh.h)) {
            markBad();
            it.left = 0;
            return null;
        }
        it.rest = b[fh.size..];
        it.left -= 1;
        return fieldAt(b, fh.h, fh.size);
    }
};

/// A read-only view of one record, valid only during the callback.
pub const Event = struct {
    ts_ns: i64,
    name: []const u8,
    correlation_id: []const u8,
    nfields: usize,
    /// From the first field to the end of the record (checked lazily).
    area: []const u8,

    pub fn fields(e: *const Event) FieldIterator {
        return .{ .rest = e.area, .left = e.nfields };
    }
    pub inline fn nameIs(e: *const Event, name: []const u8) bool {
        return eqBytes(e.name, name);
    }
    /// First field with kind in [lo, hi] and the given key. Per field walked
    /// over: one 8-byte header load, a bounds check and one compare of kind
    /// and key length together (flags, byte 1, are ignored); the key bytes
    /// are compared only when the lengths match. The first 8 fields are
    /// visited without a Wasm loop (see eqBytes).
    pub inline fn find(e: *const Event, lo: u8, hi: u8, key: []const u8) ?Field {
        return fieldOf(e.seek(lo, hi, key), key.len);
    }
    /// find's walk: the address of the field found (checked as find says),
    /// or null. A pointer, not a ?Field: Zig keeps an optional struct
    /// returned by an inline function in memory (stack stores and loads per
    /// lookup, and the batch loop's Event with them), a nullable pointer
    /// stays in a register.
    inline fn seek(e: *const Event, lo: u8, hi: u8, key: []const u8) ?[*]const u8 {
        if (hi < lo or key.len > 0xffff) return null;
        const want: u32 = (@as(u32, @intCast(key.len)) << 16) | lo;
        const span: u32 = hi - lo;
        var p: [*]const u8 = e.area.ptr;
        // bytes from p to the record end: a field fits when its size is at
        // most room (one compare per field)
        var room: u64 = e.area.len;
        var left = e.nfields;
        const h: u64 = found: {
            inline for (0..9) |step| {
                // steps 0-7 unrolled, then a loop for the rest
                while (true) {
                    if (left == 0) return null;
                    // may be read past the record (room < 8): the input
                    // buffer's slack (see frameAt); such a field fails the
                    // size check (a field is at least 8 bytes)
                    const hw = ld64(p);
                    const size = 8 + ((hw >> 16) & 0xffff) + (hw >> 32);
                    if (size > room) {
                        markBad();
                        return null;
                    }
                    if ((@as(u32, @truncate(hw)) & 0xffff00ff) -% want <= span and eqBytes(p[8 .. 8 + key.len], key)) break :found hw;
                    p += @as(usize, @intCast(size));
                    room -= size;
                    left -= 1;
                    if (step < 8) break;
                }
            }
            unreachable;
        };
        // the kind is in [lo, hi] here: with constant bounds the check of
        // fieldOk folds to one compare (int, float) or none (strings)
        const ok = if (lo >= kind_int and hi <= kind_float) (h >> 32) == 8 else if (lo > kind_float and hi <= kind_host_context) true else fieldOk(h);
        if (!ok) {
            markBad();
            return null;
        }
        return p;
    }
    pub fn measurement(e: *const Event, key: []const u8) ?Field {
        return e.find(kind_int, kind_string, key);
    }
    pub fn metadata(e: *const Event, key: []const u8) ?[]const u8 {
        return if (e.find(kind_metadata, kind_metadata, key)) |f| f.value else null;
    }
    pub fn hostContext(e: *const Event, key: []const u8) ?[]const u8 {
        return if (e.find(kind_host_context, kind_host_context, key)) |f| f.value else null;
    }
    /// An int or float measurement (null when absent or a string).
    pub inline fn number(e: *const Event, key: []const u8) ?Number {
        return numberAt(e.seek(kind_int, kind_float, key), key.len);
    }
};

/// Event.find's Field: the field at p (checked by seek), whose key has kl
/// bytes. Not inline, see numberAt.
fn fieldOf(p: ?[*]const u8, kl: usize) ?Field {
    const f = p orelse return null;
    const h = ld64(f);
    return Field{ .kind = @truncate(h), .key = f[8 .. 8 + kl], .value = f[8 + kl .. 8 + kl + @as(usize, @intCast(h >> 32))] };
}

/// Event.number's value: the int or float field at p (checked by seek),
/// whose key has kl bytes. Not inline: a plain function's ?Number result
/// stays in registers once LLVM inlines it (an inline function's goes
/// through the stack, see Event.seek).
fn numberAt(p: ?[*]const u8, kl: usize) ?Number {
    const f = p orelse return null;
    // the value: 8 bytes (seek checked) after the header and the key
    const v = ld64(f + 8 + kl);
    return if (f[0] == kind_int) Number{ .int = @bitCast(v) } else Number{ .float = @bitCast(v) };
}

const Parsed = struct { event: Event, size: usize };

/// Reads the record at the start of b; null when its frame is malformed.
/// Only the frame is checked here (the record, name, correlation id and
/// field count fit; no loop); fields are checked lazily, as they are read.
pub inline fn parseRecord(b: []const u8) ?Parsed {
    // 18: the smallest record (4 + 14); frameAt reads 14 bytes unchecked
    if (b.len < 18) return null;
    var ev: Event = undefined;
    const size = frameAt(b.ptr, b.len, &ev);
    if (size == 0) return null;
    return Parsed{ .event = ev, .size = size };
}

/// parseRecord for the batch drivers: the record's size (0: a malformed
/// frame) and its Event in ev. Not an optional struct (see Event.seek).
/// rec_len and name_len are loaded before any check (avail may be below
/// 14): the input buffer has in_slack readable bytes after the batch.
inline fn frameAt(p: [*]const u8, avail: usize, ev: *Event) usize {
    const rl = ld32(p);
    const nl = ld16(p + 12);
    // 14 = ts (8) + name_len (2) + corr_len (2) + nfields (2); the second
    // compare also rules out rl < 14
    if (@as(u64, rl) + 4 > avail or nl + 14 > rl) return 0;
    const r = p + 4;
    const cl = ld16(r + 10 + nl);
    if (nl + cl + 14 > rl) return 0;
    const o = 14 + nl + cl;
    ev.* = Event{
        .ts_ns = @bitCast(ld64(r)),
        .name = r[10 .. 10 + nl],
        .correlation_id = r[12 + nl .. 12 + nl + cl],
        .nfields = ld16(r + 12 + nl + cl),
        .area = r[o..rl], // bytes after the last field are skipped
    };
    return 4 + @as(usize, rl);
}

/// Parses -?[0-9]+ into an i64 without overflow (the rule every SDK uses).
pub fn parseI64(s: []const u8) ?i64 {
    var i: usize = 0;
    const neg = s.len > 0 and s[0] == '-';
    if (neg) i = 1;
    if (i == s.len) return null;
    var u: u64 = 0;
    while (i < s.len) : (i += 1) {
        const d = s[i] -% '0';
        if (d > 9) return null;
        if (u > (@as(u64, 1) << 63) / 10) return null;
        u = u * 10 + d;
        if (u > @as(u64, 1) << 63) return null;
    }
    if (!neg and u > (@as(u64, 1) << 63) - 1) return null;
    return if (neg) @bitCast(0 -% u) else @bitCast(u);
}

/// The plugin config (keys and values sorted by key), valid during init.
pub const Config = struct {
    frame: []const u8,

    pub fn entries(c: *const Config) FieldIterator {
        if (c.frame.len == 0) return .{ .rest = c.frame, .left = 0 };
        return .{ .rest = c.frame[2..], .left = rd16(c.frame, 0) };
    }
    pub fn get(c: *const Config, key: []const u8) ?[]const u8 {
        var it = c.entries();
        while (it.next()) |f| {
            if (std.mem.eql(u8, f.key, key)) return f.value;
        }
        return null;
    }
    /// key as a decimal int64, or def when absent; a bad value is logged.
    pub fn int(c: *const Config, key: []const u8, def: i64) error{Config}!i64 {
        const v = c.get(key) orelse return def;
        return parseI64(v) orelse {
            logMsg(.err, key);
            logMsg(.err, "config value above is not a decimal int64");
            return error.Config;
        };
    }
    /// Fails (after logging the key) when a key is not in known.
    pub fn only(c: *const Config, known: []const []const u8) error{Config}!void {
        var it = c.entries();
        outer: while (it.next()) |f| {
            for (known) |k| {
                if (std.mem.eql(u8, f.key, k)) continue :outer;
            }
            logMsg(.err, "config: unknown key:");
            logMsg(.err, f.key);
            return error.Config;
        }
    }
};

fn configValid(p: []const u8) bool {
    if (p.len == 0) return true;
    if (p.len < 2) return false;
    const n = rd16(p, 0);
    var o: usize = 2;
    var j: usize = 0;
    while (j < n) : (j += 1) {
        if (p.len - o < 8 or p[o] != kind_metadata) return false;
        const kl: u64 = rd16(p, o + 2);
        const vl: u64 = rd32(p, o + 4);
        if (8 + kl + vl > p.len - o) return false;
        o += 8 + @as(usize, @intCast(kl)) + @as(usize, @intCast(vl));
    }
    return o == p.len;
}

// ---- buffers ---------------------------------------------------------

const static_in = 64 << 10;
const static_out = 16 << 10;
const max_buf = 64 << 20;

/// The input buffer is followed by in_slack readable bytes, so a record's
/// fixed-size frame can be loaded before a length check (see frameAt).
const in_slack = 32;
/// On a cache line: the host writes every record here.
var in_static: [static_in + in_slack]u8 align(64) = undefined;
var out_static: [static_out]u8 = undefined;
var in_ptr: [*]u8 = &in_static;
var in_cap: usize = static_in;
var out_ptr: [*]u8 = &out_static;
var out_cap: usize = static_out;
var out_len: usize = 0;
var out_err: i32 = 0;

/// A fresh region of at least need bytes from memory.grow (no allocator is
/// linked unless the plugin adds one, and Zig's wasm allocators only use the
/// pages they grew themselves).
/// extra: bytes past need (the input buffer's slack; need alone is limited).
fn grow(need: usize, extra: usize, cap: *usize) ?[*]u8 {
    if (need > max_buf) return null;
    const pages = (need + extra + 0xFFFF) >> 16;
    const old = @wasmMemoryGrow(0, pages);
    if (old < 0) return null;
    cap.* = pages << 16;
    return @ptrFromInt(@as(usize, @intCast(old)) << 16);
}

fn reserve(n: usize) bool {
    if (out_err != 0) return false;
    if (n <= out_cap - out_len) return true;
    const need = out_len + n;
    var cap: usize = 0;
    const p = grow(if (need * 2 > max_buf) need else need * 2, 0, &cap) orelse {
        out_err = err_oom;
        return false;
    };
    @memcpy(p[0..out_len], out_ptr[0..out_len]);
    out_ptr = p;
    out_cap = cap;
    return true;
}

fn push(b: []const u8) void {
    @memcpy(out_ptr[out_len .. out_len + b.len], b);
    out_len += b.len;
}

fn result() i64 {
    if (out_err != 0) return out_err;
    return (@as(i64, @intCast(@intFromPtr(out_ptr))) << 32) | @as(i64, @intCast(out_len));
}

// ---- patches ---------------------------------------------------------

/// The changes an enricher makes to one event, applied by the host in order.
pub const Patch = struct {
    nops: usize = 0,
    dropped: bool = false,

    fn op(p: *Patch, kind: u8, opcode: u8, key: []const u8, val: []const u8) void {
        if (key.len > 0xFFFF or p.nops == max_patches or val.len > max_buf) {
            logMsg(.err, "patch: key longer than 65535 bytes, value too large or more than 64 patches for one event");
            out_err = err_generic;
            return;
        }
        if (!reserve(8 + key.len + val.len)) return;
        var hdr: [8]u8 = undefined;
        hdr[0] = kind;
        hdr[1] = opcode;
        std.mem.writeIntLittle(u16, hdr[2..4], @as(u16, @intCast(key.len)));
        std.mem.writeIntLittle(u32, hdr[4..8], @as(u32, @intCast(val.len)));
        push(&hdr);
        push(key);
        push(val);
        p.nops += 1;
    }
    pub fn setMetadata(p: *Patch, key: []const u8, val: []const u8) void {
        p.op(kind_metadata, 1, key, val);
    }
    pub fn setString(p: *Patch, key: []const u8, val: []const u8) void {
        p.op(kind_string, 1, key, val);
    }
    pub fn setInt(p: *Patch, key: []const u8, v: i64) void {
        var b: [8]u8 = undefined;
        std.mem.writeIntLittle(i64, &b, v);
        p.op(kind_int, 1, key, &b);
    }
    pub fn setFloat(p: *Patch, key: []const u8, v: f64) void {
        var b: [8]u8 = undefined;
        std.mem.writeIntLittle(u64, &b, @bitCast(v));
        p.op(kind_float, 1, key, &b);
    }
    pub fn deleteMetadata(p: *Patch, key: []const u8) void {
        p.op(kind_metadata, 2, key, "");
    }
    pub fn deleteMeasurement(p: *Patch, key: []const u8) void {
        p.op(kind_int, 2, key, "");
    }
    /// Drops the event; its patches are discarded.
    pub fn drop(p: *Patch) void {
        p.dropped = true;
    }
};

// ---- drivers and exports ---------------------------------------------

fn abiVersion() callconv(.C) i32 {
    return abi_version;
}

fn inBuf(min: u32) callconv(.C) u32 {
    if (min > in_cap) {
        var cap: usize = 0;
        in_ptr = grow(min, in_slack, &cap) orelse return 0;
        in_cap = cap - in_slack;
    }
    return @intCast(@intFromPtr(in_ptr));
}

fn exportCommon() void {
    @export(abiVersion, .{ .name = "snk_abi_version", .linkage = .Strong });
    @export(inBuf, .{ .name = "snk_in_buf", .linkage = .Strong });
}

pub fn runFilter(n: u32, len: u32, comptime keep: fn (*const Event) bool) i64 {
    if (len > in_cap) return err_bad_input;
    out_len = 0;
    out_err = 0;
    if (!reserve(n)) return out_err;
    const out = out_ptr;
    var p: [*]const u8 = in_ptr;
    var left: usize = len;
    bad_batch = false;
    var i: usize = 0;
    while (i < n) : (i += 1) {
        var ev: Event = undefined;
        const size = frameAt(p, left, &ev);
        if (size == 0) return err_bad_input;
        out[i] = @intFromBool(@call(.always_inline, keep, .{&ev}));
        p += size;
        left -= size;
    }
    if (left != 0 or bad_batch) return err_bad_input;
    out_len = n;
    return result();
}

pub fn runEnrich(n: u32, len: u32, comptime f: fn (*const Event, *Patch) void) i64 {
    if (len > in_cap) return err_bad_input;
    var p: [*]const u8 = in_ptr;
    var left: usize = len;
    out_len = 0;
    out_err = 0;
    bad_batch = false;
    var i: usize = 0;
    while (i < n) : (i += 1) {
        var ev: Event = undefined;
        const size = frameAt(p, left, &ev);
        if (size == 0) return err_bad_input;
        if (!reserve(4)) return out_err;
        const head = out_len;
        out_len += 4;
        var pt = Patch{};
        f(&ev, &pt);
        if (out_err != 0) return out_err;
        const h = out_ptr[head .. head + 4];
        if (pt.dropped) {
            out_len = head + 4;
            @memcpy(h, &[4]u8{ 1, 0, 0, 0 });
        } else {
            h[0] = if (pt.nops > 0) 2 else 0;
            h[1] = 0;
            std.mem.writeIntLittle(u16, h[2..4], @as(u16, @intCast(pt.nops)));
        }
        p += size;
        left -= size;
    }
    if (left != 0 or bad_batch) return err_bad_input;
    return result();
}

/// Exports snk_filter (plus snk_abi_version and snk_in_buf) for keep, which
/// returns true to keep the event. Call from a comptime block.
pub fn exportFilter(comptime keep: fn (*const Event) bool) void {
    const S = struct {
        fn filter(n: u32, len: u32) callconv(.C) i64 {
            return runFilter(n, len, keep);
        }
    };
    @export(S.filter, .{ .name = "snk_filter", .linkage = .Strong });
    exportCommon();
}

/// Exports snk_enrich (plus snk_abi_version and snk_in_buf) for f.
pub fn exportEnrich(comptime f: fn (*const Event, *Patch) void) void {
    const S = struct {
        fn enrich(n: u32, len: u32) callconv(.C) i64 {
            return runEnrich(n, len, f);
        }
    };
    @export(S.enrich, .{ .name = "snk_enrich", .linkage = .Strong });
    exportCommon();
}

/// Exports snk_init for f; the Config is valid only during the call.
pub fn exportInit(comptime f: fn (*const Config) error{Config}!void) void {
    const S = struct {
        fn init(cfg_len: u32) callconv(.C) i32 {
            if (cfg_len > in_cap or !configValid(in_ptr[0..cfg_len])) {
                logMsg(.err, "snk_init: malformed config frame");
                return err_config;
            }
            const c = Config{ .frame = in_ptr[0..cfg_len] };
            f(&c) catch return err_config;
            return 0;
        }
    };
    @export(S.init, .{ .name = "snk_init", .linkage = .Strong });
}

/// Exports snk_fields, declaring the field groups the plugin reads
/// (fields_* or'ed together; 0: name, timestamp and correlation id only).
/// The host then leaves every other field out of the records it sends:
/// less to encode and copy per event. A lookup or fields() never sees a
/// field of a group not declared. Without exportFields (or exportFieldsFn)
/// there is no snk_fields export and the host sends every field.
pub fn exportFields(comptime groups: i32) void {
    if (groups & ~fields_all != 0) {
        @compileError(std.fmt.comptimePrint("exportFields({d}): not a set of fields_measurements, fields_metadata, fields_host_context", .{groups}));
    }
    const S = struct {
        fn fields() callconv(.C) i32 {
            return groups;
        }
    };
    @export(S.fields, .{ .name = "snk_fields", .linkage = .Strong });
}

/// exportFields for an answer known only at run time (from the config):
/// the host calls f once per instance, after snk_init succeeded. Not
/// checked here: a value with a bit other than the fields_* ones makes the
/// host refuse the plugin.
pub fn exportFieldsFn(comptime f: fn () i32) void {
    const S = struct {
        fn fields() callconv(.C) i32 {
            return f();
        }
    };
    @export(S.fields, .{ .name = "snk_fields", .linkage = .Strong });
}
