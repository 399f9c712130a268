#!/usr/bin/env bash
# bench/run.sh - coventryd against the reference Kamailio, same sipp load, same
# session; plus coventryd's memory with 0, 80 and 600 extensions registered.
# A benchmark, not a test: it prints figures and ratios and never fails on them.
#
# Usage:  bench/run.sh [MODE...]
#   load      build coventryd (release), start it on a 3-digit plan (users
#             100..699, secret pwN, MD5 digest), drive the rig's REGISTER and
#             MESSAGE sweeps with bench/lib/drive.sh, stop it; then the same
#             phases and rates against Kamailio with the rig's run-kamailio.sh;
#             print the comparison table (bench/lib/compare.py)
#   memory    RSS/PSS of coventryd idle, with all 80 extensions of a 2-digit
#             plan registered, then idle and with all 600 of a 3-digit plan
#   micro     the criterion benchmarks (coventryd/benches/hot_paths.rs) and
#             their ratios to the parse baselines of the same run
#   profile   perf profile of coventryd under REGISTER and MESSAGE load (built
#             with frame pointers in its own target dir; needs `perf`)
#   flood     coventryd under floods, each time with two legitimate phones
#             (bench/lib/phone.py) on other loopback addresses: no flood; one
#             source at FLOOD_RATE paced; the same source unpaced; FLOOD_MANY_SRC
#             (241 addresses) sharing FLOOD_MANY_RATE; the flood is the mix of
#             tests/tests/flood.rs (bench/lib/flood.py).  Per case: kernel drops
#             on the switch's socket, its shed counter, the phones' latencies;
#             and the REGISTER/s capacity (drive.sh regsweep, no flood) first
#   netns     the REGISTER and MESSAGE sweeps of `load` (coventryd only) in
#             three shapes, same run: listening on 127.0.0.1 (as `load`), on
#             0.0.0.0 with the phones on 127.0.0.1, and on 0.0.0.0 with the
#             phones in a network namespace behind a veth pair (made here,
#             removed on exit; needs root and `ip`): the README's deployment
#   bounds    what one authenticated phone can have in flight (issue 20), on
#             the daemon's defaults, a fresh daemon per case (bench/lib/textflood.py,
#             bench/lib/uac_call_hold.xml, uac_call_wait_bye.xml; bounds.md):
#             texts: BOUNDS_CALLER floods MESSAGEs (digest, unpaced) for
#               BOUNDS_TEXT_SECS to BOUNDS_CALLEE, registered on a socket that
#               reads and never answers, so each text waits for Timer F; VmRSS
#               and VmHWM before, every second, after; the 503s, `limited`
#             calls: BOUNDS_CALLER calls BOUNDS_CALLEE (a sipp UAS that answers;
#               call_waiting = yes) at BOUNDS_CALL_RATE for BOUNDS_CALL_SECS, each
#               call held BOUNDS_HOLD_S; the most calls up at once, the 503s,
#               `limited`; with the default max_per_line, then max_per_line = 0
#             upstream: the same calls to BOUNDS_UP_NUMBER through the upstream:
#               the test rig's Kamailio (tests/kamailio/upstream.cfg, TCP from
#               the switch) relaying to a sipp UAS (tests/scenarios/
#               upstream_uas_call.xml); the defaults (max_per_line 8,
#               max_calls 32), max_per_line = 0 (max_calls holds), both 0;
#               skipped with a message when kamailio is not installed
#             teardown: bounds off (max_per_line = 0, source_rate = 0),
#               BOUNDS_TD_CALLS local calls up between two sipp, then `pbxctl
#               hangup` of the caller: the time until every BYE is answered, the
#               BYEs each side got (the upstream variant waits for the TCP link
#               work of branch `links`)
#   all       load + memory + micro (the default)
#
# Knobs (environment, defaults):
#   RIG=bench/rig               the reference rig (bench.sh, run-kamailio.sh,
#                               scenarios/, lib/sippstats.py); read, never modified
#   OUT=bench/results/<stamp>   results (git-ignored): coventryd-rN/ and
#                               kamailio-rN/ per round, memory/, micro/, profile/,
#                               comparison.md, memory.md, micro.md, profile.md
#   COV_PORT=5160               coventryd's UDP port on 127.0.0.1
#   REG_SWEEP_RATES="1000 2000 4000"   REGISTER/s of the sweep, one run per rate
#   MSG_SWEEP_RATES="1000 2000 4000"   MESSAGE/s of the sweep
#   SWEEP_SECS=10               seconds of load per rate (count = rate x secs)
#   SWEEP_REPEAT=1              passes over each rate list (repeats are pooled)
#   SETTLE_S=3                  pause between runs
#   KAMAILIO=auto               auto: run the reference when `kamailio` is
#                               installed, else skip it with a message; 0: skip
#   KAM_AUTH=all                rig mode: 401 on REGISTER and 407 on MESSAGE,
#                               as coventryd does (register: REGISTER only; none)
#   KAM_CHILDREN=4              Kamailio UDP worker processes
#   ROUNDS=2                    rounds of `load`, the order of the two targets
#                               swapped every round (coventryd first in odd
#                               rounds); rounds are pooled per rate, so slow drift
#                               of a shared machine hits both targets alike
#   MEM_SETTLE_S=2              wait before each memory reading
#   PROFILE_RATE=2000 PROFILE_SECS=10  load offered while perf records
#   PERF_FREQ=999               perf sampling frequency (Hz)
#   SKIP_BUILD=0                1: use the already built target/release/coventryd
#   REV=                        build this git revision instead of the work
#                               tree (git archive into a temporary directory,
#                               target dir target/bench-rev): figures of a
#                               known commit while the tree is being edited
#   COVENTRY_LOG=info           coventryd's log level (as in production)
#   SOURCE_RATE=0               [security] source_rate of the switch in load,
#                               memory, profile, netns and the flood capacity
#                               run: the rig sends everything from one address,
#                               which the per-source limit (2,000 datagrams/s by
#                               default) would cap; 0 = no limit, `default` =
#                               the daemon's own. Written only when the binary
#                               knows the key (older revisions do not)
#   flood:
#   FLOOD_CASES="none paced unpaced many"   which cases, in this order
#   FLOOD_RATE=40000            datagrams/s of the one-source paced case
#   FLOOD_MANY_RATE=40000       datagrams/s of all the many sources together (0: unpaced)
#   FLOOD_ONE_SRC=127.0.0.2     the one flooding source
#   FLOOD_MANY_SRC=127.0.0.10-127.0.0.250
#   FLOOD_PHONE_SECS=15         the phones start no new round after this (per case)
#   FLOOD_LEAD_S=2              the flood runs this long before the phones start
#   FLOOD_PAUSE_MS=200          the phones' pause between rounds
#   PHONE_CALLER=121@127.0.0.3 PHONE_CALLEE=122@127.0.0.4   the phones (EXT@IP)
#   FLOOD_CAP_RATES="2000 4000 8000"  REGISTER/s of the capacity sweep (SWEEP_SECS each)
#   FLOOD_SOURCE_RATE=default   [security] source_rate in the flood cases: the
#                               daemon's default, the thing under test
#   netns:
#   NETNS_SHAPES="lo any netns" which shapes, in this order (reversed in even rounds)
#   NETNS_NET=10.250.0          the veth pair's /30: .1 here, .2 in the namespace
#   bounds:
#   BOUNDS_CASES="texts calls upstream teardown"   which cases, in this order
#   BOUNDS_CALLER=21@127.0.0.2 BOUNDS_CALLEE=22@127.0.0.3   the phone and the
#                               other side (EXT@IP, 2-digit plan, password pwEXT)
#   BOUNDS_TEXT_SECS=20         seconds of the text flood
#   BOUNDS_TEXT_DRAIN=40        then seconds of counting the finals (Timer F: 32 s)
#   BOUNDS_TEXT_RATE=0          MESSAGE/s of the flood (0: as fast as it can)
#   BOUNDS_CALL_RATE=400        calls/s the phone tries (4 datagrams each from
#                               one address: the default source_rate, 2,000/s,
#                               sheds beyond about 500/s)
#   BOUNDS_CALL_SECS=15 BOUNDS_HOLD_S=20   seconds of trying; each call's hold
#   BOUNDS_TD_CALLS=10000 BOUNDS_TD_RATE=250   calls up before the hang-up, set up at this rate
#   BOUNDS_UAS_PORT=5182 BOUNDS_UAC_PORT=5192 BOUNDS_REG_PORT=5193   sipp's ports
#   BOUNDS_KAM_PORT=5270 (and +1, +2) BOUNDS_UP_UAS_PORT=5281   upstream: Kamailio, its UAS
#   BOUNDS_UP_NUMBER=0044123    the number called outside
#
# Everything runs on loopback (netns: also on the veth pair, whose namespace has
# no other link and no default route); every sipp run is bounded by -m, -timeout
# and timeout(1), every flood and phone by its own cap and timeout(1); every
# process started here is stopped by PID on exit and the namespace is removed;
# nothing is downloaded at run time (the build needs only what Cargo.lock names).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RIG=${RIG:-$HERE/rig}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/results/$STAMP}
COV_PORT=${COV_PORT:-5160}
REG_SWEEP_RATES=${REG_SWEEP_RATES:-"1000 2000 4000"}
MSG_SWEEP_RATES=${MSG_SWEEP_RATES:-"1000 2000 4000"}
SWEEP_SECS=${SWEEP_SECS:-10}
SWEEP_REPEAT=${SWEEP_REPEAT:-1}
SETTLE_S=${SETTLE_S:-3}
KAMAILIO=${KAMAILIO:-auto}
KAM_AUTH=${KAM_AUTH:-all}
KAM_CHILDREN=${KAM_CHILDREN:-4}
ROUNDS=${ROUNDS:-2}
MEM_SETTLE_S=${MEM_SETTLE_S:-2}
PROFILE_RATE=${PROFILE_RATE:-2000}
PROFILE_SECS=${PROFILE_SECS:-10}
PERF_FREQ=${PERF_FREQ:-999}
SKIP_BUILD=${SKIP_BUILD:-0}
REV=${REV:-}
SOURCE_RATE=${SOURCE_RATE:-0}
FLOOD_SOURCE_RATE=${FLOOD_SOURCE_RATE:-default}
FLOOD_CASES=${FLOOD_CASES:-"none paced unpaced many"}
FLOOD_RATE=${FLOOD_RATE:-40000}
FLOOD_MANY_RATE=${FLOOD_MANY_RATE:-40000}
FLOOD_ONE_SRC=${FLOOD_ONE_SRC:-127.0.0.2}
FLOOD_MANY_SRC=${FLOOD_MANY_SRC:-127.0.0.10-127.0.0.250}
FLOOD_PHONE_SECS=${FLOOD_PHONE_SECS:-15}
FLOOD_LEAD_S=${FLOOD_LEAD_S:-2}
FLOOD_PAUSE_MS=${FLOOD_PAUSE_MS:-200}
PHONE_CALLER=${PHONE_CALLER:-121@127.0.0.3}
PHONE_CALLEE=${PHONE_CALLEE:-122@127.0.0.4}
FLOOD_CAP_RATES=${FLOOD_CAP_RATES:-"2000 4000 8000"}
NETNS_SHAPES=${NETNS_SHAPES:-"lo any netns"}
NETNS_NET=${NETNS_NET:-10.250.0}
BOUNDS_CASES=${BOUNDS_CASES:-"texts calls upstream teardown"}
BOUNDS_CALLER=${BOUNDS_CALLER:-21@127.0.0.2}
BOUNDS_CALLEE=${BOUNDS_CALLEE:-22@127.0.0.3}
BOUNDS_TEXT_SECS=${BOUNDS_TEXT_SECS:-20}
BOUNDS_TEXT_DRAIN=${BOUNDS_TEXT_DRAIN:-40}
BOUNDS_TEXT_RATE=${BOUNDS_TEXT_RATE:-0}
BOUNDS_CALL_RATE=${BOUNDS_CALL_RATE:-400}
BOUNDS_CALL_SECS=${BOUNDS_CALL_SECS:-15}
BOUNDS_HOLD_S=${BOUNDS_HOLD_S:-20}
BOUNDS_TD_CALLS=${BOUNDS_TD_CALLS:-10000}
BOUNDS_TD_RATE=${BOUNDS_TD_RATE:-250}
BOUNDS_UAS_PORT=${BOUNDS_UAS_PORT:-5182}
BOUNDS_UAC_PORT=${BOUNDS_UAC_PORT:-5192}
BOUNDS_REG_PORT=${BOUNDS_REG_PORT:-5193}
BOUNDS_KAM_PORT=${BOUNDS_KAM_PORT:-5270}
BOUNDS_UP_UAS_PORT=${BOUNDS_UP_UAS_PORT:-5281}
BOUNDS_UP_NUMBER=${BOUNDS_UP_NUMBER:-0044123}
export REG_SWEEP_RATES MSG_SWEEP_RATES SWEEP_SECS SWEEP_REPEAT SETTLE_S RIG

MODES=("$@")
[ ${#MODES[@]} -eq 0 ] && MODES=(all)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coventry-bench.XXXXXX")
COV_PID=""
COV_LISTEN=127.0.0.1

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }

stop_coventryd() {  # TERM by PID, wait up to 10 s, then KILL
    local i
    [ -n "$COV_PID" ] || return 0
    if alive "$COV_PID"; then
        kill -TERM "$COV_PID" 2>/dev/null || true
        for i in $(seq 1 100); do alive "$COV_PID" || break; sleep 0.1; done
        if alive "$COV_PID"; then kill -KILL "$COV_PID" 2>/dev/null || true; fi
    fi
    wait "$COV_PID" 2>/dev/null || true
    COV_PID=""
}
# Long steps run in the background and are waited for (run_fg), so INT/TERM
# act at once; cleanup then stops that step's whole process tree (all started
# by this script, directly or through the drivers), by PID.
CHILD=""
alive() {  # $1 pid: running (a zombie awaiting wait(2) counts as gone)
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null || true)
    [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
descendants() {  # $1 pid -> its descendants (not itself)
    ps -e -o pid=,ppid= | awk -v r="$1" '
        { par[$1] = $2 }
        END { s[r] = 1; ch = 1
              while (ch) { ch = 0; for (k in par) if (!(k in s) && (par[k] in s)) { s[k] = 1; ch = 1 } }
              for (k in s) if (k != r) print k }'
}
stop_tree() {  # $1 pid: TERM it and its descendants, wait up to 10 s, then KILL
    local root=$1 pids p i
    alive "$root" || { wait "$root" 2>/dev/null || true; return 0; }
    pids="$root $(descendants "$root")"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 1 100); do alive "$root" || break; sleep 0.1; done
    for p in $pids; do if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi; done
    wait "$root" 2>/dev/null || true
}
run_fg() {  # run "$@" in the background and wait for it
    local rc=0
    "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}
PERF_PID=""
FLOOD_PID=""
NS_NAME="" NS_VETH="" NS_MADE="" VETH_MADE=""  # the netns mode's namespace and veth pair
cleanup() {
    if [ -n "$CHILD" ]; then stop_tree "$CHILD"; fi
    if [ -n "$PERF_PID" ]; then stop_tree "$PERF_PID"; fi
    if [ -n "$FLOOD_PID" ]; then stop_tree "$FLOOD_PID"; fi
    stop_sampler
    stop_bounds_uas
    stop_kamailio
    stop_coventryd
    if [ -n "$NS_MADE$VETH_MADE" ]; then netns_down; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

need() {  # $1 command, $2 how to get it
    command -v "$1" >/dev/null 2>&1 || { echo "run.sh: '$1' not found: $2" >&2; exit 2; }
}
need sipp "apt-get install -y sip-tester"
need ss "apt-get install -y iproute2"
need python3 "apt-get install -y python3"
need cargo "install a Rust toolchain (rustup)"
[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time not found: apt-get install -y time" >&2; exit 2; }
[ -r "$RIG/run-kamailio.sh" ] && [ -r "$RIG/scenarios/register.xml" ] \
    || { echo "run.sh: the reference rig is not at RIG=$RIG" >&2; exit 2; }

port_busy() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }

# ---------- build ----------
BIN=$OUT/bin/coventryd
PBXCTL=$OUT/bin/pbxctl
build() {
    mkdir -p "$OUT/bin"
    if [ -n "$REV" ]; then
        # a known commit, whatever the work tree holds; its own target dir keeps
        # the work tree's build (and later runs of the same REV) apart
        local src=$WORK/src rev
        rev=$(cd "$REPO" && git rev-parse --short "$REV^{commit}") || { echo "run.sh: no revision '$REV'" >&2; exit 2; }
        mkdir -p "$src"
        (cd "$REPO" && git archive "$rev") | tar -x -C "$src"
        say "building coventryd and pbxctl (release) at $rev"
        CARGO_TARGET_DIR=$REPO/target/bench-rev \
            run_fg bash -c 'cd "$1" && exec cargo build --release --locked -p coventryd -p pbxctl' _ "$src" > "$OUT/build.log" 2>&1 \
            || { tail -n 30 "$OUT/build.log" >&2; exit 2; }
        cp "$REPO/target/bench-rev/release/coventryd" "$BIN"
        cp "$REPO/target/bench-rev/release/pbxctl" "$PBXCTL"
        echo "$rev (REV=$REV, built from git archive: no uncommitted changes)" > "$OUT/bin/source.txt"
        return 0
    fi
    if [ "$SKIP_BUILD" != 1 ]; then
        say "building coventryd and pbxctl (release)"
        run_fg bash -c 'cd "$1" && exec cargo build --release --locked -p coventryd -p pbxctl' _ "$REPO" > "$OUT/build.log" 2>&1 \
            || { tail -n 30 "$OUT/build.log" >&2; exit 2; }
    fi
    # a private copy: other work may rebuild target/ while the benchmark runs
    cp "$REPO/target/release/coventryd" "$BIN"
    cp "$REPO/target/release/pbxctl" "$PBXCTL"
    (cd "$REPO" && git rev-parse --short HEAD 2>/dev/null && git status --short -- coventryd shared 2>/dev/null | head -20) \
        > "$OUT/bin/source.txt" || true
}

# ---------- configuration: the rig's contract ----------
SOURCE_RATE_KNOWN=""
source_rate_known() {  # does this coventryd have [security] source_rate (the intake's per-source limit)?
    if [ -z "$SOURCE_RATE_KNOWN" ]; then
        printf '[server]\nlisten = 127.0.0.1:0\n\n[security]\nsource_rate = 0\n' > "$WORK/probe.conf"
        if "$BIN" --config "$WORK/probe.conf" --check-config > /dev/null 2>&1; then SOURCE_RATE_KNOWN=yes; else SOURCE_RATE_KNOWN=no; fi
    fi
    [ "$SOURCE_RATE_KNOWN" = yes ]
}
CALL_LIMIT_KNOWN=""
call_limit_known() {  # does this coventryd have [calls] max_per_line (calls at once per line)?
    if [ -z "$CALL_LIMIT_KNOWN" ]; then
        printf '[server]\nlisten = 127.0.0.1:0\n\n[calls]\nmax_per_line = 0\n' > "$WORK/probe-calls.conf"
        if "$BIN" --config "$WORK/probe-calls.conf" --check-config > /dev/null 2>&1; then CALL_LIMIT_KNOWN=yes; else CALL_LIMIT_KNOWN=no; fi
    fi
    [ "$CALL_LIMIT_KNOWN" = yes ]
}
source_rate_note() {  # $1 the value asked -> what the configuration says about it
    if ! source_rate_known; then echo "no per-source limit in this revision"
    elif [ "$1" = default ]; then echo "source_rate: the daemon's default"
    else echo "source_rate = $1"; fi
}

write_config() {  # $1 file, $2 digits (2|3), [$3 listen address, default 127.0.0.1], [$4 source_rate, default $SOURCE_RATE]
    local first last i sr=${4:-$SOURCE_RATE}
    if [ "$2" = 2 ]; then first=10; last=89; else first=100; last=699; fi
    COV_LISTEN=${3:-127.0.0.1}
    {
        echo "; generated by bench/run.sh: the bench rig's contract (user N, password pwN)"
        echo "[server]"
        echo "listen = $COV_LISTEN:$COV_PORT"
        echo "digits = $2"
        echo "realm = bench"
        # stock sipp 3.6 answers only MD5 (and AKAv1-MD5) challenges: offered
        # SHA-256 first it aborts the call ("authentication must use MD5 or AKAv1-MD5")
        echo "algorithm = md5"
        echo
        if [ "$sr" != default ] && source_rate_known; then
            # the rig's phones all send from one address: the per-source limit
            # would measure itself, not the switch
            echo "[security]"
            echo "source_rate = $sr"
            echo
        fi
        if call_limit_known; then
            # the rig's callers are sipp UACs making many calls at once on one
            # line (a trunk, not a phone): no per-line limit
            printf '[calls]\nmax_per_line = 0\n\n'
        fi
        # The rig's callees are sipp UASes taking many calls at once (a trunk, not
        # a phone): with call waiting they ring, as they do through Kamailio, which
        # knows no busy rule.
        for i in $(seq "$first" "$last"); do printf '[%d]\nsecret = pw%d\ncall_waiting = yes\n\n' "$i" "$i"; done
    } > "$1"
    "$BIN" --config "$1" --check-config > /dev/null
}

start_coventryd() {  # $1 config, $2 name (log file, runtime/state dirs)
    local i
    if port_busy "$COV_PORT"; then echo "run.sh: UDP port $COV_PORT is in use (set COV_PORT=)" >&2; exit 3; fi
    rm -rf "$WORK/$2"; mkdir -p "$WORK/$2/run" "$WORK/$2/state"
    COVENTRY_LOG=${COVENTRY_LOG:-info} "$BIN" --config "$1" \
        --runtime-dir "$WORK/$2/run" --state-dir "$WORK/$2/state" 2> "$OUT/coventryd-$2.log" &
    COV_PID=$!
    for i in $(seq 1 100); do
        port_busy "$COV_PORT" && [ -e "$WORK/$2/run/state" ] && break
        kill -0 "$COV_PID" 2>/dev/null || { cat "$OUT/coventryd-$2.log" >&2; exit 4; }
        sleep 0.1
    done
    port_busy "$COV_PORT" || { echo "run.sh: coventryd did not bind $COV_LISTEN:$COV_PORT" >&2; exit 4; }
    COV_RT=$WORK/$2/run
    say "coventryd pid $COV_PID on $COV_LISTEN:$COV_PORT ($2)"
}

status_json() {  # $1 file
    "$PBXCTL" --runtime-dir "$COV_RT" status --json > "$1" 2>&1 || true
}

# ---------- load ----------
run_coventryd_load() {  # $1 round
    local dir=$OUT/coventryd-r$1 rc=0
    write_config "$WORK/coventry-3.conf" 3
    start_coventryd "$WORK/coventry-3.conf" "load-r$1"
    say "round $1, coventryd: REGISTER sweep ($REG_SWEEP_RATES/s) and MESSAGE sweep ($MSG_SWEEP_RATES/s)"
    PROXY=127.0.0.1:$COV_PORT TARGET_PID=$COV_PID LABEL=coventryd OUT=$dir \
        run_fg bash "$HERE/lib/drive.sh" regsweep msgsweep || rc=$?
    if kill -0 "$COV_PID" 2>/dev/null; then
        status_json "$dir/status-after.json"
    else
        say "WARNING: coventryd (pid $COV_PID) was gone before the end of round $1; see $OUT/coventryd-load-r$1.log"
    fi
    stop_coventryd
    [ "$rc" = 0 ] || say "coventryd driver exited with $rc (see $dir/driver.log)"
}

kamailio_present() {
    [ "$KAMAILIO" != 0 ] || { say "Kamailio skipped (KAMAILIO=0)"; return 1; }
    if ! command -v kamailio >/dev/null 2>&1 && [ ! -x /usr/sbin/kamailio ]; then
        say "Kamailio not installed: skipping the reference (install with: apt-get install -y kamailio)"
        return 1
    fi
}

run_kamailio_load() {  # $1 round
    local dir=$OUT/kamailio-r$1 rc=0
    say "round $1, Kamailio (KAM_AUTH=$KAM_AUTH, $KAM_CHILDREN children): same sweeps through the rig's run-kamailio.sh"
    # the rig's bench.sh also registers a call UAS and places 5 smoke calls in
    # its setup; those are not in the measured rows
    KAM_AUTH=$KAM_AUTH KAM_CHILDREN=$KAM_CHILDREN LABEL=kamailio OUT=$dir \
        run_fg bash "$RIG/run-kamailio.sh" regsweep msgsweep > "$dir.log" 2>&1 || rc=$?
    grep -E '^\[.*\] (sweep|target)' "$dir.log" | tee -a "$OUT/run.log" || true
    [ "$rc" = 0 ] || say "run-kamailio.sh exited with $rc (see $dir.log)"
}

mode_load() {
    local r t kam_ok=1 order
    kamailio_present || kam_ok=0
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="coventryd kamailio"; else order="kamailio coventryd"; fi
        for t in $order; do
            case "$t" in
                coventryd) run_coventryd_load "$r" ;;
                kamailio) if [ "$kam_ok" = 1 ]; then run_kamailio_load "$r"; fi ;;
            esac
        done
    done
    local cov=() kam=() f
    for f in "$OUT"/coventryd-r*/summary.tsv; do [ -f "$f" ] && cov+=("$f"); done
    for f in "$OUT"/kamailio-r*/summary.tsv; do [ -f "$f" ] && kam+=("$f"); done
    [ ${#cov[@]} -gt 0 ] || { say "no coventryd results"; return 0; }
    {
        echo "# coventryd vs Kamailio, $(date -Is)"
        echo
        echo "- host: $(nproc) cores, $(uname -r); $(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//')"
        echo "- coventryd $(head -n 1 "$OUT/bin/source.txt" 2>/dev/null): 3-digit plan, MD5 digest (qop=auth), $(source_rate_note "$SOURCE_RATE")"
        if [ ${#kam[@]} -gt 0 ]; then
            echo "- $(grep -m1 '^kamailio:' "$OUT/kamailio-r1/kamailio-info.txt" 2>/dev/null | sed 's/  */ /g'), KAM_AUTH=$KAM_AUTH, $KAM_CHILDREN children"
        fi
        echo "- $ROUNDS round(s), order swapped every round; $SWEEP_SECS s of load per rate and round; rounds pooled"
        echo "  (ok/failed summed, CPU per op = total CPU / total ok)"
        echo
        python3 "$HERE/lib/compare.py" --cov "${cov[@]}" --kam "${kam[@]}"
    } > "$OUT/comparison.md"
    echo; cat "$OUT/comparison.md"; echo
}

# ---------- memory ----------
mem_reading() {  # $1 label -> one row of memory.tsv
    local p=$COV_PID rss hwm anon file shmem pss
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status"); hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status")
    anon=$(awk '/^RssAnon:/{print $2}' "/proc/$p/status"); file=$(awk '/^RssFile:/{print $2}' "/proc/$p/status")
    shmem=$(awk '/^RssShmem:/{print $2}' "/proc/$p/status"); pss=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup")
    local reg; reg=$("$PBXCTL" --runtime-dir "$COV_RT" status --json 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["registered"])' 2>/dev/null || echo "?")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$reg" "$rss" "$pss" "$anon" "$file" "$shmem" "$hwm" >> "$OUT/memory/memory.tsv"
    say "memory $1: registered=$reg VmRSS=${rss}kB PSS=${pss}kB (anon $anon, file $file, shmem $shmem) VmHWM=${hwm}kB"
}

register_all() {  # $1 first, $2 last: every extension once, via the rig's register.xml
    local d=$OUT/memory/reg-$1-$2 i n=$(( $2 - $1 + 1 ))
    mkdir -p "$d"
    { echo SEQUENTIAL; for i in $(seq "$1" "$2"); do echo "$i;[authentication username=$i password=pw$i]"; done; } > "$d/users.csv"
    run_fg bash -c 'cd "$1" && shift && exec "$@"' _ "$d" timeout -k 5 60 sipp -sf "$RIG/scenarios/register.xml" -inf users.csv \
        -key domain "127.0.0.1:$COV_PORT" -key contact_host 127.0.0.1 -key contact_port 5099 -key expires 3600 \
        -i 127.0.0.1 -p 5093 -m "$n" -r 200 -l 400 -nostdin -timeout 40s -recv_timeout 10000 \
        -trace_stat -stf stat.csv -trace_err -error_file errors.log "127.0.0.1:$COV_PORT" \
        > "$d/stdout.log" 2>&1 || true
    local ok; ok=$(python3 "$RIG/lib/sippstats.py" --stat "$d/stat.csv" --rtt /dev/null | awk -F= '$1=="successful"{print $2}')
    say "registered $ok of $n extensions ($1..$2)"
}

mode_memory() {
    mkdir -p "$OUT/memory"
    printf 'state\tregistered\tvmrss_kb\tpss_kb\trss_anon_kb\trss_file_kb\trss_shmem_kb\tvmhwm_kb\n' > "$OUT/memory/memory.tsv"
    write_config "$WORK/coventry-2.conf" 2
    start_coventryd "$WORK/coventry-2.conf" mem2
    sleep "$MEM_SETTLE_S"; mem_reading "2-digit plan, idle"
    register_all 10 89
    sleep "$MEM_SETTLE_S"; mem_reading "2-digit plan, all 80 registered"
    stop_coventryd
    write_config "$WORK/coventry-3.conf" 3
    start_coventryd "$WORK/coventry-3.conf" mem3
    sleep "$MEM_SETTLE_S"; mem_reading "3-digit plan, idle"
    register_all 100 699
    sleep "$MEM_SETTLE_S"; mem_reading "3-digit plan, all 600 registered"
    stop_coventryd
    {
        echo "# coventryd memory, $(date -Is)"
        echo
        echo "| state | registered | VmRSS KiB | PSS KiB | anon KiB | file KiB | shmem KiB | VmHWM KiB |"
        echo "|---|---|---|---|---|---|---|---|"
        tail -n +2 "$OUT/memory/memory.tsv" | awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8 }'
        echo
        local r600; r600=$(awk -F'\t' '/all 600/{print $3}' "$OUT/memory/memory.tsv")
        echo "goal: under 8 MiB (8192 KiB) RSS with 600 registered: ${r600:-?} KiB -> $(awk -v r="${r600:-0}" 'BEGIN{ print (r > 0 && r < 8192) ? "met" : "NOT met" }')"
        local f
        for f in "$OUT"/coventryd-r1/target-memory.tsv "$OUT"/kamailio-r1/target-memory.tsv; do
            [ -f "$f" ] || continue
            echo
            echo "$(basename "$(dirname "$f")") in the load run of this session (process tree; PSS counts shared memory once):"
            echo
            echo '```'
            grep -E '^(idle-start|after-setup|after-sweep_regs|idle-end)' "$f" || true
            echo '```'
        done
    } > "$OUT/memory.md"
    echo; cat "$OUT/memory.md"; echo
}

# ---------- micro ----------
mode_micro() {
    mkdir -p "$OUT/micro"
    say "criterion: cargo bench -p coventryd --bench hot_paths"
    run_fg bash -c 'cd "$1" && exec cargo bench --locked -p coventryd --bench hot_paths' _ "$REPO" > "$OUT/micro/criterion.log" 2>&1 \
        || { tail -n 30 "$OUT/micro/criterion.log" >&2; say "criterion run failed"; return 0; }
    cp -r "$REPO/target/criterion" "$OUT/micro/criterion"
    {
        echo "# coventryd hot paths (criterion), $(date -Is)"
        echo
        python3 "$HERE/lib/criterion_ratios.py" "$OUT/micro/criterion"
    } > "$OUT/micro.md"
    echo; cat "$OUT/micro.md"; echo
}

# ---------- profile ----------
mode_profile() {
    need perf "apt-get install -y linux-perf"
    local fpdir=$REPO/target/bench-fp d=$OUT/profile
    mkdir -p "$d"
    echo "# coventryd under perf, $(date -Is) (frame pointers; perf adds overhead: use the shares, not the CPU figures)" > "$OUT/profile.md"
    echo >> "$OUT/profile.md"
    say "building coventryd with frame pointers (target/bench-fp) for call graphs"
    RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=$fpdir \
        run_fg bash -c 'cd "$1" && exec cargo build --release --locked -p coventryd' _ "$REPO" > "$d/build.log" 2>&1 \
        || { tail -n 30 "$d/build.log" >&2; exit 2; }
    local saved=$BIN
    BIN=$d/coventryd-fp; cp "$fpdir/release/coventryd" "$BIN"
    write_config "$WORK/coventry-3.conf" 3
    local kind
    for kind in regs msgs; do
        start_coventryd "$WORK/coventry-3.conf" "prof-$kind"
        timeout -k 5 $(( PROFILE_SECS + 120 )) perf record -F "$PERF_FREQ" -g -p "$COV_PID" \
            -o "$d/perf-$kind.data" > "$d/perf-record-$kind.log" 2>&1 &
        PERF_PID=$!
        sleep 1
        local rc=0
        if [ "$kind" = regs ]; then
            PROXY=127.0.0.1:$COV_PORT TARGET_PID=$COV_PID LABEL=profile OUT=$d/load-$kind \
                REG_SWEEP_RATES=$PROFILE_RATE SWEEP_SECS=$PROFILE_SECS SWEEP_REPEAT=1 \
                run_fg bash "$HERE/lib/drive.sh" regsweep || rc=$?
        else
            PROXY=127.0.0.1:$COV_PORT TARGET_PID=$COV_PID LABEL=profile OUT=$d/load-$kind \
                MSG_SWEEP_RATES=$PROFILE_RATE SWEEP_SECS=$PROFILE_SECS SWEEP_REPEAT=1 \
                run_fg bash "$HERE/lib/drive.sh" msgsweep || rc=$?
        fi
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
        stop_coventryd
        perf report -i "$d/perf-$kind.data" --stdio --no-children --sort symbol --percent-limit 0.5 \
            > "$d/self-$kind.txt" 2>/dev/null || true
        perf report -i "$d/perf-$kind.data" --stdio --children --sort symbol --percent-limit 2 -g none \
            > "$d/children-$kind.txt" 2>/dev/null || true
        perf script -i "$d/perf-$kind.data" -F ip,sym 2>/dev/null \
            | python3 "$HERE/lib/perf_breakdown.py" > "$d/breakdown-$kind.md" || true
        say "profile of $kind (driver rc $rc): $d/breakdown-$kind.md (buckets), self-$kind.txt, children-$kind.txt"
        {
            echo "## $kind at $PROFILE_RATE/s: $(awk -F'\t' 'NR==2{print $5" ok, "$6" failed, "$16" ms CPU per op (under perf)"}' "$d/load-$kind/summary.tsv" 2>/dev/null)"
            echo
            cat "$d/breakdown-$kind.md"
            echo
            echo "Top self time:"
            echo
            echo '```'
            grep -E '^ +[0-9]' "$d/self-$kind.txt" | head -n 20 | sed 's/  *-  *-  *$//'
            echo '```'
            echo
        } >> "$OUT/profile.md"
    done
    BIN=$saved
    echo; cat "$OUT/profile.md"
}

busiest() {  # the processes that were busiest when the run started (other work on the machine)
    awk '$1 >= 10 { printf "%s%s %s%% (%ss old)", (n++ ? ", " : "busiest at the start (CPU % over each process life): "), $3, $1, $2 }
         END { if (!n) printf "nothing else above 10%% of a core at the start" }' "$OUT/ps-start" 2>/dev/null
}

# ---------- flood ----------
port_drops() {  # $1 port -> the kernel's drop count summed over the UDP sockets bound to it
    awk -v p="$(printf '%04X' "$1")" 'NR>1 { split($2, a, ":"); if (a[2]==p) d+=$NF } END { print d+0 }' /proc/net/udp
}
pid_ticks() {  # $1 pid -> utime+stime in clock ticks (0 if gone)
    [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
stop_flood() {  # TERM: flood.py writes what it sent and exits; KILL after 10 s
    local i
    [ -n "$FLOOD_PID" ] || return 0
    kill -TERM "$FLOOD_PID" 2>/dev/null || true
    for i in $(seq 1 100); do alive "$FLOOD_PID" || break; sleep 0.1; done
    stop_tree "$FLOOD_PID"
    FLOOD_PID=""
}

flood_case() {  # $1: none | paced | unpaced | many
    local c=$1 d=$OUT/flood/$1 src="" rate=0 t0 t1 k0 k1 dr0 dr1 prc=0 cap
    case "$c" in
        none) ;;
        paced) src=$FLOOD_ONE_SRC; rate=$FLOOD_RATE ;;
        unpaced) src=$FLOOD_ONE_SRC; rate=0 ;;
        many) src=$FLOOD_MANY_SRC; rate=$FLOOD_MANY_RATE ;;
        *) echo "run.sh: unknown flood case '$c' (none | paced | unpaced | many)" >&2; exit 2 ;;
    esac
    mkdir -p "$d"
    start_coventryd "$WORK/coventry-flood.conf" "flood-$c"
    status_json "$d/status-before.json"
    dr0=$(port_drops "$COV_PORT"); k0=$(pid_ticks "$COV_PID"); t0=$(date +%s.%N)
    if [ -n "$src" ]; then
        cap=$((FLOOD_LEAD_S + FLOOD_PHONE_SECS + 60))
        say "flood $c: $src -> 127.0.0.1:$COV_PORT, $([ "$rate" = 0 ] && echo unpaced || echo "$rate/s"), the phones after ${FLOOD_LEAD_S}s"
        timeout -k 5 $((cap + 30)) python3 "$HERE/lib/flood.py" --target "127.0.0.1:$COV_PORT" --from "$src" \
            --rate "$rate" --secs "$cap" --caller "${PHONE_CALLER%@*}" --callee "${PHONE_CALLEE%@*}" \
            --realm bench --stats "$d/flood.json" > "$d/flood.log" 2>&1 &
        FLOOD_PID=$!
        sleep "$FLOOD_LEAD_S"
    else
        say "flood $c: no flood, the phones alone"
    fi
    run_fg timeout -k 5 $((FLOOD_PHONE_SECS + 120)) python3 "$HERE/lib/phone.py" --switch "127.0.0.1:$COV_PORT" \
        --caller "$PHONE_CALLER" --callee "$PHONE_CALLEE" --password-prefix pw --secs "$FLOOD_PHONE_SECS" \
        --pause-ms "$FLOOD_PAUSE_MS" --out "$d/phone.json" > "$d/phone.log" 2>&1 || prc=$?
    stop_flood
    dr1=$(port_drops "$COV_PORT"); k1=$(pid_ticks "$COV_PID"); t1=$(date +%s.%N)
    sleep 1  # the state block is published on the switch's tick
    status_json "$d/status-after.json"
    {
        echo "case=$c"
        echo "sources=$src"
        echo "rate_asked=$rate"
        echo "phone_rc=$prc"
        echo "secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
        echo "daemon_cpu_s=$(awk -v a="$k0" -v b="$k1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}')"
        echo "kernel_drops_proc=$((dr1 - dr0))"
        echo "daemon_alive=$(alive "$COV_PID" && echo yes || echo no)"
    } > "$d/case.env"
    say "flood $c: $(tr '\n' ' ' < "$d/case.env")"
    grep -E '^(all|register|call|bye|message):' "$d/phone.log" | sed 's/^/    /' | tee -a "$OUT/run.log" || true
    stop_coventryd
}

mode_flood() {
    local c rc=0
    mkdir -p "$OUT/flood"
    write_config "$WORK/coventry-capacity.conf" 3
    # the switch's REGISTER/s in this run, no flood: drive.sh's regsweep
    start_coventryd "$WORK/coventry-capacity.conf" flood-capacity
    say "flood: REGISTER capacity first, no flood ($FLOOD_CAP_RATES/s, ${SWEEP_SECS}s each)"
    PROXY=127.0.0.1:$COV_PORT TARGET_PID=$COV_PID LABEL=capacity OUT=$OUT/flood/capacity \
        REG_SWEEP_RATES=$FLOOD_CAP_RATES run_fg bash "$HERE/lib/drive.sh" regsweep || rc=$?
    [ "$rc" = 0 ] || say "capacity driver exited with $rc (see $OUT/flood/capacity/driver.log)"
    stop_coventryd
    write_config "$WORK/coventry-flood.conf" 3 127.0.0.1 "$FLOOD_SOURCE_RATE"
    for c in $FLOOD_CASES; do flood_case "$c"; done
    {
        echo "# coventryd under floods, $(date -Is)"
        echo
        echo "- host: $(nproc) cores, $(uname -r), load average before: $(cut -d' ' -f1-3 < "$OUT/loadavg-start" 2>/dev/null); $(busiest)"
        echo "- coventryd $(head -n 1 "$OUT/bin/source.txt" 2>/dev/null): 3-digit plan, MD5 digest, listening on 127.0.0.1:$COV_PORT, a fresh daemon per case"
        echo "- configuration: capacity run $(source_rate_note "$SOURCE_RATE") (sipp sends from one address); flood cases $(source_rate_note "$FLOOD_SOURCE_RATE")"
        echo "- phones: caller $PHONE_CALLER, callee $PHONE_CALLEE (bench/lib/phone.py), ${FLOOD_PHONE_SECS}s per case, ${FLOOD_PAUSE_MS} ms between rounds; the flood starts ${FLOOD_LEAD_S}s before them"
        echo "- flood (bench/lib/flood.py): tests/tests/flood.rs mixed(); one source $FLOOD_ONE_SRC at $FLOOD_RATE/s and unpaced; many: $FLOOD_MANY_SRC sharing $FLOOD_MANY_RATE/s"
        echo
        python3 "$HERE/lib/flood_report.py" "$OUT/flood" $FLOOD_CASES
    } > "$OUT/flood.md"
    echo; cat "$OUT/flood.md"; echo
}

# ---------- netns: the README's deployment shape ----------
NS_HOST_IP=$NETNS_NET.1
NS_IP=$NETNS_NET.2
netns_up() {
    local i
    need ip "apt-get install -y iproute2"
    [ "$(id -u)" = 0 ] || { echo "run.sh: netns needs root (ip netns add, ip link add)" >&2; exit 2; }
    if ip -o -4 addr show | grep -qE " inet ($NS_HOST_IP|$NS_IP)/"; then
        echo "run.sh: $NS_HOST_IP or $NS_IP is already in use here (set NETNS_NET=)" >&2; exit 2
    fi
    NS_NAME=covbench-$$ NS_VETH=cvb$$h
    local peer=cvb$$n
    ip netns add "$NS_NAME"; NS_MADE=1
    ip link add "$NS_VETH" type veth peer name "$peer"; VETH_MADE=1
    ip link set "$peer" netns "$NS_NAME"
    ip addr add "$NS_HOST_IP/30" dev "$NS_VETH"
    ip link set "$NS_VETH" up
    ip -n "$NS_NAME" addr add "$NS_IP/30" dev "$peer"
    ip -n "$NS_NAME" link set "$peer" up
    ip -n "$NS_NAME" link set lo up
    for i in $(seq 1 50); do
        ip -n "$NS_NAME" -o link show "$peer" | grep -q "state UP" && break
        sleep 0.1
    done
    say "network namespace $NS_NAME: $NS_IP on $peer, veth peer $NS_VETH $NS_HOST_IP here (no other link, no default route)"
}
netns_down() {  # stop what still runs in it (all started here), remove the pair and the namespace
    local p i
    if [ -n "$NS_MADE" ]; then
        for p in $(ip netns pids "$NS_NAME" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
        for i in $(seq 1 50); do [ -z "$(ip netns pids "$NS_NAME" 2>/dev/null)" ] && break; sleep 0.1; done
        for p in $(ip netns pids "$NS_NAME" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    fi
    if [ -n "$VETH_MADE" ]; then ip link del "$NS_VETH" 2>/dev/null || true; VETH_MADE=""; fi
    if [ -n "$NS_MADE" ]; then
        ip netns del "$NS_NAME" 2>/dev/null || true; NS_MADE=""
        say "network namespace $NS_NAME removed"
    fi
}

run_shape() {  # $1 round, $2 shape: lo | any | netns
    local dir=$OUT/netns-$2-r$1 listen proxy lip ns="" rc=0
    case "$2" in
        lo) listen=127.0.0.1 proxy=127.0.0.1 lip=127.0.0.1 ;;
        any) listen=0.0.0.0 proxy=127.0.0.1 lip=127.0.0.1 ;;
        netns) listen=0.0.0.0 proxy=$NS_HOST_IP lip=$NS_IP ns=$NS_NAME ;;
        *) echo "run.sh: unknown shape '$2' (lo | any | netns)" >&2; exit 2 ;;
    esac
    write_config "$WORK/coventry-$2.conf" 3 "$listen"
    start_coventryd "$WORK/coventry-$2.conf" "netns-$2-r$1"
    say "round $1, shape $2: listening on $listen:$COV_PORT, phones on $lip${ns:+ (namespace $ns)}"
    PROXY=$proxy:$COV_PORT LOCAL_IP=$lip NETNS=$ns TARGET_PID=$COV_PID LABEL=$2 OUT=$dir \
        run_fg bash "$HERE/lib/drive.sh" regsweep msgsweep || rc=$?
    if alive "$COV_PID"; then status_json "$dir/status-after.json"; else say "WARNING: coventryd was gone before the end of $2, round $1"; fi
    stop_coventryd
    [ "$rc" = 0 ] || say "driver exited with $rc (see $dir/driver.log)"
}

mode_netns() {
    local r s order args=()
    netns_up
    for r in $(seq 1 "$ROUNDS"); do
        order=$NETNS_SHAPES
        [ $((r % 2)) = 0 ] && order=$(echo "$NETNS_SHAPES" | tr ' ' '\n' | tac | tr '\n' ' ')
        for s in $order; do run_shape "$r" "$s"; done
    done
    netns_down
    for s in $NETNS_SHAPES; do
        local files=() f
        for f in "$OUT"/netns-"$s"-r*/summary.tsv; do [ -f "$f" ] && files+=("$f"); done
        [ ${#files[@]} -gt 0 ] && args+=("$s=$(IFS=,; echo "${files[*]}")")
    done
    [ ${#args[@]} -gt 0 ] || { say "no netns results"; return 0; }
    {
        echo "# coventryd: loopback against the deployment shape, $(date -Is)"
        echo
        echo "- host: $(nproc) cores, $(uname -r), load average before: $(cut -d' ' -f1-3 < "$OUT/loadavg-start" 2>/dev/null); $(busiest); $(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//')"
        echo "- coventryd $(head -n 1 "$OUT/bin/source.txt" 2>/dev/null): 3-digit plan, MD5 digest, $(source_rate_note "$SOURCE_RATE"); a fresh daemon per shape and round"
        echo "- shapes: lo = listen 127.0.0.1, phones 127.0.0.1 (as \`load\`); any = listen 0.0.0.0, phones 127.0.0.1;"
        echo "  netns = listen 0.0.0.0, phones (sipp) in a network namespace on $NS_IP, the switch reached at $NS_HOST_IP over a veth pair"
        echo "- $ROUNDS round(s), shape order reversed every other round; $SWEEP_SECS s of load per rate and round; rounds pooled"
        echo
        python3 "$HERE/lib/shapes.py" "${args[@]}"
    } > "$OUT/netns.md"
    echo; cat "$OUT/netns.md"; echo
}

# ---------- bounds: what one authenticated phone can have in flight (issue 20) ----------
BOUNDS_UAS_PID=""
SAMPLER_PID=""
write_bounds_config() {  # $1 file, $2 max_per_line (default | N), $3 source_rate (default | N), [$4 upstream route, $5 max_calls (default | N)]
    local i callee=${BOUNDS_CALLEE%@*}
    COV_LISTEN=127.0.0.1
    {
        echo "; generated by bench/run.sh bounds: the daemon's defaults, but for what is written here"
        echo "[server]"
        echo "listen = $COV_LISTEN:$COV_PORT"
        echo "digits = 2"
        echo "realm = bench"
        echo "algorithm = md5"  # sipp answers MD5 only (see write_config)
        echo
        if [ "$3" != default ]; then printf '[security]\nsource_rate = %s\n\n' "$3"; fi
        if [ "$2" != default ]; then printf '[calls]\nmax_per_line = %s\n\n' "$2"; fi
        if [ -n "${4:-}" ]; then
            printf '[upstream]\nroute = %s\n' "$4"
            if [ "${5:-default}" != default ]; then printf 'max_calls = %s\n' "$5"; fi
            echo
        fi
        for i in $(seq 10 89); do
            printf '[%d]\nsecret = pw%d\n' "$i" "$i"
            # the callee is a sipp UAS taking every call: with call waiting it
            # rings for each, so what holds the caller back is the caller's bound
            if [ "$i" = "$callee" ]; then echo "call_waiting = yes"; fi
            echo
        done
    } > "$1"
    "$BIN" --config "$1" --check-config > /dev/null
}

start_sampler() {  # $1 tsv, $2 1: also count the live calls in the state block
    local f=$1 calls=$2 pid=$COV_PID rt=$COV_RT
    printf 'epoch_s\tvmrss_kb\tvmhwm_kb\tlive_calls_block\n' > "$f"
    (
        while [ -r "/proc/$pid/status" ]; do
            t=$(date +%s.%N)
            m=$(awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r"\t"h}' "/proc/$pid/status" 2>/dev/null || true)
            [ -n "$m" ] || break
            c=""
            if [ "$calls" = 1 ]; then
                c=$("$PBXCTL" --runtime-dir "$rt" calls --json 2>/dev/null | grep -o '"ended": *false' | wc -l || true)
            fi
            printf '%s\t%s\t%s\n' "$t" "$m" "$c" >> "$f"
            sleep 1
        done
    ) &
    SAMPLER_PID=$!
}
stop_sampler() {
    [ -n "$SAMPLER_PID" ] || return 0
    stop_tree "$SAMPLER_PID"
    SAMPLER_PID=""
}
stop_bounds_uas() {
    [ -n "$BOUNDS_UAS_PID" ] || return 0
    stop_tree "$BOUNDS_UAS_PID"
    BOUNDS_UAS_PID=""
}
mem_now() {  # VmRSS and VmHWM of the daemon, kB: "rss hwm"
    awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r, h}' "/proc/$COV_PID/status"
}

bounds_texts() {  # one phone floods texts to a phone that never answers
    local d=$OUT/bounds/texts rc=0 t0 t1 cap
    mkdir -p "$d"
    write_bounds_config "$WORK/bounds-texts.conf" default default
    start_coventryd "$WORK/bounds-texts.conf" bounds-texts
    sleep "$MEM_SETTLE_S"
    status_json "$d/status-before.json"
    echo "before $(mem_now)" > "$d/mem.txt"
    start_sampler "$d/rss.tsv" 0
    cap=$((BOUNDS_TEXT_SECS + BOUNDS_TEXT_DRAIN + 60))
    say "bounds texts: $BOUNDS_CALLER floods MESSAGEs to $BOUNDS_CALLEE (registered, never answers) for ${BOUNDS_TEXT_SECS}s, $([ "$BOUNDS_TEXT_RATE" = 0 ] && echo unpaced || echo "$BOUNDS_TEXT_RATE/s"); then ${BOUNDS_TEXT_DRAIN}s for Timer F"
    t0=$(date +%s.%N)
    run_fg timeout -k 5 "$cap" python3 "$HERE/lib/textflood.py" --switch "127.0.0.1:$COV_PORT" \
        --sender "$BOUNDS_CALLER" --sink "$BOUNDS_CALLEE" --password-prefix pw \
        --secs "$BOUNDS_TEXT_SECS" --drain "$BOUNDS_TEXT_DRAIN" --rate "$BOUNDS_TEXT_RATE" \
        --out "$d/flood.json" > "$d/flood.log" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    echo "after $(mem_now)" >> "$d/mem.txt"
    status_json "$d/status-after.json"
    stop_sampler
    { echo "t0=$t0"; echo "t1=$t1"; echo "flood_rc=$rc"; echo "daemon_alive=$(alive "$COV_PID" && echo yes || echo no)"; } > "$d/case.env"
    say "bounds texts: flood rc $rc; $(tr '\n' ' ' < "$d/flood.log" | cut -c1-300)"
    stop_coventryd
}

bounds_calls() {  # $1 default | off: one phone opens as many calls as it can
    local v=$1 d=$OUT/bounds/calls-$1 mpl=default rc=0 t0 t1 cap n
    [ "$v" = off ] && mpl=0
    mkdir -p "$d"
    write_bounds_config "$WORK/bounds-calls-$v.conf" "$mpl" default
    start_coventryd "$WORK/bounds-calls-$v.conf" "bounds-calls-$v"
    cap=$((BOUNDS_CALL_SECS + BOUNDS_HOLD_S + 120))
    # the callee: the rig's UAS (answers at once, waits for the BYE)
    (cd "$d" && exec timeout -k 5 "$cap" sipp -sf "$RIG/scenarios/uas_call.xml" -i "${BOUNDS_CALLEE#*@}" -p "$BOUNDS_UAS_PORT" \
        -nostdin -buff_size 4194304 -timeout "${cap}s" -trace_stat -stf uas-stat.csv -fd 1 \
        -trace_err -error_file uas-errors.log) > "$d/uas.log" 2>&1 &
    BOUNDS_UAS_PID=$!
    bounds_register "$d" "${BOUNDS_CALLEE%@*}" "${BOUNDS_CALLEE#*@}" "$BOUNDS_UAS_PORT"
    sleep 1
    status_json "$d/status-before.json"
    echo "before $(mem_now)" > "$d/mem.txt"
    start_sampler "$d/rss.tsv" 1
    n=$((BOUNDS_CALL_RATE * BOUNDS_CALL_SECS))
    printf 'SEQUENTIAL\n%s;[authentication username=%s password=pw%s];%s\n' \
        "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLEE%@*}" > "$d/uac.csv"
    say "bounds calls ($v: max_per_line $([ "$mpl" = default ] && echo "the default" || echo "= $mpl")): ${BOUNDS_CALLER%@*} calls ${BOUNDS_CALLEE%@*} at ${BOUNDS_CALL_RATE}/s for ${BOUNDS_CALL_SECS}s ($n calls), each held ${BOUNDS_HOLD_S}s"
    bounds_offer_calls
    sleep 1
    echo "after $(mem_now)" >> "$d/mem.txt"
    status_json "$d/status-after.json"
    stop_sampler
    stop_bounds_uas
    { echo "t0=$t0"; echo "t1=$t1"; echo "uac_rc=$rc"; echo "offered=$n"; echo "max_per_line=$mpl"; echo "daemon_alive=$(alive "$COV_PID" && echo yes || echo no)"; } > "$d/case.env"
    say "bounds calls ($v): sipp rc $rc; $(grep -E '503 <-|Successful call|Failed call' "$d/uac-screen.log" 2>/dev/null | tr -s ' ' | tr '\n' ' ')"
    stop_coventryd
}

bounds_offer_calls() {  # the caller's sipp offers $n calls of $d/uac.csv, each held; sets t0, t1, rc
    t0=$(date +%s.%N)
    (cd "$d" && exec timeout -k 5 "$cap" sipp -sf "$HERE/lib/uac_call_hold.xml" -inf uac.csv \
        -key domain "127.0.0.1:$COV_PORT" -i "${BOUNDS_CALLER#*@}" -p "$BOUNDS_UAC_PORT" \
        -r "$BOUNDS_CALL_RATE" -m "$n" -l 100000 -d $((BOUNDS_HOLD_S * 1000)) -nostdin -buff_size 4194304 \
        -timeout "$((cap - 10))s" -recv_timeout 40000 -trace_stat -stf uac-stat.csv -fd 1 \
        -trace_err -error_file uac-errors.log -trace_screen -screen_file uac-screen.log \
        "127.0.0.1:$COV_PORT") > "$d/uac.log" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    t1=$(date +%s.%N)
}

bounds_register() {  # $1 dir, $2 extension, $3 contact ip, $4 contact port: one REGISTER through the rig's scenario
    printf 'SEQUENTIAL\n%s;[authentication username=%s password=pw%s]\n' "$2" "$2" "$2" > "$1/reg.csv"
    run_fg bash -c 'cd "$1" && shift && exec "$@"' _ "$1" timeout -k 5 30 sipp -sf "$RIG/scenarios/register.xml" -inf reg.csv \
        -key domain "127.0.0.1:$COV_PORT" -key contact_host "$3" -key contact_port "$4" -key expires 3600 \
        -i "$3" -p "$BOUNDS_REG_PORT" -m 1 -nostdin -timeout 20s -trace_err -error_file reg-errors.log \
        "127.0.0.1:$COV_PORT" > "$1/reg.log" 2>&1 || { say "bounds: registering $2 at $3:$4 failed (see $1/reg.log)"; return 1; }
}

td_since() {  # $1 start, $2 end (epoch s, may be empty) -> seconds between
    if [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; else echo "not within 120 s"; fi
}
stat_field() {  # $1 sipp stat CSV, $2 column -> its value in the last row (empty if none)
    [ -r "$1" ] || return 0
    awk -F';' -v c="$2" 'NR==1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } k { v = $k } END { print v }' "$1"
}

bounds_teardown() {  # BOUNDS_TD_CALLS local calls up, bounds off; `pbxctl hangup` the caller; time until every BYE is answered
    local d=$OUT/bounds/teardown n=$BOUNDS_TD_CALLS rc=0 cap uac_pid t0 th up=0 i created cur prev="" steady=0
    local uac_end="" uas_end="" block_end="" live sip_in0 dr0 dr1 drs0 drs1 uac_alive ok_uac0 ok_uas0
    mkdir -p "$d"
    write_bounds_config "$WORK/bounds-td.conf" 0 0
    start_coventryd "$WORK/bounds-td.conf" bounds-teardown
    cap=$((n / BOUNDS_TD_RATE + 240))
    # the callee: the rig's UAS (answers at once, waits for the BYE, answers it
    # and lingers 2 s); no -m: its calls are counted from its stat file
    (cd "$d" && exec timeout -k 5 "$cap" sipp -sf "$RIG/scenarios/uas_call.xml" -i "${BOUNDS_CALLEE#*@}" -p "$BOUNDS_UAS_PORT" \
        -nostdin -buff_size 4194304 -timeout "$((cap - 10))s" -trace_stat -stf uas-stat.csv -fd 1 \
        -trace_err -error_file uas-errors.log) > "$d/uas.log" 2>&1 &
    BOUNDS_UAS_PID=$!
    bounds_register "$d" "${BOUNDS_CALLEE%@*}" "${BOUNDS_CALLEE#*@}" "$BOUNDS_UAS_PORT"
    printf 'SEQUENTIAL\n%s;[authentication username=%s password=pw%s];%s\n' \
        "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLEE%@*}" > "$d/uac.csv"
    status_json "$d/status-before.json"
    say "bounds teardown (max_per_line = 0, source_rate = 0): ${BOUNDS_CALLER%@*} sets up $n calls to ${BOUNDS_CALLEE%@*} at ${BOUNDS_TD_RATE}/s and keeps them"
    # the caller: -m n, so it ends once each of its calls has ended (BYE answered, or failed)
    (cd "$d" && exec timeout -k 5 "$cap" sipp -sf "$HERE/lib/uac_call_wait_bye.xml" -inf uac.csv \
        -key domain "127.0.0.1:$COV_PORT" -i "${BOUNDS_CALLER#*@}" -p "$BOUNDS_UAC_PORT" \
        -r "$BOUNDS_TD_RATE" -m "$n" -l $((n + 100)) -nostdin -buff_size 4194304 \
        -timeout "$((cap - 10))s" -recv_timeout $(((cap - 10) * 1000)) -trace_stat -stf uac-stat.csv -fd 1 \
        -trace_err -error_file uac-errors.log \
        "127.0.0.1:$COV_PORT") > "$d/uac.log" 2>&1 &
    CHILD=$!; uac_pid=$CHILD
    # wait until every call was created and the callee's count of calls has
    # stood still for 3 s (set-up, retransmissions and challenges all done)
    for i in $(seq 1 $((n / BOUNDS_TD_RATE + 120))); do
        sleep 1
        alive "$uac_pid" || break
        created=$(stat_field "$d/uac-stat.csv" TotalCallCreated)
        cur=$(stat_field "$d/uas-stat.csv" CurrentCall)
        if [ "${created:-0}" -ge "$n" ] && [ "$cur" = "$prev" ]; then steady=$((steady + 1)); else steady=0; fi
        prev=$cur
        [ "$steady" -ge 3 ] && break
    done
    up=$(stat_field "$d/uas-stat.csv" CurrentCall); up=${up:-0}
    ok_uac0=$(stat_field "$d/uac-stat.csv" 'SuccessfulCall(C)'); ok_uas0=$(stat_field "$d/uas-stat.csv" 'SuccessfulCall(C)')
    status_json "$d/status-up.json"
    uac_alive=$(alive "$uac_pid" && echo yes || echo no)
    [ "$uac_alive" = yes ] || say "bounds teardown: WARNING: the caller's sipp ended before the hang-up (see $d/uac.log)"
    say "bounds teardown: $up calls up at the callee; pbxctl hangup ${BOUNDS_CALLER%@*}"
    dr0=$(( $(port_drops "$BOUNDS_UAC_PORT") + $(port_drops "$BOUNDS_UAS_PORT") )); drs0=$(port_drops "$COV_PORT")
    t0=$(date +%s.%N)
    "$PBXCTL" --runtime-dir "$COV_RT" --timeout 120 hangup "${BOUNDS_CALLER%@*}" > "$d/hangup.log" 2>&1 || rc=$?
    th=$(date +%s.%N)
    # until the caller's sipp has ended (each of its calls got its BYE, or
    # failed) and the callee's has no call left, or 120 s; sipp's stat files
    # are written once a second, the state block is polled every 0.2 s
    for i in $(seq 1 600); do
        t1=$(date +%s.%N)
        if [ -z "$block_end" ]; then
            live=$("$PBXCTL" --runtime-dir "$COV_RT" calls --json 2>/dev/null | grep -o '"ended": *false' | wc -l || true)
            [ "${live:-1}" = 0 ] && block_end=$t1
        fi
        [ -z "$uac_end" ] && ! alive "$uac_pid" && uac_end=$t1
        [ -z "$uas_end" ] && [ "$(stat_field "$d/uas-stat.csv" CurrentCall)" = 0 ] && uas_end=$t1
        [ -n "$uac_end" ] && [ -n "$uas_end" ] && [ -n "$block_end" ] && break
        sleep 0.2
    done
    sleep 2  # the last stat line of the callee
    status_json "$d/status-after.json"
    dr1=$(( $(port_drops "$BOUNDS_UAC_PORT") + $(port_drops "$BOUNDS_UAS_PORT") )); drs1=$(port_drops "$COV_PORT")
    local ok_uac ok_uas f_uac
    ok_uac=$(stat_field "$d/uac-stat.csv" 'SuccessfulCall(C)'); f_uac=$(stat_field "$d/uac-stat.csv" 'FailedCall(C)')
    ok_uas=$(stat_field "$d/uas-stat.csv" 'SuccessfulCall(C)')
    stop_tree "$uac_pid"; CHILD=""
    stop_bounds_uas
    {
        echo "calls_offered=$n"
        echo "calls_up=$up"
        echo "caller_sipp_alive_at_hangup=$uac_alive"
        echo "hangup_rc=$rc"
        echo "hangup_secs=$(td_since "$t0" "$th")"
        echo "block_empty_s=$(td_since "$t0" "$block_end")"
        echo "uac_zero_s=$(td_since "$t0" "$uac_end")"
        echo "uas_zero_s=$(td_since "$t0" "$uas_end")"
        echo "bye_200_caller=$(( ${ok_uac:-0} - ${ok_uac0:-0} ))"
        echo "bye_200_callee=$(( ${ok_uas:-0} - ${ok_uas0:-0} ))"
        echo "failed_caller=${f_uac:-?}"
        echo "lost_caller=$(( up - ${ok_uac:-0} + ${ok_uac0:-0} ))"
        echo "lost_callee=$(( up - ${ok_uas:-0} + ${ok_uas0:-0} ))"
        echo "kernel_drops_phones=$((dr1 - dr0))"
        echo "kernel_drops_switch=$((drs1 - drs0))"
        echo "daemon_alive=$(alive "$COV_PID" && echo yes || echo no)"
    } > "$d/case.env"
    say "bounds teardown: $(tr '\n' ' ' < "$d/case.env")"
    stop_coventryd
}

KAM_PID=""
stop_kamailio() {
    [ -n "$KAM_PID" ] || return 0
    stop_tree "$KAM_PID"
    KAM_PID=""
}
bounds_upstream() {  # $1 default | line-off | off: one phone calls outside through the upstream (Kamailio, TCP)
    local v=$1 d=$OUT/bounds/upstream-$1 mpl=default mc=default rc=0 t0 t1 cap n i kam modules
    case "$v" in
        default) ;;
        line-off) mpl=0 ;;
        off) mpl=0 mc=0 ;;
        *) echo "run.sh: unknown upstream variant '$v'" >&2; exit 2 ;;
    esac
    kam=$(command -v kamailio || echo /usr/sbin/kamailio)
    [ -x "$kam" ] || { say "bounds upstream: kamailio not installed (apt-get install -y kamailio): skipped"; return 0; }
    modules=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}
    mkdir -p "$d" "$WORK/kam-$v"
    # the test rig's upstream (tests/kamailio/upstream.cfg): TCP from the switch, relayed over UDP to a sipp UAS
    sed -e "s/@MAIN_PORT@/$BOUNDS_KAM_PORT/g" -e "s/@EMERGENCY_PORT@/$((BOUNDS_KAM_PORT + 1))/g" \
        -e "s/@SMS_PORT@/$((BOUNDS_KAM_PORT + 2))/g" -e "s/@COVENTRY_PORT@/$COV_PORT/g" \
        -e "s/@UAS_PORT@/$BOUNDS_UP_UAS_PORT/g" -e "s/@EMERGENCY_UAS_PORT@/$BOUNDS_UP_UAS_PORT/g" \
        -e "s/@SMS_UAS_PORT@/$BOUNDS_UP_UAS_PORT/g" -e 's/^debug=.*/debug=0/' \
        "$REPO/tests/kamailio/upstream.cfg" > "$d/kamailio.cfg"
    "$kam" -f "$d/kamailio.cfg" -DD -E -L "$modules" -Y "$WORK/kam-$v" -m 256 -M 32 > "$d/kamailio.log" 2>&1 &
    KAM_PID=$!
    write_bounds_config "$WORK/bounds-up-$v.conf" "$mpl" default "127.0.0.1:$BOUNDS_KAM_PORT" "$mc"
    start_coventryd "$WORK/bounds-up-$v.conf" "bounds-up-$v"
    for i in $(seq 1 100); do
        "$PBXCTL" --runtime-dir "$COV_RT" status --json 2>/dev/null | grep -q '"state": *"connected"' && break
        sleep 0.1
    done
    cap=$((BOUNDS_CALL_SECS + BOUNDS_HOLD_S + 120))
    (cd "$d" && exec timeout -k 5 "$cap" sipp -sf "$REPO/tests/scenarios/upstream_uas_call.xml" -i 127.0.0.1 -p "$BOUNDS_UP_UAS_PORT" \
        -key ext 0044 -set ring 0 -set linger 0 -nostdin -buff_size 4194304 -timeout "${cap}s" \
        -trace_stat -stf uas-stat.csv -fd 1 -trace_err -error_file uas-errors.log) > "$d/uas.log" 2>&1 &
    BOUNDS_UAS_PID=$!
    sleep 1
    status_json "$d/status-before.json"
    echo "before $(mem_now)" > "$d/mem.txt"
    start_sampler "$d/rss.tsv" 1
    n=$((BOUNDS_CALL_RATE * BOUNDS_CALL_SECS))
    printf 'SEQUENTIAL\n%s;[authentication username=%s password=pw%s];%s\n' \
        "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLER%@*}" "${BOUNDS_CALLER%@*}" "$BOUNDS_UP_NUMBER" > "$d/uac.csv"
    say "bounds upstream ($v: max_per_line $mpl, max_calls $mc): ${BOUNDS_CALLER%@*} calls $BOUNDS_UP_NUMBER at ${BOUNDS_CALL_RATE}/s for ${BOUNDS_CALL_SECS}s ($n calls), each held ${BOUNDS_HOLD_S}s"
    bounds_offer_calls
    sleep 1
    echo "after $(mem_now)" >> "$d/mem.txt"
    status_json "$d/status-after.json"
    stop_sampler
    stop_bounds_uas
    { echo "t0=$t0"; echo "t1=$t1"; echo "uac_rc=$rc"; echo "offered=$n"; echo "max_per_line=$mpl"; echo "max_calls=$mc"; echo "daemon_alive=$(alive "$COV_PID" && echo yes || echo no)"; } > "$d/case.env"
    say "bounds upstream ($v): sipp rc $rc; $(grep -E '503 <-|Successful call|Failed call' "$d/uac-screen.log" 2>/dev/null | tr -s ' ' | tr '\n' ' ')"
    stop_coventryd
    stop_kamailio
}

mode_bounds() {
    local c h
    for h in "${BOUNDS_CALLER#*@}" "${BOUNDS_CALLEE#*@}"; do
        case "$h" in 127.*) ;; *) echo "run.sh: bounds: '$h' is not a loopback address" >&2; exit 2 ;; esac
    done
    mkdir -p "$OUT/bounds"
    for c in $BOUNDS_CASES; do
        case "$c" in
            texts) bounds_texts ;;
            calls) bounds_calls default; bounds_calls off ;;
            teardown) bounds_teardown ;;
            upstream) bounds_upstream default; bounds_upstream line-off; bounds_upstream off ;;
            *) echo "run.sh: unknown bounds case '$c' (texts | calls | teardown | upstream)" >&2; exit 2 ;;
        esac
    done
    {
        echo "# coventryd: what one authenticated phone can have in flight (issue 20), $(date -Is)"
        echo
        echo "- host: $(nproc) cores, $(uname -r), load average before: $(cut -d' ' -f1-3 < "$OUT/loadavg-start" 2>/dev/null); $(busiest); $(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//')"
        echo "- coventryd $(head -n 1 "$OUT/bin/source.txt" 2>/dev/null): 2-digit plan, MD5 digest, 127.0.0.1:$COV_PORT, the daemon's defaults (source_rate, texts in flight, max_per_line, max_calls) unless a case says otherwise; a fresh daemon per case"
        echo "- the phone: ${BOUNDS_CALLER%@*} on ${BOUNDS_CALLER#*@}; the other side: ${BOUNDS_CALLEE%@*} on ${BOUNDS_CALLEE#*@} (call_waiting = yes)"
        echo
        python3 "$HERE/lib/bounds_report.py" "$OUT/bounds" $BOUNDS_CASES
    } > "$OUT/bounds.md"
    echo; cat "$OUT/bounds.md"; echo
}

# ---------- main ----------
say "results -> $OUT"
cat /proc/loadavg > "$OUT/loadavg-start"
# what else runs (the figures share two cores with it): the busiest processes
ps -eo pcpu=,etimes=,comm= --sort=-pcpu 2>/dev/null | head -n 8 > "$OUT/ps-start" || true
build
for m in "${MODES[@]}"; do
    case "$m" in
        load) mode_load ;;
        memory) mode_memory ;;
        micro) mode_micro ;;
        profile) mode_profile ;;
        flood) mode_flood ;;
        netns) mode_netns ;;
        bounds) mode_bounds ;;
        all) mode_load; mode_memory; mode_micro ;;
        *) echo "run.sh: unknown mode '$m' (load | memory | micro | profile | flood | netns | bounds | all)" >&2; exit 2 ;;
    esac
done
say "done: $OUT"
