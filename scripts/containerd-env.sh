#!/usr/bin/env bash
# A private containerd for mcpod's tests.
#
#   scripts/containerd-env.sh start   DIR   start containerd with all state under DIR
#                                           (reuses one already serving DIR)
#   scripts/containerd-env.sh restart DIR   stop the daemon only (tasks and their shims
#                                           live on) and start it again on the same DIR
#   scripts/containerd-env.sh down    DIR   stop the daemon only (tasks and their shims
#                                           live on); `start DIR` brings it back
#   scripts/containerd-env.sh stop    DIR   kill and delete every task and container it
#                                           holds (starting the daemon again first if it
#                                           is down), stop the daemon, remove DIR
#   scripts/containerd-env.sh status  DIR   exit 0 when the daemon answers
#
# `start` and `restart` print `export` lines for MCPOD_TEST_CONTAINERD_SOCKET and
# MCPOD_TEST_CONTAINERD_DIR, so `eval "$(scripts/containerd-env.sh start DIR)"`
# sets them in the calling shell; when this file is sourced, they are exported
# directly.
#
# The daemon uses DIR/root, DIR/state, DIR/containerd.sock, DIR/config.toml
# (plugins that tests do not need are disabled: CRI, AUFS/ZFS/btrfs/devmapper),
# DIR/containerd.pid and DIR/containerd.log. It never touches a system containerd.

[ "${BASH_SOURCE[0]}" != "$0" ] || set -euo pipefail

ctd_die() {
    echo "containerd-env: error: $*" >&2
    exit 1
}

ctd_usage() {
    echo "usage: $0 start|restart|down|stop|status DIR" >&2
    exit 2
}

ctd_check_prereqs() {
    [ "${EUID:-$(id -u)}" = 0 ] || ctd_die "must run as root (containerd and runc need it); current uid ${EUID:-unknown}"
    local bin
    for bin in containerd ctr runc containerd-shim-runc-v2; do
        command -v "$bin" >/dev/null 2>&1 ||
            ctd_die "'$bin' not found in PATH; install it: apt-get install -y containerd runc"
    done
}

ctd_abs_dir() {
    local dir=$1
    mkdir -p "$dir"
    (cd "$dir" && pwd -P)
}

ctd_ctr() {
    ctr --address "$CTD_SOCK" --timeout 10s "$@"
}

ctd_pid() {
    local pidfile=$CTD_DIR/containerd.pid pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Only trust the PID if it is still a containerd serving this DIR.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--address $CTD_SOCK" || return 1
    echo "$pid"
}

ctd_write_config() {
    # Version 2 config. Disabling the CRI plugin and the snapshotters that
    # probe for kernel features keeps start-up to well under a second.
    cat >"$CTD_DIR/config.toml" <<EOF
version = 2
root = "$CTD_DIR/root"
state = "$CTD_DIR/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$CTD_SOCK"

[ttrpc]
  address = "$CTD_SOCK.ttrpc"

[debug]
  level = "info"
EOF
}

ctd_start_daemon() {
    if pid=$(ctd_pid); then
        ctd_die "containerd already running for $CTD_DIR (pid $pid)"
    fi
    mkdir -p "$CTD_DIR/root" "$CTD_DIR/state"
    chmod 0711 "$CTD_DIR"
    rm -f "$CTD_SOCK" "$CTD_SOCK.ttrpc"
    ctd_write_config
    # setsid: the daemon must not die with the shell (or test) that started it.
    setsid containerd --config "$CTD_DIR/config.toml" \
        --root "$CTD_DIR/root" --state "$CTD_DIR/state" --address "$CTD_SOCK" \
        </dev/null >>"$CTD_DIR/containerd.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$CTD_DIR/containerd.pid"
    local i
    for i in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$CTD_DIR/containerd.log" >&2 || true
            ctd_die "containerd exited during start-up (log above, full log in $CTD_DIR/containerd.log)"
        fi
        if [ -S "$CTD_SOCK" ] && ctd_ctr version >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.05
    done
    tail -n 30 "$CTD_DIR/containerd.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    ctd_die "containerd did not answer on $CTD_SOCK within 10 s"
}

ctd_stop_daemon() {
    local pid i
    pid=$(ctd_pid) || {
        rm -f "$CTD_DIR/containerd.pid"
        return 0
    }
    kill -TERM "$pid"
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "containerd-env: containerd (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$CTD_DIR/containerd.pid" "$CTD_SOCK" "$CTD_SOCK.ttrpc"
}

ctd_purge_tasks() {
    # Kill and delete every task and container in every namespace, so the
    # shims exit and nothing keeps running after the daemon is gone.
    local ns id
    for ns in $(ctd_ctr namespaces ls -q 2>/dev/null); do
        for id in $(ctd_ctr -n "$ns" tasks ls -q 2>/dev/null); do
            ctd_ctr -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        for id in $(ctd_ctr -n "$ns" tasks ls -q 2>/dev/null); do
            ctd_ctr -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 ||
                echo "containerd-env: warning: could not delete task $ns/$id" >&2
        done
        for id in $(ctd_ctr -n "$ns" containers ls -q 2>/dev/null); do
            ctd_ctr -n "$ns" containers rm "$id" >/dev/null 2>&1 ||
                echo "containerd-env: warning: could not delete container $ns/$id" >&2
        done
    done
}

ctd_print_env() {
    echo "export MCPOD_TEST_CONTAINERD_SOCKET=$CTD_SOCK"
    echo "export MCPOD_TEST_CONTAINERD_DIR=$CTD_DIR"
}

ctd_main() {
    [ $# -eq 2 ] || ctd_usage
    local cmd=$1
    ctd_check_prereqs
    CTD_DIR=$(ctd_abs_dir "$2")
    CTD_SOCK=$CTD_DIR/containerd.sock
    # A unix socket path is limited to 107 bytes.
    [ ${#CTD_SOCK} -le 100 ] || ctd_die "DIR is too long for a unix socket path: $CTD_SOCK"
    case "$cmd" in
    start)
        if pid=$(ctd_pid) && ctd_ctr version >/dev/null 2>&1; then
            echo "containerd-env: reusing containerd already running for $CTD_DIR (pid $pid)" >&2
        else
            ctd_start_daemon
        fi
        ctd_print_env
        ;;
    restart)
        ctd_stop_daemon
        ctd_start_daemon
        ctd_print_env
        ;;
    down)
        ctd_stop_daemon
        ;;
    stop)
        # A daemon that is down (`down`) may still have tasks, whose shims
        # live on: start it again to end them.
        if ! ctd_pid >/dev/null && [ -d "$CTD_DIR/state" ] && [ -f "$CTD_DIR/config.toml" ]; then
            ctd_start_daemon || echo "containerd-env: warning: could not start containerd to end its tasks" >&2
        fi
        if ctd_pid >/dev/null; then
            ctd_purge_tasks
        fi
        ctd_stop_daemon
        # Nothing may stay mounted under DIR before it is removed.
        if grep -q " $CTD_DIR/" /proc/self/mounts; then
            awk -v d="$CTD_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts |
                sort -r | while read -r m; do umount -l "$m" || true; done
        fi
        rm -rf "$CTD_DIR"
        ;;
    status)
        ctd_pid >/dev/null || ctd_die "no containerd running for $CTD_DIR"
        ctd_ctr version >/dev/null
        ;;
    *)
        ctd_usage
        ;;
    esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # Sourced: do the work in a subshell (so `exit` and `set -e` do not hit the
    # caller's shell), then export the variables here.
    ctd_status=0
    (ctd_main "$@") >/dev/null || ctd_status=$?
    if [ $ctd_status -eq 0 ] && { [ "${1:-}" = start ] || [ "${1:-}" = restart ]; }; then
        MCPOD_TEST_CONTAINERD_DIR="$(cd "$2" && pwd -P)"
        MCPOD_TEST_CONTAINERD_SOCKET="$MCPOD_TEST_CONTAINERD_DIR/containerd.sock"
        export MCPOD_TEST_CONTAINERD_DIR MCPOD_TEST_CONTAINERD_SOCKET
        echo "MCPOD_TEST_CONTAINERD_SOCKET=$MCPOD_TEST_CONTAINERD_SOCKET"
    fi
    return $ctd_status
fi
ctd_main "$@"
