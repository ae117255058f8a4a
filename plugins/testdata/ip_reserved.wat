;; A plugin that exports the host's reserved name snk__interrupt: it cannot
;; be instrumented, so it runs with wazero's close-on-context-done, which
;; must still stop its infinite loop.
(module
  (memory (export "memory") 3)
  (global (export "snk__interrupt") (mut i32) (i32.const 0))
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param i32) (result i32) (i32.const 65536))
  (func (export "snk_filter") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))
