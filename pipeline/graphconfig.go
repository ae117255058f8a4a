package pipeline

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// PipelineConfig is one entry of the config file's `pipelines` section: an
// ordered list of stage ids, the sinks it routes to, its input queue and how
// many workers run its stages.
type PipelineConfig struct {
	// Stages are stage ids ("sample/gc") run in order. Each pipeline gets its
	// own instance of each stage it lists.
	Stages []string `koanf:"stages"`
	// Sinks are sink ids ("file/main") every surviving batch is written to.
	// Sink instances are shared by all pipelines that route to them.
	Sinks []string `koanf:"sinks"`
	// Queue bounds the pipeline's input and says what happens when it is full.
	Queue QueueConfig `koanf:"queue"`
	// Workers is the number of goroutines taking batches from the queue and
	// running the stages. Batches are delivered in queue order with one
	// worker; with more, batches may overtake each other.
	Workers int `koanf:"workers"`
}

// MaxPipelineWorkers bounds PipelineConfig.Workers.
const MaxPipelineWorkers = 256

// DefaultPipelineConfig returns the defaults: the default queue and two
// workers, no stages and no sinks.
func DefaultPipelineConfig() PipelineConfig {
	return PipelineConfig{Queue: DefaultQueueConfig(), Workers: 2}
}

// Validate checks the pipeline on its own (that the ids it names exist is
// checked when the graph is built). Every problem is reported, each naming
// its key relative to the pipeline ("sinks[0]: ...").
func (c PipelineConfig) Validate() error {
	var errs []error
	if c.Workers < 1 || c.Workers > MaxPipelineWorkers {
		errs = append(errs, fmt.Errorf("workers: %d is not in [1, %d]", c.Workers, MaxPipelineWorkers))
	}
	if len(c.Sinks) == 0 {
		errs = append(errs, errors.New("sinks: a pipeline needs at least one sink"))
	}
	errs = append(errs, validateIDList("stages", c.Stages)...)
	errs = append(errs, validateIDList("sinks", c.Sinks)...)
	for _, e := range FlattenErrors(c.Queue.Validate()) {
		errs = append(errs, errors.New(PrefixKey("queue", e.Error())))
	}
	return errors.Join(errs...)
}

func validateIDList(key string, ids []string) []error {
	var errs []error
	seen := make(map[string]int, len(ids))
	for i, s := range ids {
		if _, err := ParseComponentID(s); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
			continue
		}
		if j, dup := seen[s]; dup {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is already listed at %s[%d]", key, i, s, key, j))
			continue
		}
		seen[s] = i
	}
	return errs
}

// GraphConfig is everything a Graph is built from: component configs by id
// (already decoded onto their factories' defaults and validated) and the
// pipelines that use them. Components no pipeline names are not created.
type GraphConfig struct {
	Stages    map[ComponentID]Config
	Sinks     map[ComponentID]Config
	Pipelines map[string]PipelineConfig
	// ExtraSinks are sinks to create even if no pipeline routes to them:
	// stages write to them directly through Graph.DeadLetter (a wasm
	// stage's dead_letter sink).
	ExtraSinks []ComponentID
}

// Validate checks every pipeline and that every id it names has a config
// section and a factory. Errors name their config keys
// (`pipelines.default.stages[1]: unknown stage "filter/x"`); all are
// reported. It creates nothing, so `snakepipe validate` can call it.
func (c GraphConfig) Validate(f Factories) error {
	if len(c.Pipelines) == 0 {
		return errors.New("pipelines: at least one pipeline is needed")
	}
	var errs []error
	for _, name := range c.pipelineNames() {
		pc := c.Pipelines[name]
		key := "pipelines." + name
		for _, e := range FlattenErrors(pc.Validate()) {
			errs = append(errs, errors.New(PrefixKey(key, e.Error())))
		}
		for i, s := range pc.Stages {
			id, err := ParseComponentID(s)
			if err != nil {
				continue // reported by Validate
			}
			if _, ok := c.Stages[id]; !ok {
				errs = append(errs, fmt.Errorf("%s.stages[%d]: unknown stage %q (no stages.%s section)", key, i, s, s))
			} else if _, ok := f.Stages[id.Type]; !ok {
				errs = append(errs, fmt.Errorf("%s.stages[%d]: unknown stage type %q", key, i, id.Type))
			}
		}
		for i, s := range pc.Sinks {
			id, err := ParseComponentID(s)
			if err != nil {
				continue
			}
			if _, ok := c.Sinks[id]; !ok {
				errs = append(errs, fmt.Errorf("%s.sinks[%d]: unknown sink %q (no sinks.%s section)", key, i, s, s))
			} else if _, ok := f.Sinks[id.Type]; !ok {
				errs = append(errs, fmt.Errorf("%s.sinks[%d]: unknown sink type %q", key, i, id.Type))
			}
		}
	}
	for _, id := range c.ExtraSinks {
		if _, ok := c.Sinks[id]; !ok {
			errs = append(errs, fmt.Errorf("unknown sink %q (no sinks.%s section)", id, id))
		} else if _, ok := f.Sinks[id.Type]; !ok {
			errs = append(errs, fmt.Errorf("sinks.%s: unknown sink type %q", id, id.Type))
		}
	}
	return errors.Join(errs...)
}

func (c GraphConfig) pipelineNames() []string {
	names := make([]string, 0, len(c.Pipelines))
	for name := range c.Pipelines {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// FlattenErrors returns the leaves of err's errors.Join tree: every error
// whose message is the newline-join of its children's is replaced by its
// children. A nil err gives nil.
func FlattenErrors(err error) []error {
	if err == nil {
		return nil
	}
	u, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	kids := u.Unwrap()
	msgs := make([]string, 0, len(kids))
	for _, k := range kids {
		if k != nil {
			msgs = append(msgs, k.Error())
		}
	}
	if strings.Join(msgs, "\n") != err.Error() {
		return []error{err} // a wrapper with its own message, not a join
	}
	var out []error
	for _, k := range kids {
		out = append(out, FlattenErrors(k)...)
	}
	return out
}

// PrefixKey puts prefix in front of the key a config error message starts
// with: PrefixKey("queue", "max_events: must be > 0") is
// "queue.max_events: must be > 0", PrefixKey("allow", "[2]: bad glob") is
// "allow[2]: bad glob". A message that does not start with a key
// ("must not be empty") becomes "prefix: must not be empty".
func PrefixKey(prefix, msg string) string {
	key, rest, ok := strings.Cut(msg, ": ")
	if !ok || !looksLikeKey(key) {
		return prefix + ": " + msg
	}
	if strings.HasPrefix(key, "[") {
		return prefix + key + ": " + rest
	}
	return prefix + "." + key + ": " + rest
}

// looksLikeKey reports whether s could be a config key path: snake_case
// words, dots, brackets and component ids, no spaces.
func looksLikeKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '[', c == ']', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}
