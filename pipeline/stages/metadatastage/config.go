package metadatastage

import (
	"errors"
	"fmt"
	"sort"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Config is the metadata stage's configuration. The operations run in this
// order on each matching event: rename, then delete, then set.
type Config struct {
	// Events is a name glob; other events pass untouched. Default "*".
	Events string `koanf:"events"`
	// Set adds or replaces metadata keys. A value may reference the event
	// as it arrived at this stage: ${name}, ${correlation_id}, ${worker_id},
	// ${pool}, ${hostname}, ${pid}, ${meta.KEY} (any metadata key, host keys
	// included); "$$" is a literal '$'. A reference to something the event
	// lacks expands to "".
	Set map[string]string `koanf:"set"`
	// Rename maps old keys to new ones. A renamed key replaces an existing
	// key of the new name.
	Rename map[string]string `koanf:"rename"`
	// Delete removes keys.
	Delete []string `koanf:"delete"`
}

// DefaultConfig changes nothing.
func DefaultConfig() *Config { return &Config{Events: "*"} }

// ErrReservedKey is wrapped by Validate errors for host-context keys
// (worker_id, pool, hostname, pid, received_ns), which come from the
// worker's stream and cannot be changed by configuration.
var ErrReservedKey = errors.New("reserved host key")

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("key must not be empty")
	case pipeline.IsHostKey(key):
		return fmt.Errorf("%w %q cannot be changed", ErrReservedKey, key)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Validate reports every problem with its key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := pipeline.CompileGlob(c.Events); err != nil {
		errs = append(errs, fmt.Errorf("events: %w", err))
	}
	for _, k := range sortedKeys(c.Set) {
		if err := checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("set.%s: %w", k, err))
		}
		if _, err := parseTemplate(c.Set[k]); err != nil {
			errs = append(errs, fmt.Errorf("set.%s: %w", k, err))
		}
	}
	targets := map[string]string{}
	for _, k := range sortedKeys(c.Rename) {
		if err := checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("rename.%s: %w", k, err))
		}
		to := c.Rename[k]
		if err := checkKey(to); err != nil {
			errs = append(errs, fmt.Errorf("rename.%s: target: %w", k, err))
		}
		if prev, dup := targets[to]; dup {
			errs = append(errs, fmt.Errorf("rename.%s: %q and %q both rename to %q", k, prev, k, to))
		}
		targets[to] = k
	}
	for i, k := range c.Delete {
		if err := checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("delete[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
