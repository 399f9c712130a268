//! A text to a phone that never answers, on the simulated clock: the sender's
//! retransmissions are absorbed by the transaction however late they come, the
//! switch answers nothing until its own transaction gives up (Timer F, 64 x T1 =
//! 32 s), then 408 once, and that 408 again for a later retransmission — never a
//! "replayed nonce" refusal. (`tests/field_auth.rs` does the same against the real
//! daemon, without timing.)

mod common;

use common::{header, status, Lab, SWITCH};
use coventryd::sip::digest::answer_challenge;

fn message(auth: &str, cseq: u32) -> String {
    let body = "hello?";
    format!(
        "MESSAGE sip:22@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKm{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=m\r\nTo: <sip:22@test>\r\nCall-ID: silent\r\n\
         CSeq: {cseq} MESSAGE\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_text_to_a_silent_phone_gets_one_final_answer_at_timer_f() {
    let conf = "[server]\nlisten = 127.0.0.1:5060\nrealm = test\n\
                [21]\nsecret = pw21\n[22]\nsecret = pw22\n";
    let mut lab = Lab::with_config(conf);
    lab.register("22", 6022);
    let first = lab.feed(6021, &message("", 1));
    assert_eq!(status(&first[0].1), 407, "{first:?}");
    let ch = header(&first[0].1, "Proxy-Authenticate").expect("challenge");
    let v = answer_challenge(
        ch,
        "MESSAGE",
        &format!("sip:22@{SWITCH}"),
        "21",
        "pw21",
        "c0ffee",
        1,
    )
    .expect("answer");
    let req = message(&format!("Proxy-Authorization: {v}\r\n"), 2);
    let sent = lab.feed(6021, &req);
    assert!(
        sent.iter()
            .any(|(a, m)| a.port() == 6022 && m.starts_with("MESSAGE ")),
        "delivered to 22: {sent:?}"
    );
    let to_sender = |sent: &[(std::net::SocketAddr, String)]| -> Vec<u16> {
        sent.iter()
            .filter(|(a, _)| a.port() == 6021)
            .map(|(_, m)| status(m))
            .collect()
    };
    // The phone's retransmissions (0.5, 1.5, 3.5, 7.5 s, then every 4 s): no
    // answer of the switch's own while 22 is being tried.
    let mut t = 0;
    for at in [
        500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
    ] {
        let quiet = lab.advance(at - t);
        t = at;
        assert!(to_sender(&quiet).is_empty(), "at {at} ms: {quiet:?}");
        let again = lab.feed(6021, &req);
        assert!(to_sender(&again).is_empty(), "at {at} ms: {again:?}");
    }
    // Timer F: 32 s after the switch's MESSAGE to 22.
    let gave_up = lab.advance(32_100 - t);
    assert_eq!(to_sender(&gave_up), vec![408], "{gave_up:?}");
    // A late retransmission: the same 408 again.
    let late = lab.feed(6021, &req);
    assert_eq!(to_sender(&late), vec![408], "{late:?}");
}
