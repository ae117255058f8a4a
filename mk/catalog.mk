# catalog: docs/catalog.md's event tables are generated from
# catalog/builtin.yaml by the doc test.
.PHONY: generate-catalog-docs fuzz-catalog
GENERATE_TARGETS += generate-catalog-docs

generate-catalog-docs:
	$(GO) test ./catalog -run '^TestCatalogDoc$$' -update

# Longer fuzzing runs than `make test` does (which only replays the corpus).
FUZZTIME ?= 60s
fuzz-catalog:
	$(GO) test ./catalog -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME)
	$(GO) test ./catalog -run '^$$' -fuzz '^FuzzSanitizeString$$' -fuzztime $(FUZZTIME)
	$(GO) test ./catalog -run '^$$' -fuzz '^FuzzConfigValidate$$' -fuzztime $(FUZZTIME)
