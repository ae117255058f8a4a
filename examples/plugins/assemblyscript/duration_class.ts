// duration_class: the example enrich plugin in AssemblyScript. An event with
// a measurement duration (int or float) gets metadata duration_class = fast
// (duration < fast_ns, default 1000000), slow (duration >= slow_ns, default
// 100000000) or normal. Events without duration are unchanged.
//
// It registers a callback with onEnrich and re-exports the SDK's
// snk_enrich: the simplest form. slow_calls.ts shows the faster one (a
// class and the plugin's own export, no indirect call per event).
import {
  Config, Event, FIELDS_MEASUREMENTS, KIND_INT, KIND_FLOAT, Patch, declareFields, onEnrich, onInit, utf8,
} from "../../../plugins/sdk/assemblyscript/assembly/index";
export { snk_abi_version, snk_fields, snk_in_buf, snk_init, snk_enrich } from "../../../plugins/sdk/assemblyscript/assembly/index";

// The enricher reads only the duration measurement: the host then sends
// each record without its metadata and host context (less to encode). Its
// patch still applies to the whole event; it only cannot see the metadata
// the event already has.
declareFields(FIELDS_MEASUREMENTS);

const DURATION = utf8("duration");
const FAST_NS = utf8("fast_ns");
const SLOW_NS = utf8("slow_ns");
const DURATION_CLASS = utf8("duration_class");
const FAST = utf8("fast");
const SLOW = utf8("slow");
const NORMAL = utf8("normal");

let fastNs: i64 = 1000000;
let slowNs: i64 = 100000000;

onInit((cfg: Config): bool => {
  if (!cfg.only([FAST_NS, SLOW_NS])) return false;
  fastNs = cfg.i64(FAST_NS, 1000000);
  slowNs = cfg.i64(SLOW_NS, 100000000);
  return cfg.ok;
});

onEnrich((e: Event, p: Patch): void => {
  const kind = e.number(DURATION);
  let fast = false;
  let slow = false;
  if (kind == KIND_INT) {
    fast = e.int < fastNs;
    slow = e.int >= slowNs;
  } else if (kind == KIND_FLOAT) {
    fast = e.float < <f64>fastNs;
    slow = e.float >= <f64>slowNs;
  } else {
    return;
  }
  p.setMetadata(DURATION_CLASS, fast ? FAST : slow ? SLOW : NORMAL);
});
