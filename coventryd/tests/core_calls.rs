//! Call flows through the switch core with a simulated clock: no sockets, exact
//! timing (rings, no answer, retransmissions) and every byte the switch sends.
//! The end-to-end tests in `tests/` run the same flows against the real daemon.

mod common;

use common::*;
use coventry_shared::event::{CallOutcome, CallPhase, Event};

#[test]
fn answered_call_passes_sdp_and_follows_the_route_both_ways() {
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "c1");
    assert_eq!(status(to(&sent, 6021)[0]), 100, "100 Trying at once");
    let inv = to(&sent, 6035)[0].to_string();
    assert!(
        inv.starts_with("INVITE sip:35@127.0.0.1:6035 SIP/2.0\r\n"),
        "{inv}"
    );
    assert!(inv.ends_with(SDP), "SDP byte for byte");
    assert!(header(&inv, "Record-Route").is_some_and(|r| r.contains(";lr")));
    assert_eq!(header(&inv, "Max-Forwards"), Some("69"));
    assert!(
        header(&inv, "Proxy-Authorization").is_none(),
        "credentials stay with the switch"
    );

    let ringing = lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    assert_eq!(status(to(&ringing, 6021)[0]), 180);
    lab.advance(4_100);
    assert_eq!(
        lab.phases().last(),
        Some(&(CallPhase::Ringing, 3)),
        "a ring every 2 s"
    );
    let ok = lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    let ok = to(&ok, 6021)[0].to_string();
    assert_eq!(status(&ok), 200);
    assert!(ok.ends_with(SDP));
    assert!(
        !ok.contains("127.0.0.1:5060;branch"),
        "our Via is taken off: {ok}"
    );
    let rr = header(&ok, "Record-Route").expect("rr").to_string();

    let in_dialog = |method: &str, cseq: u32, branch: &str| {
        format!(
            "{method} sip:x@127.0.0.1:6035 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch={branch}\r\n\
             Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>;tag=callee\r\n\
             Call-ID: c1\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let ack = lab.feed(6021, &in_dialog("ACK", 2, "z9hG4bKack"));
    assert!(to(&ack, 6035)[0].starts_with("ACK sip:x@127.0.0.1:6035"));
    assert!(
        header(to(&ack, 6035)[0], "Route").is_none(),
        "our Route is popped"
    );
    let reinvite = lab.feed(6021, &in_dialog("INVITE", 3, "z9hG4bKre"));
    let fwd = to(&reinvite, 6035)[0].to_string();
    assert!(
        fwd.starts_with("INVITE sip:x@127.0.0.1:6035"),
        "re-INVITE (hold) passes: {fwd}"
    );
    let back = lab.feed(6035, &respond(&fwd, 200, "callee", 6035, ""));
    assert_eq!(
        status(to(&back, 6021)[0]),
        200,
        "its 200 comes back statelessly"
    );
    lab.advance(1_000);
    let bye = lab.feed(6021, &in_dialog("BYE", 4, "z9hG4bKbye"));
    assert!(to(&bye, 6035)[0].starts_with("BYE "));
    let recs = lab.records();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].0, recs[0].1), (CallOutcome::Completed, 200));
    assert!(recs[0].3 > recs[0].2, "answered after it started");
}

#[test]
fn no_answer_after_the_configured_rings_cancels_and_answers_480() {
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "c2");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    let before = lab.advance(5_900);
    assert!(
        to(&before, 6021).is_empty(),
        "nothing before 3 rings x 2 s: {before:?}"
    );
    let after = lab.advance(200);
    assert_eq!(status(to(&after, 6021)[0]), 480);
    assert!(
        to(&after, 6035)[0].starts_with("CANCEL sip:35@127.0.0.1:6035"),
        "{after:?}"
    );
    assert_eq!(lab.records()[0].0, CallOutcome::NoAnswer);
    // The caller does not ACK: our 480 is re-sent (Timer G).
    let again = lab.advance(600);
    assert!(to(&again, 6021).iter().any(|m| status(m) == 480));
}

#[test]
fn silent_callee_times_out_busy_in_a_call_and_failures() {
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "c3");
    let inv = to(&sent, 6035)[0].to_string();
    // Timer A retransmits the INVITE while nothing comes back.
    let resent = lab.advance(600);
    assert!(to(&resent, 6035).iter().any(|m| m.starts_with("INVITE")));
    lab.feed(6035, &respond(&inv, 100, "callee", 6035, ""));
    let done = lab.advance(6_000);
    assert_eq!(status(to(&done, 6021)[0]), 408);
    assert_eq!(
        lab.records().last().map(|r| r.0),
        Some(CallOutcome::TimedOut)
    );

    // A call that only rings does not make 35 busy: a second one rings too.
    let sent = lab.invite("35", "c4");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    let second = lab.invite("35", "c5");
    let inv5 = to(&second, 6035)[0].to_string();
    assert!(inv5.starts_with("INVITE "), "{second:?}");
    // The callee refuses that one: 603 relayed, ACKed hop by hop.
    let rej = lab.feed(6035, &respond(&inv5, 603, "callee", 6035, ""));
    assert_eq!(status(to(&rej, 6021)[0]), 603);
    assert!(to(&rej, 6035)[0].starts_with("ACK sip:35@127.0.0.1:6035"));
    assert_eq!(
        lab.records().last().map(|r| r.0),
        Some(CallOutcome::Rejected)
    );
    // Once 35 is in a call (no call waiting), the next call is busy at once.
    lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    let busy = lab.invite("35", "c6");
    assert_eq!(status(to(&busy, 6021)[0]), 486);
    assert_eq!(lab.records().last().map(|r| r.0), Some(CallOutcome::Busy));
    assert!(to(&busy, 6035).is_empty(), "35 is not disturbed");

    for (number, code, outcome) in [
        ("36", 480, CallOutcome::Unavailable),
        ("77", 404, CallOutcome::Unknown),
        ("3", 484, CallOutcome::Incomplete),
    ] {
        let sent = lab.invite(number, &format!("x{number}"));
        assert_eq!(status(to(&sent, 6021)[0]), code, "{number}");
        assert_eq!(lab.records().last().map(|r| r.0), Some(outcome));
    }
}

#[test]
fn caller_cancel_and_operator_hangup() {
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "c6");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    let cancel = "CANCEL sip:35@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKi2c6\r\n\
                  Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>\r\nCall-ID: c6\r\n\
                  CSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n";
    let out = lab.feed(6021, cancel);
    let codes: Vec<u16> = to(&out, 6021).iter().map(|m| status(m)).collect();
    assert!(codes.contains(&200) && codes.contains(&487), "{codes:?}");
    assert!(to(&out, 6035)[0].starts_with("CANCEL "));
    assert_eq!(
        lab.records().last().map(|r| r.0),
        Some(CallOutcome::Cancelled)
    );

    // An answered call ended by the operator: BYE to both sides.
    let sent = lab.invite("35", "c7");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    lab.sw.on_control(
        lab.now,
        coventryd::switch::Line::Complete(b"#9 hangup 35".to_vec()),
    );
    let out = lab.collect();
    assert!(
        to(&out, 6035)
            .iter()
            .any(|m| m.starts_with("BYE sip:x@127.0.0.1:6035")),
        "{out:?}"
    );
    assert!(
        to(&out, 6021)
            .iter()
            .any(|m| m.starts_with("BYE sip:21@127.0.0.1:6021")),
        "{out:?}"
    );
    assert!(lab.events.iter().any(|e| matches!(
        e,
        Event::CommandResult {
            id: Some(9),
            code: coventry_shared::event::ResultCode::Ok,
            ..
        }
    )));
    assert_eq!(
        lab.records().last().map(|r| r.0),
        Some(CallOutcome::Completed)
    );
}

#[test]
fn subscribe_passes_through_with_record_route() {
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.authed(6021, "21", "SUBSCRIBE", |auth, cseq| {
        format!(
            "SUBSCRIBE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKs{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=sub\r\nTo: <sip:35@test>\r\nCall-ID: s1\r\n\
             CSeq: {cseq} SUBSCRIBE\r\nEvent: presence\r\nExpires: 60\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    });
    let fwd = to(&sent, 6035)[0].to_string();
    assert!(fwd.starts_with("SUBSCRIBE sip:35@127.0.0.1:6035"), "{fwd}");
    assert!(header(&fwd, "Record-Route").is_some());
    let back = lab.feed(6035, &respond(&fwd, 200, "n", 6035, ""));
    assert_eq!(status(to(&back, 6021)[0]), 200);
    // Without credentials nobody subscribes "as 21".
    let spoof = "SUBSCRIBE sip:35@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6099;branch=z9hG4bKsp\r\n\
                 From: <sip:21@test>;tag=x\r\nTo: <sip:35@test>\r\nCall-ID: s2\r\nCSeq: 1 SUBSCRIBE\r\n\
                 Event: presence\r\nContent-Length: 0\r\n\r\n";
    let out = lab.feed(6099, spoof);
    assert_eq!(status(to(&out, 6099)[0]), 407);
    assert!(to(&out, 6035).is_empty());
}

#[test]
fn a_stranger_cannot_end_someone_elses_call() {
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "c9");
    let inv = to(&sent, 6035)[0].to_string();
    let ok = lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    let rr = header(to(&ok, 6021)[0], "Record-Route")
        .expect("rr")
        .to_string();
    let bye = format!(
        "BYE sip:x@127.0.0.1:6035 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:7000;branch=z9hG4bKevil\r\n\
         Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>;tag=callee\r\n\
         Call-ID: c9\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let stranger: std::net::SocketAddr = "127.0.0.2:7000".parse().expect("addr");
    lab.sw.on_datagram(lab.now, stranger, bye.as_bytes());
    let out = lab.collect();
    assert!(
        out.iter().any(|(a, m)| *a == stranger && status(m) == 403),
        "{out:?}"
    );
    assert!(to(&out, 6035).is_empty(), "the callee never sees it");
    assert!(lab.records().is_empty(), "the call goes on");
}

#[test]
fn an_answered_call_ends_after_max_duration() {
    let conf = CONF.replace("noanswer = 3\n", "noanswer = 3\nmax_duration = 60\n");
    let mut lab = Lab::with_config(&conf);
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "long");
    let inv = to(&sent, 6035)[0].to_string();
    let ok = lab.feed(6035, &respond(&inv, 200, "callee", 6035, SDP));
    assert_eq!(status(to(&ok, 6021)[0]), 200);
    let quiet = lab.advance(59_000);
    assert!(
        quiet.iter().all(|(_, m)| !m.starts_with("BYE")),
        "not before max_duration"
    );
    let byes = lab.advance(2_000);
    let to_callee = to(&byes, 6035);
    let to_caller = to(&byes, 6021);
    assert!(
        to_callee
            .iter()
            .any(|m| m.starts_with("BYE sip:x@127.0.0.1:6035")),
        "{byes:?}"
    );
    assert!(
        to_caller
            .iter()
            .any(|m| m.starts_with("BYE sip:21@127.0.0.1:6021")),
        "{byes:?}"
    );
    let recs = lab.records();
    assert_eq!((recs[0].0, recs[0].1), (CallOutcome::Completed, 200));
    assert!(lab
        .events
        .iter()
        .any(|e| matches!(e, Event::Warning { text } if text.contains("max_duration"))));
}

/// The most rings the calls have had, by their `CallState` events.
fn rings(lab: &Lab) -> u8 {
    lab.phases()
        .iter()
        .filter(|(p, _)| *p == CallPhase::Ringing)
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(0)
}

#[test]
fn the_ring_count_advances_once_a_ring_period_until_no_answer() {
    // `ring = 2`, `noanswer = 3`: rings at 0, 2 and 4 s, given up at 6 s.
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "rc");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 180, "callee", 6035, ""));
    assert_eq!(rings(&lab), 1);
    for (ms, want) in [(1_900, 1), (200, 2), (1_800, 2), (200, 3), (1_800, 3)] {
        let sent = lab.advance(ms);
        assert_eq!(rings(&lab), want, "at +{ms} ms: {:?}", lab.phases());
        assert!(
            to(&sent, 6021).is_empty(),
            "the caller still waits: {sent:?}"
        );
    }
    let sent = lab.advance(200);
    assert_eq!(status(to(&sent, 6021)[0]), 480, "{sent:?}");
    let at_the_end = rings(&lab);
    lab.advance(4_000);
    assert_eq!(rings(&lab), at_the_end, "no ring after giving up");
}

#[test]
fn a_final_is_resent_until_the_ack_and_never_after() {
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    let sent = lab.invite("35", "g1");
    let inv = to(&sent, 6035)[0].to_string();
    let out = lab.feed(6035, &respond(&inv, 486, "callee", 6035, ""));
    let busy = to(&out, 6021)
        .into_iter()
        .find(|m| status(m) == 486)
        .unwrap_or_else(|| panic!("486 relayed: {out:?}"))
        .to_string();
    // Not ACKed: sent again (Timer G: 500 ms, doubling).
    let again = lab.advance(600);
    assert_eq!(
        to(&again, 6021).iter().filter(|m| status(m) == 486).count(),
        1,
        "{again:?}"
    );
    let again = lab.advance(1_000);
    assert_eq!(
        to(&again, 6021).iter().filter(|m| status(m) == 486).count(),
        1,
        "{again:?}"
    );
    // The caller's ACK (hop by hop: the INVITE's branch, the 486's To tag).
    let ack = format!(
        "ACK sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKi2g1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: {}\r\nCall-ID: g1\r\n\
         CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
        header(&busy, "To").unwrap_or_default()
    );
    let out = lab.feed(6021, &ack);
    assert!(out.is_empty(), "an ACK is not answered: {out:?}");
    // Never again, up to and beyond Timer H (64 x T1 = 32 s).
    let later = lab.advance(40_000);
    assert!(
        to(&later, 6021).is_empty(),
        "nothing for the caller after its ACK: {later:?}"
    );
    assert_eq!(lab.records()[0].0, CallOutcome::Busy);
}
