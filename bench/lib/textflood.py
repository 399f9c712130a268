#!/usr/bin/env python3
"""textflood.py - one authenticated phone floods texts, for `bench/run.sh bounds`.

The case of issue 20 ("a MESSAGE flood from one authenticated phone took RSS
from 8.8 MB to 390 MB in 20 s"):

  - the sink registers extension --sink (REGISTER, 401, REGISTER with MD5
    digest, 200) with a contact on its own socket, and from then on reads and
    drops every datagram: it never answers, so every text the switch relays
    to it waits for Timer F (32 s) at the switch;
  - the sender (extension --sender, its own socket and address) sends one
    MESSAGE without credentials to learn a nonce (407), then MESSAGEs to the
    sink as fast as this process can (or --rate a second), each a new
    transaction with Proxy-Authorization on that nonce and the next
    nonce-count (qop=auth), so no challenge round trip slows it; a stale
    nonce (a new 407) is picked up as it comes.  It never retransmits;
  - after --secs it stops sending and keeps reading for --drain seconds, so
    the finals of the texts still in flight (Timer F) are counted too.

Counted: MESSAGEs sent, responses by status code, datagrams the sink got
(the switch's relayed texts and its retransmissions).  Prints key=value lines
and writes them (and the counts) as JSON to --out.

  textflood.py --switch 127.0.0.1:5160 --sender 21@127.0.0.2 --sink 22@127.0.0.3 \
               --password-prefix pw --secs 20 --drain 40 [--rate 0] [--out flood.json]
"""
import argparse
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from phone import Msg, md5, params, unique  # noqa: E402

stop = False


def on_signal(_sig, _frm):
    global stop
    stop = True


def status_of(data):
    """(status, cseq method) of a response datagram, or (None, None)."""
    if not data.startswith(b"SIP/2.0 "):
        return None, None
    try:
        code = int(data[8:11])
    except ValueError:
        return None, None
    method = None
    for line in data.split(b"\r\n"):
        if line[:5].lower() == b"cseq:":
            parts = line[5:].split()
            method = parts[1].decode("ascii", "replace").upper() if len(parts) > 1 else None
            break
    return code, method


class Endpoint:
    def __init__(self, spec, password_prefix, switch):
        self.user, ip = spec.split("@", 1)
        self.password = f"{password_prefix}{self.user}"
        self.switch = switch
        self.domain = f"{switch[0]}:{switch[1]}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((ip, 0))
        self.ip, self.port = self.sock.getsockname()

    def auth_header(self, challenge_hdr, name, method, uri, nc, cnonce):
        p = params(challenge_hdr.split(" ", 1)[1] if " " in challenge_hdr else challenge_hdr)
        realm, nonce = p.get("realm", ""), p.get("nonce", "")
        ha1 = md5(f"{self.user}:{realm}:{self.password}")
        ha2 = md5(f"{method}:{uri}")
        r = md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
        s = (f'{name}: Digest username="{self.user}", realm="{realm}", nonce="{nonce}", '
             f'uri="{uri}", response="{r}", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce="{cnonce}"')
        if "opaque" in p:
            s += f', opaque="{p["opaque"]}"'
        return s

    def transact(self, build, timeout=10.0):
        """Send build(None); answer a 401/407 once with build(auth line); return the final Msg."""
        auth = None
        tried_auth = False
        data = build(auth)
        deadline = time.monotonic() + timeout
        next_send = 0.0
        self.sock.settimeout(0.1)
        while time.monotonic() < deadline:
            if time.monotonic() >= next_send:
                self.sock.sendto(data, self.switch)
                next_send = time.monotonic() + 0.5
            try:
                raw, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            try:
                m = Msg(raw)
            except ValueError:
                continue
            if m.status is None or m.status < 200:
                continue
            if m.status in (401, 407) and not tried_auth:
                hdr = m.get("www-authenticate" if m.status == 401 else "proxy-authenticate") or ""
                tried_auth = True
                data = build((m.status, hdr))
                next_send = 0.0
                continue
            return m
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--switch", required=True)
    ap.add_argument("--sender", required=True, help="EXT@IP")
    ap.add_argument("--sink", required=True, help="EXT@IP (registered, never answers)")
    ap.add_argument("--password-prefix", default="pw")
    ap.add_argument("--secs", type=float, default=20.0)
    ap.add_argument("--drain", type=float, default=40.0)
    ap.add_argument("--rate", type=float, default=0.0, help="MESSAGEs a second (0: unpaced)")
    ap.add_argument("--text-bytes", type=int, default=100)
    ap.add_argument("--out")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = a.switch.rsplit(":", 1)
    switch = (host, int(port))
    for spec in (a.sender, a.sink):
        if not spec.split("@", 1)[1].startswith("127."):
            sys.exit(f"textflood.py: {spec}: loopback addresses only")
    if not host.startswith("127."):
        sys.exit("textflood.py: the switch must be on loopback")

    sink = Endpoint(a.sink, a.password_prefix, switch)
    sender = Endpoint(a.sender, a.password_prefix, switch)
    reg_cid, reg_tag = unique("reg-"), unique("t")
    reg_cseq = [0]

    def register(auth):
        reg_cseq[0] += 1
        uri = f"sip:{sink.domain}"
        lines = [f"REGISTER {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {sink.ip}:{sink.port};branch={unique('z9hG4bKr')};rport",
                 "Max-Forwards: 70",
                 f"From: <sip:{sink.user}@{sink.domain}>;tag={reg_tag}",
                 f"To: <sip:{sink.user}@{sink.domain}>",
                 f"Call-ID: {reg_cid}", f"CSeq: {reg_cseq[0]} REGISTER",
                 f"Contact: <sip:{sink.user}@{sink.ip}:{sink.port}>", "Expires: 3600"]
        if auth:
            name = "Authorization" if auth[0] == 401 else "Proxy-Authorization"
            lines.append(sink.auth_header(auth[1], name, "REGISTER", uri, 1, unique("cn")))
        lines += ["User-Agent: bench-textflood", "Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()

    r = sink.transact(register)
    if r is None or r.status != 200:
        sys.exit(f"textflood.py: the sink {a.sink} did not register: {r.start if r else 'no answer'}")

    text = ("x" * a.text_bytes).encode()
    ruri = f"sip:{sink.user}@{sender.domain}"
    tag = unique("f")
    head_fmt = (f"MESSAGE {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {sender.ip}:{sender.port};branch=z9hG4bKtf{tag}x%d;rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{sender.user}@{sender.domain}>;tag={tag}x%d\r\n"
                f"To: <sip:{sink.user}@{sender.domain}>\r\n"
                f"Call-ID: tf-{tag}-%d\r\nCSeq: 1 MESSAGE\r\n")
    tail = (f"User-Agent: bench-textflood\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(text)}\r\n\r\n").encode() + text

    counts = {}          # status -> responses to MESSAGE
    other = [0]          # datagrams to the sender that are not responses to MESSAGE
    sink_in = [0]
    challenge = [None]   # the Proxy-Authenticate header in use
    stale_seen = [0]

    def drain_once():
        n = 0
        for s in (sender.sock, sink.sock):
            while True:
                try:
                    raw = s.recv(65535)
                except BlockingIOError:
                    break
                n += 1
                if s is sink.sock:
                    sink_in[0] += 1
                    continue
                code, method = status_of(raw)
                if code is None or method != "MESSAGE":
                    other[0] += 1
                    continue
                counts[code] = counts.get(code, 0) + 1
                if code == 407:
                    try:
                        h = Msg(raw).get("proxy-authenticate")
                    except ValueError:
                        h = None
                    if h and h != challenge[0]:
                        challenge[0] = h
                        stale_seen[0] += 1
        return n

    # the first MESSAGE, without credentials: its 407 carries the nonce
    first = (head_fmt % (0, 0, 0)).encode() + tail
    sender.sock.settimeout(0.1)
    t_end = time.monotonic() + 10
    while challenge[0] is None and time.monotonic() < t_end:
        sender.sock.sendto(first, switch)
        try:
            raw = sender.sock.recv(65535)
        except socket.timeout:
            continue
        code, _ = status_of(raw)
        if code == 407:
            challenge[0] = Msg(raw).get("proxy-authenticate")
    if challenge[0] is None:
        sys.exit("textflood.py: no 407 to the first MESSAGE")
    sender.sock.setblocking(False)
    sink.sock.setblocking(False)

    cnonce = unique("cn")
    cur_chal, ha1, ha2, nonce_part = None, None, md5(f"MESSAGE:{ruri}"), None
    nc = 0
    sent = 0
    send_errors = 0
    t0 = time.monotonic()
    t_stop = t0 + a.secs
    while not stop:
        t = time.monotonic()
        if t >= t_stop:
            break
        if a.rate > 0 and sent >= (t - t0) * a.rate:
            drain_once()
            time.sleep(0.0005)
            continue
        if challenge[0] != cur_chal:
            cur_chal = challenge[0]
            p = params(cur_chal.split(" ", 1)[1])
            realm, nonce = p.get("realm", ""), p.get("nonce", "")
            ha1 = md5(f"{sender.user}:{realm}:{sender.password}")
            nonce_part = (realm, nonce, p.get("opaque"))
            nc = 0
        nc += 1
        sent += 1
        realm, nonce, opaque = nonce_part
        resp = md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
        auth = (f'Proxy-Authorization: Digest username="{sender.user}", realm="{realm}", nonce="{nonce}", '
                f'uri="{ruri}", response="{resp}", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
                + (f', opaque="{opaque}"' if opaque else "") + "\r\n")
        data = (head_fmt % (sent, sent, sent) + auth).encode() + tail
        try:
            sender.sock.sendto(data, switch)
        except (BlockingIOError, OSError):
            send_errors += 1
        if sent % 32 == 0:
            drain_once()
    t_sent = time.monotonic()
    # keep reading: the finals of what is still in flight
    while not stop and time.monotonic() < t_sent + a.drain:
        if drain_once() == 0:
            time.sleep(0.01)
    t_done = time.monotonic()
    finals = sum(v for k, v in counts.items() if k >= 200)
    res = {
        "sent": sent,
        "send_secs": round(t_sent - t0, 2),
        "sent_per_s": round(sent / max(t_sent - t0, 1e-9)),
        "send_errors": send_errors,
        "drain_secs": round(t_done - t_sent, 2),
        "responses": {str(k): v for k, v in sorted(counts.items())},
        "finals": finals,
        "unanswered": sent - finals,
        "r503": counts.get(503, 0),
        "r2xx": sum(v for k, v in counts.items() if 200 <= k < 300),
        "r407_new_nonce": stale_seen[0],
        "other_datagrams": other[0],
        "sink_datagrams": sink_in[0],
        "interrupted": stop,
    }
    for k, v in res.items():
        print(f"{k}={json.dumps(v) if isinstance(v, dict) else v}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
