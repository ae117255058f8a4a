package main

import (
	"context"

	"github.com/snakepipe/snakepipe/cmd/snakepipe/internal/ctl"
)

var ctlCommand = &command{
	name:    "ctl",
	summary: "talk to a running snakepipe's admin API (workers, policy, plugins, tap, stats)",
	run: func(ctx context.Context, c *cli, args []string) int {
		return ctl.Main(ctx, args, c.stdout, c.stderr)
	},
}
