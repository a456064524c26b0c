#!/usr/bin/env bash
# Run both conformance versions through an already-built mcpod gateway, for
# each backend era mode (legacy, modern, auto) of mcpod-conformance.toml.
#   interop/gateway-conformance.sh [MCPOD_BIN] [OUT_DIR]
# MCPOD_BIN defaults to target/release/mcpod, else target/debug/mcpod (this
# script never builds). Results: OUT_DIR/gateway-<era>-<spec>.json (default
# interop/results/). The gateway is started from the repo root (the config's
# paths are relative to it) and stopped on exit, whatever happens.
# ERAS="legacy modern auto" and SPECS="2025-11-25 2026-07-28" narrow the run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
bin="${1:-}"
if [[ -z "$bin" ]]; then
  for b in "$root/target/release/mcpod" "$root/target/debug/mcpod"; do
    [[ -x "$b" ]] && { bin="$b"; break; }
  done
fi
[[ -n "$bin" && -x "$bin" ]] || { echo "no mcpod binary (build it first, or pass its path)" >&2; exit 2; }
out="$(realpath -m "${2:-$here/results}")"
mkdir -p "$out"
base="http://127.0.0.1:3902"

cd "$root"
log="$out/gateway.log"
"$bin" serve --config interop/mcpod-conformance.toml >"$log" 2>&1 &
gw=$!
# Stop only the gateway we started; it stops its own backends.
trap 'kill "$gw" 2>/dev/null || true; wait "$gw" 2>/dev/null || true' EXIT

for _ in $(seq 1 50); do   # up to ~10 s for the listener
  curl -fsS -m 1 "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$gw" 2>/dev/null || { echo "mcpod exited early; see $log" >&2; exit 1; }
  sleep 0.2
done
curl -fsS -m 1 "$base/healthz" >/dev/null || { echo "mcpod not listening; see $log" >&2; exit 1; }

status=0
tag="${CONFORMANCE:+-harness$CONFORMANCE}"   # CONFORMANCE=0-2: the 0.2 harness at every spec
for era in ${ERAS:-legacy modern auto}; do
  for spec in ${SPECS:-2025-11-25 2026-07-28}; do
    "$here/conformance.sh" "$base/mcp/fixture-$era" "$spec" "$out/gateway-$era-$spec$tag.json" || status=1
  done
done
exit "$status"
