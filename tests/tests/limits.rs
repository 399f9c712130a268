//! Limits that keep one authenticated phone from turning the switch against
//! others (issue 20), probed end to end against the real daemon: a phone's
//! SUBSCRIBE whose Contact names a third party must not make the switch send
//! that party anything.
#![allow(clippy::unwrap_used)]

use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::{unique, Msg, Ua};
use coventry_tests::{Conf, Switch, T};
use std::net::UdpSocket;

/// 21 subscribes to 35's dialog state with a Contact naming `contact`; the
/// final response.
fn subscribe_naming(p: &mut Ua, contact: &str) -> Msg {
    let ruri = p.target_uri("35");
    let (call_id, tag) = (unique("sub-"), unique("t"));
    let mk = |p: &Ua, cseq: u32, auth: Option<String>| {
        let mut extra = vec![
            format!("Contact: <sip:21@{contact}>"),
            "Event: dialog".to_string(),
            "Expires: 600".to_string(),
        ];
        extra.extend(auth);
        p.build_request(
            "SUBSCRIBE",
            &ruri,
            &unique("z9hG4bK"),
            &format!("<{}>;tag={tag}", p.aor()),
            &format!("<{ruri}>"),
            &call_id,
            cseq,
            &extra,
            None,
        )
    };
    let cid = call_id.clone();
    let mine = move |m: &Msg| m.call_id() == Some(cid.as_str());
    let first = p
        .transact_where(&mk(p, 1, None), false, &mine)
        .expect("challenge");
    assert_eq!(first.status(), Some(407), "{}", first.dump());
    let (n, v) = p.credentials(&first, "SUBSCRIBE", &ruri).expect("creds");
    p.transact_where(&mk(p, 2, Some(format!("{n}: {v}"))), false, &mine)
        .expect("answer")
}

#[test]
fn busy_lamp_notifies_never_reflect_to_a_third_party() {
    let sw = Switch::start(&Conf::new(&[21, 35]).build());
    let mut p21 = Ua::ext(sw.addr(), 21);
    p21.register(300);
    // The third party: a stranger's address that never asked for anything.
    let victim = UdpSocket::bind("127.0.0.2:0").unwrap();
    victim.set_nonblocking(true).unwrap();
    let ok = subscribe_naming(&mut p21, &victim.local_addr().unwrap().to_string());
    assert_eq!(ok.status(), Some(200), "{}", ok.dump());
    for state in ["on", "off"] {
        let o = sw.pbxctl(&["dnd", "35", state]);
        assert!(o.status.success(), "{o:?}");
    }
    // The fence: the subscriber got the initial NOTIFY and one per change; any
    // NOTIFY toward the third party would have left with them.
    for n in 0..3 {
        p21.expect_method("NOTIFY", &format!("NOTIFY {n} to the subscriber itself"), T);
    }
    let mut buf = [0u8; 4096];
    match victim.recv_from(&mut buf) {
        Ok((len, from)) => panic!(
            "the third party got a datagram from {from}:\n{}",
            String::from_utf8_lossy(&buf[..len])
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
    }
}

#[test]
fn a_phone_makes_at_most_eight_calls_at_once() {
    let sw = Switch::start(&Conf::new(&[21, 35, 36]).build());
    let mut p21 = Ua::ext(sw.addr(), 21);
    p21.register(300);
    let mut p35 = Ua::ext(sw.addr(), 35);
    p35.register(300);
    let offer = sdp("21", 1, "sendrecv");
    // 35 rings eight times and answers none of them: eight calls stay up.
    let mut calls = Vec::new();
    for n in 0..8 {
        calls.push(p21.call_start("35", &offer));
        p35.expect_invite(&format!("call {n} rings"), T);
    }
    let mut ninth = p21.call_start("35", &offer);
    let refusal = p21.call_expect_final(&mut ninth, 503, T);
    assert_eq!(
        refusal.header("Retry-After"),
        Some("10"),
        "{}",
        refusal.dump()
    );
    assert!(sw.snapshot().body.counters.limited >= 1);
    // Another line is not held back by 21's calls.
    let mut p36 = Ua::ext(sw.addr(), 36);
    p36.register(300);
    let mut other = p36.call_start("35", &sdp("36", 1, "sendrecv"));
    p35.expect_invite("36's call rings", T);
    // 21 gives one up: room for one more.
    let first = calls.remove(0);
    assert_eq!(p21.cancel(&first).and_then(|r| r.status()), Some(200));
    let again = p21.call_start("35", &offer);
    p35.expect_invite("21's call after one ended", T);
    for c in calls.iter().chain([&again]) {
        assert_eq!(p21.cancel(c).and_then(|r| r.status()), Some(200));
    }
    assert_eq!(p36.cancel(&other).and_then(|r| r.status()), Some(200));
    p36.call_expect_final(&mut other, 487, T);
}

#[test]
fn a_phone_cannot_bind_a_contact_no_phone_has() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mut p21 = Ua::ext(sw.addr(), 21);
    let own = format!("<sip:21@{}>", sw.addr());
    for contact in [
        "<sip:21@224.0.0.1:5060>",
        "<sip:21@255.255.255.255:5060>",
        "<sip:21@0.0.0.0:5060>",
        own.as_str(),
    ] {
        let ex = p21.register_exchange(Some(300), Some(contact));
        assert_eq!(
            ex.status(),
            403,
            "{contact}: {:?}",
            ex.response.map(|r| r.dump())
        );
    }
    assert!(sw.contacts(21).is_empty(), "nothing was bound");
    p21.register(300);
}

#[test]
fn forwards_never_reach_emergency_or_unallowed_outside_numbers() {
    let sw = Switch::start(&Conf::new(&[21, 35]).build());
    for target in ["112", "911", "09001234567"] {
        let o = sw.pbxctl(&["forward", "21", target]);
        assert!(
            !o.status.success(),
            "forward 21 {target} was accepted: {o:?}"
        );
    }
    assert!(sw.pbxctl(&["forward", "21", "35"]).status.success());
}

#[test]
fn a_callee_sees_the_display_name_the_operator_set() {
    let sw = Switch::start(&Conf::new(&[35]).ext_line(21, "display = Reception").build());
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
    let mut b = Ua::ext(sw.addr(), 35);
    b.register(300);
    let mut call = a.call_start("35", &sdp("21", 1, "sendrecv"));
    let inv = b.expect_invite("21's call", T);
    let from = inv.header("From").unwrap_or_default();
    assert!(from.starts_with("\"Reception\" <sip:21@"), "{}", inv.dump());
    b.respond(&inv, 486, None);
    a.call_expect_final(&mut call, 486, T);
}

/// `pbxctl records [--attempts] --json` in the switch's state directory.
fn records_of(sw: &Switch, attempts: bool) -> Vec<serde_json::Value> {
    let dir = sw.state_dir().to_str().unwrap().to_string();
    let mut args = vec!["records", "--state-dir", &dir, "--json"];
    if attempts {
        args.push("--attempts");
    }
    let out = sw.pbxctl(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

#[test]
fn junk_calls_from_a_phone_elsewhere_cannot_wipe_the_call_history() {
    let mut sw = Switch::start(&Conf::new(&[21, 35]).build());
    let mut b = Ua::ext(sw.addr(), 35);
    b.register(300);
    // 21's password is known on 127.0.0.2: a real call, then 200 junk calls.
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut a = Ua::with_socket(sock, sw.addr(), "21", &coventry_tests::secret(21));
    a.register(300);
    let mut call = a.call_start("35", &sdp("21", 1, "sendrecv"));
    let inv = b.expect_invite("the real call", T);
    b.respond(&inv, 486, None);
    a.call_expect_final(&mut call, 486, T);
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let mut junk = a.call_start("99", &sdp("21", 1, "sendrecv"));
        a.call_expect_final(&mut junk, 404, T);
    }
    // The budget is 20 a minute from the first: as many minutes as the run took.
    let minutes = started.elapsed().as_secs() as usize / 60 + 1;
    let calls = records_of(&sw, false);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "busy");
    let attempts = records_of(&sw, true);
    assert!(
        (20..=20 * minutes).contains(&attempts.len()),
        "20 a minute over {minutes} minute(s): {}",
        attempts.len()
    );
    sw.stop();
    assert!(
        sw.log().contains("call records: caller=\"21\" left_out="),
        "{}",
        sw.log()
    );
}
