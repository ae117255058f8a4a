# Runtime area: the snakepipe binary's build flags and lint.

# Stamped into `snakepipe version`.
SNAKEPIPE_VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || echo dev)
SNAKEPIPE_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
GO_LDFLAGS := -X main.version=$(SNAKEPIPE_VERSION) -X main.commit=$(SNAKEPIPE_COMMIT)

# Pinned linter, installed into ./bin on first use (built with the local Go
# toolchain, so it understands the go.mod Go version).
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

.PHONY: lint
lint: $(GOLANGCI_LINT) ## go vet, staticcheck, errcheck, errorlint, depguard (import graph), forbidigo
	$(GOLANGCI_LINT) run ./...
