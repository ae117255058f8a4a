;; snk_init traps on an empty config (cfg_len 2: no keys) and takes any
;; other; snk_fields returns 1. plugin inspect, which starts its instance
;; with an empty config, cannot learn the groups, and its note must stay one
;; line although a trap's error carries a wasm stack trace.
(module
  (memory (export "memory") 5)
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param $min i32) (result i32)
    (if (result i32) (i32.le_u (local.get $min) (i32.const 262144)) (then (i32.const 65536)) (else (i32.const 0))))
  (func (export "snk_init") (param $len i32) (result i32)
    (if (i32.le_u (local.get $len) (i32.const 2)) (then (unreachable)))
    (i32.const 0))
  (func (export "snk_fields") (result i32) (i32.const 1))
  ;; every verdict "keep" (1), n bytes at 0
  (func (export "snk_filter") (param $n i32) (param $len i32) (result i64)
    (memory.fill (i32.const 0) (i32.const 1) (local.get $n))
    (i64.extend_i32_u (local.get $n))))
