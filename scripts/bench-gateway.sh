#!/usr/bin/env bash
# Load benchmark of the mcpod gateway: `tools/call echo` at several
# concurrencies through mcpod (legacy and 2026-07-28 clients), side by side
# with the demo server called directly over stdio (the limit) and with
# supergateway 4.x (--stateful, Streamable HTTP) fronting the same demo
# server. Every reply is checked by mcpod-loadgen; any error fails the run.
# A fifth contender, http-floor (`mcpod-loadgen floor-server`), answers the
# calls itself with no backend: the most any HTTP gateway can do here.
# A large-payload block follows: the same echo with a 256 KiB text each
# way at c=16, direct, through the floor and through mcpod (MB/s shown).
# A containerd block (root, containerd and runc installed) puts the same
# demo server, statically linked, at /app/mcp in a container on a private
# containerd and loads mcpod's `kind = "containerd"` target (warm calls on
# its live exec), next to the raw pipe it rides on: the server exec'd with
# `ctr task exec` and driven over ctr's stdin/stdout (the shim's FIFOs).
# With BENCH_MCPOD_BASELINE, a second mcpod binary (an earlier build) runs
# beside the first, so a change's before/after comes from one run.
#
# Usage: scripts/bench-gateway.sh
#
# Environment (all optional):
#   BENCH_DURATION      measured time per run            (default 5s)
#   BENCH_WARMUP        warm-up per run, not recorded    (default 1s)
#   BENCH_CONCURRENCY   concurrency levels               (default "1 16 64")
#   BENCH_REPEAT        rounds of every run; the table shows the median (default 1)
#   BENCH_MCPOD_PORT    mcpod's loopback port            (default 18080)
#   BENCH_SG_PORT       supergateway's loopback port     (default 18081)
#   BENCH_FLOOR_PORT    the HTTP floor's loopback port   (default 18082)
#   BENCH_BASE_PORT     the baseline mcpod's port        (default 18083)
#   BENCH_MCPOD_BASELINE  an earlier mcpod binary, benchmarked beside this
#                       build as mcpod-legacy-base / mcpod-modern-base (default: none)
#   BENCH_PAYLOAD_BYTES the large payload's echo text    (default 262144; 0: no payload block)
#   BENCH_PAYLOAD_CONCURRENCY  its concurrency           (default 16)
#   BENCH_AGG_PORT      the aggregate run's mcpod port   (default 18084)
#   BENCH_CONTAINERD    1: the containerd block, 0: none (default: 1 when root
#                       with containerd, ctr and runc installed, else 0)
#   BENCH_CTD_PORT      the containerd run's mcpod port  (default 18085)
#   BENCH_MCPOD_LOG     mcpod's RUST_LOG                 (default warn: no access log,
#                       like supergateway's --logLevel none)
#   BENCH_THREADS       mcpod-loadgen runtime threads    (default 1)
#   BENCH_OUT           where the JSON result lines go   (default: a temp dir)
#   SUPERGATEWAY_DIR    npm prefix holding supergateway  (default ~/.cache/mcpod-bench/supergateway)
#   CARGO_TARGET_DIR    cargo's target dir               (default <repo>/target)
#
# Everything listens on 127.0.0.1 only, and everything started here is
# stopped on exit. Exit status: 0 if every run passed, 1 if any run had
# errors, 2 if the set-up failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-1s}
LEVELS=${BENCH_CONCURRENCY:-1 16 64}
REPEAT=${BENCH_REPEAT:-1}
MCPOD_PORT=${BENCH_MCPOD_PORT:-18080}
SG_PORT=${BENCH_SG_PORT:-18081}
FLOOR_PORT=${BENCH_FLOOR_PORT:-18082}
BASE_PORT=${BENCH_BASE_PORT:-18083}
BASELINE=${BENCH_MCPOD_BASELINE:-}
PAYLOAD_BYTES=${BENCH_PAYLOAD_BYTES:-262144}
PAYLOAD_LEVEL=${BENCH_PAYLOAD_CONCURRENCY:-16}
MCPOD_LOG=${BENCH_MCPOD_LOG:-warn}
THREADS=${BENCH_THREADS:-1}
SG_DIR=${SUPERGATEWAY_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpod-bench/supergateway}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpod-bench.XXXXXX")
OUT=${BENCH_OUT:-$WORK/results.jsonl}

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench-gateway: %s\n' "$*" >&2
    exit 2
}

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Up to 5 s each, then SIGKILL.
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # port pid name
    for _ in $(seq 100); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up; its log: $WORK/$3.log"
        sleep 0.1
    done
    die "$3 did not listen on 127.0.0.1:$1 within 10 s; its log: $WORK/$3.log"
}

serve_config() { # name config port: one more mcpod on a config file, its pid in SERVED_PID
    RUST_LOG=$MCPOD_LOG "$BIN/mcpod" serve --config "$2" --listen "127.0.0.1:$3" 2>"$WORK/$1.log" &
    SERVED_PID=$!
    PIDS+=("$SERVED_PID")
    wait_for_port "$3" "$SERVED_PID" "$1"
}

command -v cargo >/dev/null || die "cargo is not installed"
command -v node >/dev/null || die "node is not installed (supergateway needs it)"
command -v npm >/dev/null || die "npm is not installed (supergateway is installed with it)"
[[ -z $BASELINE || -x $BASELINE ]] || die "BENCH_MCPOD_BASELINE=$BASELINE is not an executable"
for port in "$MCPOD_PORT" "$SG_PORT" "$FLOOR_PORT" "$BASE_PORT"; do
    ! port_open "$port" || die "127.0.0.1:$port is already in use (set BENCH_MCPOD_PORT / BENCH_SG_PORT / BENCH_FLOOR_PORT)"
done

say "building release binaries into $BIN"
(cd "$ROOT" && cargo build --release --quiet -p mcpod-server -p mcpod-demo -p mcpod-loadgen) ||
    die "cargo build failed"
for binary in mcpod mcpod-demo mcpod-loadgen; do
    [[ -x $BIN/$binary ]] || die "$BIN/$binary was not built"
done

SG_PACKAGE=$SG_DIR/node_modules/supergateway/package.json
sg_version() { node -p "require(process.argv[1]).version" "$SG_PACKAGE" 2>/dev/null; }
if [[ ! -f $SG_PACKAGE || $(sg_version) != 4.* ]]; then
    say "installing supergateway 4.x into $SG_DIR"
    timeout 60 npm view supergateway versions --json 2>/dev/null | grep -q '"4\.' ||
        die "npm lists no supergateway 4.x (npm view supergateway versions)"
    mkdir -p "$SG_DIR"
    timeout 300 npm install --prefix "$SG_DIR" --no-audit --no-fund --loglevel=error supergateway@4 >&2 ||
        die "npm install supergateway@4 failed"
fi
SG_VERSION=$(sg_version) || die "cannot read $SG_PACKAGE"
[[ $SG_VERSION == 4.* ]] || die "supergateway $SG_VERSION is installed in $SG_DIR, not 4.x"

# supergateway has no listen-address option and binds every interface;
# this preload makes its server listen on 127.0.0.1 only.
cat >"$WORK/loopback.cjs" <<'EOF'
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  if ((typeof port === 'number' || (typeof port === 'string' && /^\d+$/.test(port)))
      && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
EOF

say "starting mcpod on 127.0.0.1:$MCPOD_PORT (RUST_LOG=$MCPOD_LOG)"
RUST_LOG=$MCPOD_LOG "$BIN/mcpod" serve --listen "127.0.0.1:$MCPOD_PORT" 2>"$WORK/mcpod.log" &
MCPOD_PID=$!
PIDS+=("$MCPOD_PID")

if [[ -n $BASELINE ]]; then
    say "starting the baseline mcpod ($BASELINE) on 127.0.0.1:$BASE_PORT"
    RUST_LOG=$MCPOD_LOG "$BASELINE" serve --listen "127.0.0.1:$BASE_PORT" 2>"$WORK/mcpod-base.log" &
    BASE_PID=$!
    PIDS+=("$BASE_PID")
fi

say "starting supergateway $SG_VERSION on 127.0.0.1:$SG_PORT"
NODE_OPTIONS="--require $WORK/loopback.cjs" "$SG_DIR/node_modules/.bin/supergateway" \
    --stdio "$BIN/mcpod-demo" --outputTransport streamableHttp --stateful \
    --port "$SG_PORT" --logLevel none >"$WORK/supergateway.log" 2>&1 &
SG_PID=$!
PIDS+=("$SG_PID")

say "starting the HTTP floor on 127.0.0.1:$FLOOR_PORT"
"$BIN/mcpod-loadgen" floor-server --listen "127.0.0.1:$FLOOR_PORT" >"$WORK/floor.log" 2>&1 &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")

wait_for_port "$MCPOD_PORT" "$MCPOD_PID" mcpod
wait_for_port "$SG_PORT" "$SG_PID" supergateway
wait_for_port "$FLOOR_PORT" "$FLOOR_PID" floor
[[ -z $BASELINE ]] || wait_for_port "$BASE_PORT" "$BASE_PID" mcpod-base

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
FAILED=0
run() { # label, mode, then the mode's arguments
    local label=$1 mode=$2 status=0
    shift 2
    say "$label c=$C (round $ROUND/$REPEAT)"
    timeout 300 "$BIN/mcpod-loadgen" "$mode" -c "$C" -d "$DURATION" -w "$WARMUP" \
        --threads "$THREADS" --label "$label" --json "$@" >>"$OUT" 2>>"$WORK/loadgen.log" || status=$?
    if ((status != 0)); then
        FAILED=1
        say "$label c=$C FAILED (exit $status); see $WORK/loadgen.log"
    fi
}

: >"$OUT"
# Rounds outermost and the four runs of a level back to back, so a change in
# the machine's load hits every contender alike.
for ROUND in $(seq "$REPEAT"); do
    for C in $LEVELS; do
        run direct-stdio stdio -- "$BIN/mcpod-demo"
        run http-floor http "http://127.0.0.1:$FLOOR_PORT/mcp" --era legacy --pid "$FLOOR_PID"
        run mcpod-legacy http "http://127.0.0.1:$MCPOD_PORT/mcp/demo" --era legacy --pid "$MCPOD_PID"
        run mcpod-modern http "http://127.0.0.1:$MCPOD_PORT/mcp/demo" --era modern --pid "$MCPOD_PID"
        if [[ -n $BASELINE ]]; then
            run mcpod-legacy-base http "http://127.0.0.1:$BASE_PORT/mcp/demo" --era legacy --pid "$BASE_PID"
            run mcpod-modern-base http "http://127.0.0.1:$BASE_PORT/mcp/demo" --era modern --pid "$BASE_PID"
        fi
        run supergateway http "http://127.0.0.1:$SG_PORT/mcp" --era legacy --pid "$SG_PID"
    done
    if ((PAYLOAD_BYTES > 0)); then
        C=$PAYLOAD_LEVEL
        big=(--text-bytes "$PAYLOAD_BYTES")
        run direct-stdio stdio "${big[@]}" -- "$BIN/mcpod-demo"
        run http-floor http "http://127.0.0.1:$FLOOR_PORT/mcp" --era legacy --pid "$FLOOR_PID" "${big[@]}"
        run mcpod-legacy http "http://127.0.0.1:$MCPOD_PORT/mcp/demo" --era legacy --pid "$MCPOD_PID" "${big[@]}"
        run mcpod-modern http "http://127.0.0.1:$MCPOD_PORT/mcp/demo" --era modern --pid "$MCPOD_PID" "${big[@]}"
        if [[ -n $BASELINE ]]; then
            run mcpod-legacy-base http "http://127.0.0.1:$BASE_PORT/mcp/demo" --era legacy --pid "$BASE_PID" "${big[@]}"
            run mcpod-modern-base http "http://127.0.0.1:$BASE_PORT/mcp/demo" --era modern --pid "$BASE_PID" "${big[@]}"
        fi
    fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "mcpod-loadgen: tools/call echo (and a ${PAYLOAD_BYTES}-byte echo each way at c=$PAYLOAD_LEVEL), ${DURATION} measured after ${WARMUP} warm-up per run, $REPEAT round(s), every reply checked"
echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo '+dirty'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), load average $LOAD_BEFORE before / $LOAD_AFTER after"
[[ -z $BASELINE ]] || echo "baseline mcpod (the -base rows): $BASELINE"
echo "$(rustc --version), node $(node --version), supergateway $SG_VERSION (--stateful, --logLevel none), mcpod RUST_LOG=$MCPOD_LOG, loadgen threads $THREADS"
echo "peak RSS: direct-stdio = the demo server; mcpod / supergateway / http-floor = the gateway process alone (not its demo children)"
echo "CPU µs/req: the probed process + its live descendants (the demo servers) / mcpod-loadgen, over the measured phase"
echo
"$BIN/mcpod-loadgen" report "$OUT"
echo
# Aggregate cost: tools/call echo through an aggregate whose one member is
# the demo target (no prefix, so the same `echo`) vs that target itself,
# on one more mcpod, back to back at each level; the ratio is printed.
AGG_PORT=${BENCH_AGG_PORT:-18084}
AGG_OUT=$WORK/aggregate.jsonl
cat >"$WORK/aggregate.toml" <<EOF
[auth]
disabled = true
[targets.demo]
command = "$BIN/mcpod-demo"
[targets.agg]
kind = "aggregate"
members = ["demo"]
prefixes = { demo = "" }
EOF
serve_config mcpod-aggregate "$WORK/aggregate.toml" "$AGG_PORT"
AGG_PID=$SERVED_PID
: >"$AGG_OUT"
for C in $LEVELS; do
    ROUND=1 OUT=$AGG_OUT run plain-target http "http://127.0.0.1:$AGG_PORT/mcp/demo" --era modern --pid "$AGG_PID"
    ROUND=1 OUT=$AGG_OUT run via-aggregate http "http://127.0.0.1:$AGG_PORT/mcp/agg" --era modern --pid "$AGG_PID"
done
echo
echo "aggregate vs plain target (2026-07-28 client, tools/call echo, same mcpod):"
python3 - "$AGG_OUT" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["label"], r["concurrency"]): r["rps"] for r in runs}
for c in sorted({r["concurrency"] for r in runs}):
    plain, agg = by.get(("plain-target", c)), by.get(("via-aggregate", c))
    if plain and agg:
        print(f"  c={c}: plain {plain:.0f} req/s, aggregate {agg:.0f} req/s, ratio {agg / plain:.2f}")
PY
echo

# Containerd: warm calls on mcpod's containerd target against the raw
# exec pipe (`ctr task exec` driven directly) and the HTTP floor, in the
# same rounds. The exec'd server is the shim's child, not mcpod's, so its
# CPU is not in the gateway's column.
CTD=${BENCH_CONTAINERD:-}
if [[ -z $CTD ]]; then
    CTD=0
    if [[ $(id -u) == 0 ]] && command -v containerd >/dev/null && command -v ctr >/dev/null &&
        command -v runc >/dev/null && command -v containerd-shim-runc-v2 >/dev/null; then
        CTD=1
    fi
fi
if [[ $CTD == 1 ]]; then
    CTD_PORT=${BENCH_CTD_PORT:-18085}
    CTD_DIR=$WORK/ctd
    CTD_NS=mcpod-bench
    CTD_OUT=$WORK/containerd.jsonl
    say "building the static demo server for the container"
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet \
        -p mcpod-demo --target x86_64-unknown-linux-gnu) || die "cargo build of the static demo failed"
    STATIC_DEMO=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/mcpod-demo
    BUSYBOX=$(command -v busybox) ||
        die "busybox is not installed (apt-get install busybox-static): the container's init is a sh loop"
    ctd_stop() { "$ROOT/scripts/containerd-env.sh" stop "$CTD_DIR" >/dev/null 2>&1 || true; }
    trap 'cleanup; ctd_stop' EXIT
    say "private containerd in $CTD_DIR"
    "$ROOT/scripts/containerd-env.sh" start "$CTD_DIR" >/dev/null ||
        die "containerd did not start; see $CTD_DIR/containerd.log"
    CTD_SOCK=$CTD_DIR/containerd.sock
    ROOTFS=$WORK/rootfs
    mkdir -p "$ROOTFS"/{app,bin,dev,proc,sys,tmp,data}
    cp "$STATIC_DEMO" "$ROOTFS/app/mcp"
    cp "$BUSYBOX" "$ROOTFS/bin/busybox"
    ln -s busybox "$ROOTFS/bin/sh"
    ln -s busybox "$ROOTFS/bin/sleep"
    "$BIN/mcpod" bot create bench --rootfs "$ROOTFS" --data-dir "$WORK/bot-data" \
        --socket "$CTD_SOCK" -n "$CTD_NS" >"$WORK/bot-create.log" 2>&1 ||
        die "mcpod bot create failed; see $WORK/bot-create.log"
    cat >"$WORK/containerd.toml" <<EOF
[auth]
disabled = true
[containerd]
socket = "$CTD_SOCK"
namespace = "$CTD_NS"
fifo_root = "$WORK/fifo"
[targets.ctd]
kind = "containerd"
bot = "bench"
EOF
    serve_config mcpod-containerd "$WORK/containerd.toml" "$CTD_PORT"
    CTD_PID=$SERVED_PID
    : >"$CTD_OUT"
    for ROUND in $(seq "$REPEAT"); do
        for C in $LEVELS; do
            OUT=$CTD_OUT run ctr-exec-pipe stdio -- ctr --address "$CTD_SOCK" -n "$CTD_NS" \
                task exec --exec-id "bench-$ROUND-$C" mcp-bench /app/mcp
            OUT=$CTD_OUT run http-floor http "http://127.0.0.1:$FLOOR_PORT/mcp" --era legacy --pid "$FLOOR_PID"
            OUT=$CTD_OUT run mcpod-ctd-legacy http "http://127.0.0.1:$CTD_PORT/mcp/ctd" --era legacy --pid "$CTD_PID"
            OUT=$CTD_OUT run mcpod-ctd-modern http "http://127.0.0.1:$CTD_PORT/mcp/ctd" --era modern --pid "$CTD_PID"
        done
    done
    echo "containerd backend (containerd $(containerd --version | cut -d' ' -f3), warm calls on a live exec): ctr-exec-pipe = the demo server exec'd by ctr and driven over its stdin/stdout (the shim's FIFOs); mcpod-ctd CPU is the gateway's alone"
    echo
    "$BIN/mcpod-loadgen" report --direct ctr-exec-pipe "$CTD_OUT"
    echo
fi

echo "results: $OUT; logs: $WORK"
if ((FAILED)); then
    echo "bench-gateway: some runs had errors (see above and $WORK/loadgen.log)" >&2
    exit 1
fi
