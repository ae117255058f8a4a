# snakepipe build. `make run` and `make test` are the two commands a newcomer
# needs; both install what they need. Area-specific targets live in mk/*.mk
# and add themselves to the lists below (TEST_TARGETS, GENERATE_TARGETS,
# BENCH_TARGETS, PLUGIN_TARGETS), so the top-level targets stay one line each.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

TEST_TARGETS := check-generated check-fmt lint test-go
GENERATE_TARGETS := generate-proto
BENCH_TARGETS := bench-go
PLUGIN_TARGETS :=

include mk/*.mk

.DEFAULT_GOAL := build
.PHONY: build run test test-go generate check check-generated check-fmt lint bench bench-go plugins clean

build: ## Build bin/snakepipe
	$(GO) build -ldflags "$(GO_LDFLAGS)" -o $(BIN)/snakepipe ./cmd/snakepipe

run: build ## Run snakepipe on the embedded default config, with a demo client streaming a few events
	$(BIN)/snakepipe demo

test: $(TEST_TARGETS) ## Everything CI runs

test-go: $(PLUGIN_TARGETS)
	$(GO) test -race -shuffle=on -timeout 15m ./...

generate: $(GENERATE_TARGETS) ## Regenerate committed generated code

# Files `make generate` writes. check-generated (part of `make test`, so CI)
# fails when generating changes any of them: a .proto or the catalog was edited
# without regenerating. It compares the tree's state before and after rather
# than against HEAD, so uncommitted work in progress does not fail it.
GENERATED := proto python/snakepipe/v1 docs/catalog.md

check-generated: ## Fail if generated code is stale
	@snap() { git status --porcelain --untracked-files=all -- $(GENERATED); git diff -- $(GENERATED); }; \
	before=$$(snap | sha256sum); \
	$(MAKE) --no-print-directory generate; \
	after=$$(snap | sha256sum); \
	if [ "$$before" != "$$after" ]; then \
		echo "generated files were stale: make generate rewrote the files below; commit them"; \
		git status --short -- $(GENERATED); exit 1; \
	fi

check-fmt: ## Fail if gofmt would change a file
	@files=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi

check: generate ## Fail if generated code, formatting or go.mod are stale
	gofmt -l . | (! grep .) || { echo "gofmt needed on the files above"; exit 1; }
	$(GO) mod tidy
	git diff --exit-code -- . ':(exclude)BENCHMARKS.md' || { echo "generated files or go.mod are stale: run make generate / go mod tidy and commit"; exit 1; }

bench: $(BENCH_TARGETS) ## Benchmarks and load scenarios; see BENCHMARKS.md

# The key per-package benchmarks only, so `make bench` stays within minutes;
# each area's bench-<area> target runs all of its own.
BENCH_GO_PATTERN ?= BenchmarkDecode|BenchmarkCheck$$|BenchmarkAppendJSON|BenchmarkGraph|BenchmarkWrite|BenchmarkFilterStage
BENCH_GO_PKGS ?= ./ingest ./catalog ./pipeline ./sinks/filesink ./plugins
bench-go:
	$(GO) test -run '^$$' -bench '$(BENCH_GO_PATTERN)' -benchmem -benchtime 300ms -count 1 $(BENCH_GO_PKGS)

plugins: $(PLUGIN_TARGETS) ## Build every example and fixture plugin from source

clean:
	rm -rf $(BIN) .venv
