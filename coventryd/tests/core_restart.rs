//! Answered calls go on across a restart: the switch keeps them (what
//! `kept_calls` gives is written to the state directory), a new switch takes
//! them back, relays their in-dialog requests by the Route entries the old one
//! Record-Routed, ends them with one record noting the restart, and can hang
//! them up. The end-to-end test with real phones is in `tests/tests/persistence.rs`.

mod common;

use common::*;
use coventry_shared::event::CallOutcome;
use coventry_shared::record::Book;
use coventryd::switch::kept_calls::KeptCalls;

/// 21 calls 35, 35 answers; the 200 as 21 got it.
fn answered(lab: &mut Lab, call_id: &str) -> String {
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", call_id);
    let inv = to(&sent, 6035)[0].to_string();
    let back = lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    to(&back, 6021)
        .into_iter()
        .find(|m| status(m) == 200)
        .unwrap_or_else(|| panic!("no 200 for 21: {back:?}"))
        .to_string()
}

/// 21's BYE in call `call_id`, routed by the Record-Route of `ok`.
fn bye_from_21(ok: &str, call_id: &str) -> String {
    let rr = header(ok, "Record-Route").unwrap_or_default();
    format!(
        "BYE sip:x@127.0.0.1:6035 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKbye{call_id}\r\n\
         Max-Forwards: 70\r\nRoute: {rr}\r\nFrom: <sip:21@test>;tag=caller\r\n\
         To: <sip:35@test>;tag=callee\r\nCall-ID: {call_id}\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
    )
}

/// What the old switch keeps, through its file format, into a fresh switch.
fn restarted(old: &Lab) -> Lab {
    let bytes = serde_json::to_vec(&old.sw.kept_calls()).expect("json");
    let kept: KeptCalls = serde_json::from_slice(&bytes).expect("back");
    let mut lab = Lab::new();
    lab.now = old.now + 5_000;
    assert_eq!(lab.sw.restore_calls(lab.now, kept), 1);
    // Each side is asked whether it is still in the call; both say so.
    let probes = lab.collect();
    for port in [6021, 6035] {
        let options = to(&probes, port);
        assert_eq!(options.len(), 1, "one probe to {port}: {probes:?}");
        assert!(options[0].starts_with("OPTIONS "), "{}", options[0]);
        lab.feed(port, &respond(options[0], 200, "x", port, ""));
    }
    lab
}

#[test]
fn a_call_answered_before_a_restart_is_hung_up_after_it() {
    let mut old = Lab::new();
    let ok = answered(&mut old, "r1");
    let mut lab = restarted(&old);
    let sent = lab.feed(6021, &bye_from_21(&ok, "r1"));
    let bye = to(&sent, 6035);
    assert_eq!(bye.len(), 1, "the BYE is relayed to 35: {sent:?}");
    assert!(bye[0].starts_with("BYE sip:x@127.0.0.1:6035"), "{}", bye[0]);
    let back = lab.feed(6035, &respond(bye[0], 200, "callee", 6035, ""));
    assert!(to(&back, 6021).iter().any(|m| status(m) == 200), "{back:?}");
    let books: Vec<Book> = lab.call_records.iter().map(|(b, _)| *b).collect();
    assert_eq!(books, [Book::Calls], "a call, not an attempt");
    let recs: Vec<_> = lab.call_records.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(recs[0].outcome, CallOutcome::Completed);
    assert_eq!(recs[0].restarts, 1);
    assert_eq!(recs[0].caller, "21");
    assert!(recs[0].talk_ms >= 5_000, "{:?}", recs[0]);
    // Nothing is kept any more.
    assert!(lab.sw.kept_calls().calls.is_empty());
}

#[test]
fn a_stranger_gains_nothing_from_a_kept_call() {
    let mut old = Lab::new();
    let ok = answered(&mut old, "r2");
    let mut lab = restarted(&old);
    let sent = lab.feed_at(
        "127.0.0.2:6021".parse().expect("addr"),
        &bye_from_21(&ok, "r2").replace("127.0.0.1:6021", "127.0.0.2:6021"),
    );
    assert!(to(&sent, 6035).is_empty(), "{sent:?}");
    assert!(lab.call_records.is_empty());
}

#[test]
fn the_operator_hangs_up_a_kept_call() {
    let mut old = Lab::new();
    answered(&mut old, "r3");
    let mut lab = restarted(&old);
    let (sent, _) = lab.command("hangup 35");
    assert!(
        to(&sent, 6035)
            .iter()
            .any(|m| m.starts_with("BYE sip:x@127.0.0.1:6035")),
        "{sent:?}"
    );
    assert!(
        to(&sent, 6021)
            .iter()
            .any(|m| m.starts_with("BYE sip:21@127.0.0.1:6021")),
        "{sent:?}"
    );
    assert_eq!(lab.call_records.len(), 1);
}

#[test]
fn a_stop_cancels_ringing_calls_with_a_reason_and_leaves_answered_ones() {
    let mut lab = Lab::new();
    answered(&mut lab, "up");
    lab.register("36", 6036);
    let sent = lab.call_from("21", "36", "ringing");
    let inv = to(&sent, 6036)[0].to_string();
    lab.feed(6036, &respond(&inv, 180, "r", 6036, ""));
    lab.sw.on_stop();
    let out = lab.collect();
    let cancel = to(&out, 6036);
    assert!(
        cancel.iter().any(|m| m.starts_with("CANCEL ")
            && header(m, "Reason") == Some("SIP;cause=503;text=\"Switch restarting\"")),
        "{out:?}"
    );
    let to_21 = to(&out, 6021);
    assert!(
        to_21
            .iter()
            .any(|m| status(m) == 503 && header(m, "Retry-After").is_some()),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|(_, m)| m.starts_with("BYE ")),
        "no BYE for the answered call: {out:?}"
    );
    assert_eq!(
        lab.sw.kept_calls().calls.len(),
        1,
        "the answered call is kept"
    );
}

#[test]
fn a_kept_call_that_ended_while_the_switch_was_down_ends_with_its_record() {
    let mut old = Lab::new();
    answered(&mut old, "r5");
    let bytes = serde_json::to_vec(&old.sw.kept_calls()).expect("json");
    let mut lab = Lab::new();
    lab.now = old.now + 60_000;
    assert_eq!(
        lab.sw
            .restore_calls(lab.now, serde_json::from_slice(&bytes).expect("back")),
        1
    );
    let probes = lab.collect();
    // 35 hung up while the switch was down: its dialog is gone.
    let to_35 = to(&probes, 6035)[0].to_string();
    lab.feed(6035, &respond(&to_35, 481, "x", 6035, ""));
    let recs: Vec<_> = lab.call_records.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].outcome, CallOutcome::Completed);
    assert!(lab.sw.kept_calls().calls.is_empty());
    // A phone that never answers its probe ends the call too (Timer F).
    let mut old = Lab::new();
    answered(&mut old, "r6");
    let mut lab = Lab::new();
    lab.now = old.now;
    lab.sw.restore_calls(lab.now, old.sw.kept_calls());
    lab.collect();
    lab.advance(33_000);
    assert!(lab.sw.kept_calls().calls.is_empty());
    assert_eq!(lab.call_records.len(), 1);
}
