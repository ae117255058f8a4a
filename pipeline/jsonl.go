package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object (no trailing newline) in the
// event line format shared by the file and stderr sinks, golden test files
// and `snakepipe plugin test`:
//
//	{"name":"python.call.stop","timestamp_ns":1,"received_ns":2,"correlation_id":"c",
//	 "sample_rate":1,"measurements":{"duration":1200,"ratio":0.5},
//	 "metadata":{"tool":"x"},"worker_id":"w1","pool":"p","hostname":"h","pid":42}
//
// received_ns is omitted when 0, correlation_id when empty, and the host
// context (worker_id, pool, hostname, pid) when e.Origin is nil. Float
// measurements always carry a '.' or an exponent, so ints and floats stay
// distinct; NaN and infinities (which the catalog never admits) are written
// as null. Measurements and metadata keep event order.
func AppendJSON(dst []byte, e *Event) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendJSONString(dst, e.Name)
	dst = append(dst, `,"timestamp_ns":`...)
	dst = strconv.AppendInt(dst, e.TimestampNs, 10)
	if e.ReceivedNs != 0 {
		dst = append(dst, `,"received_ns":`...)
		dst = strconv.AppendInt(dst, e.ReceivedNs, 10)
	}
	if e.CorrelationID != "" {
		dst = append(dst, `,"correlation_id":`...)
		dst = appendJSONString(dst, e.CorrelationID)
	}
	dst = append(dst, `,"sample_rate":`...)
	rate := e.SampleRate
	if rate == 0 {
		rate = 1
	}
	dst = strconv.AppendFloat(dst, rate, 'g', -1, 64)
	dst = append(dst, `,"measurements":{`...)
	for i := range e.Measurements {
		if i > 0 {
			dst = append(dst, ',')
		}
		m := &e.Measurements[i]
		dst = appendJSONString(dst, m.Key)
		dst = append(dst, ':')
		dst = appendJSONValue(dst, m.Value)
	}
	dst = append(dst, `},"metadata":{`...)
	for i := range e.Metadata {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, e.Metadata[i].Key)
		dst = append(dst, ':')
		dst = appendJSONString(dst, e.Metadata[i].Value)
	}
	dst = append(dst, '}')
	if o := e.Origin; o != nil {
		dst = append(dst, `,"worker_id":`...)
		dst = appendJSONString(dst, o.WorkerID)
		dst = append(dst, `,"pool":`...)
		dst = appendJSONString(dst, o.Pool)
		dst = append(dst, `,"hostname":`...)
		dst = appendJSONString(dst, o.Hostname)
		dst = append(dst, `,"pid":`...)
		dst = strconv.AppendInt(dst, o.PID, 10)
	}
	return append(dst, '}')
}

func appendJSONValue(dst []byte, v Value) []byte {
	switch v.Kind {
	case KindInt:
		return strconv.AppendInt(dst, v.Int, 10)
	case KindFloat:
		f := v.Float
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(dst, "null"...)
		}
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'g', -1, 64)
		if !bytes.ContainsAny(dst[start:], ".eE") {
			dst = append(dst, ".0"...)
		}
		return dst
	case KindString:
		return appendJSONString(dst, v.Str)
	default:
		return append(dst, "null"...)
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ErrBadEventJSON is wrapped by ParseEventJSON errors.
var ErrBadEventJSON = errors.New("bad event json")

// ParseEventJSON parses one line written by AppendJSON (or by hand: only
// "name" is required; sample_rate defaults to 1). Integer literals become
// int measurements and literals with '.', 'e' or 'E' floats; strings become
// string measurements, null an invalid value. Unknown keys are errors. The
// host context keys fill Origin.
func ParseEventJSON(line []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	fail := func(format string, a ...any) (Event, error) {
		return Event{}, fmt.Errorf("%w: "+format, append([]any{ErrBadEventJSON}, a...)...)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fail("want a JSON object")
	}
	var origin Origin
	hasOrigin, hasName := false, false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("%v", err)
		}
		key, _ := tok.(string)
		switch key {
		case "name":
			if err := dec.Decode(&e.Name); err != nil {
				return fail("name: %v", err)
			}
			hasName = true
		case "timestamp_ns", "received_ns", "pid":
			var n json.Number
			if err := dec.Decode(&n); err != nil {
				return fail("%s: %v", key, err)
			}
			v, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return fail("%s: %v", key, err)
			}
			switch key {
			case "timestamp_ns":
				e.TimestampNs = v
			case "received_ns":
				e.ReceivedNs = v
			default:
				origin.PID, hasOrigin = v, true
			}
		case "sample_rate":
			if err := dec.Decode(&e.SampleRate); err != nil {
				return fail("sample_rate: %v", err)
			}
		case "correlation_id":
			if err := dec.Decode(&e.CorrelationID); err != nil {
				return fail("correlation_id: %v", err)
			}
		case "worker_id", "pool", "hostname":
			var s string
			if err := dec.Decode(&s); err != nil {
				return fail("%s: %v", key, err)
			}
			hasOrigin = true
			switch key {
			case "worker_id":
				origin.WorkerID = s
			case "pool":
				origin.Pool = s
			default:
				origin.Hostname = s
			}
		case "measurements":
			if err := parseObject(dec, func(k string, raw json.RawMessage) error {
				v, err := parseJSONValue(raw)
				if err != nil {
					return fmt.Errorf("measurements.%s: %w", k, err)
				}
				e.Measurements = append(e.Measurements, Measurement{Key: k, Value: v})
				return nil
			}); err != nil {
				return fail("%v", err)
			}
		case "metadata":
			if err := parseObject(dec, func(k string, raw json.RawMessage) error {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return fmt.Errorf("metadata.%s: want a string", k)
				}
				e.Metadata = append(e.Metadata, Label{Key: k, Value: s})
				return nil
			}); err != nil {
				return fail("%v", err)
			}
		default:
			return fail("unknown key %q", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail("trailing data after the object")
	}
	if !hasName {
		return fail("missing \"name\"")
	}
	if e.SampleRate == 0 {
		e.SampleRate = 1
	}
	if hasOrigin {
		e.Origin = &origin
	}
	return e, nil
}

func parseObject(dec *json.Decoder, each func(key string, raw json.RawMessage) error) error {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("want an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		if err := each(tok.(string), raw); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

func parseJSONValue(raw json.RawMessage) (Value, error) {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "null":
		return Value{}, nil
	case strings.HasPrefix(s, `"`):
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return Value{}, err
		}
		return StringValue(str), nil
	case strings.ContainsAny(s, ".eE"):
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Value{}, fmt.Errorf("bad number %s", s)
		}
		return FloatValue(f), nil
	default:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("bad integer %s (want a number within int64, or a float with '.')", s)
		}
		return IntValue(n), nil
	}
}

// ReadEventsJSON reads a JSON-lines stream of events (blank lines and lines
// starting with '#' are skipped). Errors name the line number.
func ReadEventsJSON(r io.Reader) ([]Event, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var out []Event
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		e, err := ParseEventJSON(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}
