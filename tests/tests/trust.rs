//! The switch's trust boundaries end to end, probed as an attacker on the same
//! network would: a stranger on 127.0.0.2 with no secret sends every method with
//! a Route naming the switch (its address, `0.0.0.0`, its Record-Route token),
//! toward a number outside (toll fraud through a real Kamailio upstream), toward
//! a phone's contact and toward a third address; it forges responses to a text
//! and to a ringing call with the branches the switch really used; it CANCELs a
//! call it learnt about. The real phones (in-test UAs on 127.0.0.1) and the
//! upstream must see nothing of it, the stranger only refusals, and the
//! switch's `refused` counter and log must say what happened.
#![allow(clippy::unwrap_used)]

use coventry_shared::stateblock::call_state::{ANSWERED, RINGING};
use coventry_tests::kamailio::{free_udp_tcp_port, Kamailio, KamailioPorts};
use coventry_tests::ua::dialog::{sdp, SDP};
use coventry_tests::ua::{response_to, response_with, unique, Msg, Ua};
use coventry_tests::{
    fenced_request, free_udp_port, pin_listen_port, poll_until, raw_fence, sip_fence, Conf,
    SnapshotExt, Switch, LONG, T,
};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Kamailio as the upstream and the switch on its defaults plus `[upstream]`.
fn rig() -> (Kamailio, Switch) {
    let port = free_udp_tcp_port();
    let k = Kamailio::start(KamailioPorts {
        coventry: port,
        uas: free_udp_port(),
        emergency_uas: free_udp_port(),
        sms_uas: free_udp_port(),
    })
    .unwrap_or_else(|e| panic!("Kamailio did not start:\n{e}"));
    let conf = Conf::new(&[21, 22, 23])
        .section("upstream", &format!("route = {}", k.main_addr()))
        .section("upstream", "emergency = 112");
    let sw = Switch::start(&pin_listen_port(&conf.build(), port));
    let up = poll_until(Duration::from_secs(15), || {
        sw.snapshot()
            .routes()
            .all(|r| r.state() == coventry_shared::event::RouteState::Connected)
            .then_some(())
    });
    assert!(up.is_some(), "the upstream never connected:\n{}", sw.log());
    (k, sw)
}

fn phone(sw: &Switch, ext: u16) -> Ua {
    let mut p = Ua::ext(sw.addr(), ext);
    p.register(300);
    p
}

/// The stranger: a socket on 127.0.0.2 (any port).
fn stranger() -> UdpSocket {
    UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2")
}

/// Kamailio's own log lines for requests that reached it over TCP (anything
/// the switch relayed), ignoring the rig's readiness probes.
fn upstream_requests(k: &Kamailio) -> Vec<String> {
    k.rig_log()
        .lines()
        .filter(|l| l.contains("rig: in ") && l.contains("from tcp:") && !l.contains(" OPTIONS "))
        .map(str::to_string)
        .collect()
}

/// A fence through the upstream link: `p` calls a number outside, which the
/// switch sends over the same TCP connection as anything it relayed before; once
/// Kamailio logged that INVITE, it logged whatever came before it. Returns the
/// number (its lines are the fence's).
fn upstream_fence(k: &Kamailio, p: &mut Ua) -> String {
    let number = format!("00990{}", std::process::id());
    let _call = p.call_start(&number, &sdp(&p.user, 1, "sendrecv"));
    let needle = format!("rig: in INVITE sip:{number}@");
    let seen = poll_until(LONG, || k.rig_log().contains(&needle).then_some(()));
    assert!(
        seen.is_some(),
        "the fence call never reached Kamailio:\n{}",
        k.report()
    );
    number
}

#[allow(clippy::too_many_arguments)]
fn forged(
    method: &str,
    ruri: &str,
    route: &str,
    call_id: &str,
    to_tag: &str,
    me: SocketAddr,
    n: usize,
) -> String {
    let extra = match method {
        "INVITE" => "P-Asserted-Identity: <sip:+441111111111@provider>\r\n",
        "NOTIFY" => "Event: check-sync;reboot=true\r\nSubscription-State: active\r\n",
        "SUBSCRIBE" | "PUBLISH" => "Event: presence\r\nExpires: 60\r\n",
        "REFER" => "Refer-To: <sip:00441234567890@127.0.0.1>\r\n",
        _ => "",
    };
    let body: &[u8] = if method == "INVITE" { b"v=0\r\n" } else { b"" };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKevil{n};rport\r\n\
         Route: {route}\r\nMax-Forwards: 70\r\nFrom: <sip:21@evil>;tag=evil\r\nTo: <sip:22@evil>{to_tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: {n} {method}\r\nContact: <sip:evil@{me}>\r\n{extra}\
         Content-Length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    )
}

#[test]
fn nothing_a_stranger_sends_through_the_switch_leaves_it() {
    let (k, sw) = rig();
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    // A live call whose Call-ID, tags and Record-Route the stranger learns.
    let mut call = a.call_start("22", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 100, T);
    let inv = b.expect_invite("the call", T);
    b.respond_sdp(&inv, 200, &sdp("22", 1, "sendrecv"));
    let ok = a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    b.expect_method("ACK", "ACK of the 200", T);
    sw.wait_call_state(&call.call_id, ANSWERED);
    let rr = ok.list("Record-Route");
    let token = rr[0]
        .split(';')
        .find(|p| p.starts_with("cv="))
        .unwrap()
        .trim_end_matches('>')
        .to_string();
    let port = sw.addr().port();
    let routes = [
        format!("<sip:{};lr>", sw.host()),
        format!("<sip:0.0.0.0:{port};lr>"),
        format!("<sip:198.51.100.7:5060;lr;{token}>"),
        rr.join(", "),
    ];
    let upstream = k.main_addr();
    let targets = [
        format!("sip:00441234567890@{upstream};transport=tcp"),
        format!("sip:112@{upstream};transport=tcp"),
        b.contact_uri(),
        "sip:x@127.0.0.3:5060".to_string(),
    ];
    let dialogs = [
        ("evil-1@x".to_string(), String::new()),
        ("evil-2@x".to_string(), ";tag=guess".to_string()),
        (
            call.call_id.clone(),
            format!(";tag={}", call.dialog().remote_tag.clone()),
        ),
    ];
    let s = stranger();
    let me = s.local_addr().unwrap();
    let mut n = 0;
    for method in [
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
    ] {
        for route in &routes {
            for target in &targets {
                for (call_id, to_tag) in &dialogs {
                    n += 1;
                    let msg = forged(method, target, route, call_id, to_tag, me, n);
                    s.send_to(msg.as_bytes(), sw.addr()).unwrap();
                }
            }
        }
    }
    // Everything the stranger sent is dealt with once its fence is answered: its
    // answers are in, and whatever the switch sent anyone for it has left.
    for reply in raw_fence(&s, sw.addr()) {
        let code: u16 = reply[8..11].parse().unwrap_or(0);
        assert!(
            (400..500).contains(&code) || code == 100,
            "the stranger gets refusals and challenges only: {reply}"
        );
    }
    for (p, who) in [(&a, "caller"), (&b, "callee")] {
        sip_fence(p);
        let got = p.recv_request(Duration::from_millis(50));
        assert!(
            got.is_none(),
            "the {who} got {}",
            got.map(|m| m.dump()).unwrap_or_default()
        );
    }
    let mut c = phone(&sw, 23);
    let fence = upstream_fence(&k, &mut c);
    let relayed: Vec<String> = upstream_requests(&k)
        .into_iter()
        .filter(|l| !l.contains(&fence))
        .collect();
    assert_eq!(relayed, Vec::<String>::new(), "nothing went upstream");
    let s2 = sw.snapshot();
    assert_eq!(
        s2.call_by_sip_id(&call.call_id).map(|c| c.state),
        Some(ANSWERED),
        "the live call goes on"
    );
    assert!(s2.body.counters.refused > 0, "{:?}", s2.body.counters);
    let calls = sw.pbxctl(&["calls", "--json"]);
    let text = String::from_utf8_lossy(&calls.stdout);
    assert!(!text.contains("0044"), "no call of the stranger's: {text}");
    assert!(sw.log().contains("from a stranger"), "{}", sw.log());
    // The real parties still talk: the caller hangs up.
    assert_eq!(a.bye(call.dialog()).status(), 200);
}

#[test]
fn forged_answers_to_a_ringing_call_and_a_text_are_ignored() {
    let (_k, sw) = rig();
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    let c = phone(&sw, 23);
    // A ringing call: another extension (23, a registered phone) and the
    // stranger answer it with the branch the switch really sent to 22.
    let mut call = a.call_start("22", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 100, T);
    let inv = b.expect_invite("the call", T);
    b.respond(&inv, 180, None);
    a.call_expect(&mut call, 180, T);
    sw.wait_call_state(&call.call_id, RINGING);
    let forged_ok = response_with(
        &inv,
        200,
        &["Contact: <sip:thief@127.0.0.2:5060>".to_string()],
        Some((SDP, &sdp("thief", 1, "sendrecv"))),
    );
    c.send_raw(&forged_ok);
    let s = stranger();
    s.send_to(&forged_ok, sw.addr()).unwrap();
    // Both forgeries are dealt with once their senders' fences are answered; what
    // the switch sent the caller and the callee for them is in by their fences.
    sip_fence(&c);
    raw_fence(&s, sw.addr());
    let to_caller: Vec<String> = sip_fence(&a)
        .iter()
        .filter(|m| m.call_id() == Some(call.call_id.as_str()))
        .map(Msg::summary)
        .collect();
    assert!(
        to_caller.is_empty(),
        "no forged answer reaches the caller: {to_caller:?}"
    );
    assert!(
        fenced_request(&b, "CANCEL").is_none(),
        "the callee keeps ringing"
    );
    // The real answer still connects the call.
    b.respond_sdp(&inv, 200, &sdp("22", 1, "sendrecv"));
    let ok = a.call_expect(&mut call, 200, T);
    assert!(!ok.text().contains("thief"), "{}", ok.dump());
    a.ack(&mut call);
    sw.wait_call_state(&call.call_id, ANSWERED);

    // A text 21 → 23 that 23 does not answer yet: a stranger's 200 with the
    // right branch is no delivery receipt. The MESSAGE is sent by hand (challenge,
    // then with credentials) so the sender's answers can be looked at.
    c.set_answer(0);
    let mut sender = phone(&sw, 21);
    let call_id = unique("text-");
    let req = sender.message_request("23", "text/plain", b"hello", &call_id, None);
    let ch = sender.transact(&req).expect("the challenge");
    let uri = sender.target_uri("23");
    let (n, v) = sender.credentials(&ch, "MESSAGE", &uri).unwrap();
    let req = sender.message_request("23", "text/plain", b"hello", &call_id, Some((&n, &v)));
    sender.send_raw(&req);
    let msg = c.expect_request("the text", T);
    let fake = response_to(&msg, 200);
    s.send_to(&fake, sw.addr()).unwrap();
    // The fake is dealt with once the stranger's fence is answered; a receipt it
    // caused would be at the sender before the sender's fence is answered.
    raw_fence(&s, sw.addr());
    let early: Vec<String> = sip_fence(&sender)
        .iter()
        .filter(|m| m.call_id() == Some(call_id.as_str()))
        .map(Msg::summary)
        .collect();
    assert!(
        early.is_empty(),
        "the sender is still waiting for the real receipt: {early:?}"
    );
    c.send_raw(&response_to(&msg, 200));
    let receipt = poll_until(T, || {
        sender
            .recv_response(Duration::from_millis(100))
            .filter(|m| m.call_id() == Some(call_id.as_str()))
    })
    .expect("the real receipt");
    assert_eq!(receipt.status(), Some(200), "{}", receipt.dump());
    let refused = sw.snapshot().body.counters.refused;
    assert!(refused >= 3, "refused {refused}");
}
