;; Logs 10000 lines per batch through snakepipe_v1.log, then keeps all.
(module
  (import "snakepipe_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 5)
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param $min i32) (result i32)
    (if (result i32) (i32.le_u (local.get $min) (i32.const 262144)) (then (i32.const 65536)) (else (i32.const 0))))
  (data (i32.const 0) "flooding the log")
  (func $keepall (param $n i32) (result i64)
    (memory.fill (i32.const 1024) (i32.const 1) (local.get $n))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  (func (export "snk_filter") (param $n i32) (param $len i32) (result i64)
    (local $i i32)
    (loop $l
      (call $log (i32.const 2) (i32.const 0) (i32.const 16))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
    (call $keepall (local.get $n))))
