#!/usr/bin/env bash
# Latency of mcpod's containerd backend next to its baselines, in one run
# (server/examples/containerd_bench.rs):
#   - cold start: first call on a bot with no session (check + exec of
#     /app/mcp + handshake + call), next to `ctr task exec --exec-id X
#     mcp-BOT /app/mcp` of the same binary with one tools/call piped in;
#   - warm calls on a live session, next to the same calls on a process
#     target running the same binary on the host;
#   - the raw transports (exec FIFOs through the shim, local pipes).
#
# Usage: scripts/bench-containerd.sh [--cold N] [--warm N] [--rounds N] [--json]
#
# Needs root, containerd, runc, ctr and busybox-static (as scripts/test.sh).
# Starts a private containerd in a temp dir and stops it on exit.
# Environment: CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cd "$ROOT"

echo "==> building the static demo server and the benchmark (release)" >&2
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release -p mcpod-demo \
  --target x86_64-unknown-linux-gnu
cargo build --quiet --release -p mcpod-server --example containerd_bench

dir=$(mktemp -d /tmp/mcpod-ctd-bench.XXXXXX)
stop() { scripts/containerd-env.sh stop "$dir" >/dev/null 2>&1 || true; }
trap stop EXIT
echo "==> private containerd in $dir" >&2
scripts/containerd-env.sh start "$dir" >/dev/null

"$TARGET_DIR/release/examples/containerd_bench" \
  --socket "$dir/containerd.sock" \
  --demo "$TARGET_DIR/x86_64-unknown-linux-gnu/release/mcpod-demo" "$@"
