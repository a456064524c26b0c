#!/usr/bin/env bash
# Memory per client connection, and whether it comes back: a release mcpod
# on loopback, then three rounds of SILENT connections that send nothing
# and SLOW ones that send a POST head and one body byte (mcpod-loadgen
# abuse, held 20 s), the gateway's RSS sampled before, at the peak, and 0,
# 5, 10 and 15 s after each round. The body timeout is 10 s here, so slow
# connections are answered 408 within the hold.
#
# Usage: SILENT=5000 SLOW=5000 scripts/connection-memory.sh [ENV=VALUE...]
#        (ENV=VALUE pairs go to the gateway, e.g. MALLOC_CONF=... to try
#        other allocator settings)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
PORT=${PORT:-18095}
FILES=$(ulimit -Hn)
[[ "$FILES" == unlimited ]] && FILES=1048576
ulimit -n "$FILES"   # the abuser opens them all from one process
work=$(mktemp -d "${TMPDIR:-/tmp}/mcpod-memory.XXXXXX")
trap 'kill "$gw" 2>/dev/null; wait "$gw" 2>/dev/null; rm -rf "$work"' EXIT
(cd "$ROOT" && cargo build --locked --release -p mcpod-server -p mcpod-loadgen >&2)
cat >"$work/mcpod.toml" <<T
listen = "127.0.0.1:$PORT"
[log]
level = "warn"
[auth]
disabled = true
[limits]
max_connections = $((FILES - 512))
body_read_timeout = "10s"
[targets.demo]
command = "$BIN/mcpod"
args = ["demo-server"]
T
env "$@" "$BIN/mcpod" serve --config "$work/mcpod.toml" 2>"$work/mcpod.log" &
gw=$!
for _ in $(seq 100); do curl -fs -m1 "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
"$BIN/mcpod-loadgen" http "http://127.0.0.1:$PORT/mcp/demo" --era modern -c 8 -d 2s >/dev/null
rss() { awk '/VmRSS/{print $2}' "/proc/$gw/status"; }
before=$(rss)
for round in 1 2 3; do
    "$BIN/mcpod-loadgen" abuse "http://127.0.0.1:$PORT" --silent "${SILENT:-5000}" --slow "${SLOW:-5000}" --hold 20s >"$work/abuse.json" &
    ab=$!
    peak=0
    while kill -0 "$ab" 2>/dev/null; do r=$(rss); ((r > peak)) && peak=$r; sleep 0.5; done
    after="$(rss)"
    for _ in 1 2 3; do sleep 5; after="$after $(rss)"; done
    echo "round $round: ${SILENT:-5000} silent + ${SLOW:-5000} slow; RSS before $before KiB, peak $peak KiB, after (0, 5, 10, 15 s): $after KiB"
done
