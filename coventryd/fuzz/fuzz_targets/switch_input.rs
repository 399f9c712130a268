//! Fuzz the whole switch core as the network and the FIFO reach it: a switch on
//! a small configuration with two registered phones and a call ringing between
//! them takes a sequence of datagrams from the caller, the callee and a stranger,
//! control lines and clock ticks. Nothing may panic, and what it keeps stays
//! bounded: its outputs are taken after every input, as the shell does.
#![no_main]

use coventryd::config::Config;
use coventryd::sip::digest::answer_challenge;
use coventryd::switch::registrar::Registrar;
use coventryd::switch::{Line, Switch};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::path::Path;

const CONF: &str = "[server]\nlisten = 127.0.0.1:5060\nrealm = test\n\
                    [calls]\nring = 1\nnoanswer = 2\n\
                    [21]\nsecret = pw21\n[35]\nsecret = pw35\ncoverage = 36\n[36]\nsecret = pw36\n\
                    [groups]\n500 = 21, 35\n";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Send `build(auth, cseq)` once, answer the challenge, send it again.
fn authed(
    sw: &mut Switch,
    now: u64,
    port: u16,
    user: &str,
    method: &str,
    build: &dyn Fn(&str, u32) -> String,
) {
    sw.on_datagram(now, addr(port), build("", 1).as_bytes());
    let out = sw.take_out();
    let Some(challenge) = out.sends.iter().find_map(|(_, m)| {
        let text = String::from_utf8_lossy(m).to_string();
        text.split("\r\n").find_map(|l| {
            l.strip_prefix("Proxy-Authenticate: ")
                .or_else(|| l.strip_prefix("WWW-Authenticate: "))
                .map(str::to_string)
        })
    }) else {
        return;
    };
    let hdr = if method == "REGISTER" {
        "Authorization"
    } else {
        "Proxy-Authorization"
    };
    let pw = format!("pw{user}");
    let Some(value) = answer_challenge(
        &challenge,
        method,
        "sip:127.0.0.1:5060",
        user,
        &pw,
        "c0ffee",
        1,
    ) else {
        return;
    };
    sw.on_datagram(
        now,
        addr(port),
        build(&format!("{hdr}: {value}\r\n"), 2).as_bytes(),
    );
    let _ = sw.take_out();
}

fn switch_with_a_call(now: u64) -> Switch {
    let config = Config::parse(Path::new("fuzz.conf"), CONF).expect("config");
    let mut sw = Switch::new(config, addr(5060), Registrar::new());
    for (user, port) in [("21", 6021u16), ("35", 6035), ("36", 6036)] {
        let build = move |auth: &str, cseq: u32| {
            format!(
                "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKr{cseq}\r\n\
                 From: <sip:{user}@test>;tag=r{port}\r\nTo: <sip:{user}@test>\r\nCall-ID: reg{port}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        authed(&mut sw, now, port, user, "REGISTER", &build);
    }
    let invite = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:35@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKi{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>\r\nCall-ID: fuzzcall\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    authed(&mut sw, now, 6021, "21", "INVITE", &invite);
    sw
}

fuzz_target!(|data: &[u8]| {
    let mut now = 1_000_000u64;
    let mut sw = switch_with_a_call(now);
    // Inputs are separated by a blank byte pair; the first byte of each says
    // who speaks and how much time passes first.
    for chunk in data.split(|b| *b == 0).filter(|c| !c.is_empty()).take(64) {
        let (op, body) = (chunk[0], &chunk[1..]);
        now += u64::from(op >> 3) * 250;
        sw.on_tick(now);
        match op & 7 {
            0 | 1 => sw.on_datagram(now, addr(6021), body),
            2 => sw.on_datagram(now, addr(6035), body),
            3 => sw.on_datagram(now, addr(6036), body),
            4 => sw.on_datagram(now, SocketAddr::from(([127, 0, 0, 2], 5062)), body),
            5 => sw.on_control(now, Line::Complete(body.to_vec())),
            6 => {
                if let Ok(msg) = coventryd::sip::framing::parse_datagram(body, 65_535) {
                    sw.on_stream(now, SocketAddr::from(([127, 0, 0, 3], 5070)), msg);
                }
            }
            _ => sw.on_datagram(now, addr(6021), body),
        }
        let _ = sw.take_out();
    }
});
