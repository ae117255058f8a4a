;; Calls proc_exit on every batch with the exit code wazero uses for a
;; call stopped by its context deadline (sys.ExitCodeDeadlineExceeded):
;; still a trap, not a timeout (docs/plugin-abi.md §3).
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 5)
  (func (export "snk_abi_version") (result i32) (i32.const 1))
  (func (export "snk_in_buf") (param $min i32) (result i32)
    (if (result i32) (i32.le_u (local.get $min) (i32.const 262144)) (then (i32.const 65536)) (else (i32.const 0))))
  (func (export "snk_filter") (param $n i32) (param $len i32) (result i64)
    (call $exit (i32.const 0xefffffff))
    (i64.const 0)))
