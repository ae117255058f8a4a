;; snk_filter has the wrong signature; snk_in_buf is missing.
(module
  (memory (export "memory") 2)
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_filter") (param i32) (result i32) (i32.const 0)))
