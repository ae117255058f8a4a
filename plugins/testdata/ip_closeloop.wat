;; A filter that keeps every event and whose snk_close never returns: the
;; host must stop snk_close with its close deadline.
(module
  (memory (export "memory") 3)
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param i32) (result i32) (i32.const 65536))
  (func (export "snk_filter") (param $n i32) (param $len i32) (result i64)
    (local $bytes i32)
    (local.set $bytes (i32.shr_u (i32.add (local.get $n) (i32.const 7)) (i32.const 3)))
    (memory.fill (i32.const 32768) (i32.const 255) (local.get $bytes))
    (i64.or (i64.shl (i64.const 32768) (i64.const 32)) (i64.extend_i32_u (local.get $bytes))))
  (func (export "snk_close") (loop $forever (br $forever))))
