# ingest: gRPC server for workers, protowire decoder.

.PHONY: test-ingest bench-ingest fuzz-ingest

test-ingest: ## Ingest package tests only (race detector)
	$(GO) test -race -shuffle=on ./ingest/...

bench-ingest: ## Ingest decode / decode+check benchmarks (BENCHMARKS.md "Ingest decode, catalog and sanitize")
	$(GO) test -run '^$$' -bench 'BenchmarkDecode' -benchmem -count 5 -cpu 1 ./ingest/

fuzz-ingest: ## Run the ingest decoder fuzzers for a minute each
	$(GO) test -run '^$$' -fuzz FuzzDecodeDifferential -fuzztime 60s ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzDecodeNoPanic -fuzztime 60s ./ingest/
