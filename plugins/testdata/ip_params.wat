;; Rewriter fixture: a loop with parameters and results (multi-value, a
;; type-index block type). run(n) = the n-th Fibonacci number (n >= 1).
(module
  (memory 1)
  (func (export "run") (param $n i32) (result i32)
    (local $a i32) (local $b i32)
    i32.const 0
    i32.const 1
    loop $l (param i32 i32) (result i32 i32)
      local.set $b
      local.set $a
      local.get $b
      local.get $a
      local.get $b
      i32.add
      local.get $n
      i32.const 1
      i32.sub
      local.tee $n
      i32.const 0
      i32.gt_s
      br_if $l
    end
    drop))
