//! The upstream adapter against a real Kamailio: the daemon keeps TCP
//! connections to Kamailio's default, emergency and SMS sockets
//! (`tests/kamailio/upstream.cfg`), Kamailio relays to sipp phones on the far side,
//! and outside callers come in through Kamailio. Local phones are the in-test UA.
//! Every test checks what the far side received (sipp's trace), what the local
//! phones saw, the call records and the upstream state in the state block and
//! `pbxctl status`.
#![allow(clippy::unwrap_used)]

use coventry_shared::event::{CallOutcome, Event, ResultCode, RouteState};
use coventry_shared::stateblock::{get_str, Snapshot};
use coventry_tests::kamailio::{free_udp_tcp_port, Kamailio, KamailioPorts};
use coventry_tests::sipp::{logged, Sipp, SippChild};
use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{pin_listen_port, poll_until, Conf, Switch, LONG, T};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Long enough for a link to come up or notice a loss (back-off is 1 s first).
const LINK: Duration = Duration::from_secs(15);

/// The far-side phones' ports: a sipp per route, each told its own port.
struct FarSide {
    uas: u16,
    emergency_uas: u16,
    sms_uas: u16,
}

/// Kamailio and a coventryd whose `[upstream]` points at it.
struct Rig {
    k: Kamailio,
    sw: Switch,
}

fn far_side() -> FarSide {
    FarSide {
        uas: coventry_tests::free_udp_port(),
        emergency_uas: coventry_tests::free_udp_port(),
        sms_uas: coventry_tests::free_udp_port(),
    }
}

/// Kamailio relaying to `far`, and to the switch at `port`.
fn kamailio(far: &FarSide, port: u16) -> Kamailio {
    Kamailio::start(KamailioPorts {
        coventry: port,
        uas: far.uas,
        emergency_uas: far.emergency_uas,
        sms_uas: far.sms_uas,
    })
    .unwrap_or_else(|e| panic!("Kamailio did not start:\n{e}"))
}

/// Start Kamailio, then the switch with `conf` plus `[upstream]` routes to it.
fn rig(far: &FarSide, conf: Conf) -> Rig {
    let port = free_udp_tcp_port();
    let k = kamailio(far, port);
    let conf = conf
        .section("upstream", &format!("route = {}", k.main_addr()))
        .section(
            "upstream",
            &format!("emergency_route = {}", k.emergency_addr()),
        )
        .section("upstream", &format!("sms_route = {}", k.sms_addr()))
        .section("upstream", "emergency = 112, 911");
    let sw = Switch::start(&pin_listen_port(&conf.build(), port));
    let rig = Rig { k, sw };
    rig.wait_routes("every route connected", |s| s == [RouteState::Connected; 3]);
    rig
}

impl Rig {
    /// Wait until the route states (in `[upstream]` order) satisfy `ok`.
    fn wait_routes(&self, what: &str, ok: impl Fn(&[RouteState]) -> bool) -> Snapshot {
        let deadline = Instant::now() + LINK;
        loop {
            let snap = self.sw.snapshot();
            let states: Vec<RouteState> = snap.routes().map(|r| r.state()).collect();
            if ok(&states) {
                return snap;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: routes are {states:?}\n{}\n{}",
                self.sw.log(),
                self.k.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A registered in-test phone.
fn phone(sw: &Switch, ext: u16) -> Ua {
    let mut p = Ua::ext(sw.addr(), ext);
    p.register(300);
    p
}

/// A sipp phone on the far side, listening on `port` (UDP): it answers after
/// 100 ms; `upstream_uas_call.xml` waits for the BYE, `uas_call_bye.xml` hangs up
/// after 300 ms.
fn far_phone(scenario: &str, port: u16, ext: &str) -> SippChild {
    let sipp = Sipp::new(scenario)
        .on_port(port)
        .key("ext", ext)
        .set("ring", "100")
        .timeout(Duration::from_secs(20));
    if scenario == "uas_call_bye.xml" {
        sipp.set("hold", "300").spawn()
    } else {
        sipp.set("linger", "300").spawn()
    }
}

/// An outside caller `from` (sipp, no digest) dialling `to` through Kamailio's
/// UDP socket; it hangs up after 300 ms.
fn outside_caller(k: &Kamailio, from: &str, to: &str) -> SippChild {
    Sipp::new("upstream_uac_call.xml")
        .remote(k.main_addr())
        .key("ext", from)
        .key("target", to)
        .set("hold", "300")
        .timeout(Duration::from_secs(20))
        .spawn()
}

/// A local phone answers `inv` (180, 200 with SDP), takes the ACK, then the
/// caller's BYE.
fn answer_until_bye(phone: &Ua, inv: &coventry_tests::ua::Msg) {
    phone.respond(inv, 180, None);
    phone.respond_sdp(inv, 200, &sdp(&phone.user, 1, "sendrecv"));
    phone.expect_method("ACK", "the caller's ACK", T);
    let bye = phone.expect_method("BYE", "the caller's BYE", T);
    phone.respond(&bye, 200, None);
}

/// `pbxctl status --json`'s `upstream` list.
fn status_upstream(sw: &Switch) -> Vec<Value> {
    let out = sw.pbxctl(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["upstream"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_call_out_completes_through_kamailio_and_ends_from_either_side() {
    let far = far_side();
    let r = rig(&far, Conf::new(&[21, 22]));
    let mut a = phone(&r.sw, 21);

    // 1. The local phone hangs up.
    let uas = far_phone("upstream_uas_call.xml", far.uas, "0044123");
    let geo = "Geolocation: <cid:target123@21.example>;inserted-by=\"21\"".to_string();
    let mut call = a.call_start_with(
        "0044123",
        &sdp("21", 1, "sendrecv"),
        std::slice::from_ref(&geo),
    );
    a.call_expect(&mut call, 100, T);
    a.call_expect(&mut call, 180, T);
    let ok = a.call_expect(&mut call, 200, T);
    // Our two Record-Route entries below Kamailio's: TCP facing it, UDP facing us.
    let rr = ok.list("Record-Route");
    let ours: Vec<&String> = rr.iter().filter(|e| e.contains(&r.sw.host())).collect();
    assert_eq!(ours.len(), 2, "{}", ok.dump());
    assert!(ours[0].contains("transport=tcp"), "{}", ok.dump());
    assert!(!ours[1].contains("transport"), "{}", ok.dump());
    // The far phone wants the ACK before the BYE: send the BYE once Kamailio has
    // relayed the ACK (its log says so).
    let acks = |k: &Kamailio| k.rig_log().matches("rig: in-dialog ACK").count();
    let acks_before = acks(&r.k);
    a.ack(&mut call);
    let relayed = poll_until(LONG, || (acks(&r.k) > acks_before).then_some(()));
    assert!(
        relayed.is_some(),
        "Kamailio never relayed the ACK:\n{}",
        r.k.report()
    );
    let mut d = call.dialog.clone().unwrap();
    assert_eq!(a.bye(&mut d).status(), 200, "BYE through both proxies");
    let run = uas.wait();
    run.assert_success("the far phone (answer, ACK, BYE)");
    let inv = run.received("INVITE").remove(0);
    assert!(
        logged(&run.logs, "ruri").is_some_and(|u| u.starts_with("sip:0044123@")),
        "{}",
        run.logs
    );
    assert_eq!(
        inv.header("Geolocation"),
        Some(&geo["Geolocation: ".len()..]),
        "Geolocation passes untouched:\n{}",
        inv.dump()
    );
    assert!(
        inv.header("P-Asserted-Identity")
            .is_some_and(|p| p.contains("sip:21@")),
        "the caller is asserted:\n{}",
        inv.dump()
    );
    let vias = inv.list("Via");
    assert!(
        vias.iter()
            .any(|v| v.starts_with("SIP/2.0/TCP") && v.contains(&r.sw.host())),
        "our Via over TCP:\n{}",
        inv.dump()
    );
    let rec = r.sw.expect_record(0, "21", "0044123", T);
    assert_eq!(rec.outcome, CallOutcome::Completed);

    // 2. The far phone hangs up: its BYE crosses Kamailio and the switch to us.
    let mark = r.sw.mark();
    let uas = far_phone("uas_call_bye.xml", far.uas, "0044124");
    let mut call = a.call_start("0044124", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    let bye = a.expect_method("BYE", "the far side's BYE", T);
    a.respond(&bye, 200, None);
    uas.wait().assert_success("the far phone that hangs up");
    let rec = r.sw.expect_record(mark, "21", "0044124", T);
    assert_eq!(rec.outcome, CallOutcome::Completed);

    let ups = status_upstream(&r.sw);
    assert_eq!(ups.len(), 3, "{ups:?}");
    assert!(ups.iter().all(|u| u["state"] == "connected"), "{ups:?}");
    assert!(ups[0]["sent"].as_u64().unwrap() >= 4, "{ups:?}");
}

#[test]
fn an_emergency_number_takes_its_own_route() {
    let far = far_side();
    let r = rig(&far, Conf::new(&[21]));
    let mut a = phone(&r.sw, 21);
    let uas = far_phone("upstream_uas_call.xml", far.emergency_uas, "112");
    let mut call = a.call_start("112", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    let mut d = call.dialog.clone().unwrap();
    assert_eq!(a.bye(&mut d).status(), 200);
    let run = uas.wait();
    run.assert_success("the emergency desk");
    assert!(
        logged(&run.logs, "ruri").is_some_and(|u| u.starts_with("sip:112@")),
        "{}",
        run.logs
    );
    assert!(
        r.k.rig_log().contains("emergency route"),
        "Kamailio got it on its emergency socket:\n{}",
        r.k.rig_log()
    );
}

#[test]
fn a_text_to_a_number_reaches_the_sms_route() {
    let far = far_side();
    let r = rig(&far, Conf::new(&[21]));
    let mut a = phone(&r.sw, 21);
    let gateway = Sipp::new("uas_message.xml")
        .on_port(far.sms_uas)
        .timeout(Duration::from_secs(15))
        .spawn();
    assert_eq!(a.message("0044777", "hello outside"), 200);
    let run = gateway.wait();
    run.assert_success("the SMS gateway");
    assert_eq!(
        logged(&run.logs, "text"),
        Some("hello outside"),
        "{}",
        run.logs
    );
    assert!(r.k.rig_log().contains("sms route"), "{}", r.k.rig_log());
    r.sw.wait_event(
        |e| matches!(e, Event::Message { to, status: 200, .. } if to == "0044777"),
        T,
    )
    .unwrap_or_else(|| panic!("no message event:\n{}", r.sw.events_text(0)));
}

#[test]
fn an_inbound_call_follows_forward_on_busy() {
    let far = far_side();
    let conf = Conf::new(&[21, 22, 23]).ext_line(22, "lines = 1");
    let r = rig(&far, conf);
    let mut b = phone(&r.sw, 22);
    let a = phone(&r.sw, 21);
    let c = phone(&r.sw, 23);
    let out = r.sw.pbxctl(&["forward", "22", "23", "--busy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 22 is busy: its one line is in a call with 21.
    let mut busy = b.call_start("21", &sdp("22", 1, "sendrecv"));
    let inv = a.expect_invite("22's call", T);
    a.respond_sdp(&inv, 200, &sdp("21", 1, "sendrecv"));
    b.call_expect(&mut busy, 200, T);
    b.ack(&mut busy);

    // An outside caller dials 22 through Kamailio.
    let mark = r.sw.mark();
    let caller = outside_caller(&r.k, "+441632960001", "22");
    let inv = c.expect_invite("the forwarded call", T);
    assert!(
        inv.header("From")
            .is_some_and(|f| f.contains("+441632960001")),
        "{}",
        inv.dump()
    );
    let rr = inv.list("Record-Route");
    assert!(!rr[0].contains("transport"), "UDP side first: {rr:?}");
    assert!(rr[1].contains("transport=tcp"), "then the TCP side: {rr:?}");
    answer_until_bye(&c, &inv);
    caller.wait().assert_success("the outside caller");
    let rec = r.sw.expect_record(mark, "+441632960001", "22", T);
    assert_eq!(rec.outcome, CallOutcome::Completed);
    assert!(
        r.sw.events_text(mark).contains("call"),
        "{}",
        r.sw.events_text(mark)
    );
}

#[test]
fn kamailio_stopped_gives_503_at_once_and_the_switch_reconnects() {
    let far = far_side();
    let mut r = rig(&far, Conf::new(&[21]));
    let mut a = phone(&r.sw, 21);
    let mark = r.sw.mark();
    r.k.stop();
    r.wait_routes("the routes notice", |s| {
        s.iter().all(|st| *st != RouteState::Connected)
    });
    let ups = status_upstream(&r.sw);
    assert!(
        ups.iter()
            .all(|u| u["state"] != "connected" && u["failures"].as_u64() >= Some(1)),
        "{ups:?}"
    );
    // 503 at once: the route's refusal (counted below), not a try that timed out.
    let mut call = a.call_start("0044123", &sdp("21", 1, "sendrecv"));
    let fin = a.call_expect_final(&mut call, 503, T);
    assert!(fin.header("Retry-After").is_some(), "{}", fin.dump());
    assert_eq!(a.message("0044777", "anyone?"), 503);
    r.sw.wait_event_after(
        mark,
        |e| matches!(e, Event::Upstream { state, .. } if *state != RouteState::Connected),
        T,
    )
    .unwrap_or_else(|| panic!("no Upstream event:\n{}", r.sw.events_text(mark)));
    poll_until(T, || {
        let snap = r.sw.snapshot();
        let refused = snap.routes().map(|e| e.refused).collect::<Vec<_>>();
        (refused == [1, 0, 1]).then_some(())
    })
    .unwrap_or_else(|| panic!("the call counts on the default route, the text on sms"));
    let snap = r.sw.snapshot();
    assert!(snap.routes().all(|e| !get_str(&e.last_error).is_empty()));

    // Kamailio comes back: the switch reconnects by itself and calls go through.
    r.k.restart().unwrap_or_else(|e| panic!("restart: {e}"));
    r.wait_routes("reconnected", |s| s == [RouteState::Connected; 3]);
    let uas = far_phone("upstream_uas_call.xml", far.uas, "0044123");
    let mut call = a.call_start("0044123", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    let mut d = call.dialog.clone().unwrap();
    assert_eq!(a.bye(&mut d).status(), 200);
    uas.wait().assert_success("the call after the reconnect");
    let ups: Vec<RouteState> =
        r.sw.events()
            .iter()
            .skip(mark)
            .filter_map(|e| match &e.event {
                Event::Upstream { route, state, .. } if route == "default" => Some(*state),
                _ => None,
            })
            .collect();
    assert_eq!(
        ups.first(),
        Some(&RouteState::Reconnecting),
        "an event when the route went: {ups:?}"
    );
    assert_eq!(
        ups.last(),
        Some(&RouteState::Connected),
        "and when it came back: {ups:?}"
    );
}

#[test]
fn a_peer_sending_garbage_is_cut_off_and_local_calls_go_on() {
    // A fake upstream: the switch connects, we send garbage.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let port = free_udp_tcp_port();
    let conf = Conf::new(&[21, 22]).section("upstream", &format!("route = {fake_addr}"));
    let sw = Switch::start(&pin_listen_port(&conf.build(), port));
    fake.set_nonblocking(false).unwrap();
    let (mut conn, _) = fake.accept().unwrap();
    conn.set_read_timeout(Some(T)).unwrap();
    // A request head without Content-Length cannot be framed on a stream.
    conn.write_all(
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKg\r\n\
          From: <sip:x@y>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: garbage\r\nCSeq: 1 OPTIONS\r\n\r\n\
          and then some garbage",
    )
    .unwrap();
    let mut got = Vec::new();
    let eof = conn.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(eof.is_ok(), "the switch closes the connection: {eof:?}");
    assert!(
        got.starts_with("SIP/2.0 400"),
        "an error, then EOF: {got:?}"
    );
    // It reconnects by itself (back-off), not trusting the old stream.
    let (mut again, _) = fake.accept().unwrap();
    poll_until(T, || {
        let e = sw.snapshot().routes().next().copied()?;
        get_str(&e.last_error).contains("garbage").then_some(())
    })
    .unwrap_or_else(|| panic!("last_error names the garbage:\n{}", sw.log()));

    // An inbound connection from a (trusted, loopback) peer sending garbage is cut off too.
    let mut inbound = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    inbound.set_read_timeout(Some(T)).unwrap();
    inbound.write_all(&[0xff; 9000]).unwrap();
    let mut rest = Vec::new();
    let eof = inbound.read_to_end(&mut rest);
    assert!(
        eof.is_ok(),
        "the switch closes the inbound connection: {eof:?}"
    );

    // Local calls are not affected.
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    let mut call = a.call_start("22", &sdp("21", 1, "sendrecv"));
    let inv = b.expect_invite("a local call", T);
    b.respond_sdp(&inv, 200, &sdp("22", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    let mut d = call.dialog.clone().unwrap();
    assert_eq!(a.bye(&mut d).status(), 200);
    let _ = b.expect_method("BYE", "the BYE", T);
    // The new link is alive: a CRLF ping from the peer gets its pong.
    again.set_read_timeout(Some(T)).unwrap();
    again.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    again.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
}

#[test]
fn a_text_from_outside_reaches_the_phone_and_status_shows_the_routes() {
    let far = far_side();
    // The test forwards 21 outside at its end: the site allows that to 0044.
    let r = rig(
        &far,
        Conf::new(&[21]).section("upstream", "forward_prefixes = 0044"),
    );
    let a = phone(&r.sw, 21);
    Sipp::new("upstream_uac_message.xml")
        .remote(r.k.main_addr())
        .key("ext", "+441632960002")
        .key("target", "21")
        .key("text", "parcel at the door")
        .run()
        .assert_success("a text from outside through Kamailio");
    let m = a.expect_request("the text from outside", T);
    assert_eq!(m.method().as_deref(), Some("MESSAGE"), "{}", m.dump());
    assert_eq!(m.body, b"parcel at the door");
    assert!(
        m.header("From")
            .is_some_and(|f| f.contains("+441632960002")),
        "{}",
        m.dump()
    );
    let out = r.sw.pbxctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for route in ["default", "emergency", "sms"] {
        assert!(
            text.lines()
                .any(|l| l.contains(route) && l.contains("connected")),
            "pbxctl status shows {route}:\n{text}"
        );
    }
    // Forwarded to an outside number, `why` names the route.
    assert!(r.sw.pbxctl(&["forward", "21", "0044999"]).status.success());
    let why = r.sw.pbxctl(&["why", "21"]);
    let why = String::from_utf8_lossy(&why.stdout);
    assert!(
        why.contains("goes upstream on the default route as 0044999 (connected to "),
        "{why}"
    );
}

#[test]
fn a_reload_adds_an_upstream() {
    let far = far_side();
    let port = free_udp_tcp_port();
    let k = kamailio(&far, port);
    let sw = Switch::start(&pin_listen_port(&Conf::new(&[21]).build(), port));
    let mut a = phone(&sw, 21);
    let mut call = a.call_start("0044123", &sdp("21", 1, "sendrecv"));
    a.call_expect_final(&mut call, 404, T);
    assert!(status_upstream(&sw).is_empty());

    let with = Conf::new(&[21]).section("upstream", &format!("route = {}", k.main_addr()));
    std::fs::write(
        sw.root().join("coventry.conf"),
        pin_listen_port(&with.build(), port),
    )
    .unwrap();
    let out = sw.pbxctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    poll_until(LINK, || {
        let ups = status_upstream(&sw);
        (ups.len() == 1 && ups[0]["state"] == "connected").then_some(())
    })
    .unwrap_or_else(|| panic!("the new route connects:\n{}", sw.log()));
    let uas = far_phone("upstream_uas_call.xml", far.uas, "0044123");
    let mut call = a.call_start("0044123", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    let mut d = call.dialog.clone().unwrap();
    assert_eq!(a.bye(&mut d).status(), 200);
    uas.wait().assert_success("the first call after the reload");
    // The far end can hang up (its BYE comes in over TCP), and call in.
    let uas = far_phone("uas_call_bye.xml", far.uas, "0044123");
    let mut call = a.call_start("0044123", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    let bye = a.expect_method("BYE", "the far end's BYE, through the new listener", T);
    a.respond(&bye, 200, None);
    uas.wait().assert_success("the far end hung up");
    let caller = outside_caller(&k, "+441632960003", "21");
    let inv = a.expect_invite("a call from outside after the reload", T);
    answer_until_bye(&a, &inv);
    caller.wait().assert_success("the outside caller");

    // Without [upstream] again: the listener closes.
    std::fs::write(
        sw.root().join("coventry.conf"),
        pin_listen_port(&Conf::new(&[21]).build(), port),
    )
    .unwrap();
    let out = sw.pbxctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tcp closed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on tcp {port} any more"
    );
}

#[test]
fn with_a_peer_secret_kamailio_answers_the_challenge_and_the_call_goes_through() {
    let far = far_side();
    let conf = Conf::new(&[21]).section("upstream", "peer_secret = peer-secret");
    let r = rig(&far, conf);
    let a = phone(&r.sw, 21);
    let caller = outside_caller(&r.k, "+441632960003", "21");
    let inv = a.expect_invite("the call from outside, after the challenge", T);
    assert!(
        inv.header("Proxy-Authorization").is_none(),
        "the peer's credentials stay with the switch:\n{}",
        inv.dump()
    );
    answer_until_bye(&a, &inv);
    caller.wait().assert_success("the outside caller");
    assert!(
        r.k.rig_log().contains("answered the 407 challenge"),
        "Kamailio was challenged:\n{}",
        r.k.rig_log()
    );
    assert_eq!(r.sw.snapshot().body.counters.auth_failures, 0);
}

#[test]
fn click_to_dial_connects_an_extension_with_a_number_outside() {
    let far = far_side();
    let r = rig(&far, Conf::new(&[21]));
    let a = phone(&r.sw, 21);
    let uas = far_phone("upstream_uas_call.xml", far.uas, "0044123");
    let mark = r.sw.mark();
    r.sw.fifo_write(b"#7 dial 21 0044123\n").unwrap();
    let inv = a.expect_invite("the switch rings 21 first", T);
    assert!(inv.body.is_empty(), "no offer to A: {}", inv.dump());
    let offer = sdp("21", 1, "sendrecv");
    a.respond_sdp(&inv, 200, &offer);
    let ack = a.expect_method("ACK", "A's ACK with the far side's answer", T);
    assert!(
        String::from_utf8_lossy(&ack.body).contains("sipp callee"),
        "{}",
        ack.dump()
    );
    let result = r.sw.expect_event_after(
        mark,
        "the dial result",
        |e| matches!(e, Event::CommandResult { id: Some(7), .. }),
        T,
    );
    assert!(
        matches!(&result, Event::CommandResult { code: ResultCode::Ok, text, .. } if text.contains("connected 21 and 0044123")),
        "{result:?}"
    );
    let mut d = a.dialog_as_callee(&inv);
    assert_eq!(a.bye(&mut d).status(), 200);
    let run = uas.wait();
    run.assert_success("the far side: INVITE with 21's offer, ACK, BYE");
    let far_inv = run.received("INVITE").remove(0);
    assert_eq!(
        far_inv.body,
        offer,
        "21's offer reaches the far side byte for byte:\n{}",
        far_inv.dump()
    );
}

#[test]
fn the_caller_cancels_a_call_ringing_outside() {
    let far = far_side();
    let r = rig(&far, Conf::new(&[21]));
    let mut a = phone(&r.sw, 21);
    // The far phone is an in-test UA on the far side's port, behind Kamailio.
    let sock = std::net::UdpSocket::bind(("127.0.0.1", far.uas)).unwrap();
    let far_phone = Ua::with_socket(sock, r.k.main_addr(), "0044123", "unused");
    let mut call = a.call_start("0044123", &sdp("21", 1, "sendrecv"));
    let inv = far_phone.expect_invite("the call through Kamailio", T);
    far_phone.respond(&inv, 180, None);
    a.call_expect(&mut call, 180, T);
    let c = a.cancel(&call).expect("a response to the CANCEL");
    assert_eq!(c.status(), Some(200), "{}", c.dump());
    a.call_expect_final(&mut call, 487, T);
    far_phone.expect_method("CANCEL", "the CANCEL through the switch and Kamailio", T);
    assert_eq!(far_phone.invite_final(&inv), Some(487));
    let rec = r.sw.expect_record(0, "21", "0044123", T);
    assert_eq!((rec.outcome, rec.status), (CallOutcome::Cancelled, 487));
}

/// An OPTIONS over TCP from `from` to the switch at `at`.
fn tcp_options(at: SocketAddr, from: SocketAddr, call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:{at};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP {from};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:upstream@127.0.0.1>;tag=1\r\nTo: <sip:{at}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The head of the next response on `c` (a response without a body).
fn read_head(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") && got.len() < 8192 {
        c.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the switch closes `c` within `limit` (whatever it still sends is
/// read; a reset counts: a connection closed before the switch read what it
/// sent is reset).
fn closed_within(c: &mut TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn slow_writers_and_strangers_cannot_hold_the_inbound_slots_and_a_local_peer_without_secret_is_named(
) {
    // The route's peer never answers; the inbound side is what is probed.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free_udp_tcp_port();
    let conf = Conf::new(&[21]).section(
        "upstream",
        &format!("route = {}", fake.local_addr().unwrap()),
    );
    let sw = Switch::start(&pin_listen_port(&conf.build(), port));
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    // Every slot wanted by a connection that only ever sends the start of a
    // request; from one address only a quarter of them are held at once.
    let slow: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut c = TcpStream::connect(at).unwrap();
            c.write_all(b"OPTIONS sip:").unwrap();
            c
        })
        .collect();
    // A peer that speaks at once still gets a slot and its answer.
    let mut peer = TcpStream::connect(at).unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let me = peer.local_addr().unwrap();
    peer.write_all(&tcp_options(at, me, "peer-1")).unwrap();
    let got = read_head(&mut peer);
    assert!(got.starts_with("SIP/2.0 200 "), "{got}");
    // The slow writers are evicted or cut off at the deadline of an unproven
    // connection (5 s; the bound here only stops a hung test).
    for mut c in slow {
        assert!(closed_within(&mut c, LONG), "a slow writer is closed");
    }
    // An OPTIONS proves nothing: that connection is closed at its deadline too.
    assert!(closed_within(&mut peer, LONG), "an unproven peer is closed");
    let log = sw.log();
    assert!(log.contains("evicted for newer ones"), "{log}");
    assert_eq!(
        log.matches("evicted for newer ones").count(),
        1,
        "one line a minute, not one per connection:\n{log}"
    );
    // A peer on this host trusted by address alone is named in the log.
    assert!(log.contains("trusted by address alone"), "{log}");
}

#[test]
fn a_peer_with_a_wrong_secret_is_logged_apart_and_never_banned() {
    let far = far_side();
    let conf = Conf::new(&[21]).section("upstream", "peer_secret = not-kamailios");
    let r = rig(&far, conf);
    let _a = phone(&r.sw, 21);
    // Kamailio answers the switch's challenge with its own credential, which is
    // wrong here: the call from outside is refused.
    let caller = outside_caller(&r.k, "+441632960003", "21");
    let run = caller.wait();
    assert!(!run.success(), "the call must not go through");
    poll_until(T, || {
        (r.sw.snapshot().body.counters.auth_failures > 0).then_some(())
    })
    .unwrap_or_else(|| panic!("the peer's answer failed:\n{}", r.sw.log()));
    let log = r.sw.log();
    let peer_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("upstream peer auth failed: peer=127.0.0.1:"))
        .collect();
    assert!(!peer_lines.is_empty(), "{log}");
    assert!(
        !log.contains("] auth failed: source="),
        "the peer's failures read like a guesser's:\n{log}"
    );
    // The shipped fail2ban filter bans nothing for them.
    let (hosts, report) = coventry_tests::fail2ban::fail2ban_hosts(&log);
    assert!(hosts.is_empty(), "{hosts:?}\n{report}");
}

/// `pbxctl records --json`: every record in the state directory.
fn records_json(sw: &Switch) -> Vec<Value> {
    let dir = sw.state_dir().to_str().unwrap().to_string();
    let out = sw.pbxctl(&["records", "--state-dir", &dir, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn an_outside_caller_claiming_extension_21_is_marked_for_phones_and_records() {
    let far = far_side();
    let r = rig(&far, Conf::new(&[21, 35]));
    let _real_21 = phone(&r.sw, 21);
    let p35 = phone(&r.sw, 35);
    let mark = r.sw.mark();
    // Someone outside sends From: 21 through the provider.
    let caller = outside_caller(&r.k, "21", "35");
    let inv = p35.expect_invite("the call from outside", T);
    let from = inv.header("From").unwrap_or_default().to_string();
    assert!(
        from.starts_with("\"21 (outside)\" <sip:outside-21@"),
        "35 must not see it as extension 21: {}",
        inv.dump()
    );
    answer_until_bye(&p35, &inv);
    caller.wait().assert_success("the outside caller");
    r.sw.expect_record(mark, "outside-21", "35", T);
    let records = records_json(&r.sw);
    let rec = records.last().expect("a record");
    assert_eq!(rec["caller"], "outside-21", "{rec}");
    assert_eq!(rec["route"], "inbound", "{rec}");
}

#[test]
fn a_call_forwarded_out_tells_the_far_side_who_forwarded_it() {
    let far = far_side();
    let conf = Conf::new(&[21, 35]).section("upstream", "forward_prefixes = 0044");
    let r = rig(&far, conf);
    let mut a = phone(&r.sw, 21);
    let _b = phone(&r.sw, 35);
    let out = r.sw.pbxctl(&["forward", "35", "0044123"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uas = far_phone("upstream_uas_call.xml", far.uas, "0044123");
    let mut call = a.call_start("35", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
    let mut d = call.dialog.clone().unwrap();
    assert_eq!(a.bye(&mut d).status(), 200);
    let run = uas.wait();
    run.assert_success("the far side");
    let inv = run.received("INVITE").remove(0);
    let diversion = inv.header("Diversion").unwrap_or_default().to_string();
    assert!(
        diversion.starts_with("<sip:35@") && diversion.contains("reason=unconditional"),
        "{}",
        inv.dump()
    );
    assert!(
        inv.header("P-Asserted-Identity")
            .is_some_and(|p| p.contains("<sip:21@")),
        "the caller stays 21: {}",
        inv.dump()
    );
}

#[test]
fn strangers_on_the_peers_own_address_cannot_keep_the_real_peer_out() {
    let far = far_side();
    let conf = Conf::new(&[21]).section("upstream", "peer_secret = peer-secret");
    let r = rig(&far, conf);
    let a = phone(&r.sw, 21);
    let at = SocketAddr::from(([127, 0, 0, 1], r.sw.addr().port()));
    // A local user on 127.0.0.1, Kamailio's own address: more connections than
    // there are slots, each answered for one OPTIONS and then kept open.
    let strangers: Vec<TcpStream> = (0..80)
        .map(|i| {
            let mut c = TcpStream::connect(at).unwrap();
            c.set_read_timeout(Some(T)).unwrap();
            let me = c.local_addr().unwrap();
            c.write_all(&tcp_options(at, me, &format!("stranger-{i}")))
                .unwrap();
            let got = read_head(&mut c);
            assert!(got.starts_with("SIP/2.0 200 "), "stranger {i}: {got}");
            c
        })
        .collect();
    // The real peer connects from the same address, answers the challenge and
    // its call rings the phone.
    let caller = outside_caller(&r.k, "+441632960009", "21");
    let inv = a.expect_invite("the call from outside, past the strangers", T);
    answer_until_bye(&a, &inv);
    caller.wait().assert_success("the outside caller");
    let log = r.sw.log();
    assert!(
        log.contains("proven to be the upstream peer"),
        "Kamailio's connection was proven:\n{log}"
    );
    assert!(log.contains("evicted for newer ones"), "{log}");
    assert_eq!(
        log.matches("evicted for newer ones").count(),
        1,
        "one line a minute, not one per connection:\n{log}"
    );
    // Every stranger is gone by its deadline; the first were evicted long before.
    for mut c in strangers {
        assert!(closed_within(&mut c, LONG), "a stranger is closed");
    }
}

/// A fake upstream peer on the other end of the switch's link: it answers
/// every INVITE with 200 and every BYE with 200, and counts them; told to hold,
/// it reads nothing until released.
struct FakePeer {
    control: Option<std::sync::mpsc::Sender<bool>>,
    held: std::sync::mpsc::Receiver<()>,
    counts: std::sync::Arc<std::sync::Mutex<(usize, usize)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakePeer {
    fn run(mut conn: TcpStream) -> FakePeer {
        let (control, orders) = std::sync::mpsc::channel::<bool>();
        let (held_tx, held) = std::sync::mpsc::channel();
        let counts = std::sync::Arc::new(std::sync::Mutex::new((0usize, 0usize)));
        let c2 = counts.clone();
        let here = conn.local_addr().unwrap();
        // Bounded reads, so orders are seen; EOF (the daemon gone) ends it.
        conn.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let thread = std::thread::spawn(move || {
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match orders.try_recv() {
                    Ok(true) => {
                        let _ = held_tx.send(());
                        // Held until released (or the test is gone).
                        if !matches!(orders.recv(), Ok(false)) {
                            return;
                        }
                    }
                    Ok(false) | Err(std::sync::mpsc::TryRecvError::Empty) => {}
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                }
                match conn.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue
                    }
                    Err(_) => return,
                }
                let mut out = Vec::new();
                while let Some((f, used)) = frame(&buf) {
                    buf.drain(..used);
                    let msg = match f {
                        Frame::Ping => {
                            out.extend_from_slice(b"\r\n");
                            continue;
                        }
                        Frame::Crlf => continue,
                        Frame::Msg(m) => m,
                    };
                    let method = msg.split(' ').next().unwrap_or("").to_string();
                    if method == "INVITE" || method == "BYE" {
                        let mut counts = c2.lock().unwrap();
                        if method == "INVITE" {
                            counts.0 += 1;
                        } else {
                            counts.1 += 1;
                        }
                        out.extend(ok_to(&msg, here));
                    }
                }
                if !out.is_empty() && conn.write_all(&out).is_err() {
                    return;
                }
            }
        });
        FakePeer {
            control: Some(control),
            held,
            counts,
            thread: Some(thread),
        }
    }

    /// Stop reading (returns once it has).
    fn hold(&self) {
        self.control.as_ref().unwrap().send(true).unwrap();
        self.held.recv_timeout(T).expect("the fake peer holds");
    }

    fn release(&self) {
        self.control.as_ref().unwrap().send(false).unwrap();
    }

    fn counts(&self) -> (usize, usize) {
        *self.counts.lock().unwrap()
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        // Released if held, then told to end (its orders are gone).
        if let Some(c) = self.control.take() {
            let _ = c.send(false);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a fake peer finds at the front of its read buffer.
enum Frame {
    /// A keep-alive ping (answered with a pong).
    Ping,
    /// A lone CRLF (skipped).
    Crlf,
    /// A whole message.
    Msg(String),
}

/// The next frame of `buf` and the bytes it used (messages framed by
/// Content-Length); `None` until it is complete.
fn frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.starts_with(b"\r\n\r\n") {
        return Some((Frame::Ping, 4));
    }
    if buf.starts_with(b"\r\n") {
        return (buf.len() >= 4).then_some((Frame::Crlf, 2));
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("Content-Length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    let msg = String::from_utf8_lossy(&buf[..end + len]).into_owned();
    Some((Frame::Msg(msg), end + len))
}

/// A 200 to `req` from the peer at `here` (a Contact on this connection's address).
fn ok_to(req: &str, here: SocketAddr) -> Vec<u8> {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for l in req.split("\r\n") {
        let name = l.split(':').next().unwrap_or("");
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" | "Record-Route" => {
                out.push_str(l);
                out.push_str("\r\n");
            }
            "To" if !l.contains("tag=") => {
                out.push_str(l);
                out.push_str(";tag=far\r\n");
            }
            "To" => {
                out.push_str(l);
                out.push_str("\r\n");
            }
            _ => {}
        }
    }
    let invite = req.starts_with("INVITE ");
    let body = if invite {
        String::from_utf8(sdp("far", 1, "sendrecv")).unwrap()
    } else {
        String::new()
    };
    if invite {
        out.push_str(&format!(
            "Contact: <sip:far@{here};transport=tcp>\r\nContent-Type: application/sdp\r\n"
        ));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

#[test]
fn a_mass_hangup_delivers_every_bye_over_the_link_and_the_link_stays() {
    const CALLS: usize = 2000;
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    // The bounds on calls are what this test is not about: they are off.
    let conf = Conf::new(&[21])
        .section("calls", "max_per_line = 0")
        .section("security", "source_rate = 0")
        .section(
            "upstream",
            &format!("route = {}", fake.local_addr().unwrap()),
        )
        .section("upstream", "max_calls = 0");
    let sw = Switch::start(&conf.build());
    fake.set_nonblocking(true).unwrap();
    let conn = poll_until(LONG, || fake.accept().ok().map(|(c, _)| c))
        .unwrap_or_else(|| panic!("the link connects:\n{}", sw.log()));
    conn.set_nonblocking(false).unwrap();
    let peer = FakePeer::run(conn);
    poll_until(LONG, || {
        let s = sw.snapshot();
        let r = s.routes().next().copied()?;
        (r.state() == RouteState::Connected).then_some(())
    })
    .unwrap_or_else(|| panic!("the route is up:\n{}", sw.log()));
    let mut a = phone(&sw, 21);
    let offer = sdp("21", 1, "sendrecv");
    for n in 0..CALLS {
        let mut call = a.call_start(&format!("0044{n:06}"), &offer);
        a.call_expect(&mut call, 200, T);
        a.ack(&mut call);
    }
    assert_eq!(peer.counts(), (CALLS, 0));
    // The peer reads nothing while the switch sends its burst.
    peer.hold();
    let out = sw.pbxctl_bounded(&["hangup", "21"], LONG);
    assert!(out.status.success(), "{out:?}");
    peer.release();
    poll_until(LONG, || (peer.counts().1 >= CALLS).then_some(()))
        .unwrap_or_else(|| panic!("BYEs over the link: {:?}\n{}", peer.counts(), sw.log()));
    assert_eq!(peer.counts(), (CALLS, CALLS), "every BYE, once");
    let snap = sw.snapshot();
    let route = snap.routes().next().copied().unwrap();
    assert_eq!(route.state(), RouteState::Connected);
    assert_eq!((route.connects, route.failures), (1, 0), "never cut off");
    assert_eq!(snap.body.counters.tcp_dropped, 0);
    let log = sw.log();
    assert!(!log.contains("dropped"), "{log}");
}
