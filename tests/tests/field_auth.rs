//! Digest as real phones live with it, on the daemon's defaults: a refresh with a
//! nonce of the switch's previous run gets `401 stale=true` (never 403, which
//! makes a phone ask for its password); a retransmitted MESSAGE to a phone that
//! never answers is absorbed by its transaction however late it comes (one final
//! response, the 408, never a "replayed nonce" 403); a relayed SUBSCRIBE's
//! retransmission is relayed again, not judged anew.
#![allow(clippy::unwrap_used)]

use coventry_tests::ua::{unique, Msg, Ua};
use coventry_tests::{sip_fence, Conf, Switch, LONG, T};
use std::time::{Duration, Instant};

/// Whether `m` is a final response to `req` (same Call-ID and CSeq).
fn is_final_for(m: &Msg, req: &Msg) -> bool {
    m.call_id() == req.call_id() && m.cseq() == req.cseq() && m.status() >= Some(200)
}

/// Every final response to request `req` that comes while the phone waits
/// `window` (the pause before its next retransmission).
fn finals_for(ua: &Ua, req: &[u8], window: Duration) -> Vec<Msg> {
    let sent = Msg::parse(req, ua.local_addr()).unwrap();
    let until = Instant::now() + window;
    let mut out = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let Some(m) = ua.recv_response(left) else {
            break;
        };
        if is_final_for(&m, &sent) {
            out.push(m);
        }
    }
    out
}

#[test]
fn a_refresh_with_a_nonce_of_the_previous_run_is_stale_not_forbidden() {
    let mut sw = Switch::start(&Conf::new(&[21]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    ua.register(300);
    let (name, value) = ua.last_auth.clone().unwrap();
    // The same address and port after the restart (as a service restarts).
    sw.restart();
    // The phone refreshes with what it used last: the old run's nonce, nc 2.
    let value = value.replace("nc=00000001", "nc=00000002");
    let req = ua.register_request(Some(300), None, Some((&name, &value)));
    let r = ua.transact(&req).expect("an answer to the refresh");
    assert_eq!(r.status(), Some(401), "{}", r.dump());
    assert!(
        r.challenges().iter().all(|c| c.stale),
        "stale=true: {}",
        r.dump()
    );
    // And the phone gets back in with the fresh nonce, no password asked.
    ua.register(300);
}

#[test]
fn a_text_retransmitted_to_a_silent_phone_gets_one_final_response() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut silent = Ua::ext(sw.addr(), 22);
    silent.register(300);
    silent.set_answer(0);
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
    // The challenge, then the MESSAGE with credentials, sent by hand so that its
    // retransmissions can be timed as a phone's are (0.5, 1.5, 3.5, 7.5 s...).
    // When the switch gives up (Timer F, 32 s) and that it answers nothing before
    // is core_messages' business, on the simulated clock; here the field's case
    // on the real daemon: however late they come, the retransmissions get one
    // final answer, and it is the 408.
    let call_id = unique("msg-");
    let req = a.message_request("22", "text/plain", b"hello?", &call_id, None);
    let ch = a.transact(&req).expect("challenge");
    assert_eq!(ch.status(), Some(407), "{}", ch.dump());
    let uri = a.target_uri("22");
    let (n, v) = a.credentials(&ch, "MESSAGE", &uri).unwrap();
    let req = a.message_request("22", "text/plain", b"hello?", &call_id, Some((&n, &v)));
    a.send_raw(&req);
    let start = Instant::now();
    let mut finals = Vec::new();
    for at in [
        500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ] {
        let due = Duration::from_millis(at);
        finals.extend(finals_for(&a, &req, due.saturating_sub(start.elapsed())));
        a.send_raw(&req);
    }
    // Then the 408 (bounded by LONG past Timer F: only stops a hung test).
    let sent = Msg::parse(&req, a.local_addr()).unwrap();
    let deadline = start + Duration::from_secs(32) + LONG;
    while !finals.iter().any(|m| m.status() == Some(408)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = a.recv_response(left) else {
            break;
        };
        if is_final_for(&m, &sent) {
            finals.push(m);
        }
    }
    let statuses: Vec<u16> = finals.iter().filter_map(Msg::status).collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 408),
        "one final answer, 408 when Timer F fired, re-sent for retransmissions only: {statuses:?}"
    );
}

#[test]
fn a_relayed_subscribe_retransmission_is_relayed_again() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(300);
    b.set_answer(0); // it takes its time: the subscriber retransmits
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
    let call_id = unique("sub-");
    let mk = |a: &mut Ua, auth: Option<(&str, &str)>| {
        let cseq = a.next_cseq();
        let uri = a.target_uri("22");
        let mut extra = vec!["Event: presence".to_string(), "Expires: 60".to_string()];
        if let Some((n, v)) = auth {
            extra.push(format!("{n}: {v}"));
        }
        let contact = format!("Contact: <{}>", a.contact_uri());
        extra.push(contact);
        a.build("SUBSCRIBE", &uri, &uri, &call_id, cseq, &extra, &[])
    };
    let req = mk(&mut a, None);
    let ch = a.transact(&req).expect("challenge");
    assert_eq!(ch.status(), Some(407), "{}", ch.dump());
    let uri = a.target_uri("22");
    let (n, v) = a.credentials(&ch, "SUBSCRIBE", &uri).unwrap();
    let req = mk(&mut a, Some((&n, &v)));
    a.send_raw(&req);
    let first = b.expect_request("the SUBSCRIBE", T);
    assert_eq!(first.method().as_deref(), Some("SUBSCRIBE"));
    // The phone's first retransmission: relayed again, not refused. Whatever the
    // switch answers it is in before the answer to a fence sent after it.
    a.send_raw(&req);
    let sent = Msg::parse(&req, a.local_addr()).unwrap();
    let finals: Vec<Msg> = sip_fence(&a)
        .into_iter()
        .filter(|m| is_final_for(m, &sent))
        .collect();
    assert!(
        finals.is_empty(),
        "no answer of the switch's own to a retransmission: {:?}",
        finals.iter().map(Msg::summary).collect::<Vec<_>>()
    );
    assert!(
        b.wait_received(&first, 2, T),
        "the retransmission reached the phone"
    );
}
