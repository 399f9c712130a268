#!/usr/bin/env bash
# bench/building.sh - a building of N coventryd sites behind one Kamailio
# (contrib/kamailio/building.cfg), each site in its own network namespace on one
# bridged /24, with sipp phones at each site: cross-site calls and texts at
# rising rates. And the same load on one switch alone (N = 1: callers and
# callees at one site, no Kamailio), so that the cost of the building hop shows.
# A benchmark, not a test: it prints figures and never fails on them.
#
# Usage:  sudo bench/building.sh [N...]        (default: 1 2 4 8)
#
# Per N: a fresh building. Site i (prefix 70+i, address 10.NET.0.(10+i)) runs
# coventryd on its defaults (listen 0.0.0.0:5060) but for the bench rig's
# contract: a 3-digit plan of users 100..699 with secret pwN, MD5 digest, call
# waiting, no per-line and no per-source limit, max_calls = 0 (sipp's callers
# are trunks, not phones). In site i: callees 200..209 registered to a sipp UAS
# (the rig's uas_call.xml) and 210..219 to a MESSAGE UAS; callers 100..199
# call 200..209 of site i+1 (PREFIX+EXT; with N = 1 their own site's, dialled
# as EXT) and text 210..219 there. Each rate R is the building's total: every
# site's caller offers R/N per second for SECS seconds, all sites at once.
#
# Figures per N and rate: calls (and texts) offered, completed, failed; the
# achieved rate; CPU ms per call summed over all coventryd (a cross-site call
# costs both switches), per call in Kamailio (its whole process tree).
#
# Knobs (environment, defaults):
#   CALL_RATES="50 100 200 400 800"   building-wide calls/s, in order
#   MSG_RATES="100 400 1600"          building-wide texts/s, in order
#   SECS=10                           seconds of load per rate
#   NET=203                           the building's /24 is 10.NET.0.0/24
#   KAM_SHM=256                       Kamailio's shared memory, MB (kamailio -m)
#   OUT=bench/results/<stamp>-building   results (git-ignored): building.md,
#                                     summary.tsv, per-run sipp directories, logs
#   RIG=bench/rig                     the rig's scenarios and sippstats.py
#   CFG=contrib/kamailio/building.cfg the building's Kamailio configuration
#   BIN=                              a coventryd binary (default: built here,
#                                     release, into target/release)
#
# Needs root (ip netns, veth, bridge), iproute2, sipp (sip-tester), kamailio.
# Everything it makes (namespaces, links, processes) is removed on exit, also on
# Ctrl-C; every sipp has -m, -timeout and timeout(1).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RIG=${RIG:-$HERE/rig}
SCEN=$RIG/scenarios
STATS_PY=$RIG/lib/sippstats.py
CFG=${CFG:-$ROOT/contrib/kamailio/building.cfg}
CALL_RATES=${CALL_RATES:-"50 100 200 400 800"}
MSG_RATES=${MSG_RATES:-"100 400 1600"}
SECS=${SECS:-10}
NET=${NET:-203}
KAM_SHM=${KAM_SHM:-256}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/results/$STAMP-building}
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1 2 4 8)

die() { echo "building.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (ip netns add, ip link add)"
for c in ip sipp python3; do command -v "$c" >/dev/null || die "needs $c"; done
KAM=$(command -v kamailio || echo /usr/sbin/kamailio)
[ -x "$KAM" ] || die "needs kamailio (apt-get install kamailio)"
for f in "$SCEN/register.xml" "$SCEN/uac_call.xml" "$SCEN/uas_call.xml" \
         "$SCEN/uac_message.xml" "$SCEN/uas_message.xml" "$STATS_PY" "$CFG"; do
    [ -r "$f" ] || die "missing $f"
done
for n in "${SIZES[@]}"; do
    [[ "$n" =~ ^[1-9]$|^1[0-9]$ ]] || die "N is 1 to 19 (got $n)"
done

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/coventry-building.XXXXXX)
LOG=$OUT/run.log
HZ=$(getconf CLK_TCK)
say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

if [ -z "${BIN:-}" ]; then
    say "building coventryd (release)"
    (cd "$ROOT" && cargo build -q --release -p coventryd -p pbxctl)
    BIN=$ROOT/target/release/coventryd
fi
PBXCTL=$(dirname "$BIN")/pbxctl

# ---------- the building: namespaces, bridge, links ----------
TAG=$$
BNS=cvbb$TAG              # the building's namespace: the bridge and Kamailio
SITES=0                   # sites made so far (site namespaces cvbsTAG-i)
site_ns() { echo "cvbs$TAG-$1"; }
site_ip() { echo "10.$NET.0.$((10 + $1))"; }
BUILDING_IP=10.$NET.0.1

building_up() {  # $1 N
    local i ns
    ip netns add "$BNS"
    ip -n "$BNS" link set lo up
    ip -n "$BNS" link add br0 type bridge
    ip -n "$BNS" addr add "$BUILDING_IP/24" dev br0
    ip -n "$BNS" link set br0 up
    for i in $(seq 1 "$1"); do
        ns=$(site_ns "$i")
        ip netns add "$ns"; SITES=$i
        ip -n "$ns" link set lo up
        # Both ends are made in the site namespace, then one is moved to the
        # building's and joined to the bridge: nothing appears on the host.
        ip -n "$ns" link add eth0 type veth peer name "s$i"
        ip -n "$ns" link set "s$i" netns "$BNS"
        ip -n "$BNS" link set "s$i" master br0 up
        ip -n "$ns" addr add "$(site_ip "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
    for i in $(seq 1 50); do
        ip -n "$(site_ns "$1")" -o link show eth0 | grep -q "state UP" && break
        sleep 0.1
    done
}

stop_ns_procs() {  # $1 namespace: TERM what runs there, KILL after 5 s
    local p i
    for p in $(ip netns pids "$1" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 1 50); do [ -z "$(ip netns pids "$1" 2>/dev/null)" ] && return 0; sleep 0.1; done
    for p in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
}

building_down() {
    local i
    for i in $(seq 1 "$SITES"); do stop_ns_procs "$(site_ns "$i")"; done
    stop_ns_procs "$BNS"
    for i in $(seq 1 "$SITES"); do ip netns del "$(site_ns "$i")" 2>/dev/null || true; done
    ip netns del "$BNS" 2>/dev/null || true
    SITES=0
}

cleanup() { building_down; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---------- the sites and Kamailio ----------
site_config() {  # $1 site, $2 N -> the site's coventry.conf
    local i
    echo "; bench/building.sh: site $1 of $2, the bench rig's contract (user N, password pwN)"
    # Stock sipp 3.6 answers only MD5 challenges (it aborts on SHA-256): the
    # bench rig's contract, as bench/run.sh has it.
    printf '[server]\ndigits = 3\nrealm = site%s\nalgorithm = md5\n\n' "$1"
    printf '[security]\nsource_rate = 0\n\n[calls]\nmax_per_line = 0\n\n'
    if [ "$2" -gt 1 ]; then
        printf '[upstream]\nroute = %s:5060\nsite_prefix = %s\nmax_calls = 0\n\n' "$BUILDING_IP" "$((70 + $1))"
    fi
    for i in $(seq 100 699); do printf '[%d]\nsecret = pw%d\ncall_waiting = yes\n\n' "$i" "$i"; done
}

COV_PIDS=()
start_site() {  # $1 site, $2 N
    local d=$WORK/site$1 ns i
    ns=$(site_ns "$1")
    mkdir -p "$d/run" "$d/state"
    site_config "$1" "$2" > "$d/coventry.conf"
    "$BIN" --config "$d/coventry.conf" --check-config > /dev/null
    COVENTRY_LOG=${COVENTRY_LOG:-warn} ip netns exec "$ns" "$BIN" --config "$d/coventry.conf" \
        --runtime-dir "$d/run" --state-dir "$d/state" 2> "$OUT/coventryd-n$2-site$1.log" &
    COV_PIDS[$1]=$!
    for i in $(seq 1 100); do [ -e "$d/run/state" ] && return 0; sleep 0.1; done
    die "site $1's coventryd did not start (see $OUT/coventryd-n$2-site$1.log)"
}

KAM_PID=""
start_kamailio() {  # $1 N
    local i list=$WORK/sites.list
    : > "$list"
    for i in $(seq 1 "$1"); do echo "$((70 + i)) sip:$(site_ip "$i"):5060;transport=tcp" >> "$list"; done
    mkdir -p "$WORK/kam"
    # Shared memory as contrib/kamailio/README.md says for a building (the default
    # 64 MB runs out near 400 calls/s); notices off (every routing decision is one).
    ip netns exec "$BNS" "$KAM" -f "$CFG" -DD -E -Y "$WORK/kam" -P "$WORK/kam/kamailio.pid" \
        -m "$KAM_SHM" -M 16 -A DEBUG_LEVEL=1 \
        -A "SITES_LIST=\"$list\"" -A "CTL_SOCKET=\"unix:$WORK/kam/ctl\"" \
        > "$OUT/kamailio-n$1.log" 2>&1 &
    KAM_PID=$!
    for i in $(seq 1 100); do
        [ -S "$WORK/kam/ctl" ] && return 0
        kill -0 "$KAM_PID" 2>/dev/null || die "kamailio exited (see $OUT/kamailio-n$1.log)"
        sleep 0.1
    done
    die "kamailio did not start (see $OUT/kamailio-n$1.log)"
}

links_up() {  # $1 N: every site's building route connected (pbxctl status --json)
    local i t
    for i in $(seq 1 "$1"); do
        for t in $(seq 1 150); do
            "$PBXCTL" --runtime-dir "$WORK/site$i/run" status --json 2>/dev/null \
                | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["upstream"] and all(r["state"]=="connected" for r in d["upstream"]) else 1)' \
                && break
            sleep 0.2
        done
    done
}

# ---------- measuring ----------
tree_ticks() {  # pids... -> utime+stime of them and their descendants, ticks
    python3 - "$*" <<'EOF'
import os, sys
roots = set(int(p) for p in sys.argv[1].split())
par = {}
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            s = open(f'/proc/{p}/stat').read()
            par[int(p)] = int(s[s.rindex(')') + 2:].split()[1])
        except OSError:
            pass
keep = set(r for r in roots if r in par)
grew = True
while grew:
    grew = False
    for p, pp in par.items():
        if p not in keep and pp in keep:
            keep.add(p); grew = True
t = 0
for p in keep:
    try:
        s = open(f'/proc/{p}/stat').read()
        f = s[s.rindex(')') + 2:].split()
        t += int(f[11]) + int(f[12])
    except OSError:
        pass
print(t)
EOF
}

sipp_in() {  # $1 site, $2 dir, then sipp arguments: run sipp there, bounded
    local ns dir=$2
    ns=$(site_ns "$1"); shift 2
    mkdir -p "$dir"
    ( cd "$dir" && exec timeout -k 5 $((SECS + 60)) ip netns exec "$ns" sipp "$@" \
        -nostdin -buff_size 1048576 -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1000 \
        -trace_err -error_file errors.log ${SIPP_EXTRA:-} ) > "$dir/stdout.log" 2>&1
}

start_uases() {  # $1 N: per site a call UAS on 5081 and a MESSAGE UAS on 5082
    local i ip
    for i in $(seq 1 "$1"); do
        ip=$(site_ip "$i")
        mkdir -p "$OUT/n$1/uas$i"
        ( cd "$OUT/n$1/uas$i" && exec ip netns exec "$(site_ns "$i")" sipp -sf "$SCEN/uas_call.xml" \
            -i "$ip" -p 5081 -nostdin -buff_size 1048576 -timeout 1800s ) > /dev/null 2>&1 &
        ( cd "$OUT/n$1/uas$i" && exec ip netns exec "$(site_ns "$i")" sipp -sf "$SCEN/uas_message.xml" \
            -i "$ip" -p 5082 -nostdin -buff_size 1048576 -timeout 1800s ) > /dev/null 2>&1 &
    done
}

register_callees() {  # $1 N
    local i ip csv
    for i in $(seq 1 "$1"); do
        ip=$(site_ip "$i") csv=$WORK/callees$i.csv
        { echo SEQUENTIAL; for u in $(seq 200 209); do echo "$u;[authentication username=$u password=pw$u]"; done; } > "$csv"
        sipp_in "$i" "$OUT/n$1/reg$i-calls" -sf "$SCEN/register.xml" -inf "$csv" -key domain "$ip:5060" \
            -key contact_host "$ip" -key contact_port 5081 -key expires 3600 \
            -i "$ip" -p 5094 -m 10 -r 50 -timeout 30s "$ip:5060" || true
        { echo SEQUENTIAL; for u in $(seq 210 219); do echo "$u;[authentication username=$u password=pw$u]"; done; } > "$csv"
        sipp_in "$i" "$OUT/n$1/reg$i-msgs" -sf "$SCEN/register.xml" -inf "$csv" -key domain "$ip:5060" \
            -key contact_host "$ip" -key contact_port 5082 -key expires 3600 \
            -i "$ip" -p 5094 -m 10 -r 50 -timeout 30s "$ip:5060" || true
    done
}

callers_csv() {  # $1 site, $2 N, $3 calls|msgs -> the CSV of site $1's callers
    local far prefix="" base=200 k
    far=$(( $1 % $2 + 1 ))
    [ "$2" -gt 1 ] && prefix=$((70 + far))
    [ "$3" = msgs ] && base=210
    echo SEQUENTIAL
    for k in $(seq 0 99); do
        echo "$((100 + k));[authentication username=$((100 + k)) password=pw$((100 + k))];$prefix$((base + k % 10))"
    done
}

SUMMARY=$OUT/summary.tsv
printf 'sites\tkind\toffered_per_s\tcount\tok\tfailed\tachieved_per_s\tcoventryd_cpu_ms_per_op\tkamailio_cpu_ms_per_op\n' > "$SUMMARY"

run_rate() {  # $1 N, $2 calls|msgs, $3 building-wide rate
    local n=$1 kind=$2 rate=$3 i per count c0 c1 k0 k1 pids=() ok=0 failed=0 ach=0 scen dir
    per=$(awk -v r="$rate" -v n="$n" 'BEGIN{printf "%.2f", r/n}')
    count=$(awk -v p="$per" -v s="$SECS" 'BEGIN{printf "%d", p*s}')
    [ "$count" -ge 1 ] || count=1
    scen=uac_call.xml; [ "$kind" = msgs ] && scen=uac_message.xml
    c0=$(tree_ticks "${COV_PIDS[@]}"); k0=$(tree_ticks "$KAM_PID")
    for i in $(seq 1 "$n"); do
        dir=$OUT/n$n/$kind-r$rate-site$i
        callers_csv "$i" "$n" "$kind" > "$WORK/callers$i.csv"
        sipp_in "$i" "$dir" -sf "$SCEN/$scen" -inf "$WORK/callers$i.csv" -key domain "$(site_ip "$i"):5060" \
            -i "$(site_ip "$i")" -p 5090 -m "$count" -r "$per" -rp 1000 -l 2000 -timeout $((SECS + 40))s \
            -recv_timeout 10000 "$(site_ip "$i"):5060" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    c1=$(tree_ticks "${COV_PIDS[@]}"); k1=$(tree_ticks "$KAM_PID")
    for i in $(seq 1 "$n"); do
        dir=$OUT/n$n/$kind-r$rate-site$i
        python3 "$STATS_PY" --stat "$dir/stat.csv" --rtt "$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1 || echo /dev/null)" \
            > "$dir/result.txt" 2>/dev/null || true
        ok=$((ok + $(awk -F= '$1=="successful"{print $2+0}' "$dir/result.txt")))
        failed=$((failed + $(awk -F= '$1=="failed"{print $2+0}' "$dir/result.txt")))
        ach=$(awk -v a="$ach" -v b="$(awk -F= '$1=="sipp_callrate_c"{print $2}' "$dir/result.txt")" \
            'BEGIN{ if (b == "" || b == "nan") b = 0; printf "%.0f", a + b }')
    done
    local cov_ms kam_ms
    cov_ms=$(awk -v a="$c0" -v b="$c1" -v n="$ok" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.3f", 1000*(b-a)/hz/n; else print "nan" }')
    kam_ms=$(awk -v a="$k0" -v b="$k1" -v n="$ok" -v hz="$HZ" -v k="$KAM_PID" \
        'BEGIN{ if (k=="" ) print "-"; else if (n>0) printf "%.3f", 1000*(b-a)/hz/n; else print "nan" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$kind" "$rate" "$((count * n))" "$ok" "$failed" \
        "$ach" "$cov_ms" "$kam_ms" >> "$SUMMARY"
    say "N=$n $kind at $rate/s: offered $((count * n)), ok $ok, failed $failed, achieved ~$ach/s," \
        "coventryd $cov_ms ms/op (all sites), kamailio $kam_ms ms/op"
}

for n in "${SIZES[@]}"; do
    say "building of $n site(s)"
    building_up "$n"
    KAM_PID=""
    [ "$n" -gt 1 ] && start_kamailio "$n"
    COV_PIDS=()
    for i in $(seq 1 "$n"); do start_site "$i" "$n"; done
    [ "$n" -gt 1 ] && links_up "$n"
    start_uases "$n"
    register_callees "$n"
    for r in $CALL_RATES; do run_rate "$n" calls "$r"; done
    for r in $MSG_RATES; do run_rate "$n" msgs "$r"; done
    building_down
done

{
    echo "# A building of coventryd sites behind Kamailio, $(date -Is)"
    echo
    echo "- host: $(nproc) cores, $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- coventryd $(cd "$ROOT" && git describe --always --dirty 2>/dev/null); $("$KAM" -v 2>&1 | head -1); $(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//')"
    echo "- $SECS s of load per rate; the rate is the building's (each site offers rate/N);"
    echo "  a call is INVITE (407, digest) / 200 / ACK / BYE, a text MESSAGE (407, digest) / 200"
    echo "- sites = 1: one switch alone, callers and callees on it, no Kamailio"
    echo "- coventryd ms/op: CPU of every site's coventryd together per completed call or text"
    echo "  (a cross-site call is handled by two switches); kamailio ms/op: its process tree"
    echo
    echo "| sites | kind | offered/s | offered | ok | failed | achieved/s | coventryd ms/op | kamailio ms/op |"
    echo "|---|---|---|---|---|---|---|---|---|"
    tail -n +2 "$SUMMARY" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
} > "$OUT/building.md"
echo; cat "$OUT/building.md"
