package catalog

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Config is the `catalog:` section of the config file: user events added to
// the built-in catalog, and the sanitizing limits.
type Config struct {
	// Events are user-defined events, in addition to the built-in ones.
	Events []EventConfig `koanf:"events"`
	// Limits bound what one event may carry.
	Limits Limits `koanf:"limits"`
}

// EventConfig declares one user event.
type EventConfig struct {
	// Name is the dotted event name: lower-case segments of [a-z0-9_]
	// joined by ".", e.g. "inference.batch.done".
	Name string `koanf:"name"`
	// Description is free text for docs and the CLI.
	Description string `koanf:"description"`
	// Measurements declares the allowed measurement keys ([a-z0-9_]+) with
	// their types and units. Events may carry any subset of them.
	Measurements map[string]MeasurementConfig `koanf:"measurements"`
	// Metadata lists the documented metadata keys. Informational only:
	// workers may send other keys too (bounded by the limits).
	Metadata []string `koanf:"metadata"`
}

// MeasurementConfig declares one measurement key.
type MeasurementConfig struct {
	// Type is int, float, number (int or float) or string.
	Type string `koanf:"type"`
	// Unit is free text such as ns, epoch_ns, ms, bytes, count, percent; may
	// be empty.
	Unit string `koanf:"unit"`
}

// Limits bound the size of one event. See docs/catalog.md for what happens
// when an event exceeds them.
type Limits struct {
	// MaxNameBytes: longer event names are rejected (bad_name).
	MaxNameBytes int `koanf:"max_name_bytes"`
	// MaxMetadataKeys: metadata keys beyond this many are dropped.
	MaxMetadataKeys int `koanf:"max_metadata_keys"`
	// MaxKeyBytes: longer metadata keys are dropped.
	MaxKeyBytes int `koanf:"max_key_bytes"`
	// MaxValueBytes: longer metadata values and string measurements are
	// truncated, "…" included.
	MaxValueBytes int `koanf:"max_value_bytes"`
	// MaxMeasurements: events with more measurements are rejected.
	MaxMeasurements int `koanf:"max_measurements"`
	// MaxCorrelationIDBytes: longer correlation ids are truncated, "…"
	// included.
	MaxCorrelationIDBytes int `koanf:"max_correlation_id_bytes"`
}

// Default and hard limits. A limit must be within [min, max].
const (
	DefaultMaxNameBytes          = 128
	DefaultMaxMetadataKeys       = 32
	DefaultMaxKeyBytes           = 64
	DefaultMaxValueBytes         = 1024
	DefaultMaxMeasurements       = 32
	DefaultMaxCorrelationIDBytes = 128

	// HardMaxNameBytes also sizes LookupParts' stack buffer.
	HardMaxNameBytes          = 255
	HardMaxMetadataKeys       = 1024
	HardMaxKeyBytes           = 1024
	HardMaxValueBytes         = 65536
	HardMaxMeasurements       = 1024
	HardMaxCorrelationIDBytes = 1024

	// minTruncBytes is the least max_value_bytes / max_correlation_id_bytes:
	// a truncated string keeps at least a few bytes before the "…".
	minTruncBytes = 16
	maxUnitBytes  = 32
	maxDescBytes  = 1024
)

// DefaultConfig returns no user events and the default limits.
func DefaultConfig() Config {
	return Config{Limits: DefaultLimits()}
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxNameBytes:          DefaultMaxNameBytes,
		MaxMetadataKeys:       DefaultMaxMetadataKeys,
		MaxKeyBytes:           DefaultMaxKeyBytes,
		MaxValueBytes:         DefaultMaxValueBytes,
		MaxMeasurements:       DefaultMaxMeasurements,
		MaxCorrelationIDBytes: DefaultMaxCorrelationIDBytes,
	}
}

// Validate reports every problem at once (errors.Join), each prefixed with
// its key path, e.g.
// `catalog.events[2].measurements.duration.type: "integer" is not one of int, float, number, string`.
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	b, err := builtin()
	if err != nil {
		return err
	}
	c.Limits.validate("catalog.limits", b, add)
	lim := c.Limits.orDefaults()

	seen := make(map[string]int, len(c.Events))
	for i, ev := range c.Events {
		path := "catalog.events[" + strconv.Itoa(i) + "]"
		validateEvent(path, ev, lim, add)
		if ev.Name == "" {
			continue
		}
		if _, ok := b.byName[ev.Name]; ok {
			add(path+".name", "%q is a built-in event and cannot be redefined", ev.Name)
		} else if j, ok := seen[ev.Name]; ok {
			add(path+".name", "%q is already defined by catalog.events[%d]", ev.Name, j)
		} else {
			seen[ev.Name] = i
		}
	}
	return errors.Join(errs...)
}

type addFunc func(path, format string, args ...any)

func (l Limits) validate(path string, b *builtinData, add addFunc) {
	check := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			add(path+"."+key, "%d is out of range [%d, %d]", v, lo, hi)
		}
	}
	check("max_name_bytes", l.MaxNameBytes, 1, HardMaxNameBytes)
	if l.MaxNameBytes > 0 && l.MaxNameBytes < b.longestName {
		add(path+".max_name_bytes", "%d is shorter than built-in event names (the longest has %d bytes)",
			l.MaxNameBytes, b.longestName)
	}
	check("max_metadata_keys", l.MaxMetadataKeys, 1, HardMaxMetadataKeys)
	check("max_key_bytes", l.MaxKeyBytes, 1, HardMaxKeyBytes)
	check("max_value_bytes", l.MaxValueBytes, minTruncBytes, HardMaxValueBytes)
	check("max_measurements", l.MaxMeasurements, 1, HardMaxMeasurements)
	check("max_correlation_id_bytes", l.MaxCorrelationIDBytes, minTruncBytes, HardMaxCorrelationIDBytes)
}

// orDefaults replaces out-of-range limits by the defaults, so that event
// validation still runs (and reports its own problems) when limits are bad.
func (l Limits) orDefaults() Limits {
	d := DefaultLimits()
	fix := func(v *int, def, lo, hi int) {
		if *v < lo || *v > hi {
			*v = def
		}
	}
	fix(&l.MaxNameBytes, d.MaxNameBytes, 1, HardMaxNameBytes)
	fix(&l.MaxMetadataKeys, d.MaxMetadataKeys, 1, HardMaxMetadataKeys)
	fix(&l.MaxKeyBytes, d.MaxKeyBytes, 1, HardMaxKeyBytes)
	fix(&l.MaxValueBytes, d.MaxValueBytes, minTruncBytes, HardMaxValueBytes)
	fix(&l.MaxMeasurements, d.MaxMeasurements, 1, HardMaxMeasurements)
	fix(&l.MaxCorrelationIDBytes, d.MaxCorrelationIDBytes, minTruncBytes, HardMaxCorrelationIDBytes)
	return l
}

// validateEvent checks one event declaration (user or built-in).
func validateEvent(path string, ev EventConfig, lim Limits, add addFunc) {
	switch {
	case ev.Name == "":
		add(path+".name", "is required")
	case len(ev.Name) > lim.MaxNameBytes:
		add(path+".name", "%q is %d bytes, longer than catalog.limits.max_name_bytes (%d)",
			ev.Name, len(ev.Name), lim.MaxNameBytes)
	case !ValidName(ev.Name):
		add(path+".name", "%q is not a dotted name (lower-case segments of [a-z0-9_] joined by \".\")", ev.Name)
	}
	if len(ev.Description) > maxDescBytes || !cleanText(ev.Description) {
		add(path+".description", "must be valid UTF-8 without control characters, at most %d bytes", maxDescBytes)
	}
	if len(ev.Measurements) > lim.MaxMeasurements {
		add(path+".measurements", "declares %d keys, more than catalog.limits.max_measurements (%d)",
			len(ev.Measurements), lim.MaxMeasurements)
	}
	keys := make([]string, 0, len(ev.Measurements))
	for k := range ev.Measurements {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m := ev.Measurements[k]
		mpath := keyPath(path+".measurements", k)
		if !validIdent(k) || len(k) > lim.MaxKeyBytes {
			add(mpath, "key %q must be [a-z0-9_]+ and at most %d bytes", k, lim.MaxKeyBytes)
		}
		if _, err := ParseType(m.Type); err != nil {
			if m.Type == "" {
				add(mpath+".type", "is required (one of %s)", typeList)
			} else {
				add(mpath+".type", "%q is not one of %s", m.Type, typeList)
			}
		}
		if !validUnit(m.Unit) {
			add(mpath+".unit", "%q must be printable ASCII without spaces, at most %d bytes", m.Unit, maxUnitBytes)
		}
	}
	seen := make(map[string]bool, len(ev.Metadata))
	for j, k := range ev.Metadata {
		kpath := path + ".metadata[" + strconv.Itoa(j) + "]"
		switch {
		case k == "" || !cleanText(k):
			add(kpath, "%q must be non-empty valid UTF-8 without control characters", k)
		case len(k) > lim.MaxKeyBytes:
			add(kpath, "%q is longer than catalog.limits.max_key_bytes (%d)", k, lim.MaxKeyBytes)
		case pipeline.IsHostKey(k):
			add(kpath, "%q is a reserved host key (the host adds it to every worker event)", k)
		case seen[k]:
			add(kpath, "%q is listed twice", k)
		}
		seen[k] = true
	}
}

// keyPath appends a map key to a key path: ".key" for identifiers, else
// `["quoted"]`, so that input never garbles an error line.
func keyPath(path, k string) string {
	if validIdent(k) {
		return path + "." + k
	}
	return path + "[" + strconv.Quote(k) + "]"
}

// ValidName reports whether name is a dotted event name: one or more
// segments of [a-z0-9_], joined by single dots. It does not check length.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	seg := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if seg == 0 {
				return false
			}
			seg = 0
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
			seg++
		default:
			return false
		}
	}
	return seg > 0
}

// validIdent reports whether s is a non-empty [a-z0-9_]+ identifier.
func validIdent(s string) bool {
	return s != "" && strings.IndexByte(s, '.') < 0 && ValidName(s)
}

func validUnit(s string) bool {
	if len(s) > maxUnitBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// cleanText reports whether s is valid UTF-8 without control characters
// (C0, DEL, C1).
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if isControl(r) {
			return false
		}
	}
	return true
}

func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f)
}
