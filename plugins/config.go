package plugins

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/snakepipe/snakepipe/pipeline"
)

// On-error actions for a failed batch.
const (
	OnErrorPass       = "pass"
	OnErrorDrop       = "drop"
	OnErrorDeadLetter = "dead_letter"

	DisabledBypass = "bypass"
	DisabledDrop   = "drop"
)

// Config is a `wasm` stage's configuration (docs/config.md#wasm).
type Config struct {
	// Path is the .wasm file.
	Path string `koanf:"path"`
	// Kind is "filter", "enrich" or "" (from the module's exports).
	Kind string `koanf:"kind"`
	// Config is passed to the plugin's snk_init.
	Config map[string]string `koanf:"config"`
	// OnError is what happens to a batch the plugin failed on: pass, drop
	// or dead_letter.
	OnError string `koanf:"on_error"`
	// DeadLetter is the sink id that receives failed batches when OnError
	// is dead_letter.
	DeadLetter string `koanf:"dead_letter"`
	// DisabledBehavior is what happens to batches while the breaker is
	// open: bypass (pass unchanged) or drop.
	DisabledBehavior string `koanf:"disabled_behavior"`
	// MemoryLimitPages limits each instance's linear memory (64 KiB pages);
	// 0 means plugins.memory_limit_pages.
	MemoryLimitPages uint32 `koanf:"memory_limit_pages"`
	// Deadline bounds one batch's guest calls (ignored when Trusted).
	Deadline time.Duration `koanf:"deadline"`
	// Trusted runs the module unchanged and without a deadline (no loop
	// checks; an infinite loop then hangs its pipeline worker and, by
	// blocking the garbage collector, soon the process).
	Trusted bool `koanf:"trusted"`
	// Instances is the number of instances run in parallel; 0 means
	// GOMAXPROCS (at most 32).
	Instances int `koanf:"instances"`
	// MaxEventBytes: events whose encoded record is larger skip the plugin
	// and are handled by OnError.
	MaxEventBytes int `koanf:"max_event_bytes"`
	// SelfTest is a batch every new version must handle without failing
	// before it goes live.
	SelfTest SelfTestConfig `koanf:"self_test"`
}

// SelfTestConfig gives the self-test batch: inline JSON lines and/or a
// JSON-lines file (the event line format of the file sink).
type SelfTestConfig struct {
	Events []string `koanf:"events"`
	File   string   `koanf:"file"`
}

// DefaultConfig returns a stage config holding the defaults.
func DefaultConfig() *Config {
	return &Config{
		OnError:          OnErrorPass,
		DisabledBehavior: DisabledBypass,
		Deadline:         50 * time.Millisecond,
		MaxEventBytes:    defaultInBuf,
	}
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: required (the .wasm file)"))
	}
	if _, err := ParseKind(c.Kind); err != nil {
		errs = append(errs, fmt.Errorf("kind: %w", err))
	}
	switch c.OnError {
	case OnErrorPass, OnErrorDrop:
		if c.DeadLetter != "" {
			errs = append(errs, fmt.Errorf("dead_letter: set, but on_error is %q (use on_error: dead_letter)", c.OnError))
		}
	case OnErrorDeadLetter:
		if c.DeadLetter == "" {
			errs = append(errs, errors.New("dead_letter: required when on_error is dead_letter (a sink id)"))
		} else if _, err := pipeline.ParseComponentID(c.DeadLetter); err != nil {
			errs = append(errs, fmt.Errorf("dead_letter: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("on_error: %q is not one of pass, drop, dead_letter", c.OnError))
	}
	switch c.DisabledBehavior {
	case DisabledBypass, DisabledDrop:
	default:
		errs = append(errs, fmt.Errorf("disabled_behavior: %q is not bypass or drop", c.DisabledBehavior))
	}
	if c.MemoryLimitPages > hardMaxPages {
		errs = append(errs, fmt.Errorf("memory_limit_pages: %d is over the maximum %d (64 MiB)", c.MemoryLimitPages, hardMaxPages))
	}
	if c.Deadline < time.Millisecond || c.Deadline > hardMaxDeadline {
		errs = append(errs, fmt.Errorf("deadline: %s is outside 1ms..1s", c.Deadline))
	}
	if c.Instances < 0 || c.Instances > hardMaxInstances {
		errs = append(errs, fmt.Errorf("instances: %d is outside 0..%d (0 = GOMAXPROCS)", c.Instances, hardMaxInstances))
	}
	if c.MaxEventBytes < 1 || c.MaxEventBytes > maxEventBytes {
		errs = append(errs, fmt.Errorf("max_event_bytes: %d is outside 1..%d", c.MaxEventBytes, maxEventBytes))
	}
	if frame, err := EncodeConfig(c.Config); err != nil {
		errs = append(errs, fmt.Errorf("config: %w", err))
	} else if len(frame) > c.minCap() {
		errs = append(errs, fmt.Errorf("config: encoded config is %d bytes, larger than the %d-byte input buffer", len(frame), c.minCap()))
	}
	if _, err := c.SelfTest.load(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) minCap() int {
	if c.MaxEventBytes > defaultInBuf {
		return c.MaxEventBytes
	}
	return defaultInBuf
}

// load parses the self-test events.
func (st SelfTestConfig) load() ([]pipeline.Event, error) {
	var out []pipeline.Event
	for i, line := range st.Events {
		e, err := pipeline.ParseEventJSON([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("self_test.events[%d]: %w", i, err)
		}
		out = append(out, e)
	}
	if st.File != "" {
		data, err := os.ReadFile(st.File)
		if err != nil {
			return nil, fmt.Errorf("self_test.file: %w", err)
		}
		evs, err := pipeline.ReadEventsJSON(strings.NewReader(string(data)))
		if err != nil {
			return nil, fmt.Errorf("self_test.file %s: %w", st.File, err)
		}
		out = append(out, evs...)
	}
	return out, nil
}
