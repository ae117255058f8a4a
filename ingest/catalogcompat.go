package ingest

import "errors"

// Until package catalog lands on main, ingest declares the two catalog
// types it needs here. After `git merge main` this file becomes
// `type Fixes = catalog.Fixes` and rejectReason uses *catalog.RejectError.

// Fixes counts repairs made to one event, per kind.
type Fixes struct {
	Kinds  []string
	Counts []int
}

// Each calls fn for every kind with a non-zero count.
func (f Fixes) Each(fn func(kind string, n int)) {
	for i, k := range f.Kinds {
		if f.Counts[i] != 0 {
			fn(k, f.Counts[i])
		}
	}
}

// RejectError is a rejected event's error.
type RejectError struct{ Reason string }

func (e *RejectError) Error() string { return "catalog: " + e.Reason }

// rejectReason returns the snake_case reason of a Check error.
func rejectReason(err error) string {
	if re, ok := errors.AsType[*RejectError](err); ok {
		return re.Reason
	}
	return "other"
}

// knownReasons lists every reason, so counters exist from the start.
func knownReasons() []string { return nil }
