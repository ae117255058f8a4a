# The etsy statsd daemon (npm, version pinned by package-lock.json) that the
# statsdsink integration tests start. Installed into the testdata folder's
# node_modules (git-ignored); re-installed only when the lock file changes.
STATSD_DAEMON_DIR := sinks/statsdsink/testdata/statsd
STATSD_DAEMON_STAMP := $(STATSD_DAEMON_DIR)/node_modules/.snakepipe-installed

$(STATSD_DAEMON_STAMP): $(STATSD_DAEMON_DIR)/package.json $(STATSD_DAEMON_DIR)/package-lock.json $(STATSD_DAEMON_DIR)/install.sh
	bash $(STATSD_DAEMON_DIR)/install.sh

.PHONY: statsd-daemon bench-statsd
statsd-daemon: $(STATSD_DAEMON_STAMP) ## Install the pinned etsy statsd daemon for the StatsD sink tests

bench-statsd: ## StatsD sink benchmarks (BENCHMARKS.md, "StatsD sink")
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./sinks/statsdsink/

PLUGIN_TARGETS += statsd-daemon
