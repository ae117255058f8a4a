# Wasm host fixtures (plugins/testdata) and the raw WAT example plugin.
# Sources are committed next to their .wasm; these rules rebuild a .wasm
# when its source is newer, installing wabt / clang+lld from apt if missing.

WASMHOST_TD := plugins/testdata
.SECONDEXPANSION:
WASMHOST_WAT := $(wildcard $(WASMHOST_TD)/*.wat)
WASMHOST_WASM := $(WASMHOST_WAT:.wat=.wasm) \
	$(WASMHOST_TD)/filter.wasm $(WASMHOST_TD)/enrich.wasm $(WASMHOST_TD)/fields.wasm \
	$(WASMHOST_TD)/swap_even.wasm $(WASMHOST_TD)/swap_odd.wasm \
	examples/plugins/wat/filter.wasm
WASMHOST_CFLAGS := --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry -Wall -Werror

PLUGIN_TARGETS += wasmhost-plugins


.PHONY: wasmhost-plugins wasmhost-tools test-wasmhost bench-wasmhost
wasmhost-plugins: $(WASMHOST_WASM)

wasmhost-tools:
	@command -v wat2wasm >/dev/null || { apt-get update -qq && apt-get install -y -qq wabt; }
	@{ command -v clang && command -v wasm-ld; } >/dev/null || { apt-get update -qq && apt-get install -y -qq clang lld; }

# A NAME.meta.json next to NAME.wat becomes the snakepipe.meta section.
%.wasm: %.wat $$(wildcard %.meta.json) | wasmhost-tools
	wat2wasm $< -o $@
	if [ -f $*.meta.json ]; then $(WASMHOST_TD)/addmeta.sh $@ $*.meta.json; fi

$(WASMHOST_TD)/filter.wasm $(WASMHOST_TD)/enrich.wasm $(WASMHOST_TD)/fields.wasm: $(WASMHOST_TD)/%.wasm: $(WASMHOST_TD)/%.c $(WASMHOST_TD)/fixture.h | wasmhost-tools
	clang $(WASMHOST_CFLAGS) -o $@ $<

$(WASMHOST_TD)/swap_even.wasm: $(WASMHOST_TD)/swap.c $(WASMHOST_TD)/fixture.h | wasmhost-tools
	clang $(WASMHOST_CFLAGS) -DPARITY=0 -o $@ $<
$(WASMHOST_TD)/swap_odd.wasm: $(WASMHOST_TD)/swap.c $(WASMHOST_TD)/fixture.h | wasmhost-tools
	clang $(WASMHOST_CFLAGS) -DPARITY=1 -o $@ $<

# The plugins package alone (test-go runs it too, with everything else).
test-wasmhost: wasmhost-plugins
	$(GO) test -race -shuffle=on ./plugins/...

bench-wasmhost: wasmhost-plugins
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x ./plugins/
