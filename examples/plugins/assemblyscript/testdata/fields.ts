// fields: an AssemblyScript SDK test filter (fields_test.go), not
// an example. It re-exports snk_fields and calls declareFields only from
// onInit, with config "fields" (a decimal) when given: without it,
// snk_fields must answer the SDK's default, FIELDS_ALL. A value with other
// bits is passed on as it is (the host refuses it). It keeps every event.
import {
  Config, Event, declareFields, onFilter, onInit, utf8,
} from "../../../../plugins/sdk/assemblyscript/assembly/index";
export { snk_abi_version, snk_fields, snk_in_buf, snk_init, snk_filter } from "../../../../plugins/sdk/assemblyscript/assembly/index";

const FIELDS = utf8("fields");

onInit((cfg: Config): bool => {
  if (!cfg.only([FIELDS])) return false;
  if (cfg.get(FIELDS) != null) declareFields(<i32>cfg.i64(FIELDS, 0));
  return cfg.ok;
});

onFilter((e: Event): bool => true);
