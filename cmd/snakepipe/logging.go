package main

import (
	"io"

	"github.com/hashicorp/go-hclog"
)

// newLogger builds the process's one root logger; components get Named
// children. out is the SyncWriter the stderr sink shares, so a log line and
// an event line never interleave.
func newLogger(cfg LogConfig, out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "snakepipe",
		Level:      hclog.LevelFromString(cfg.Level),
		JSONFormat: cfg.Format == "json",
		Output:     out,
		Color:      hclog.ColorOff,
	})
}
