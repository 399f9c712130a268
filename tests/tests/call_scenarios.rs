//! Self-test of the call scenarios and of the in-test UA's call support, with no
//! daemon: the UA plays the switch against each sipp scenario (sending the INVITE
//! to a sipp callee, or challenging and answering a sipp caller), checking what
//! the scenarios send — branches of the hop-by-hop ACK and CANCEL, route sets,
//! digest answers — and that the sipp trace parser gives back exact bytes. This
//! tells a broken scenario or UA from a broken switch.
#![allow(clippy::unwrap_used)]

use coventry_tests::sipp::{trace_messages, Sipp, SippRun};
use coventry_tests::ua::dialog::{sdp, tag_of, uri_of, SDP};
use coventry_tests::ua::{digest_response, parse_params, Algo, Msg, Ua};
use std::net::SocketAddr;
use std::time::Duration;

const W: Duration = Duration::from_secs(5);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A UA playing the switch towards a sipp phone listening on `port`.
fn switch_ua(port: u16) -> Ua {
    let mut ua = Ua::new(local(port), "21", "x");
    ua.domain = local(port).to_string();
    ua
}

fn rr(ua: &Ua) -> String {
    format!("<sip:{};lr>", ua.local_addr())
}

fn body_of(run: &SippRun, start: &str, sent: bool) -> Vec<u8> {
    let m = if sent {
        run.sent(start)
    } else {
        run.received(start)
    };
    match m.first() {
        Some(m) => m.body.clone(),
        None => panic!(
            "sipp never {} {start}:\n{}",
            if sent { "sent" } else { "received" },
            run.report()
        ),
    }
}

#[test]
fn trace_parser_keeps_exact_bytes() {
    let t = "----------------------------------------------- 2026-01-01 00:00:00.1\n\
             UDP message sent (8 bytes):\n\nA\r\nB\n\nCD\n\n\
             ----------------------------------------------- 2026-01-01 00:00:00.2\n\
             UDP message received [4] bytes :\n\nxy\r\n\n";
    let m = trace_messages(t);
    assert_eq!(m.len(), 2);
    assert!(m[0].sent);
    assert_eq!(m[0].bytes, b"A\r\nB\n\nCD");
    assert!(!m[1].sent);
    assert_eq!(m[1].bytes, b"xy\r\n");
}

#[test]
fn uas_call_answers_and_takes_bye() {
    let uas = Sipp::new("uas_call.xml")
        .key("ext", "22")
        .set("ring", "100")
        .set("linger", "0")
        .spawn();
    let mut sw = switch_ua(uas.port());
    let offer = sdp("21", 1, "sendrecv");
    let mut call = sw.call_start_raw("22", &offer, Some(&format!("Record-Route: {}", rr(&sw))));
    let ringing = sw.call_expect(&mut call, 180, W);
    assert_eq!(ringing.header("Record-Route"), Some(rr(&sw).as_str()));
    let ok = sw.call_expect(&mut call, 200, W);
    assert_eq!(ok.header("Record-Route"), Some(rr(&sw).as_str()));
    assert_eq!(ok.header("Content-Type"), Some(SDP));
    assert!(ok.text().starts_with("v=0\r\n"), "{}", ok.dump());
    let contact = uri_of(ok.header("Contact").unwrap());
    assert_eq!(contact, format!("sip:22@127.0.0.1:{}", uas.port()));
    sw.ack(&mut call);
    let d = call.dialog();
    assert_eq!(d.route, vec![rr(&sw)]);
    assert_eq!(d.remote_target, contact);
    let bye = sw.bye(call.dialog());
    assert_eq!(bye.status(), 200);
    let run = uas.wait();
    run.assert_success("uas_call.xml");
    assert_eq!(
        body_of(&run, "INVITE ", false),
        offer,
        "the trace gives the exact body"
    );
    let ack = &run.received("ACK ")[0];
    assert!(ack.header("Route").is_some(), "{}", ack.dump());
    assert_eq!(ack.uri().unwrap(), contact);
}

#[test]
fn uas_call_bye_hangs_up_along_the_route() {
    let uas = Sipp::new("uas_call_bye.xml")
        .key("ext", "22")
        .set("ring", "0")
        .set("hold", "200")
        .spawn();
    let mut sw = switch_ua(uas.port());
    let mut call = sw.call_start_raw(
        "22",
        &sdp("21", 1, "sendrecv"),
        Some(&format!("Record-Route: {}", rr(&sw))),
    );
    sw.call_expect(&mut call, 200, W);
    sw.ack(&mut call);
    let bye = sw.expect_method("BYE", "BYE from the sipp callee", W);
    assert_eq!(bye.uri().unwrap(), sw.contact_uri());
    assert_eq!(bye.header("Route"), Some(rr(&sw).as_str()));
    let d = call.dialog().clone();
    assert_eq!(tag_of(bye.header("To").unwrap()), Some(d.local_tag.clone()));
    assert_eq!(
        tag_of(bye.header("From").unwrap()),
        Some(d.remote_tag.clone())
    );
    uas.wait().assert_success("uas_call_bye.xml");
}

#[test]
fn uas_busy_refuses_and_takes_the_ack() {
    for (status, scenario) in [(486, "uas_busy.xml"), (603, "uas_reject.xml")] {
        let uas = Sipp::new(scenario).set("linger", "0").spawn();
        let mut sw = switch_ua(uas.port());
        let mut call = sw.call_start_raw("22", &sdp("21", 1, "sendrecv"), None);
        sw.call_expect_final(&mut call, status, W);
        let run = uas.wait();
        run.assert_success(scenario);
        let ack = &run.received("ACK ")[0];
        assert_eq!(ack.branch(), Some(call.branch.clone()), "hop-by-hop ACK");
    }
}

#[test]
fn uas_ring_cancel_answers_the_cancel() {
    let uas = Sipp::new("uas_ring_cancel.xml").key("ext", "22").spawn();
    let mut sw = switch_ua(uas.port());
    let mut call = sw.call_start_raw("22", &sdp("21", 1, "sendrecv"), None);
    sw.call_expect(&mut call, 180, W);
    let c = sw.cancel(&call).expect("200 to CANCEL");
    assert_eq!(c.status(), Some(200));
    sw.call_expect_final(&mut call, 487, W);
    uas.wait().assert_success("uas_ring_cancel.xml");
}

#[test]
fn uas_reinvite_holds_and_resumes() {
    let uas = Sipp::new("uas_reinvite.xml").key("ext", "22").spawn();
    let mut sw = switch_ua(uas.port());
    let mut call = sw.call_start_raw(
        "22",
        &sdp("21", 1, "sendrecv"),
        Some(&format!("Record-Route: {}", rr(&sw))),
    );
    sw.call_expect(&mut call, 200, W);
    sw.ack(&mut call);
    let hold = sdp("21", 2, "sendonly");
    let r = sw.reinvite(call.dialog(), &hold);
    assert_eq!(r.status(), 200);
    assert!(r.response().text().contains("a=recvonly"));
    let r = sw.reinvite(call.dialog(), &sdp("21", 3, "sendrecv"));
    assert_eq!(r.status(), 200);
    assert!(r.response().text().contains("a=sendrecv"));
    assert_eq!(sw.bye(call.dialog()).status(), 200);
    let run = uas.wait();
    run.assert_success("uas_reinvite.xml");
    let invites = run.received("INVITE ");
    assert_eq!(invites.len(), 3, "{}", run.report());
    assert_eq!(invites[1].body, hold);
}

/// The switch side of a sipp caller: challenge the first INVITE (407, MD5),
/// check the hop-by-hop ACK and the digest answer; returns the authenticated
/// INVITE.
fn challenge(sw: &Ua, caller: &str, password: &str) -> Msg {
    let inv1 = sw.expect_invite("first INVITE", W);
    sw.respond_with(
        &inv1,
        407,
        &["Proxy-Authenticate: Digest realm=\"test\", nonce=\"n0nce\", algorithm=MD5, qop=\"auth\"".into()],
        None,
    );
    let ack = sw.expect_method("ACK", "ACK of the 407", W);
    assert_eq!(
        ack.branch(),
        inv1.branch(),
        "ACK of a non-2xx keeps the INVITE's branch"
    );
    assert_eq!(ack.cseq(), Some((1, "ACK".to_string())));
    let inv2 = sw.expect_invite("authenticated INVITE", W);
    let auth = inv2
        .header("Proxy-Authorization")
        .expect("Proxy-Authorization");
    let p = parse_params(auth.strip_prefix("Digest ").unwrap());
    let g = |k: &str| {
        p.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(g("username"), caller);
    assert_eq!(
        g("uri"),
        format!("sip:{}", sw.local_addr()),
        "-auth_uri names the switch"
    );
    let want = digest_response(
        Algo::Md5,
        caller,
        "test",
        password,
        "INVITE",
        &g("uri"),
        "n0nce",
        Some((&g("qop"), &g("nc"), &g("cnonce"))),
    );
    assert_eq!(g("response"), want);
    assert_eq!(inv2.header("Content-Type"), Some(SDP));
    inv2
}

fn uac(name: &str, sw_addr: SocketAddr) -> Sipp {
    let s = Sipp::new(name)
        .remote(sw_addr)
        .key("ext", "21")
        .key("target", "22")
        .auth("21", "pw21")
        .auth_uri(&sw_addr.to_string());
    match name {
        "uac_call.xml" | "uac_call_hold.xml" => s.set("hold", "100"),
        "uac_call_cancel.xml" => s.set("ring", "100").set("linger", "0"),
        _ => s.set("linger", "0"),
    }
}

#[test]
fn uac_call_authenticates_and_hangs_up() {
    let port = coventry_tests::free_udp_port();
    let mut sw = Ua::new(local(port), "22", "x");
    sw.domain = local(port).to_string();
    let s = uac("uac_call.xml", sw.local_addr());
    let caller_port = s.local_port();
    sw.server = local(caller_port);
    let run = s.spawn();
    let inv = challenge(&sw, "21", "pw21");
    let extra = vec![format!("Record-Route: {}", rr(&sw))];
    sw.respond(&inv, 100, None);
    sw.respond_with(&inv, 180, &extra, None);
    let answer = sdp("22", 1, "sendrecv");
    sw.respond_with(&inv, 200, &extra, Some((SDP, &answer)));
    let ack = sw.expect_method("ACK", "ACK of the 200", W);
    assert_eq!(
        ack.uri().unwrap(),
        sw.contact_uri(),
        "[next_url] = our Contact"
    );
    assert_eq!(ack.header("Route"), Some(rr(&sw).as_str()), "[routes]");
    let bye = sw.expect_method("BYE", "BYE from the caller", W);
    assert_eq!(bye.uri().unwrap(), sw.contact_uri());
    assert_eq!(bye.header("Route"), Some(rr(&sw).as_str()));
    let run = run.wait();
    run.assert_success("uac_call.xml");
    assert_eq!(
        body_of(&run, "INVITE ", true),
        inv.body,
        "sent = received, exactly"
    );
    assert_eq!(body_of(&run, "SIP/2.0 200", false), answer);
}

#[test]
fn uac_call_remote_bye_answers_the_callee() {
    let port = coventry_tests::free_udp_port();
    let mut sw = Ua::new(local(port), "22", "x");
    sw.domain = local(port).to_string();
    let s = uac("uac_call_remote_bye.xml", sw.local_addr());
    sw.server = local(s.local_port());
    let run = s.spawn();
    let inv = challenge(&sw, "21", "pw21");
    let extra = vec![format!("Record-Route: {}", rr(&sw))];
    sw.respond_with(&inv, 200, &extra, Some((SDP, &sdp("22", 1, "sendrecv"))));
    sw.expect_method("ACK", "ACK of the 200", W);
    let mut d = sw.dialog_as_callee(&inv);
    assert!(d.route.is_empty(), "no proxy in between: {:?}", d.route);
    assert_eq!(
        d.remote_target,
        format!("sip:21@127.0.0.1:{}", sw.server.port())
    );
    assert_eq!(sw.bye(&mut d).status(), 200);
    run.wait().assert_success("uac_call_remote_bye.xml");
}

#[test]
fn uac_call_fail_acks_the_final() {
    for status in [486, 404, 480, 603] {
        let port = coventry_tests::free_udp_port();
        let mut sw = Ua::new(local(port), "22", "x");
        sw.domain = local(port).to_string();
        let s = uac("uac_call_fail.xml", sw.local_addr());
        sw.server = local(s.local_port());
        let run = s.spawn();
        let inv = challenge(&sw, "21", "pw21");
        sw.respond(&inv, 100, None);
        sw.respond(&inv, status, None);
        let ack = sw.expect_method("ACK", "ACK of the failure", W);
        assert_eq!(
            ack.branch(),
            inv.branch(),
            "hop-by-hop ACK keeps the branch"
        );
        assert_eq!(ack.cseq(), Some((2, "ACK".to_string())));
        let run = run.wait();
        run.assert_success("uac_call_fail.xml");
        assert!(
            run.logs.contains(&format!("final: {status}")),
            "{}",
            run.report()
        );
    }
}

#[test]
fn uac_call_cancel_cancels_the_invite() {
    let port = coventry_tests::free_udp_port();
    let mut sw = Ua::new(local(port), "22", "x");
    sw.domain = local(port).to_string();
    let s = uac("uac_call_cancel.xml", sw.local_addr());
    sw.server = local(s.local_port());
    let run = s.spawn();
    let inv = challenge(&sw, "21", "pw21");
    sw.respond(&inv, 180, None);
    let cancel = sw.expect_method("CANCEL", "CANCEL from the caller", W);
    assert_eq!(cancel.branch(), inv.branch());
    assert_eq!(cancel.cseq(), Some((2, "CANCEL".to_string())));
    assert_eq!(cancel.uri(), inv.uri());
    let ack = sw.expect_method("ACK", "ACK of the 487", W);
    assert_eq!(ack.branch(), inv.branch());
    assert_eq!(sw.invite_final(&inv), Some(487));
    run.wait().assert_success("uac_call_cancel.xml");
}

#[test]
fn uac_call_hold_sends_reinvites_along_the_route() {
    let port = coventry_tests::free_udp_port();
    let mut sw = Ua::new(local(port), "22", "x");
    sw.domain = local(port).to_string();
    let s = uac("uac_call_hold.xml", sw.local_addr());
    sw.server = local(s.local_port());
    let run = s.spawn();
    let inv = challenge(&sw, "21", "pw21");
    let extra = vec![format!("Record-Route: {}", rr(&sw))];
    sw.respond_with(&inv, 200, &extra, Some((SDP, &sdp("22", 1, "sendrecv"))));
    sw.expect_method("ACK", "ACK of the 200", W);
    for (cseq, direction) in [(3, "a=sendonly"), (4, "a=sendrecv")] {
        let re = sw.expect_invite("re-INVITE", W);
        assert_eq!(re.cseq(), Some((cseq, "INVITE".to_string())));
        assert_eq!(re.uri().unwrap(), sw.contact_uri());
        assert_eq!(re.header("Route"), Some(rr(&sw).as_str()));
        assert!(re.text().contains(direction), "{}", re.dump());
        sw.respond_sdp(&re, 200, &sdp("22", cseq, "sendrecv"));
        let ack = sw.expect_method("ACK", "ACK of the re-INVITE", W);
        assert_eq!(ack.cseq(), Some((cseq, "ACK".to_string())));
    }
    sw.expect_method("BYE", "BYE", W);
    run.wait().assert_success("uac_call_hold.xml");
}
