//! fields: a Zig SDK test filter (TestFieldsDeclaredFromConfig), not an
//! example. It declares the field groups named by config "fields" (a
//! decimal, default fields_all) through exportFieldsFn, which the host calls
//! after snk_init. It keeps every event.
const snk = @import("snakepipe");

var groups: i32 = snk.fields_all;

fn init(c: *const snk.Config) error{Config}!void {
    const v = try c.int("fields", snk.fields_all);
    // the low 32 bits (the test passes 0-7; the host refuses other bits)
    groups = @truncate(v);
}

fn declared() i32 {
    return groups;
}

fn keep(_: *const snk.Event) bool {
    return true;
}

comptime {
    snk.exportInit(init);
    snk.exportFieldsFn(declared);
    snk.exportFilter(keep);
}
