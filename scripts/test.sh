#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a fresh machine of this project's
# kind (Debian 12, Rust stable + nightly): installs what it needs, checks
# formatting, lints and docs, starts a private containerd, runs every test
# (the official MCP conformance suite, SDK clients and servers among them,
# from interop/; a real Prometheus against the ops/ kit), and smoke-runs
# every fuzz target.
#
#   scripts/test.sh            everything
#   FUZZ_SECONDS=60 scripts/test.sh   longer fuzz smoke
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

step "installing what the tests need"
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v git >/dev/null || missing+=(git)
command -v npm >/dev/null || missing+=(npm)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# prometheus and promtool, for the tests of the ops/ kit (server/tests/prometheus.rs)
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
# haproxy, for the tests of replicas behind a balancer (server/tests/replicas.rs)
command -v haproxy >/dev/null || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup toolchain list | grep -q '^nightly' || die "the nightly toolchain is needed for cargo-fuzz (rustup toolchain install nightly)"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

step "interop parts: the MCP conformance suite, SDK clients and servers (npm, PyPI)"
interop/setup.sh

step "cargo fmt --check"
cargo fmt --all --check
(cd fuzz && cargo fmt --check)

step "cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps --all-features

step "the core depends on no async runtime or I/O stack"
core_deps=$(cargo tree --locked -p mcpod-core -e normal --prefix none) || die "cargo tree failed"
if grep -E '^(tokio|async-std|async-io|smol|futures[a-z-]*|hyper|mio) ' <<<"$core_deps"; then
  die "mcpod-core must not depend on an async runtime or I/O crate"
fi

step "static demo server for container images"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --release -p mcpod-demo \
  --target x86_64-unknown-linux-gnu
export MCPOD_TEST_DEMO_STATIC="${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-gnu/release/mcpod-demo"

step "static mcpod release, run on an empty root file system"
scripts/release.sh

step "private containerd"
ctd_dir=$(mktemp -d /tmp/mcpod-containerd.XXXXXX)
stop_containerd() { scripts/containerd-env.sh stop "$ctd_dir" || true; }
trap stop_containerd EXIT
scripts/containerd-env.sh start "$ctd_dir"
export MCPOD_TEST_CONTAINERD_DIR="$ctd_dir"
export MCPOD_TEST_CONTAINERD_SOCKET="$ctd_dir/containerd.sock"

step "fuzz smoke (${FUZZ_SECONDS}s per target)"
for target in $(cd fuzz && cargo +nightly fuzz list); do
  (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" 2>&1 | tail -n 2)
done

step "tests"
log=$(mktemp)
status=0
cargo test --locked --workspace --all-features --no-fail-fast 2>&1 | tee "$log" || status=$?
read -r passed failed ignored < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i
    }
  } END { print p+0, f+0, g+0 }' "$log")
rm -f "$log"
printf '\nsummary: %s passed, %s failed, %s skipped\n' "${passed:-0}" "${failed:-0}" "${ignored:-0}"
exit "$status"
