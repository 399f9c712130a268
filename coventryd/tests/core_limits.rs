//! What one authenticated phone may have in flight (issue 20): calls at once
//! (`[calls] max_per_line`, 8 by default) and texts being delivered (16, 16 KiB);
//! beyond, 503 with Retry-After and the `limited` counter, and room again as
//! soon as one ends. On the simulated clock.

mod common;

use common::*;

fn lab() -> Lab {
    let mut lab = Lab::new();
    for e in ["21", "35", "36"] {
        lab.register(e, 6000 + e.parse::<u16>().unwrap_or(0));
    }
    lab
}

fn final_to_caller(sent: &Sent) -> Option<u16> {
    to(sent, 6021).iter().map(|m| status(m)).find(|s| *s >= 200)
}

#[test]
fn a_line_makes_at_most_max_per_line_calls_at_once() {
    let mut lab = lab();
    // 35 rings and never answers: every call stays live.
    for n in 0..8 {
        let sent = lab.call_from("21", "35", &format!("many{n}"));
        assert!(
            to(&sent, 6035).iter().any(|m| m.starts_with("INVITE ")),
            "call {n} rang: {sent:?}"
        );
    }
    let sent = lab.call_from("21", "36", "one-too-many");
    let refusal = to(&sent, 6021)
        .into_iter()
        .find(|m| status(m) == 503)
        .unwrap_or_else(|| panic!("no 503: {sent:?}"));
    assert_eq!(header(refusal, "Retry-After"), Some("10"), "{refusal}");
    assert!(to(&sent, 6036).is_empty(), "36 never rang");
    assert_eq!(lab.sw.counters().limited, 1);
    // Another line is not held back by 21's calls.
    let sent = lab.call_from("35", "36", "other-line");
    assert!(to(&sent, 6036).iter().any(|m| m.starts_with("INVITE ")));
    // One of 21's calls ends (no answer): room for one more.
    lab.advance(60_000);
    let sent = lab.call_from("21", "36", "room-again");
    assert_ne!(final_to_caller(&sent), Some(503), "{sent:?}");
}

#[test]
fn a_sender_has_at_most_16_texts_in_flight() {
    let mut lab = lab();
    // 35 never answers its MESSAGEs: each delivery waits for Timer F.
    for n in 0..16 {
        let sent = lab.text("21", "35", "hello", &format!("t{n}"));
        assert_eq!(texts(&sent, 6035).len(), 1, "text {n} went out");
    }
    let sent = lab.text("21", "35", "one too many", "t16");
    assert!(texts(&sent, 6035).is_empty());
    let refusal = to(&sent, 6021)
        .into_iter()
        .find(|m| status(m) == 503)
        .unwrap_or_else(|| panic!("no 503: {sent:?}"));
    assert_eq!(header(refusal, "Retry-After"), Some("5"), "{refusal}");
    assert_eq!(lab.sw.counters().limited, 1);
    // Another sender is not held back.
    let sent = lab.text("36", "35", "mine", "other");
    assert_eq!(texts(&sent, 6035).len(), 1);
    // Once the deliveries time out (Timer F, 32 s), 21 may text again.
    lab.advance(33_000);
    let sent = lab.text("21", "35", "again", "t17");
    assert_eq!(texts(&sent, 6035).len(), 1, "{sent:?}");
}

#[test]
fn texts_to_the_sms_route_count_in_the_same_bound() {
    let mut lab = Lab::with_config(&format!(
        "{CONF}[upstream]\nroute = 127.0.0.1:5070\nsms_route = 127.0.0.1:5072\n"
    ));
    lab.register("21", 6021);
    lab.register("35", 6035);
    lab.sw.on_link(0, Some(addr(5070)));
    lab.sw.on_link(1, Some(addr(5072)));
    // Eight to a phone that never answers, eight to the SMS route that does not.
    for n in 0..8 {
        lab.text("21", "35", "hello", &format!("p{n}"));
        lab.text("21", "0044123", "hello", &format!("s{n}"));
    }
    let before = lab.tcp.len();
    let sent = lab.text("21", "0044123", "one too many", "s8");
    assert_eq!(lab.tcp.len(), before, "the seventeenth does not go out");
    assert!(to(&sent, 6021).iter().any(|m| status(m) == 503), "{sent:?}");
    // When the SMS route answers one, there is room for one more.
    let first = lab.tcp[lab.tcp.len() - 8].1.clone();
    lab.feed_tcp(addr(5072), &respond(&first, 202, "", 5072, ""));
    lab.text("21", "0044123", "now", "s9");
    assert_eq!(lab.tcp.len(), before + 1);
}

/// 21 registers `contact` from port 6021; the final status.
fn register_contact(lab: &mut Lab, contact: &str, n: u32) -> u16 {
    let sent = lab.authed(6021, "21", "REGISTER", |auth, cseq| {
        format!(
            "REGISTER sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKc{n}x{cseq}\r\n\
             From: <sip:21@test>;tag=c{n}\r\nTo: <sip:21@test>\r\nCall-ID: contact{n}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:21@{contact}>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    });
    to(&sent, 6021).first().map(|m| status(m)).unwrap_or(0)
}

#[test]
fn contacts_no_phone_can_have_are_refused() {
    let mut lab = lab();
    for (n, contact) in [
        "224.0.0.1:5060",
        "239.255.255.250:1900",
        "255.255.255.255:5060",
        "0.0.0.0:5060",
        "[::]:5060",
        "[ff02::1]:5060",
        SWITCH,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            register_contact(&mut lab, contact, n as u32),
            403,
            "{contact}"
        );
    }
    // The switch's own address on another port is a phone on the same host.
    assert_eq!(register_contact(&mut lab, "127.0.0.1:6099", 99), 200);
}

#[test]
fn forwards_go_only_where_the_site_allows() {
    use coventry_shared::event::ResultCode;
    let mut lab = lab();
    // Never to an emergency number; not outside when nothing can take the call.
    for (line, why) in [
        ("#1 forward 21 112", "emergency"),
        ("#2 forward 21 911 busy", "emergency"),
        ("#3 forward 21 09001234567", "no [upstream] route"),
    ] {
        let (_, r) = lab.command(line);
        let (code, text) = r.expect("a result");
        assert_eq!(code, ResultCode::Failed, "{line}: {text}");
        assert!(text.contains(why), "{line}: {text}");
    }
    let (_, r) = lab.command("#4 forward 21 35");
    assert_eq!(r.map(|r| r.0), Some(ResultCode::Ok), "inside is fine");

    // With forward_prefixes, outside numbers that match are allowed, others not,
    // and emergency numbers still never.
    let ok = |lab: &mut Lab, line: &str| lab.command(line).1.map(|r| r.0);
    let no_route = format!("{CONF}[upstream]\nforward_prefixes = 07\n");
    let mut lab = Lab::with_config(&no_route);
    assert_eq!(
        ok(&mut lab, "forward 21 07700900123"),
        Some(ResultCode::Failed),
        "allowed, but no route would take the calls"
    );
    let conf = format!(
        "{CONF}[upstream]\nroute = 127.0.0.1:5070\nforward_prefixes = 07, 0044\n\
         emergency = 112, 0711\n"
    );
    let mut lab = Lab::with_config(&conf);
    assert_eq!(
        ok(&mut lab, "forward 21 09001234567"),
        Some(ResultCode::Failed),
        "a route, but the prefix is not allowed"
    );
    assert_eq!(ok(&mut lab, "forward 21 07700900123"), Some(ResultCode::Ok));
    assert_eq!(
        ok(&mut lab, "forward 21 00441632960002"),
        Some(ResultCode::Ok)
    );
    assert_eq!(
        ok(&mut lab, "forward 21 09001234567"),
        Some(ResultCode::Failed)
    );
    assert_eq!(ok(&mut lab, "forward 21 0711"), Some(ResultCode::Failed));
}

#[test]
fn calls_outside_are_bounded_in_all_but_emergency_calls_never() {
    // Two calls outside at once; 35 and 36 each make one (within their own
    // per-line bound), 21's is one too many, and 21's emergency call still goes.
    let conf =
        format!("{CONF}[upstream]\nroute = 127.0.0.1:5070\nmax_calls = 2\nemergency = 112\n");
    let mut lab = Lab::with_config(&conf);
    let peer: std::net::SocketAddr = "127.0.0.1:5070".parse().expect("addr");
    lab.sw.on_link(0, Some(peer));
    for e in ["21", "35", "36"] {
        lab.register(e, 6000 + e.parse::<u16>().unwrap_or(0));
    }
    for (from, cid) in [("35", "out1"), ("36", "out2")] {
        lab.call_from(from, "0044123", cid);
    }
    let before = lab.tcp.len();
    let sent = lab.call_from("21", "0044999", "out3");
    let refusal = to(&sent, 6021)
        .into_iter()
        .find(|m| status(m) == 503)
        .unwrap_or_else(|| panic!("no 503: {sent:?}"));
    assert_eq!(header(refusal, "Retry-After"), Some("10"), "{refusal}");
    assert_eq!(lab.tcp.len(), before, "nothing more went outside");
    let sent = lab.call_from("21", "112", "sos");
    assert!(to(&sent, 6021).iter().all(|m| status(m) != 503), "{sent:?}");
    assert!(lab.tcp.len() > before, "the emergency call went out");
}

#[test]
fn junk_calls_cannot_rotate_the_call_history_away() {
    use coventry_shared::record::Book;
    let mut lab = Lab::new();
    lab.register("21", 6021);
    lab.register("35", 6035);
    // A real call first: 35 rings and is busy.
    let sent = lab.call_from("21", "35", "real");
    let inv = to(&sent, 6035)[0].to_string();
    lab.feed(6035, &respond(&inv, 486, "b", 6035, ""));
    // Then a thousand calls to numbers that do not exist, in one minute.
    for n in 0..1000 {
        lab.call_from("21", "99", &format!("junk{n}"));
    }
    let books: Vec<Book> = lab.call_records.iter().map(|(b, _)| *b).collect();
    assert_eq!(books.iter().filter(|b| **b == Book::Calls).count(), 1);
    assert_eq!(
        books.iter().filter(|b| **b == Book::Attempts).count(),
        20,
        "twenty attempts a minute per caller are written, apart"
    );
    // The next minute, twenty more.
    lab.now += 60_000;
    lab.advance(0);
    for n in 0..100 {
        lab.call_from("21", "99", &format!("later{n}"));
    }
    let attempts = lab
        .call_records
        .iter()
        .filter(|(b, _)| *b == Book::Attempts)
        .count();
    assert_eq!(attempts, 40);
}
