;; snk_fields has the wrong signature ((i32) -> i32, want () -> i32): the
;; module is refused at load.
(module
  (memory (export "memory") 2)
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param i32) (result i32) (i32.const 1024))
  (func (export "snk_fields") (param i32) (result i32) (i32.const 1))
  (func (export "snk_filter") (param i32 i32) (result i64) (i64.const 0)))
