// fields_unexported: an AssemblyScript SDK test filter (fields_test.go),
// not an example, with the mistake the docs warn about: it calls
// declareFields but its entry file does not re-export snk_fields, so the
// host never asks and sends every field. It keeps every event.
import {
  Event, FIELDS_MEASUREMENTS, declareFields, onFilter,
} from "../../../../plugins/sdk/assemblyscript/assembly/index";
export { snk_abi_version, snk_in_buf, snk_init, snk_filter } from "../../../../plugins/sdk/assemblyscript/assembly/index";

declareFields(FIELDS_MEASUREMENTS);

onFilter((e: Event): bool => true);
