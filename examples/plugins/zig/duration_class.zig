//! duration_class: the example enrich plugin in Zig. An event with a
//! measurement duration (int or float) gets metadata duration_class = fast
//! (duration < fast_ns, default 1000000), slow (duration >= slow_ns, default
//! 100000000) or normal. Events without duration are unchanged.
const snk = @import("snakepipe");

var fast_ns: i64 = 1000000;
var slow_ns: i64 = 100000000;

fn init(c: *const snk.Config) error{Config}!void {
    try c.only(&.{ "fast_ns", "slow_ns" });
    fast_ns = try c.int("fast_ns", 1000000);
    slow_ns = try c.int("slow_ns", 100000000);
}

fn enrich(e: *const snk.Event, p: *snk.Patch) void {
    const d = e.number("duration") orelse return;
    var fast = false;
    var slow = false;
    switch (d) {
        .int => |i| {
            fast = i < fast_ns;
            slow = i >= slow_ns;
        },
        .float => |f| {
            fast = f < @as(f64, @floatFromInt(fast_ns));
            slow = f >= @as(f64, @floatFromInt(slow_ns));
        },
    }
    p.setMetadata("duration_class", if (fast) "fast" else if (slow) "slow" else "normal");
}

comptime {
    snk.exportInit(init);
    // Only the duration measurement is read: the host sends no metadata
    // and no host context.
    snk.exportFields(snk.fields_measurements);
    snk.exportEnrich(enrich);
}
