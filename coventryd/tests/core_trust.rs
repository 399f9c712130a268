//! Trust boundaries of the core, probed as an attacker would: a stranger on
//! 127.0.0.2 (no credentials, no dialog of its own) sends every method through
//! the in-dialog path with a Route naming the switch, forges responses, CANCELs
//! other people's calls; a phone tries to assert an identity. Nothing may leave
//! the switch for anyone but the stranger itself, and that only as a refusal.

mod common;

use common::*;
use coventry_shared::event::{CallOutcome, CallPhase};
use std::net::SocketAddr;

const UPSTREAM: &str = "[upstream]\nroute = 127.0.0.1:5070\n";

fn stranger() -> SocketAddr {
    "127.0.0.2:6666".parse().expect("addr")
}

/// A lab with 21, 35, 36 registered and the upstream link up.
fn lab() -> Lab {
    let mut lab = Lab::with_config(&format!("{CONF}{UPSTREAM}"));
    lab.register("21", 6021);
    lab.register("35", 6035);
    lab.register("36", 6036);
    lab.sw.on_link(0, Some(addr(5070)));
    lab
}

/// Everything in `sent` that went to any host but `except`'s (a refusal goes
/// to the port the sender's Via names).
fn leaked(sent: &[(SocketAddr, String)], except: SocketAddr) -> Vec<&(SocketAddr, String)> {
    sent.iter().filter(|(a, _)| a.ip() != except.ip()).collect()
}

/// A call 21 → 35, answered; returns the 200 the caller got.
fn answered_call(lab: &mut Lab, call_id: &str) -> String {
    let sent = lab.invite("35", call_id);
    let inv = to(&sent, 6035)[0].to_string();
    let ok = lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    to(&ok, 6021)[0].to_string()
}

/// A request as a stranger sends it: any method, any Request-URI, our Route.
fn forged(method: &str, ruri: &str, route: &str, call_id: &str, to_tag: bool) -> String {
    let tag = if to_tag { ";tag=x1" } else { "" };
    let (extra, body) = match method {
        "INVITE" => (
            "P-Asserted-Identity: <sip:+441111111111@provider>\r\nContent-Type: application/sdp\r\n",
            SDP,
        ),
        "NOTIFY" => (
            "Event: check-sync;reboot=true\r\nSubscription-State: active\r\n",
            "",
        ),
        "SUBSCRIBE" | "PUBLISH" => ("Event: presence\r\nExpires: 60\r\n", ""),
        "REFER" => ("Refer-To: <sip:00441234@127.0.0.1:5070>\r\n", ""),
        _ => ("", ""),
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:6666;branch=z9hG4bKevil{method}{to_tag}\r\n\
         Route: {route}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>{tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: 5 {method}\r\nContact: <sip:evil@127.0.0.2:6666>\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "UPDATE",
    "INFO",
    "PRACK",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "PUBLISH",
    "MESSAGE",
    "OPTIONS",
];

#[test]
fn a_stranger_route_naming_the_switch_relays_nothing() {
    let mut lab = lab();
    let ok = answered_call(&mut lab, "live1");
    let rr = header(&ok, "Record-Route").expect("rr").to_string();
    let token = rr
        .split(';')
        .find(|p| p.starts_with("cv="))
        .expect("instance token")
        .trim_end_matches('>')
        .to_string();
    let routes = [
        format!("<sip:{SWITCH};lr>"),
        "<sip:0.0.0.0:5060;lr>".to_string(),
        format!("<sip:203.0.113.9:5060;lr;{token}>"),
        rr.clone(),
    ];
    let targets = [
        "sip:00441234567890@127.0.0.1:5070;transport=tcp",
        "sip:112@127.0.0.1:5070;transport=tcp",
        "sip:35@127.0.0.1:6035",
        "sip:x@127.0.0.3:5060",
    ];
    let before_tcp = lab.tcp.len();
    let records = lab.records().len();
    for route in &routes {
        for target in targets {
            for method in METHODS {
                for (call_id, to_tag) in [("unknown", false), ("unknown", true), ("live1", true)] {
                    let msg = forged(method, target, route, call_id, to_tag);
                    let sent = lab.feed_at(stranger(), &msg);
                    let leak = leaked(&sent, stranger());
                    assert!(
                        leak.is_empty(),
                        "{method} to {target} via {route} (Call-ID {call_id}) leaked: {leak:?}"
                    );
                    for (_, m) in &sent {
                        let code = status(m);
                        assert!(
                            (400..500).contains(&code)
                                || code == 100
                                || code == 200 && *method == "OPTIONS",
                            "{method}: the stranger gets a refusal or a challenge, got {m}"
                        );
                    }
                }
            }
        }
    }
    let later = lab.advance(2_000);
    assert!(leaked(&later, stranger()).is_empty(), "{later:?}");
    assert_eq!(
        lab.tcp.len(),
        before_tcp,
        "nothing went upstream: {:?}",
        &lab.tcp[before_tcp..]
    );
    assert_eq!(lab.records().len(), records, "the live call goes on");
}

#[test]
fn a_party_on_another_port_of_the_same_host_is_a_stranger() {
    let mut lab = lab();
    let ok = answered_call(&mut lab, "live2");
    let rr = header(&ok, "Record-Route").expect("rr").to_string();
    let bye = |port: u16| {
        format!(
            "BYE sip:x@127.0.0.1:6035 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKb{port}\r\n\
             Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>;tag=callee\r\n\
             Call-ID: live2\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let out = lab.feed(6099, &bye(6099));
    assert_eq!(status(to(&out, 6099)[0]), 403);
    assert!(to(&out, 6035).is_empty(), "the callee never sees it");
    assert!(lab.records().is_empty(), "the call goes on");
    // The caller itself may end it.
    let out = lab.feed(6021, &bye(6021));
    assert!(to(&out, 6035)[0].starts_with("BYE "));
    assert_eq!(lab.records()[0].0, CallOutcome::Completed);
}

#[test]
fn a_party_cannot_send_the_dialog_to_a_third_address() {
    let mut lab = lab();
    let ok = answered_call(&mut lab, "live3");
    let rr = header(&ok, "Record-Route").expect("rr").to_string();
    let info = format!(
        "INFO sip:victim@127.0.0.3:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKi3\r\n\
         Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>;tag=callee\r\n\
         Call-ID: live3\r\nCSeq: 9 INFO\r\nContent-Length: 0\r\n\r\n"
    );
    let out = lab.feed(6021, &info);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(status(to(&out, 6021)[0]), 403);
}

#[test]
fn a_stranger_cannot_cancel_a_ringing_call() {
    let mut lab = lab();
    let sent = lab.invite("35", "ring1");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    // The INVITE's branch and Call-ID are all a CANCEL needs; the stranger
    // copies them but speaks from elsewhere.
    let via = header(
        &sent.iter().find(|(a, _)| a.port() == 6021).expect("100").1,
        "Via",
    )
    .expect("via")
    .to_string();
    let branch = via.split("branch=").nth(1).expect("branch");
    let branch = branch.split(';').next().expect("branch");
    let cancel = format!(
        "CANCEL sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>\r\nCall-ID: ring1\r\n\
         CSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    let out = lab.feed_at(stranger(), &cancel);
    assert!(leaked(&out, stranger()).is_empty(), "{out:?}");
    assert_eq!(status(&out[0].1), 481);
    assert!(lab.records().is_empty());
    assert_eq!(lab.phases().last().map(|p| p.0), Some(CallPhase::Ringing));
    // The caller's own CANCEL works.
    let out = lab.feed(6021, &cancel);
    assert!(to(&out, 6035).iter().any(|m| m.starts_with("CANCEL")));
    assert_eq!(lab.records()[0].0, CallOutcome::Cancelled);
}

#[test]
fn forged_responses_are_not_taken() {
    let mut lab = lab();
    // Another extension (36) and a stranger answer 35's ringing INVITE.
    let sent = lab.invite("35", "take1");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    let forged_ok = respond(&inv, 200, "thief", 6036, SDP);
    let out = lab.feed(6036, &forged_ok);
    assert!(out.is_empty(), "{out:?}");
    let out = lab.feed_at(stranger(), &forged_ok);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(lab.phases().last().map(|p| p.0), Some(CallPhase::Ringing));
    // The real callee still answers, and its answer is the one relayed.
    let out = lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    assert!(header(to(&out, 6021)[0], "To").is_some_and(|t| t.contains("tag=callee")));

    // A delivery receipt faked by a stranger: the text is still pending.
    let sent = lab.text("21", "36", "hello", "msg1");
    let msg = to(&sent, 6036)[0].to_string();
    let out = lab.feed_at(stranger(), &respond(&msg, 200, "t", 6036, ""));
    assert!(out.is_empty(), "{out:?}");
    let out = lab.feed(6036, &respond(&msg, 200, "t", 6036, ""));
    assert_eq!(
        status(to(&out, 6021)[0]),
        200,
        "the real receipt answers the sender"
    );
    assert!(lab.sw.counters().refused >= 3);
}

#[test]
fn stateless_responses_cannot_be_reflected() {
    let mut lab = lab();
    // A response that claims to answer something we relayed statelessly, with
    // a second Via naming a victim: nothing goes to the victim.
    for branch in ["z9hG4bKcvs0123456789abcdef0123", "z9hG4bKcvs"] {
        let resp = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {SWITCH};branch={branch}\r\n\
             Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKv\r\nFrom: <sip:a@x>;tag=1\r\n\
             To: <sip:b@x>;tag=2\r\nCall-ID: r1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        let out = lab.feed_at(stranger(), &resp);
        assert!(out.is_empty(), "{out:?}");
    }
    // The real stateless path still works: the callee answers the caller's
    // in-dialog INFO, and only the callee's answer goes back.
    let ok = answered_call(&mut lab, "live4");
    let rr = header(&ok, "Record-Route").expect("rr").to_string();
    let info = format!(
        "INFO sip:x@127.0.0.1:6035 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKi4\r\n\
         Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>;tag=callee\r\n\
         Call-ID: live4\r\nCSeq: 9 INFO\r\nContent-Length: 0\r\n\r\n"
    );
    let out = lab.feed(6021, &info);
    let fwd = to(&out, 6035)[0].to_string();
    let answer = respond(&fwd, 200, "callee", 6035, "");
    assert!(
        lab.feed_at(stranger(), &answer).is_empty(),
        "not from the stranger"
    );
    assert!(lab.feed(6036, &answer).is_empty(), "not from another phone");
    let out = lab.feed(6035, &answer);
    assert_eq!(status(to(&out, 6021)[0]), 200);
}

#[test]
fn branches_and_tags_are_unguessable() {
    let mut lab = lab();
    let mut seen = Vec::new();
    for i in 0..4 {
        let sent = lab.invite("35", &format!("g{i}"));
        let inv = to(&sent, 6035)[0].to_string();
        let via = header(&inv, "Via").expect("via").to_string();
        let branch = via
            .split("branch=")
            .nth(1)
            .expect("b")
            .split(';')
            .next()
            .expect("b");
        seen.push(branch.to_string());
        let sent = lab.feed(6035, &respond(&inv, 486, "busy", 6035, ""));
        let tag = header(to(&sent, 6021)[0], "To")
            .and_then(|t| t.split("tag=").nth(1))
            .map(str::to_string);
        // Our own final carries the phone's tag; the 100 carries ours.
        assert!(tag.is_some());
    }
    for b in &seen {
        let random = b.len().saturating_sub("z9hG4bK".len() + 7);
        assert!(random >= 24, "96 random bits at least: {b}");
    }
    // No two share their random part's prefix, as a counter would.
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            assert_ne!(a[..a.len() - 4], b[..b.len() - 4], "{seen:?}");
        }
    }
}

#[test]
fn identity_headers_and_our_credentials_never_leave() {
    let mut lab = lab();
    let build = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKid{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>\r\nCall-ID: id1\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n\
             P-Asserted-Identity: <sip:99@forged>\r\nRemote-Party-ID: <sip:98@forged>\r\n\
             P-Preferred-Identity: <sip:97@forged>\r\nDiversion: <sip:94@forged>;reason=unconditional\r\n\
             History-Info: <sip:93@forged>;index=1\r\nb: <sip:92@forged>\r\n\
             {auth}Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    };
    let sent = lab.authed(6021, "21", "INVITE", build);
    let inv = to(&sent, 6035)[0].to_string();
    assert!(!inv.contains("forged"), "{inv}");
    assert!(!inv.contains("Proxy-Authorization"), "{inv}");
    let ok = respond(&inv, 200, "callee", 6035, SDP).replacen(
        "Contact:",
        "P-Asserted-Identity: <sip:96@forged>\r\nContact:",
        1,
    );
    let out = lab.feed(6035, &ok);
    let ok = to(&out, 6021)[0].to_string();
    assert!(!ok.contains("forged"), "{ok}");
    let rr = header(&ok, "Record-Route").expect("rr").to_string();
    // Phones copy their Proxy-Authorization into ACK, BYE, re-INVITE, REFER.
    let cred = "Proxy-Authorization: Digest username=\"21\", realm=\"test\", nonce=\"n\", uri=\"sip:35@test\", response=\"0123456789abcdef0123456789abcdef\"\r\n";
    for (i, method) in ["ACK", "INVITE", "REFER", "INFO", "BYE"].iter().enumerate() {
        let req = format!(
            "{method} sip:x@127.0.0.1:6035 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKd{i}\r\n\
             Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>;tag=callee\r\n\
             Call-ID: id1\r\nCSeq: {} {method}\r\n{cred}P-Asserted-Identity: <sip:95@forged>\r\n\
             Content-Length: 0\r\n\r\n",
            i + 2
        );
        let out = lab.feed(6021, &req);
        let fwd = to(&out, 6035);
        assert_eq!(fwd.len(), 1, "{method}: {out:?}");
        assert!(
            !fwd[0].contains("Proxy-Authorization"),
            "{method}: {}",
            fwd[0]
        );
        assert!(!fwd[0].contains("forged"), "{method}: {}", fwd[0]);
    }
}

#[test]
fn an_outbound_proxy_route_on_a_new_call_is_harmless() {
    // Phones configured with the switch as outbound proxy pre-load its Route:
    // the call is authenticated and forked like any other, the Route taken off.
    let mut lab = lab();
    let build = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKop{cseq}\r\n\
             Route: <sip:{SWITCH};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\n\
             To: <sip:35@test>\r\nCall-ID: op1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n\
             {auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    };
    let first = lab.feed(6021, &build("", 1));
    assert_eq!(status(to(&first, 6021)[0]), 407, "challenged like any call");
    let sent = lab.authed(6021, "21", "INVITE", build);
    let inv = to(&sent, 6035)[0].to_string();
    assert!(header(&inv, "Route").is_none(), "{inv}");
}

#[test]
fn fork_cancels_say_the_call_was_completed_elsewhere() {
    let mut lab = lab();
    // 36 has a second phone.
    let sent = lab.authed(6136, "36", "REGISTER", |auth, cseq| {
        format!(
            "REGISTER sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6136;branch=z9hG4bKr2{cseq}\r\n\
             From: <sip:36@test>;tag=r2\r\nTo: <sip:36@test>\r\nCall-ID: reg36b\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:36@127.0.0.1:6136>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    });
    assert_eq!(status(&sent[0].1), 200);
    let sent = lab.invite("36", "fork1");
    let a = to(&sent, 6036)[0].to_string();
    let b = to(&sent, 6136)[0].to_string();
    lab.feed(6036, &respond(&a, 180, "a", 6036, ""));
    lab.feed(6136, &respond(&b, 180, "b", 6136, ""));
    let out = lab.feed(6036, &respond(&a, 200, "a", 6036, SDP));
    let cancel = to(&out, 6136)[0];
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    assert_eq!(
        header(cancel, "Reason"),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
}

#[test]
fn the_ack_of_the_switchs_own_challenge_is_absorbed_not_refused() {
    let mut lab = lab();
    let invite = format!(
        "INVITE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKack407\r\n\
         Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>\r\nCall-ID: ack407\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\nContent-Length: 0\r\n\r\n"
    );
    let sent = lab.feed(6021, &invite);
    let challenge = to(&sent, 6021)[0].to_string();
    assert_eq!(status(&challenge), 407, "{challenge}");
    let to_hdr = header(&challenge, "To").expect("To").to_string();
    let ack = format!(
        "ACK sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKack407\r\n\
         Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: {to_hdr}\r\nCall-ID: ack407\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let refused = lab.sw.counters().refused;
    let sent = lab.feed(6021, &ack);
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(lab.sw.counters().refused, refused, "counted as a refusal");
}
