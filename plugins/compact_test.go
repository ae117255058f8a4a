package plugins

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/snakepipe/snakepipe/pipeline"
)

// refCompact is the plain per-event loop compact must agree with.
func refCompact(ev []pipeline.Event, verd []byte, pend []pipeline.Event, onError string) (kept []pipeline.Event, res runResult) {
	pi := 0
	for i := range ev {
		switch verd[i] {
		case vKeep:
			kept = append(kept, ev[i])
		case vPatched:
			kept = append(kept, pend[pi])
			pi++
			res.patched++
		case vDrop:
			res.dropped++
		case vOversize:
			res.oversize++
			switch onError {
			case OnErrorPass:
				kept = append(kept, ev[i])
			case OnErrorDeadLetter:
				res.dead = append(res.dead, ev[i])
			}
		}
	}
	return kept, res
}

func seqs(evs []pipeline.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i := range evs {
		out[i] = evs[i].Seq
	}
	return out
}

func checkCompact(t *testing.T, verd []byte, onError string) {
	t.Helper()
	n := len(verd)
	ev := make([]pipeline.Event, n, n+3)
	var pend []pipeline.Event
	for i := range ev {
		ev[i] = pipeline.Event{Name: "e", Seq: uint64(i)}
		if verd[i] == vPatched {
			pend = append(pend, pipeline.Event{Name: "patched", Seq: uint64(1000 + i)})
		}
	}
	wantKept, wantRes := refCompact(slices.Clone(ev), verd, pend, onError)
	var res runResult
	got := compact(ev, slices.Clone(verd), pend, onError, &res)
	if !slices.Equal(seqs(got), seqs(wantKept)) || res.dropped != wantRes.dropped || res.patched != wantRes.patched ||
		res.oversize != wantRes.oversize || !slices.Equal(seqs(res.dead), seqs(wantRes.dead)) {
		t.Fatalf("verdicts %v on_error %s:\n got %v %+v\nwant %v %+v", verd, onError, seqs(got), res, seqs(wantKept), wantRes)
	}
	for i := len(got); i < n; i++ { // the tail is cleared for the GC
		if ev[:n][i].Name != "" {
			t.Fatalf("event %d past the kept ones not cleared", i)
		}
	}
}

func TestCompactMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, onError := range []string{OnErrorPass, OnErrorDrop, OnErrorDeadLetter} {
		for n := 0; n <= 40; n++ {
			for trial := range 30 {
				verd := make([]byte, n)
				for i := range verd {
					switch trial % 5 {
					case 0: // filter: keep or drop
						verd[i] = byte(r.IntN(2))
					case 1: // mostly keep, runs of 8 keeps
						verd[i] = byte(min(1, r.IntN(10)))
					case 2: // mostly drop
						verd[i] = byte(r.IntN(10) / 9)
					default: // any verdict
						verd[i] = byte(r.IntN(4))
					}
				}
				t.Run(fmt.Sprint(onError, n, trial), func(t *testing.T) { checkCompact(t, verd, onError) })
			}
		}
	}
}

func FuzzCompact(f *testing.F) {
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 2, 3}, uint8(0))
	f.Fuzz(func(t *testing.T, verd []byte, mode uint8) {
		for i := range verd {
			verd[i] %= 4
		}
		checkCompact(t, verd, []string{OnErrorPass, OnErrorDrop, OnErrorDeadLetter}[mode%3])
	})
}
