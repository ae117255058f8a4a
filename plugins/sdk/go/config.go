package snk

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// Config is the plugin's configuration, handed to the OnInit callback: the
// string keys and values from the stage's config, sorted by key.
type Config struct {
	keys, vals []string
}

// ParseConfig decodes a config frame (u16 nfields, then kind-4 fields). An
// empty frame is an empty config.
func ParseConfig(frame []byte) (Config, error) {
	var c Config
	if len(frame) == 0 {
		return c, nil
	}
	if len(frame) < 2 {
		return c, errors.New("snk: config frame shorter than 2 bytes")
	}
	n := int(binary.LittleEndian.Uint16(frame))
	b := frame[2:]
	for i := 0; i < n; i++ {
		if len(b) < 8 {
			return c, errors.New("snk: config frame truncated")
		}
		kl := int(binary.LittleEndian.Uint16(b[2:]))
		vl := uint64(binary.LittleEndian.Uint32(b[4:]))
		if b[0] != KindMetadata || uint64(kl)+vl > uint64(len(b)-8) {
			return c, errors.New("snk: config frame malformed")
		}
		c.keys = append(c.keys, string(b[8:8+kl]))
		c.vals = append(c.vals, string(b[8+kl:8+kl+int(vl)]))
		b = b[8+kl+int(vl):]
	}
	if len(b) != 0 {
		return c, errors.New("snk: config frame has trailing bytes")
	}
	return c, nil
}

// Len is the number of config entries.
func (c Config) Len() int { return len(c.keys) }

// Entry returns the i-th key and value (sorted by key).
func (c Config) Entry(i int) (key, val string) { return c.keys[i], c.vals[i] }

// Get returns the value for key.
func (c Config) Get(key string) (string, bool) {
	for i, k := range c.keys {
		if k == key {
			return c.vals[i], true
		}
	}
	return "", false
}

// Int64 returns key parsed as a decimal int64 (see ParseInt), or def when
// key is absent.
func (c Config) Int64(key string, def int64) (int64, error) {
	v, ok := c.Get(key)
	if !ok {
		return def, nil
	}
	n, ok := ParseInt(v)
	if !ok {
		return 0, errors.New("config " + key + ": " + strconv.Quote(v) + " is not a decimal int64")
	}
	return n, nil
}

// Only returns an error naming the first key not in known.
func (c Config) Only(known ...string) error {
next:
	for _, k := range c.keys {
		for _, w := range known {
			if k == w {
				continue next
			}
		}
		return errors.New("config: unknown key " + strconv.Quote(k))
	}
	return nil
}

// ParseInt parses s as -?[0-9]+ into an int64: no sign other than a leading
// '-', no spaces, no overflow. Every SDK implements exactly this rule.
func ParseInt(s string) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, false
	}
	var u uint64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		if u > (1<<63)/10 {
			return 0, false
		}
		u = u*10 + uint64(d)
		if u > 1<<63 {
			return 0, false
		}
	}
	if !neg && u > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(u), true // -(1<<63) wraps to itself, which is correct
	}
	return int64(u), true
}
