#!/usr/bin/env bash
# Runs the gateway: `mcpod serve`, built in release mode. With no arguments
# it serves the embedded default (target `demo`, the built-in demo MCP
# server) on 127.0.0.1:8080; arguments go to `mcpod serve`
# (e.g. --config FILE, --listen ADDR).
#
# Building needs `protoc` (containerd's gRPC API is compiled from .proto
# files); on a fresh Debian machine this installs protobuf-compiler first.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "serve.sh: protoc is missing: install protobuf-compiler (apt-get install protobuf-compiler)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
fi
exec cargo run --locked --release -p mcpod-server -- serve "$@"
