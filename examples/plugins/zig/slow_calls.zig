//! slow_calls: the example filter plugin in Zig. An event named
//! python.call.stop whose measurement duration (int or float) is below
//! config min_duration_ns (default 0) is dropped; every other event is kept
//! (also a python.call.stop without a numeric duration: it cannot be judged).
const snk = @import("snakepipe");

var min_duration: i64 = 0;

fn init(c: *const snk.Config) error{Config}!void {
    try c.only(&.{"min_duration_ns"});
    min_duration = try c.int("min_duration_ns", 0);
}

fn keep(e: *const snk.Event) bool {
    if (!e.nameIs("python.call.stop")) return true;
    const d = e.number("duration") orelse return true;
    return switch (d) {
        .int => |i| i >= min_duration,
        .float => |f| f >= @as(f64, @floatFromInt(min_duration)),
    };
}

comptime {
    snk.exportInit(init);
    // Only the duration measurement is read: the host sends no metadata
    // and no host context.
    snk.exportFields(snk.fields_measurements);
    snk.exportFilter(keep);
}
