#!/usr/bin/env python3
"""phone.py - two legitimate phones for `bench/run.sh flood`, timed.

A caller and a callee, each on its own UDP socket and address, driven by one
single-threaded event loop so that both keep their timers while either waits:

  - the callee registers once (and again whenever that failed);
  - then, until --secs have passed, the caller repeats: REGISTER (401, again
    with MD5 digest, 200), a call to the callee (INVITE, 407, ACK, INVITE with
    Proxy-Authorization, the callee answers 200 with SDP, ACK along the
    Record-Route), BYE (200), a text (MESSAGE, 407, MESSAGE with credentials,
    relayed to the callee, which answers 200, then 200), and a pause.

The phones behave as RFC 3261 asks of a UA on UDP, so that a lost datagram
costs time, not the operation:
  - client transactions retransmit on their own: non-INVITE from T1 = 500 ms
    doubling up to T2 = 4 s (Timer E; every T2 once a provisional came),
    INVITE from T1 doubling until a response arrives (Timer A); a transaction
    gives up after 64*T1 = 32 s (Timers B and F): a failure;
  - a non-2xx final to an INVITE is ACKed every time it arrives (Timer D);
    a retransmitted 2xx gets the ACK again;
  - the callee resends its 2xx from T1 doubling up to T2 until the ACK comes
    (RFC 3261 13.3.1.4), and answers a retransmitted request with the same
    response (server transactions kept 32 s).

Timed per operation, from its first datagram to its final response (a
challenge's round trip included): register, call (to the 200), bye, message.
Prints key=value lines (for bench/run.sh) and writes every sample to --out.

  phone.py --switch 127.0.0.1:5160 --caller 121@127.0.0.3 --callee 122@127.0.0.4 \
           --password-prefix pw --secs 15 [--pause-ms 200] [--out phone.json]
"""
import argparse
import hashlib
import json
import math
import os
import re
import select
import socket
import sys
import time

T1, T2 = 0.5, 4.0
TXN_TIMEOUT = 64 * T1  # Timers B and F
KEEP_SERVER_TXN = 32.0

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
           "l": "content-length", "c": "content-type", "k": "supported",
           "s": "subject", "e": "content-encoding"}


def now():
    return time.monotonic()


_seq = [0]


def unique(prefix):
    _seq[0] += 1
    return f"{prefix}{os.getpid():x}{int(time.time() * 1e6) & 0xffffff:x}{_seq[0]:x}"


def split_list(value):
    """Split a header value at commas outside <...> and quotes."""
    out, cur, depth, quoted = [], [], 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def params(s):
    """k=v, k="v" pairs of an auth header (after the scheme)."""
    return {k.lower(): (v1 if v1 else v2) for k, v1, v2 in
            re.findall(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', s)}


class Msg:
    def __init__(self, raw):
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("no end of headers")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + line.strip())
                continue
            n, _, v = line.partition(":")
            n = n.strip().lower()
            self.headers.append((COMPACT.get(n, n), v.strip()))
        self.body = body
        parts = self.start.split(" ", 2)
        if parts[0] == "SIP/2.0":
            self.status, self.method, self.uri = int(parts[1]), None, None
        else:
            self.status, self.method, self.uri = None, parts[0], parts[1] if len(parts) > 1 else ""

    def get(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def values(self, name):
        out = []
        for n, v in self.headers:
            if n == name:
                out.extend(split_list(v))
        return out

    def cseq(self):
        v = (self.get("cseq") or "0 X").split()
        return int(v[0]), v[1].upper() if len(v) > 1 else ""

    def branch(self):
        vias = self.values("via")
        m = re.search(r";\s*branch=([^;,\s]+)", vias[0]) if vias else None
        return m.group(1) if m else ""

    def call_id(self):
        return self.get("call-id") or ""


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def uri_of(nameaddr):
    m = re.search(r"<([^>]*)>", nameaddr)
    return m.group(1) if m else nameaddr.split(";")[0].strip()


def tag_of(v):
    m = re.search(r";\s*tag=([^;>\s]+)", v or "")
    return m.group(1) if m else ""


class ClientTxn:
    def __init__(self, ua, data, invite):
        self.ua, self.data, self.invite = ua, data, invite
        t = now()
        self.started = t
        self.interval = T1
        self.next = t + T1
        self.deadline = t + TXN_TIMEOUT
        self.provisional = False
        self.final = None
        self.timed_out = False
        self.retrans = 0

    def done(self):
        return self.final is not None or self.timed_out


class UA:
    def __init__(self, user, ip, password):
        self.user, self.password = user, password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((ip, 0))
        self.sock.setblocking(False)
        self.ip, self.port = self.sock.getsockname()
        self.reg_call_id = unique("reg-")
        self.reg_cseq = 0

    def contact(self):
        return f"<sip:{self.user}@{self.ip}:{self.port}>"


class Engine:
    def __init__(self, switch):
        host, port = switch.rsplit(":", 1)
        self.switch = (host, int(port))
        self.domain = switch
        self.uas = []
        self.txns = {}          # (branch, method) -> ClientTxn (live and completed, Timer D/K)
        self.acks = {}          # (call-id, cseq) -> (ua, ACK bytes) for retransmitted 2xx
        self.server = {}        # (ua port, branch, method) -> (response bytes, dest, expires)
        self.pending_2xx = {}   # call-id -> [ua, bytes, dest, next, interval, deadline]
        self.retrans_sent = 0
        self.answers_resent = 0
        self.unparsed = 0

    def add(self, ua):
        self.uas.append(ua)
        return ua

    def send(self, ua, data, dest=None):
        try:
            ua.sock.sendto(data, dest or self.switch)
        except (BlockingIOError, InterruptedError):
            pass  # like a lost datagram: the timers resend

    # ----- building -----
    def request(self, ua, method, ruri, branch, from_, to, call_id, cseq, extra=(), body=b"", ctype=None):
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {ua.ip}:{ua.port};branch={branch};rport",
                 "Max-Forwards: 70", f"From: {from_}", f"To: {to}",
                 f"Call-ID: {call_id}", f"CSeq: {cseq} {method}"]
        lines += list(extra)
        lines.append("User-Agent: coventry-bench-phone")
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def response(self, ua, req, status, reason, to_tag=None, extra=(), body=b"", ctype=None):
        lines = [f"SIP/2.0 {status} {reason}"]
        for n, v in req.headers:
            if n == "via":
                lines.append(f"Via: {v}")
        to = req.get("to") or ""
        if to_tag and not tag_of(to):
            to = f"{to};tag={to_tag}"
        lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id()}",
                  f"CSeq: {req.get('cseq')}"]
        lines += list(extra)
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    # ----- client transactions -----
    def start_txn(self, ua, data, method, branch):
        t = ClientTxn(ua, data, method == "INVITE")
        self.txns[(branch, method)] = t
        self.send(ua, data)
        return t

    def transact(self, ua, data, method, branch):
        t = self.start_txn(ua, data, method, branch)
        self.wait(t.done)
        return t

    def timers(self, t):
        nxt = t + 1.0
        for key, x in list(self.txns.items()):
            if x.final is not None or x.timed_out:
                # completed: kept for Timer D/K (re-ACK a retransmitted final), then gone
                if t - x.started > TXN_TIMEOUT + 5:
                    del self.txns[key]
                continue
            if t >= x.deadline:
                x.timed_out = True
                continue
            if t >= x.next:
                if not (x.invite and x.provisional):
                    self.send(x.ua, x.data)
                    x.retrans += 1
                    self.retrans_sent += 1
                    if x.invite:
                        x.interval *= 2
                    else:
                        x.interval = T2 if x.provisional else min(x.interval * 2, T2)
                x.next = t + x.interval
            nxt = min(nxt, x.next, x.deadline)
        for cid, p in list(self.pending_2xx.items()):
            ua, data, dest, at, interval, deadline = p
            if t >= deadline:
                del self.pending_2xx[cid]
                continue
            if t >= at:
                self.send(ua, data, dest)
                self.answers_resent += 1
                interval = min(interval * 2, T2)
                p[3], p[4] = t + interval, interval
            nxt = min(nxt, p[3])
        for key in [k for k, v in self.server.items() if v[2] < t]:
            del self.server[key]
        return nxt

    def wait(self, pred, deadline=None):
        """Run the phones until pred() holds (or until deadline, if given)."""
        socks = {ua.sock: ua for ua in self.uas}
        while True:
            if pred():
                return True
            t = now()
            if deadline is not None and t >= deadline:
                return False
            nxt = self.timers(t)
            if pred():
                return True
            if deadline is not None:
                nxt = min(nxt, deadline)
            r, _, _ = select.select(list(socks), [], [], max(0.0, nxt - now()))
            for s in r:
                ua = socks[s]
                while True:
                    try:
                        data, src = s.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    try:
                        m = Msg(data)
                    except (ValueError, IndexError):
                        self.unparsed += 1
                        continue
                    if m.status is not None:
                        self.on_response(ua, m)
                    else:
                        self.on_request(ua, m, src)

    def on_response(self, ua, m):
        num, method = m.cseq()
        x = self.txns.get((m.branch(), method))
        if method == "INVITE" and m.status >= 200 and m.status < 300:
            a = self.acks.get((m.call_id(), num))
            if a:  # a retransmitted 2xx: ACK again
                self.send(a[0], a[1])
        if x is None:
            return
        if m.status < 200:
            if x.final is None and not x.timed_out:
                x.provisional = True
                if not x.invite:
                    x.interval = T2
            return
        if x.invite and m.status >= 300:  # ACK every non-2xx final (same branch)
            self.send(ua, self.ack_non2xx(ua, x.data, m))
        if x.final is None and not x.timed_out:
            x.final = m
            x.finished = now()

    def ack_non2xx(self, ua, invite_bytes, resp):
        inv = Msg(invite_bytes)
        num, _ = inv.cseq()
        return self.request(ua, "ACK", inv.uri, inv.branch(), inv.get("from"), resp.get("to"),
                            inv.call_id(), num)

    def on_request(self, ua, m, src):
        if m.method == "ACK":
            self.pending_2xx.pop(m.call_id(), None)
            return
        key = (ua.port, m.branch(), m.method)
        kept = self.server.get(key)
        if kept:  # a retransmitted request: the same answer again
            self.send(ua, kept[0], src)
            self.answers_resent += 1
            return
        if m.method == "INVITE":
            sdp = (f"v=0\r\no=bench-{ua.user} 1 1 IN IP4 {ua.ip}\r\ns=bench\r\nc=IN IP4 {ua.ip}\r\n"
                   "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n").encode()
            extra = [f"Record-Route: {rr}" for rr in m.values("record-route")]
            extra.append(f"Contact: {ua.contact()}")
            data = self.response(ua, m, 200, "OK", to_tag=unique("tt"), extra=extra,
                                 body=sdp, ctype="application/sdp")
            t = now()
            self.pending_2xx[m.call_id()] = [ua, data, src, t + T1, T1, t + TXN_TIMEOUT]
        else:  # BYE, MESSAGE, OPTIONS, NOTIFY, CANCEL...
            data = self.response(ua, m, 200, "OK", to_tag=unique("tt"))
        self.server[key] = (data, src, now() + KEEP_SERVER_TXN)
        self.send(ua, data, src)

    # ----- digest -----
    def credentials(self, ua, resp, method, uri):
        hname = "proxy-authenticate" if resp.status == 407 else "www-authenticate"
        for v in [v for n, v in resp.headers if n == hname]:  # one challenge per header line
            scheme, _, rest = v.strip().partition(" ")
            if scheme.lower() != "digest":
                continue
            p = params(rest)
            alg = p.get("algorithm", "MD5")
            if alg.upper() != "MD5":
                continue
            realm, nonce = p.get("realm", ""), p.get("nonce", "")
            ha1 = md5(f"{ua.user}:{realm}:{ua.password}")
            ha2 = md5(f"{method}:{uri}")
            qops = [q.strip() for q in p.get("qop", "").split(",")]
            s = f'Digest username="{ua.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            if "auth" in qops:
                cnonce, nc = unique("cn"), "00000001"
                r = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
                s += f'response="{r}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
            else:
                s += f'response="{md5(f"{ha1}:{nonce}:{ha2}")}", algorithm=MD5'
            if "opaque" in p:
                s += f', opaque="{p["opaque"]}"'
            name = "Proxy-Authorization" if resp.status == 407 else "Authorization"
            return f"{name}: {s}"
        return None

    # ----- operations: (ok, reason, retransmissions) -----
    def register(self, ua, expires):
        ruri = f"sip:{self.domain}"
        aor = f"<sip:{ua.user}@{self.domain}>"
        auth, retr = [], 0
        for attempt in range(2):
            ua.reg_cseq += 1
            branch = unique("z9hG4bK")
            data = self.request(ua, "REGISTER", ruri, branch, f"{aor};tag={unique('rt')}", aor,
                                ua.reg_call_id, ua.reg_cseq,
                                [f"Contact: {ua.contact()}", f"Expires: {expires}"] + auth)
            x = self.transact(ua, data, "REGISTER", branch)
            retr += x.retrans
            if x.timed_out:
                return False, "timeout", retr
            if x.final.status in (401, 407) and attempt == 0:
                c = self.credentials(ua, x.final, "REGISTER", ruri)
                if not c:
                    return False, f"{x.final.status} without an MD5 challenge", retr
                auth = [c]
                continue
            if x.final.status == 200:
                return True, "", retr
            return False, f"status {x.final.status}", retr
        return False, "challenged twice", retr

    def call(self, ua, target):
        ruri = f"sip:{target}@{self.domain}"
        from_ = f"<sip:{ua.user}@{self.domain}>;tag={unique('ft')}"
        to = f"<sip:{target}@{self.domain}>"
        cid = unique("call-")
        sdp = (f"v=0\r\no=bench-{ua.user} 1 1 IN IP4 {ua.ip}\r\ns=bench\r\nc=IN IP4 {ua.ip}\r\n"
               "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n").encode()
        auth, retr = [], 0
        for cseq in (1, 2):
            branch = unique("z9hG4bK")
            data = self.request(ua, "INVITE", ruri, branch, from_, to, cid, cseq,
                                [f"Contact: {ua.contact()}"] + auth, sdp, "application/sdp")
            x = self.transact(ua, data, "INVITE", branch)
            retr += x.retrans
            if x.timed_out:
                return False, "timeout", retr, None
            st = x.final.status
            if st == 407 and cseq == 1:
                c = self.credentials(ua, x.final, "INVITE", ruri)
                if not c:
                    return False, "407 without an MD5 challenge", retr, None
                auth = [c]
                continue
            if 200 <= st < 300:
                r = x.final
                route = r.values("record-route")
                route.reverse()
                contacts = r.values("contact")
                d = {"ua": ua, "call_id": cid, "from": from_, "to": r.get("to"),
                     "target": uri_of(contacts[0]) if contacts else ruri,
                     "route": route, "cseq": cseq}
                ack = self.in_dialog(d, "ACK", cseq, unique("z9hG4bK"))
                self.acks[(cid, cseq)] = (ua, ack)
                self.send(ua, ack)
                return True, "", retr, d
            return False, f"status {st}", retr, None
        return False, "challenged twice", retr, None

    def in_dialog(self, d, method, cseq, branch):
        extra = [f"Route: {r}" for r in d["route"]]
        return self.request(d["ua"], method, d["target"], branch, d["from"], d["to"],
                            d["call_id"], cseq, extra)

    def bye(self, d):
        cseq = d["cseq"] + 1
        branch = unique("z9hG4bK")
        x = self.transact(d["ua"], self.in_dialog(d, "BYE", cseq, branch), "BYE", branch)
        for k in [k for k in self.acks if k[0] == d["call_id"]]:
            del self.acks[k]
        if x.timed_out:
            return False, "timeout", x.retrans
        if 200 <= x.final.status < 300:
            return True, "", x.retrans
        return False, f"status {x.final.status}", x.retrans

    def message(self, ua, target, text):
        ruri = f"sip:{target}@{self.domain}"
        from_ = f"<sip:{ua.user}@{self.domain}>;tag={unique('mt')}"
        to = f"<sip:{target}@{self.domain}>"
        cid = unique("msg-")
        auth, retr = [], 0
        for cseq in (1, 2):
            branch = unique("z9hG4bK")
            data = self.request(ua, "MESSAGE", ruri, branch, from_, to, cid, cseq, auth,
                                text.encode(), "text/plain")
            x = self.transact(ua, data, "MESSAGE", branch)
            retr += x.retrans
            if x.timed_out:
                return False, "timeout", retr
            st = x.final.status
            if st == 407 and cseq == 1:
                c = self.credentials(ua, x.final, "MESSAGE", ruri)
                if not c:
                    return False, "407 without an MD5 challenge", retr
                auth = [c]
                continue
            if 200 <= st < 300:
                return True, "", retr
            return False, f"status {st}", retr
        return False, "challenged twice", retr


def pct(vals, p):
    if not vals:
        return float("nan")
    k = (len(vals) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--switch", required=True, help="HOST:PORT of the switch")
    ap.add_argument("--caller", required=True, help="EXT@IP")
    ap.add_argument("--callee", required=True, help="EXT@IP")
    ap.add_argument("--password-prefix", default="pw", help="secret of EXT is PREFIX+EXT")
    ap.add_argument("--secs", type=float, default=15.0, help="start no new round after this")
    ap.add_argument("--pause-ms", type=float, default=200.0, help="pause between rounds")
    ap.add_argument("--max-rounds", type=int, default=10000)
    ap.add_argument("--out", help="JSON file for every sample")
    a = ap.parse_args()

    for v in (a.switch.rsplit(":", 1)[0],) + tuple(x.split("@")[1] for x in (a.caller, a.callee)):
        if not v.startswith("127.") and not os.environ.get("PHONE_ALLOW_NONLOOPBACK"):
            sys.exit(f"phone.py: {v} is not a loopback address")
    e = Engine(a.switch)
    cu, ci = a.caller.split("@")
    bu, bi = a.callee.split("@")
    caller = e.add(UA(cu, ci, a.password_prefix + cu))
    callee = e.add(UA(bu, bi, a.password_prefix + bu))

    samples = {k: [] for k in ("register_callee", "register", "call", "bye", "message")}
    failures = {k: [] for k in samples}

    def timed(name, fn, *args):
        t0 = now()
        res = fn(*args)
        ms = (now() - t0) * 1000.0
        ok, why = res[0], res[1]
        if ok:
            samples[name].append(round(ms, 3))
        else:
            failures[name].append({"after_ms": round(ms, 1), "why": why})
        return res

    began = now()
    callee_ok = False
    rounds = 0
    while now() - began < a.secs and rounds < a.max_rounds:
        rounds += 1
        if not callee_ok:
            callee_ok = timed("register_callee", e.register, callee, 3600)[0]
        timed("register", e.register, caller, 300)
        r = timed("call", e.call, caller, bu)
        if r[0]:
            timed("bye", e.bye, r[3])
        timed("message", e.message, caller, bu, f"bench round {rounds}")
        e.wait(lambda: False, now() + a.pause_ms / 1000.0)
    # let the callee finish what is in flight (a 2xx waiting for its ACK)
    e.wait(lambda: not e.pending_2xx, now() + 2.0)
    took = now() - began

    out = {"rounds": rounds, "secs": round(took, 2), "retransmissions": e.retrans_sent,
           "answers_resent": e.answers_resent, "unparsed": e.unparsed, "ops": {}}
    print(f"rounds={rounds}")
    print(f"secs={took:.2f}")
    print(f"retransmissions={e.retrans_sent}")
    print(f"answers_resent={e.answers_resent}")
    allv, allf = [], 0
    for k in samples:
        v = sorted(samples[k])
        allv += v
        allf += len(failures[k])
        st = {"ok": len(v), "failed": len(failures[k]), "median_ms": pct(v, 50),
              "p95_ms": pct(v, 95), "p99_ms": pct(v, 99), "max_ms": v[-1] if v else float("nan"),
              "failures": failures[k], "samples_ms": samples[k]}
        out["ops"][k] = st
        print(f"{k}: ok={st['ok']} failed={st['failed']} median={st['median_ms']:.1f}ms "
              f"p95={st['p95_ms']:.1f}ms p99={st['p99_ms']:.1f}ms max={st['max_ms']:.1f}ms"
              + (f" why={sorted({f['why'] for f in failures[k]})}" if failures[k] else ""))
    allv.sort()
    out["all"] = {"ok": len(allv), "failed": allf, "median_ms": pct(allv, 50),
                  "p95_ms": pct(allv, 95), "p99_ms": pct(allv, 99)}
    print(f"all: ok={len(allv)} failed={allf} median={pct(allv, 50):.1f}ms "
          f"p95={pct(allv, 95):.1f}ms p99={pct(allv, 99):.1f}ms")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1, default=lambda x: None)
            f.write("\n")


if __name__ == "__main__":
    main()
