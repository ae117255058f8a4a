# Built-in stages and the stderr/file sinks. Their tests run in test-go;
# this target reproduces the figures in BENCHMARKS.md "Pipeline and sinks".
COMPONENT_STAGE_PKGS := ./pipeline/stages/...
COMPONENT_SINK_PKGS := ./sinks/stderrsink ./sinks/filesink

.PHONY: bench-components
bench-components: ## Per-event cost of the built-in stages and the stderr/file sinks
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x -count 1 $(COMPONENT_STAGE_PKGS) ./sinks/stderrsink
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200x -count 1 ./sinks/filesink
