package catalog

import (
	"math"
	"unicode/utf8"
	"unsafe"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Check validates and sanitizes ev in place, as ingest does for every
// worker event. The caller must own ev's Measurements and Metadata backing
// arrays (fresh from decode): Check rewrites their elements and shrinks the
// slices. It never allocates for a clean event.
//
// Rejects (a *RejectError; the event must be dropped and counted):
//   - name empty, longer than max_name_bytes, or not a dotted lower-case
//     name: bad_name; well formed but not in the catalog: unknown_event;
//   - sample rate not 0 (= 1) and not in (0, 1]: bad_sample_rate;
//   - more than max_measurements measurements: too_many_measurements;
//   - a measurement key not declared for the event: unknown_measurement;
//   - a value of the wrong kind: bad_value_type; no value: unset_value;
//     NaN or ±Inf: non_finite.
//
// Repairs (counted in Fixes; the event is accepted):
//   - ev.Name becomes the catalog's interned string, measurement keys too;
//     SampleRate 0 becomes 1;
//   - duplicate keys (measurements and metadata): the last value wins, at
//     the first occurrence's position;
//   - metadata with a reserved host key is removed (the host's value wins);
//     keys longer than max_key_bytes, empty, or with invalid UTF-8 or
//     control characters are dropped; keys beyond max_metadata_keys
//     (distinct, after the drops above) are dropped;
//   - metadata values, string measurements and the correlation id: each run
//     of invalid UTF-8 becomes U+FFFD; \t, \n and \r become a space, other
//     control characters (C0, DEL, C1) are removed; a string still longer
//     than its limit is cut at a UTF-8 boundary and ends in "…", the result
//     being at most the limit.
//
// Fixes counts each repaired string or dropped key once per kind, not per
// character.
func (c *Catalog) Check(ev *pipeline.Event) (Fixes, error) {
	var fx Fixes
	name := ev.Name
	if len(name) > c.limits.MaxNameBytes {
		// Keep the error small: only the first max_name_bytes bytes.
		return fx, reject(ReasonBadName, name[:c.limits.MaxNameBytes], "")
	}
	d := c.byAddress(name) // ingest hands over names already interned
	if d == nil {
		var ok bool
		if d, ok = c.events[name]; !ok {
			// Every catalog name is valid, so the charset check is only
			// needed to tell a bad name from an unknown one.
			if !ValidName(name) {
				return fx, reject(ReasonBadName, name, "")
			}
			return fx, reject(ReasonUnknownEvent, name, "")
		}
		// Stores of string headers are write barriers while the GC marks:
		// only the ones that change anything are done, here and below.
		ev.Name = d.Name
	}
	if d.hostOnly {
		// snakepipe.* events report what the host saw; a worker's copy
		// would pass for one (a fake plugin failure, a fake reload).
		return fx, reject(ReasonHostEvent, d.Name, "")
	}

	switch sr := ev.SampleRate; {
	case sr == 0:
		ev.SampleRate = 1
	case sr > 0 && sr <= 1:
	default: // also NaN
		return fx, reject(ReasonBadSampleRate, d.Name, "")
	}

	if err := c.checkMeasurements(d, ev, &fx); err != nil {
		return fx, err
	}
	if len(ev.Metadata) > 0 {
		c.sanitizeMetadata(ev, &fx)
	}
	if cid := ev.CorrelationID; !cleanASCII(cid, c.limits.MaxCorrelationIDBytes) {
		ev.CorrelationID = sanitizeString(cid, c.limits.MaxCorrelationIDBytes, &fx, FixCorrelationIDTruncated)
	}
	return fx, nil
}

func (c *Catalog) checkMeasurements(d *eventDef, ev *pipeline.Event, fx *Fixes) error {
	ms := ev.Measurements
	if len(ms) > c.limits.MaxMeasurements {
		return reject(ReasonTooManyMeasurements, d.Name, "")
	}
	w := 0
	for i := range ms {
		m := &ms[i]
		k, ok := d.key(m.Key)
		if !ok {
			return reject(ReasonUnknownMeasurement, d.Name, m.Key)
		}
		if r := checkValue(d.types[k], m.Value); r != 0 {
			return reject(r, d.Name, m.Key)
		}
		key := d.keys[k]
		if m.Value.Kind == pipeline.KindString {
			m.Value.Str = sanitizeString(m.Value.Str, c.limits.MaxValueBytes, fx, FixValueTruncated)
		}
		dup := -1
		for j := 0; j < w; j++ {
			if ms[j].Key == key {
				dup = j
				break
			}
		}
		if dup >= 0 {
			ms[dup].Value = m.Value
			fx.add(FixDuplicateKey, 1)
			continue
		}
		// Write only what changes: the interned key, and the element itself
		// only when an earlier duplicate shifted it.
		if w != i {
			ms[w].Value = m.Value
		}
		ms[w].Key = key
		w++
	}
	if w < len(ms) {
		clear(ms[w:])
		ev.Measurements = ms[:w]
	}
	return nil
}

// checkValue returns the reject reason for v under type t, or 0.
func checkValue(t Type, v pipeline.Value) Reason {
	if v.Kind == pipeline.KindInvalid {
		return ReasonUnsetValue
	}
	if !t.Accepts(v.Kind) {
		return ReasonBadValueType
	}
	if v.Kind == pipeline.KindFloat && (math.IsNaN(v.Float) || math.IsInf(v.Float, 0)) {
		return ReasonNonFinite
	}
	return 0
}

// dupMapThreshold: once this many metadata keys are kept, duplicates are
// found through a map instead of a linear scan (bounds the work of events
// with thousands of keys).
const dupMapThreshold = 16

func (c *Catalog) sanitizeMetadata(ev *pipeline.Event, fx *Fixes) {
	md := ev.Metadata
	maxKeys, maxKey, maxVal := c.limits.MaxMetadataKeys, c.limits.MaxKeyBytes, c.limits.MaxValueBytes
	if cleanLabels(md, maxKeys, maxKey, maxVal) {
		return // nothing to repair (the usual case)
	}
	c.sanitizeMetadataRules(ev, fx)
}

// sanitizeMetadataRules applies the metadata rules one label at a time.
func (c *Catalog) sanitizeMetadataRules(ev *pipeline.Event, fx *Fixes) {
	md := ev.Metadata
	maxKeys, maxKey, maxVal := c.limits.MaxMetadataKeys, c.limits.MaxKeyBytes, c.limits.MaxValueBytes
	var seen map[string]int // kept key -> index, built lazily
	w := 0
	for i := range md {
		l := &md[i]
		switch {
		case pipeline.IsHostKey(l.Key):
			fx.add(FixReservedKey, 1)
			continue
		case len(l.Key) > maxKey:
			fx.add(FixKeyTooLong, 1)
			continue
		case !validKey(l.Key):
			fx.add(FixBadKey, 1)
			continue
		}
		dup := -1
		if seen != nil {
			if j, ok := seen[l.Key]; ok {
				dup = j
			}
		} else {
			for j := 0; j < w; j++ {
				if md[j].Key == l.Key {
					dup = j
					break
				}
			}
		}
		if dup < 0 && w >= maxKeys {
			fx.add(FixKeyLimit, 1)
			continue
		}
		v, changed := l.Value, false
		if !cleanASCII(v, maxVal) {
			v, changed = sanitizeString(v, maxVal, fx, FixValueTruncated), true
		}
		if dup >= 0 {
			md[dup].Value = v
			fx.add(FixDuplicateKey, 1)
			continue
		}
		// Write only what changes (the clean path writes nothing).
		if w != i {
			md[w] = pipeline.Label{Key: l.Key, Value: v}
		} else if changed {
			md[w].Value = v
		}
		w++
		if seen == nil && w >= dupMapThreshold && len(md)-i > 1 {
			seen = make(map[string]int, maxKeys)
			for j := 0; j < w; j++ {
				seen[md[j].Key] = j
			}
		} else if seen != nil {
			seen[l.Key] = w - 1
		}
	}
	if w < len(md) {
		// Clear the dropped tail so it no longer pins the decoded strings.
		clear(md[w:])
		ev.Metadata = md[:w]
	}
}

// cleanLabelsMax is the most labels cleanLabels looks at: its duplicate
// check is quadratic.
const cleanLabelsMax = 8

// cleanLabels reports whether sanitizeMetadata would leave md as it is: at
// most maxKeys (and cleanLabelsMax) labels, no reserved or duplicate key,
// keys of 1 to maxKey and values of at most maxVal printable ASCII bytes.
// It is the same verdict in one tight pass; false sends md through the
// full rules.
func cleanLabels(md []pipeline.Label, maxKeys, maxKey, maxVal int) bool {
	if len(md) > maxKeys || len(md) > cleanLabelsMax {
		return false
	}
	for i := range md {
		k, v := md[i].Key, md[i].Value
		if len(k) == 0 || len(k) > maxKey || len(v) > maxVal || pipeline.IsHostKey(k) ||
			!printableASCII(k) || !printableASCII(v) {
			return false
		}
		for j := 0; j < i; j++ {
			if md[j].Key == k {
				return false
			}
		}
	}
	return true
}

// printableASCII reports whether s is all printable ASCII (0x20-0x7e). Up
// to 16 bytes (keys and most values) it tests at most two 8-byte words,
// overlapping, instead of looping over bytes.
func printableASCII(s string) bool {
	n := len(s)
	var w uint64
	switch {
	case n > 16:
		return printablePrefix(s, n) == n
	case n >= 8:
		if !printable8(load64(s, 0)) {
			return false
		}
		w = load64(s, n-8)
	case n >= 4:
		w = uint64(load32(s, 0)) | uint64(load32(s, n-4))<<32
	case n > 0:
		// Bytes 3-7 are spaces: printable.
		w = uint64(s[0]) | uint64(s[n/2])<<8 | uint64(s[n-1])<<16 | 0x2020202020<<24
	default:
		return true
	}
	return printable8(w)
}

// validKey reports whether a metadata key is non-empty, valid UTF-8 and free
// of control characters. It does not check the length.
func validKey(k string) bool {
	if k == "" {
		return false
	}
	return printableASCII(k) || cleanText(k)
}

// cleanASCII reports whether s is printable ASCII of at most limit bytes,
// which sanitizeString would return unchanged.
func cleanASCII(s string, limit int) bool {
	return len(s) <= limit && printableASCII(s)
}

// printablePrefix returns the index of the first byte of s[:stop] that is
// not printable ASCII (0x20-0x7e), or stop. It tests 8 bytes at a time:
// metadata values and correlation ids are short, nearly always clean text.
func printablePrefix(s string, stop int) int {
	i := 0
	for ; i+8 <= stop; i += 8 {
		if !printable8(load64(s, i)) {
			break
		}
	}
	for ; i < stop; i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f {
			return i
		}
	}
	return stop
}

// printable8 reports whether all 8 bytes of w are in 0x20-0x7e. A byte
// below 0x20 borrows into its top bit when 0x20 is subtracted (and did
// not have it set); a byte of 0x7f or more has its top bit set after adding
// 1, or before. A borrow or carry crossing into the next byte can only
// happen once a lower byte has already failed, so the answer is exact.
func printable8(w uint64) bool {
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	below := (w - 0x20*ones) &^ w
	above := (w + ones) | w
	return (below|above)&tops == 0
}

// load32 reads s[i:i+4] little-endian.
func load32(s string, i int) uint32 {
	s = s[i : i+4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// load64 reads s[i:i+8] little-endian (the compiler makes it one load).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// sanitizeString returns s repaired (invalid UTF-8 -> U+FFFD per run,
// \t\n\r -> space, other control characters removed) and cut to at most
// limit bytes with a trailing "…". It allocates only when s changes, and
// reads at most about limit bytes of s when s is clean up to there.
func sanitizeString(s string, limit int, fx *Fixes, truncFix Fix) string {
	// Only the first limit+1 clean bytes matter: if they are all clean the
	// result is s itself or s cut.
	stop := min(len(s), limit+1)
	// Fast path: printable ASCII.
	i := printablePrefix(s, stop)
	// Then valid UTF-8 without control characters.
	if i < stop {
		i = firstDirty(s, i, stop)
	}
	if i >= stop {
		if len(s) <= limit {
			return s
		}
		fx.add(truncFix, 1)
		return truncate(s, limit)
	}
	return repair(s, i, limit, fx, truncFix)
}

// firstDirty returns the index of the first invalid UTF-8 byte or control
// character in s at or after i, or a value >= stop if there is none before
// stop.
func firstDirty(s string, i, stop int) int {
	for i < stop {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 || b == 0x7f {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || isControl(r) {
			return i
		}
		i += size
	}
	return i
}

const (
	ellipsis        = "…"
	replacementChar = "\uFFFD"
)

// truncate cuts clean s to at most limit bytes including the ellipsis, at a
// rune boundary.
func truncate(s string, limit int) string {
	cut := limit - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// repair builds the sanitized copy of s, whose first p bytes are clean.
// It stops reading s once the output is past limit.
func repair(s string, p, limit int, fx *Fixes, truncFix Fix) string {
	out := make([]byte, 0, min(len(s), limit+utf8.UTFMax))
	out = append(out, s[:p]...)
	var badUTF8, ctrl, inBadRun bool
	for i := p; i < len(s) && len(out) <= limit; {
		// Copy a run of printable ASCII at once, no more than needed to
		// know whether the result is over the limit.
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f {
			j++
		}
		if j > i {
			n := min(j-i, limit+1-len(out))
			out = append(out, s[i:i+n]...)
			i += n
			inBadRun = false
			continue
		}
		b := s[i]
		if b < utf8.RuneSelf { // a C0 control or DEL
			if b == '\t' || b == '\n' || b == '\r' {
				out = append(out, ' ')
			}
			ctrl, inBadRun = true, false
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			badUTF8 = true
			if !inBadRun {
				out = append(out, replacementChar...)
			}
			inBadRun = true
		case isControl(r):
			ctrl, inBadRun = true, false
		default:
			out = append(out, s[i:i+size]...)
			inBadRun = false
		}
		i += size
	}
	if badUTF8 {
		fx.add(FixInvalidUTF8, 1)
	}
	if ctrl {
		fx.add(FixControlChars, 1)
	}
	if len(out) > limit {
		fx.add(truncFix, 1)
		cut := limit - len(ellipsis)
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = append(out[:cut], ellipsis...)
	}
	if len(out) == 0 {
		return ""
	}
	// out is never written again: share its bytes, as strings.Builder does.
	return unsafe.String(&out[0], len(out))
}
