//! Hostile and broken input. After each case the switch must still register a phone
//! and deliver a message ([`check_registers_and_delivers`]).
#![allow(clippy::unwrap_used)]

use coventry_shared::event::Event;
use coventry_tests::ua::{unique, Msg, Ua};
use coventry_tests::{check_registers_and_delivers, fenced_request, sip_fence, Conf, Switch, T};

fn switch() -> Switch {
    Switch::start(&Conf::new(&[21, 22, 23]).build())
}

/// A request with `headers` (full lines, no Content-Length) and `body`.
fn raw_request(method: &str, ruri: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut s = format!("{method} {ruri} SIP/2.0\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut v = s.into_bytes();
    v.extend_from_slice(body);
    v
}

/// The usual headers of a request from `ua` (extension `ua.user`).
fn base_headers(ua: &Ua, method: &str) -> Vec<String> {
    vec![
        format!(
            "Via: SIP/2.0/UDP {};branch={};rport",
            ua.local_addr(),
            unique("z9hG4bK")
        ),
        "Max-Forwards: 70".into(),
        format!("From: <{}>;tag={}", ua.aor(), unique("f")),
        format!("To: <{}>", ua.aor()),
        format!("Call-ID: {}", unique("bad-")),
        format!("CSeq: 1 {method}"),
    ]
}

/// Send `bytes`; the response to them, if the switch answers at all: whatever
/// came before the answer to a fence sent after them from the same socket.
fn poke(ua: &Ua, bytes: &[u8]) -> Option<Msg> {
    ua.drain_responses();
    ua.send_raw(bytes);
    sip_fence(ua).into_iter().next()
}

fn assert_alive(sw: &mut Switch) {
    assert!(sw.is_running(), "coventryd died:\n{}", sw.log());
    check_registers_and_delivers(sw, 21, 22);
}

#[test]
fn oversized_datagram_gets_513_or_is_dropped() {
    let mut sw = switch();
    let ua = Ua::ext(sw.addr(), 21);
    let before = sw.snapshot().body.counters;
    for size in [8_300usize, 20_000, 65_000] {
        let mut h = base_headers(&ua, "OPTIONS");
        h.push(format!("X-Pad: {}", "x".repeat(size)));
        let req = raw_request("OPTIONS", &format!("sip:{}", sw.host()), &h, b"");
        assert!(req.len() > 8192);
        if let Some(r) = poke(&ua, &req) {
            assert_eq!(r.status(), Some(513), "{size} bytes: {}", r.summary());
        }
    }
    // A MESSAGE whose text is short but whose datagram is too big.
    let mut h = base_headers(&ua, "MESSAGE");
    h.push("Content-Type: text/plain".into());
    h.push(format!("Subject: {}", "s".repeat(9000)));
    let req = raw_request("MESSAGE", &format!("sip:22@{}", sw.host()), &h, b"hi");
    if let Some(r) = poke(&ua, &req) {
        assert_eq!(r.status(), Some(513), "{}", r.summary());
    }
    sw.wait_counters("4 oversized datagrams counted as too_large", |c| {
        c.too_large >= before.too_large + 4
    });
    assert_alive(&mut sw);
}

#[test]
fn garbage_bytes_are_counted_and_dropped() {
    let mut sw = switch();
    let ua = Ua::ext(sw.addr(), 21);
    let before = sw.snapshot().body.counters;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = vec![0u8; 1400];
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let garbage: Vec<Vec<u8>> = vec![
        random,
        vec![0u8; 1000],
        b"\r\n\r\n".to_vec(),
        b"x".to_vec(),
        b"SIP/2.0".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"REGISTER\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        "INVITE sip:\u{0}@\u{7f} SIP/9.9\r\nVia: ::::\r\n\r\n"
            .as_bytes()
            .to_vec(),
        vec![0xff; 200],
    ];
    for g in &garbage {
        if let Some(r) = poke(&ua, g) {
            assert_eq!(
                r.status(),
                Some(400),
                "garbage {:?} answered {}",
                String::from_utf8_lossy(g),
                r.summary()
            );
        }
    }
    sw.wait_counters("garbage counted as malformed", |c| {
        c.malformed >= before.malformed + 5
    });
    assert_alive(&mut sw);
}

#[test]
fn truncated_messages_are_rejected() {
    let mut sw = switch();
    let mut ua = Ua::ext(sw.addr(), 21);
    let full = ua.register_request(Some(120), None, None);
    let head_end = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    // Cut inside the headers, right after the start line, inside the start line.
    for cut in [head_end / 2, head_end - 1, 30, 10] {
        let r = poke(&ua, &full[..cut]);
        if let Some(r) = r {
            assert_eq!(r.status(), Some(400), "cut at {cut}: {}", r.summary());
        }
    }
    // Content-Length promises more body than arrives.
    let mut h = base_headers(&ua, "MESSAGE");
    h.push("Content-Type: text/plain".into());
    let mut req = raw_request(
        "MESSAGE",
        &format!("sip:22@{}", sw.host()),
        &h,
        b"0123456789",
    );
    let n = req.len();
    req.truncate(n - 5);
    if let Some(r) = poke(&ua, &req) {
        assert_eq!(r.status(), Some(400), "short body: {}", r.summary());
    }
    sw.wait_counters("truncated messages counted as malformed", |c| {
        c.malformed >= 1
    });
    assert_alive(&mut sw);
}

#[test]
fn header_bombs_do_not_hurt() {
    let mut sw = switch();
    let ua = Ua::ext(sw.addr(), 21);
    let ruri = format!("sip:{}", sw.host());
    // Many tiny headers, within the size limit.
    let mut h = base_headers(&ua, "OPTIONS");
    h.extend((0..900).map(|i| format!("X{i}:1")));
    let bomb = raw_request("OPTIONS", &ruri, &h, b"");
    assert!(bomb.len() < 8192, "{}", bomb.len());
    let r = poke(&ua, &bomb);
    if let Some(r) = &r {
        let st = r.status().unwrap();
        assert!(
            st == 200 || st == 400 || st == 513 || st == 494,
            "{}",
            r.summary()
        );
    }
    // Hundreds of Via headers and a comma-joined Via list.
    let mut h = base_headers(&ua, "OPTIONS");
    h.extend((0..150).map(|i| {
        format!(
            "Via: SIP/2.0/UDP 10.0.{}.{}:5060;branch=z9hG4bK{i}",
            i / 250,
            i % 250
        )
    }));
    let r = poke(&ua, &raw_request("OPTIONS", &ruri, &h, b""));
    if let Some(r) = &r {
        assert!(
            matches!(r.status(), Some(200 | 400 | 483 | 513)),
            "{}",
            r.summary()
        );
    }
    let mut h = base_headers(&ua, "OPTIONS");
    let joined: Vec<String> = (0..150)
        .map(|i| format!("SIP/2.0/UDP 10.1.0.{i}:5060;branch=z9hG4bKj{i}"))
        .collect();
    h.push(format!("Via: {}", joined.join(",")));
    let _ = poke(&ua, &raw_request("OPTIONS", &ruri, &h, b""));
    // One header folded over a thousand lines.
    let mut h = base_headers(&ua, "OPTIONS");
    h.push(format!("Subject: start{}", "\r\n x".repeat(1000)));
    let _ = poke(&ua, &raw_request("OPTIONS", &ruri, &h, b""));
    // A header with a huge parameter list and deeply nested angle brackets.
    let mut h = base_headers(&ua, "REGISTER");
    h.push(format!(
        "Contact: {}sip:21@127.0.0.1{}",
        "<".repeat(2000),
        ">".repeat(2000)
    ));
    let r = poke(&ua, &raw_request("REGISTER", &ruri, &h, b""));
    if let Some(r) = &r {
        assert_ne!(r.status(), Some(200), "{}", r.summary());
    }
    assert!(!sw.snapshot().is_registered(21));
    assert_alive(&mut sw);
}

#[test]
fn missing_mandatory_headers_are_400() {
    let mut sw = switch();
    let ua = Ua::ext(sw.addr(), 21);
    let ruri = format!("sip:{}", sw.host());
    for (i, missing) in ["Via", "From", "To", "Call-ID", "CSeq"].iter().enumerate() {
        let mut h = base_headers(&ua, "REGISTER");
        h.retain(|l| !l.starts_with(&format!("{missing}:")));
        h.push(format!("Contact: <{}>", ua.contact_uri()));
        let r = poke(&ua, &raw_request("REGISTER", &ruri, &h, b""));
        if let Some(r) = r {
            assert_eq!(
                r.status(),
                Some(400),
                "REGISTER without {missing} (case {i}): {}",
                r.summary()
            );
        }
    }
    // CSeq whose method disagrees with the request line, and a bad CSeq number.
    for cseq in [
        "CSeq: 1 INVITE",
        "CSeq: x REGISTER",
        "CSeq: 99999999999 REGISTER",
    ] {
        let mut h = base_headers(&ua, "REGISTER");
        h.retain(|l| !l.starts_with("CSeq:"));
        h.push(cseq.to_string());
        if let Some(r) = poke(&ua, &raw_request("REGISTER", &ruri, &h, b"")) {
            assert_eq!(r.status(), Some(400), "{cseq}: {}", r.summary());
        }
    }
    assert!(!sw.snapshot().is_registered(21));
    assert_alive(&mut sw);
}

#[test]
fn replayed_nonce_is_refused() {
    let mut sw = switch();
    let mut ua = Ua::ext(sw.addr(), 21);
    let ex = ua.register_exchange(Some(300), None);
    assert_eq!(ex.status(), 200);
    let (name, value) = ua.last_auth.clone().unwrap();
    // An attacker who captured the Authorization replays it (same nonce, same nc)
    // in a new REGISTER from elsewhere, pointing 21 at itself.
    let mut thief = Ua::new(sw.addr(), "21", "unknown");
    let req = thief.register_request(Some(300), None, Some((&name, &value)));
    let r = thief.transact(&req).expect("an answer to the replay");
    assert_ne!(
        r.status(),
        Some(200),
        "replayed credentials accepted:\n{}",
        r.dump()
    );
    assert!(matches!(r.status(), Some(401 | 403)), "{}", r.dump());
    // The refusal is the fence: the state block is current (published before the
    // answer goes out, and the fence makes sure of it).
    sip_fence(&thief);
    sw.wait_contacts(21, &[ua.contact_uri()]);
    // The same from the legitimate phone with a new CSeq: also a replay.
    let req = ua.register_request(Some(300), None, Some((&name, &value)));
    let r = ua.transact(&req).expect("answer");
    assert_ne!(
        r.status(),
        Some(200),
        "nonce+nc reused in a new request was accepted:\n{}",
        r.dump()
    );
    // Replaying a MESSAGE's Proxy-Authorization to send another text.
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mut sender = Ua::ext(sw.addr(), 23);
    assert_eq!(sender.message("22", "original"), 200);
    assert_eq!(phone.expect_request("original", T).text(), "original");
    let (n, v) = sender.last_auth.clone().unwrap();
    let req = sender.message_request(
        "22",
        "text/plain",
        b"forged",
        &unique("replay-"),
        Some((&n, &v)),
    );
    let r = sender
        .transact(&req)
        .expect("answer to the replayed MESSAGE");
    assert_ne!(r.status(), Some(200), "{}", r.dump());
    assert!(
        fenced_request(&phone, "MESSAGE").is_none(),
        "the replayed MESSAGE was delivered"
    );
    assert_alive(&mut sw);
}

#[test]
fn message_of_161_characters_is_413() {
    let mut sw = switch();
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    let ex = sender.message_exchange("22", "text/plain", "ü".repeat(161).as_bytes());
    assert_eq!(
        ex.status(),
        413,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
    assert!(
        fenced_request(&phone, "MESSAGE").is_none(),
        "an over-long text was delivered"
    );
    assert_alive(&mut sw);
}

#[test]
fn invalid_utf8_is_400() {
    let mut sw = switch();
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    for body in [
        &b"caf\xe9"[..],
        b"\xff\xfe\xfd",
        b"ok \xc3\x28",
        b"\xed\xa0\x80",
    ] {
        let ex = sender.message_exchange("22", "text/plain", body);
        assert_eq!(
            ex.status(),
            400,
            "{body:?}: {:?}",
            ex.response.as_ref().map(Msg::dump)
        );
    }
    assert!(
        fenced_request(&phone, "MESSAGE").is_none(),
        "invalid UTF-8 was delivered"
    );
    assert_alive(&mut sw);
}

#[test]
fn spoofed_from_without_credentials_is_not_delivered() {
    let mut sw = switch();
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mark = sw.mark();
    // Claims to be 21, knows no secret.
    let mut spoofer = Ua::new(sw.addr(), "21", "");
    let req = spoofer.message_request("22", "text/plain", b"I am 21", &unique("spoof-"), None);
    let r = spoofer.transact(&req).expect("an answer");
    assert_eq!(r.status(), Some(407), "{}", r.dump());
    // With made-up credentials.
    let fake = format!(
        "Digest username=\"21\", realm=\"test\", nonce=\"{}\", uri=\"sip:22@{}\", response=\"{}\", algorithm=MD5",
        "0".repeat(32),
        sw.host(),
        "f".repeat(32)
    );
    let req = spoofer.message_request(
        "22",
        "text/plain",
        b"I am 21",
        &unique("spoof-"),
        Some(("Proxy-Authorization", &fake)),
    );
    let r = spoofer.transact(&req).expect("an answer");
    assert!(matches!(r.status(), Some(401 | 403 | 407)), "{}", r.dump());
    // 23's valid credentials on a From of 21.
    let mut liar = Ua::ext(sw.addr(), 23);
    let call_id = unique("liar-");
    let req = liar.message_request("22", "text/plain", b"I am 21 too", &call_id, None);
    let ch = liar.transact(&req).unwrap();
    let uri = liar.target_uri("22");
    let (n, v) = liar.credentials(&ch, "MESSAGE", &uri).unwrap();
    let mut bytes =
        liar.message_request("22", "text/plain", b"I am 21 too", &call_id, Some((&n, &v)));
    let text = String::from_utf8(bytes.clone()).unwrap();
    let spoofed = text.replacen("From: <sip:23@", "From: <sip:21@", 1);
    assert_ne!(text, spoofed);
    bytes = spoofed.into_bytes();
    let r = liar.transact(&bytes).expect("answer");
    if r.status() == Some(200) {
        let m = phone.expect_request("the message 23 sent", T);
        assert!(
            !m.header("From").unwrap_or("").contains("sip:21@"),
            "23 made the switch deliver a message as 21:\n{}",
            m.dump()
        );
    }
    // Every answer is in: a delivery would have reached the phone before the
    // fence's answer, and its receipt (the phone answers at once) would be in the
    // events, as the phone's 200 comes before its fence.
    assert!(
        fenced_request(&phone, "MESSAGE")
            .map(|m| m.text())
            .filter(|t| t == "I am 21")
            .is_none(),
        "the unauthenticated message was delivered"
    );
    assert!(
        !sw.events()
            .iter()
            .skip(mark)
            .any(|r| matches!(&r.event, Event::Message { from, status: 200, .. } if from == "21")),
        "a message from 21 was delivered:\n{}",
        sw.events_text(mark)
    );
    assert_alive(&mut sw);
}

#[test]
fn invite_and_unknown_methods_get_an_answer() {
    let mut sw = switch();
    let mut ua = Ua::ext(sw.addr(), 21);
    let call_id = unique("inv-");
    let cseq = ua.next_cseq();
    let uri = ua.target_uri("22");
    let sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let contact = format!("Contact: <{}>", ua.contact_uri());
    let inv = ua.build(
        "INVITE",
        &uri,
        &uri,
        &call_id,
        cseq,
        &[contact.clone(), "Content-Type: application/sdp".into()],
        sdp,
    );
    let r = ua.transact(&inv).expect("INVITE must be answered");
    let st = if r.status() == Some(407) {
        let (n, v) = ua.credentials(&r, "INVITE", &uri).unwrap();
        let cseq = ua.next_cseq();
        let auth = format!("{n}: {v}");
        let inv = ua.build(
            "INVITE",
            &uri,
            &uri,
            &call_id,
            cseq,
            &[contact, "Content-Type: application/sdp".into(), auth],
            sdp,
        );
        ua.transact(&inv).and_then(|m| m.status())
    } else {
        r.status()
    };
    assert!(
        matches!(st, Some(501 | 480 | 404 | 486 | 488 | 503)),
        "INVITE: {st:?}"
    );
    let cseq = ua.next_cseq();
    let frob = ua.build("FROB", &uri, &uri, &unique("frob-"), cseq, &[], b"");
    let r = ua
        .transact(&frob)
        .expect("an unknown method must be answered");
    assert!(matches!(r.status(), Some(405 | 501)), "{}", r.dump());
    assert_alive(&mut sw);
}
