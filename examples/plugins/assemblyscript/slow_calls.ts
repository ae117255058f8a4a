// slow_calls: the example filter plugin in AssemblyScript. An event named
// python.call.stop whose measurement duration (int or float) is below config
// min_duration_ns (default 0) is dropped; every other event is kept (also a
// python.call.stop without a numeric duration: it cannot be judged).
import {
  Config, Event, FIELDS_MEASUREMENTS, Filter, KIND_INT, KIND_FLOAT, declareFields, filterBatch, onInit, utf8, wordsMatch,
} from "../../../plugins/sdk/assemblyscript/assembly/index";
export { snk_abi_version, snk_fields, snk_in_buf, snk_init } from "../../../plugins/sdk/assemblyscript/assembly/index";

// The filter reads only the duration measurement: the host then sends
// each record without its metadata and host context (less to encode).
declareFields(FIELDS_MEASUREMENTS);

const MIN_DURATION_NS = utf8("min_duration_ns");

// The name and key the filter looks for, as constants: length, first and
// last 8 bytes as little-endian words (see nameIsWords). The compares are
// then a length test and 8-byte compares with immediates, where a Str
// (utf8("...")) is read from memory per event. onInit checks the words.
const CALL_STOP_LEN: u32 = 16;
const CALL_STOP_W0: u64 = 0x632e6e6f68747970; // "python.c"
const CALL_STOP_W1: u64 = 0x706f74732e6c6c61; // "all.stop"
const DURATION_LEN: u32 = 8;
const DURATION_W0: u64 = 0x6e6f697461727564; // "duration"

let minDuration: i64 = 0;

onInit((cfg: Config): bool => {
  if (!wordsMatch(utf8("python.call.stop"), CALL_STOP_LEN, CALL_STOP_W0, CALL_STOP_W1) ||
    !wordsMatch(utf8("duration"), DURATION_LEN, DURATION_W0, 0)) return false;
  if (!cfg.only([MIN_DURATION_NS])) return false;
  minDuration = cfg.i64(MIN_DURATION_NS, 0);
  return cfg.ok;
});

class SlowCalls implements Filter {
  // @ts-ignore: decorator
  @inline
  keep(e: Event): bool {
    if (!e.nameIsWords(CALL_STOP_LEN, CALL_STOP_W0, CALL_STOP_W1)) return true;
    const kind = e.numberWords(DURATION_LEN, DURATION_W0, 0);
    if (kind == KIND_INT) return e.int >= minDuration;
    if (kind == KIND_FLOAT) return e.float >= <f64>minDuration;
    return true;
  }
}
const slowCalls = new SlowCalls();

// The plugin's own snk_filter: filterBatch with the class makes keep a
// direct call, inlined (@inline) into the batch loop (onFilter(fn) with
// the SDK's snk_filter also works, at the cost of an indirect call per
// event).
export function snk_filter(n: u32, len: u32): i64 { return filterBatch(n, len, slowCalls); }
