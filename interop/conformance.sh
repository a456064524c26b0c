#!/usr/bin/env bash
# Run all conformance server scenarios for SPEC_VERSION against URL; write a
# JSON summary to OUT.json and print a one-line total. See run_conformance.py
# for the env knobs (SCENARIO_TIMEOUT, TOTAL_TIMEOUT, CONFORMANCE, KEEP_LOGS).
#   ./conformance.sh http://127.0.0.1:3001/mcp 2026-07-28 results/reference-2026.json
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 3 ]]; then
  echo "usage: $0 URL SPEC_VERSION OUT.json [SCENARIO ...]" >&2
  exit 2
fi
# The runner needs only the standard library; prefer the venv's interpreter.
py="$here/.venv/bin/python"
[[ -x "$py" ]] || py=python3
exec "$py" "$here/run_conformance.py" "$@"
