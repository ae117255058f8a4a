// slow_calls_str: slow_calls (see slow_calls.ts) with Str keys, the simple
// form: utf8("...") at top level and nameIs / number. Each compare reads
// the key's length and words from memory, where slow_calls.ts compares
// with constants (the *Words methods); the golden and malformed-input
// tests run both, so both lookup paths of the SDK are checked.
import {
  Config, Event, FIELDS_MEASUREMENTS, Filter, KIND_INT, KIND_FLOAT, declareFields, filterBatch, onInit, utf8,
} from "../../../plugins/sdk/assemblyscript/assembly/index";
export { snk_abi_version, snk_fields, snk_in_buf, snk_init } from "../../../plugins/sdk/assemblyscript/assembly/index";

// Declared as in slow_calls.ts, so both are sent the same records and
// compare only their lookups.
declareFields(FIELDS_MEASUREMENTS);

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
  // @ts-ignore: decorator
  @inline
  keep(e: Event): bool {
    if (!e.nameIs(CALL_STOP)) return true;
    const kind = e.number(DURATION);
    if (kind == KIND_INT) return e.int >= minDuration;
    if (kind == KIND_FLOAT) return e.float >= <f64>minDuration;
    return true;
  }
}
const slowCalls = new SlowCalls();

export function snk_filter(n: u32, len: u32): i64 { return filterBatch(n, len, slowCalls); }
