#!/usr/bin/env bash
# The robustness suite, long: release builds of mcpod and mcpod-loadgen on
# loopback, the demo server as backend.
#
#   1. soak: SOAK calls (default 1 000 000) of tools/call echo, half from
#      legacy sessions and half stateless, 64 virtual clients in all, every
#      reply checked (id and echoed text): zero lost, zero misrouted;
#   2. slow and silent clients: ABUSE slow-body plus ABUSE silent
#      connections (default 10 000 each, fewer if the hard open-file limit
#      cannot hold them: one process opens them all) while 16 clients call — their p50
#      against a quiet run, the gateway's RSS with the abusers and after,
#      and what became of the abusers (closed by which timeout, when);
#   3. crash loop: the backend SIGKILLed every second for CRASH_SECONDS
#      (default 60) under 32 clients — every call ends within its timeout
#      with its reply or a clear error, restarts counted in /metrics, no
#      backend process left after the gateway stops.
#
# Usage: scripts/robustness.sh     (SOAK=… ABUSE=… CRASH_SECONDS=… to size it)
# Prints one summary line per part and a Markdown table; the JSON lines go
# to $OUT (default a temp dir). Exit 0 if every part met its bound.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILES=$(ulimit -Hn)   # the gateway and the abuser run at their hard open-file limit
[[ "$FILES" == unlimited ]] && FILES=1048576
SOAK=${SOAK:-1000000}
ABUSE=${ABUSE:-$(( (FILES - 1000) / 2 < 10000 ? (FILES - 1000) / 2 : 10000 ))}
CRASH_SECONDS=${CRASH_SECONDS:-60}
PORT=${ROBUSTNESS_PORT:-18090}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpod-robustness.XXXXXX")
OUT=${OUT:-$WORK/results.jsonl}
URL=http://127.0.0.1:$PORT/mcp/demo

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'robustness: %s\n' "$*" >&2; exit 2; }

GW=""
BG=()
cleanup() {
    local pid
    for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n "$GW" ]] && { kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; }
    rm -rf "$WORK/mcpod.toml"
}
trap cleanup EXIT

say "building (release)"
cargo build --release --locked -p mcpod-server -p mcpod-loadgen >&2

cat >"$WORK/mcpod.toml" <<EOF
listen = "127.0.0.1:$PORT"
[log]
level = "warn"
[auth]
disabled = true
[limits]
max_calls_per_target = 4096
max_connections = $((FILES - 512))
[targets.demo]
command = "$BIN/mcpod"
args = ["demo-server"]
EOF

metric() { # NAME: its value in /metrics (summed over label sets)
    curl -s -m 5 "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

say "starting the gateway"
prlimit --nofile=$FILES:$FILES "$BIN/mcpod" serve --config "$WORK/mcpod.toml" 2>"$WORK/gateway.log" &
GW=$!
for _ in $(seq 1 100); do
    curl -fs -m 1 "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$GW" 2>/dev/null || die "the gateway exited; see $WORK/gateway.log"
    sleep 0.1
done
curl -fs -m 1 "http://127.0.0.1:$PORT/readyz" >/dev/null || die "the gateway is not ready"
status=0
rows=()

# 1. soak
say "soak: $SOAK calls at concurrency 64, both eras"
half=$((SOAK / 2))
"$BIN/mcpod-loadgen" http "$URL" --era legacy -c 32 -n "$half" -w 0 --json --label soak-legacy >"$WORK/soak-legacy.json" &
legacy=$!
"$BIN/mcpod-loadgen" http "$URL" --era modern -c 32 -n "$half" -w 0 --json --label soak-modern >"$WORK/soak-modern.json" || true
wait "$legacy" || true
for era in legacy modern; do
    line=$(cat "$WORK/soak-$era.json")
    echo "$line" >>"$OUT"
    ok=$(field "$line" ok); errors=$(field "$line" errors); rps=$(field "$line" rps)
    printf 'soak %s: %s ok, %s errors, %.0f req/s\n' "$era" "$ok" "$errors" "$rps"
    [[ "$errors" == 0 && "$ok" == "$half" ]] || status=1
    rows+=("| soak, $era clients | $half calls, c=32 (64 in all) | $ok checked replies, $errors lost or misrouted |")
done

# 2. slow and silent clients
say "slow and silent clients: $ABUSE + $ABUSE connections under load"
quiet=$("$BIN/mcpod-loadgen" http "$URL" --era modern -c 16 -d 10s --json --label quiet --pid "$GW")
echo "$quiet" >>"$OUT"
rss_before=$(rss_kib "$GW")
prlimit --nofile=$FILES:$FILES "$BIN/mcpod-loadgen" abuse "$URL" --silent "$ABUSE" --slow "$ABUSE" --hold 60s --json >"$WORK/abuse.json" &
BG+=($!)
abuser=$!
for _ in $(seq 1 300); do # until the abusers are in (bounded: 30 s)
    [[ $(metric mcpod_connections) -ge $((ABUSE * 3 / 2)) ]] && break
    sleep 0.1
done
open_during=$(metric mcpod_connections)
loaded=$("$BIN/mcpod-loadgen" http "$URL" --era modern -c 16 -d 10s --json --label abused --pid "$GW")
echo "$loaded" >>"$OUT"
wait "$abuser" || true
abuse=$(cat "$WORK/abuse.json")
echo "$abuse" >>"$OUT"
for _ in $(seq 1 300); do # until the gateway has let them go
    [[ $(metric mcpod_connections) -le 1 ]] && break
    sleep 0.1
done
sleep 5 # the allocator returns freed pages on its own schedule
rss_after=$(rss_kib "$GW")
p50_quiet=$(field "$quiet" p50_us); p50_loaded=$(field "$loaded" p50_us)
peak=$(field "$loaded" rss_peak_kib); loaded_errors=$(field "$loaded" errors)
ratio=$(python3 -c "print(f'{$p50_loaded / $p50_quiet:.2f}')")
summary=$(python3 - "$abuse" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
def k(name):
    x = r[name]
    return (f"{name}: {x['opened']} opened, {x['refused']} refused, {x['closed']} closed by the gateway "
            f"(p50 {x['close_ms_p50']} ms, max {x['close_ms_max']} ms), {x['still_open']} still open, answers {x['answered']}")
print(k("silent") + "; " + k("slow"))
PY
)
printf 'slow+silent: %s connections open at once; calls p50 %.0f µs quiet, %.0f µs under abuse (%sx), %s errors; RSS %s KiB before, %s KiB peak, %s KiB after\n' \
    "$open_during" "$p50_quiet" "$p50_loaded" "$ratio" "$loaded_errors" "$rss_before" "$peak" "$rss_after"
echo "  $summary"
python3 -c "import sys; sys.exit(0 if $p50_loaded <= 2 * $p50_quiet else 1)" || status=1
[[ "$loaded_errors" == 0 ]] || status=1
rows+=("| slow and silent clients | $ABUSE slow-body + $ABUSE silent connections, 16 clients calling | $open_during open at once; p50 ${ratio}× the quiet run; RSS $((rss_before / 1024)) → $((peak / 1024)) → $((rss_after / 1024)) MiB; $summary |")

# 3. crash loop
say "crash loop: the backend killed every second for ${CRASH_SECONDS}s under 32 clients"
restarts_before=$(metric mcpod_backend_restarts_total)
"$BIN/mcpod-loadgen" http "$URL" --era modern -c 32 -d "${CRASH_SECONDS}s" -w 0 --timeout 30s --json --label crash-loop >"$WORK/crash.json" &
load=$!
kills=0
end=$((SECONDS + CRASH_SECONDS))
while ((SECONDS < end)); do
    sleep 1
    backend=$(pgrep -P "$GW" -f demo-server | head -n 1 || true)
    [[ -n "$backend" ]] && kill -KILL "$backend" 2>/dev/null && kills=$((kills + 1))
done
wait "$load" || true
crash=$(cat "$WORK/crash.json")
echo "$crash" >>"$OUT"
restarts=$(( $(metric mcpod_backend_restarts_total) - restarts_before ))
ok=$(field "$crash" ok); errors=$(field "$crash" errors); max_ms=$(python3 -c "print(round($(field "$crash" max_us) / 1000))")
kill -TERM "$GW"; wait "$GW" || true; GW=""
left=$(pgrep -f "$BIN/mcpod demo-server" | wc -l || true)
printf 'crash loop: %s kills, %s restarts counted, %s calls answered, %s ended with an error, longest call %s ms, %s backend processes left\n' \
    "$kills" "$restarts" "$ok" "$errors" "$max_ms" "$left"
# The last kill may find no call left to restart the backend for.
[[ "$left" == 0 && "$restarts" -ge $((kills - 1)) && "$max_ms" -lt 30000 ]] || status=1
rows+=("| crash loop | backend SIGKILLed every 1 s for ${CRASH_SECONDS} s, 32 clients | $kills kills, $restarts restarts in /metrics; $ok calls answered, $errors ended with an error, longest $max_ms ms; $left processes left |")

printf '\n| what | how much | what happened |\n| --- | --- | --- |\n'
printf '%s\n' "${rows[@]}"
echo "(JSON lines: $OUT)" >&2
exit "$status"
