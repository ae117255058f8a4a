// Package catalog is snakepipe's event catalog: the known event names with
// their measurement keys, types and units (Snakepit's 47 events, snakepipe's
// own, and user events from the config file), name validation, and the
// sanitizer that every worker event passes through at ingest.
//
// It is pure: no I/O besides the embedded built-in catalog (builtin.yaml),
// no goroutines, no protobuf. A *Catalog is immutable and safe for
// concurrent use. The rules are documented in docs/catalog.md.
package catalog

import (
	"fmt"
	"sort"
	"strings"
	"unsafe"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Type is the declared type of a measurement key.
type Type uint8

// The measurement types.
const (
	TypeInt    Type = iota + 1 // int64 only
	TypeFloat                  // float64 only
	TypeNumber                 // int64 or float64
	TypeString                 // string only
)

const typeList = "int, float, number, string"

// String returns the config spelling ("int", "float", "number", "string").
func (t Type) String() string {
	switch t {
	case TypeInt:
		return "int"
	case TypeFloat:
		return "float"
	case TypeNumber:
		return "number"
	case TypeString:
		return "string"
	}
	return "invalid"
}

// ParseType parses a config type name.
func ParseType(s string) (Type, error) {
	switch s {
	case "int":
		return TypeInt, nil
	case "float":
		return TypeFloat, nil
	case "number":
		return TypeNumber, nil
	case "string":
		return TypeString, nil
	}
	return 0, fmt.Errorf("catalog: %q is not one of %s", s, typeList)
}

// Accepts reports whether a value of kind k may be stored under type t.
func (t Type) Accepts(k pipeline.ValueKind) bool {
	switch t {
	case TypeInt:
		return k == pipeline.KindInt
	case TypeFloat:
		return k == pipeline.KindFloat
	case TypeNumber:
		return k == pipeline.KindInt || k == pipeline.KindFloat
	case TypeString:
		return k == pipeline.KindString
	}
	return false
}

// MeasurementDef declares one measurement key of an event.
type MeasurementDef struct {
	Key  string
	Type Type
	// Unit is "ns", "epoch_ns", "ms", "bytes", "count", "percent", a user
	// unit, or "" for identifiers and ordinals.
	Unit string
}

// EventDef is one catalog entry.
type EventDef struct {
	// Name is the interned dotted name.
	Name string
	// Layer is the built-in layer id ("legacy", "infrastructure", "python",
	// "grpc", "snakepipe") or LayerUser.
	Layer       string
	Description string
	// Measurements are the allowed keys, sorted by key.
	Measurements []MeasurementDef
	// Metadata are the documented metadata keys (informational).
	Metadata []string
}

// Measurement returns the declaration of key.
func (d *EventDef) Measurement(key string) (MeasurementDef, bool) {
	for _, m := range d.Measurements {
		if m.Key == key {
			return m, true
		}
	}
	return MeasurementDef{}, false
}

func (d *EventDef) clone() EventDef {
	c := *d
	c.Measurements = append([]MeasurementDef(nil), d.Measurements...)
	c.Metadata = append([]string(nil), d.Metadata...)
	return c
}

// eventDef is the internal form, with a fast key index.
type eventDef struct {
	EventDef
	// keys and types mirror Measurements for a tight linear scan.
	keys  []string
	types []Type
	// index is set when there are many keys.
	index map[string]int
	// hostOnly: an event of LayerHost, which workers may not send.
	hostOnly bool
}

// indexThreshold: events with more measurement keys than this get a map.
const indexThreshold = 8

func (d *eventDef) key(k string) (int, bool) {
	if d.index != nil {
		i, ok := d.index[k]
		return i, ok
	}
	for i, dk := range d.keys {
		if dk == k {
			return i, true
		}
	}
	return -1, false
}

// Catalog is the set of known events plus the sanitizing limits. It is
// immutable after New and safe for concurrent use.
type Catalog struct {
	events map[string]*eventDef
	sorted []*eventDef
	layers []Layer
	limits Limits
	// names holds every event name back to back; each eventDef's Name is a
	// slice of it, and nameAt maps an offset in it to the index in sorted
	// of the event whose name starts there (-1 elsewhere). Check finds the
	// event of a name it handed out itself (LookupParts, ingest's decoder)
	// by address, without hashing (see byAddress).
	names  string
	nameAt []int32
}

// New builds the catalog from the built-in events and cfg's user events. It
// validates cfg first and returns all of its problems.
func New(cfg Config) (*Catalog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, err := builtin()
	if err != nil {
		return nil, err
	}
	c := &Catalog{
		events: make(map[string]*eventDef, len(b.events)+len(cfg.Events)),
		layers: append([]Layer(nil), b.layers...),
		limits: cfg.Limits,
	}
	for i, ev := range b.events {
		c.add(ev, b.layerOf[i])
	}
	for _, ev := range cfg.Events {
		c.add(ev, LayerUser)
	}
	if len(cfg.Events) > 0 {
		c.layers = append(c.layers, Layer{ID: LayerUser, Title: "User events", Description: "Declared in catalog.events."})
	}
	sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].Name < c.sorted[j].Name })
	c.internNames()
	return c, nil
}

// internNames moves every event name into one string (c.names) and indexes
// where each starts.
func (c *Catalog) internNames() {
	var b strings.Builder
	for _, d := range c.sorted {
		b.WriteString(d.Name)
	}
	c.names = b.String()
	c.nameAt = make([]int32, len(c.names))
	for i := range c.nameAt {
		c.nameAt[i] = -1
	}
	off := 0
	for i, d := range c.sorted {
		n := len(d.Name)
		delete(c.events, d.Name)
		d.Name = c.names[off : off+n]
		c.events[d.Name] = d
		c.nameAt[off] = int32(i)
		off += n
	}
}

// byAddress returns the event whose interned Name is name itself (same
// bytes in memory, not merely equal), or nil. Comparing addresses is sound:
// c.names is immutable and lives as long as c.
func (c *Catalog) byAddress(name string) *eventDef {
	if len(name) == 0 || len(c.names) == 0 {
		return nil
	}
	off := uintptr(unsafe.Pointer(unsafe.StringData(name))) - uintptr(unsafe.Pointer(unsafe.StringData(c.names)))
	if off >= uintptr(len(c.nameAt)) {
		return nil
	}
	i := c.nameAt[off]
	if i < 0 {
		return nil
	}
	if d := c.sorted[i]; len(d.Name) == len(name) {
		return d
	}
	return nil
}

// MustNew is New for static configs (tests, examples); it panics on error.
func MustNew(cfg Config) *Catalog {
	c, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return c
}

// add inserts an already validated declaration.
func (c *Catalog) add(ev EventConfig, layer string) {
	d := &eventDef{EventDef: EventDef{
		Name:        strings.Clone(ev.Name),
		Layer:       layer,
		Description: ev.Description,
		Metadata:    append([]string(nil), ev.Metadata...),
	}, hostOnly: layer == LayerHost}
	for k, m := range ev.Measurements {
		t, _ := ParseType(m.Type) // validated
		d.Measurements = append(d.Measurements, MeasurementDef{Key: strings.Clone(k), Type: t, Unit: m.Unit})
	}
	sort.Slice(d.Measurements, func(i, j int) bool { return d.Measurements[i].Key < d.Measurements[j].Key })
	for _, m := range d.Measurements {
		d.keys = append(d.keys, m.Key)
		d.types = append(d.types, m.Type)
	}
	if len(d.keys) > indexThreshold {
		d.index = make(map[string]int, len(d.keys))
		for i, k := range d.keys {
			d.index[k] = i
		}
	}
	c.events[d.Name] = d
	c.sorted = append(c.sorted, d)
}

// Lookup returns the event named name (exact match). The returned EventDef
// belongs to the catalog: read it, never modify it.
func (c *Catalog) Lookup(name string) (*EventDef, bool) {
	d, ok := c.events[name]
	if !ok {
		return nil, false
	}
	return &d.EventDef, true
}

// LookupParts resolves Snakepit-style event_parts (["python","call","stop"])
// to the catalog's interned dotted name without allocating. It is exactly
// Lookup(strings.Join(parts, ".")): when it fails, a caller that needs the
// reason can join the parts and call Check, which reports bad_name or
// unknown_event consistently (empty parts make a bad name).
func (c *Catalog) LookupParts(parts []string) (name string, ok bool) {
	if len(parts) == 1 {
		// A whole name (ingest resolves the name field this way).
		d, ok := c.events[parts[0]]
		if !ok {
			return "", false
		}
		return d.Name, true
	}
	var buf [HardMaxNameBytes]byte
	n := 0
	for i, p := range parts {
		if i > 0 {
			if n == len(buf) {
				return "", false
			}
			buf[n] = '.'
			n++
		}
		if len(p) > len(buf)-n {
			return "", false
		}
		n += copy(buf[n:], p)
	}
	d, ok := c.events[string(buf[:n])] // no allocation: map index by converted bytes
	if !ok {
		return "", false
	}
	return d.Name, true
}

// Events returns a copy of every event, sorted by name.
func (c *Catalog) Events() []EventDef {
	out := make([]EventDef, len(c.sorted))
	for i, d := range c.sorted {
		out[i] = d.clone()
	}
	return out
}

// Layers returns the layers in docs order: the built-in ones, then "user"
// if the config declared events.
func (c *Catalog) Layers() []Layer {
	return append([]Layer(nil), c.layers...)
}

// Limits returns the limits in force (the Wasm host needs MaxMetadataKeys
// when a plugin adds labels).
func (c *Catalog) Limits() Limits { return c.limits }

// CheckMeasurement validates a measurement a plugin wants to set on an
// event: the event and key must be declared, the value of the declared type
// and finite; a string value must already be clean (valid UTF-8, no control
// characters, at most max_value_bytes). It returns a *RejectError.
func (c *Catalog) CheckMeasurement(event, key string, v pipeline.Value) error {
	d, ok := c.events[event]
	if !ok {
		if !ValidName(event) || len(event) > c.limits.MaxNameBytes {
			return reject(ReasonBadName, event, "")
		}
		return reject(ReasonUnknownEvent, event, "")
	}
	i, ok := d.key(key)
	if !ok {
		return reject(ReasonUnknownMeasurement, d.Name, key)
	}
	if r := checkValue(d.types[i], v); r != 0 {
		return reject(r, d.Name, key)
	}
	if v.Kind == pipeline.KindString && (len(v.Str) > c.limits.MaxValueBytes || !cleanText(v.Str)) {
		return reject(ReasonBadString, d.Name, key)
	}
	return nil
}

// SanitizeLabel applies Check's metadata rules to one label a plugin wants
// to set. Keys are not repaired: a reserved host key (ErrReservedKey), a key
// longer than max_key_bytes (ErrKeyTooLong) or an empty / invalid key
// (ErrBadKey) is an error. The value is repaired like a worker's (invalid
// UTF-8, control characters, truncation) and fixes says how. The key count
// limit is the caller's to enforce (Limits().MaxMetadataKeys).
func (c *Catalog) SanitizeLabel(key, value string) (k, v string, fixes Fixes, err error) {
	switch {
	case pipeline.IsHostKey(key):
		return "", "", fixes, reject(ReasonReservedKey, "", key)
	case len(key) > c.limits.MaxKeyBytes:
		return "", "", fixes, reject(ReasonKeyTooLong, "", key)
	case !validKey(key):
		return "", "", fixes, reject(ReasonBadKey, "", key)
	}
	v = sanitizeString(value, c.limits.MaxValueBytes, &fixes, FixValueTruncated)
	return key, v, fixes, nil
}
