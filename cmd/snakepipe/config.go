package main

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/hashicorp/go-hclog"
	"github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/snakepipe/snakepipe/catalog"
	"github.com/snakepipe/snakepipe/control"
	"github.com/snakepipe/snakepipe/ingest"
	"github.com/snakepipe/snakepipe/pipeline"
	"github.com/snakepipe/snakepipe/plugins"
)

// defaultConfigYAML is what `snakepipe run` uses without -c.
//
//go:embed default.yaml
var defaultConfigYAML []byte

// Config is the whole config file, decoded and validated. Sections that
// belong to a component (stages.<id>, sinks.<id>) are decoded onto that
// component factory's default config; pipelines.<name> onto
// pipeline.DefaultPipelineConfig.
type Config struct {
	Log     LogConfig           `koanf:"log"`
	Ingest  ingest.Config       `koanf:"ingest"`
	Catalog catalog.Config      `koanf:"catalog"`
	Policy  pipeline.Policy     `koanf:"policy"`
	Admin   control.AdminConfig `koanf:"admin"`
	Plugins plugins.HostConfig  `koanf:"plugins"`
	Runtime RuntimeConfig       `koanf:"runtime"`

	Stages    map[pipeline.ComponentID]pipeline.Config `koanf:"-"`
	Sinks     map[pipeline.ComponentID]SinkConfig      `koanf:"-"`
	Pipelines map[string]pipeline.PipelineConfig       `koanf:"-"`

	// Warnings are things worth telling but not wrong (a sink no pipeline
	// uses). run logs them, validate prints them.
	Warnings []string `koanf:"-"`
}

// SinkConfig is one sinks.<id> section: the sink's own config plus the
// delivery policy (queue, retry, circuit, workers) of the Exporter that
// wraps it.
type SinkConfig struct {
	Sink     pipeline.Config
	Exporter pipeline.ExporterConfig
}

// LogConfig is the `log` section.
type LogConfig struct {
	// Level: trace, debug, info, warn, error or off.
	Level string `koanf:"level"`
	// Format: text (one human-readable line per entry) or json.
	Format string `koanf:"format"`
}

// DefaultConfig holds every default; the file, environment and flags are
// decoded on top of it.
func DefaultConfig() Config {
	return Config{
		Log:       LogConfig{Level: "info", Format: "text"},
		Ingest:    ingest.DefaultConfig(),
		Catalog:   catalog.DefaultConfig(),
		Policy:    pipeline.DefaultPolicy(),
		Admin:     control.DefaultAdminConfig(),
		Plugins:   plugins.DefaultHostConfig(),
		Runtime:   DefaultRuntimeConfig(),
		Stages:    map[pipeline.ComponentID]pipeline.Config{},
		Sinks:     map[pipeline.ComponentID]SinkConfig{},
		Pipelines: map[string]pipeline.PipelineConfig{},
	}
}

// Validate checks the log section.
func (c LogConfig) Validate() error {
	var errs []error
	if hclog.LevelFromString(c.Level) == hclog.NoLevel {
		errs = append(errs, fmt.Errorf("level: %q is not one of trace, debug, info, warn, error, off", c.Level))
	}
	if c.Format != "text" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("format: %q is not one of text, json", c.Format))
	}
	return errors.Join(errs...)
}

// Graph returns the part of the config the pipeline graph is built from.
func (c *Config) Graph() pipeline.GraphConfig {
	g := pipeline.GraphConfig{
		Stages:    c.Stages,
		Sinks:     make(map[pipeline.ComponentID]pipeline.Config, len(c.Sinks)),
		Pipelines: c.Pipelines,
	}
	for id, s := range c.Sinks {
		g.Sinks[id] = s.Sink
	}
	seen := map[pipeline.ComponentID]bool{}
	for _, st := range c.Stages {
		if dl, ok := deadLetterSink(st); ok && !seen[dl] {
			seen[dl] = true
			g.ExtraSinks = append(g.ExtraSinks, dl)
		}
	}
	slices.SortFunc(g.ExtraSinks, func(a, b pipeline.ComponentID) int { return strings.Compare(a.String(), b.String()) })
	return g
}

// deadLetterSink returns the sink a stage writes failed batches to
// directly (a wasm stage with on_error: dead_letter).
func deadLetterSink(c pipeline.Config) (pipeline.ComponentID, bool) {
	wc, ok := c.(*plugins.Config)
	if !ok || wc.OnError != plugins.OnErrorDeadLetter || wc.DeadLetter == "" {
		return pipeline.ComponentID{}, false
	}
	id, err := pipeline.ParseComponentID(wc.DeadLetter)
	return id, err == nil
}

// ConfigError is one problem in the config, with the full key path.
type ConfigError struct {
	Key string // "sinks.file/main.max_bytes", "pipelines.default.sinks[0]"; "" for the file as a whole
	Msg string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// EnvPrefix starts every environment variable the loader reads.
const EnvPrefix = "SNAKEPIPE_"

// LoadOptions says where a config comes from.
type LoadOptions struct {
	// File is the config file (.yaml, .yml, .toml or .json); "" loads the
	// embedded default config.
	File string
	// Data, when not nil, is used instead of reading File (whose extension
	// still picks the format). Tests and the fuzzer use it.
	Data []byte
	// Env is the environment ("KEY=value" entries, as os.Environ returns).
	// Only SNAKEPIPE_ variables whose names contain "__" are read.
	Env []string
	// Flags are overrides from command-line flags, by key path
	// ("ingest.listen"); only flags the user set belong here.
	Flags map[string]any
	// Factories decode and validate the stages and sinks sections.
	Factories pipeline.Factories
}

// LoadConfig reads, decodes and validates a config: file (or the embedded
// default), then environment, then flags, decoded onto DefaultConfig. It
// reports every problem at once, each a *ConfigError naming its key, sorted
// by key.
func LoadConfig(opts LoadOptions) (*Config, error) {
	k := koanf.New(".")
	if opts.File == "" {
		if err := k.Load(rawbytes.Provider(defaultConfigYAML), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("embedded default config: %w", err)
		}
	} else {
		var parser koanf.Parser
		switch strings.ToLower(filepath.Ext(opts.File)) {
		case ".yaml", ".yml":
			parser = yaml.Parser()
		case ".toml":
			parser = toml.Parser()
		case ".json":
			parser = json.Parser()
		default:
			return nil, fmt.Errorf("config file %s: unknown extension %q: use .yaml, .yml, .toml or .json", opts.File, filepath.Ext(opts.File))
		}
		var p koanf.Provider = file.Provider(opts.File)
		if opts.Data != nil {
			p = rawbytes.Provider(opts.Data)
		}
		if err := k.Load(p, parser); err != nil {
			return nil, fmt.Errorf("config file %s: %w", opts.File, err)
		}
	}
	if err := k.Load(envProvider(opts.Env), nil); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	if len(opts.Flags) > 0 {
		if err := k.Load(confmap.Provider(opts.Flags, "."), nil); err != nil {
			return nil, fmt.Errorf("flags: %w", err)
		}
	}
	return decodeConfig(k.Raw(), opts.Factories)
}

// envProvider maps SNAKEPIPE_INGEST__MAX_MESSAGE_BYTES=1048576 to
// ingest.max_message_bytes: the prefix is removed, the rest lower-cased,
// and "__" separates levels (a single "_" stays, since keys use it).
// Variables without "__" (SNAKEPIPE_ENDPOINT, SNAKEPIPE_WORKER_ID: the
// worker library's) are not config and are skipped. Values are parsed as
// YAML scalars or flow collections, so 5 is an int, true a bool, 0.5 a
// float, [a, b] a list and 2s a string (durations decode from strings).
func envProvider(environ []string) *env.Env {
	return env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(k, v string) (string, any) {
			rest := strings.TrimPrefix(k, EnvPrefix)
			if !strings.Contains(rest, "__") {
				return "", nil
			}
			return strings.ReplaceAll(strings.ToLower(rest), "__", "."), parseEnvValue(v)
		},
	})
}

func parseEnvValue(v string) any {
	if strings.TrimSpace(v) == "" {
		return v
	}
	var out any
	if err := yamlv3.Unmarshal([]byte(v), &out); err != nil {
		return v
	}
	switch out.(type) {
	case map[string]any, []any, string, int, float64, bool:
		return out
	}
	return v // null, timestamps and the like stay the literal text
}

// decodeConfig decodes and validates a raw config map (koanf's nested maps).
func decodeConfig(raw map[string]any, f pipeline.Factories) (*Config, error) {
	cfg := DefaultConfig()
	var errs []*ConfigError
	broken := map[string]bool{} // component ids whose section could not be used

	top := maps.Clone(raw)
	stages, sinks, pipes := top["stages"], top["sinks"], top["pipelines"]
	delete(top, "stages")
	delete(top, "sinks")
	delete(top, "pipelines")
	errs = append(errs, decodeInto("", top, &cfg)...)

	for name, body := range sectionMap("pipelines", pipes, &errs) {
		pc := pipeline.DefaultPipelineConfig()
		errs = append(errs, decodeInto("pipelines."+name, body, &pc)...)
		cfg.Pipelines[name] = pc
	}
	for _, sec := range []struct {
		name string
		v    any
	}{{"stages", stages}, {"sinks", sinks}} {
		if _, isMap := sec.v.(map[string]any); sec.v != nil && !isMap {
			broken["*"+sec.name] = true // the whole section is unusable
		}
	}
	for idStr, body := range sectionMap("stages", stages, &errs) {
		key := "stages." + idStr
		id, err := pipeline.ParseComponentID(idStr)
		if err != nil {
			errs = append(errs, &ConfigError{Key: key, Msg: err.Error()})
			broken[idStr] = true
			continue
		}
		fac, ok := f.Stages[id.Type]
		if !ok {
			broken[idStr] = true
			errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf("unknown stage type %q (known: %s)", id.Type, knownTypes(f.Stages))})
			continue
		}
		c := fac.CreateDefaultConfig()
		errs = append(errs, decodeInto(key, body, c)...)
		cfg.Stages[id] = c
	}
	for idStr, body := range sectionMap("sinks", sinks, &errs) {
		key := "sinks." + idStr
		id, err := pipeline.ParseComponentID(idStr)
		if err != nil {
			errs = append(errs, &ConfigError{Key: key, Msg: err.Error()})
			broken[idStr] = true
			continue
		}
		fac, ok := f.Sinks[id.Type]
		if !ok {
			broken[idStr] = true
			errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf("unknown sink type %q (known: %s)", id.Type, knownTypes(f.Sinks))})
			continue
		}
		sc := SinkConfig{Sink: fac.CreateDefaultConfig(), Exporter: pipeline.DefaultExporterConfig()}
		own, wrapper := splitExporterKeys(body)
		errs = append(errs, decodeInto(key, own, sc.Sink)...)
		errs = append(errs, decodeInto(key, wrapper, &sc.Exporter)...)
		cfg.Sinks[id] = sc
	}
	// Validate even when decoding failed somewhere, so every problem is
	// reported at once; but a key that failed to decode (and so holds its
	// default) is not also reported by validation, nor is a reference to a
	// component whose section was unusable.
	decodeErrs := slices.Clone(errs)
	collect := func(key string, err error) {
		for _, ce := range configErrors(key, err) {
			if !coveredBy(ce, decodeErrs, broken) {
				errs = append(errs, ce)
			}
		}
	}
	collect("log", cfg.Log.Validate())
	collect("ingest", cfg.Ingest.Validate())
	collect("catalog", cfg.Catalog.Validate())
	collect("policy", stripSentinel(cfg.Policy.Validate(), pipeline.ErrBadPolicy))
	collect("admin", cfg.Admin.Validate())
	collect("plugins", cfg.Plugins.Validate())
	collect("runtime", cfg.Runtime.Validate())
	for id, c := range cfg.Stages {
		collect("stages."+id.String(), c.Validate())
		if dl, ok := deadLetterSink(c); ok {
			if _, known := cfg.Sinks[dl]; !known {
				collect("stages."+id.String(), fmt.Errorf("dead_letter: unknown sink %q (no sinks.%s section)", dl, dl))
			}
		}
	}
	for id, c := range cfg.Sinks {
		collect("sinks."+id.String(), c.Sink.Validate())
		collect("sinks."+id.String(), c.Exporter.Validate())
	}
	collect("", cfg.Graph().Validate(f))
	if len(errs) > 0 {
		return nil, joinConfigErrors(errs)
	}
	cfg.Warnings = unusedWarnings(&cfg)
	return &cfg, nil
}

// configErrors turns a Validate error into ConfigErrors under key: each
// message starts with a key relative to it ("max_bytes: must be > 0"), or
// already with the full key ("ingest.listen: ..."), or with no key at all.
func configErrors(key string, err error) []*ConfigError {
	var out []*ConfigError
	for _, e := range pipeline.FlattenErrors(err) {
		msg := e.Error()
		if k, rest, ok := strings.Cut(msg, ": "); ok && key != "" && hasKeyPrefix(k, key) && looksLikeKeyPath(k) {
			out = append(out, &ConfigError{Key: k, Msg: rest})
			continue
		}
		full := msg
		if key != "" {
			full = pipeline.PrefixKey(key, msg)
		}
		k, rest, _ := strings.Cut(full, ": ")
		out = append(out, &ConfigError{Key: k, Msg: rest})
	}
	return out
}

// coveredBy reports whether a validation error only repeats a problem
// already reported: its key (or a parent) failed to decode, or it is a
// pipeline's reference to a component whose section was unusable.
func coveredBy(ce *ConfigError, decodeErrs []*ConfigError, broken map[string]bool) bool {
	for _, d := range decodeErrs {
		if d.Msg != "unknown key" && hasKeyPrefix(ce.Key, d.Key) {
			return true
		}
	}
	if strings.HasPrefix(ce.Key, "pipelines.") {
		if broken["*stages"] && strings.HasPrefix(ce.Msg, "unknown stage") ||
			broken["*sinks"] && strings.HasPrefix(ce.Msg, "unknown sink") {
			return true
		}
		for id := range broken {
			if strings.Contains(ce.Msg, strconv.Quote(id)) {
				return true
			}
		}
	}
	return false
}

// hasKeyPrefix reports whether key k is prefix or lies under it.
func hasKeyPrefix(k, prefix string) bool {
	return k == prefix || strings.HasPrefix(k, prefix+".") || strings.HasPrefix(k, prefix+"[")
}

// checkConfig runs the checks that need more than decoding (the catalog
// must compile with the user's events) without creating anything that
// touches the outside world. `validate` and NewService both use it.
func checkConfig(cfg *Config) error {
	if _, err := catalog.New(cfg.Catalog); err != nil {
		return joinConfigErrors(configErrors("catalog", err))
	}
	return nil
}

// stripSentinel removes a sentinel's "sentinel: " prefix from each message.
func stripSentinel(err, sentinel error) error {
	var out []error
	for _, e := range pipeline.FlattenErrors(err) {
		out = append(out, errors.New(strings.TrimPrefix(e.Error(), sentinel.Error()+": ")))
	}
	return errors.Join(out...)
}

// exporterKeys are the keys of pipeline.ExporterConfig: under sinks.<id>
// they configure the sink's delivery (queue, retries, breaker), the rest is
// the sink's own config.
var exporterKeys = []string{"queue", "retry", "circuit", "workers"}

func splitExporterKeys(body any) (own, wrapper any) {
	m, ok := body.(map[string]any)
	if !ok {
		return body, nil
	}
	o, w := map[string]any{}, map[string]any{}
	for k, v := range m {
		if slices.Contains(exporterKeys, k) {
			w[k] = v
		} else {
			o[k] = v
		}
	}
	return o, w
}

// sectionMap returns a map section's entries; a section that is not a map
// is an error. A nil section (absent, or "stages:" with no body) is empty.
func sectionMap(key string, v any, errs *[]*ConfigError) map[string]any {
	switch m := v.(type) {
	case nil:
		return nil
	case map[string]any:
		return m
	default:
		*errs = append(*errs, &ConfigError{Key: key, Msg: fmt.Sprintf("must be a map of id to settings, not %s", describe(v))})
		return nil
	}
}

func knownTypes[F any](m map[string]F) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

func describe(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a bool"
	case int, int64, float64, uint64:
		return "a number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// decodeInto decodes body onto out (a pointer holding defaults): unknown
// keys are errors, durations decode from strings ("2s"), and values are not
// converted between kinds (a quoted "5" is not an int). A nil body keeps the
// defaults. Every problem comes back as a *ConfigError with the full key.
func decodeInto(key string, body any, out any) []*ConfigError {
	if body == nil {
		return nil
	}
	if _, ok := body.(map[string]any); !ok {
		return []*ConfigError{{Key: key, Msg: fmt.Sprintf("must be a map of settings, not %s", describe(body))}}
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:     "koanf",
		ErrorUnused: true,
		Result:      out,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationNeedsUnit,
			wholeNumbers,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
	})
	if err != nil {
		return []*ConfigError{{Key: key, Msg: err.Error()}}
	}
	return decodeErrors(key, dec.Decode(body), reflect.TypeOf(out).Elem())
}

// decodeErrors turns mapstructure's error tree into one ConfigError per
// problem: "'queue' has invalid keys: a, b" becomes "queue.a: unknown key"
// and "queue.b: unknown key", with a "did you mean" hint when a known key
// is close. root is the type decoded onto (mapstructure names the top level
// after it).
func decodeErrors(prefix string, err error, root reflect.Type) []*ConfigError {
	var out []*ConfigError
	for _, e := range decodeErrorLeaves(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			out = append(out, &ConfigError{Key: prefix, Msg: e.Error()})
			continue
		}
		name := de.Name()
		if name == root.String() {
			name = ""
		}
		rel := normalizeKey(name)
		key := joinKey(prefix, rel)
		inner := de.Unwrap()
		msg := inner.Error()
		if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			for _, k := range strings.Split(keys, ", ") {
				msg := "unknown key"
				if s := suggestKey(root, rel, k); s != "" {
					msg += " (did you mean " + s + "?)"
				}
				out = append(out, &ConfigError{Key: joinKey(key, k), Msg: msg})
			}
			continue
		}
		out = append(out, &ConfigError{Key: key, Msg: friendlyDecodeMessage(inner)})
	}
	return out
}

// decodeErrorLeaves walks mapstructure's error (a wrapped join of joins)
// down to the *DecodeError leaves.
func decodeErrorLeaves(err error) []error {
	if err == nil {
		return nil
	}
	if _, leaf := err.(*mapstructure.DecodeError); leaf {
		return []error{err}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, decodeErrorLeaves(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return decodeErrorLeaves(inner)
		}
	}
	return []error{err}
}

// durationNeedsUnit refuses bare numbers for durations: "timeout: 5"
// would otherwise mean 5ns. 0 is fine without a unit.
func durationNeedsUnit(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch v := data.(type) {
	case int:
		if v != 0 {
			return nil, fmt.Errorf("%d has no unit: write a duration like \"%ds\" or \"%dms\"", v, v, v)
		}
	case int64:
		if v != 0 {
			return nil, fmt.Errorf("%d has no unit: write a duration like \"%ds\" or \"%dms\"", v, v, v)
		}
	case float64:
		if v != 0 {
			return nil, fmt.Errorf("%v has no unit: write a duration like \"1.5s\"", v)
		}
	}
	return data, nil
}

// wholeNumbers refuses fractions for integer keys ("workers: 2.5" would
// otherwise become 2). JSON numbers arrive as floats, so 2.0 is fine.
func wholeNumbers(_, to reflect.Type, data any) (any, error) {
	f, ok := data.(float64)
	if !ok {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if to == reflect.TypeFor[time.Duration]() {
			return data, nil // durationNeedsUnit explains
		}
		if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%v is not a whole number", f)
		}
	}
	return data, nil
}

func friendlyDecodeMessage(err error) string {
	var ut *mapstructure.UnconvertibleTypeError
	if errors.As(err, &ut) {
		return fmt.Sprintf("expected %s, got %s (%v)", ut.Expected.Type(), describe(ut.Value), ut.Value)
	}
	if kind, ok := strings.CutPrefix(err.Error(), "source data must be an array or slice, got "); ok {
		return "expected a list, got a " + kind
	}
	return err.Error()
}

// normalizeKey turns mapstructure's "pipelines[default].queue" into
// "pipelines.default.queue"; list indexes stay ("allow[2]").
func normalizeKey(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '[' {
			b.WriteByte(name[i])
			continue
		}
		end := strings.IndexByte(name[i:], ']')
		if end < 0 {
			b.WriteString(name[i:])
			break
		}
		inner := name[i+1 : i+end]
		if isDigits(inner) {
			b.WriteString(name[i : i+end+1])
		} else {
			b.WriteByte('.')
			b.WriteString(inner)
		}
		i += end
	}
	return b.String()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func joinKey(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix
	case strings.HasPrefix(key, "["):
		return prefix + key
	}
	return prefix + "." + key
}

func looksLikeKeyPath(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\n\"'")
}

// unusedWarnings names components no pipeline uses (they are not created).
func unusedWarnings(cfg *Config) []string {
	used := map[string]bool{}
	for _, p := range cfg.Pipelines {
		for _, s := range p.Stages {
			used["stages."+s] = true
		}
		for _, s := range p.Sinks {
			used["sinks."+s] = true
		}
	}
	for _, id := range cfg.Graph().ExtraSinks {
		used["sinks."+id.String()] = true
	}
	var out []string
	for id := range cfg.Stages {
		if !used["stages."+id.String()] {
			out = append(out, fmt.Sprintf("stages.%s: no pipeline uses this stage", id))
		}
	}
	for id := range cfg.Sinks {
		if !used["sinks."+id.String()] {
			out = append(out, fmt.Sprintf("sinks.%s: no pipeline uses this sink", id))
		}
	}
	slices.Sort(out)
	return out
}

// joinConfigErrors sorts errs by key and joins them.
func joinConfigErrors(errs []*ConfigError) error {
	slices.SortStableFunc(errs, func(a, b *ConfigError) int { return strings.Compare(a.Key, b.Key) })
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		out = append(out, e)
	}
	return errors.Join(out...)
}
