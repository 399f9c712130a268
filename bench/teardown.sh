#!/usr/bin/env bash
# bench/teardown.sh - a mass hang-up through the upstream: sipp UAC (extension 21,
# INVITE challenged with 407) places CALLS calls that leave through coventryd's
# TCP link to Kamailio (the test rig's tests/kamailio/upstream.cfg) and a sipp UAS
# answers them all; then `pbxctl hangup 21` ends them at once. Measured: the time
# from the command until the far side has had every BYE (the UAS completes a call
# on its BYE), whether the link stayed up (one connection, no failure) and
# coventryd's tcp_dropped (should be 0). The bounds on calls are off
# (max_per_line = 0, [upstream] max_calls = 0): the figure is the link's.
# A benchmark, not a test: it prints figures and never fails on them.
#
# Usage: bench/teardown.sh
# Knobs (environment, defaults):
#   CALLS=10000            calls held, then hung up at once
#   RATE=500               calls/s while setting them up
#   SKIP_BUILD=0           1: use the already built target/release/coventryd
#   OUT=bench/results/teardown-<stamp>
#   COV_PORT=5360 KAM_PORT=5370 UAS_PORT=5381 UAC_PORT=5391 (127.0.0.1; Kamailio
#   also takes KAM_PORT+1 and KAM_PORT+2)
# Everything runs on 127.0.0.1; every sipp run is bounded by -m, -timeout and
# timeout(1); every wait is bounded; every process started here is stopped by PID
# on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CALLS=${CALLS:-10000}
RATE=${RATE:-500}
SKIP_BUILD=${SKIP_BUILD:-0}
COV_PORT=${COV_PORT:-5360}
KAM_PORT=${KAM_PORT:-5370}
UAS_PORT=${UAS_PORT:-5381}
UAC_PORT=${UAC_PORT:-5391}
OUT=${OUT:-$ROOT/bench/results/teardown-$(date +%Y%m%d-%H%M%S)}
SETUP_S=$((CALLS / RATE + 60))
# shellcheck source=bench/lib/upstream_rig.sh
. "$ROOT/bench/lib/upstream_rig.sh"

counter() {
    "${PBXCTL[@]}" status --json 2>/dev/null |
        python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['$1'])" 2>/dev/null || echo "?"
}
stat() {  # FILE COLUMN: the last value of a sipp -trace_stat column
    python3 - "$1" "$2" <<'PY' 2>/dev/null || echo 0
import sys
lines = [l.rstrip(";\n").split(";") for l in open(sys.argv[1]) if l.strip()]
print(dict(zip(lines[0], lines[-1]))[sys.argv[2]])
PY
}

rig_binaries
rig_kamailio 512 64
rig_coventryd "; one sipp line plays every caller, and the figure is the link's: no call bounds
max_per_line = 0
[security]
source_rate = 0"
rig_wait_route

say "setting up $CALLS calls at $RATE/s"
timeout $((SETUP_S + 180)) sipp -sf "$SCEN/upstream_uas_call.xml" -i 127.0.0.1 -p "$UAS_PORT" \
    -key ext 0044 -set ring 0 -set linger 0 -m "$CALLS" -timeout $((SETUP_S + 150)) -nostdin \
    -trace_stat -fd 1 -stf "$OUT/uas.csv" >"$OUT/uas.log" 2>&1 &
UAS=$!
pids+=("$UAS")
timeout $((SETUP_S + 180)) sipp -sf "$SCEN/uac_call_remote_bye.xml" 127.0.0.1:"$COV_PORT" \
    -i 127.0.0.1 -p "$UAC_PORT" -key ext 21 -key target 0044123 -au 21 -ap pw21 \
    -auth_uri "127.0.0.1:$COV_PORT" -set linger 0 -r "$RATE" -m "$CALLS" -l $((CALLS + 100)) \
    -timeout $((SETUP_S + 150)) -nostdin -trace_stat -fd 1 -stf "$OUT/uac.csv" \
    >"$OUT/uac.log" 2>&1 &
UAC=$!
pids+=("$UAC")
# Every call has reached the far side (the UAS answers at once) and had time to
# be ACKed: bounded.
for _ in $(seq 1 $((SETUP_S * 10))); do
    [ -s "$OUT/uas.csv" ] && [ "$(stat "$OUT/uas.csv" "CurrentCall")" -ge "$CALLS" ] && break
    sleep 0.1
done
sleep 2
say "far side holds $(stat "$OUT/uas.csv" "CurrentCall") calls; sent before: $(route sent)"
before="$(route connects)/$(route failures)"

t0=$(date +%s.%N)
"${PBXCTL[@]}" --timeout 60 hangup 21 >"$OUT/hangup.txt" 2>&1 || say "pbxctl hangup: exit $?"
t1=$(date +%s.%N)
# The UAS ends with its CALLS calls complete: each needed its BYE.
for _ in $(seq 1 1200); do kill -0 "$UAS" 2>/dev/null || break; sleep 0.1; done
t2=$(date +%s.%N)
sleep 1.1 # one more -fd 1 line in the UAS's stat file
ok=$(stat "$OUT/uas.csv" "SuccessfulCall(C)")
failed=$(stat "$OUT/uas.csv" "FailedCall(C)")
{
    printf '| calls | far side ok/failed | hangup command | all BYEs at the far side | link connects/failures before → after | tcp_dropped |\n|---|---|---|---|---|---|\n'
    printf '| %s | %s/%s | %.2f s | %.2f s | %s → %s/%s | %s |\n' "$CALLS" "$ok" "$failed" \
        "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)" "$before" "$(route connects)" \
        "$(route failures)" "$(counter tcp_dropped)"
} >"$OUT/teardown.md"
grep -E "^VmRSS" "/proc/$CPID/status" | sed 's/^/coventryd after the hang-up: /' | tee -a "$OUT/run.log"
grep -c "dropped\|not reading" "$OUT/coventryd.log" | sed 's/^/log lines about drops or cut-offs: /' | tee -a "$OUT/run.log" || true
cat "$OUT/teardown.md"
say "results in $OUT"
