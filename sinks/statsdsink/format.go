package statsdsink

import (
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/snakepipe/snakepipe/pipeline"
)

// The StatsD line protocol:
//
//	<name>[,k=v...]:<value>|<type>[|@<rate>][|#k:v,...]
//
// Names and tag parts are escaped to [A-Za-z0-9_.-] (graphite tag values
// and all tag keys also lose '.'), so no input can inject a ':', '|', '#',
// ',', '=' or newline into a line.

// appendEscaped appends s with every byte outside [A-Za-z0-9_.-] replaced
// by '_' (one '_' per UTF-8 character, one per invalid byte). With dots
// false, '.' is replaced too.
func appendEscaped(dst []byte, s string, dots bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if nameByte(c) && (dots || c != '.') {
				dst = append(dst, c)
			} else {
				dst = append(dst, '_')
			}
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		dst = append(dst, '_')
		i += size
	}
	return dst
}

// appendNumber formats v compactly: integers without a point, others in
// plain decimal, extremes in exponent form (which StatsD servers parse).
func appendNumber(dst []byte, v float64) []byte {
	a := math.Abs(v)
	if v == math.Trunc(v) && a < 1e15 {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	if a >= 1e-6 && a < 1e15 {
		return strconv.AppendFloat(dst, v, 'f', -1, 64)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// appendRate appends a sample rate in plain decimal (etsy statsd reads
// @[0-9.]+, so never an exponent).
func appendRate(dst []byte, r float64) []byte {
	return strconv.AppendFloat(dst, r, 'f', -1, 64)
}

// sampleRate returns the rate to write, or 1 when none applies.
func sampleRate(e *pipeline.Event) float64 {
	r := e.SampleRate
	if r > 0 && r < 1 {
		return r
	}
	return 1
}

// metaValue returns the value of metadata key (host keys from Origin). For
// pid it returns ok with an empty string and the pid in num, so that the
// caller formats it without allocating.
func metaValue(e *pipeline.Event, key string) (v string, num int64, isNum, ok bool) {
	if e.Origin != nil {
		switch key {
		case pipeline.KeyWorkerID:
			return e.Origin.WorkerID, 0, false, true
		case pipeline.KeyPool:
			return e.Origin.Pool, 0, false, true
		case pipeline.KeyHostname:
			return e.Origin.Hostname, 0, false, true
		case pipeline.KeyPID:
			return "", e.Origin.PID, true, true
		}
	}
	for i := range e.Metadata {
		if e.Metadata[i].Key == key {
			return e.Metadata[i].Value, 0, false, true
		}
	}
	return "", 0, false, false
}

// appendMetaEscaped appends the escaped value of key; ok is false when the
// event has no (or an empty) value for it.
func appendMetaEscaped(dst []byte, e *pipeline.Event, key string, dots bool) ([]byte, bool) {
	v, num, isNum, ok := metaValue(e, key)
	switch {
	case !ok:
		return dst, false
	case isNum:
		return strconv.AppendInt(dst, num, 10), true
	case v == "":
		return dst, false
	}
	return appendEscaped(dst, v, dots), true
}

// formatter renders lines for one tag style.
type formatter struct {
	style TagStyle
	// global is the global tags already rendered for the style:
	// dogstatsd "k:v,k:v", influxdb ",k=v,k=v", graphite ".k.v.k.v".
	global []byte
}

func newFormatter(style TagStyle, tags map[string]string) formatter {
	f := formatter{style: style}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f.global = f.appendTag(f.global, string(appendEscaped(nil, k, false)), func(dst []byte, dots bool) []byte {
			return appendEscaped(dst, tags[k], dots)
		})
	}
	return f
}

// appendTag appends one tag in the formatter's style; val appends the
// escaped value.
func (f *formatter) appendTag(dst []byte, escapedKey string, val func(dst []byte, dots bool) []byte) []byte {
	switch f.style {
	case TagDogStatsD:
		if len(dst) > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, escapedKey...)
		dst = append(dst, ':')
		return val(dst, true)
	case TagInfluxDB:
		dst = append(dst, ',')
		dst = append(dst, escapedKey...)
		dst = append(dst, '=')
		return val(dst, true)
	case TagGraphite:
		dst = append(dst, '.')
		dst = append(dst, escapedKey...)
		dst = append(dst, '.')
		return val(dst, false)
	}
	return dst
}

// appendEventTags appends the event's allowlisted tags for rule r in the
// style (without the dogstatsd "|#" marker). first says whether nothing
// precedes them (for dogstatsd commas).
func (f *formatter) appendEventTags(dst []byte, r *rule, e *pipeline.Event, first bool) []byte {
	for i := range r.tags {
		tk := &r.tags[i]
		mark := len(dst)
		switch f.style {
		case TagDogStatsD:
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, tk.escaped...)
			dst = append(dst, ':')
		case TagInfluxDB:
			dst = append(dst, ',')
			dst = append(dst, tk.escaped...)
			dst = append(dst, '=')
		case TagGraphite:
			dst = append(dst, '.')
			dst = append(dst, tk.escaped...)
			dst = append(dst, '.')
		default:
			return dst
		}
		var ok bool
		dst, ok = appendMetaEscaped(dst, e, tk.key, f.style != TagGraphite)
		if !ok {
			dst = dst[:mark]
			continue
		}
		first = false
	}
	return dst
}

// appendHead appends the metric name and, for influxdb and graphite styles,
// the tags that live in the name.
func (f *formatter) appendHead(dst []byte, t *target, e *pipeline.Event) []byte {
	dst = append(dst, t.name...)
	if f.style == TagInfluxDB || f.style == TagGraphite {
		dst = append(dst, f.global...)
		dst = f.appendEventTags(dst, t.r, e, false)
	}
	return dst
}

// appendTail appends "|#tags" for the dogstatsd style (nothing otherwise,
// and nothing when there are no tags).
func (f *formatter) appendTail(dst []byte, t *target, e *pipeline.Event) []byte {
	if f.style != TagDogStatsD {
		return dst
	}
	mark := len(dst)
	dst = append(dst, '|', '#')
	dst = append(dst, f.global...)
	body := len(dst)
	dst = f.appendEventTags(dst, t.r, e, len(f.global) == 0)
	if len(f.global) == 0 && len(dst) == body {
		return dst[:mark]
	}
	return dst
}

// Reasons a mapping produced no line.
const (
	skipNone               = ""
	skipMissingMeasurement = "missing_measurement"
	skipMissingMetadata    = "missing_metadata"
	skipNotNumeric         = "not_numeric"
	skipInvalidValue       = "invalid_value"
	skipLineTooLong        = "line_too_long"
)

// value computes a numeric value for a non-set target.
func value(t *target, e *pipeline.Event) (float64, string) {
	r := t.r
	if r.measurement == "" {
		return r.value, skipNone
	}
	mv, ok := e.Measurement(r.measurement)
	if !ok {
		return 0, skipMissingMeasurement
	}
	v, ok := mv.AsFloat()
	if !ok {
		return 0, skipNotNumeric
	}
	v = v * r.scale / r.div
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, skipInvalidValue
	}
	if v < 0 && r.typ == Timer {
		return 0, skipInvalidValue
	}
	return v, skipNone
}

// appendSetMember appends the set member for a set target.
func appendSetMember(dst []byte, t *target, e *pipeline.Event) ([]byte, string) {
	r := t.r
	switch {
	case r.metadata != "":
		out, ok := appendMetaEscaped(dst, e, r.metadata, true)
		if !ok {
			return dst, skipMissingMetadata
		}
		return out, skipNone
	case r.measurement != "":
		mv, ok := e.Measurement(r.measurement)
		if !ok {
			return dst, skipMissingMeasurement
		}
		switch mv.Kind {
		case pipeline.KindInt:
			return strconv.AppendInt(dst, mv.Int, 10), skipNone
		case pipeline.KindFloat:
			if math.IsNaN(mv.Float) || math.IsInf(mv.Float, 0) {
				return dst, skipInvalidValue
			}
			return appendNumber(dst, mv.Float), skipNone
		case pipeline.KindString:
			if mv.Str == "" {
				return dst, skipInvalidValue
			}
			return appendEscaped(dst, mv.Str, true), skipNone
		}
		return dst, skipInvalidValue
	}
	return appendNumber(dst, r.value), skipNone
}

// appendLine appends the complete line(s) for target t and event e. A
// negative gauge becomes two lines ("name:0|g" then "name:-v|g"), since a
// leading '-' alone means "decrement". On a skip, dst is returned unchanged
// with the reason.
func (f *formatter) appendLine(dst []byte, t *target, e *pipeline.Event) ([]byte, string) {
	mark := len(dst)
	typ := t.r.typ
	if typ == Set {
		dst = f.appendHead(dst, t, e)
		dst = append(dst, ':')
		var reason string
		if dst, reason = appendSetMember(dst, t, e); reason != skipNone {
			return dst[:mark], reason
		}
		dst = append(dst, "|s"...)
		return f.appendTail(dst, t, e), skipNone
	}
	v, reason := value(t, e)
	if reason != skipNone {
		return dst, reason
	}
	if typ == Gauge && v < 0 {
		dst = f.appendHead(dst, t, e)
		dst = append(dst, ":0|g"...)
		dst = f.appendTail(dst, t, e)
		dst = append(dst, '\n')
	}
	dst = f.appendHead(dst, t, e)
	dst = append(dst, ':')
	dst = appendNumber(dst, v)
	dst = append(dst, '|')
	dst = append(dst, typ.code()...)
	if r := sampleRate(e); r < 1 && typ.sampled() {
		dst = append(dst, '|', '@')
		dst = appendRate(dst, r)
	}
	return f.appendTail(dst, t, e), skipNone
}
