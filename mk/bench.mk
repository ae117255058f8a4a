# Load scenarios of `make bench` (cmd/snakepipe/internal/benchrun, configs in
# bench/scenarios): real `snakepipe run` hosts under `snakepipe loadgen` and
# Python worker processes, one Markdown table at the end (also written to
# bin/bench-table.md). Shorter or longer runs:
#   make bench BENCH_DURATION=5s BENCH_ROUNDS=1 BENCH_SOAK=0
#   make soak                                   10 minutes, RSS sampled
#   make bench-load BENCH_FLAGS="-profiles bin/profiles"   hosts' CPU profiles
BENCH_DURATION ?= 10s
BENCH_ROUNDS ?= 2
BENCH_SOAK ?= 60s
SOAK_DURATION ?= 10m
BENCH_FLAGS ?=

BENCH_TARGETS += bench-load

.PHONY: bench-load soak bench-tools
# (mk/*.mk are read in name order: name targets here, not variables of later files.)
bench-tools: build examples/plugins/c/slow_calls.wasm python-venv
	$(GO) build -o $(BIN)/benchrun ./cmd/snakepipe/internal/benchrun

bench-load: bench-tools ## Load scenarios (throughput, Wasm vs native filter, latency, Python workers, soak)
	$(BIN)/benchrun -bin $(BIN)/snakepipe -python $(VENV_PY) -duration $(BENCH_DURATION) \
		-rounds $(BENCH_ROUNDS) -soak $(BENCH_SOAK) $(BENCH_FLAGS) | tee $(BIN)/bench-table.md

soak: bench-tools ## Host RSS over a long run at 100k events/s (SOAK_DURATION, default 10m)
	$(BIN)/benchrun -bin $(BIN)/snakepipe -only soak -soak $(SOAK_DURATION) $(BENCH_FLAGS) | tee $(BIN)/soak-table.md
