#!/usr/bin/env bash
# bench/tui_idle.sh - the attendant console's figures, a measurement, not a
# test of correctness:
#   - pbx-tui's CPU time over SECS seconds idle (default 60) with all 80 extensions
#     of a 2-digit plan registered (target: under 1% of one core);
#   - the delay from an event in the state block to its appearance on the screen,
#     over 20 events (target: under 250 ms).
# It runs the ignored test `measure_idle_cpu_and_event_delay` in
# tests/tests/console.rs on release builds: the real coventryd, 80 in-test phones,
# the real pbx-tui in an 80x24 tmux pane; CPU from /proc/PID/stat (utime + stime),
# screen from `tmux capture-pane` polled as fast as tmux answers (so the delay
# includes up to one capture, a few ms).
#
# Usage:  bench/tui_idle.sh [SECS]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v tmux >/dev/null 2>&1; then
    echo "bench/tui_idle.sh: needs tmux (Debian package tmux)" >&2
    exit 1
fi

cargo build --release -p coventryd -p pbx-tui
COVENTRY_TEST_NO_BUILD=1 TUI_IDLE_SECS="${1:-60}" \
    cargo test --release -p coventry-tests --test console -- \
    --ignored --exact measure_idle_cpu_and_event_delay --nocapture
