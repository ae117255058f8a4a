package plugins

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/snakepipe/snakepipe/pipeline"
)

// PatchValidator checks what an enricher wants to write, by the same rules
// the catalog applies to worker input. *catalog.Catalog satisfies it.
//
// CheckMeasurement returns an error if measurement key may not be set to v
// on event (a pipeline event name). SanitizeLabel returns the metadata pair
// as it may be stored (possibly cleaned, e.g. truncated), or an error if it
// must be refused. Both must be safe for concurrent use.
type PatchValidator interface {
	CheckMeasurement(event, key string, v pipeline.Value) error
	SanitizeLabel(key, value string) (k, v string, err error)
}

// ErrPatchRejected is wrapped by errors about a patch that failed
// validation. Such a patch is counted and not applied; it is not a failure
// of the batch.
var ErrPatchRejected = errors.New("plugin patch rejected")

// Basic limits of BasicValidator (mirroring the catalog's defaults).
const (
	basicMaxKey   = 128
	basicMaxValue = 4096
)

// BasicValidator is the PatchValidator used when the stage is given none:
// keys are 1..128 bytes of [A-Za-z0-9_.-], string values valid UTF-8 of at
// most 4 KiB, floats finite, and host-context keys are refused.
type BasicValidator struct{}

// CheckMeasurement implements PatchValidator.
func (BasicValidator) CheckMeasurement(_ string, key string, v pipeline.Value) error {
	if err := basicKey(key); err != nil {
		return err
	}
	switch v.Kind {
	case pipeline.KindFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return fmt.Errorf("%w: measurement %q is not a finite number", ErrPatchRejected, key)
		}
	case pipeline.KindString:
		if err := basicValue(key, v.Str); err != nil {
			return err
		}
	}
	return nil
}

// SanitizeLabel implements PatchValidator.
func (BasicValidator) SanitizeLabel(key, value string) (string, string, error) {
	if err := basicKey(key); err != nil {
		return "", "", err
	}
	if err := basicValue(key, value); err != nil {
		return "", "", err
	}
	return key, value, nil
}

func basicKey(key string) error {
	if key == "" || len(key) > basicMaxKey {
		return fmt.Errorf("%w: key of %d bytes (must be 1..%d)", ErrPatchRejected, len(key), basicMaxKey)
	}
	if pipeline.IsHostKey(key) {
		return fmt.Errorf("%w: key %q is reserved for host context", ErrPatchRejected, key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%w: key %q has byte %#x (allowed: letters, digits, '_', '.', '-')", ErrPatchRejected, key, c)
		}
	}
	return nil
}

func basicValue(key, v string) error {
	if len(v) > basicMaxValue {
		return fmt.Errorf("%w: value of %q is %d bytes (at most %d)", ErrPatchRejected, key, len(v), basicMaxValue)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: value of %q is not valid UTF-8", ErrPatchRejected, key)
	}
	return nil
}

// applyAction applies one decoded patch action to e (copy-on-write: the
// event's slices are replaced, never written through). It validates every
// op first; if any is rejected, e is left unchanged and the error (wrapping
// ErrPatchRejected) is returned.
func applyAction(e *pipeline.Event, a *action, v PatchValidator) error {
	type labelSet struct{ k, v string }
	// Validate everything before changing anything.
	sets := make([]labelSet, len(a.ops))
	vals := make([]pipeline.Value, len(a.ops))
	for i := range a.ops {
		op := &a.ops[i]
		key := string(op.key)
		if op.kind == fieldContext {
			return fmt.Errorf("%w: patch %d writes host-context key %q (read-only)", ErrPatchRejected, i, key)
		}
		if op.opcode == opcodeDelete {
			if pipeline.IsHostKey(key) {
				return fmt.Errorf("%w: patch %d deletes host-context key %q", ErrPatchRejected, i, key)
			}
			continue
		}
		switch op.kind {
		case fieldInt:
			vals[i] = pipeline.IntValue(int64(binary.LittleEndian.Uint64(op.val)))
		case fieldFloat:
			vals[i] = pipeline.FloatValue(math.Float64frombits(binary.LittleEndian.Uint64(op.val)))
		case fieldString:
			vals[i] = pipeline.StringValue(string(op.val))
		case fieldMeta:
			k, val, err := v.SanitizeLabel(key, string(op.val))
			if err != nil {
				return fmt.Errorf("%w: patch %d: metadata %q: %w", ErrPatchRejected, i, key, err)
			}
			sets[i] = labelSet{k, val}
			continue
		}
		if err := v.CheckMeasurement(e.Name, key, vals[i]); err != nil {
			return fmt.Errorf("%w: patch %d: measurement %q: %w", ErrPatchRejected, i, key, err)
		}
	}
	for i := range a.ops {
		op := &a.ops[i]
		switch {
		case op.opcode == opcodeDelete && op.kind == fieldMeta:
			e.DeleteMeta(string(op.key))
		case op.opcode == opcodeDelete:
			e.DeleteMeasurement(string(op.key))
		case op.kind == fieldMeta:
			e.SetMeta(sets[i].k, sets[i].v)
		default:
			e.SetMeasurement(string(op.key), vals[i])
		}
	}
	return nil
}
