package stderrsink

import "fmt"

// Format is the output format.
type Format string

const (
	// FormatJSON writes the JSON line format (pipeline.AppendJSON).
	FormatJSON Format = "json"
	// FormatText writes one human-readable line per event.
	FormatText Format = "text"
)

// Config is the stderr sink's configuration (sinks: {"stderr": {...}}).
type Config struct {
	// Format is "json" (default) or "text".
	Format Format `koanf:"format"`
}

// DefaultConfig writes JSON lines.
func DefaultConfig() *Config { return &Config{Format: FormatJSON} }

// Validate reports every problem with its key.
func (c *Config) Validate() error {
	switch c.Format {
	case FormatJSON, FormatText:
		return nil
	}
	return fmt.Errorf("format: %q is not one of json, text", string(c.Format))
}
