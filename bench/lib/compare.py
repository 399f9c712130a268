#!/usr/bin/env python3
"""Compare coventryd with Kamailio, row by row, from two bench summaries.

  compare.py --cov SUMMARY.tsv... [--kam SUMMARY.tsv...] [--goal 1.5]

All files have the rig's summary.tsv columns (bench/lib/drive.sh writes the
same ones as the rig's bench.sh); several per target are rounds of the same
run.  Rows are matched by test name with the repeat marker (_nN) removed;
repeats and rounds are pooled: counts are added, CPU per operation is total
target CPU seconds / total successful operations.

Prints a markdown table: phase, offered rate, ok/failed for each target, CPU ms
per operation for each, and ratio = Kamailio CPU per op / coventryd CPU per op
(>1: coventryd does more work per CPU second).  A row meets the goal when both
targets ran with zero failures and the ratio is at least --goal.
"""
import csv
import re
import sys


def load(paths):
    rows = {}
    order = []
    for idx, path in enumerate(paths):
        with open(path, newline="") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                r["_round"] = idx
                name = r["test"]
                if not name.startswith(("sweep_regs", "sweep_msgs", "regs_", "msgs_")):
                    continue
                key = re.sub(r"_n\d+$", "", name)
                if key not in rows:
                    rows[key] = []
                    order.append(key)
                rows[key].append(r)
    return rows, order


def num(v, default=0.0):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def pool(runs):
    """Pooled figures of the repeats of one test."""
    if not runs:
        return None
    ok = sum(int(num(r["successful"])) for r in runs)
    failed = sum(int(num(r["failed"])) for r in runs)
    count = sum(int(num(r["count"])) for r in runs)
    cpu = sum(num(r["target_cpu_s"]) for r in runs)
    retrans = sum(int(num(r["retrans"])) for r in runs)
    ach = [num(r["achieved_per_s"], float("nan")) for r in runs]
    verdicts = sorted({r["verdict"] for r in runs})
    return {
        "ok": ok,
        "failed": failed,
        "missing": count - ok - failed,
        "count": count,
        "cpu_s": cpu,
        "ms_per_op": 1000.0 * cpu / ok if ok else float("nan"),
        "retrans": retrans,
        "achieved": min(ach) if ach else float("nan"),
        "verdict": "/".join(verdicts),
        "runs": len(runs),
    }


def per_round(c_runs, k_runs):
    """Ratio per round (pairing the i-th summary of each target)."""
    out = []
    rounds = sorted({r["_round"] for r in c_runs} & {r["_round"] for r in k_runs})
    for i in rounds:
        c = pool([r for r in c_runs if r["_round"] == i])
        k = pool([r for r in k_runs if r["_round"] == i])
        if c["ms_per_op"] > 0 and k["ms_per_op"] == k["ms_per_op"]:
            out.append(f"{k['ms_per_op'] / c['ms_per_op']:.2f}")
    return " / ".join(out) if out else "-"


def phase_rate(key):
    m = re.match(r"(?:sweep_)?(regs|msgs)_r(\d+)", key)
    if not m:
        return key, ""
    kind = {"regs": "REGISTER (digest)", "msgs": "MESSAGE (407 + relay)"}[m.group(1)]
    return kind, m.group(2)


def okfail(p):
    if p is None:
        return "-"
    s = f"{p['ok']}/{p['failed']}"
    if p["missing"] > 0:
        s += f" (+{p['missing']} unfinished)"
    return s


def ms(p):
    if p is None or p["ms_per_op"] != p["ms_per_op"]:
        return "-"
    return f"{p['ms_per_op']:.4f}"


def main(argv):
    goal = 1.5
    files = {"--cov": [], "--kam": []}
    cur = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--goal":
            goal = float(argv[i + 1])
            i += 2
            continue
        if a in files:
            cur = a
        elif cur is None:
            print(__doc__, file=sys.stderr)
            return 2
        else:
            files[cur].append(a)
        i += 1
    if not files["--cov"]:
        print(__doc__, file=sys.stderr)
        return 2
    cov, order = load(files["--cov"])
    kam, korder = load(files["--kam"])
    for k in korder:
        if k not in cov:
            order.append(k)

    print("| phase | offered/s | coventryd ok/failed | Kamailio ok/failed "
          "| coventryd CPU ms/op | Kamailio CPU ms/op | ratio Kam/cov | per round | verdict (cov; kam) | goal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    met = total = 0
    for key in order:
        c = pool(cov.get(key, []))
        k = pool(kam.get(key, []))
        ratio = float("nan")
        if c and k and c["ms_per_op"] > 0 and k["ms_per_op"] == k["ms_per_op"]:
            ratio = k["ms_per_op"] / c["ms_per_op"]
        clean = (c is not None and k is not None and c["failed"] == 0 and k["failed"] == 0
                 and c["missing"] == 0 and k["missing"] == 0)
        if ratio == ratio:
            total += 1
            ok = clean and ratio >= goal
            met += ok
            g = "yes" if ok else ("no (failures)" if not clean else "no")
        else:
            g = "-"
        phase, rate = phase_rate(key)
        print(f"| {phase} | {rate} | {okfail(c)} | {okfail(k)} | {ms(c)} | {ms(k)} "
              f"| {'-' if ratio != ratio else f'{ratio:.2f}'} "
              f"| {per_round(cov.get(key, []), kam.get(key, []))} "
              f"| {c['verdict'] if c else '-'}; {k['verdict'] if k else '-'} | {g} |")
    print()
    print(f"ratio = Kamailio CPU per operation / coventryd CPU per operation, same load, same session; "
          f"goal >= {goal} with zero failures: met in {met} of {total} rows.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
