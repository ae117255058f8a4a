package snk

import (
	"encoding/binary"
	"errors"
	"math"
)

// Enrich action ops and patch opcodes of the wire format.
const (
	opUnchanged = 0
	opDrop      = 1
	opPatch     = 2
	opcodeSet   = 1
	opcodeDel   = 2
)

var (
	errKeyTooLong   = errors.New("snk: patch key longer than 65535 bytes")
	errTooManyPatch = errors.New("snk: more than 64 patches for one event (the host's limit)")
)

// MaxPatches is the host's limit of patch operations per event.
const MaxPatches = 64

// Patch collects the changes an enricher makes to one event. Changes are
// applied by the host in order, after its own validation.
type Patch struct {
	buf  []byte
	head int // offset of the current action header in buf
	nops int
	drop bool
	err  error
}

func (p *Patch) begin() {
	p.head = len(p.buf)
	p.buf = append(p.buf, opUnchanged, 0, 0, 0)
	p.nops = 0
	p.drop = false
}

func (p *Patch) end() {
	switch {
	case p.drop:
		p.buf = p.buf[:p.head+4]
		p.buf[p.head] = opDrop
	case p.nops > 0:
		p.buf[p.head] = opPatch
		binary.LittleEndian.PutUint16(p.buf[p.head+2:], uint16(p.nops))
	}
}

func (p *Patch) add(kind, opcode byte, key string, val []byte, sval string) {
	if len(key) > math.MaxUint16 {
		p.err = errKeyTooLong
		return
	}
	if p.nops == MaxPatches {
		p.err = errTooManyPatch
		return
	}
	vl := len(val) + len(sval)
	p.buf = append(p.buf, kind, opcode, byte(len(key)), byte(len(key)>>8),
		byte(vl), byte(vl>>8), byte(vl>>16), byte(vl>>24))
	p.buf = append(p.buf, key...)
	p.buf = append(p.buf, val...)
	p.buf = append(p.buf, sval...)
	p.nops++
}

// SetMetadata sets metadata key to val.
func (p *Patch) SetMetadata(key, val string) { p.add(KindMetadata, opcodeSet, key, nil, val) }

// SetInt sets measurement key to an int64.
func (p *Patch) SetInt(key string, v int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	p.add(KindInt, opcodeSet, key, b[:], "")
}

// SetFloat sets measurement key to a float64.
func (p *Patch) SetFloat(key string, v float64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
	p.add(KindFloat, opcodeSet, key, b[:], "")
}

// SetString sets measurement key to a string.
func (p *Patch) SetString(key, val string) { p.add(KindString, opcodeSet, key, nil, val) }

// DeleteMetadata removes metadata key.
func (p *Patch) DeleteMetadata(key string) { p.add(KindMetadata, opcodeDel, key, nil, "") }

// DeleteMeasurement removes measurement key (whatever its type).
func (p *Patch) DeleteMeasurement(key string) { p.add(KindInt, opcodeDel, key, nil, "") }

// Drop drops the event; patches made to it are discarded.
func (p *Patch) Drop() { p.drop = true }
