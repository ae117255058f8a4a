package metadatastage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/snakepipe/snakepipe/pipeline"
)

// ErrBadTemplate is wrapped by errors for malformed set values.
var ErrBadTemplate = errors.New("bad template")

type refKind uint8

const (
	refLiteral refKind = iota
	refName
	refCorrelationID
	refWorkerID
	refPool
	refHostname
	refPID
	refMeta
)

type part struct {
	kind refKind
	text string // literal text, or the metadata key for refMeta
}

// template is a parsed set value: literal text and references.
type template []part

func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, part{kind: refLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			lit.WriteByte(c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '$':
			lit.WriteByte('$')
			i++
		case i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%w %q: unterminated ${ at offset %d", ErrBadTemplate, s, i)
			}
			ref := s[i+2 : i+2+end]
			p, err := parseRef(ref)
			if err != nil {
				return nil, fmt.Errorf("%w %q: %w", ErrBadTemplate, s, err)
			}
			flush()
			t = append(t, p)
			i += 2 + end
		default:
			return nil, fmt.Errorf("%w %q: '$' at offset %d must start ${...} or be written $$", ErrBadTemplate, s, i)
		}
	}
	flush()
	return t, nil
}

func parseRef(ref string) (part, error) {
	switch ref {
	case "name":
		return part{kind: refName}, nil
	case "correlation_id":
		return part{kind: refCorrelationID}, nil
	case pipeline.KeyWorkerID:
		return part{kind: refWorkerID}, nil
	case pipeline.KeyPool:
		return part{kind: refPool}, nil
	case pipeline.KeyHostname:
		return part{kind: refHostname}, nil
	case pipeline.KeyPID:
		return part{kind: refPID}, nil
	}
	if key, ok := strings.CutPrefix(ref, "meta."); ok && key != "" {
		return part{kind: refMeta, text: key}, nil
	}
	return part{}, fmt.Errorf("unknown reference ${%s} (want name, correlation_id, worker_id, pool, hostname, pid or meta.KEY)", ref)
}

// constant returns the value when t has no references.
func (t template) constant() (string, bool) {
	switch {
	case len(t) == 0:
		return "", true
	case len(t) == 1 && t[0].kind == refLiteral:
		return t[0].text, true
	}
	return "", false
}

// expand evaluates t against e.
func (t template) expand(e *pipeline.Event) string {
	if len(t) == 1 {
		return t[0].value(e)
	}
	var b strings.Builder
	for i := range t {
		b.WriteString(t[i].value(e))
	}
	return b.String()
}

func (p *part) value(e *pipeline.Event) string {
	switch p.kind {
	case refLiteral:
		return p.text
	case refName:
		return e.Name
	case refCorrelationID:
		return e.CorrelationID
	case refPID:
		if e.Origin == nil {
			return ""
		}
		return strconv.FormatInt(e.Origin.PID, 10)
	case refWorkerID:
		v, _ := e.Meta(pipeline.KeyWorkerID)
		return v
	case refPool:
		v, _ := e.Meta(pipeline.KeyPool)
		return v
	case refHostname:
		v, _ := e.Meta(pipeline.KeyHostname)
		return v
	default:
		v, _ := e.Meta(p.text)
		return v
	}
}
