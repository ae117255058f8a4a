;; Rewriter fixture: SIMD instructions with every kind of immediate
;; (memarg, lane index, v128.const, i8x16.shuffle, load/store lane) in a
;; loop.
(module
  (memory 1)
  (func (export "run") (param $n i32) (result i32)
    (local $v v128) (local $i i32)
    (local.set $v (v128.const i32x4 1 2 3 4))
    (loop $l
      (local.set $v (i32x4.add (local.get $v)
        (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11 (local.get $v) (local.get $v))))
      (v128.store offset=16 (i32.const 0) (local.get $v))
      (local.set $v (v128.load32_lane 1 (i32.const 20) (local.get $v)))
      (v128.store64_lane 0 (i32.const 40) (local.get $v))
      (local.set $v (i32x4.replace_lane 2 (local.get $v) (i32.load (i32.const 44))))
      (local.set $v (v128.xor (local.get $v) (v128.load8_splat (i32.const 17))))
      (local.set $v (i32x4.add (local.get $v) (v128.load32_zero (i32.const 16))))
      (local.set $v (i16x8.add_sat_u (local.get $v) (i16x8.splat (i32.const 3))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $v)) (i32x4.extract_lane 3 (local.get $v)))
      (i8x16.extract_lane_u 5 (local.get $v)))))
