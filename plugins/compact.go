package plugins

import (
	"encoding/binary"
	"math/bits"

	"github.com/snakepipe/snakepipe/pipeline"
)

// allKeep is 8 keep verdicts read as one little-endian uint64.
const allKeep = 0x0101010101010101

// compact applies verd (one verdict per event of ev) in place: kept
// events move down over dropped ones, patched events come from pend in
// order, oversize events follow onError. It returns the events that stay
// and counts the rest in res. The tail that is no longer part of the
// batch is cleared, so the dropped events' strings can be collected.
//
// Filters give only keep and drop verdicts, so the verdicts are read 8 at
// a time: a leading run of keeps stays where it is, a group of 8 keep or
// drop verdicts is moved without a per-event switch.
func compact(ev []pipeline.Event, verd []byte, pend []pipeline.Event, onError string, res *runResult) []pipeline.Event {
	le := binary.LittleEndian
	n := len(ev)
	verd = verd[:n]
	i := 0
	for i+8 <= n && le.Uint64(verd[i:]) == allKeep {
		i += 8
	}
	for i < n && verd[i] == vKeep {
		i++
	}
	k := i // ev[:k] are the events that stay, so far
	pi := 0
	for i < n {
		if i+8 <= n {
			if w := le.Uint64(verd[i:]); w&^allKeep == 0 { // keeps and drops only
				kept := bits.OnesCount64(w)
				res.dropped += 8 - kept
				if kept == 8 {
					k += copy(ev[k:], ev[i:i+8])
				} else if kept > 0 {
					for j := i; j < i+8; j++ {
						// Branch-free: a dropped event is copied too and
						// overwritten by the next kept one (or cleared).
						ev[k] = ev[j]
						k += int(verd[j])
					}
				}
				i += 8
				continue
			}
		}
		switch verd[i] {
		case vKeep:
			ev[k] = ev[i]
			k++
		case vPatched:
			ev[k] = pend[pi]
			k++
			pi++
			res.patched++
		case vDrop:
			res.dropped++
		case vOversize:
			res.oversize++
			switch onError {
			case OnErrorPass:
				ev[k] = ev[i]
				k++
			case OnErrorDeadLetter:
				res.dead = append(res.dead, ev[i])
			}
		}
		i++
	}
	clear(ev[k:n])
	return ev[:k]
}
