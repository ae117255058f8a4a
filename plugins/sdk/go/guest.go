package snk

import (
	"errors"
	"unsafe"
)

// The guest-side state: the input buffer the host writes batches and the
// config frame into, the result buffer, and the registered callbacks. A Wasm
// instance is single-threaded and the host makes one call at a time.
var (
	inBuf   = make([]byte, 64<<10)
	outBuf  = make([]byte, 0, 64<<10)
	onInit  func(Config) error
	onClose func()
	fields  = AllFields
)

// FieldGroups is a set of the field groups of an event a plugin reads; it
// is what snk_fields answers. The host sends in each record only the fields
// of the declared groups (the name, timestamp and correlation id always),
// which saves it encoding the rest: the fewer groups, the cheaper a batch.
type FieldGroups int32

// The field groups (bits of FieldGroups).
const (
	Measurements FieldGroups = 1 // KindInt, KindFloat, KindString
	Metadata     FieldGroups = 2 // KindMetadata
	HostContext  FieldGroups = 4 // KindHostContext
	AllFields                = Measurements | Metadata | HostContext
)

// DeclareFields declares the field groups the plugin reads, e.g.
// DeclareFields(Measurements): an event then holds no metadata and no host
// context, and lookups of them find nothing (an enricher that is not sent
// metadata cannot see existing metadata). A plugin that never calls it reads
// AllFields. Call it from init() or from the OnInit callback (the host asks
// after snk_init, so the answer may depend on config). A value with a bit
// other than the three groups makes the host refuse the plugin.
func DeclareFields(groups FieldGroups) { fields = groups }

// DeclaredFields implements snk_fields: the groups passed to the last
// DeclareFields, or AllFields.
func DeclaredFields() FieldGroups { return fields }

// OnInit registers fn to receive the plugin config once, before the first
// batch. An error fails the plugin's start (snk_init returns ErrConfig) and
// its text is logged at error level.
func OnInit(fn func(Config) error) { onInit = fn }

// OnClose registers fn to run when the host retires the instance.
func OnClose(fn func()) { onClose = fn }

// InBuf implements snk_in_buf: the address of an input buffer of at least
// min bytes, or 0 when that much cannot be had.
func InBuf(min uint32) uint32 {
	if min > maxBuf {
		return 0
	}
	if int(min) > len(inBuf) {
		inBuf = make([]byte, min)
	}
	return addr(inBuf)
}

// Init implements snk_init: the config frame is in the input buffer.
func Init(cfgLen uint32) int32 {
	if int(cfgLen) > len(inBuf) {
		Log(LevelError, "snk_init: config length exceeds the input buffer")
		return ErrConfig
	}
	cfg, err := ParseConfig(inBuf[:cfgLen])
	if err == nil && onInit != nil {
		err = onInit(cfg)
	}
	if err != nil {
		Log(LevelError, err.Error())
		return ErrConfig
	}
	return 0
}

// Close implements snk_close.
func Close() {
	if onClose != nil {
		onClose()
	}
}

// RunFilter implements snk_filter for a per-event keep function.
func RunFilter(n, l uint32, keep func(*Event) bool) int64 {
	if keep == nil {
		Log(LevelError, "snk_filter: no filter registered (call filter.Handle in init)")
		return ErrGeneric
	}
	if int(l) > len(inBuf) {
		return ErrBadInput
	}
	out, err := FilterBatch(inBuf[:l], int(n), outBuf[:0], keep)
	return result(out, err)
}

// RunEnrich implements snk_enrich for a per-event enrich function.
func RunEnrich(n, l uint32, fn func(*Event, *Patch)) int64 {
	if fn == nil {
		Log(LevelError, "snk_enrich: no enricher registered (call enrich.Handle in init)")
		return ErrGeneric
	}
	if int(l) > len(inBuf) {
		return ErrBadInput
	}
	out, err := EnrichBatch(inBuf[:l], int(n), outBuf[:0], fn)
	return result(out, err)
}

func result(out []byte, err error) int64 {
	switch {
	case errors.Is(err, errMalformed):
		return ErrBadInput
	case err != nil:
		Log(LevelError, err.Error())
		return ErrGeneric
	}
	if cap(out) > cap(outBuf) {
		outBuf = out[:0] // keep the grown buffer for the next batch
	}
	return int64(addr(out[:cap(out)]))<<32 | int64(len(out))
}

// addr is the guest address of b's first byte (Wasm memory is 32-bit and
// Go's wasm GC does not move objects).
func addr(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
