package ingest

import (
	"github.com/snakepipe/snakepipe/pipeline"
)

// Checker validates and sanitizes events on arrival. *catalog.Catalog
// implements it.
//
// Check validates ev against the catalog and sanitizes it in place (it may
// replace ev's Measurements/Metadata slices and sets ev.Name to the
// catalog's interned name). It returns the repairs made, or an error for a
// rejected event from which rejectReason takes a stable snake_case reason.
// LookupParts resolves Snakepit-style event_parts to the interned dotted
// name without allocating. Both are called concurrently from every stream.
type Checker interface {
	Check(ev *pipeline.Event) (Fixes, error)
	LookupParts(parts []string) (name string, ok bool)
}
