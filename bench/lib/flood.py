#!/usr/bin/env python3
"""flood.py - a flood of new SIP transactions for `bench/run.sh flood`.

The mix of tests/tests/flood.rs `mixed()`, one request in three of each, every
one a new transaction (new branch, tag and Call-ID): OPTIONS to the switch; a
REGISTER for CALLER with a wrong digest answer (unknown nonce, response of
zeros); an INVITE to CALLEE without credentials.

  flood.py --target 127.0.0.1:5160 --from 127.0.0.2 --rate 40000 --secs 60 [--stats FILE]
  flood.py --target ... --from 127.0.0.10-127.0.0.250 --rate 40000 ...

--from: one loopback address, or a range whose addresses take turns (one
socket each: every source sends rate / N a second).  --rate 0: unpaced, as
fast as this process can send.  Paced in 1 ms steps.  Stops after --secs or
on SIGTERM/SIGINT and prints (and writes to --stats) what it sent.  The
switch's answers are not read: each socket's receive buffer is kept small
and the kernel drops them there, which costs the sender nothing.
"""
import argparse
import ipaddress
import json
import os
import signal
import socket
import sys
import time

stop = False


def on_signal(_sig, _frm):
    global stop
    stop = True


def sources(spec):
    if "-" in spec:
        a, b = (ipaddress.IPv4Address(x) for x in spec.split("-", 1))
        return [str(ipaddress.IPv4Address(i)) for i in range(int(a), int(b) + 1)]
    return [spec]


def templates(local, server, caller, callee, realm, tag):
    """The three requests of mixed() as %-templates over the request number."""
    common = ("Via: SIP/2.0/UDP {local};branch=z9hG4bKflood{tag}x%(n)d;rport\r\n"
              "Max-Forwards: 70\r\nFrom: <sip:{caller}@{server}>;tag=f{tag}x%(n)d\r\n"
              "To: <sip:{to}@{server}>\r\nCall-ID: flood-{tag}-%(n)d\r\nCSeq: 1 {method}\r\n")
    out = []
    for method, uri, to, extra in (
        ("OPTIONS", f"sip:{server}", caller, ""),
        ("REGISTER", f"sip:{server}", caller,
         f"Contact: <sip:{caller}@{local}>\r\nAuthorization: Digest username=\"{caller}\", "
         f"realm=\"{realm}\", nonce=\"x{tag}x%(n)d\", uri=\"sip:{server}\", "
         "response=\"00000000000000000000000000000000\", algorithm=MD5\r\n"),
        ("INVITE", f"sip:{callee}@{server}", callee, f"Contact: <sip:{caller}@{local}>\r\n"),
    ):
        head = f"{method} {uri} SIP/2.0\r\n" + common.format(
            local=local, tag=tag, caller=caller, server=server, to=to, method=method)
        out.append((head + extra + "Content-Length: 0\r\n\r\n").encode())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--from", dest="src", required=True)
    ap.add_argument("--rate", type=int, default=40000, help="datagrams/s in all; 0: unpaced")
    ap.add_argument("--secs", type=float, default=60.0, help="hard cap on the flood's length")
    ap.add_argument("--caller", default="121")
    ap.add_argument("--callee", default="122")
    ap.add_argument("--realm", default="bench")
    ap.add_argument("--stats")
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    dest = (host, int(port))
    srcs = sources(a.src)
    for s in srcs + [host]:
        if not s.startswith("127."):
            sys.exit(f"flood.py: {s} is not a loopback address")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tag = f"{os.getpid():x}"
    plan = []  # (socket, [three templates])
    for ip in srcs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((ip, 0))
        local = "%s:%d" % s.getsockname()
        plan.append((s, templates(local, a.target, a.caller, a.callee, a.realm, tag)))
    k = len(plan)
    # the order of sends: source i sends request kind (n % 3) of its own
    sends = [(plan[i % k][0].sendto, plan[i % k][1][i % 3]) for i in range(3 * k)]
    period = len(sends)

    n = errors = 0
    began = time.monotonic()
    end = began + a.secs
    rate = a.rate
    while not stop:
        t = time.monotonic()
        if t >= end:
            break
        if rate > 0:
            due = int((t - began) * rate)
            if n >= due:
                time.sleep(0.001)
                continue
            burst = min(due - n, 2000)
        else:
            burst = 512
        for _ in range(burst):
            send, tmpl = sends[n % period]
            try:
                send(tmpl % {b"n": n}, dest)
            except OSError:
                errors += 1
            n += 1
    took = time.monotonic() - began
    st = {"sources": k, "first_source": srcs[0], "last_source": srcs[-1], "rate_asked": rate,
          "sent": n - errors, "send_errors": errors, "secs": round(took, 3),
          "rate_sent": round((n - errors) / took, 1) if took > 0 else 0}
    print(" ".join(f"{key}={val}" for key, val in st.items()))
    if a.stats:
        with open(a.stats, "w") as f:
            json.dump(st, f)
            f.write("\n")


if __name__ == "__main__":
    main()
