package snk

import "testing"

// TestHugeValueLengthIsRejected: a field whose key_len + val_len overflows a
// 32-bit uint (key_len 1, val_len 0xFFFFFFFF) must fail the batch, not pass
// the bounds check by wrap-around and then panic slicing the value. On a
// 64-bit build the sum cannot wrap; run with GOARCH=386 to see the bug.
func TestHugeValueLengthIsRejected(t *testing.T) {
	f := []byte{KindString, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 'd', 'x'}
	b := record(1, "a", "", f)
	walks := map[string]func(*Event){
		"Measurement": func(e *Event) { e.Measurement("d") },
		"Metadata":    func(e *Event) { e.Metadata("zzz") },
		"Fields":      func(e *Event) { e.Fields(func(Field) bool { return true }) },
	}
	for name, walk := range walks {
		t.Run(name, func(t *testing.T) {
			if err := ForEach(b, 1, func(_ int, e *Event) { walk(e) }); err == nil {
				t.Error("ForEach accepted a field whose value runs past the record")
			}
			if _, err := FilterBatch(b, 1, nil, func(e *Event) bool { walk(e); return true }); err == nil {
				t.Error("FilterBatch accepted a field whose value runs past the record")
			}
		})
	}
}
