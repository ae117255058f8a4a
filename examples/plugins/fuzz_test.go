package examples_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
)

var (
	fuzzOnce   sync.Once
	fuzzGuests map[string]*guest
	fuzzErr    error
)

// loadFuzzGuests instantiates every language's two plugins once per test
// binary (a fuzz run calls the target millions of times).
func loadFuzzGuests(t *testing.T) map[string]*guest {
	fuzzOnce.Do(func() {
		fuzzGuests = map[string]*guest{}
		for _, lang := range languages {
			for _, plugin := range []string{"slow_calls", "duration_class"} {
				g, err := loadGuest(context.Background(), wasmPath(t, lang, plugin), nil)
				if err != nil {
					fuzzErr = err
					return
				}
				fuzzGuests[lang+"/"+plugin] = g
			}
		}
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzGuests
}

// checkActions checks the structure of an enrich result frame for n events.
func checkActions(res []byte, n int) error {
	for i := 0; i < n; i++ {
		if len(res) < 4 {
			return errors.New("action truncated")
		}
		op, nops := res[0], int(binary.LittleEndian.Uint16(res[2:]))
		res = res[4:]
		if op > 2 || (op != 2 && nops != 0) || (op == 2 && (nops == 0 || nops > 64)) {
			return errors.New("bad action header")
		}
		for j := 0; j < nops; j++ {
			if len(res) < 8 {
				return errors.New("patch truncated")
			}
			kl, vl := int(binary.LittleEndian.Uint16(res[2:])), int(binary.LittleEndian.Uint32(res[4:]))
			if res[0] < 1 || res[0] > 4 || res[1] < 1 || res[1] > 2 || len(res)-8 < kl+vl {
				return errors.New("bad patch")
			}
			res = res[8+kl+vl:]
		}
	}
	if len(res) != 0 {
		return errors.New("trailing bytes")
	}
	return nil
}

// FuzzGuestBatches: whatever bytes and event count a guest is given, every
// SDK either refuses the batch with -2 or returns a well-formed result
// frame; it never traps, and it keeps working.
func FuzzGuestBatches(f *testing.F) {
	f.Add(encodeBatch(nil, benchEvents(3)), uint8(3))
	f.Add(append(rawRecord("python.call.stop", intField("duration", 5)), 1, 2, 3), uint8(1))
	f.Add(rawRecord("x", appendField(nil, 2, "duration", make([]byte, 8)), appendField(nil, 5, "pid", []byte("1"))), uint8(1))
	f.Add([]byte{}, uint8(0))
	// past the 8 fields the lazy SDKs visit without a loop
	many := [][]byte{}
	for i := 0; i < 11; i++ {
		many = append(many, intField("durat"+string(rune('a'+i))+"xx", int64(i)))
	}
	f.Add(rawRecord("python.call.stop", append(many, intField("duration", 5))...), uint8(1))
	f.Fuzz(func(t *testing.T, batch []byte, n8 uint8) {
		if len(batch) > 1<<16 {
			return
		}
		n := int(n8 % 80)
		for name, g := range loadFuzzGuests(t) {
			fn := g.filter
			if fn == nil {
				fn = g.enrich
			}
			res, err := g.callRaw(fn, n, batch)
			var code errCode
			switch {
			case errors.As(err, &code):
				if code != -2 {
					t.Fatalf("%s: guest code %d, want -2 or a result", name, code)
				}
			case err != nil:
				t.Fatalf("%s: %v", name, err)
			case g.filter != nil:
				if len(res) != n {
					t.Fatalf("%s: %d verdicts for %d events", name, len(res), n)
				}
				for _, v := range res {
					if v > 1 {
						t.Fatalf("%s: verdict %d", name, v)
					}
				}
			default:
				if err := checkActions(res, n); err != nil {
					t.Fatalf("%s: %v: %v", name, err, res)
				}
			}
		}
	})
}
