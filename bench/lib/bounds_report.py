#!/usr/bin/env python3
"""bounds_report.py - bounds.md for `bench/run.sh bounds` (issue 20).

  bounds_report.py OUT/bounds CASE...     (CASE: texts | calls | teardown)

Reads what each case left in its directory (case.env, mem.txt, rss.tsv,
status-before/after.json, the flooder's flood.json, sipp's stat CSVs and
screen) and prints Markdown.  Figures only: nothing here judges them.
"""
import json
import os
import re
import sys


def env(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    out[k] = v
    except OSError:
        pass
    return out


def counters(path):
    try:
        with open(path) as f:
            return json.load(f).get("counters", {})
    except (OSError, ValueError):
        return {}


def delta(d, name):
    a, b = counters(os.path.join(d, "status-before.json")), counters(os.path.join(d, "status-after.json"))
    if name not in b:
        return None
    return b[name] - a.get(name, 0)


def mem(d):
    out = {}
    try:
        with open(os.path.join(d, "mem.txt")) as f:
            for line in f:
                p = line.split()
                if len(p) == 3:
                    out[p[0]] = (int(p[1]), int(p[2]))
    except (OSError, ValueError):
        pass
    return out


def samples(d):
    rows = []
    try:
        with open(os.path.join(d, "rss.tsv")) as f:
            next(f)
            for line in f:
                p = line.rstrip("\n").split("\t")
                if len(p) >= 3 and p[1] and p[2]:
                    calls = int(p[3]) if len(p) > 3 and p[3].strip().isdigit() else None
                    rows.append((float(p[0]), int(p[1]), int(p[2]), calls))
    except (OSError, ValueError):
        pass
    return rows


def sipp_stat(path):
    """(last row as dict, max CurrentCall) of a sipp -trace_stat CSV."""
    try:
        with open(path) as f:
            lines = [l.rstrip("\n") for l in f if l.strip()]
    except OSError:
        return {}, None
    if len(lines) < 2:
        return {}, None
    head = lines[0].split(";")
    rows = [dict(zip(head, l.split(";"))) for l in lines[1:]]
    mx = max((int(r.get("CurrentCall", "0") or 0) for r in rows), default=None)
    return rows[-1], mx


def screen_count(path, pattern):
    """First number after the message arrow on the screen line matching pattern."""
    try:
        with open(path) as f:
            for line in f:
                if re.search(pattern, line):
                    m = re.search(r"(?:<-+|-+>)\s+(?:[A-Z]-RTD\d\s+)?(\d+)", line)
                    if m:
                        return int(m.group(1))
    except OSError:
        pass
    return None


def screen_total(path, label):
    """The cumulative column of sipp's 'Successful call'/'Failed call' line."""
    val = None
    try:
        with open(path) as f:
            for line in f:
                if line.strip().startswith(label):
                    nums = re.findall(r"\d+", line)
                    if nums:
                        val = int(nums[-1])
    except OSError:
        pass
    return val


def mb(kb):
    return "?" if kb is None else f"{kb / 1024:.1f} MB"


def fmt(n):
    return "?" if n is None else f"{n:,}"


def texts(base):
    d = os.path.join(base, "texts")
    e, m, rows = env(os.path.join(d, "case.env")), mem(d), samples(d)
    try:
        with open(os.path.join(d, "flood.json")) as f:
            fl = json.load(f)
    except (OSError, ValueError):
        print("## texts: no result (see texts/flood.log)\n")
        return
    t0 = float(e.get("t0", 0))
    t_send = t0 + fl["send_secs"]
    during = [r for r in rows if t0 <= r[0] <= t_send + 0.5]
    peak = max((r[1] for r in during), default=None)
    at_end = during[-1][1] if during else None
    before, after = m.get("before", (None, None)), m.get("after", (None, None))
    print("## Memory under a one-phone MESSAGE flood")
    print()
    print(f"The phone sent {fmt(fl['sent'])} MESSAGEs in {fl['send_secs']} s ({fmt(fl['sent_per_s'])}/s, each with "
          f"credentials, no retransmissions) to a registered phone that never answers; then "
          f"{fl['drain_secs']} s more were counted (Timer F is 32 s).")
    print()
    print("| | figure |")
    print("|---|---|")
    print(f"| VmRSS before | {mb(before[0])} |")
    print(f"| VmRSS during the flood, highest of the 1 s samples | **{mb(peak)}** |")
    print(f"| VmRSS when the flood stopped | {mb(at_end)} |")
    print(f"| VmRSS after (flood + {fl['drain_secs']} s) | {mb(after[0])} |")
    print(f"| VmHWM (peak) at the end | {mb(after[1])} |")
    print(f"| 503 (Retry-After) to the phone | {fmt(fl['r503'])} |")
    print(f"| `limited` (counter, after − before) | {fmt(delta(d, 'limited'))} |")
    print(f"| texts accepted for delivery (2xx / other finals, all codes) | {fmt(fl['r2xx'])} / {json.dumps(fl['responses'])} |")
    print(f"| unanswered (dropped unread at the intake, over `source_rate` or the queue full: `shed` {fmt(delta(d, 'shed'))}) | {fmt(fl['unanswered'])} |")
    print(f"| datagrams parsed (`sip_in`) / digests checked | {fmt(delta(d, 'sip_in'))} / {fmt(delta(d, 'digests_checked'))} |")
    print(f"| texts failed (`messages_failed`) / datagrams the silent phone got | {fmt(delta(d, 'messages_failed'))} / {fmt(fl['sink_datagrams'])} |")
    print()
    if rows:
        series = " ".join(f"{r[1] / 1024:.0f}" for r in rows)
        print(f"VmRSS each second from the flood's start (MB): {series}")
        print()
    print("Issue 20, before the bound: RSS 8.8 MB → 390 MB in 20 s of the same flood.")
    print()


def calls(base, prefix="calls", variants=(("default", "8 (default)"), ("off", "0 (no bound)")),
          title="Calls held by one extension", first="max_per_line"):
    print(f"## {title}")
    print()
    print(f"| {first} | offered | 503 to the phone | `limited` | calls up at the callee, most at once | live in the state block, most (holds 128) | calls that reached the callee in all | phone's scenarios ok / failed | `shed` | VmHWM |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    held = {}
    for v, label in variants:
        d = os.path.join(base, f"{prefix}-{v}")
        if not os.path.isdir(d):
            continue
        e, m, rows = env(os.path.join(d, "case.env")), mem(d), samples(d)
        uas_last, uas_max = sipp_stat(os.path.join(d, "uas-stat.csv"))
        scr = os.path.join(d, "uac-screen.log")
        r503 = screen_count(scr, r"^\s*503 <-")
        ok, failed = screen_total(scr, "Successful call"), screen_total(scr, "Failed call")
        block = max((r[3] for r in rows if r[3] is not None), default=None)
        answered = uas_last.get("TotalCallCreated")
        held[v] = uas_max
        print(f"| {label} | {fmt(int(e.get('offered', 0)))} | {fmt(r503)} | {fmt(delta(d, 'limited'))} | **{fmt(uas_max)}** "
              f"| {fmt(block)} | {fmt(int(answered)) if answered else '?'} | {fmt(ok)} / {fmt(failed)} "
              f"| {fmt(delta(d, 'shed'))} | {mb(m.get('after', (None, None))[1])} |")
    print()
    if held.get("default") and held.get("off"):
        print(f"Without the bounds the phone held {held['off'] / held['default']:.0f}× the calls it holds with them "
              f"(same run). Issue 20, before the bound: one phone held 14,555 answered upstream calls in 15 s.")
        print()


def upstream(base):
    calls(base, "upstream", (("default", "8 / 32 (defaults)"), ("line-off", "0 / 32"), ("off", "0 / 0 (no bound)")),
          "Calls held by one extension, to the upstream (Kamailio over TCP, a sipp UAS behind it)",
          "max_per_line / max_calls")


def teardown(base):
    d = os.path.join(base, "teardown")
    e = env(os.path.join(d, "case.env"))
    if not e:
        print("## Tear-down: no result\n")
        return
    print("## Tear-down of many calls by `pbxctl hangup` (local calls, bounds off)")
    print()
    print("| | figure |")
    print("|---|---|")
    for k, label in (("calls_offered", "calls set up by the caller"),
                     ("calls_up", "calls up at the callee before the hang-up"),
                     ("caller_sipp_alive_at_hangup", "the caller's sipp still running at the hang-up"),
                     ("hangup_rc", "`pbxctl hangup` exit status"),
                     ("hangup_secs", "`pbxctl hangup` returned after (s)"),
                     ("block_empty_s", "no live call left in the state block after (s, polled every 0.2 s)"),
                     ("uac_zero_s", "**the caller's sipp done: every call's BYE answered (or failed)** after (s)"),
                     ("uas_zero_s", "the callee's sipp without calls after (s; its stat file is written each second, and it lingers 2 s after each BYE)"),
                     ("bye_200_caller", "BYEs the caller answered"),
                     ("bye_200_callee", "BYEs the callee answered"),
                     ("failed_caller", "the caller's failed calls (sipp), set-up included"),
                     ("lost_caller", "calls up without a BYE answered by the caller"),
                     ("lost_callee", "calls up without a BYE answered by the callee")):
        if k in e:
            print(f"| {label} | {e[k]} |")
    so = delta_between(d, "status-up.json", "status-after.json", "sip_out")
    si = delta_between(d, "status-up.json", "status-after.json", "sip_in")
    sh = delta_between(d, "status-up.json", "status-after.json", "shed")
    if so is not None:
        print(f"| datagrams the switch sent / read / shed at its intake during the tear-down (`sip_out` / `sip_in` / `shed`; "
              f"2 BYEs and 2 answers a call without loss) | {fmt(so)} / {fmt(si)} / {fmt(sh)} |")
    for k, label in (("kernel_drops_phones", "datagrams the kernel dropped on the two sipp sockets (/proc/net/udp)"),
                     ("kernel_drops_switch", "datagrams the kernel dropped on the switch's socket")):
        if k in e:
            print(f"| {label} | {e[k]} |")
    print()


def delta_between(d, a, b, name):
    ca, cb = counters(os.path.join(d, a)), counters(os.path.join(d, b))
    return cb[name] - ca.get(name, 0) if name in cb else None


def main():
    base = sys.argv[1]
    for c in sys.argv[2:]:
        {"texts": texts, "calls": calls, "teardown": teardown, "upstream": upstream}[c](base)


if __name__ == "__main__":
    main()
