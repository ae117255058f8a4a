package statsdsink

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Config is the statsd sink's configuration (sinks.statsd/<name> in the
// config file). Every key is documented in docs/config.md, section statsd.
type Config struct {
	// Network is udp (default), tcp (newline-delimited, reconnects) or
	// unixgram (Unix datagram socket; Address is the socket path).
	Network string `koanf:"network"`
	// Address is host:port for udp/tcp, a path for unixgram.
	Address string `koanf:"address"`
	// Prefix is prepended to every metric name ("myapp" -> "myapp.python...").
	Prefix string `koanf:"prefix"`
	// Tags are added to every metric (global tags), in key order.
	Tags map[string]string `koanf:"tags"`
	// TagStyle is how tags are written: dogstatsd (|#k:v), influxdb
	// (name,k=v:...), graphite (name.k.v) or none.
	TagStyle string `koanf:"tag_style"`
	// TagKeys is the allowlist of metadata keys that may become tags
	// (host keys worker_id, pool, hostname, pid included). Nothing else
	// ever becomes a tag, so cardinality stays bounded.
	TagKeys []string `koanf:"tag_keys"`
	// MaxPacketBytes is the largest datagram payload (udp, unixgram): lines
	// are packed, newline-separated, up to this size. 1432 fits a 1500-byte
	// MTU with IPv6/UDP headers. 0 sends one line per datagram. A single
	// line longer than the limit is sent alone.
	MaxPacketBytes int `koanf:"max_packet_bytes"`
	// FlushInterval is how often aggregated counters are sent (only with
	// AggregateCounters).
	FlushInterval time.Duration `koanf:"flush_interval"`
	// AggregateCounters sums counters client-side over FlushInterval and
	// sends one pre-scaled line per counter and tag set.
	AggregateCounters bool `koanf:"aggregate_counters"`
	// MaxAggregateKeys bounds the aggregation map; counters beyond it are
	// sent unaggregated.
	MaxAggregateKeys int `koanf:"max_aggregate_keys"`
	// WriteTimeout bounds one socket write (and a tcp dial).
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// DefaultMappings adds the built-in catalog's mapping (see
	// DefaultMappings) before Mappings.
	DefaultMappings bool `koanf:"default_mappings"`
	// Mappings are the rules from events to metrics. Every rule whose
	// events glob matches an event produces one metric line.
	Mappings []Mapping `koanf:"mappings"`
}

// Mapping turns matching events into one metric each.
type Mapping struct {
	// Events is a name glob ("python.call.stop", "python.*").
	Events string `koanf:"events"`
	// Type is counter, gauge, timer, histogram, distribution or set.
	Type string `koanf:"type"`
	// Name is the metric name; "{event}" is replaced by the event name and
	// "{base}" by the event name without its last dotted segment
	// ("python.call.stop" -> "python.call").
	Name string `koanf:"name"`
	// Measurement is the measurement key the value comes from. Without it,
	// the value is Value (counters: 1 when Value is 0).
	Measurement string `koanf:"measurement"`
	// Metadata is, for sets only, the metadata key whose value is the
	// set member (e.g. worker_id: distinct workers per flush).
	Metadata string `koanf:"metadata"`
	// Value is the constant value when Measurement is empty.
	Value float64 `koanf:"value"`
	// Scale multiplies the measurement (e.g. 1e-6 for ns -> ms).
	Scale float64 `koanf:"scale"`
	// FromUnit and ToUnit convert units instead of Scale: ns, us, ms, s,
	// min, h for time; b, kib, mib, gib for sizes.
	FromUnit string `koanf:"from_unit"`
	ToUnit   string `koanf:"to_unit"`
	// Tags narrows the sink's tag_keys for this rule (each must be in
	// tag_keys). Unset: all tag_keys. Empty list: no event tags.
	Tags []string `koanf:"tags"`
}

// Networks, tag styles and metric types accepted by the config.
const (
	NetworkUDP      = "udp"
	NetworkTCP      = "tcp"
	NetworkUnixgram = "unixgram"
)

// TagStyle says how tags are written into a line.
type TagStyle uint8

const (
	TagNone TagStyle = iota
	TagDogStatsD
	TagInfluxDB
	TagGraphite
)

func (s TagStyle) String() string {
	switch s {
	case TagDogStatsD:
		return "dogstatsd"
	case TagInfluxDB:
		return "influxdb"
	case TagGraphite:
		return "graphite"
	default:
		return "none"
	}
}

// ParseTagStyle parses a tag_style value.
func ParseTagStyle(s string) (TagStyle, error) {
	switch s {
	case "dogstatsd":
		return TagDogStatsD, nil
	case "influxdb":
		return TagInfluxDB, nil
	case "graphite":
		return TagGraphite, nil
	case "none":
		return TagNone, nil
	}
	return TagNone, fmt.Errorf("%q: want dogstatsd, influxdb, graphite or none", s)
}

// MetricType is a StatsD metric type.
type MetricType uint8

const (
	Counter MetricType = iota + 1
	Gauge
	Timer
	Histogram
	Distribution
	Set
)

// String returns the config name.
func (t MetricType) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Timer:
		return "timer"
	case Histogram:
		return "histogram"
	case Distribution:
		return "distribution"
	case Set:
		return "set"
	}
	return "invalid"
}

// code is the type's suffix on the wire.
func (t MetricType) code() string {
	switch t {
	case Counter:
		return "c"
	case Gauge:
		return "g"
	case Timer:
		return "ms"
	case Histogram:
		return "h"
	case Distribution:
		return "d"
	case Set:
		return "s"
	}
	return ""
}

// sampled reports whether lines of this type carry |@rate.
func (t MetricType) sampled() bool {
	return t == Counter || t == Timer || t == Histogram || t == Distribution
}

// ParseMetricType parses a mapping type.
func ParseMetricType(s string) (MetricType, error) {
	for t := Counter; t <= Set; t++ {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%q: want counter, gauge, timer, histogram, distribution or set", s)
}

// unitFactors are exact integers in the dimension's smallest unit, so that
// a conversion is one exact multiplication or division (7000 ns is 0.007
// ms, not 0.006999999999999999).
var unitFactors = map[string]struct {
	dim    string
	factor float64
}{
	"ns": {"time", 1}, "us": {"time", 1e3}, "ms": {"time", 1e6}, "s": {"time", 1e9},
	"min": {"time", 60e9}, "h": {"time", 3600e9},
	"b": {"size", 1}, "kib": {"size", 1 << 10}, "mib": {"size", 1 << 20}, "gib": {"size", 1 << 30},
}

// unitScale returns the conversion from one unit to another as a
// multiplier and a divisor (one of them is 1).
func unitScale(from, to string) (mul, div float64, err error) {
	f, ok := unitFactors[from]
	if !ok {
		return 0, 0, fmt.Errorf("unknown unit %q (want ns, us, ms, s, min, h, b, kib, mib or gib)", from)
	}
	t, ok := unitFactors[to]
	if !ok {
		return 0, 0, fmt.Errorf("unknown unit %q (want ns, us, ms, s, min, h, b, kib, mib or gib)", to)
	}
	if f.dim != t.dim {
		return 0, 0, fmt.Errorf("cannot convert %s (%s) to %s (%s)", from, f.dim, to, t.dim)
	}
	if f.factor >= t.factor {
		return f.factor / t.factor, 1, nil
	}
	return 1, t.factor / f.factor, nil
}

// Limits on config values.
const (
	MaxPacketLimit      = 65000
	MaxTagKeys          = 32
	maxNameTemplateSize = 200
)

// DefaultConfig returns the defaults documented in docs/config.md.
func DefaultConfig() *Config {
	return &Config{
		Network:          NetworkUDP,
		Address:          "127.0.0.1:8125",
		TagStyle:         "dogstatsd",
		TagKeys:          []string{},
		MaxPacketBytes:   1432,
		FlushInterval:    time.Second,
		MaxAggregateKeys: 10000,
		WriteTimeout:     5 * time.Second,
		DefaultMappings:  true,
	}
}

// ErrBadConfig is wrapped by every Validate error.
var ErrBadConfig = errors.New("bad statsd config")

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	switch c.Network {
	case NetworkUDP, NetworkTCP:
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			bad("address: %q is not host:port: %v", c.Address, err)
		}
	case NetworkUnixgram:
		if c.Address == "" {
			bad("address: a socket path is required for network unixgram")
		}
	default:
		bad("network: %q: want udp, tcp or unixgram", c.Network)
	}
	if !validName(c.Prefix, true) {
		bad("prefix: %q: use letters, digits, '_', '-' and '.'", c.Prefix)
	}
	for k, v := range c.Tags {
		if !validName(k, false) || k == "" {
			bad("tags.%s: tag key must be letters, digits, '_' or '-'", k)
		}
		if v == "" {
			bad("tags.%s: empty value", k)
		}
	}
	if _, err := ParseTagStyle(c.TagStyle); err != nil {
		bad("tag_style: %v", err)
	}
	if len(c.TagKeys) > MaxTagKeys {
		bad("tag_keys: %d keys, at most %d (bounded cardinality)", len(c.TagKeys), MaxTagKeys)
	}
	allowed := map[string]bool{}
	for i, k := range c.TagKeys {
		if k == "" || !validName(k, false) {
			bad("tag_keys[%d]: %q: tag key must be letters, digits, '_' or '-'", i, k)
		}
		if allowed[k] {
			bad("tag_keys[%d]: %q listed twice", i, k)
		}
		allowed[k] = true
	}
	if c.MaxPacketBytes < 0 || c.MaxPacketBytes > MaxPacketLimit {
		bad("max_packet_bytes: %d must be in [0, %d] (0 = one line per datagram)", c.MaxPacketBytes, MaxPacketLimit)
	}
	if c.AggregateCounters && c.FlushInterval <= 0 {
		bad("flush_interval: %v must be > 0 with aggregate_counters", c.FlushInterval)
	}
	if c.FlushInterval < 0 {
		bad("flush_interval: %v must be >= 0", c.FlushInterval)
	}
	if c.AggregateCounters && c.MaxAggregateKeys <= 0 {
		bad("max_aggregate_keys: %d must be > 0 with aggregate_counters", c.MaxAggregateKeys)
	}
	if c.WriteTimeout <= 0 {
		bad("write_timeout: %v must be > 0", c.WriteTimeout)
	}
	for i := range c.Mappings {
		for _, err := range c.Mappings[i].validate(allowed) {
			bad("mappings[%d].%v", i, err)
		}
	}
	if !c.DefaultMappings && len(c.Mappings) == 0 {
		bad("mappings: no mappings and default_mappings is false: nothing would be sent")
	}
	return errors.Join(errs...)
}

func (m *Mapping) validate(allowed map[string]bool) []error {
	var errs []error
	if _, err := pipeline.CompileGlob(m.Events); err != nil {
		errs = append(errs, fmt.Errorf("events: %w", err))
	}
	typ, err := ParseMetricType(m.Type)
	if err != nil {
		errs = append(errs, fmt.Errorf("type: %w", err))
	}
	if err := validTemplate(m.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if m.Measurement != "" && m.Metadata != "" {
		errs = append(errs, errors.New("metadata: set either measurement or metadata, not both"))
	}
	if m.Metadata != "" && typ != Set {
		errs = append(errs, fmt.Errorf("metadata: only sets take their value from metadata (type is %s)", m.Type))
	}
	if m.Measurement == "" && m.Metadata == "" && typ != Counter && m.Value == 0 && err == nil {
		errs = append(errs, fmt.Errorf("measurement: a %s needs a measurement (or a constant value)", m.Type))
	}
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		errs = append(errs, fmt.Errorf("value: %v is not a finite number", m.Value))
	}
	if math.IsNaN(m.Scale) || math.IsInf(m.Scale, 0) || m.Scale < 0 {
		errs = append(errs, fmt.Errorf("scale: %v must be a finite number >= 0 (0 = 1)", m.Scale))
	}
	if m.FromUnit != "" || m.ToUnit != "" {
		if m.Scale != 0 {
			errs = append(errs, errors.New("scale: set either scale or from_unit/to_unit, not both"))
		}
		if _, _, err := unitScale(m.FromUnit, m.ToUnit); err != nil {
			errs = append(errs, fmt.Errorf("from_unit: %w", err))
		}
	}
	for j, k := range m.Tags {
		if !allowed[k] {
			errs = append(errs, fmt.Errorf("tags[%d]: %q is not in the sink's tag_keys allowlist", j, k))
		}
	}
	return errs
}

// validTemplate checks a metric name template: name characters plus the
// {event} and {base} placeholders.
func validTemplate(t string) error {
	if t == "" {
		return errors.New("required")
	}
	if len(t) > maxNameTemplateSize {
		return fmt.Errorf("longer than %d bytes", maxNameTemplateSize)
	}
	rest := strings.NewReplacer("{event}", "x", "{base}", "x").Replace(t)
	if !validName(rest, true) {
		return fmt.Errorf("%q: use letters, digits, '_', '-', '.' and the placeholders {event} and {base}", t)
	}
	return nil
}

// validName reports whether s needs no escaping (dots allowed in names).
func validName(s string, dots bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !nameByte(c) || (!dots && c == '.') {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}
