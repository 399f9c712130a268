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
KAMAILIO=$(command -v kamailio || echo /usr/sbin/kamailio)
MODULES=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}
SCEN=$ROOT/tests/scenarios
mkdir -p "$OUT"

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

tree_ticks() {  # $1 pid -> utime+stime ticks of it and its children (Kamailio forks)
    local total=0 p v
    for p in $1 $(pgrep -P "$1" || true); do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

[ -x "$KAMAILIO" ] || { echo "kamailio is not installed (apt-get install -y kamailio)" >&2; exit 2; }
command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install -y sip-tester)" >&2; exit 2; }

if [ "$SKIP_BUILD" != 1 ]; then
    say "building coventryd and pbxctl (release)"
    (cd "$ROOT" && cargo build --release -q -p coventryd -p pbxctl)
fi
cp "$ROOT/target/release/coventryd" "$ROOT/target/release/pbxctl" "$OUT/"

# Kamailio from the test rig's template: its default route relays to the UAS.
sed -e "s/@MAIN_PORT@/$KAM_PORT/g" -e "s/@EMERGENCY_PORT@/$((KAM_PORT + 1))/g" \
    -e "s/@SMS_PORT@/$((KAM_PORT + 2))/g" -e "s/@COVENTRY_PORT@/$COV_PORT/g" \
    -e "s/@UAS_PORT@/$UAS_PORT/g" -e "s/@EMERGENCY_UAS_PORT@/$UAS_PORT/g" \
    -e "s/@SMS_UAS_PORT@/$UAS_PORT/g" \
    -e 's/^debug=.*/debug=0/' \
    "$ROOT/tests/kamailio/upstream.cfg" >"$OUT/kamailio.cfg"
mkdir -p "$OUT/kam-run"
setsid "$KAMAILIO" -f "$OUT/kamailio.cfg" -DD -E -L "$MODULES" -Y "$OUT/kam-run" \
    -m 256 -M 32 >"$OUT/kamailio.log" 2>&1 &
KPID=$!
pids+=("$KPID")

cat >"$OUT/coventry.conf" <<EOF
[server]
listen = 127.0.0.1:$COV_PORT
realm = bench
algorithm = md5
[calls]
ring = 5
noanswer = 6
; one sipp line plays thousands of callers: no per-line or outside bound
max_per_line = 0
[upstream]
route = 127.0.0.1:$KAM_PORT
max_calls = 0
[21]
secret = pw21
EOF
mkdir -p "$OUT/run" "$OUT/state"
setsid "$OUT/coventryd" -c "$OUT/coventry.conf" --runtime-dir "$OUT/run" \
    --state-dir "$OUT/state" >"$OUT/coventryd.log" 2>&1 &
CPID=$!
pids+=("$CPID")

say "waiting for the route to connect"
for _ in $(seq 1 100); do
    if "$OUT/pbxctl" --runtime-dir "$OUT/run" status --json 2>/dev/null |
        python3 -c 'import json,sys; u=json.load(sys.stdin)["upstream"]; sys.exit(0 if u and u[0]["state"]=="connected" else 1)'; then
        break
    fi
    sleep 0.1
done

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
