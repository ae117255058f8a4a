;; snakepipe example filter in raw WebAssembly text, written against
;; docs/plugin-abi.md (ABI v1) with no SDK.
;;
;; For events named "python.call.stop": keep the event iff its measurement
;; "duration" (int or float) is >= the config value "min_duration_ns"
;; (decimal string, default 0). Every other event is kept.
;;
;; Build: wat2wasm filter.wat -o filter.wasm
;;   (make plugins also appends filter.meta.json as the snakepipe.meta section)
;;
;; Memory layout (2 pages of 64 KiB):
;;   0      "python.call.stop" (16 bytes)
;;   16     "duration" (8 bytes)
;;   32     "min_duration_ns" (15 bytes)
;;   1024   verdict bytes, one per event of the current batch
;;   65536  input buffer (64 KiB): records, or the config frame at init
(module
  (memory (export "memory") 2)
  (data (i32.const 0) "python.call.stop")
  (data (i32.const 16) "duration")
  (data (i32.const 32) "min_duration_ns")
  (global $min (mut i64) (i64.const 0))

  (func (export "snk_abi_version") (result i32) (i32.const 1))

  ;; The input buffer is the second page: 64 KiB, the default min_cap.
  (func (export "snk_in_buf") (param $min_cap i32) (result i32)
    (if (result i32) (i32.le_u (local.get $min_cap) (i32.const 65536))
      (then (i32.const 65536))
      (else (i32.const 0))))

  ;; $eq: do the $al bytes at $a equal the $bl bytes at $b?
  (func $eq (param $a i32) (param $al i32) (param $b i32) (param $bl i32) (result i32)
    (local $k i32)
    (if (i32.ne (local.get $al) (local.get $bl)) (then (return (i32.const 0))))
    (block $diff
      (loop $l
        (if (i32.ge_u (local.get $k) (local.get $al)) (then (return (i32.const 1))))
        (br_if $diff (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $k)))
                             (i32.load8_u (i32.add (local.get $b) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $l)))
    (i32.const 0))

  ;; $parse: decimal digits at $s (length $len) into $min; 0 if malformed.
  (func $parse (param $s i32) (param $len i32) (result i32)
    (local $k i32) (local $c i32) (local $v i64)
    (if (i32.eqz (local.get $len)) (then (return (i32.const 0))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $k) (local.get $len)))
        (local.set $c (i32.sub (i32.load8_u (i32.add (local.get $s) (local.get $k))) (i32.const 48)))
        (if (i32.gt_u (local.get $c) (i32.const 9)) (then (return (i32.const 0))))
        (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $l)))
    (global.set $min (local.get $v))
    (i32.const 1))

  ;; Config frame at 65536: u16 nfields, then fields
  ;; (u8 kind, u8 flags, u16 key_len, u32 val_len, key, val).
  (func (export "snk_init") (param $cfg_len i32) (result i32)
    (local $p i32) (local $i i32) (local $n i32) (local $kl i32) (local $vl i32)
    (local.set $n (i32.load16_u (i32.const 65536)))
    (local.set $p (i32.const 65538))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $kl (i32.load16_u offset=2 (local.get $p)))
        (local.set $vl (i32.load offset=4 (local.get $p)))
        (if (call $eq (i32.add (local.get $p) (i32.const 8)) (local.get $kl) (i32.const 32) (i32.const 15))
          (then
            (if (i32.eqz (call $parse (i32.add (i32.add (local.get $p) (i32.const 8)) (local.get $kl)) (local.get $vl)))
              (then (return (i32.const -4))))))  ;; -4: config error
        (local.set $p (i32.add (local.get $p) (i32.add (i32.const 8) (i32.add (local.get $kl) (local.get $vl)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Records at 65536: u32 rec_len, i64 ts_ns, u16 name_len, name,
  ;; u16 corr_len, corr, u16 nfields, fields.
  (func (export "snk_filter") (param $n i32) (param $len i32) (result i64)
    (local $p i32) (local $i i32) (local $end i32) (local $nl i32) (local $q i32)
    (local $nf i32) (local $j i32) (local $kl i32) (local $vl i32) (local $keep i32) (local $kind i32)
    (local.set $p (i32.const 65536))
    (block $done
      (loop $rec
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $end (i32.add (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p))))
        (local.set $keep (i32.const 1))
        (local.set $nl (i32.load16_u offset=12 (local.get $p)))
        (if (call $eq (i32.add (local.get $p) (i32.const 14)) (local.get $nl) (i32.const 0) (i32.const 16))
          (then
            ;; skip the name, then the correlation id
            (local.set $q (i32.add (i32.add (local.get $p) (i32.const 14)) (local.get $nl)))
            (local.set $q (i32.add (i32.add (local.get $q) (i32.const 2)) (i32.load16_u (local.get $q))))
            (local.set $nf (i32.load16_u (local.get $q)))
            (local.set $q (i32.add (local.get $q) (i32.const 2)))
            (local.set $j (i32.const 0))
            (block $fdone
              (loop $field
                (br_if $fdone (i32.ge_u (local.get $j) (local.get $nf)))
                (local.set $kind (i32.load8_u (local.get $q)))
                (local.set $kl (i32.load16_u offset=2 (local.get $q)))
                (local.set $vl (i32.load offset=4 (local.get $q)))
                (if (call $eq (i32.add (local.get $q) (i32.const 8)) (local.get $kl) (i32.const 16) (i32.const 8))
                  (then
                    (if (i32.eq (local.get $kind) (i32.const 1)) ;; int measurement
                      (then
                        (local.set $keep (i64.ge_s (i64.load (i32.add (i32.add (local.get $q) (i32.const 8)) (local.get $kl)))
                                                   (global.get $min)))
                        (br $fdone)))
                    (if (i32.eq (local.get $kind) (i32.const 2)) ;; float measurement
                      (then
                        (local.set $keep (f64.ge (f64.load (i32.add (i32.add (local.get $q) (i32.const 8)) (local.get $kl)))
                                                 (f64.convert_i64_s (global.get $min))))
                        (br $fdone)))))
                (local.set $q (i32.add (local.get $q) (i32.add (i32.const 8) (i32.add (local.get $kl) (local.get $vl)))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $field)))))
        (i32.store8 offset=1024 (local.get $i) (local.get $keep))
        (local.set $p (local.get $end))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rec)))
    ;; result: pointer 1024 in the high 32 bits, length n in the low 32 bits
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.extend_i32_u (local.get $n)))))
