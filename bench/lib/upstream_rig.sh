# bench/lib/upstream_rig.sh - sourced by bench/upstream.sh and bench/teardown.sh:
# coventryd with one extension (21, secret pw21) whose calls to numbers leave
# over TCP to a Kamailio from the test rig's template (tests/kamailio/upstream.cfg),
# which relays them to one UAS port. Every process it starts is stopped by PID
# on exit (the caller's trap). The caller sets ROOT, OUT, COV_PORT, KAM_PORT,
# UAS_PORT and SKIP_BUILD before sourcing it.

KAMAILIO=$(command -v kamailio || echo /usr/sbin/kamailio)
MODULES=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}
SCEN=$ROOT/tests/scenarios
mkdir -p "$OUT"
PBXCTL=("$OUT/pbxctl" --runtime-dir "$OUT/run")

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

[ -x "$KAMAILIO" ] || { echo "kamailio is not installed (apt-get install -y kamailio)" >&2; exit 2; }
command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install -y sip-tester)" >&2; exit 2; }

# Build (unless SKIP_BUILD=1) and copy the binaries into $OUT.
rig_binaries() {
    if [ "$SKIP_BUILD" != 1 ]; then
        say "building coventryd and pbxctl (release)"
        (cd "$ROOT" && cargo build --release -q -p coventryd -p pbxctl)
    fi
    cp "$ROOT/target/release/coventryd" "$ROOT/target/release/pbxctl" "$OUT/"
}

# Kamailio from the test rig's template, its default route relaying to the UAS;
# $1 $2: its shared and private memory (MB). Sets KPID.
rig_kamailio() {
    sed -e "s/@MAIN_PORT@/$KAM_PORT/g" -e "s/@EMERGENCY_PORT@/$((KAM_PORT + 1))/g" \
        -e "s/@SMS_PORT@/$((KAM_PORT + 2))/g" -e "s/@COVENTRY_PORT@/$COV_PORT/g" \
        -e "s/@UAS_PORT@/$UAS_PORT/g" -e "s/@EMERGENCY_UAS_PORT@/$UAS_PORT/g" \
        -e "s/@SMS_UAS_PORT@/$UAS_PORT/g" \
        -e 's/^debug=.*/debug=0/' \
        "$ROOT/tests/kamailio/upstream.cfg" >"$OUT/kamailio.cfg"
    mkdir -p "$OUT/kam-run"
    setsid "$KAMAILIO" -f "$OUT/kamailio.cfg" -DD -E -L "$MODULES" -Y "$OUT/kam-run" \
        -m "$1" -M "$2" >"$OUT/kamailio.log" 2>&1 &
    KPID=$!
    pids+=("$KPID")
}

# coventryd with the route to Kamailio and $1 (more configuration lines, e.g.
# the bounds one sipp line playing every caller needs off). Sets CPID.
rig_coventryd() {
    cat >"$OUT/coventry.conf" <<EOF
[server]
listen = 127.0.0.1:$COV_PORT
realm = bench
; stock sipp 3.6 answers only MD5 challenges (the rig's contract)
algorithm = md5
[calls]
ring = 5
noanswer = 6
$1
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
}

# The first route's FIELD from pbxctl status --json (empty when none).
route() {
    "${PBXCTL[@]}" status --json 2>/dev/null |
        python3 -c "import json,sys; u=json.load(sys.stdin)['upstream']; print(u[0]['$1'] if u else '')" 2>/dev/null || true
}

# Wait (10 s at most) until the route is connected.
rig_wait_route() {
    say "waiting for the route to connect"
    for _ in $(seq 1 100); do
        [ "$(route state)" = connected ] && break
        sleep 0.1
    done
}
