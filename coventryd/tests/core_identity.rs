//! Identity is the switch's to assert: the display name a callee sees is the
//! line's configured one, a caller from the upstream whose number reads like a
//! local one is marked (and recorded as coming in from the upstream), and a call
//! the switch forwards carries a Diversion naming who forwarded it. The
//! end-to-end tests against a real Kamailio are in `tests/tests/limits.rs`.

mod common;

use common::*;
use coventry_shared::record::Route;
use std::net::SocketAddr;

const UPSTREAM: &str = "[upstream]\nroute = 127.0.0.1:5070\nforward_prefixes = 00\n";

/// 21 ("Reception"), 35 and 36 registered, the upstream link up.
fn lab() -> Lab {
    let conf = CONF.replace(
        "[21]\nsecret = pw21\n",
        "[21]\nsecret = pw21\ndisplay = Reception\n",
    );
    let mut lab = Lab::with_config(&format!("{conf}{UPSTREAM}"));
    lab.register("21", 6021);
    lab.register("35", 6035);
    lab.register("36", 6036);
    lab.sw.on_link(0, Some(addr(5070)));
    lab
}

fn kam() -> SocketAddr {
    addr(5070)
}

#[test]
fn a_callee_sees_the_configured_display_name_and_the_caller_its_own_from() {
    let mut lab = lab();
    let build = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKd{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: \"The Boss\" <sip:21@test>;tag=caller\r\nTo: <sip:35@test>\r\n\
             Call-ID: disp\r\nCSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    };
    let sent = lab.authed(6021, "21", "INVITE", build);
    let inv = to(&sent, 6035)[0].to_string();
    assert_eq!(
        header(&inv, "From"),
        Some("\"Reception\" <sip:21@test>;tag=caller"),
        "{inv}"
    );
    // The answer reaches the caller with the From it sent.
    let back = lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    let ringing = to(&back, 6021)[0];
    assert_eq!(
        header(ringing, "From"),
        Some("\"The Boss\" <sip:21@test>;tag=caller"),
        "{ringing}"
    );
    lab.feed(6035, &respond(&inv, 486, "callee", 6035, ""));
    // A line without a display of its own keeps what its phone sent.
    let sent = lab.call_from("36", "21", "plain");
    let inv = to(&sent, 6021)[0];
    assert_eq!(
        header(inv, "From"),
        Some("<sip:36@test>;tag=caller"),
        "{inv}"
    );
}

#[test]
fn an_outside_caller_claiming_a_local_number_is_marked_and_recorded_as_inbound() {
    let mut lab = lab();
    let sent = lab.feed_tcp(addr(40002), &inbound_invite_from("21", "35", "claim"));
    let inv = to(&sent, 6035)[0].to_string();
    assert_eq!(
        header(&inv, "From"),
        Some("\"21 (outside)\" <sip:outside-21@provider>;tag=out"),
        "{inv}"
    );
    assert!(
        header(&inv, "P-Asserted-Identity").is_none(),
        "the peer's claim of 21 is not passed on: {inv}"
    );
    lab.feed(6035, &respond(&inv, 486, "callee", 6035, ""));
    let (_, rec) = lab.call_records.last().expect("a record");
    assert_eq!(rec.caller, "outside-21");
    assert_eq!(rec.route, Route::Inbound);
    // A number that does not read like a local one passes as it came.
    let sent = lab.feed_tcp(addr(40002), &inbound_invite_from("+441234", "35", "plain"));
    let inv = to(&sent, 6035)[0].to_string();
    assert_eq!(header(&inv, "From"), Some("<sip:+441234@provider>;tag=out"));
    assert_eq!(
        header(&inv, "P-Asserted-Identity"),
        Some("<sip:+441234@provider>")
    );
}

#[test]
fn a_call_forwarded_out_carries_who_forwarded_it() {
    let mut lab = lab();
    lab.command("forward 35 0044123");
    lab.call_from("36", "35", "fwd");
    let out: Vec<&String> = lab
        .tcp
        .iter()
        .filter(|(a, m)| *a == kam() && m.starts_with("INVITE"))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(out.len(), 1, "{:?}", lab.tcp);
    assert_eq!(
        header(out[0], "Diversion"),
        Some("<sip:35@test>;reason=unconditional;counter=1"),
        "{}",
        out[0]
    );
    assert_eq!(
        header(out[0], "P-Asserted-Identity"),
        Some("\"Extension 36\" <sip:36@test>"),
        "the caller is still the one asserted"
    );
    // A local forward tells the phone too.
    lab.command("forward 35 21");
    let sent = lab.call_from("36", "35", "local");
    let inv = to(&sent, 6021)[0];
    assert_eq!(
        header(inv, "Diversion"),
        Some("<sip:35@test>;reason=unconditional;counter=1")
    );
}
