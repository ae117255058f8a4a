package examples_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestCLookups: the C SDK's field lookups compare whole keys, for each way
// it compares them: a literal key of up to 8 bytes (one masked word), 9 to
// 16 bytes (two words), longer (bytes), and a key only known at run time.
// Before each real field the record has decoys a wrong compare would take:
// the same key length differing in the first or the last byte, a prefix,
// and the same key as metadata (not a measurement). The plugin keeps an
// event when every lookup finds the real field (value = key length).
func TestCLookups(t *testing.T) {
	keys := []string{"a", "cpu", "cpu_tim", "duration", "duration1", "durations_ms_ab", "durations_ms_abc", "durations_ms_abcd"}
	flip := func(k string, i int) string {
		b := []byte(k)
		b[i] ^= 0x20
		return string(b)
	}
	record := func(missing, rtKey string) []byte {
		var fields [][]byte
		for _, k := range append(keys, rtKey) {
			fields = append(fields, intField(flip(k, 0), 999), intField(flip(k, len(k)-1), 999),
				appendField(nil, 4, k, binary.LittleEndian.AppendUint64(nil, uint64(len(k)))))
			if len(k) > 1 {
				fields = append(fields, intField(k[:len(k)-1], int64(len(k))))
			}
			if k != missing {
				fields = append(fields, intField(k, int64(len(k))))
			}
		}
		return rawRecord("e", fields...)
	}
	ctx := context.Background()
	for _, rtKey := range []string{"w", "runtime", "run_time", "a_runtime_key_longer_than_16"} {
		g, err := loadGuest(ctx, "c/testdata/lookups.wasm", map[string]string{"key": rtKey})
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			missing string
			keep    byte
		}{{"", 1}, {rtKey, 0}}
		for _, k := range keys {
			cases = append(cases, struct {
				missing string
				keep    byte
			}{k, 0})
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("key=%s/missing=%q", rtKey, c.missing), func(t *testing.T) {
				res, err := g.callRaw(g.filter, 1, record(c.missing, rtKey))
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != 1 || res[0] != c.keep {
					t.Fatalf("verdicts %v, want [%d]", res, c.keep)
				}
			})
		}
		g.close()
	}
}
