//! The switch features through the core with a simulated clock: forwards, DND,
//! coverage, groups, speed dials, keypad codes, `/commands`, `why`.

mod common;

use common::*;
use coventry_shared::event::{CallOutcome, Event, ResultCode};
use std::net::SocketAddr;

const CONF: &str = "[server]\nlisten = 127.0.0.1:5060\nrealm = test\n\
    [calls]\nring = 2\nnoanswer = 3\n[groups]\n100 = 35 36\n[speed]\n9 = 35\n\
    [21]\nsecret = pw21\n[35]\nsecret = pw35\ncoverage = 36\ndelayed = 37\ndelay = 2\n\
    [36]\nsecret = pw36\n[37]\nsecret = pw37\n[38]\nsecret = pw38\n";

fn lab() -> Lab {
    let mut lab = Lab::with_config(CONF);
    for e in ["21", "35", "36", "37", "38"] {
        lab.register(e, 6000 + e.parse::<u16>().unwrap_or(0));
    }
    lab
}

fn invites(sent: &[(std::net::SocketAddr, String)], port: u16) -> usize {
    to(sent, port)
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .count()
}

#[test]
fn forward_always_busy_and_dnd() {
    let mut lab = lab();
    let (_, r) = lab.command("#1 forward 38 21");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok));
    let sent = lab.call_from("36", "38", "f1");
    assert_eq!(invites(&sent, 6021), 1, "forwarded to 21: {sent:?}");
    assert_eq!(invites(&sent, 6038), 0);
    // 36 is in that call (it dials out) until it ends.
    let (_, r) = lab.command("hangup 36");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok));

    let (_, r) = lab.command("#2 dnd 37 on");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok));
    let sent = lab.call_from("21", "37", "f2");
    assert_eq!(
        status(to(&sent, 6021).last().copied().unwrap_or("")),
        486,
        "DND without forward: busy"
    );
    assert_eq!(lab.records().last().map(|r| r.0), Some(CallOutcome::Busy));
    lab.command("#3 forward 37 36 busy");
    let sent = lab.call_from("21", "37", "f3");
    assert_eq!(invites(&sent, 6036), 1, "DND follows forward-on-busy");
}

#[test]
fn forward_on_no_answer_rings_the_next_one() {
    let mut lab = lab();
    lab.command("forward 38 21 noanswer");
    let sent = lab.call_from("36", "38", "n1");
    let inv = to(&sent, 6038)[0].to_string();
    lab.feed(6038, &respond(&inv, 180, "t", 6038, ""));
    // `ring = 2`, `noanswer = 3`: 38 rings for 6 s, not a moment less.
    let before = lab.advance(5_900);
    assert!(
        to(&before, 6038).iter().all(|m| !m.starts_with("CANCEL ")),
        "38 cancelled before its rings: {before:?}"
    );
    assert_eq!(invites(&before, 6021), 0, "21 rang early: {before:?}");
    let later = lab.advance(300);
    assert!(
        to(&later, 6038).iter().any(|m| m.starts_with("CANCEL ")),
        "38 stops ringing"
    );
    assert_eq!(invites(&later, 6021), 1, "21 rings instead: {later:?}");
    assert!(
        to(&later, 6036).iter().all(|m| crate::status(m) != 480),
        "the caller keeps waiting"
    );
}

#[test]
fn forward_loops_are_refused_and_forwards_expire() {
    let mut lab = lab();
    lab.command("forward 35 36");
    let (_, r) = lab.command("#4 forward 36 35 busy");
    let (code, text) = r.expect("result");
    assert_eq!(code, ResultCode::Failed);
    assert!(text.contains("loop"), "{text}");
    let until = lab.now / 1000 + 10;
    lab.command(&format!("forward 38 21 until={until}"));
    lab.command(&format!("dnd 37 on until={until}"));
    lab.command(&format!("forward 37 36 busy until={until}"));
    assert!(lab.sw.settings().get(38).always.is_some());
    lab.advance(9_900);
    let s = lab.sw.settings();
    assert!(s.get(38).always.is_some(), "not before its time");
    assert!(
        s.get(37).dnd && s.get(37).busy.is_some(),
        "not before its time"
    );
    lab.advance(200);
    let s = lab.sw.settings();
    assert!(s.get(38).always.is_none(), "reverted by itself");
    assert!(
        !s.get(37).dnd && s.get(37).busy.is_none(),
        "reverted by itself"
    );
    for what in [
        "38: forward always to 21 ended",
        "37: do not disturb ended",
        "37: forward busy to 36 ended",
    ] {
        assert!(
            lab.events
                .iter()
                .any(|e| matches!(e, Event::Notice { text } if text.contains(what))),
            "{what}: {:?}",
            lab.events
        );
    }
}

#[test]
fn coverage_rings_at_once_delayed_joins_after_its_rings() {
    let mut lab = lab();
    let sent = lab.call_from("21", "35", "c1");
    assert_eq!(invites(&sent, 6035), 1);
    assert_eq!(invites(&sent, 6036), 1, "coverage rings together");
    assert_eq!(invites(&sent, 6037), 0, "delayed waits");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 180, "t", 6035, ""));
    let inv36 = to(&sent, 6036)[0].to_string();
    lab.feed(6036, &respond(&inv36, 180, "t36", 6036, ""));
    let early = lab.advance(3_900);
    assert_eq!(invites(&early, 6037), 0, "not during rings 1 and 2");
    let late = lab.advance(300);
    assert_eq!(invites(&late, 6037), 1, "joins at ring 3");
    // 37 answers: 35 and 36 (both ringing) are cancelled (RFC 3261 §9.1: a branch
    // gets its CANCEL only once it has answered provisionally).
    let inv37 = to(&late, 6037)[0].to_string();
    let out = lab.feed(6037, &respond(&inv37, 200, "t37", 6037, SDP));
    assert!(to(&out, 6035).iter().any(|m| m.starts_with("CANCEL ")));
    assert!(to(&out, 6036).iter().any(|m| m.starts_with("CANCEL ")));
    assert_eq!(status(to(&out, 6021)[0]), 200);
}

#[test]
fn group_call_answered_by_the_second_member_and_speed_dial() {
    let mut lab = lab();
    let sent = lab.call_from("21", "100", "g1");
    let inv36 = to(&sent, 6036)[0].to_string();
    assert_eq!(invites(&sent, 6035), 1);
    let inv35 = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv35, 180, "t35", 6035, ""));
    let out = lab.feed(6036, &respond(&inv36, 200, "t36", 6036, SDP));
    assert_eq!(status(to(&out, 6021)[0]), 200);
    assert!(to(&out, 6035).iter().any(|m| m.starts_with("CANCEL ")));
    let sent = lab.call_from("21", "9", "s1");
    assert_eq!(invites(&sent, 6035), 1, "speed dial 9 is 35");
}

#[test]
fn keypad_code_sets_dnd_answers_and_hangs_up() {
    let mut lab = lab();
    let sent = lab.call_from("38", "*78", "k1");
    let ok = to(&sent, 6038)
        .into_iter()
        .find(|m| status(m) == 200)
        .expect("200")
        .to_string();
    assert!(ok.contains("m=audio 0 "), "every stream declined: {ok}");
    assert!(lab.sw.settings().get(38).dnd);
    assert!(texts(&sent, 6038)
        .iter()
        .any(|t| t.contains("do not disturb on")));
    let tag = header(&ok, "To").expect("to").to_string();
    let ack = format!(
        "ACK sip:system@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6038;branch=z9hG4bKka\r\n\
         From: <sip:38@test>;tag=caller\r\nTo: {tag}\r\nCall-ID: k1\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let bye = lab.feed(6038, &ack);
    assert!(
        to(&bye, 6038)[0].starts_with("BYE sip:38@127.0.0.1:6038"),
        "{bye:?}"
    );
    let sent = lab.call_from("38", "*7221", "k2");
    assert!(to(&sent, 6038).iter().any(|m| status(m) == 200));
    assert_eq!(
        lab.sw.settings().get(38).always.map(|f| f.target),
        Some("21".into())
    );
}

#[test]
fn system_commands_reply_and_only_change_the_sender() {
    let mut lab = lab();
    let sent = lab.text("36", "system", "/dnd on", "m1");
    assert_eq!(status(to(&sent, 6036)[0]), 200);
    assert!(
        texts(&sent, 6036)
            .iter()
            .any(|t| t.contains("36: do not disturb on")),
        "{sent:?}"
    );
    assert!(lab.sw.settings().get(36).dnd);
    let sent = lab.text("36", "system", "/dnd off 35", "m2");
    assert!(texts(&sent, 6036)
        .iter()
        .any(|t| t.contains("only change your own")));
    assert!(lab.sw.settings().get(36).dnd, "nothing changed");
    let sent = lab.text("36", "system", "/forward 21 busy", "m3");
    assert!(texts(&sent, 6036)
        .iter()
        .any(|t| t.contains("forward busy to 21")));
    let sent = lab.text("36", "system", "/status", "m4");
    assert!(texts(&sent, 6036)
        .iter()
        .any(|t| t.contains("forward busy to 21") && t.contains("dnd on")));
    let sent = lab.text("36", "system", "/who", "m5");
    assert!(texts(&sent, 6036)
        .iter()
        .any(|t| t.starts_with("online: 21")));
    let sent = lab.text("36", "system", "/msg hello", "m6");
    assert!(texts(&sent, 6036)
        .iter()
        .any(|t| t == "usage: /msg NAME TEXT"));
    let sent = lab.text("36", "system", "/help", "m7");
    assert!(texts(&sent, 6036).iter().any(|t| t.contains("/forward")));
}

#[test]
fn why_explains_the_route() {
    let mut lab = lab();
    lab.command("forward 38 37 busy");
    lab.command("dnd 38 on");
    let (_, r) = lab.command("#8 why 38");
    let (code, _) = r.expect("result");
    assert_eq!(code, ResultCode::Ok);
    let text = explained(&lab, 8);
    assert!(
        text.contains("38 is on do not disturb, and forwards on busy to 37"),
        "{text}"
    );
    assert!(text.contains("a call to 38 rings 37"), "{text}");
    lab.command("#9 why 35");
    let text = explained(&lab, 9);
    assert!(
        text.contains("coverage rings too: 36") && text.contains("after 2 rings: 37"),
        "{text}"
    );
    let (_, r) = lab.command("#10 why 77");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::NotFound));
}

#[test]
fn broadcast_receipts_name_every_extension() {
    let mut lab = lab();
    lab.command("release 38");
    let (sent, r) = lab.command("#11 message 100 fire drill at 3");
    assert!(r.is_none(), "the result waits for the deliveries");
    let m35 = to(&sent, 6035)[0].to_string();
    let m36 = to(&sent, 6036)[0].to_string();
    lab.feed(6035, &respond(&m35, 200, "a", 6035, ""));
    lab.feed(6036, &respond(&m36, 486, "b", 6036, ""));
    let result = lab.events.iter().rev().find_map(|e| match e {
        Event::CommandResult {
            id: Some(11),
            code,
            text,
        } => Some((*code, text.clone())),
        _ => None,
    });
    assert_eq!(
        result,
        Some((ResultCode::Ok, "100: delivered to 1 of 2 online".into()))
    );
    // The receipts are typed: whom it went to, then each target with the id.
    assert!(lab.events.iter().any(|e| matches!(e,
        Event::Delivering { id: Some(11), targets, .. } if targets == &[35, 36])));
    for (ext, status) in [("35", 200), ("36", 486)] {
        assert!(
            lab.events.iter().any(|e| matches!(e,
                Event::Message { id: Some(11), to, status: s, .. } if to == ext && *s == status)),
            "receipt of {ext}"
        );
    }
    let (sent, _) = lab.command("#12 message all shutdown at 5");
    for port in [6021, 6035, 6036, 6037] {
        let m = to(&sent, port)[0].to_string();
        lab.feed(port, &respond(&m, 200, "x", port, ""));
    }
    assert!(
        to(&sent, 6038).is_empty(),
        "38 is not registered: not tried"
    );
    let text = lab.events.iter().rev().find_map(|e| match e {
        Event::CommandResult {
            id: Some(12), text, ..
        } => Some(text.clone()),
        _ => None,
    });
    assert_eq!(
        text.as_deref(),
        Some("all: delivered to 4 of 4 registered now")
    );
}

const OFFER: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
const ANSWER: &str = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

/// The explanation of `why` command `id` as one line: its typed steps, then its
/// conclusion (the result's text).
fn explained(lab: &Lab, id: u64) -> String {
    let steps: Vec<String> = lab
        .events
        .iter()
        .filter_map(|e| match e {
            Event::WhyStep {
                id: Some(i), text, ..
            } if *i == id => Some(text.clone()),
            _ => None,
        })
        .collect();
    let end = result_of(lab, id).map(|r| r.1).unwrap_or_default();
    format!("{}. {end}", steps.join("; "))
}

fn result_of(lab: &Lab, id: u64) -> Option<(ResultCode, String)> {
    lab.events.iter().rev().find_map(|e| match e {
        Event::CommandResult {
            id: Some(i),
            code,
            text,
        } if *i == id => Some((*code, text.clone())),
        _ => None,
    })
}

#[test]
fn click_to_dial_connects_offer_and_answer_and_either_side_hangs_up() {
    let mut lab = lab();
    let (sent, _) = lab.command("#20 dial 21 35");
    let inv_a = to(&sent, 6021)[0].to_string();
    assert!(inv_a.starts_with("INVITE sip:21@127.0.0.1:6021"), "{inv_a}");
    assert!(
        inv_a.ends_with("Content-Length: 0\r\n\r\n"),
        "no SDP to A: {inv_a}"
    );
    lab.feed(6021, &respond(&inv_a, 180, "ta", 6021, ""));
    let out = lab.feed(6021, &respond(&inv_a, 200, "ta", 6021, OFFER));
    let inv_b = to(&out, 6035)[0].to_string();
    assert!(inv_b.starts_with("INVITE sip:35@127.0.0.1:6035"), "{inv_b}");
    assert!(inv_b.ends_with(OFFER), "A's offer goes to B byte for byte");
    let out = lab.feed(6035, &respond(&inv_b, 200, "tb", 6035, ANSWER));
    assert!(to(&out, 6035).iter().any(|m| m.starts_with("ACK ")));
    let ack_a = to(&out, 6021)
        .into_iter()
        .find(|m| m.starts_with("ACK "))
        .expect("ACK to A")
        .to_string();
    assert!(
        ack_a.ends_with(ANSWER),
        "B's answer completes A's exchange: {ack_a}"
    );
    assert_eq!(result_of(&lab, 20).map(|r| r.0), Some(ResultCode::Ok));
    // B hangs up: A gets a BYE.
    let bye = format!(
        "BYE sip:system@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6035;branch=z9hG4bKbb\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        header(&inv_b, "To").map(|t| format!("{t};tag=tb")).unwrap_or_default(),
        header(&inv_b, "From").unwrap_or(""),
        header(&inv_b, "Call-ID").unwrap_or("")
    );
    let out = lab.feed(6035, &bye);
    assert_eq!(status(to(&out, 6035)[0]), 200);
    assert!(to(&out, 6021).iter().any(|m| m.starts_with("BYE ")));
    assert_eq!(
        lab.records().last().map(|r| r.0),
        Some(CallOutcome::Completed)
    );
}

#[test]
fn click_to_dial_failures_end_cleanly() {
    let mut lab = lab();
    // A declines.
    let (sent, _) = lab.command("#21 dial 21 35");
    let inv_a = to(&sent, 6021)[0].to_string();
    let out = lab.feed(6021, &respond(&inv_a, 603, "ta", 6021, ""));
    assert!(
        to(&out, 6021).iter().any(|m| m.starts_with("ACK ")),
        "the 603 is ACKed"
    );
    assert!(to(&out, 6035).is_empty(), "B is never rung");
    let (code, text) = result_of(&lab, 21).expect("result");
    assert_eq!(code, ResultCode::Failed);
    assert!(text.contains("21 did not take the call (603)"), "{text}");
    // B busy (DND): A is answered, then hung up.
    lab.command("dnd 35 on");
    let (sent, _) = lab.command("#22 dial 21 35");
    let inv_a = to(&sent, 6021)[0].to_string();
    let out = lab.feed(6021, &respond(&inv_a, 200, "ta", 6021, OFFER));
    assert!(to(&out, 6021).iter().any(|m| m.starts_with("ACK ")));
    assert!(to(&out, 6021).iter().any(|m| m.starts_with("BYE ")));
    let (code, text) = result_of(&lab, 22).expect("result");
    assert_eq!(code, ResultCode::Failed);
    assert!(text.contains("35 is busy (486)"), "{text}");
    // B absent.
    lab.command("dnd 35 off");
    lab.command("release 35");
    let (sent, _) = lab.command("#23 dial 21 35");
    let inv_a = to(&sent, 6021)[0].to_string();
    lab.feed(6021, &respond(&inv_a, 200, "ta", 6021, OFFER));
    let (code, text) = result_of(&lab, 23).expect("result");
    assert_eq!(code, ResultCode::Failed);
    assert!(text.contains("35 is not available (480)"), "{text}");
}

fn notifies(sent: &[(std::net::SocketAddr, String)], port: u16) -> Vec<String> {
    to(sent, port)
        .into_iter()
        .filter(|m| m.starts_with("NOTIFY "))
        .map(str::to_string)
        .collect()
}

fn subscribe(
    lab: &mut Lab,
    target: &str,
    event: &str,
    call_id: &str,
) -> Vec<(std::net::SocketAddr, String)> {
    lab.authed(6038, "38", "SUBSCRIBE", |auth, cseq| {
        format!(
            "SUBSCRIBE sip:{target}@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6038;branch=z9hG4bKsub{cseq}{call_id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:38@test>;tag=w\r\nTo: <sip:{target}@test>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\nEvent: {event}\r\nExpires: 600\r\nContact: <sip:38@127.0.0.1:6038>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    })
}

#[test]
fn blf_subscriber_sees_early_confirmed_terminated_and_dnd() {
    let mut lab = lab();
    let sent = subscribe(&mut lab, "35", "dialog", "b1");
    assert_eq!(status(to(&sent, 6038)[0]), 200);
    let n = notifies(&sent, 6038);
    assert_eq!(n.len(), 1, "initial NOTIFY");
    assert!(
        n[0].contains("Event: dialog")
            && n[0].contains("<dialog-info")
            && !n[0].contains("<dialog id")
    );
    let sent = lab.call_from("21", "35", "b-call");
    let inv = to(&sent, 6035)[0].to_string();
    // Early as soon as the phone is being rung.
    let n = notifies(&sent, 6038);
    assert!(
        n.iter()
            .any(|m| m.contains("<state>early</state>") && m.contains("direction=\"recipient\"")),
        "{n:?}"
    );
    let out = lab.feed(6035, &respond(&inv, 180, "t", 6035, ""));
    assert!(notifies(&out, 6038).is_empty(), "no change, no NOTIFY");
    let out = lab.feed(6035, &respond(&inv, 200, "t", 6035, SDP));
    assert!(notifies(&out, 6038)
        .iter()
        .any(|m| m.contains("<state>confirmed</state>")));
    let ok = to(&out, 6021)[0].to_string();
    let rr = header(&ok, "Record-Route").unwrap_or("").to_string();
    let bye = format!(
        "BYE sip:x@127.0.0.1:6035 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKby\r\nRoute: {rr}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:35@test>;tag=t\r\nCall-ID: b-call\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let out = lab.feed(6021, &bye);
    assert!(
        notifies(&out, 6038)
            .iter()
            .any(|m| m.contains("<state>terminated</state>")),
        "{out:?}"
    );
    let (out, _) = lab.command("dnd 35 on");
    assert!(notifies(&out, 6038)
        .iter()
        .any(|m| m.contains("id=\"dnd\"") && m.contains("confirmed")));
}

#[test]
fn system_subscription_gets_the_bitmaps() {
    let mut lab = lab();
    let sent = subscribe(&mut lab, "system", "x-coventry-exts", "sys1");
    let n = notifies(&sent, 6038);
    assert_eq!(n.len(), 1);
    // 2-digit plan, 4 extensions a hex digit: 21,35,36,37,38 registered.
    assert!(n[0].contains("plan=2\n"), "{}", n[0]);
    assert!(n[0].contains("registered="), "{}", n[0]);
    let (out, _) = lab.command("dnd 36 on");
    let n = notifies(&out, 6038);
    assert_eq!(n.len(), 1, "a change sends one NOTIFY");
    let dnd_line = n[0].lines().find(|l| l.starts_with("dnd=")).unwrap_or("");
    // Extension 36 is plan index 26: hex digit 6, bit 2 → '4'.
    assert_eq!(
        dnd_line.as_bytes().get(4 + 6).copied(),
        Some(b'4'),
        "{dnd_line}"
    );
    let sent = subscribe(&mut lab, "system", "presence", "sys2");
    assert_eq!(status(to(&sent, 6038).last().copied().unwrap_or("")), 489);
}

#[test]
fn click_to_dial_passes_a_hold_re_invite_to_the_other_side() {
    let mut lab = lab();
    let (sent, _) = lab.command("#21 dial 21 35");
    let inv_a = to(&sent, 6021)[0].to_string();
    let out = lab.feed(6021, &respond(&inv_a, 200, "ta", 6021, OFFER));
    let inv_b = to(&out, 6035)[0].to_string();
    let ok_b = respond(&inv_b, 200, "tb", 6035, ANSWER);
    lab.feed(6035, &ok_b);
    // B did not get our ACK and sends its 200 again: it is ACKed again.
    let again = lab.feed(6035, &ok_b);
    assert!(
        to(&again, 6035)
            .iter()
            .any(|m| m.starts_with("ACK ") && m.contains("CSeq: 1 ACK")),
        "{again:?}"
    );
    // A puts B on hold: a re-INVITE with a sendonly offer, in A's dialog.
    let hold = OFFER.replace(
        "m=audio 5000 RTP/AVP 0\r\n",
        "m=audio 5000 RTP/AVP 0\r\na=sendonly\r\n",
    );
    let reinvite = format!(
        "INVITE sip:system@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKhold\r\n\
         From: {};tag=ta\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
        header(&inv_a, "To").unwrap_or(""),
        header(&inv_a, "From").unwrap_or(""),
        header(&inv_a, "Call-ID").unwrap_or(""),
        hold.len()
    );
    let out = lab.feed(6021, &reinvite);
    assert!(to(&out, 6021).is_empty(), "A waits for B's answer: {out:?}");
    let re_b = to(&out, 6035)[0].to_string();
    assert!(re_b.starts_with("INVITE sip:x@127.0.0.1:6035"), "{re_b}");
    assert_eq!(header(&re_b, "CSeq"), Some("2 INVITE"));
    assert!(
        re_b.ends_with(&hold),
        "the hold offer goes to B byte for byte"
    );
    // A's retransmission is absorbed while B thinks.
    assert!(lab.feed(6021, &reinvite).is_empty());
    let held = ANSWER.replace(
        "m=audio 6000 RTP/AVP 0\r\n",
        "m=audio 6000 RTP/AVP 0\r\na=recvonly\r\n",
    );
    let out = lab.feed(6035, &respond(&re_b, 200, "tb", 6035, &held));
    let ack_b = to(&out, 6035);
    assert!(
        ack_b
            .iter()
            .any(|m| m.starts_with("ACK ") && m.contains("CSeq: 2 ACK")),
        "B's 200 is ACKed: {out:?}"
    );
    let re_ok = respond(&re_b, 200, "tb", 6035, &held);
    let again = lab.feed(6035, &re_ok);
    assert!(
        to(&again, 6035)
            .iter()
            .any(|m| m.starts_with("ACK ") && m.contains("CSeq: 2 ACK")),
        "the re-INVITE's 200 again: ACKed again: {again:?}"
    );
    let ok_a = to(&out, 6021)[0];
    assert_eq!(status(ok_a), 200);
    assert_eq!(header(ok_a, "CSeq"), Some("2 INVITE"));
    assert!(ok_a.ends_with(&held), "B's answer goes back to A: {ok_a}");
    assert_eq!(header(ok_a, "Content-Type"), Some("application/sdp"));
    // A re-INVITE without an offer is still refused.
    let offerless = reinvite
        .replace("z9hG4bKhold", "z9hG4bKnoof")
        .replace("CSeq: 2 INVITE", "CSeq: 3 INVITE");
    let offerless = format!(
        "{}Content-Length: 0\r\n\r\n",
        offerless.split("Content-Type:").next().unwrap_or("")
    );
    let out = lab.feed(6021, &offerless);
    assert_eq!(status(to(&out, 6021)[0]), 488);
}

#[test]
fn an_extension_in_a_call_is_busy_unless_it_has_call_waiting() {
    // 21 calls 35, 35 answers; 35 forwards on busy to 38; 36 calls 35.
    let busy_case = |conf: &str| {
        let mut lab = Lab::with_config(conf);
        for e in ["21", "35", "36", "37", "38"] {
            lab.register(e, 6000 + e.parse::<u16>().unwrap_or(0));
        }
        let sent = lab.call_from("21", "35", "b1");
        let inv = to(&sent, 6035)[0].to_string();
        lab.feed(6035, &respond(&inv, 200, "t", 6035, SDP));
        let (_, r) = lab.command("forward 35 38 busy");
        assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok));
        lab.command("#30 why 35");
        let why = explained(&lab, 30);
        let sent = lab.call_from("36", "35", "b2");
        (lab, sent, why)
    };
    let (lab, sent, why) = busy_case(CONF);
    assert_eq!(invites(&sent, 6035), 0, "35 is not disturbed: {sent:?}");
    assert_eq!(invites(&sent, 6038), 1, "forward on busy rings 38");
    assert!(why.contains("busy (in a call"), "{why}");
    assert!(lab.sw.counters().calls >= 2);

    let waiting = CONF.replace(
        "[35]\nsecret = pw35\n",
        "[35]\nsecret = pw35\ncall_waiting = yes\n",
    );
    let (_, sent, why) = busy_case(&waiting);
    assert_eq!(invites(&sent, 6035), 1, "call waiting: 35 rings: {sent:?}");
    assert_eq!(invites(&sent, 6038), 0);
    assert!(!why.contains("busy"), "{why}");
}

#[test]
fn speed_codes_may_not_shadow_numbers_or_codes() {
    let mut lab = lab();
    for code in ["21", "35", "100", "*78", "*7221"] {
        let (_, r) = lab.command(&format!("speed {code} 36"));
        let (rc, text) = r.expect("a result");
        assert_eq!(rc, ResultCode::Failed, "{code}: {text}");
        assert!(text.contains("refused"), "{text}");
    }
    let (_, r) = lab.command("speed 8 36");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok));
    // 21 still rings 21.
    let sent = lab.call_from("36", "21", "sp1");
    assert_eq!(invites(&sent, 6021), 1);
}

#[test]
fn click_to_dial_calls_hang_up_like_any_call() {
    let connected = |lab: &mut Lab| {
        let (sent, _) = lab.command("dial 21 35");
        let inv_a = to(&sent, 6021)[0].to_string();
        lab.feed(6021, &respond(&inv_a, 180, "ta", 6021, ""));
        let out = lab.feed(6021, &respond(&inv_a, 200, "ta", 6021, OFFER));
        let inv_b = to(&out, 6035)[0].to_string();
        lab.feed(6035, &respond(&inv_b, 200, "tb", 6035, ANSWER));
        lab.phases();
    };
    for target in ["21", "35", "CALL"] {
        let mut lab = lab();
        connected(&mut lab);
        let no = lab
            .events
            .iter()
            .find_map(|e| match e {
                Event::CallState { call, .. } => Some(*call),
                _ => None,
            })
            .expect("a call number");
        let target = if target == "CALL" {
            no.to_string()
        } else {
            target.to_string()
        };
        let (out, _) = lab.command(&format!("#77 hangup {target}"));
        let (code, text) = result_of(&lab, 77).expect("a result");
        assert_eq!(code, ResultCode::Ok, "hangup {target}: {text}");
        assert!(text.contains(&no.to_string()), "{text}");
        assert!(
            to(&out, 6021).iter().any(|m| m.starts_with("BYE ")),
            "{out:?}"
        );
        assert!(
            to(&out, 6035).iter().any(|m| m.starts_with("BYE ")),
            "{out:?}"
        );
        assert_eq!(
            lab.records().last().map(|r| r.0),
            Some(CallOutcome::Completed)
        );
        lab.command(&format!("#78 hangup {target}"));
        assert_eq!(
            result_of(&lab, 78).map(|r| r.0),
            Some(ResultCode::NotFound),
            "ended once"
        );
    }
    // Still ringing A: CANCEL, and the call is cancelled.
    let mut lab = lab();
    let (sent, _) = lab.command("dial 21 35");
    let inv_a = to(&sent, 6021)[0].to_string();
    lab.feed(6021, &respond(&inv_a, 180, "ta", 6021, ""));
    let (out, _) = lab.command("#79 hangup 21");
    assert_eq!(result_of(&lab, 79).map(|r| r.0), Some(ResultCode::Ok));
    assert!(
        to(&out, 6021).iter().any(|m| m.starts_with("CANCEL ")),
        "{out:?}"
    );
    assert_eq!(
        lab.records().last().map(|r| r.0),
        Some(CallOutcome::Cancelled)
    );
}

#[test]
fn a_run_state_overlays_forwards_dnd_coverage_and_groups() {
    let conf = format!("{CONF}[runstate night]\nforward.35 = 38\ndnd.36 = on\ngroup.100 = 37\n");
    let mut lab = Lab::with_config(&conf);
    for e in ["21", "35", "36", "37", "38"] {
        lab.register(e, 6000 + e.parse::<u16>().unwrap_or(0));
    }
    let (_, r) = lab.command("#1 runstate");
    assert_eq!(r, Some((ResultCode::Ok, "day".to_string())));
    let (_, r) = lab.command("#2 runstate holiday");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::NotFound), "no such state");
    let (_, r) = lab.command("#3 runstate night");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok));
    let sent = lab.call_from("21", "35", "rs1");
    assert_eq!(
        invites(&sent, 6038),
        1,
        "night: 35 forwards to 38: {sent:?}"
    );
    assert_eq!(invites(&sent, 6035), 0);
    lab.command("#4 why 35");
    assert!(explained(&lab, 4).starts_with("run state night in force"));
    let sent = lab.call_from("21", "100", "rs2");
    assert_eq!(invites(&sent, 6037), 1, "night: group 100 is 37 alone");
    assert_eq!(invites(&sent, 6035) + invites(&sent, 6036), 0);
    lab.command("hangup 21");
    lab.command("hangup 21");
    // Back to day: the configuration again.
    let (_, r) = lab.command("#5 runstate day");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok));
    let sent = lab.call_from("36", "35", "rs3");
    assert_eq!(invites(&sent, 6035), 1, "day: 35 rings: {sent:?}");
}

/// A line's phone may watch many lamps, not unboundedly many (memory from the
/// network is bounded even for an authenticated phone), and a subscription is
/// refreshed or ended only by the extension that made it.
#[test]
fn subscriptions_are_bounded_per_line_and_only_their_subscriber_refreshes_them() {
    let mut lab = lab();
    const PER_LINE: usize = 200; // blf::MAX_SUBSCRIPTIONS_PER_LINE
    for i in 0..PER_LINE {
        let sent = subscribe(&mut lab, "35", "dialog", &format!("many{i}"));
        assert_eq!(status(to(&sent, 6038)[0]), 200, "subscription {i}");
    }
    let sent = subscribe(&mut lab, "35", "dialog", "one-too-many");
    let refused = to(&sent, 6038)[0];
    assert_eq!(status(refused), 503, "{refused}");
    assert_eq!(header(refused, "Retry-After"), Some("60"), "{refused}");
    assert!(notifies(&sent, 6038).is_empty());

    // 21, with its own right password, cannot end 38's subscription.
    let sent = lab.authed(6021, "21", "SUBSCRIBE", |auth, cseq| {
        format!(
            "SUBSCRIBE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKhj{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=h\r\nTo: <sip:35@test>\r\nCall-ID: many0\r\n\
             CSeq: {cseq} SUBSCRIBE\r\nEvent: dialog\r\nExpires: 0\r\nContact: <sip:21@127.0.0.1:6021>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    });
    assert_eq!(status(to(&sent, 6021)[0]), 403, "{sent:?}");
    assert!(
        notifies(&sent, 6038).is_empty(),
        "38's subscription goes on"
    );

    // 38 ends one of its own: a final NOTIFY, and room for a new one.
    let sent = lab.authed(6038, "38", "SUBSCRIBE", |auth, cseq| {
        format!(
            "SUBSCRIBE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6038;branch=z9hG4bKend{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:38@test>;tag=w\r\nTo: <sip:35@test>\r\nCall-ID: many0\r\n\
             CSeq: {cseq} SUBSCRIBE\r\nEvent: dialog\r\nExpires: 0\r\nContact: <sip:38@127.0.0.1:6038>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    });
    assert_eq!(status(to(&sent, 6038)[0]), 200, "{sent:?}");
    assert!(notifies(&sent, 6038)
        .iter()
        .any(|n| n.contains("Subscription-State: terminated")));
    let sent = subscribe(&mut lab, "35", "dialog", "room-again");
    assert_eq!(status(to(&sent, 6038)[0]), 200);
}

/// A SUBSCRIBE from 38 whose Contact names `contact` (host:port).
fn subscribe_contact(lab: &mut Lab, call_id: &str, contact: &str) -> Vec<(SocketAddr, String)> {
    lab.authed(6038, "38", "SUBSCRIBE", |auth, cseq| {
        format!(
            "SUBSCRIBE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6038;branch=z9hG4bKrf{cseq}{call_id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:38@test>;tag=w\r\nTo: <sip:35@test>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\nEvent: dialog\r\nExpires: 600\r\nContact: <sip:38@{contact}>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    })
}

#[test]
fn notifies_never_go_where_a_contact_merely_points() {
    // 38 (authenticated from 127.0.0.1:6038) names a third party as its Contact:
    // the NOTIFYs go to 38 itself, never to 127.0.0.9.
    let mut lab = lab();
    let victim: SocketAddr = "127.0.0.9:5060".parse().expect("addr");
    let mut sent = subscribe_contact(&mut lab, "reflect", "127.0.0.9:5060");
    assert_eq!(status(to(&sent, 6038)[0]), 200);
    sent.extend(lab.command("dnd 35 on").0);
    sent.extend(lab.command("dnd 35 off").0);
    assert!(
        sent.iter().all(|(a, _)| *a != victim),
        "something went to the named third party: {sent:?}"
    );
    assert!(
        notifies(&sent, 6038).len() >= 2,
        "the subscriber got its NOTIFYs"
    );
}

#[test]
fn a_subscription_whose_notify_is_refused_or_unanswered_ends() {
    let mut lab = lab();
    // Refused: the subscriber answers its NOTIFY with 481.
    let sent = subscribe_contact(&mut lab, "refused", "127.0.0.1:6038");
    let n = notifies(&sent, 6038);
    assert_eq!(n.len(), 1);
    lab.feed(6038, &respond(&n[0], 481, "w", 6038, ""));
    let after = lab.command("dnd 35 on").0;
    assert!(notifies(&after, 6038).is_empty(), "{after:?}");
    lab.command("dnd 35 off");

    // Unanswered: the NOTIFY's transaction times out (64·T1), then no more.
    let sent = subscribe_contact(&mut lab, "silent", "127.0.0.1:6038");
    assert_eq!(notifies(&sent, 6038).len(), 1);
    lab.advance(33_000);
    let after = lab.command("dnd 35 on").0;
    assert!(notifies(&after, 6038).is_empty(), "{after:?}");
}

#[test]
fn speed_lists_the_dials_in_force_with_the_configured_ones() {
    let mut lab = lab();
    let listed = |lab: &mut Lab| {
        let before = lab.events.len();
        let (_, r) = lab.command("#4 speed");
        let dials: Vec<(String, Option<String>, Option<String>)> = lab.events[before..]
            .iter()
            .filter_map(|e| match e {
                Event::SpeedDial {
                    id: Some(4),
                    code,
                    target,
                    config,
                } => Some((code.clone(), target.clone(), config.clone())),
                _ => None,
            })
            .collect();
        (dials, r)
    };
    let s = |v: &str| Some(v.to_string());
    let (dials, r) = listed(&mut lab);
    assert_eq!(dials, vec![("9".into(), s("35"), s("35"))]);
    assert_eq!(r, Some((ResultCode::Ok, "1 speed dials".into())));
    lab.command("speed 8 36");
    lab.command("speed 9 off");
    let (dials, r) = listed(&mut lab);
    assert_eq!(
        dials,
        vec![("8".into(), s("36"), None), ("9".into(), None, s("35"))]
    );
    assert_eq!(r, Some((ResultCode::Ok, "1 speed dials".into())));
}
