package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/snakepipe/snakepipe/pipeline"
)

// configFlags are the flags that choose and override the config, shared by
// run, validate and demo.
type configFlags struct {
	file string
	// overrides: flag name -> config key path.
	overrides map[string]string
	values    map[string]*string
}

// register adds -c/--config and, with overrides, the flags that override
// the most common settings.
func (f *configFlags) register(fs *flag.FlagSet, overrides bool) {
	const fileHelp = "config `FILE` (.yaml, .yml, .toml or .json); without it, the built-in config"
	fs.StringVar(&f.file, "c", "", fileHelp)
	fs.StringVar(&f.file, "config", "", "same as -c")
	f.overrides = map[string]string{}
	f.values = map[string]*string{}
	if !overrides {
		return
	}
	for _, o := range []struct{ name, key, usage string }{
		{"listen", "ingest.listen", "ingest listener `ADDR` (host:port) workers connect to (ingest.listen)"},
		{"admin", "admin.listen", "admin API listener `ADDR` (admin.listen); \"\" turns the admin API off"},
		{"log-level", "log.level", "log `LEVEL`: trace, debug, info, warn, error, off (log.level)"},
		{"log-format", "log.format", "log `FORMAT`: text or json (log.format)"},
	} {
		f.overrides[o.name] = o.key
		f.values[o.name] = fs.String(o.name, "", o.usage)
	}
}

// flagMap returns the overrides the user actually set, by key path.
func (f *configFlags) flagMap(fs *flag.FlagSet) map[string]any {
	out := map[string]any{}
	fs.Visit(func(fl *flag.Flag) {
		if key, ok := f.overrides[fl.Name]; ok {
			out[key] = *f.values[fl.Name]
		}
	})
	return out
}

// load loads the config the flags name, with the environment and flag
// overrides applied.
func (f *configFlags) load(c *cli, fs *flag.FlagSet, fac pipeline.Factories) (*Config, error) {
	return LoadConfig(LoadOptions{File: f.file, Env: c.environ, Flags: f.flagMap(fs), Factories: fac})
}

// source names the config for messages.
func (f *configFlags) source() string {
	if f.file == "" {
		return "the built-in config"
	}
	return f.file
}

// printConfigErrors writes every problem of a failed load, one per line.
func printConfigErrors(w io.Writer, source string, err error) {
	errs := pipeline.FlattenErrors(err)
	var keyed int
	for _, e := range errs {
		var ce *ConfigError
		if errors.As(e, &ce) {
			keyed++
		}
	}
	if keyed == 0 {
		fmt.Fprintf(w, "snakepipe: %v\n", err)
		return
	}
	noun := "problems"
	if len(errs) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(w, "snakepipe: %s has %d %s:\n", source, len(errs), noun)
	for _, e := range errs {
		fmt.Fprintf(w, "  %v\n", e)
	}
}
