#!/usr/bin/env bash
# drive.sh - the reference rig's REGISTER and MESSAGE load against a target that
# has no calls yet (coventryd), measured exactly as the rig measures Kamailio.
#
# Why not the rig's bench.sh itself: its "setup" phase always places 5 smoke
# INVITE calls and exits when they fail, and coventryd answers INVITE with 501
# until the calls issue lands.  This driver runs the same load without calls:
# the rig's own scenarios ($RIG/scenarios/register.xml, uac_message.xml,
# uas_message.xml), the same CSV data, the same sipp options (-r/-rp/-l/-m,
# -buff_size, -timeout, -recv_timeout), the same ports, the same /proc
# measurements (target CPU ticks, RSS, PSS, kernel UDP drops) and the rig's
# lib/sippstats.py, and it writes the same summary.tsv columns, so the two
# summaries compare row by row.  Nothing in $RIG is modified.
#
# Usage:  PROXY=127.0.0.1:PORT TARGET_PID=pid [LABEL=coventryd] drive.sh [PHASE...]
#   PHASE: regs | msgs | regsweep | msgsweep       (default: regsweep msgsweep)
#   "setup" always runs first: a MESSAGE UAS on MSG_UAS_PORT, users 210..219
#   registered to it, 5 smoke MESSAGEs (all must succeed).
#
# Environment (defaults as in the rig's bench.sh):
#   RIG=bench/rig            the reference rig (scenarios and lib/sippstats.py)
#   PROXY=127.0.0.1:5160     target (loopback, or NETNS below) DOMAIN=$PROXY
#   TARGET_PID=              target pid (CPU, RSS, PSS of it and its children)
#   LABEL=coventryd          OUT=results/<stamp>-<LABEL> (next to this file's parent)
#   REG_RATE=500 REGS=10000  MSG_RATE=500 MSGS=5000        (regs / msgs phases)
#   REG_SWEEP_RATES="1000 2000 4000 6000 8000" MSG_SWEEP_RATES=(same)
#   SWEEP_SECS=10 SWEEP_MAX_CALLS=60000 SWEEP_REPEAT=1
#   OPEN_LIMIT= (sipp -l; default max(200, 3*rate))  SETTLE_S=3
#   MSG_UAS_PORT=5082 REG_CONTACT_PORT=5099 UAC_MSG_PORT=5092 UAC_REG_PORT=5093
#   UAC_SETUP_PORT=5094 SIPP_BUFF=1048576 UAS_MAX_S=1800 MAX_WALL_S=300 SIPP=sipp
#   LOCAL_IP=127.0.0.1       the address the sipp phones bind (and register)
#   NETNS=                   run every sipp inside this network namespace
#                            (`ip netns exec`; made by bench/run.sh netns); then
#                            PROXY and LOCAL_IP may be the namespace's veth
#                            addresses instead of loopback ones
#
# Bounds: every sipp client has -m and -timeout and runs under timeout(1); the
# UAS has -timeout UAS_MAX_S.  Everything started here is stopped by PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
RIG=${RIG:-$HERE/../rig}
SCEN=$RIG/scenarios
STATS_PY=$RIG/lib/sippstats.py
for f in "$SCEN/register.xml" "$SCEN/uac_message.xml" "$SCEN/uas_message.xml" "$STATS_PY"; do
    [ -r "$f" ] || { echo "drive.sh: missing $f (set RIG= to the reference rig, bench/rig)" >&2; exit 2; }
done

PROXY=${PROXY:-127.0.0.1:5160}
PROXY_HOST=${PROXY%:*}
PROXY_PORT=${PROXY##*:}
DOMAIN=${DOMAIN:-$PROXY}
LOCAL_IP=${LOCAL_IP:-127.0.0.1}
NETNS=${NETNS:-}
TARGET_PID=${TARGET_PID:-}
LABEL=${LABEL:-coventryd}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/../results/$STAMP-$LABEL}

REG_RATE=${REG_RATE:-500}
REGS=${REGS:-10000}
MSG_RATE=${MSG_RATE:-500}
MSGS=${MSGS:-5000}
SWEEP_SECS=${SWEEP_SECS:-10}
SWEEP_MAX_CALLS=${SWEEP_MAX_CALLS:-60000}
SWEEP_REPEAT=${SWEEP_REPEAT:-1}
REG_SWEEP_RATES=${REG_SWEEP_RATES:-"1000 2000 4000 6000 8000"}
MSG_SWEEP_RATES=${MSG_SWEEP_RATES:-"1000 2000 4000 6000 8000"}
OPEN_LIMIT=${OPEN_LIMIT:-}
MSG_UAS_PORT=${MSG_UAS_PORT:-5082}
REG_CONTACT_PORT=${REG_CONTACT_PORT:-5099}
UAC_MSG_PORT=${UAC_MSG_PORT:-5092}
UAC_REG_PORT=${UAC_REG_PORT:-5093}
UAC_SETUP_PORT=${UAC_SETUP_PORT:-5094}
SETTLE_S=${SETTLE_S:-3}
SIPP_BUFF=${SIPP_BUFF:-1048576}
UAS_MAX_S=${UAS_MAX_S:-1800}
MAX_WALL_S=${MAX_WALL_S:-300}
SIPP=${SIPP:-$(command -v sipp || true)}
[ -n "$SIPP" ] && [ -x "$SIPP" ] || { echo "sipp not found (apt-get install sip-tester)" >&2; exit 2; }

# IN_NS: a command prefix that runs inside NETNS (empty: here)
IN_NS=()
[ -n "$NETNS" ] && IN_NS=(ip netns exec "$NETNS")
SIPP_CMD=("${IN_NS[@]}" "$SIPP")
# Traffic stays on loopback, or inside a namespace on its directly connected
# links (the one bench/run.sh makes has a veth pair and no default route).
for h in "$PROXY_HOST" "$LOCAL_IP"; do
    case "$h" in
        127.*|localhost) ;;
        *)
            [ -n "$NETNS" ] || { echo "refusing: '$h' is not a loopback address (and no NETNS)" >&2; exit 2; }
            r=$("${IN_NS[@]}" ip -o -4 route get "$h" 2>/dev/null || true)
            case "$r" in
                ""|*" via "*) echo "refusing: '$h' is not on a link of namespace $NETNS ($r)" >&2; exit 2 ;;
            esac ;;
    esac
done

PHASES=("$@")
[ ${#PHASES[@]} -eq 0 ] && PHASES=(regsweep msgsweep)

mkdir -p "$OUT"
SUMMARY=$OUT/summary.tsv
CMDS=$OUT/commands.txt
LOG=$OUT/driver.log
STARTED_PIDS=()

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
record_cmd() { printf '%s\n' "$*" >> "$CMDS"; }

alive() {  # $1 pid: running (a zombie awaiting wait(2) counts as gone)
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null || true)
    [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
stop_pid() {  # $1 pid: TERM, wait up to 5 s, then KILL - by PID only
    local p=$1 i
    alive "$p" || { wait "$p" 2>/dev/null || true; return 0; }
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$p" || break; sleep 0.1; done
    alive "$p" && kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
CLIENT_PID=""  # the running sipp client: time(1) -> timeout(1) -> sipp
cleanup() {
    local p
    if [ -n "$CLIENT_PID" ]; then
        for p in $(pgrep -P "$CLIENT_PID" 2>/dev/null || true); do kill -TERM "$p" 2>/dev/null || true; done
        stop_pid "$CLIENT_PID"
        CLIENT_PID=""
    fi
    for p in "${STARTED_PIDS[@]:-}"; do if [ -n "$p" ]; then stop_pid "$p"; fi; done
    STARTED_PIDS=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------- measurement (as in the rig's bench.sh) ----------
tree_pids() {  # $1 root pid -> root and all descendants
    ps -e -o pid=,ppid= | awk -v r="$1" '
        { par[$1] = $2 }
        END { s[r] = 1; ch = 1
              while (ch) { ch = 0; for (k in par) if (!(k in s) && (par[k] in s)) { s[k] = 1; ch = 1 } }
              for (k in s) print k }'
}
target_metrics() {  # -> "nproc rss_kb pss_kb cpu_ticks" for the TARGET_PID tree
    if [ -z "$TARGET_PID" ] || ! kill -0 "$TARGET_PID" 2>/dev/null; then echo "0 0 0 0"; return; fi
    local p n=0 rss=0 pss=0 cpu=0 v
    for p in $(tree_pids "$TARGET_PID"); do
        [ -r "/proc/$p/stat" ] || continue
        n=$((n + 1))
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true); rss=$((rss + ${v:-0}))
        v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true); pss=$((pss + ${v:-0}))
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true); cpu=$((cpu + ${v:-0}))
    done
    echo "$n $rss $pss $cpu"
}
pid_cpu_ticks() {  # $1 pid -> utime+stime ticks (0 if gone)
    [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
sys_cpu() {  # -> "busy_ticks total_ticks" (all CPUs)
    awk '/^cpu /{t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t}' /proc/stat
}
udp_errs() {  # -> "InErrors RcvbufErrors"
    awk '/^Udp:/{ if (!h) { for (i=2;i<=NF;i++) idx[$i]=i; h=1 } else print $idx["InErrors"], $idx["RcvbufErrors"] }' /proc/net/snmp
}
udp_port_drops() {  # $1 port -> kernel drop counter summed over sockets bound to that port
    awk -v p="$(printf '%04X' "$1")" 'NR>1 { split($2, a, ":"); if (a[2]==p) d+=$NF } END { print d+0 }' /proc/net/udp
}
uas_port_drops() {  # $1 port: the same where the sipp phones run (NETNS or here)
    "${IN_NS[@]}" awk -v p="$(printf '%04X' "$1")" 'NR>1 { split($2, a, ":"); if (a[2]==p) d+=$NF } END { print d+0 }' /proc/net/udp
}
HZ=$(getconf CLK_TCK)

# ---------- data (the rig's CSVs for these phases) ----------
gen_csvs() {
    local i d=$OUT/data
    mkdir -p "$d"
    { echo SEQUENTIAL; for i in $(seq 210 219); do echo "$i;[authentication username=$i password=pw$i]"; done; } > "$d/msg_callees.csv"
    { echo SEQUENTIAL; for i in $(seq 300 699); do echo "$i;[authentication username=$i password=pw$i]"; done; } > "$d/reg_users.csv"
    { echo SEQUENTIAL; for i in $(seq 0 99); do
          echo "$((100 + i));[authentication username=$((100 + i)) password=pw$((100 + i))];$((210 + i % 10))"; done; } > "$d/msgs.csv"
}

port_busy() { "${IN_NS[@]}" ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }

UAS_MSG_PID=""
start_uas() {  # $1 name, $2 scenario, $3 port
    local dir=$OUT/$1
    mkdir -p "$dir"
    if port_busy "$3"; then log "port $3 already in use"; exit 3; fi
    local cmd=("${SIPP_CMD[@]}" -sf "$SCEN/$2" -i "$LOCAL_IP" -p "$3" -nostdin -buff_size "$SIPP_BUFF"
               -timeout "${UAS_MAX_S}s" -trace_stat -stf stat.csv -fd 1
               -trace_err -error_file errors.log -trace_screen -screen_file screen.log)
    record_cmd "(cd $dir && ${cmd[*]}) &"
    ( cd "$dir" && exec "${cmd[@]}" ) > "$dir/stdout.log" 2>&1 &
    UAS_MSG_PID=$!
    STARTED_PIDS+=("$UAS_MSG_PID")
    log "started $1 (sipp pid $UAS_MSG_PID) on $LOCAL_IP:$3"
}

# run_client NAME SCENARIO CSV RATE COUNT LOCAL_PORT [extra sipp args]
# leaves $OUT/NAME/result.txt (key=value), like the rig's run_client
run_client() {
    local name=$1 scen=$2 csv=$3 rate=$4 count=$5 lport=$6; shift 6
    local dir=$OUT/$name
    rm -rf "$dir"; mkdir -p "$dir"
    local limit=${OPEN_LIMIT:-$(( rate * 3 > 200 ? rate * 3 : 200 ))}
    local wall=$(( (count + rate - 1) / rate + 30 ))
    [ "$wall" -gt "$MAX_WALL_S" ] && wall=$MAX_WALL_S
    local cmd=("${SIPP_CMD[@]}" -sf "$SCEN/$scen" -inf "$csv" -key domain "$DOMAIN" "$@"
               -i "$LOCAL_IP" -p "$lport" -m "$count" -r "$rate" -rp 1000 -l "$limit"
               -nostdin -buff_size "$SIPP_BUFF" -timeout "${wall}s" -recv_timeout 10000
               -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1000
               -trace_err -error_file errors.log -trace_screen -screen_file screen.log
               "$PROXY")
    record_cmd "(cd $dir && timeout -k 5 $((wall + 15)) ${cmd[*]})"
    local t0 t1 s0 s1 e0 e1 q0 q1 dp0 dp1 du0 du1 rc=0
    dp0=$(udp_port_drops "$PROXY_PORT"); du0=$(uas_port_drops "$MSG_UAS_PORT")
    t0=$(target_metrics); s0=$(sys_cpu); e0=$(udp_errs); q0=$(pid_cpu_ticks "${UAS_MSG_PID:-0}")
    # in the background and waited for, so INT/TERM stop it at once (cleanup)
    ( cd "$dir" && exec /usr/bin/time -f '%e %U %S' -o time.txt \
          timeout -k 5 $((wall + 15)) "${cmd[@]}" ) > "$dir/stdout.log" 2>&1 &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    t1=$(target_metrics); s1=$(sys_cpu); e1=$(udp_errs); q1=$(pid_cpu_ticks "${UAS_MSG_PID:-0}")
    dp1=$(udp_port_drops "$PROXY_PORT"); du1=$(uas_port_drops "$MSG_UAS_PORT")
    local rtt; rtt=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1 || true)
    python3 "$STATS_PY" --stat "$dir/stat.csv" --rtt "${rtt:-/dev/null}" > "$dir/result.txt"
    local n0 r0 p0 c0 n1 r1 p1 c1 sb0 st0 sb1 st1 ie0 rb0 ie1 rb1 wall_s uu us
    read -r n0 r0 p0 c0 <<< "$t0"; read -r n1 r1 p1 c1 <<< "$t1"
    read -r sb0 st0 <<< "$s0"; read -r sb1 st1 <<< "$s1"
    read -r ie0 rb0 <<< "$e0"; read -r ie1 rb1 <<< "$e1"
    read -r wall_s uu us <<< "$(tail -n 1 "$dir/time.txt" 2>/dev/null || true)" || true
    {
        echo "sipp_rc=$rc"
        echo "offered_rate=$rate"
        echo "count=$count"
        echo "target_nproc=$n1"
        echo "target_rss_kb_before=$r0"; echo "target_rss_kb_after=$r1"
        echo "target_pss_kb_before=$p0"; echo "target_pss_kb_after=$p1"
        echo "target_cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}')"
        echo "sys_busy_pct=$(awk -v a="$sb0" -v b="$sb1" -v c="$st0" -v d="$st1" 'BEGIN{ if (d>c) printf "%.0f", 100*(b-a)/(d-c); else print "nan"}')"
        echo "udp_in_errors=$((ie1 - ie0))"; echo "udp_rcvbuf_errors=$((rb1 - rb0))"
        echo "udp_drops_proxy_port=$((dp1 - dp0))"; echo "udp_drops_uas_ports=$((du1 - du0))"
        echo "uas_cpu_s=$(awk -v a="$q0" -v b="$q1" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}')"
        echo "uac_wall_s=${wall_s:-nan}"
        echo "uac_cpu_s=$(awk -v a="${uu:-0}" -v b="${us:-0}" 'BEGIN{printf "%.2f", a+b}')"
    } >> "$dir/result.txt"
}

rv() { awk -F= -v k="$2" '$1==k{print $2}' "$1"; }  # result value

HDR="test\toffered_per_s\tcount\tsipp_rc\tsuccessful\tfailed\tretrans\tachieved_per_s\trt1_min_ms\trt1_median_ms\trt1_p95_ms\trt1_p99_ms\trt1_max_ms\trt2_median_ms\ttarget_cpu_s\ttarget_cpu_ms_per_op\ttarget_rss_kb\ttarget_pss_kb\tsys_busy_pct\tuac_cpu_s\tuas_cpu_s\tudp_rcvbuf_errors\tudp_drops_proxy\tverdict"
add_summary() {  # $1 name - one row, same columns and verdict rules as the rig
    local f=$OUT/$1/result.txt
    local succ failed retr ach off cpu cpuop verdict
    succ=$(rv "$f" successful); failed=$(rv "$f" failed); retr=$(rv "$f" retransmissions)
    ach=$(rv "$f" achieved_per_s); off=$(rv "$f" offered_rate); cpu=$(rv "$f" target_cpu_s)
    cpuop=$(awk -v c="$cpu" -v n="$succ" 'BEGIN{ if (n>0) printf "%.3f", 1000*c/n; else print "nan"}')
    verdict=$(awk -v f="$failed" -v r="$retr" -v a="$ach" -v o="$off" -v rc="$(rv "$f" sipp_rc)" \
                  -v s="$succ" -v n="$(rv "$f" count)" -v ub="$(rv "$f" udp_rcvbuf_errors)" 'BEGIN{
        if (f>0 || rc!=0 || s<n) print "FAIL";
        else if (a=="nan" || a < 0.95*o) print "below-rate";
        else if (r>0 || ub>0) print "ok-with-loss";
        else print "ok" }')
    [ -f "$SUMMARY" ] || printf "$HDR\n" > "$SUMMARY"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$1" "$off" "$(rv "$f" count)" "$(rv "$f" sipp_rc)" "$succ" "$failed" "$retr" "$ach" \
        "$(rv "$f" rt1_min_ms)" "$(rv "$f" rt1_median_ms)" "$(rv "$f" rt1_p95_ms)" "$(rv "$f" rt1_p99_ms)" \
        "$(rv "$f" rt1_max_ms)" "$(rv "$f" rt2_median_ms)" "$cpu" "$cpuop" \
        "$(rv "$f" target_rss_kb_after)" "$(rv "$f" target_pss_kb_after)" "$(rv "$f" sys_busy_pct)" \
        "$(rv "$f" uac_cpu_s)" "$(rv "$f" uas_cpu_s)" "$(rv "$f" udp_rcvbuf_errors)" \
        "$(rv "$f" udp_drops_proxy_port)" "$verdict" >> "$SUMMARY"
    log "$1: offered=$off/s count=$(rv "$f" count) ok=$succ failed=$failed retrans=$retr achieved=${ach}/s" \
        "rt1 median=$(rv "$f" rt1_median_ms)ms p99=$(rv "$f" rt1_p99_ms)ms target_cpu=${cpu}s (${cpuop} ms/op)" \
        "rss=$(rv "$f" target_rss_kb_after)kB pss=$(rv "$f" target_pss_kb_after)kB busy=$(rv "$f" sys_busy_pct)% -> $verdict"
}

snapshot_target() {  # $1 label
    local n r p c
    read -r n r p c <<< "$(target_metrics)"
    printf '%s\tnproc=%s\trss_kb=%s\tpss_kb=%s\tcpu_s=%s\n' "$1" "$n" "$r" "$p" \
        "$(awk -v c="$c" -v hz="$HZ" 'BEGIN{printf "%.2f", c/hz}')" >> "$OUT/target-memory.tsv"
    if [ -n "$TARGET_PID" ]; then log "target $1: nproc=$n rss=${r}kB pss=${p}kB"; fi
}

# ---------- phases ----------
phase_setup() {
    gen_csvs
    snapshot_target idle-start
    start_uas uas_msg uas_message.xml "$MSG_UAS_PORT"
    sleep 0.5
    run_client setup_reg_msg_callees register.xml "$OUT/data/msg_callees.csv" 50 10 "$UAC_SETUP_PORT" \
        -key contact_host "$LOCAL_IP" -key expires 3600 -key contact_port "$MSG_UAS_PORT"
    [ "$(rv "$OUT/setup_reg_msg_callees/result.txt" successful)" = 10 ] \
        || { log "registering callees 210..219 failed; see $OUT/setup_reg_msg_callees"; exit 4; }
    run_client setup_smoke_msg uac_message.xml "$OUT/data/msgs.csv" 10 5 "$UAC_MSG_PORT"
    [ "$(rv "$OUT/setup_smoke_msg/result.txt" successful)" = 5 ] \
        || { log "smoke MESSAGEs failed; see $OUT/setup_smoke_msg"; exit 4; }
    log "setup done: 210..219 -> $LOCAL_IP:$MSG_UAS_PORT"
    snapshot_target after-setup
    sleep "$SETTLE_S"
}
reg_args=(-key contact_host "$LOCAL_IP" -key contact_port "$REG_CONTACT_PORT" -key expires 3600)
phase_regs() {
    run_client "regs_r${REG_RATE}" register.xml "$OUT/data/reg_users.csv" "$REG_RATE" "$REGS" "$UAC_REG_PORT" "${reg_args[@]}"
    add_summary "regs_r${REG_RATE}"; snapshot_target "after-regs_r${REG_RATE}"
    sleep "$SETTLE_S"
}
phase_msgs() {
    run_client "msgs_r${MSG_RATE}" uac_message.xml "$OUT/data/msgs.csv" "$MSG_RATE" "$MSGS" "$UAC_MSG_PORT"
    add_summary "msgs_r${MSG_RATE}"; snapshot_target "after-msgs_r${MSG_RATE}"
    sleep "$SETTLE_S"
}
sweep() {  # KIND RATES, named like the rig's rows: sweep_<kind>_r<rate>_n<pass>
    local kind=$1 rates=$2 r n i name
    for i in $(seq 1 "$SWEEP_REPEAT"); do
        for r in $rates; do
            n=$(( r * SWEEP_SECS )); [ "$n" -gt "$SWEEP_MAX_CALLS" ] && n=$SWEEP_MAX_CALLS
            name="sweep_${kind}_r${r}_n${i}"
            case "$kind" in
                regs) run_client "$name" register.xml "$OUT/data/reg_users.csv" "$r" "$n" "$UAC_REG_PORT" "${reg_args[@]}" ;;
                msgs) run_client "$name" uac_message.xml "$OUT/data/msgs.csv" "$r" "$n" "$UAC_MSG_PORT" ;;
            esac
            add_summary "$name"; snapshot_target "after-$name"
            sleep "$SETTLE_S"
        done
    done
}

# ---------- main ----------
{
    echo "date: $(date -Is)"; echo "proxy: $PROXY domain: $DOMAIN target_pid: $TARGET_PID"
    echo "phones: $LOCAL_IP${NETNS:+ in network namespace $NETNS}"
    echo "sipp: $SIPP ($("$SIPP" -v 2>&1 | grep -m1 SIPp || true))"; echo "nproc: $(nproc)"; uname -a
    echo "phases: ${PHASES[*]}"
    env | grep -E '^(REG_|REGS=|MSG_|MSGS=|SWEEP_|OPEN_LIMIT|SETTLE_S|SIPP_BUFF)' | sort || true
} > "$OUT/env.txt"
log "results -> $OUT"
phase_setup
for ph in "${PHASES[@]}"; do
    case "$ph" in
        regs) phase_regs ;;
        msgs) phase_msgs ;;
        regsweep) sweep regs "$REG_SWEEP_RATES" ;;
        msgsweep) sweep msgs "$MSG_SWEEP_RATES" ;;
        *) log "unknown phase $ph (this driver has no calls)"; exit 2 ;;
    esac
done
snapshot_target idle-end
cleanup
log "done: $SUMMARY"
