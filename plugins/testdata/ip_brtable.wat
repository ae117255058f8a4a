;; Rewriter fixture: br_table inside a loop, and a loop that is the target
;; of a br_table. run(n) counts n down, adding 1, 100 or nothing by n mod 3.
(module
  (memory 1)
  (func (export "run") (param $n i32) (result i32)
    (local $s i32)
    (block $out
      (loop $l
        (br_if $out (i32.le_s (local.get $n) (i32.const 0)))
        (block $two
          (block $one
            (block $zero
              (br_table $zero $one $two (i32.rem_u (local.get $n) (i32.const 3))))
            (local.set $s (i32.add (local.get $s) (i32.const 1)))
            (br $two))
          (local.set $s (i32.add (local.get $s) (i32.const 100))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br_table $l $out (i32.const 0))))
    (local.get $s)))
