;; A plugin whose start function never returns: the host must stop it with
;; the init deadline (the rewriter turns the start section into an export
;; the host calls with the deadline armed).
(module
  (memory (export "memory") 3)
  (func $spin (loop $forever (br $forever)))
  (start $spin)
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param i32) (result i32) (i32.const 65536))
  (func (export "snk_filter") (param i32 i32) (result i64) (i64.const 0)))
