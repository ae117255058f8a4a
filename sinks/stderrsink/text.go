package stderrsink

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/snakepipe/snakepipe/pipeline"
)

// nameWidth is the column the event name is padded to, so measurements
// line up for the common event names.
const nameWidth = 24

// AppendText appends e as one human-readable line, ending in '\n':
//
//	2024-11-25T01:20:00.000000Z python.call.stop          duration=1200 ratio=0.5  tool=x  worker=w1 pool=p host=h pid=42  cid=abc rate=0.1
//
// Columns: UTC time with microseconds, the name padded to 24, the
// measurements, the metadata (omitted when empty), the worker (when the
// event has an origin), then the correlation id and sample rate when set.
// Values with spaces, quotes, '=' or control characters are Go-quoted, so
// one event is always one line.
func AppendText(dst []byte, e *pipeline.Event) []byte {
	dst = time.Unix(0, e.TimestampNs).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
	dst = append(dst, ' ')
	dst = appendWord(dst, e.Name)
	for n := utf8.RuneCountInString(e.Name); n < nameWidth; n++ {
		dst = append(dst, ' ')
	}
	dst = append(dst, ' ')
	if len(e.Measurements) == 0 {
		dst = append(dst, '-')
	}
	for i := range e.Measurements {
		if i > 0 {
			dst = append(dst, ' ')
		}
		m := &e.Measurements[i]
		dst = appendWord(dst, m.Key)
		dst = append(dst, '=')
		switch m.Value.Kind {
		case pipeline.KindString:
			dst = appendWord(dst, m.Value.Str)
		case pipeline.KindInt:
			dst = strconv.AppendInt(dst, m.Value.Int, 10)
		case pipeline.KindFloat:
			dst = strconv.AppendFloat(dst, m.Value.Float, 'g', -1, 64)
		default:
			dst = append(dst, "<invalid>"...)
		}
	}
	if len(e.Metadata) > 0 {
		dst = append(dst, "  "...)
		for i := range e.Metadata {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = appendWord(dst, e.Metadata[i].Key)
			dst = append(dst, '=')
			dst = appendWord(dst, e.Metadata[i].Value)
		}
	}
	if o := e.Origin; o != nil {
		dst = append(dst, "  worker="...)
		dst = appendWord(dst, o.WorkerID)
		dst = append(dst, " pool="...)
		dst = appendWord(dst, o.Pool)
		dst = append(dst, " host="...)
		dst = appendWord(dst, o.Hostname)
		dst = append(dst, " pid="...)
		dst = strconv.AppendInt(dst, o.PID, 10)
	}
	if e.CorrelationID != "" || (e.SampleRate > 0 && e.SampleRate < 1) {
		dst = append(dst, ' ')
	}
	if e.CorrelationID != "" {
		dst = append(dst, " cid="...)
		dst = appendWord(dst, e.CorrelationID)
	}
	if e.SampleRate > 0 && e.SampleRate < 1 {
		dst = append(dst, " rate="...)
		dst = strconv.AppendFloat(dst, e.SampleRate, 'g', -1, 64)
	}
	return append(dst, '\n')
}

// appendWord appends s bare when it is a plain word, Go-quoted otherwise.
func appendWord(dst []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(dst, s)
	}
	return append(dst, s...)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f {
			return true
		}
	}
	return false
}
