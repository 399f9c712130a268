#!/usr/bin/env python3
"""Ratios of coventryd's criterion benchmarks (coventryd/benches/hot_paths.rs) to
their baselines measured in the same run.

  criterion_ratios.py [CRITERION_DIR]     default: target/criterion of the repo

Reads <dir>/<group>/<bench>/new/estimates.json (mean point estimate, ns) and
prints a markdown table: time per iteration and the ratio to the baseline of
its row (parse of the same kind of request).  Absolute times are this machine's
and only indicative; the ratios are what to compare between runs.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "target", "criterion")

# (bench, what it is, baseline)
ROWS = [
    ("parse/register_auth", "parse_datagram: sipp REGISTER with Authorization", None),
    ("parse/message_auth", "parse_datagram: sipp MESSAGE with Proxy-Authorization", None),
    ("digest/challenge", "DigestAuthority::challenges (one nonce, MD5)", "parse/register_auth"),
    ("digest/verify_md5", "DigestAuthority::verify, MD5, qop=auth", "parse/register_auth"),
    ("digest/verify_sha256", "DigestAuthority::verify, SHA-256, qop=auth", "parse/register_auth"),
    ("core/register_refresh", "Switch: authenticated REGISTER re-using its nonce -> 200 (1 datagram)",
     "parse/register_auth"),
    ("core/register_challenge_auth", "Switch: REGISTER -> 401, REGISTER+auth -> 200 (2 datagrams)",
     "parse/register_auth"),
    ("core/message_challenge_auth_deliver",
     "Switch: MESSAGE -> 407, MESSAGE+auth -> relay, 200 -> 200 (3 datagrams)", "parse/message_auth"),
]


def mean_ns(root, name):
    p = os.path.join(root, *name.split("/"), "new", "estimates.json")
    try:
        with open(p) as f:
            return json.load(f)["mean"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def main(argv):
    root = argv[0] if argv else DEFAULT
    print("| benchmark | what | mean per iteration | ratio to baseline |")
    print("|---|---|---|---|")
    for name, what, base in ROWS:
        t = mean_ns(root, name)
        if t is None:
            print(f"| {name} | {what} | - | - |")
            continue
        b = mean_ns(root, base) if base else None
        ratio = f"{t / b:.2f} x {base}" if b else "baseline"
        print(f"| {name} | {what} | {t / 1000:.2f} µs | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
