#!/usr/bin/env python3
"""The table of `bench/run.sh netns`: the same sweeps in several shapes.

  shapes.py NAME=SUMMARY.tsv[,SUMMARY.tsv...] ...

Each NAME is a shape (lo, any, netns), its files the rounds of that shape
(drive.sh's summary.tsv).  The first shape is the base.  Rows are pooled over
rounds and repeats as compare.py pools them (counts added; CPU per operation
= total daemon CPU / total successful operations).  Prints a markdown table:
ok/failed and CPU ms per operation for each shape, and each shape's CPU per
operation over the base's (above 1: that shape costs the daemon more).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import load, num, pool  # noqa: E402


def label(key):
    kind = "REGISTER (digest)" if "regs" in key else "MESSAGE (407 + relay)"
    rate = key.rsplit("_r", 1)[-1]
    return kind, rate


def p99_rt(runs):
    v = sorted(num(r["rt1_p99_ms"], float("nan")) for r in runs)
    v = [x for x in v if x == x]
    return v[len(v) // 2] if v else float("nan")


def per_round(base_runs, runs):
    """ ` (r1 / r2 ...)`: the ratio in each round (the i-th file of each shape)."""
    out = []
    for i in sorted({r["_round"] for r in base_runs} & {r["_round"] for r in runs}):
        b = pool([r for r in base_runs if r["_round"] == i])
        p = pool([r for r in runs if r["_round"] == i])
        if b["ms_per_op"] > 0 and p["ms_per_op"] == p["ms_per_op"]:
            out.append(f"{p['ms_per_op'] / b['ms_per_op']:.2f}")
    return f" ({' / '.join(out)})" if len(out) > 1 else ""


def main():
    shapes = []
    for arg in sys.argv[1:]:
        name, _, files = arg.partition("=")
        rows, order = load(files.split(","))
        shapes.append((name, rows, order))
    if not shapes:
        sys.exit("usage: shapes.py NAME=SUMMARY[,SUMMARY...] ...")
    base_name, base_rows, order = shapes[0]
    names = [s[0] for s in shapes]
    head = ["phase", "offered/s"]
    head += [f"{n} ok/failed" for n in names]
    head += [f"{n} CPU ms/op" for n in names]
    head += [f"{n}/{base_name} (per round)" for n in names[1:]]
    head += ["p99 response ms " + " / ".join(names)]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    keys = list(order)
    for _, rows, o in shapes[1:]:
        keys += [k for k in o if k not in keys]
    for key in keys:
        kind, rate = label(key)
        pooled = [pool(rows.get(key, [])) for _, rows, _ in shapes]
        cells = [kind, rate]
        cells += [f"{p['ok']}/{p['failed']}" + ("" if p["missing"] == 0 else f" ({p['missing']} unfinished)")
                  if p else "—" for p in pooled]
        cells += [f"{p['ms_per_op']:.4f}" if p else "—" for p in pooled]
        b = pooled[0]
        for (_, rows, _), p in zip(shapes[1:], pooled[1:]):
            if p and b and b["ms_per_op"] > 0 and p["ms_per_op"] == p["ms_per_op"]:
                cells.append(f"**{p['ms_per_op'] / b['ms_per_op']:.2f}**" + per_round(base_rows.get(key, []), rows.get(key, [])))
            else:
                cells.append("—")
        cells.append(" / ".join(f"{p99_rt(rows.get(key, [])):.0f}" for _, rows, _ in shapes))
        print("| " + " | ".join(cells) + " |")
    print()
    print("Verdicts (the rig's rule): " + "; ".join(
        f"{n}: " + ", ".join(f"{label(k)[0].split()[0]} {label(k)[1]} {pool(rows[k])['verdict']}"
                             for k in keys if k in rows)
        for n, rows, _ in shapes))


if __name__ == "__main__":
    main()
