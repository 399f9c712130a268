//! MESSAGE: authenticated extensions texting extensions, groups and `all`; sipp as
//! the sending and as the receiving phone; limits (160 characters, text/plain);
//! offline and unknown targets; several contacts per extension.
#![allow(clippy::unwrap_used)]

use coventry_shared::event::{hidden_text, Event};
use coventry_tests::sipp::{logged, sipp_phone, Sipp};
use coventry_tests::ua::{Msg, Ua};
use coventry_tests::{fenced_request, secret, Conf, Switch, T};
use std::time::Duration;

fn assert_from(m: &Msg, ext: &str) {
    let from = m.header("From").unwrap_or("");
    assert!(
        from.contains(&format!("sip:{ext}@")),
        "the delivered MESSAGE must come from sip:{ext}@...: From: {from}\n{}",
        m.dump()
    );
}

#[test]
fn sipp_phone_receives_a_message_from_an_extension() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let uas = sipp_phone(&sw, 22);
    let mark = sw.mark();
    let mut sender = Ua::ext(sw.addr(), 21);
    let ex = sender.message_exchange("22", "text/plain", "hello from 21 ✓".as_bytes());
    assert!(
        ex.challenge
            .as_ref()
            .is_some_and(|c| c.status() == Some(407)),
        "MESSAGE must be challenged with 407"
    );
    assert_eq!(ex.status(), 200, "{}", ex.response().dump());
    let run = uas.wait();
    run.assert_success("UAS receiving the MESSAGE");
    assert!(
        logged(&run.logs, "from").is_some_and(|f| f.contains("sip:21@")),
        "{}",
        run.report()
    );
    assert!(
        logged(&run.logs, "type").is_some_and(|t| t.to_ascii_lowercase().starts_with("text/plain")),
        "{}",
        run.report()
    );
    assert_eq!(
        logged(&run.logs, "text"),
        Some("hello from 21 ✓"),
        "{}",
        run.report()
    );
    let ev = sw.expect_event_after(
        mark,
        "Message 21 -> 22",
        |e| matches!(e, Event::Message { .. }),
        T,
    );
    assert_eq!(
        ev,
        Event::Message {
            id: None,
            from: "21".into(),
            to: "22".into(),
            status: 200,
            text: hidden_text("hello from 21 ✓")
        }
    );
    sw.wait_counters("messages_delivered >= 1", |c| c.messages_delivered >= 1);
}

#[test]
fn sipp_sends_a_message_to_an_extension() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let host = sw.host();
    Sipp::new("uac_message.xml")
        .remote(sw.addr())
        .key("ext", "21")
        .key("target", "22")
        .key("text", "hi 22, this is sipp")
        .auth("21", &secret(21))
        .auth_uri(&format!("22@{host}"))
        .run()
        .assert_success("MESSAGE 21 -> 22 with 407 authentication");
    let m = phone.expect_request("MESSAGE from sipp", T);
    assert_eq!(m.method().as_deref(), Some("MESSAGE"));
    assert_eq!(m.text(), "hi 22, this is sipp");
    assert_from(&m, "21");
    assert!(
        m.header("Content-Type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/plain")),
        "{}",
        m.dump()
    );
    // Sent to the registered contact, as a new request from the switch.
    assert_eq!(m.src, sw.addr(), "the switch must send from its own socket");
    assert!(
        m.uri()
            .is_some_and(|u| u.contains(&phone.local_addr().port().to_string())),
        "{}",
        m.dump()
    );
}

#[test]
fn a_relayed_text_keeps_what_the_sender_wrote() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    let ex = sender.out_of_dialog(
        "MESSAGE",
        "22",
        &[
            "Geolocation: <cid:loc21@phone21>;inserted-by=phone21".to_string(),
            "Geolocation-Routing: yes".to_string(),
            "Date: Thu, 03 Dec 2026 10:00:00 GMT".to_string(),
            "P-Asserted-Identity: <sip:99@forged>".to_string(),
        ],
        Some(("text/plain", b"line one")),
    );
    assert_eq!(ex.status(), 200, "{}", ex.response().dump());
    let sent = Msg::parse(&ex.request, sw.addr()).unwrap();
    let m = phone.expect_request("MESSAGE", T);
    assert_from(&m, "21");
    assert_eq!(m.text(), "line one");
    let dump = m.dump();
    assert_eq!(m.call_id(), sent.call_id(), "the sender's Call-ID:\n{dump}");
    assert_eq!(m.header("From"), sent.header("From"), "{dump}");
    assert_eq!(
        m.header("Geolocation"),
        Some("<cid:loc21@phone21>;inserted-by=phone21"),
        "{dump}"
    );
    assert_eq!(m.header("Geolocation-Routing"), Some("yes"), "{dump}");
    assert_eq!(m.header("Date"), sent.header("Date"), "{dump}");
    assert!(
        m.header("Proxy-Authorization").is_none(),
        "credentials stay: {dump}"
    );
    assert!(
        !dump.contains("forged"),
        "identity claims are removed: {dump}"
    );
    let vias = m.list("Via");
    assert_eq!(vias.len(), 2, "the switch's Via over the sender's:\n{dump}");
    assert!(vias[0].contains(&sw.addr().port().to_string()), "{dump}");
    assert!(
        vias[1].contains(&sender.local_addr().port().to_string()),
        "{dump}"
    );
}

#[test]
fn offline_and_unknown_targets() {
    let sw = Switch::start(&Conf::new(&[21, 22, 23]).build());
    let mut sender = Ua::ext(sw.addr(), 21);
    let mark = sw.mark();
    assert_eq!(
        sender.message("23", "are you there?"),
        480,
        "offline configured extension"
    );
    sw.expect_event_after(
        mark,
        "Message to 23 with 480",
        |e| matches!(e, Event::Message { to, status: 480, .. } if to == "23"),
        T,
    );
    for target in ["77", "555", "nobody"] {
        assert_eq!(
            sender.message(target, "hello?"),
            404,
            "unknown number {target}"
        );
    }
    sw.wait_counters("messages_failed >= 1", |c| c.messages_failed >= 1);
}

#[test]
fn group_and_all_fan_out() {
    let sw = Switch::start(&Conf::new(&[21, 22, 23, 24]).group(100, &[22, 23]).build());
    let phones: Vec<Ua> = [22u16, 23, 24]
        .iter()
        .map(|n| {
            let mut p = Ua::ext(sw.addr(), *n);
            p.register(300);
            p
        })
        .collect();
    let mut sender = Ua::ext(sw.addr(), 21);
    let mark = sw.mark();
    assert_eq!(sender.message("100", "group hello"), 202);
    for p in &phones[..2] {
        let m = p.expect_request("group MESSAGE", T);
        assert_eq!(m.text(), "group hello");
        assert_from(&m, "21");
    }
    // The fan-out went out with the 202: anything for 24 is there by its fence.
    assert!(
        fenced_request(&phones[2], "MESSAGE").is_none(),
        "24 is not in group 100"
    );
    // One Message event per delivery, naming the member.
    for member in ["22", "23"] {
        sw.expect_event_after(
            mark,
            &format!("Message 21 -> {member} (group 100)"),
            |e| matches!(e, Event::Message { from, to, status: 200, text, .. } if from == "21" && to == member && *text == hidden_text("group hello")),
            T,
        );
    }
    assert!(
        !sw.events()
            .iter()
            .skip(mark)
            .any(|r| matches!(&r.event, Event::Message { to, .. } if to == "100" || to == "24")),
        "a Message event for the group or for 24, not a member of 100:\n{}",
        sw.events_text(mark)
    );

    assert_eq!(sender.message("all", "everybody"), 202);
    for p in &phones {
        let m = p.expect_request("MESSAGE to all", T);
        assert_eq!(m.text(), "everybody");
    }
}

#[test]
fn text_limit_is_160_characters_not_bytes() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    let max = "é".repeat(160); // 320 bytes
    assert_eq!(
        sender.message("22", &max),
        200,
        "160 characters are allowed"
    );
    assert_eq!(phone.expect_request("160 characters", T).text(), max);
    let long = "a".repeat(161);
    assert_eq!(sender.message("22", &long), 413, "161 characters");
    assert!(fenced_request(&phone, "MESSAGE").is_none());
}

#[test]
fn only_text_plain_is_accepted() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    let ex = sender.message_exchange("22", "text/html", b"<b>hi</b>");
    assert_eq!(
        ex.status(),
        415,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
    let ex = sender.message_exchange("22", "text/plain; charset=UTF-8", b"with charset");
    assert_eq!(
        ex.status(),
        200,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
    assert_eq!(
        phone.expect_request("text/plain; charset", T).text(),
        "with charset"
    );
    assert!(
        fenced_request(&phone, "MESSAGE").is_none(),
        "text/html was delivered"
    );
}

#[test]
fn one_accepting_contact_is_enough() {
    let sw = Switch::start(&Conf::new(&[21, 22]).ext_line(22, "lines = 2").build());
    let mut busy = Ua::ext(sw.addr(), 22);
    busy.set_answer(486);
    busy.register(300);
    let mut ok = Ua::ext(sw.addr(), 22);
    ok.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    assert_eq!(sender.message("22", "to both"), 200);
    assert_eq!(
        busy.expect_request("to the busy contact", T).text(),
        "to both"
    );
    assert_eq!(
        ok.expect_request("to the accepting contact", T).text(),
        "to both"
    );
}

#[test]
fn a_refusing_phone_gives_its_failure_status() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.set_answer(486);
    phone.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    let mark = sw.mark();
    let st = sender.message("22", "busy?");
    assert_eq!(st, 486, "the only contact answered 486");
    phone.expect_request("the refused MESSAGE", T);
    sw.expect_event_after(
        mark,
        "Message with status 486",
        |e| matches!(e, Event::Message { status: 486, .. }),
        T,
    );
}

#[test]
fn a_dead_contact_does_not_delay_delivery() {
    let sw = Switch::start(&Conf::new(&[21, 22]).ext_line(22, "lines = 2").build());
    let mut dead = Ua::ext(sw.addr(), 22);
    dead.set_answer(0); // never answers, like a phone that left
    dead.register(300);
    let mut alive = Ua::ext(sw.addr(), 22);
    alive.register(300);
    let mut sender = Ua::ext(sw.addr(), 21);
    // Far below the 32 s the dead contact's transaction lasts (Timer F), far above
    // what any machine needs: a switch that waited for the dead one times out here.
    sender.timeout = Duration::from_secs(20);
    let st = sender.message("22", "one of you");
    assert_eq!(
        st, 200,
        "the switch must answer 200 as soon as one contact accepts"
    );
    assert_eq!(
        alive.expect_request("to the live contact", T).text(),
        "one of you"
    );
}

#[test]
fn sipp_to_sipp() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let uas = sipp_phone(&sw, 22);
    let host = sw.host();
    Sipp::new("uac_message.xml")
        .remote(sw.addr())
        .key("ext", "21")
        .key("target", "22")
        .key("text", "sipp to sipp")
        .auth("21", &secret(21))
        .auth_uri(&format!("22@{host}"))
        .run()
        .assert_success("MESSAGE 21 -> 22");
    let run = uas.wait();
    run.assert_success("the sipp phone receiving the MESSAGE");
    assert_eq!(
        logged(&run.logs, "text"),
        Some("sipp to sipp"),
        "{}",
        run.report()
    );
    assert!(
        logged(&run.logs, "from").is_some_and(|f| f.contains("sip:21@")),
        "{}",
        run.report()
    );
}

/// sipp across a restart: a phone registered before the daemon restarts is
/// still registered after it (the bindings are kept) and gets a text sent then.
#[test]
fn a_sipp_phone_registered_before_a_restart_gets_texts_after_it() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let uas = coventry_tests::sipp::sipp_phone(&sw, 22);
    sw.restart();
    sw.wait_state("22 still registered", T, |s| s.is_registered(22));
    let o = sw.pbxctl(&["message", "22", "after the restart ✓"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let run = uas.wait();
    run.assert_success("the sipp phone receives the text after the restart");
    assert_eq!(
        coventry_tests::sipp::logged(&run.logs, "text"),
        Some("after the restart ✓"),
        "{}",
        run.report()
    );
}

/// Residents' texts are private: the event ring (what `pbxctl watch` and the
/// console show to everyone in the daemon's group) carries sender, recipient,
/// length and result, not the words — unless `[security] show_texts = yes`.
#[test]
fn the_words_of_a_text_stay_out_of_the_event_ring_unless_shown_on_purpose() {
    for (show, conf) in [
        (false, Conf::new(&[21, 22]).build()),
        (
            true,
            Conf::new(&[21, 22])
                .section("security", "show_texts = yes")
                .build(),
        ),
    ] {
        let sw = Switch::start(&conf);
        let mut sender = Ua::ext(sw.addr(), 21);
        let mut to = Ua::ext(sw.addr(), 22);
        sender.register(300);
        to.register(300);
        let mark = sw.mark();
        assert_eq!(sender.message("22", "the key is under the mat"), 200);
        assert_eq!(
            to.expect_request("the text", T).text(),
            "the key is under the mat",
            "the recipient gets the words"
        );
        let want = if show {
            "the key is under the mat".to_string()
        } else {
            "(24 characters, words not shown)".to_string()
        };
        sw.expect_event_after(
            mark,
            "the text's event",
            |e| {
                matches!(e, Event::Message { from, to, status: 200, text, .. }
                if from == "21" && to == "22" && *text == want)
            },
            T,
        );
        // What watch prints of the ring, everything in it so far.
        let n = sw.events().len().to_string();
        let watch = sw.pbxctl(&["watch", "--json", "--from-start", "--count", &n]);
        let out = String::from_utf8_lossy(&watch.stdout);
        assert!(out.contains("\"kind\":\"message\""), "{out}");
        assert_eq!(out.contains("under the mat"), show, "{out}");
    }
}
