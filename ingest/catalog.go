package ingest

import (
	"errors"

	"github.com/snakepipe/snakepipe/catalog"
)

// Fixes is the catalog's count of repairs to one event. The alias makes
// *catalog.Catalog satisfy Checker.
type Fixes = catalog.Fixes

var _ Checker = (*catalog.Catalog)(nil)

// reasonUnknownEvent is the reason whose names RejectNotice lists.
var reasonUnknownEvent = catalog.ReasonUnknownEvent.String()

// rejectReason returns the snake_case reason of a Check error: the
// catalog's stable label, or "other" for an error that is not a
// *catalog.RejectError (a Checker other than the catalog).
func rejectReason(err error) string {
	if re, ok := errors.AsType[*catalog.RejectError](err); ok {
		return re.Reason.String()
	}
	return "other"
}

// knownReasons lists every reject reason, so that each counter exists (at
// zero) from the start.
func knownReasons() []string {
	rs := catalog.Reasons()
	out := make([]string, 0, len(rs)+1)
	for _, r := range rs {
		out = append(out, r.String())
	}
	return append(out, "other")
}
