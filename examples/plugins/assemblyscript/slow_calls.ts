// slow_calls: the example filter plugin in AssemblyScript. An event named
// python.call.stop whose measurement duration (int or float) is below config
// min_duration_ns (default 0) is dropped; every other event is kept (also a
// python.call.stop without a numeric duration: it cannot be judged).
import {
  Config, Event, Filter, KIND_INT, KIND_FLOAT, filterBatch, onInit, utf8,
} from "../../../plugins/sdk/assemblyscript/assembly/index";
export { snk_abi_version, snk_in_buf, snk_init } from "../../../plugins/sdk/assemblyscript/assembly/index";

const CALL_STOP = utf8("python.call.stop");
const DURATION = utf8("duration");
const MIN_DURATION_NS = utf8("min_duration_ns");

let minDuration: i64 = 0;

onInit((cfg: Config): bool => {
  if (!cfg.only([MIN_DURATION_NS])) return false;
  minDuration = cfg.i64(MIN_DURATION_NS, 0);
  return cfg.ok;
});

class SlowCalls implements Filter {
  keep(e: Event): bool {
    if (!e.nameIs(CALL_STOP)) return true;
    const kind = e.number(DURATION);
    if (kind == KIND_INT) return e.int >= minDuration;
    if (kind == KIND_FLOAT) return e.float >= <f64>minDuration;
    return true;
  }
}
const slowCalls = new SlowCalls();

// The plugin's own snk_filter: filterBatch with the class makes keep a
// direct call (onFilter(fn) with the SDK's snk_filter also works, at the
// cost of an indirect call per event).
export function snk_filter(n: u32, len: u32): i64 { return filterBatch(n, len, slowCalls); }
