//! The switch core never panics, whatever arrives from the network or the FIFO,
//! and still registers afterwards.

use coventryd::config::Config;
use coventryd::switch::registrar::Registrar;
use coventryd::switch::Line;
use coventryd::switch::Switch;
use proptest::prelude::*;
use std::net::SocketAddr;
use std::path::Path;

const CONFIG: &str = "[server]\nlisten = 127.0.0.1:5060\nrealm = test\n\
                      [groups]\n100 = 21 35\n[21]\nsecret = pw21\n[35]\nsecret = pw35\n";

fn switch() -> Switch {
    let config = Config::parse(Path::new("test.conf"), CONFIG).expect("config");
    Switch::new(
        config,
        "127.0.0.1:5060".parse().expect("addr"),
        Registrar::new(),
    )
}

fn src() -> SocketAddr {
    "127.0.0.1:6000".parse().expect("addr")
}

const SEEDS: &[&str] = &[
    "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK1;rport\r\n\
     From: <sip:21@test>;tag=1\r\nTo: <sip:21@test>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n\
     Contact: <sip:21@127.0.0.1:6000>;expires=60\r\nAuthorization: Digest username=\"21\", realm=\"test\", \
     nonce=\"abc\", uri=\"sip:127.0.0.1\", response=\"0123\", qop=auth, nc=00000001, cnonce=\"x\"\r\n\
     Content-Length: 0\r\n\r\n",
    "MESSAGE sip:35@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK2\r\n\
     f: <sip:21@test>;tag=2\r\nt: <sip:35@test>\r\ni: c2\r\nCSeq: 1 MESSAGE\r\nc: text/plain\r\n\
     l: 5\r\n\r\nhello",
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKdeadbeef1\r\nFrom: <sip:a@b>;tag=1\r\n\
     To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
    "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK3\r\n\
     From: <sip:x@y>;tag=3\r\nTo: <sip:y@z>\r\nCall-ID: c3\r\nCSeq: 1 OPTIONS\r\n\r\n",
];

fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for (pos, byte, op) in edits {
        if v.is_empty() {
            break;
        }
        let p = pos % v.len();
        match op % 4 {
            0 => v[p] = *byte,
            1 => v.insert(p, *byte),
            2 => {
                v.remove(p);
            }
            _ => v.truncate(p),
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut sw = switch();
        sw.on_datagram(1_000, src(), &bytes);
        sw.on_tick(40_000);
        let _ = sw.take_out();
    }

    #[test]
    fn mutated_sip_never_panics(seed in 0..SEEDS.len(),
                                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..12)) {
        let mut sw = switch();
        let bytes = mutate(SEEDS[seed].as_bytes(), &edits);
        sw.on_datagram(1_000, src(), &bytes);
        sw.on_datagram(1_001, src(), &bytes); // and its retransmission
        sw.on_tick(40_000);
        let out = sw.take_out();
        for (to, _) in &out.sends {
            prop_assert!(to.ip().is_loopback());
        }
    }

    #[test]
    fn arbitrary_control_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                           too_long in any::<bool>()) {
        let mut sw = switch();
        let line = if too_long { Line::TooLong(bytes) } else { Line::Complete(bytes) };
        sw.on_control(1_000, line);
        let out = sw.take_out();
        // Every line yields exactly one command result, except `reload`, which the
        // I/O shell answers after re-reading the file.
        let results = out.events.iter().filter(|e| matches!(e, coventry_shared::event::Event::CommandResult { .. })).count();
        prop_assert_eq!(results + usize::from(out.reload.is_some()), 1);
    }
}

#[test]
fn oversized_and_garbage_get_answers_or_silence_not_panics() {
    let mut sw = switch();
    let mut big = SEEDS[3].as_bytes().to_vec();
    big.extend(std::iter::repeat_n(b'x', 70_000));
    sw.on_datagram(0, src(), &big);
    let out = sw.take_out();
    assert!(
        out.sends.iter().any(|(_, b)| b.starts_with(b"SIP/2.0 513")),
        "an oversized request with a readable head gets 513"
    );
    sw.on_datagram(0, src(), b"\x00\xff garbage \r\n\r\n");
    assert_eq!(sw.counters().malformed, 1);
    assert_eq!(sw.counters().too_large, 1);
}

/// Requests and responses as they cross the upstream: a call out, a call in from
/// the peer (over TCP), an in-dialog BYE with Route headers, a response.
const UPSTREAM_SEEDS: &[&str] = &[
    "INVITE sip:0044123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKu1;rport\r\n\
     Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=1\r\nTo: <sip:0044123@test>\r\nCall-ID: u1\r\n\
     CSeq: 1 INVITE\r\nContact: <sip:21@127.0.0.1:6000>\r\nGeolocation: <cid:x@y>\r\n\
     Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
    "INVITE sip:21@127.0.0.1:5060;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKu2\r\n\
     Record-Route: <sip:127.0.0.1:5070;transport=tcp;lr>, <sip:127.0.0.1:5070;lr>\r\nMax-Forwards: 69\r\n\
     From: <sip:+44@p>;tag=2\r\nTo: <sip:21@p>\r\nCall-ID: u2\r\nCSeq: 1 INVITE\r\n\
     Contact: <sip:+44@127.0.0.1:7000>\r\nContent-Length: 0\r\n\r\n",
    "BYE sip:21@127.0.0.1:6000 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKu3\r\n\
     Route: <sip:127.0.0.1:5060;transport=tcp;lr;cv=000000>, <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 69\r\n\
     From: <sip:+44@p>;tag=2\r\nTo: <sip:21@p>;tag=9\r\nCall-ID: u2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    "MESSAGE sip:21@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKu4\r\n\
     From: <sip:+44@p>;tag=4\r\nTo: <sip:21@p>\r\nCall-ID: u4\r\nCSeq: 1 MESSAGE\r\n\
     Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKcvs0000000000000001\r\n\
     Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKx;rport=6000\r\nFrom: <sip:a@b>;tag=1\r\n\
     To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
];

/// A switch with a connected upstream link.
fn upstream_switch() -> Switch {
    let text = format!("{CONFIG}[upstream]\nroute = 127.0.0.1:5070\n");
    let config = Config::parse(Path::new("test.conf"), &text).expect("config");
    let mut sw = Switch::new(
        config,
        "127.0.0.1:5060".parse().expect("addr"),
        Registrar::new(),
    );
    sw.on_link(0, Some("127.0.0.1:5070".parse().expect("addr")));
    sw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_upstream_traffic_never_panics(seed in 0..UPSTREAM_SEEDS.len(),
                                             edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..12),
                                             up in any::<bool>()) {
        let mut sw = upstream_switch();
        let bytes = mutate(UPSTREAM_SEEDS[seed].as_bytes(), &edits);
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        if let Ok(coventryd::sip::framing::StreamFrame::Message { msg, .. }) =
            coventryd::sip::framing::parse_stream(&bytes, 8192)
        {
            sw.on_stream(1_000, peer, msg);
        }
        sw.on_datagram(1_001, src(), &bytes);
        sw.on_link(0, up.then_some(peer));
        sw.on_tick(40_000);
        let out = sw.take_out();
        // A proxy sends where the request says (a mutated Request-URI may name
        // another host), never anywhere else.
        let text = String::from_utf8_lossy(&bytes);
        for (to, _) in &out.sends {
            prop_assert!(to.ip().is_loopback() || text.contains(&to.ip().to_string()), "{to}");
        }
    }
}
