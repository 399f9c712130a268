#!/usr/bin/env bash
# bench/ipc_latency.sh - how long a command takes end to end, a measurement, not a
# test of correctness: the whole `pbxctl dnd 24 on|off` process (write the control
# FIFO, wait in the event ring for the daemon's result), median and 90th percentile
# over RUNS runs (default 41), against a running coventryd on release builds.
#
# With BASELINE=<git revision> the same is measured, in the same run and against
# the same daemon, with that revision's pbxctl built into a temporary worktree, so
# the figures compare on a noisy machine (for instance the revision before readers
# were woken by a futex instead of polling the ring every 20 ms).
#
# The same run also times /bin/true and `pbxctl --version`: what any process
# costs here, so that the part the IPC adds can be read off.
#
# Usage:  [BASELINE=REV] [RUNS=N] bench/ipc_latency.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${RUNS:-41}"
work="$(mktemp -d /tmp/coventry-ipc-bench.XXXXXX)"
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [ -d "$work/base-src" ]; then
        git worktree remove --force "$work/base-src" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

cargo build --release -q -p coventryd -p pbxctl
mkdir -p "$work/bin"
cp target/release/coventryd target/release/pbxctl "$work/bin/"

if [ -n "${BASELINE:-}" ]; then
    git worktree add -q --detach "$work/base-src" "$BASELINE"
    (cd "$work/base-src" && CARGO_TARGET_DIR="$work/base-target" \
        cargo build --release -q -p pbxctl)
    cp "$work/base-target/release/pbxctl" "$work/pbxctl-baseline"
fi

mkdir -p -m 0700 "$work/run" "$work/state"
printf '[server]\nlisten = 127.0.0.1:0\n\n[24]\nsecret = bench-secret-24\n' >"$work/coventry.conf"
export COVENTRY_RUNTIME_DIR="$work/run" COVENTRY_STATE_DIR="$work/state"
"$work/bin/coventryd" --config "$work/coventry.conf" 2>"$work/coventryd.log" &
daemon_pid=$!
for _ in $(seq 1 100); do
    [ -p "$work/run/control" ] && break
    sleep 0.05
done

# measure NAME COMMAND...: RUNS runs of COMMAND (an argument `STATE` becomes on
# and off in turn), wall time of each process in µs as the shell sees it.
measure() {
    local name="$1" i state t0 t1 arg
    shift
    : >"$work/$name.us"
    for i in $(seq 1 "$RUNS"); do
        state=on
        [ $((i % 2)) -eq 0 ] && state=off
        local argv=()
        for arg in "$@"; do
            [ "$arg" = STATE ] && arg="$state"
            argv+=("$arg")
        done
        t0=$(date +%s%N)
        "${argv[@]}" >/dev/null
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) >>"$work/$name.us"
    done
    sort -n "$work/$name.us" | awk -v name="$name" '
        { v[NR] = $1 }
        END {
            m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)];
            printf "%-10s median %6.2f ms   p90 %6.2f ms   (%d runs)\n", name, m / 1000, p / 1000, NR
        }'
}

# The floor of any such measurement on this machine: starting a process at all
# (/bin/true), and starting pbxctl without touching the daemon (--version).
echo "floor, whole process:"
measure true /bin/true
measure version "$work/bin/pbxctl" --version
# A command that changes nothing on disk: the IPC alone.
echo "pbxctl why 24, whole process:"
measure why "$work/bin/pbxctl" why 24
# dnd's result is published only once the setting is on the disk (file and
# directory fsynced: an acknowledged setting survives kill -9).
echo "pbxctl dnd 24 on|off, whole process:"
measure current "$work/bin/pbxctl" dnd 24 STATE
if [ -n "${BASELINE:-}" ]; then
    measure baseline "$work/pbxctl-baseline" dnd 24 STATE
fi
