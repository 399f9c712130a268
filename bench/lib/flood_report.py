#!/usr/bin/env python3
"""The tables of `bench/run.sh flood`, from its results directory.

  flood_report.py DIR [CASE...]

DIR/capacity/summary.tsv: drive.sh's REGISTER sweep without flood.
DIR/CASE/: case.env (key=value from run.sh), status-before.json and
status-after.json (`pbxctl status --json`), flood.json (flood.py), phone.json
(phone.py).  Prints markdown: the capacity, the switch side of each case
(flood sent, kernel drops on the switch's socket, shed, CPU), and the phones'
latencies per operation.
"""
import csv
import json
import math
import os
import sys


def read_env(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                out[k] = v
    except OSError:
        pass
    return out


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def num(v, default=float("nan")):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def fmt(v, spec=".1f"):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def cval(v):
    return "?" if v is None else str(v)


def counter(before, after, name):
    """Delta of a counter of `pbxctl status --json`, or None when it is not published."""
    a = (after.get("counters") or {}).get(name)
    b = (before.get("counters") or {}).get(name, 0)
    return None if a is None else a - b


def capacity(path):
    rows = []
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f, delimiter="\t") if r["test"].startswith("sweep_regs")]
    except OSError:
        return
    print("## REGISTER capacity, no flood (drive.sh regsweep, same run)")
    print()
    print("| offered/s | ok/failed | achieved/s | daemon CPU ms/op | REGISTER per daemon CPU second | median / p99 ms | verdict |")
    print("|---|---|---|---|---|---|---|")
    best = None
    for r in rows:
        ms = num(r["target_cpu_ms_per_op"])
        per_cpu = 1000.0 / ms if ms and ms > 0 else float("nan")
        print(f"| {r['offered_per_s']} | {r['successful']}/{r['failed']} | {r['achieved_per_s']} | "
              f"{r['target_cpu_ms_per_op']} | {fmt(per_cpu, '.0f')} | {r['rt1_median_ms']} / {r['rt1_p99_ms']} | "
              f"{r['verdict']} |")
        if r["verdict"] in ("ok", "ok-with-loss") and num(r["failed"], 1) == 0:
            a = num(r["achieved_per_s"])
            if best is None or a > best[0]:
                best = (a, per_cpu, r["offered_per_s"])
    print()
    if best:
        print(f"Clean up to {best[2]}/s offered (achieved {best[0]:.0f}/s), the highest rate tried without "
              f"failures; at that rate one CPU second of the daemon handles {best[1]:.0f} REGISTERs "
              "(challenge and answer).")
    else:
        print("No rate of the sweep was clean.")
    print()


def main():
    d = sys.argv[1]
    cases = sys.argv[2:] or sorted(x for x in os.listdir(d) if os.path.isfile(os.path.join(d, x, "case.env")))
    capacity(os.path.join(d, "capacity", "summary.tsv"))

    print("## The switch under each flood")
    print()
    print("| case | sources | flood sent/s (asked) | kernel drops, /proc | kernel_drops counter | shed | sip_in | "
          "sip_in/s | daemon CPU % of a core | daemon alive |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    data = []
    for c in cases:
        p = os.path.join(d, c)
        env = read_env(os.path.join(p, "case.env"))
        if not env:
            continue
        before = read_json(os.path.join(p, "status-before.json"))
        after = read_json(os.path.join(p, "status-after.json"))
        fl = read_json(os.path.join(p, "flood.json"))
        ph = read_json(os.path.join(p, "phone.json"))
        data.append((c, ph))
        secs = num(env.get("secs"))
        cpu = num(env.get("daemon_cpu_s"))
        src = env.get("sources") or "—"
        nsrc = fl.get("sources")
        if fl:
            asked = "unpaced" if int(fl.get("rate_asked", 0)) == 0 else str(fl.get("rate_asked"))
            sent = f"{fl.get('rate_sent', 0):.0f} ({asked})"
        else:
            sent = "—"
        kd = counter(before, after, "kernel_drops")
        print(f"| {c} | {src}{f' ({nsrc})' if nsrc and nsrc > 1 else ''} | {sent} | {env.get('kernel_drops_proc', '?')} | "
              f"{'not published' if kd is None else kd} | {cval(counter(before, after, 'shed'))} | "
              f"{cval(counter(before, after, 'sip_in'))} | "
              f"{fmt(num(counter(before, after, 'sip_in')) / secs if secs > 0 else float('nan'), '.0f')} | "
              f"{fmt(100.0 * cpu / secs if secs > 0 else float('nan'), '.0f')} | {env.get('daemon_alive', '?')} |")
    print()
    print("kernel drops: the `drops` column of /proc/net/udp for the switch's port, from the flood's")
    print("start to its end (the daemon is fresh per case); shed and sip_in: `pbxctl status --json` counters,")
    print("after minus before; sip_in/s and CPU over the flood's length (the phones' window plus the lead).")
    print()

    print("## The phones under each flood (ms from an operation's first datagram to its final response)")
    print()
    ops = ("register", "call", "bye", "message")
    print("| case | rounds | ok/failed | phone retransmissions | "
          + " | ".join(f"{o} median / p95 / p99" for o in ops) + " | all median / p95 / p99 | failures |")
    print("|---|---|---|---|" + "---|" * len(ops) + "---|---|")
    for c, ph in data:
        if not ph:
            print(f"| {c} | — | phone.py wrote no results | | " + " | " * len(ops) + " |")
            continue
        a = ph.get("all", {})
        cells = []
        whys = []
        for o in ops:
            s = ph.get("ops", {}).get(o, {})
            cells.append(f"{fmt(s.get('median_ms'))} / {fmt(s.get('p95_ms'))} / {fmt(s.get('p99_ms'))}")
            for f in s.get("failures", []):
                whys.append(f"{o}: {f['why']}")
        rc = ph.get("ops", {}).get("register_callee", {})
        for f in rc.get("failures", []):
            whys.append(f"callee register: {f['why']}")
        summary = {}
        for w in whys:
            summary[w] = summary.get(w, 0) + 1
        why = "; ".join(f"{k} ×{v}" for k, v in summary.items()) or "none"
        print(f"| {c} | {ph.get('rounds')} | {a.get('ok')}/{a.get('failed')} | {ph.get('retransmissions')} | "
              + " | ".join(cells)
              + f" | {fmt(a.get('median_ms'))} / {fmt(a.get('p95_ms'))} / {fmt(a.get('p99_ms'))} | {why} |")
    print()


if __name__ == "__main__":
    main()
