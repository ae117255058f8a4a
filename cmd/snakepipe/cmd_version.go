package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/snakepipe/snakepipe/ingest"
	"github.com/snakepipe/snakepipe/plugins"
)

// version and commit are set at build time by the Makefile:
// -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

var versionCommand = &command{
	name:    "version",
	summary: "print the version, commit, protocol, plugin ABI, Go and wazero versions",
	run:     runVersion,
}

const versionHelp = `
Usage: snakepipe version

Prints snakepipe's version and commit, the Go version it was built with,
the worker protocol and plugin ABI versions it speaks, and the wazero
(WebAssembly runtime) version.
`

func runVersion(_ context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "version", versionHelp)
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	fmt.Fprint(c.stdout, versionText())
	return 0
}

func versionText() string {
	rev, wazero := commit, ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && rev == "" {
				rev = s.Value
			}
		}
		for _, d := range info.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wazero = d.Version
				if d.Replace != nil {
					wazero = d.Replace.Version
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	out := fmt.Sprintf("snakepipe %s\ncommit:   %s\ngo:       %s %s/%s\nprotocol: snakepipe.v1 (version %d)\nplugins:  ABI v%d\n",
		version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH, ingest.ProtocolVersion, plugins.ABIVersion)
	if wazero != "" {
		out += fmt.Sprintf("wazero:   %s\n", wazero)
	}
	return out
}
