package catalog

import "strconv"

// Fix is one kind of repair Check or SanitizeLabel made to an accepted
// event. Its String is a stable snake_case label for metrics.
type Fix uint8

// The repair kinds. AllFixes() lists them all.
const (
	// FixValueTruncated: a metadata value or string measurement was longer
	// than max_value_bytes and was cut (with a "…" suffix).
	FixValueTruncated Fix = iota
	// FixInvalidUTF8: a string held invalid UTF-8; each run of bad bytes
	// became one U+FFFD.
	FixInvalidUTF8
	// FixControlChars: a string held control characters; \t, \n and \r
	// became spaces and the others were removed.
	FixControlChars
	// FixKeyLimit: a metadata key beyond max_metadata_keys was dropped.
	FixKeyLimit
	// FixReservedKey: a worker-sent host-context key (worker_id, pool,
	// hostname, pid, received_ns) was removed; the host's value wins.
	FixReservedKey
	// FixKeyTooLong: a metadata key longer than max_key_bytes was dropped.
	FixKeyTooLong
	// FixBadKey: an empty metadata key, or one with invalid UTF-8 or control
	// characters, was dropped.
	FixBadKey
	// FixDuplicateKey: a metadata or measurement key appeared again; the last
	// value was kept, at the first occurrence's position.
	FixDuplicateKey
	// FixCorrelationIDTruncated: the correlation id was longer than
	// max_correlation_id_bytes and was cut (with a "…" suffix).
	FixCorrelationIDTruncated
	fixEnd
)

var fixNames = [fixEnd]string{
	FixValueTruncated:         "value_truncated",
	FixInvalidUTF8:            "invalid_utf8",
	FixControlChars:           "control_chars",
	FixKeyLimit:               "key_limit",
	FixReservedKey:            "reserved_key",
	FixKeyTooLong:             "key_too_long",
	FixBadKey:                 "bad_key",
	FixDuplicateKey:           "duplicate_key",
	FixCorrelationIDTruncated: "correlation_id_truncated",
}

// String returns the fix's stable snake_case label ("value_truncated").
func (f Fix) String() string {
	if f < fixEnd {
		return fixNames[f]
	}
	return "fix_" + strconv.Itoa(int(f))
}

// AllFixes lists every fix kind in a stable order, so that callers can
// create one counter per kind up front.
func AllFixes() []Fix {
	out := make([]Fix, 0, fixEnd)
	for f := Fix(0); f < fixEnd; f++ {
		out = append(out, f)
	}
	return out
}

// Fixes counts the repairs made to one event (or label), per kind. The zero
// value means "nothing repaired". It is a small value: pass it by value.
type Fixes struct {
	n [fixEnd]uint32
}

func (f *Fixes) add(k Fix, n int) {
	v := uint64(f.n[k]) + uint64(n)
	if v > 1<<32-1 {
		v = 1<<32 - 1
	}
	f.n[k] = uint32(v)
}

// Any reports whether anything was repaired.
func (f Fixes) Any() bool {
	return f != Fixes{}
}

// Count returns how many repairs of kind k were made.
func (f Fixes) Count(k Fix) int {
	if k >= fixEnd {
		return 0
	}
	return int(f.n[k])
}

// Merge adds o's counts to f (saturating).
func (f *Fixes) Merge(o Fixes) {
	for k := range f.n {
		f.add(Fix(k), int(o.n[k]))
	}
}

// Each calls fn for every kind with a non-zero count, in AllFixes order,
// with the kind's stable label.
func (f Fixes) Each(fn func(kind string, n int)) {
	for k := range f.n {
		if f.n[k] != 0 {
			fn(fixNames[k], int(f.n[k]))
		}
	}
}

// String lists the non-zero counts in AllFixes order
// ("value_truncated=2 invalid_utf8=1"),
// or "none".
func (f Fixes) String() string {
	s := ""
	f.Each(func(kind string, n int) {
		if s != "" {
			s += " "
		}
		s += kind + "=" + strconv.Itoa(n)
	})
	if s == "" {
		return "none"
	}
	return s
}
