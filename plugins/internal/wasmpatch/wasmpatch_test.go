package wasmpatch

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var names = Names{Interrupt: "int", Start: "start"}

// module builds a binary with one memory and one function of type
// () -> () whose body (after its locals) is code.
func module(code ...byte) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	b = append(b, 1, 4, 1, 0x60, 0, 0) // type section: () -> ()
	b = append(b, 3, 2, 1, 0)          // function section
	b = append(b, 5, 3, 1, 0, 1)       // memory section: 1 page
	body := append([]byte{0}, code...)
	fn := appendU32(nil, uint32(len(body)))
	fn = append(fn, body...)
	sec := append([]byte{1}, fn...)
	b = append(b, 10)
	b = appendU32(b, uint32(len(sec)))
	return append(b, sec...)
}

func TestInstrumentRefusesUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		want string
	}{
		{"threads atomic.fence", []byte{0xfe, 0x03, 0x00, 0x0b}, "opcode 0xfe"},
		{"tail call return_call", []byte{0x12, 0x00, 0x0b}, "opcode 0x12"},
		{"exception try", []byte{0x06, 0x40, 0x0b, 0x0b}, "opcode 0x6"},
		{"relaxed SIMD", []byte{0xfd, 0x80, 0x02, 0x0b}, "opcode 0xfd 0x100"},
		{"unassigned SIMD", []byte{0xfd, 0x9a, 0x01, 0x0b}, "opcode 0xfd 0x9a"},
		{"unknown 0xfc", []byte{0xfc, 0x12, 0x0b}, "opcode 0xfc 0x12"},
		{"multi-memory memarg", []byte{0x41, 0, 0x28, 0x40, 0x00, 0x00, 0x1a, 0x0b}, "multi-memory"},
		{"GC value type in select", []byte{0x1c, 0x01, 0x64, 0x0b}, "value type"},
		{"negative block type", []byte{0x02, 0x50, 0x0b, 0x0b}, "block type"},
		{"no final end", []byte{0x01}, "does not end"},
		{"code after final end", []byte{0x0b, 0x01}, "after the function's final end"},
		{"truncated i64.const", []byte{0x42, 0x80}, "unexpected end"},
	} {
		_, err := Instrument(module(tc.code...), names)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrUnsupported mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestInstrumentLayout(t *testing.T) {
	// loop; end; end: the check goes right after the loop's block type.
	res, err := Instrument(module(0x03, 0x40, 0x0b, 0x0b), names)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loops != 1 || res.HasStart {
		t.Fatalf("loops %d, start %v", res.Loops, res.HasStart)
	}
	check := loopCheck(0, 1)
	want := append(append([]byte{0x03, 0x40}, check...), 0x0b, 0x0b)
	if !bytes.Contains(res.Binary, want) {
		t.Errorf("instrumented loop not found in % x", res.Binary)
	}
	// The global (6) and export (7) sections were created, between memory
	// (5) and code (10).
	var ids []byte
	r := reader{b: res.Binary, pos: 8}
	for !r.done() {
		ids = append(ids, r.byte())
		r.bytes(int(r.u32()))
	}
	if r.err != nil || !bytes.Equal(ids, []byte{1, 3, 5, 6, 7, 10}) {
		t.Errorf("sections %v (err %v), want [1 3 5 6 7 10]", ids, r.err)
	}
}

func TestAppendS32(t *testing.T) {
	for v, want := range map[int32][]byte{0: {0}, 63: {0x3f}, 64: {0xc0, 0}, -1: {0x7f}, -64: {0x40}, -65: {0xbf, 0x7f}, 4096: {0x80, 0x20}} {
		if got := appendS32(nil, v); !bytes.Equal(got, want) {
			t.Errorf("appendS32(%d) = % x, want % x", v, got, want)
		}
	}
}
