//! REGISTER: digest authentication (SHA-256 from the in-test UA, MD5 from the UA and
//! from sipp), wrong password, unknown extensions, un-REGISTER, clamped expiry,
//! transaction retransmissions. (A nonce that outlived `nonce_lifetime` is stale:
//! core_auth_guard, on the simulated clock; a nonce of the previous run:
//! field_auth.)
#![allow(clippy::unwrap_used)]

use coventry_shared::event::{Event, Unregistration};
use coventry_shared::stateblock::get_str;
use coventry_tests::sipp::Sipp;
use coventry_tests::ua::{Algo, Challenge, Ua};
use coventry_tests::{secret, sip_fence, Conf, Switch, T};
use std::time::Duration;

#[test]
fn options_is_answered() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    let r = ua.options().expect("no answer to OPTIONS");
    assert_eq!(r.status(), Some(200), "{}", r.dump());
}

#[test]
fn sha256_register_offers_both_algorithms_and_publishes_state() {
    let sw = Switch::start(
        &Conf::new(&[21, 22])
            .server("algorithm = sha256, md5")
            .build(),
    );
    let mut ua = Ua::ext(sw.addr(), 21).with_algo(Algo::Sha256);
    let mark = sw.mark();

    // The challenge: SHA-256 first, then MD5, both with qop="auth", realm "test".
    let req = ua.register_request(Some(120), None, None);
    let ch = ua.transact(&req).expect("no answer to REGISTER");
    assert_eq!(ch.status(), Some(401), "{}", ch.dump());
    let raw: Vec<&str> = ch.header_all("WWW-Authenticate");
    let chs: Vec<Challenge> = raw.iter().filter_map(|v| Challenge::parse(v)).collect();
    assert_eq!(chs.len(), raw.len(), "unparseable challenge in {raw:?}");
    let algs: Vec<Algo> = chs.iter().map(|c| c.algorithm).collect();
    assert_eq!(algs, vec![Algo::Sha256, Algo::Md5], "{raw:?}");
    for c in &chs {
        assert_eq!(c.realm, "test");
        assert!(c.qop.iter().any(|q| q == "auth"), "{c:?}");
        assert!(!c.stale);
        assert!(c.nonce.len() >= 8, "short nonce {c:?}");
    }

    // Answer the SHA-256 challenge.
    let uri = ua.registrar_uri();
    let (n, v) = ua.credentials(&ch, "REGISTER", &uri).unwrap();
    assert!(v.contains("algorithm=SHA-256"));
    let req = ua.register_request(Some(120), None, Some((&n, &v)));
    let ok = ua
        .transact(&req)
        .expect("no answer to authenticated REGISTER");
    assert_eq!(ok.status(), Some(200), "{}", ok.dump());
    assert_eq!(
        ok.contact_expires(&ua.local_addr().to_string()),
        Some(120),
        "200 must echo our Contact with ;expires=120:\n{}",
        ok.dump()
    );

    // Event, bitmap, extension table.
    let ev = sw.expect_event_after(
        mark,
        "Registered 21",
        |e| matches!(e, Event::Registered { ext: 21, .. }),
        T,
    );
    let Event::Registered {
        contact,
        user_agent,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert!(contact.contains(&ua.local_addr().to_string()), "{contact}");
    assert_eq!(user_agent, "coventry-tests/21");
    let snap = sw.wait_contacts(21, &[ua.contact_uri()]);
    assert!(!snap.is_registered(22));
    let e = snap.ext(21).unwrap();
    assert_eq!(e.active_contacts().len(), 1);
    let c = &e.active_contacts()[0];
    assert_eq!(get_str(&c.uri), ua.contact_uri());
    assert_eq!(get_str(&c.user_agent), "coventry-tests/21");
    assert!(get_str(&c.source).contains(&ua.local_addr().port().to_string()));
    let left = c.expires_ms.saturating_sub(coventry_shared::now_ms());
    assert!((100_000..=121_000).contains(&left), "expires in {left} ms");
    sw.wait_counters("registers >= 1", |c| c.registers >= 1);
}

#[test]
fn md5_register_from_the_in_test_ua() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mut ua = Ua::ext(sw.addr(), 21).with_algo(Algo::Md5);
    let ex = ua.register_exchange(Some(300), None);
    assert!(ex.request.windows(13).any(|w| w == b"algorithm=MD5"));
    assert_eq!(ex.status(), 200, "{}", ex.response().dump());
    sw.wait_contacts(21, &[ua.contact_uri()]);
}

#[test]
fn md5_register_with_sipp() {
    // sipp 3.6 answers only the first challenge and only MD5.
    let sw = Switch::start(&Conf::new(&[21]).build());
    let sipp = Sipp::new("uac_register.xml").remote(sw.addr());
    let contact = sipp.contact_uri("21");
    let run = sipp
        .key("ext", "21")
        .key("contact", &contact)
        .key("expires", "600")
        .auth("21", &secret(21))
        .auth_uri(&sw.host())
        .run();
    run.assert_success("REGISTER with MD5 digest");
    assert!(run.logs.contains("granted expires=600"), "{}", run.report());
    sw.wait_contacts(21, &[contact]);
}

#[test]
fn wrong_password_is_403_and_logged() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mark = sw.mark();
    let mut ua = Ua::new(sw.addr(), "21", "not-the-secret");
    let ex = ua.register_exchange(Some(120), None);
    assert!(ex.challenge.is_some(), "expected a 401 challenge first");
    assert_eq!(ex.status(), 403, "{}", ex.response().dump());
    let ev = sw.expect_event_after(
        mark,
        "AuthFailed for 21",
        |e| matches!(e, Event::AuthFailed { user, .. } if user == "21"),
        T,
    );
    let Event::AuthFailed { source, .. } = ev else {
        unreachable!()
    };
    assert!(
        source.contains(&ua.local_addr().port().to_string()),
        "AuthFailed must name the source address, got {source}"
    );
    assert!(!sw.snapshot().is_registered(21));
    sw.wait_counters("auth_failures >= 1", |c| c.auth_failures >= 1);
    // One log line with the source address (fail2ban).
    let port = ua.local_addr().port().to_string();
    assert!(
        sw.log()
            .lines()
            .any(|l| l.contains("127.0.0.1") && l.contains(&port)),
        "no log line naming 127.0.0.1:{port}:\n{}",
        sw.log()
    );
}

#[test]
fn wrong_password_with_sipp_is_403() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let sipp = Sipp::new("uac_register_403.xml").remote(sw.addr());
    let contact = sipp.contact_uri("21");
    sipp.key("ext", "21")
        .key("contact", &contact)
        .key("expires", "600")
        .auth("21", "wrong")
        .auth_uri(&sw.host())
        .run()
        .assert_success("REGISTER with a wrong password answered 403");
    assert!(!sw.snapshot().is_registered(21));
}

#[test]
fn unknown_extensions_are_rejected() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    // 77: in the plan, not configured; 99 and 5000: not extensions of the plan.
    for user in ["77", "99", "5000", "system", "all"] {
        let mut ua = Ua::new(sw.addr(), user, "whatever");
        let ex = ua.register_exchange(Some(120), None);
        let st = ex.status();
        assert!(
            st == 403 || st == 404,
            "REGISTER of unknown {user}: expected 403/404, got {st}: {:?}",
            ex.response.as_ref().map(|m| m.dump())
        );
    }
    assert!(sw.snapshot().exts().iter().all(|e| e.contact_count == 0));
}

#[test]
fn unregister_removes_the_contact() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    ua.register(300);
    sw.wait_contacts(21, &[ua.contact_uri()]);
    let mark = sw.mark();
    let ex = ua.register_exchange(Some(0), None);
    assert_eq!(ex.status(), 200, "{}", ex.response().dump());
    assert!(
        ex.response()
            .contact_expires(&ua.local_addr().to_string())
            .is_none(),
        "the removed contact must not be listed in the 200:\n{}",
        ex.response().dump()
    );
    let ev = sw.expect_event_after(
        mark,
        "Unregistered 21",
        |e| matches!(e, Event::Unregistered { ext: 21, .. }),
        T,
    );
    assert!(
        matches!(
            ev,
            Event::Unregistered {
                why: Unregistration::ByPhone,
                ..
            }
        ),
        "{ev:?}"
    );
    sw.wait_contacts(21, &[]);
}

#[test]
fn unregister_with_sipp() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let reg = Sipp::new("uac_register.xml").remote(sw.addr());
    let contact = reg.contact_uri("21");
    reg.key("ext", "21")
        .key("contact", &contact)
        .key("expires", "600")
        .auth("21", &secret(21))
        .auth_uri(&sw.host())
        .run()
        .assert_success("REGISTER");
    sw.wait_contacts(21, std::slice::from_ref(&contact));
    Sipp::new("uac_unregister.xml")
        .remote(sw.addr())
        .key("ext", "21")
        .key("contact", &format!("<{contact}>"))
        .auth("21", &secret(21))
        .auth_uri(&sw.host())
        .run()
        .assert_success("un-REGISTER");
    sw.wait_contacts(21, &[]);
}

#[test]
fn star_unregister_removes_every_contact() {
    let sw = Switch::start(&Conf::new(&[21]).ext_line(21, "lines = 3").build());
    let mut desk = Ua::ext(sw.addr(), 21);
    let mut soft = Ua::ext(sw.addr(), 21);
    desk.register(300);
    soft.register(300);
    sw.wait_contacts(21, &[desk.contact_uri(), soft.contact_uri()]);

    let mark = sw.mark();
    let ex = desk.register_exchange(Some(0), Some("*"));
    assert_eq!(ex.status(), 200, "{}", ex.response().dump());
    sw.wait_contacts(21, &[]);
    for ua in [&desk, &soft] {
        let c = ua.contact_uri();
        sw.expect_event_after(
            mark,
            &format!("Unregistered {c}"),
            |e| matches!(e, Event::Unregistered { ext: 21, contact, .. } if *contact == c),
            T,
        );
    }
}

#[test]
fn reregistering_refreshes_without_duplicating() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    ua.register(300);
    ua.register(600);
    sw.wait_state("the refresh to 600 s published", T, |s| {
        s.ext(21)
            .unwrap()
            .active_contacts()
            .first()
            .is_some_and(|c| c.expires_ms.saturating_sub(coventry_shared::now_ms()) > 500_000)
    });
    let snap = sw.wait_contacts(21, &[ua.contact_uri()]);
    assert_eq!(
        snap.ext(21).unwrap().contact_count,
        1,
        "a refresh must not add a second contact"
    );
}

#[test]
fn expiry_is_clamped_to_the_configured_bounds() {
    let sw = Switch::start(
        &Conf::new(&[21])
            .server("min_expires = 60")
            .server("max_expires = 3600")
            .server("default_expires = 1800")
            .build(),
    );
    let mut ua = Ua::ext(sw.addr(), 21);
    let me = ua.local_addr().to_string();
    for (asked, granted) in [
        (Some(10), 60),
        (Some(100_000), 3600),
        (None, 1800),
        (Some(61), 61),
    ] {
        let before = coventry_shared::now_ms();
        let ex = ua.register_exchange(asked, None);
        let after = coventry_shared::now_ms();
        assert_eq!(
            ex.status(),
            200,
            "Expires {asked:?}: {}",
            ex.response().dump()
        );
        assert_eq!(
            ex.response().contact_expires(&me),
            Some(granted),
            "Expires {asked:?} must be granted as {granted}:\n{}",
            ex.response().dump()
        );
        // Granted from when the switch took the REGISTER, which lies between
        // the test's clock readings around the exchange (however long it took).
        let g = u64::from(granted) * 1000;
        sw.wait_state(
            &format!("expiry of {granted} s in the state block"),
            T,
            |s| {
                s.ext(21)
                    .unwrap()
                    .active_contacts()
                    .first()
                    .is_some_and(|c| (before + g..=after + g).contains(&c.expires_ms))
            },
        );
    }
}

#[test]
fn retransmitted_register_is_answered_from_the_transaction() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    let ex = ua.register_exchange(Some(300), None);
    assert_eq!(ex.status(), 200);
    let before = sw.wait_counters("registers >= 1", |c| c.registers >= 1);
    let mark = sw.mark();
    // The very same datagram again (same branch, CSeq, nonce and nc).
    ua.drain_responses();
    ua.send_raw(&ex.request);
    let again = ua
        .recv_response(T)
        .expect("the retransmission must be answered");
    assert_eq!(again.status(), Some(200), "{}", again.dump());
    assert_eq!(again.cseq(), ex.response().cseq());
    let after = sw.wait_counters("the retransmission counted", |c| {
        c.retransmissions > before.retransmissions
    });
    // Whatever the switch did with the retransmission is done once a fence from
    // the same socket is answered; its counters and events are published then
    // (counters also on the next tick: waited for with a later fence's count).
    sip_fence(&ua);
    let after_fence = sw.wait_counters("the fence counted", |c| c.sip_in > after.sip_in);
    assert_eq!(
        (after.registers, after_fence.registers),
        (before.registers, before.registers),
        "re-processed instead of re-answered"
    );
    assert!(
        !sw.events()
            .iter()
            .skip(mark)
            .any(|r| matches!(r.event, Event::Registered { .. })),
        "a retransmission produced a second Registered event:\n{}",
        sw.events_text(mark)
    );
}

#[test]
fn three_digit_plan_registers() {
    let sw = Switch::start(&Conf::new(&[210, 699]).digits(3).build());
    assert_eq!(sw.reader().header().plan.digits(), 3);
    let mut a = Ua::ext(sw.addr(), 210);
    a.register(120);
    let mut b = Ua::ext(sw.addr(), 699);
    b.register(120);
    sw.wait_contacts(210, &[a.contact_uri()]);
    let snap = sw.wait_contacts(699, &[b.contact_uri()]);
    assert!(!snap.is_registered(100));
}

#[test]
fn registrations_expire_with_an_event() {
    let sw = Switch::start(&Conf::new(&[21]).server("min_expires = 1").build());
    let mut ua = Ua::ext(sw.addr(), 21);
    let mark = sw.mark();
    let ex = ua.register_exchange(Some(1), None);
    assert_eq!(ex.status(), 200);
    let ev = sw.expect_event_after(
        mark,
        "Unregistered 21 (expired)",
        |e| matches!(e, Event::Unregistered { ext: 21, .. }),
        T,
    );
    assert!(
        matches!(
            ev,
            Event::Unregistered {
                why: Unregistration::Expired,
                ..
            }
        ),
        "{ev:?}"
    );
    sw.wait_contacts(21, &[]);
}

#[test]
fn sipsak_options_ping() {
    // An independent SIP stack: sipsak's OPTIONS ping exits 0 on a 200.
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mut cmd = std::process::Command::new("sipsak");
    cmd.args(["-s", &format!("sip:21@{}", sw.host()), "-l"])
        .arg(coventry_tests::free_udp_port().to_string())
        .args(["-H", "127.0.0.1", "-vv"]);
    let o = coventry_tests::run_bounded(cmd, Duration::from_secs(20))
        .expect("sipsak not found: install the Debian package sipsak (scripts/test does)");
    assert!(
        o.status.success(),
        "sipsak OPTIONS: {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn regs_and_the_state_block_show_each_registrations_algorithm() {
    // 21 on the default offer (MD5); 22 offered SHA-256 by its own key.
    let sw = Switch::start(
        &Conf::new(&[21, 22])
            .ext_line(22, "algorithm = sha256")
            .build(),
    );
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(120);
    let mut b = Ua::ext(sw.addr(), 22).with_algo(Algo::Sha256);
    let ex = b.register_exchange(Some(120), None);
    let offered: Vec<Algo> = ex
        .challenge
        .as_ref()
        .map(|c| c.challenges().iter().map(|c| c.algorithm).collect())
        .unwrap_or_default();
    assert_eq!(offered, vec![Algo::Sha256]);
    assert_eq!(ex.status(), 200);
    let o = sw.pbxctl(&["regs", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let by_ext = |n: u64| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["ext"] == n)
            .map(|r| r["algorithm"].clone())
    };
    assert_eq!(by_ext(21), Some(serde_json::json!("md5")), "{v}");
    assert_eq!(by_ext(22), Some(serde_json::json!("sha256")), "{v}");
    let table = String::from_utf8_lossy(&sw.pbxctl(&["regs"]).stdout).to_string();
    assert!(
        table.contains("AUTH") && table.contains("SHA-256") && table.contains("MD5"),
        "{table}"
    );
    // `why` says what each line is offered, why, and what its phones answered.
    let why = |ext: &str| String::from_utf8_lossy(&sw.pbxctl(&["why", ext]).stdout).to_string();
    let w = why("22");
    assert!(
        w.contains(
            "22 is challenged with digest SHA-256 (its own algorithm key); \
             its phones registered with SHA-256"
        ),
        "{w}"
    );
    let w = why("21");
    assert!(
        w.contains(
            "21 is challenged with digest MD5 (the [server] offer); \
             its phones registered with MD5"
        ),
        "{w}"
    );
}

/// With every line taken (`lines = 2`), a third phone at another address is
/// refused with a reason instead of pushing a working phone out; the same
/// phone back on a new port takes its own line; `pbxctl regs` shows the lines
/// in use.
#[test]
fn a_full_line_refuses_a_third_phone_and_lets_a_rebooted_one_back() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let at = |ip: &str| {
        let sock = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        Ua::with_socket(sock, sw.addr(), "21", &secret(21))
    };
    let mut desk = at("127.0.0.1");
    let mut soft = at("127.0.0.2");
    desk.register(300);
    soft.register(300);
    sw.wait_contacts(21, &[desk.contact_uri(), soft.contact_uri()]);

    let mut third = at("127.0.0.3");
    let ex = third.register_exchange(Some(300), None);
    assert_eq!(ex.status(), 403, "{}", ex.response().dump());
    assert!(
        ex.response()
            .summary()
            .contains("all 2 lines of 21 are in use"),
        "{}",
        ex.response().dump()
    );
    // Nothing moved: both phones still have their lines.
    sw.wait_contacts(21, &[desk.contact_uri(), soft.contact_uri()]);
    assert!(
        sw.log().contains("refused: all 2 line(s) in use"),
        "the refusal is logged: {}",
        sw.log()
    );

    // The desk phone rebooted: same address, new port.
    let mark = sw.mark();
    let mut rebooted = at("127.0.0.1");
    rebooted.register(300);
    sw.wait_contacts(21, &[soft.contact_uri(), rebooted.contact_uri()]);
    let old = desk.contact_uri();
    sw.expect_event_after(
        mark,
        "the old desk contact replaced",
        |e| {
            matches!(e, Event::Unregistered { ext: 21, contact, why: Unregistration::Replaced }
                if *contact == old)
        },
        T,
    );
    let regs = String::from_utf8_lossy(&sw.pbxctl(&["regs", "21"]).stdout).to_string();
    assert!(
        regs.lines().next().is_some_and(|h| h.contains("LINES")),
        "{regs}"
    );
    assert_eq!(regs.matches(" 2/2 ").count(), 2, "{regs}");
}
