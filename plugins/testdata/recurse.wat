;; Recurses without a loop on every batch: fib(60) by doubly recursive
;; calls, about 2^42 calls, hours of work. No loop header, so the §8.1
;; rewrite inserts no check (TestDeadlineStopsRecursion).
(module
  (memory (export "memory") 5)
  (func $fib (param $n i32) (result i64)
    (if (result i64) (i32.lt_u (local.get $n) (i32.const 2))
      (then (i64.extend_i32_u (local.get $n)))
      (else (i64.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param $min i32) (result i32)
    (if (result i32) (i32.le_u (local.get $min) (i32.const 262144)) (then (i32.const 65536)) (else (i32.const 0))))
  (func (export "snk_filter") (param $n i32) (param $len i32) (result i64)
    (drop (call $fib (i32.const 60)))
    (i64.const 0)))
