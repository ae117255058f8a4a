package statsdsink

import (
	"strings"

	"github.com/snakepipe/snakepipe/pipeline"
)

// DefaultMappings is the built-in mapping for the standard catalog, used
// when default_mappings is true (the default). Its cardinality is bounded
// by the catalog: metric names derive only from event names the catalog
// accepted, never from metadata.
//
//   - every event: counter "<event>.count" (1 per event, sample-rate aware)
//   - "*.stop" with a duration (ns): timer "<event minus .stop>.duration" in
//     ms, e.g. python.call.stop -> python.call.duration
//   - "*.exception" with a duration (ns): timer "<event>.duration" in ms
//   - python.memory.sampled: gauges python.memory.rss_bytes / vms_bytes
//   - python.cpu.sampled: gauge python.cpu.percent
//   - python.gc.completed: timer python.gc.duration (µs -> ms) and counter
//     python.gc.collected (objects)
//   - python.memory.sampled: set python.workers.sampling of worker_id
//     (distinct workers reporting per flush)
//   - tool.result_size: distribution tool.result_size.bytes
func DefaultMappings() []Mapping {
	return []Mapping{
		{Events: "*", Type: "counter", Name: "{event}.count"},
		{Events: "*.stop", Type: "timer", Name: "{base}.duration", Measurement: "duration", FromUnit: "ns", ToUnit: "ms"},
		{Events: "*.exception", Type: "timer", Name: "{event}.duration", Measurement: "duration", FromUnit: "ns", ToUnit: "ms"},
		{Events: "python.memory.sampled", Type: "gauge", Name: "python.memory.rss_bytes", Measurement: "rss_bytes"},
		{Events: "python.memory.sampled", Type: "gauge", Name: "python.memory.vms_bytes", Measurement: "vms_bytes"},
		{Events: "python.memory.sampled", Type: "set", Name: "python.workers.sampling", Metadata: pipeline.KeyWorkerID, Tags: []string{}},
		{Events: "python.cpu.sampled", Type: "gauge", Name: "python.cpu.percent", Measurement: "cpu_percent"},
		{Events: "python.gc.completed", Type: "timer", Name: "python.gc.duration", Measurement: "duration", FromUnit: "us", ToUnit: "ms"},
		{Events: "python.gc.completed", Type: "counter", Name: "python.gc.collected", Measurement: "collected"},
		{Events: "tool.result_size", Type: "distribution", Name: "tool.result_size.bytes", Measurement: "bytes"},
	}
}

// rule is a compiled Mapping.
type rule struct {
	glob        pipeline.Glob
	typ         MetricType
	name        string
	measurement string
	metadata    string
	value       float64
	scale       float64 // multiplier
	div         float64 // divisor (unit conversions to a larger unit)
	tags        []tagKey
}

// tagKey is an allowlisted metadata key with its escaped wire form.
type tagKey struct {
	key     string
	escaped string
}

// target is one rule applied to one event name: the rule plus the metric
// name already expanded, prefixed and escaped.
type target struct {
	r    *rule
	name string
}

// mapper resolves event names to targets, caching per name. Not safe for
// concurrent use (the sink holds its lock).
type mapper struct {
	prefix string
	rules  []*rule
	cache  map[string][]target
}

// maxCachedNames bounds the per-name cache. The catalog bounds event names
// far below this; beyond it, names are resolved on every event.
const maxCachedNames = 4096

func newMapper(cfg *Config) (*mapper, error) {
	var all []Mapping
	if cfg.DefaultMappings {
		all = append(all, DefaultMappings()...)
	}
	all = append(all, cfg.Mappings...)
	allowed := map[string]bool{}
	var allTags []tagKey
	for _, k := range cfg.TagKeys {
		allowed[k] = true
		allTags = append(allTags, tagKey{key: k, escaped: k})
	}
	m := &mapper{cache: map[string][]target{}}
	if cfg.Prefix != "" {
		m.prefix = strings.TrimSuffix(cfg.Prefix, ".") + "."
	}
	for i := range all {
		mp := all[i]
		typ, err := ParseMetricType(mp.Type)
		if err != nil {
			return nil, err
		}
		g, err := pipeline.CompileGlob(mp.Events)
		if err != nil {
			return nil, err
		}
		r := &rule{glob: g, typ: typ, name: mp.Name, measurement: mp.Measurement, metadata: mp.Metadata, value: mp.Value, scale: 1, div: 1}
		switch {
		case mp.FromUnit != "" || mp.ToUnit != "":
			if r.scale, r.div, err = unitScale(mp.FromUnit, mp.ToUnit); err != nil {
				return nil, err
			}
		case mp.Scale != 0:
			r.scale = mp.Scale
		}
		if r.measurement == "" && r.metadata == "" && r.value == 0 && typ == Counter {
			r.value = 1
		}
		if mp.Tags == nil {
			r.tags = allTags
		} else {
			for _, k := range mp.Tags {
				if allowed[k] {
					r.tags = append(r.tags, tagKey{key: k, escaped: k})
				}
			}
		}
		m.rules = append(m.rules, r)
	}
	return m, nil
}

// targets returns the targets for an event name.
func (m *mapper) targets(event string) []target {
	if t, ok := m.cache[event]; ok {
		return t
	}
	var out []target
	for _, r := range m.rules {
		if !r.glob.Match(event) {
			continue
		}
		out = append(out, target{r: r, name: expandName(m.prefix, r.name, event)})
	}
	if len(m.cache) < maxCachedNames {
		m.cache[event] = out
	}
	return out
}

// expandName substitutes the placeholders and escapes the result.
func expandName(prefix, tmpl, event string) string {
	base := event
	if i := strings.LastIndexByte(event, '.'); i >= 0 {
		base = event[:i]
	}
	s := strings.ReplaceAll(tmpl, "{event}", event)
	s = strings.ReplaceAll(s, "{base}", base)
	return string(appendEscaped(nil, prefix+s, true))
}
