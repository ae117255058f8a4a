#!/usr/bin/env bash
# Installs the pinned etsy statsd daemon (package-lock.json) that the
# statsdsink integration tests start, into node_modules next to this file.
# Idempotent: does nothing while the install is newer than the lock file.
# Used by `make statsd-daemon` (a prerequisite of test-go) and by the Go test
# itself when run without make.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.snakepipe-installed
if [[ -f $stamp && $stamp -nt package-lock.json && $stamp -nt package.json ]]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "statsd-daemon: npm not found; the real-StatsD tests will be skipped" >&2
  exit 0
fi
npm ci --omit=optional --no-audit --no-fund --loglevel=error
# The package ships Go example files; keep them away from gofmt/vet.
rm -rf node_modules/statsd/examples
touch "$stamp"
