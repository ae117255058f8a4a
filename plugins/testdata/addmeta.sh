#!/usr/bin/env bash
# addmeta.sh FILE.wasm META.json — appends a `snakepipe.meta` custom section
# holding the JSON (docs/plugin-abi.md §11) to FILE.wasm. A custom section
# is: byte 0, LEB128 size, LEB128 name length, name, payload.
set -euo pipefail
leb() {
	local n=$1 b
	while :; do
		b=$((n & 127)); n=$((n >> 7))
		if ((n)); then b=$((b | 128)); fi
		printf "\\$(printf %03o "$b")"
		((n)) || break
	done
}
payload=$(cat "$2")
name=snakepipe.meta
plen=$(printf %s "$payload" | wc -c)
{ printf '\000'; leb $((1 + ${#name} + plen)); leb ${#name}; printf %s "$name"; printf %s "$payload"; } >>"$1"
