#!/usr/bin/env python3
"""Where coventryd's CPU goes: perf samples (with call chains) put into buckets.

  perf script -i perf.data -F ip,sym | perf_breakdown.py

Each sample goes to the first bucket (in the order below) one of whose markers
appears anywhere in its call chain; shares are of all samples.  Stacks are
walked with frame pointers (bench/run.sh profile builds coventryd with them);
glibc has none, so a sample whose leaf is in malloc may lose its callers and
land in "malloc/free (caller unknown)".
"""
import sys

# (bucket, markers): a marker is a substring of a symbol name, or with a
# leading "=" the whole name
BUCKETS = [
    ("persistence (registrations.json: encode, write, fsync)",
     ["persist::", "fsync", "BlockingTask"]),
    ("logging (env_logger to stderr)", ["env_logger", "log::__private_api"]),
    ("kernel: sendto (incl. loopback delivery to the peer)", ["__sys_sendto", "__libc_sendto"]),
    ("kernel: recvfrom", ["__sys_recvfrom", "__libc_recvfrom"]),
    ("waiting for work: epoll_wait, context switches, tokio park",
     ["epoll_wait", "Context::park", "=schedule", "=__schedule", "=finish_task_switch.isra.0"]),
    ("rsip: error values built on the happy path (TokenizerError::from)",
     ["TokenizerError as core::convert::From"]),
    ("rsip: tokenize + typed headers", ["rsip::"]),
    ("wire: framing/normalisation before rsip (parse_datagram)", ["parse_datagram"]),
    ("digest: verify (parse credentials, HMAC nonce, MD5)", ["DigestAuthority::verify", "parse_credentials"]),
    ("digest: challenge (nonce)", ["DigestAuthority::challenges"]),
    ("responses: Replier::new/build, reply formatting", ["reply::", "Replier"]),
    ("registrar (bindings)", ["registrar::"]),
    ("transactions (server/client maps, expiry)", ["transaction::"]),
    ("MESSAGE delivery (jobs, relay)", ["delivery::", "on_message"]),
    ("state block publishing (contacts, events, counters)", ["publish::", "stateblock::", "Publisher"]),
    ("REGISTER handling, other", ["on_register", "authenticate"]),
    ("switch core, other (on_datagram, Fields, on_tick)", ["switch::", "headers::"]),
    ("I/O loop, other (app::run, tokio)", ["app::", "tokio::"]),
    ("malloc/free (caller unknown)", ["malloc", "cfree", "_int_free", "realloc", "malloc_consolidate"]),
]


def samples(stream):
    cur = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                yield cur
                cur = []
            continue
        parts = line.strip().split(None, 1)
        cur.append(parts[1] if len(parts) > 1 else parts[0])
    if cur:
        yield cur


def main():
    counts = {b: 0 for b, _ in BUCKETS}
    other = 0
    total = 0
    for chain in samples(sys.stdin):
        total += 1
        for bucket, markers in BUCKETS:
            if any(sym == m[1:] if m.startswith("=") else m in sym
                   for sym in chain for m in markers):
                counts[bucket] += 1
                break
        else:
            other += 1
    if not total:
        print("no samples")
        return 1
    print(f"| where (first match in this order) | share of coventryd's CPU samples ({total}) |")
    print("|---|---|")
    for bucket, _ in BUCKETS:
        if counts[bucket]:
            print(f"| {bucket} | {100.0 * counts[bucket] / total:.1f} % |")
    print(f"| other | {100.0 * other / total:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
