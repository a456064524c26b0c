#!/usr/bin/env bash
# A static mcpod for releases and images: glibc linked statically
# (crt-static), so the binary runs with nothing else on the file system.
#
#   scripts/release.sh          build target/x86_64-unknown-linux-gnu/release/mcpod,
#                               then check it on an empty root file system
#   scripts/release.sh check    only the check (needs root: chroot)
#
# The check copies the binary alone into an empty directory and, chrooted
# there with an empty environment, runs `mcpod --version` and the embedded
# demo MCP server over stdio: an initialize and a tools/call must be
# answered.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-unknown-linux-gnu
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/mcpod

die() { printf 'release: %s\n' "$*" >&2; exit 1; }

build() {
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --locked --release -p mcpod-server --target "$TARGET")
    # Whether it is really static, the check tells: nothing else is there.
}

check() {
    [ "$(id -u)" = 0 ] || die "the empty-rootfs check needs root (chroot)"
    [ -x "$BIN" ] || die "no $BIN: run scripts/release.sh first"
    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/mcpod-empty-root.XXXXXX")
    trap 'rm -rf "$root"' RETURN
    cp "$BIN" "$root/mcpod"
    [ "$(ls -A "$root")" = mcpod ] || die "the root is not empty"
    local version
    version=$(env -i /usr/sbin/chroot "$root" /mcpod --version) || die "mcpod --version failed on an empty root"
    local init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"release-check","version":"1"}}}'
    local call='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"static"}}}'
    local out
    out=$(printf '%s\n%s\n%s\n' "$init" '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$call" |
        timeout 20 env -i /usr/sbin/chroot "$root" /mcpod demo-server) || die "the demo server failed on an empty root"
    grep -q '"id":1,"result"' <<<"$out" || die "no initialize result: $out"
    grep -q '"text":"static"' <<<"$out" || die "no tools/call result: $out"
    printf 'release: %s (%s bytes, static) runs on an empty root: %s; its demo server answered\n' \
        "$BIN" "$(stat -c %s "$BIN")" "$version"
}

case "${1:-all}" in
    all) build; check ;;
    check) check ;;
    *) die "usage: scripts/release.sh [check]" ;;
esac
