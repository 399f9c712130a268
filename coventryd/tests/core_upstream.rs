//! The upstream side of the core with a simulated clock and simulated links: which
//! route a number takes, 503 while a route is down, what crosses between UDP phones
//! and the TCP upstream (Via, Record-Route, identity, Geolocation), and calls and
//! texts from upstream to local phones with their features. The end-to-end tests
//! in `tests/tests/upstream.rs` run the same against a real Kamailio.

mod common;

use common::*;
use coventry_shared::event::{CallOutcome, Event};
use std::net::SocketAddr;

const UPSTREAM: &str = "[upstream]\nroute = 127.0.0.1:5070\nemergency = 112, 911\n\
                        emergency_route = 127.0.0.1:5071\nsms_route = 127.0.0.1:5072\n";

fn kam(port: u16) -> SocketAddr {
    addr(port)
}

fn lab_with(extra: &str) -> Lab {
    let mut lab = Lab::with_config(&format!("{CONF}{UPSTREAM}{extra}"));
    lab.register("21", 6021);
    lab.register("35", 6035);
    lab.register("36", 6036);
    lab
}

/// All three links up.
fn connected(extra: &str) -> Lab {
    let mut lab = lab_with(extra);
    lab.sw.on_link(0, Some(kam(5070)));
    lab.sw.on_link(1, Some(kam(5071)));
    lab.sw.on_link(2, Some(kam(5072)));
    lab
}

/// Every entry of every `name` header of `msg`, top first.
fn entries(msg: &str, name: &str) -> Vec<String> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(", ").map(|e| e.trim().to_string()))
        .collect()
}

/// The TCP sends to `peer` so far.
fn tcp_to(lab: &Lab, peer: u16) -> Vec<String> {
    lab.tcp
        .iter()
        .filter(|(a, _)| a.port() == peer)
        .map(|(_, m)| m.clone())
        .collect()
}

/// An INVITE as the upstream would send it over TCP from +441234, to `to`.
fn inbound_invite(to: &str, call_id: &str) -> String {
    inbound_invite_from("+441234", to, call_id)
}

#[test]
fn a_call_out_crosses_to_tcp_with_both_record_routes_and_comes_back() {
    let mut lab = connected("");
    let geo = "Geolocation: <cid:loc@21>;inserted-by=phone\r\nGeolocation-Routing: yes\r\n\
               P-Asserted-Identity: <sip:99@forged>\r\n";
    let build = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:0044123@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKo{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:0044123@test>\r\nCall-ID: out1\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n{geo}{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    };
    let sent = lab.authed(6021, "21", "INVITE", build);
    assert_eq!(status(to(&sent, 6021)[0]), 100);
    let out = tcp_to(&lab, 5070);
    assert_eq!(out.len(), 1, "one INVITE, over TCP, on the default route");
    let inv = &out[0];
    assert!(
        inv.starts_with("INVITE sip:0044123@127.0.0.1:5070 SIP/2.0\r\n"),
        "{inv}"
    );
    assert!(
        header(inv, "Via").is_some_and(|v| v.starts_with("SIP/2.0/TCP 127.0.0.1:5060;branch=")),
        "{inv}"
    );
    let rr = entries(inv, "Record-Route");
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(
        rr[0].contains(";transport=tcp;lr"),
        "TCP side first: {rr:?}"
    );
    assert!(!rr[1].contains("transport"), "then the UDP side: {rr:?}");
    assert_eq!(
        header(inv, "P-Asserted-Identity"),
        Some("\"Extension 21\" <sip:21@test>")
    );
    assert!(
        !inv.contains("forged"),
        "the phone's own identity claim is dropped"
    );
    assert!(inv.contains("Geolocation: <cid:loc@21>;inserted-by=phone\r\n"));
    assert!(inv.contains("Geolocation-Routing: yes\r\n"));
    assert!(inv.ends_with(SDP));
    assert!(header(inv, "Proxy-Authorization").is_none());

    // 180 and 200 back over the route's connection; Kamailio record-routed too.
    let with_rr = |code: u16| {
        respond(inv, code, "far", 7000, if code == 200 { SDP } else { "" }).replacen(
            "Record-Route: ",
            "Record-Route: <sip:127.0.0.1:5070;transport=tcp;lr>, ",
            1,
        )
    };
    let ringing = lab.feed_tcp(kam(5070), &with_rr(180));
    assert_eq!(status(to(&ringing, 6021)[0]), 180);
    let ok = lab.feed_tcp(kam(5070), &with_rr(200));
    let ok = to(&ok, 6021)[0].to_string();
    assert_eq!(status(&ok), 200);
    let rr = entries(&ok, "Record-Route");
    assert_eq!(rr.len(), 3, "Kamailio's and our two: {rr:?}");
    // The phone's ACK and BYE follow the route set: ours (both) then Kamailio's.
    let mut routes = rr.clone();
    routes.reverse();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:far@127.0.0.1:7000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bK{method}\r\n\
             Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:0044123@test>;tag=far\r\n\
             Call-ID: out1\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            routes.join(", ")
        )
    };
    let before = lab.tcp.len();
    let ack = lab.feed(6021, &in_dialog("ACK", 2));
    assert!(to(&ack, 6021).is_empty());
    let ack = &lab.tcp[before..];
    assert_eq!(ack.len(), 1, "the ACK goes to Kamailio over TCP");
    assert_eq!(ack[0].0, kam(5070));
    assert!(ack[0].1.starts_with("ACK sip:far@127.0.0.1:7000"));
    assert_eq!(
        header(&ack[0].1, "Route"),
        Some("<sip:127.0.0.1:5070;transport=tcp;lr>"),
        "our two entries popped, Kamailio's kept"
    );
    assert!(header(&ack[0].1, "Via").is_some_and(|v| v.starts_with("SIP/2.0/TCP")));

    // The far end hangs up: Kamailio's BYE arrives on an inbound connection, its
    // own Route entry already taken off.
    let ours = rr[1..].join(", ");
    let bye = format!(
        "BYE sip:21@127.0.0.1:6021 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKkb\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bKfb\r\nRoute: {ours}\r\nMax-Forwards: 69\r\n\
         From: <sip:0044123@test>;tag=far\r\nTo: <sip:21@test>;tag=caller\r\nCall-ID: out1\r\n\
         CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let fwd = lab.feed_tcp(kam(40001), &bye);
    let fwd = to(&fwd, 6021)[0].to_string();
    assert!(fwd.starts_with("BYE sip:21@127.0.0.1:6021"), "{fwd}");
    assert!(header(&fwd, "Via").is_some_and(|v| v.starts_with("SIP/2.0/UDP")));
    let before = lab.tcp.len();
    lab.feed(6021, &respond(&fwd, 200, "caller", 6021, ""));
    let back = &lab.tcp[before..];
    assert_eq!(
        back.len(),
        1,
        "the 200 goes back on the connection the BYE came on"
    );
    assert_eq!(back[0].0, kam(40001));
    assert_eq!(status(&back[0].1), 200);
    assert_eq!(lab.records()[0].0, CallOutcome::Completed);
}

#[test]
fn a_route_that_is_down_gets_503_with_retry_after_at_once() {
    let mut lab = lab_with("");
    let sent = lab.invite("0044123", "down1");
    let answers: Vec<u16> = to(&sent, 6021).iter().map(|m| status(m)).collect();
    assert_eq!(answers, vec![100, 503], "{sent:?}");
    let final_ = to(&sent, 6021)[1];
    assert_eq!(header(final_, "Retry-After"), Some("30"));
    assert!(lab.tcp.is_empty());
    assert_eq!(lab.sw.links()[0].refused, 1);
    assert_eq!(lab.records()[0].1, 503);
    // Up again: the next call goes out.
    lab.sw.on_link(0, Some(kam(5070)));
    lab.invite("0044123", "down2");
    assert_eq!(tcp_to(&lab, 5070).len(), 1);
}

#[test]
fn emergency_numbers_take_their_own_route_or_ring_locally() {
    let mut lab = connected("");
    lab.invite("112", "e1");
    let e = tcp_to(&lab, 5071);
    assert_eq!(e.len(), 1, "112 goes on the emergency route");
    assert!(e[0].starts_with("INVITE sip:112@127.0.0.1:5071 "));
    assert!(tcp_to(&lab, 5070).is_empty());

    // No emergency route up, emergency_local set: the attendant rings instead.
    let mut lab = lab_with("emergency_local = 36\n");
    let sent = lab.invite("911", "e2");
    assert!(lab.tcp.is_empty());
    assert!(to(&sent, 6036)[0].starts_with("INVITE sip:36@127.0.0.1:6036"));

    // No upstream at all: non-local numbers get 404, emergency too (nothing to ring).
    let mut lab = Lab::new();
    lab.register("21", 6021);
    let sent = lab.invite("0044123", "n1");
    assert_eq!(
        to(&sent, 6021)
            .iter()
            .map(|m| status(m))
            .collect::<Vec<_>>(),
        vec![404]
    );
    let sent = lab.invite("112", "n2");
    assert_eq!(
        to(&sent, 6021)
            .iter()
            .map(|m| status(m))
            .collect::<Vec<_>>(),
        vec![404]
    );
}

#[test]
fn texts_to_numbers_go_to_the_sms_route() {
    let mut lab = connected("");
    let sent = lab.text("21", "0044777", "hello out there", "t1");
    assert!(
        to(&sent, 6021).is_empty(),
        "the answer waits for the upstream's"
    );
    let m = tcp_to(&lab, 5072);
    assert_eq!(m.len(), 1);
    assert!(m[0].starts_with("MESSAGE sip:0044777@127.0.0.1:5072 SIP/2.0\r\n"));
    assert!(m[0].ends_with("hello out there"));
    assert_eq!(
        header(&m[0], "P-Asserted-Identity"),
        Some("\"Extension 21\" <sip:21@test>")
    );
    let ok = lab.feed_tcp(kam(5072), &respond(&m[0], 202, "sms", 5072, ""));
    assert_eq!(status(to(&ok, 6021)[0]), 202);
    assert!(lab
        .events
        .iter()
        .any(|e| matches!(e, Event::Message { to, status: 202, .. } if to == "0044777")));

    lab.sw.on_link(2, None);
    let sent = lab.text("21", "0044777", "again", "t2");
    assert_eq!(status(to(&sent, 6021)[0]), 503);
    assert_eq!(header(to(&sent, 6021)[0], "Retry-After"), Some("30"));
}

#[test]
fn calls_from_upstream_ring_local_phones_with_their_features() {
    let mut lab = connected("");
    // 35 is on DND and forwards on busy to 36.
    lab.command("dnd 35 on");
    lab.command("forward 35 36 busy");
    let sent = lab.feed_tcp(kam(40002), &inbound_invite("35", "in1"));
    assert!(
        sent.iter().all(|(_, m)| status(m) != 407),
        "the upstream peer is not challenged"
    );
    let trying: Vec<_> = sent.iter().filter(|(a, _)| *a == kam(40002)).collect();
    assert_eq!(
        status(&trying[0].1),
        100,
        "answers go back on the connection"
    );
    let inv = to(&sent, 6036)[0].to_string();
    assert!(inv.starts_with("INVITE sip:36@127.0.0.1:6036"), "{inv}");
    let rr = entries(&inv, "Record-Route");
    assert_eq!(rr.len(), 4, "ours and Kamailio's two: {rr:?}");
    assert!(!rr[0].contains("transport"), "UDP side first: {rr:?}");
    assert!(rr[1].contains("transport=tcp"), "then the TCP side: {rr:?}");
    assert!(lab.events.iter().any(
        |e| matches!(e, Event::CallState { from, to, .. } if from == "+441234" && to == "35")
    ));
    let ok = lab.feed(6036, &respond(&inv, 200, "callee", 6036, SDP));
    assert!(ok.iter().any(|(a, m)| *a == kam(40002) && status(m) == 200));

    // The operator hangs up: the far side's BYE follows Kamailio's Record-Route.
    let before = lab.tcp.len();
    lab.command("hangup 36");
    let bye = &lab.tcp[before..];
    assert_eq!(bye.len(), 1, "{bye:?}");
    assert_eq!(bye[0].0, kam(5070), "to Kamailio's TCP side, over our link");
    assert!(bye[0].1.starts_with("BYE sip:+441234@127.0.0.1:7000"));
    assert!(bye[0]
        .1
        .contains("Route: <sip:127.0.0.1:5070;transport=tcp;lr>\r\n"));
}

#[test]
fn the_upstream_reaches_local_numbers_only() {
    let mut lab = connected("");
    let sent = lab.feed_tcp(kam(40003), &inbound_invite("0044999", "transit"));
    let codes: Vec<u16> = sent.iter().map(|(_, m)| status(m)).collect();
    assert!(
        codes.contains(&404),
        "no transit through the switch: {codes:?}"
    );
    assert!(lab.tcp.iter().all(|(_, m)| !m.starts_with("INVITE")));
    let sent = lab.feed_tcp(kam(40003), &inbound_invite("*7836", "code"));
    assert!(
        sent.iter().all(|(_, m)| status(m) != 200),
        "no feature codes"
    );

    // A text from upstream reaches the phone, unchallenged; broadcasts are refused.
    let msg = |to: &str| {
        format!(
            "MESSAGE sip:{to}@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKm{to}\r\n\
             Max-Forwards: 69\r\nFrom: <sip:+441234@provider>;tag=m\r\nTo: <sip:{to}@provider>\r\n\
             Call-ID: msg{to}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        )
    };
    let sent = lab.feed_tcp(kam(40003), &msg("35"));
    assert_eq!(texts(&sent, 6035), vec!["hi"]);
    let sent = lab.feed_tcp(kam(40003), &msg("all"));
    assert_eq!(status(&sent[0].1), 403);

    // Nor does it register extensions.
    let reg = format!(
        "REGISTER sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKreg\r\n\
         From: <sip:35@test>;tag=r\r\nTo: <sip:35@test>\r\nCall-ID: reg-up\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:35@127.0.0.1:9999>\r\nContent-Length: 0\r\n\r\n"
    );
    let sent = lab.feed_tcp(kam(40003), &reg);
    assert_eq!(status(&sent[0].1), 403);
    assert_eq!(sent[0].0, kam(40003));
}

#[test]
fn with_a_peer_secret_the_upstream_answers_a_challenge_too() {
    let mut lab = connected("peer_secret = trunk-pw\n");
    let first = lab.feed_tcp(kam(40004), &inbound_invite("35", "auth1"));
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].0, kam(40004));
    assert_eq!(status(&first[0].1), 407);
    assert!(
        to(&first, 6035).is_empty(),
        "nothing rings before the peer is known"
    );
    let challenge = header(&first[0].1, "Proxy-Authenticate").expect("challenge");
    let uri = format!("sip:35@{SWITCH};transport=tcp");
    let with_challenge = |challenge: &str, password: &str, n: u32| {
        let value = coventryd::sip::digest::answer_challenge(
            challenge, "INVITE", &uri, "upstream", password, "cafe", n,
        )
        .expect("answer");
        inbound_invite("35", &format!("auth{}", n + 1)).replacen(
            "Content-Type:",
            &format!("Proxy-Authorization: {value}\r\nContent-Type:"),
            1,
        )
    };
    let wrong = lab.feed_tcp(kam(40004), &with_challenge(challenge, "guess", 1));
    assert_eq!(status(&wrong[0].1), 403, "{wrong:?}");
    assert!(
        lab.proven.is_empty(),
        "a challenge or a wrong answer proves nothing"
    );
    // That nonce is dead after the wrong answer: even the right one gets a fresh
    // challenge, which then works.
    let again = lab.feed_tcp(kam(40004), &with_challenge(challenge, "trunk-pw", 2));
    assert_eq!(status(&again[0].1), 407, "{again:?}");
    let fresh = header(&again[0].1, "Proxy-Authenticate").expect("fresh challenge");
    let right = lab.feed_tcp(kam(40004), &with_challenge(fresh, "trunk-pw", 3));
    assert_eq!(
        lab.proven,
        vec![kam(40004)],
        "the digest proves its connection"
    );
    let inv = to(&right, 6035);
    assert_eq!(inv.len(), 1, "{right:?}");
    assert!(inv[0].starts_with("INVITE sip:35@127.0.0.1:6035"));
    assert!(
        header(inv[0], "Proxy-Authorization").is_none(),
        "the peer's credentials stay with the switch"
    );
}

#[test]
fn click_to_dial_reaches_a_number_through_the_upstream() {
    let mut lab = connected("");
    let (sent, _) = lab.command("#30 dial 21 0044555");
    let inv_a = to(&sent, 6021)[0].to_string();
    let out = lab.feed(6021, &respond(&inv_a, 200, "ta", 6021, SDP));
    assert!(to(&out, 6021).is_empty(), "A's ACK waits for B's answer");
    let inv_b = tcp_to(&lab, 5070);
    assert_eq!(inv_b.len(), 1, "B is called over the upstream: {out:?}");
    let inv_b = inv_b[0].clone();
    assert!(
        inv_b.starts_with("INVITE sip:0044555@127.0.0.1:5070 SIP/2.0\r\n"),
        "{inv_b}"
    );
    assert!(header(&inv_b, "Via").is_some_and(|v| v.starts_with("SIP/2.0/TCP")));
    assert!(inv_b.ends_with(SDP), "A's offer goes to B byte for byte");
    // B answers through Kamailio, which record-routed.
    let ok = respond(&inv_b, 200, "tb", 7000, SDP).replacen(
        "Contact:",
        "Record-Route: <sip:127.0.0.1:5070;transport=tcp;lr>\r\nContact:",
        1,
    );
    let before = lab.tcp.len();
    let out = lab.feed_tcp(kam(5070), &ok);
    let ack_b = &lab.tcp[before..];
    assert_eq!(ack_b.len(), 1, "{ack_b:?}");
    assert!(
        ack_b[0].1.starts_with("ACK sip:x@127.0.0.1:7000"),
        "{}",
        ack_b[0].1
    );
    assert!(
        ack_b[0]
            .1
            .contains("Route: <sip:127.0.0.1:5070;transport=tcp;lr>\r\n"),
        "the ACK follows B's route set: {}",
        ack_b[0].1
    );
    assert!(to(&out, 6021).iter().any(|m| m.starts_with("ACK ")));
    // A hangs up: B gets its BYE through the upstream.
    let bye = format!(
        "BYE sip:system@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKab\r\n\
         From: {};tag=ta\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        header(&inv_a, "To").unwrap_or(""),
        header(&inv_a, "From").unwrap_or(""),
        header(&inv_a, "Call-ID").unwrap_or("")
    );
    let before = lab.tcp.len();
    let out = lab.feed(6021, &bye);
    assert_eq!(status(to(&out, 6021)[0]), 200);
    let bye_b = &lab.tcp[before..];
    assert!(bye_b
        .iter()
        .any(|(a, m)| *a == kam(5070) && m.starts_with("BYE sip:x@127.0.0.1:7000")));
    assert_eq!(
        lab.records().last().map(|r| r.0),
        Some(CallOutcome::Completed)
    );
}

#[test]
fn transport_tcp_means_tcp_only_towards_the_upstream() {
    let mut lab = connected("[37]\nsecret = pw37\n");
    let bye = |target: &str, call_id: &str| {
        format!(
            "BYE sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKb{call_id}\r\n\
             Route: <sip:{SWITCH};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\n\
             To: <sip:x@test>;tag=far\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // A phone whose contact says TCP is still reached over UDP: the switch
    // speaks TCP only to its upstream peers.
    let phone: SocketAddr = "127.0.0.2:6037".parse().expect("addr");
    let sent = lab.authed_at(phone, "37", "REGISTER", |auth, cseq| {
        format!(
            "REGISTER sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:6037;branch=z9hG4bKr{cseq}\r\n\
             From: <sip:37@test>;tag=r\r\nTo: <sip:37@test>\r\nCall-ID: reg37\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:37@127.0.0.2:6037;transport=tcp>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    });
    assert_eq!(status(&sent[0].1), 200, "{sent:?}");
    let sent = lab.invite("37", "tt1");
    let inv = to(&sent, 6037)[0].to_string();
    assert!(sent.iter().any(|(a, _)| *a == phone), "{sent:?}");
    let ok = respond(&inv, 200, "far", 6037, SDP)
        .replace("127.0.0.1:6037>", "127.0.0.2:6037;transport=tcp>");
    lab.feed_at(phone, &ok);
    let sent = lab.feed(6021, &bye("x@127.0.0.2:6037;transport=tcp", "tt1"));
    assert!(
        sent.iter()
            .any(|(a, m)| *a == phone && m.starts_with("BYE")),
        "{sent:?}"
    );
    assert!(
        lab.tcp.iter().all(|(a, _)| a.port() == 5070),
        "{:?}",
        lab.tcp
    );
    // A far end whose contact is the upstream peer's address with transport=tcp
    // (no Record-Route of its own): its other connection, over TCP.
    lab.invite("0044123", "tt2");
    let inv = tcp_to(&lab, 5070)[0].clone();
    let ok = respond(&inv, 200, "far", 7001, SDP)
        .replace("127.0.0.1:7001>", "127.0.0.1:7001;transport=tcp>");
    lab.feed_tcp(kam(5070), &ok);
    let before = lab.tcp.len();
    lab.feed(6021, &bye("x@127.0.0.1:7001;transport=tcp", "tt2"));
    let sent = &lab.tcp[before..];
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, kam(7001));
    assert!(sent[0].1.contains("Via: SIP/2.0/TCP"));
}

/// A phone that uses the switch as its outbound proxy puts the switch in a
/// Route header; the switch takes its own entry off before the INVITE goes on,
/// to the upstream as to a phone (RFC 3261 16.4), so the upstream never routes
/// the call back to the switch.
#[test]
fn a_call_out_through_the_outbound_proxy_route_loses_that_route() {
    let mut lab = connected("");
    let build = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:0044123@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKr{cseq}\r\n\
             Route: <sip:{SWITCH};lr>\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:0044123@test>\r\nCall-ID: out-route\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    };
    let sent = lab.authed(6021, "21", "INVITE", build);
    assert_eq!(status(to(&sent, 6021)[0]), 100);
    let out = tcp_to(&lab, 5070);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(entries(&out[0], "Route").is_empty(), "{}", out[0]);

    // The same for a text to a number, on the SMS route.
    let build = |auth: &str, cseq: u32| {
        format!(
            "MESSAGE sip:0044777@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKrm{cseq}\r\n\
             Route: <sip:{SWITCH};lr>\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=t\r\nTo: <sip:0044777@test>\r\nCall-ID: text-route\r\n\
             CSeq: {cseq} MESSAGE\r\n{auth}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        )
    };
    lab.authed(6021, "21", "MESSAGE", build);
    let out = tcp_to(&lab, 5072);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(entries(&out[0], "Route").is_empty(), "{}", out[0]);
}

#[test]
fn only_what_the_real_peer_can_send_proves_a_connection() {
    let mut lab = connected("peer_secret = trunk-pw\n");
    // An OPTIONS, or a response the switch never asked for, proves nothing.
    let options = format!(
        "OPTIONS sip:{SWITCH};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:40020;branch=z9hG4bKopt\r\nMax-Forwards: 70\r\n\
         From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:{SWITCH}>\r\nCall-ID: opt\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let ok = lab.feed_tcp(kam(40020), &options);
    assert_eq!(status(&ok[0].1), 200);
    let forged = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKnone\r\n\
                  From: <sip:21@test>;tag=a\r\nTo: <sip:0044123@test>;tag=b\r\nCall-ID: none\r\n\
                  CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    lab.feed_tcp(kam(40021), forged);
    assert!(lab.proven.is_empty(), "{:?}", lab.proven);
    // A response to the INVITE the switch sent the peer, on another of the
    // peer's connections: only the peer saw that branch.
    let build = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:0044123@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKp{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:0044123@test>\r\n\
             Call-ID: prove1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    };
    lab.authed(6021, "21", "INVITE", build);
    let out = tcp_to(&lab, 5070);
    assert_eq!(out.len(), 1, "the INVITE on the link");
    let ringing = respond(&out[0], 180, "far", 7000, "");
    lab.feed_tcp(kam(40022), &ringing);
    assert_eq!(lab.proven, vec![kam(40022)]);
}
