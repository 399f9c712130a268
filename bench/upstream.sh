#!/usr/bin/env bash
# bench/upstream.sh - calls that leave the switch through the upstream:
# sipp UAC (extension 21, INVITE challenged with 407) -> coventryd (UDP) -> TCP ->
# Kamailio (the test rig's tests/kamailio/upstream.cfg) -> UDP -> sipp UAS, and
# back. The same calls cross both proxies, so the figure is a same-run ratio:
# Kamailio's CPU per call (a TCP<->UDP record-routing relay, no digest) against
# coventryd's (digest, call state, double Record-Route, TCP link).
# A benchmark, not a test: it prints figures and never fails on them.
#
# Usage: bench/upstream.sh
# Knobs (environment, defaults):
#   RATES="200 500 1000"   calls/s, one sipp run per rate
#   SECS=8                 seconds of load per rate (calls = rate x secs)
#   SETTLE_S=3             pause between rates
#   SKIP_BUILD=0           1: use the already built target/release/coventryd
#   OUT=bench/results/upstream-<stamp>
#   COV_PORT=5260 KAM_PORT=5270 UAS_PORT=5281 UAC_PORT=5291 (127.0.0.1; Kamailio
#   also takes KAM_PORT+1 and KAM_PORT+2 for its emergency and SMS sockets)
# Everything runs on 127.0.0.1; every sipp run is bounded by -m, -timeout and
# timeout(1); every process started here is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATES=${RATES:-"200 500 1000"}
SECS=${SECS:-8}
SETTLE_S=${SETTLE_S:-3}
SKIP_BUILD=${SKIP_BUILD:-0}
COV_PORT=${COV_PORT:-5260}
KAM_PORT=${KAM_PORT:-5270}
UAS_PORT=${UAS_PORT:-5281}
UAC_PORT=${UAC_PORT:-5291}
OUT=${OUT:-$ROOT/bench/results/upstream-$(date +%Y%m%d-%H%M%S)}
# shellcheck source=bench/lib/upstream_rig.sh
. "$ROOT/bench/lib/upstream_rig.sh"

tree_ticks() {  # $1 pid -> utime+stime ticks of it and its children (Kamailio forks)
    local total=0 p v
    for p in $1 $(pgrep -P "$1" || true); do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

rig_binaries
rig_kamailio 256 32
rig_coventryd "; one sipp line plays thousands of callers: no per-line or outside bound,
; and no per-source rate (its 5 datagrams a call exceed 2,000/s from one address)
max_per_line = 0
[security]
source_rate = 0"
rig_wait_route

total=0
for r in $RATES; do total=$((total + r * SECS)); done
timeout $((SECS * 4 * $(echo "$RATES" | wc -w) + 120)) sipp -sf "$SCEN/upstream_uas_call.xml" \
    -i 127.0.0.1 -p "$UAS_PORT" -key ext 0044 -set ring 0 -set linger 0 -m "$total" \
    -timeout $((SECS * 4 * $(echo "$RATES" | wc -w) + 100)) -nostdin -bg \
    >"$OUT/uas.log" 2>&1 || true
sleep 0.5

printf '| calls/s | ok/failed | coventryd CPU ms/call | Kamailio CPU ms/call | ratio Kam/cov |\n|---|---|---|---|---|\n' >"$OUT/upstream.md"
hz=$(getconf CLK_TCK)
for r in $RATES; do
    n=$((r * SECS))
    c0=$(tree_ticks "$CPID"); k0=$(tree_ticks "$KPID")
    say "rate $r/s, $n calls"
    timeout $((SECS * 4 + 60)) sipp -sf "$SCEN/uac_call.xml" 127.0.0.1:"$COV_PORT" \
        -i 127.0.0.1 -p "$UAC_PORT" -key ext 21 -key target 0044123 -au 21 -ap pw21 \
        -auth_uri "127.0.0.1:$COV_PORT" -set hold 0 -r "$r" -m "$n" -l 5000 \
        -timeout $((SECS * 4 + 30)) -nostdin -trace_stat -stf "$OUT/uac-$r.csv" \
        >"$OUT/uac-$r.log" 2>&1 || true
    c1=$(tree_ticks "$CPID"); k1=$(tree_ticks "$KPID")
    python3 - "$r" "$OUT/uac-$r.csv" $((c1 - c0)) $((k1 - k0)) "$hz" >>"$OUT/upstream.md" <<'PY'
import sys
r, csv, c, k, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
try:
    lines = [l.rstrip(";\n").split(";") for l in open(csv) if l.strip()]
    row = dict(zip(lines[0], lines[-1]))
    ok, failed = int(row["SuccessfulCall(C)"]), int(row["FailedCall(C)"])
except (OSError, IndexError, KeyError, ValueError):
    ok, failed = 0, 0
cms = c * 1000 / hz / ok if ok else float("nan")
kms = k * 1000 / hz / ok if ok else float("nan")
print(f"| {r} | {ok}/{failed} | {cms:.3f} | {kms:.3f} | **{kms / cms:.2f}** |")
PY
    sleep "$SETTLE_S"
done
grep -E "^VmRSS" "/proc/$CPID/status" | sed 's/^/coventryd after the sweep: /' | tee -a "$OUT/run.log"
cat "$OUT/upstream.md"
say "results in $OUT"
