# Runtime control area: control/ (policy store, enforcer, tap, admin API)
# and `snakepipe ctl`.

BENCH_TARGETS += bench-control

.PHONY: bench-control
bench-control: ## Policy fan-out to 1, 100 and 1000 live worker streams (BENCHMARKS.md "Runtime control")
	$(GO) test -run '^$$' -bench 'BenchmarkPolicyFanout' -benchtime 100x -count 5 ./cmd/snakepipe/
