//! A building of switches end to end (issue 22): the shipped
//! `contrib/kamailio/building.cfg` in a real Kamailio, three real coventryd sites
//! (prefixes 71, 72, 73), each in its own network namespace on its own address
//! and the same port 5060, joined by veth pairs to a bridge in the building's
//! namespace (`coventry_tests::building`). Phones are the in-test UA on
//! sockets in the sites' namespaces, on the sites' addresses. Site 72 sets
//! `peer_secret` (and the sites list carries it), so the building answers its
//! challenges.
//!
//! Skipped, with a line saying why, only where Kamailio or network namespaces
//! (root, iproute2) are unavailable.
#![allow(clippy::unwrap_used)]

use coventry_tests::baresip::Baresip;
use coventry_tests::building::{self, Building, SiteSpec, LINK_TIMEOUT};
use coventry_tests::ua::dialog::{uri_of, UaCall};
use coventry_tests::ua::{Msg, Ua};
use coventry_tests::{fenced_request, poll_until, Conf, LONG, T};
use std::net::SocketAddr;
use std::time::Duration;

/// The port of the building's emergency route (a phone in the building's
/// namespace).
const EMERGENCY_PORT: u16 = 5070;
/// A bound for a 503 from a site that is down: above building.cfg's fr_timer.
const UNREACHABLE: Duration = Duration::from_secs(15);
/// The sites list's secret for site 72 (its `peer_secret`).
const SITE_72_SECRET: &str = "building-72-secret";

/// Print why the test is skipped and return true, when a building cannot be
/// made here.
fn skipped() -> bool {
    match building::unavailable() {
        Some(why) => {
            eprintln!(
                "skipped: a building of switches needs Kamailio and network namespaces: {why}"
            );
            true
        }
        None => false,
    }
}

/// Three sites: 71 (extensions 21, 22), 72 (21, 22, 23; `peer_secret`;
/// forwards may go to the building's prefixes), 73 (21, 22, 23); the
/// building's emergency route is a phone in its namespace.
fn building() -> Building {
    let emergency = format!("sip:{{BUILDING}}:{EMERGENCY_PORT}");
    let specs = vec![
        SiteSpec {
            prefix: "71".into(),
            conf: Conf::new(&[21, 22]),
            peer_secret: None,
        },
        SiteSpec {
            prefix: "72".into(),
            conf: Conf::new(&[21, 22, 23]).section("upstream", "forward_prefixes = 71, 72, 73"),
            peer_secret: Some(SITE_72_SECRET.into()),
        },
        SiteSpec {
            prefix: "73".into(),
            conf: Conf::new(&[21, 22, 23]),
            peer_secret: None,
        },
    ];
    // Reloads of the sites list follow each other at once here.
    Building::start(
        specs,
        &[
            ("EMERGENCY_ROUTE", &emergency),
            ("RELOAD_DELTA", "0"),
            ("RETRY_AFTER", "17"),
        ],
    )
}

/// An SDP offer/answer naming the phone's own address for media.
fn sdp_at(user: &str, at: SocketAddr) -> Vec<u8> {
    let ip = at.ip();
    let id = coventry_tests::ua::unique("");
    format!(
        "v=0\r\n\
         o={user} {id} 1 IN IP4 {ip}\r\n\
         s=building call\r\n\
         c=IN IP4 {ip}\r\n\
         t=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=sendrecv\r\n",
        at.port() + 1000
    )
    .into_bytes()
}

/// The address in an SDP body's `c=` line.
fn sdp_addr(m: &Msg) -> String {
    m.text()
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The user part of a header's URI (`From`, `P-Asserted-Identity`...).
fn user_of(m: &Msg, header: &str) -> String {
    let uri = uri_of(m.header(header).unwrap_or(""));
    uri.strip_prefix("sip:")
        .and_then(|r| r.split('@').next())
        .unwrap_or("")
        .to_string()
}

/// The caller `m` shows (its From user) is `want`.
fn caller_is(m: &Msg, want: &str) {
    assert_eq!(user_of(m, "From"), want, "the caller shown:\n{}", m.dump());
}

/// A call from `a` to `target` that `b` answers, with the phones' own SDP:
/// rings (180 at the caller), is answered (200, ACK at the callee). Returns the
/// caller's call and the INVITE the callee got.
fn answered_call(a: &mut Ua, b: &Ua, target: &str) -> (UaCall, Msg) {
    let offer = sdp_at(&a.user, a.local_addr());
    let call = a.call_start(target, &offer);
    answered(a, b, target, call)
}

/// [`answered_call`] for a caller that is not challenged (the building's
/// upstream): the INVITE goes once, without credentials.
fn answered_call_unchallenged(a: &mut Ua, b: &Ua, target: &str) -> (UaCall, Msg) {
    let offer = sdp_at(&a.user, a.local_addr());
    let call = a.call_start_raw(target, &offer, None);
    answered(a, b, target, call)
}

/// The rest of [`answered_call`] once `call` is started.
fn answered(a: &mut Ua, b: &Ua, target: &str, mut call: UaCall) -> (UaCall, Msg) {
    let inv = b.expect_invite(&format!("the call to {target}"), T);
    b.respond(&inv, 180, None);
    a.call_expect(&mut call, 180, T);
    b.respond_sdp(&inv, 200, &sdp_at(&b.user, b.local_addr()));
    let ok = a.call_expect(&mut call, 200, T);
    assert_eq!(
        sdp_addr(&ok),
        b.local_addr().ip().to_string(),
        "the answer names the callee phone's own address for media:\n{}",
        ok.dump()
    );
    a.ack(&mut call);
    b.expect_method("ACK", "the ACK of the 200", T);
    (call, inv)
}

/// `pbxctl ARGS` at `site`, which must succeed.
fn ctl_ok(site: &building::Site, args: &[&str]) -> String {
    let out = site.sw.pbxctl(args);
    assert!(
        out.status.success(),
        "pbxctl {args:?} at site {}: {}{}",
        site.prefix,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn calls_and_texts_cross_the_building_media_stays_between_the_phones() {
    if skipped() {
        return;
    }
    let b = building();
    let (s71, s72, s73) = (b.site("71"), b.site("72"), b.site("73"));
    let mut a = s71.phone(21);
    let b22 = s72.phone(22);
    let mut c21 = s73.phone(21);

    // 0. The operator sees the building: the link and where 7222 goes.
    let status = ctl_ok(s71, &["status"]);
    assert!(status.contains("building"), "pbxctl status:\n{status}");
    let why = ctl_ok(s71, &["why", "7222"]);
    assert!(
        why.contains("building") && why.contains(&b.net.building_ip().to_string()),
        "pbxctl why 7222:\n{why}"
    );

    // 1. 21 at site 71 dials 7222: site 72 (which challenges the building, and
    // the building answers with the secret from the sites list) rings 22, which
    // sees the caller as 7121; media addresses are the phones' own; the caller
    // hangs up.
    let (mut call, inv) = answered_call(&mut a, &b22, "7222");
    let dump = inv.dump();
    assert_eq!(
        inv.uri().unwrap(),
        b22.contact_uri(),
        "the callee's own contact:\n{dump}"
    );
    caller_is(&inv, "7121");
    assert_eq!(
        sdp_addr(&inv),
        a.local_addr().ip().to_string(),
        "the offer names the caller phone's own address for media:\n{dump}"
    );
    assert!(
        b.kamailio.routing_log().contains("answered the site's 407"),
        "site 72 challenged the building and the building answered:\n{}",
        b.kamailio.routing_log()
    );
    let bye = a.bye(call.dialog());
    assert_eq!(
        bye.status(),
        200,
        "{:?}",
        bye.response.as_ref().map(Msg::dump)
    );
    let got = b22.expect_method("BYE", "the caller's BYE", T);
    assert_eq!(got.call_id(), inv.call_id());

    // 2. The other way round, 22 at site 72 calls back the number it was shown
    // (7121); this time the callee hangs up.
    let mut b22 = b22;
    let (mut back, inv) = answered_call(&mut b22, &a, "7121");
    caller_is(&inv, "7222");
    let mut d = a.dialog_as_callee(&inv);
    let bye = a.bye(&mut d);
    assert_eq!(
        bye.status(),
        200,
        "{:?}",
        bye.response.as_ref().map(Msg::dump)
    );
    b22.expect_method("BYE", "the callee's BYE", T);
    let _ = back.dialog();

    // 2b. Cancelled while it rings (site 73, no peer_secret): the CANCEL
    // crosses the building, the callee ends with 487, so does the caller.
    let mut ringing = a.call_start("7321", &sdp_at("21", a.local_addr()));
    let inv = c21.expect_invite("the call to be cancelled", T);
    c21.respond(&inv, 180, None);
    a.call_expect(&mut ringing, 180, T);
    let c = a.cancel(&ringing).expect("a response to the CANCEL");
    assert_eq!(c.status(), Some(200), "{}", c.dump());
    c21.expect_method("CANCEL", "the CANCEL across the building", T);
    assert_eq!(c21.invite_final(&inv), Some(487));
    a.call_expect_final(&mut ringing, 487, T);

    // 3. A text from site 73 to site 71 and its receipt (the 200 from the far
    // phone, back through the building).
    let text = format!("hello from 73 {}", coventry_tests::ua::unique(""));
    let ex = c21.message_exchange("7121", "text/plain", text.as_bytes());
    assert_eq!(
        ex.status(),
        200,
        "the receipt:\n{:?}\n{}",
        ex.response.as_ref().map(Msg::dump),
        b.kamailio.routing_log()
    );
    let got = a.expect_method("MESSAGE", "the text across the building", T);
    assert_eq!(got.text(), text);
    caller_is(&got, "7321");

    // 4. A text to the site with peer_secret.
    let ex = a.message_exchange("7222", "text/plain", b"to 72");
    assert_eq!(
        ex.status(),
        200,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
    let got = b22.expect_method("MESSAGE", "the text to site 72", T);
    assert_eq!(got.text(), "to 72");

    // 5. A number that is no site (and no building upstream): 404.
    let mut nowhere = a.call_start("9921", &sdp_at("21", a.local_addr()));
    a.call_expect_final(&mut nowhere, 404, T);

    // 6. 7121 dialled at site 71 is local: it rings 21 with no trip through the
    // building.
    let mut a22 = s71.phone(22);
    let before = b.kamailio.routing_log().matches("7121").count();
    let (mut local, inv) = answered_call(&mut a22, &a, "7121");
    caller_is(&inv, "22");
    a22.bye(local.dialog());
    assert_eq!(
        b.kamailio.routing_log().matches("7121").count(),
        before,
        "a local number must not go through the building:\n{}",
        b.kamailio.routing_log()
    );
}

#[test]
fn forwarding_dnd_busy_and_broadcasts_at_the_far_sites() {
    if skipped() {
        return;
    }
    let b = building();
    let (s71, s72, s73) = (b.site("71"), b.site("72"), b.site("73"));
    let mut a = s71.phone(21);
    let a22 = s71.phone(22);
    let b22 = s72.phone(22);
    let c23 = s73.phone(23);

    // 1. 22 at site 72 forwarded to 7323 (site 73, allowed by forward_prefixes):
    // a call from 71 to 7222 rings 23 at site 73.
    ctl_ok(s72, &["forward", "22", "7323"]);
    let (mut call, inv) = answered_call(&mut a, &c23, "7222");
    caller_is(&inv, "7121");
    assert_eq!(
        sdp_addr(&inv),
        a.local_addr().ip().to_string(),
        "{}",
        inv.dump()
    );
    a.bye(call.dialog());
    c23.expect_method("BYE", "the BYE", T);
    assert!(
        fenced_request(&b22, "INVITE").is_none(),
        "the forwarded phone must not ring"
    );
    ctl_ok(s72, &["forward", "22", "off"]);

    // 2. DND at site 73: the caller at 71 gets 486.
    ctl_ok(s73, &["dnd", "23", "on"]);
    let mut dnd = a.call_start("7323", &sdp_at("21", a.local_addr()));
    a.call_expect_final(&mut dnd, 486, T);
    assert!(
        fenced_request(&c23, "INVITE").is_none(),
        "a phone on DND must not ring"
    );
    ctl_ok(s73, &["dnd", "23", "off"]);

    // 3. Busy at site 72: the phone answers 486, the caller at 71 gets 486.
    let mut busy = a.call_start("7222", &sdp_at("21", a.local_addr()));
    let inv = b22.expect_invite("the call to the busy phone", T);
    b22.respond(&inv, 486, None);
    a.call_expect_final(&mut busy, 486, T);

    // 4. `pbxctl message all` at site 71 reaches its own phones and nothing
    // goes to the building. The fence: a text from site 71 through the
    // building afterwards, on the same TCP connection, so anything the site
    // sent the building before it is in Kamailio's log before it.
    let mark = b.kamailio.routing_log().lines().count();
    ctl_ok(s71, &["message", "all", "lift out of order"]);
    for p in [&a, &a22] {
        let m = p.expect_method("MESSAGE", "the broadcast at site 71", T);
        assert_eq!(m.text(), "lift out of order");
    }
    s71.sw.control_fence();
    let ex = a.message_exchange("7222", "text/plain", b"fence");
    assert_eq!(
        ex.status(),
        200,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
    let fence = b22.expect_method("MESSAGE", "the fence text", T);
    assert_eq!(fence.text(), "fence");
    let log = b.kamailio.routing_log();
    let texts: Vec<&str> = log
        .lines()
        .skip(mark)
        .filter(|l| l.contains("building: MESSAGE"))
        .collect();
    assert!(
        texts.len() == 1 && texts[0].contains("MESSAGE 7222 from 7121"),
        "only the fence text went to the building:\n{log}"
    );
    for p in [&b22, &c23] {
        assert!(
            fenced_request(p, "MESSAGE").is_none(),
            "another site's phone got site 71's broadcast"
        );
    }
}

#[test]
fn emergency_a_site_down_and_the_building_restarted() {
    if skipped() {
        return;
    }
    let mut b = building();
    let sos = {
        let sock = b.building_socket(EMERGENCY_PORT);
        let server = SocketAddr::from((b.net.building_ip(), building::SIP_PORT));
        Ua::with_socket(sock, server, "sos", "unused")
    };

    // 1. 112 dialled at site 73 reaches the building's emergency route, with the
    // caller's building number.
    let mut c21 = b.site("73").phone(21);
    let (mut call, inv) = answered_call(&mut c21, &sos, "112");
    assert!(inv.uri().unwrap().starts_with("sip:112@"), "{}", inv.dump());
    caller_is(&inv, "7321");
    c21.bye(call.dialog());
    sos.expect_method("BYE", "the BYE on the emergency route", T);

    // 2. Site 72 down: a caller at 71 gets 503 with Retry-After; back, it rings.
    let mut a = b.site("71").phone(21);
    b.site_mut("72").sw.stop();
    let mut down = a.call_start("7221", &sdp_at("21", a.local_addr()));
    // Refused at once, normally; a connection the building had not yet seen
    // closed times out first (the building's 8 s transaction timer).
    let r = a.call_expect_final(&mut down, 503, UNREACHABLE);
    assert_eq!(
        r.header("Retry-After"),
        Some("17"),
        "the building's 503 with its Retry-After:\n{}",
        r.dump()
    );
    b.site_mut("72").restart();
    b.site("72").wait_linked();
    let b21 = b.site("72").phone(21);
    let (mut call, _) = answered_call(&mut a, &b21, "7221");
    a.bye(call.dialog());
    b21.expect_method("BYE", "the BYE", T);

    // 3. Kamailio stopped: every site sees its link go; started again, every site
    // reconnects by itself and calls cross again.
    b.kamailio.stop();
    for s in &b.sites {
        let gone = poll_until(LINK_TIMEOUT, || {
            s.link_states()
                .iter()
                .all(|x| x != "connected")
                .then_some(())
        });
        assert!(
            gone.is_some(),
            "site {}: the link stays {:?} with the building down",
            s.prefix,
            s.link_states()
        );
    }
    b.kamailio
        .restart()
        .unwrap_or_else(|e| panic!("kamailio restart: {e}"));
    for s in &b.sites {
        s.wait_linked();
    }
    let (mut call, inv) = answered_call(&mut c21, &b21, "7221");
    caller_is(&inv, "7321");
    c21.bye(call.dialog());
    b21.expect_method("BYE", "the BYE", T);

    // 4. The sites list is re-read on `kamcmd dispatcher.reload`: without site
    // 72 its numbers are no site (404); listed again, they ring.
    let list = b.kamailio.sites_list();
    let without: String = list
        .lines()
        .filter(|l| !l.starts_with("72 "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, list, "site 72 in the list:\n{list}");
    b.kamailio.write_sites(&without).unwrap();
    b.kamailio.reload().unwrap();
    let mut gone = a.call_start("7221", &sdp_at("21", a.local_addr()));
    a.call_expect_final(&mut gone, 404, T);
    b.kamailio.write_sites(&list).unwrap();
    b.kamailio.reload().unwrap();
    let (mut call, _) = answered_call(&mut a, &b21, "7221");
    a.bye(call.dialog());
    b21.expect_method("BYE", "the BYE", T);

    // 5. Site 72's address accepts connections but nothing answers (its switch
    // is gone, something else holds the port): after the building's transaction
    // timer, the caller gets 503 with Retry-After too.
    b.site_mut("72").sw.stop();
    let at = (b.site("72").ip, building::SIP_PORT);
    let silent = building::in_netns(&b.site("72").ns, move || std::net::TcpListener::bind(at))
        .unwrap_or_else(|e| panic!("a silent listener at site 72: {e}"));
    let mut lost = a.call_start("7221", &sdp_at("21", a.local_addr()));
    let r = a.call_expect_final(&mut lost, 503, UNREACHABLE);
    assert_eq!(r.header("Retry-After"), Some("17"), "{}", r.dump());
    drop(silent);

    // 6. A stranger (an address in the building that is no site) gets 403 and
    // reaches nobody.
    let mut stranger = Ua::with_socket(
        b.building_socket(0),
        SocketAddr::from((b.net.building_ip(), building::SIP_PORT)),
        "stranger",
        "unused",
    );
    let ex = stranger.message_exchange("7321", "text/plain", b"let me in");
    assert_eq!(
        ex.status(),
        403,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
    assert!(
        fenced_request(&c21, "MESSAGE").is_none(),
        "a stranger's text reached a phone"
    );
}

#[test]
fn numbers_that_are_no_site_go_to_the_building_upstream_and_it_calls_in() {
    if skipped() {
        return;
    }
    // The building's own upstream (a provider): a phone in the building's
    // namespace on UPSTREAM_PORT; two sites.
    const UPSTREAM_PORT: u16 = 5080;
    let upstream = format!("sip:{{BUILDING}}:{UPSTREAM_PORT}");
    let specs = ["71", "72"]
        .iter()
        .map(|p| SiteSpec {
            prefix: p.to_string(),
            conf: Conf::new(&[21]),
            peer_secret: None,
        })
        .collect();
    let b = Building::start(specs, &[("BUILDING_UPSTREAM", &upstream)]);
    let server = SocketAddr::from((b.net.building_ip(), building::SIP_PORT));
    let mut provider = Ua::with_socket(
        b.building_socket(UPSTREAM_PORT),
        server,
        "provider",
        "unused",
    );
    let mut a = b.site("71").phone(21);

    // 1. A number that is no site goes to the building's upstream, with the
    // caller's building number.
    let (mut call, inv) = answered_call(&mut a, &provider, "0044123");
    assert!(
        inv.uri().unwrap().starts_with("sip:0044123@"),
        "{}",
        inv.dump()
    );
    caller_is(&inv, "7121");
    a.bye(call.dialog());
    provider.expect_method("BYE", "the BYE at the upstream", T);

    // 2. The upstream calls a building number: that site's phone rings and
    // sees the outside caller as sent.
    let c = b.site("72").phone(21);
    let (mut call, inv) = answered_call_unchallenged(&mut provider, &c, "7221");
    caller_is(&inv, "provider");
    provider.bye(call.dialog());
    c.expect_method("BYE", "the upstream's BYE", T);
}

#[test]
fn real_softphones_call_across_the_building_and_hear_each_other() {
    if skipped() {
        return;
    }
    let b = building();
    // A baresip at site 71 (extension 22) and one at site 73 (extension 23), each
    // in its site's namespace on its site's address, registered there.
    let softphone = |site: &building::Site, ext: u16| {
        let acc = format!(
            "<sip:{ext}@{}>;auth_pass={};regint=300\n",
            site.sw.addr(),
            coventry_tests::secret(ext)
        );
        let mut p = Baresip::start_in_netns(&site.ns, site.ip.into(), &acc);
        p.wait_registered(LONG);
        p
    };
    let mut a = softphone(b.site("71"), 22);
    let mut c = softphone(b.site("73"), 23);

    // 22 at site 71 dials 7323; 23 at site 73 answers.
    a.command("dial", &format!("sip:7323@{}", b.site("71").sw.addr()));
    let incoming = c.wait_event("CALL_INCOMING", LONG);
    assert!(
        incoming.to_string().contains("7122"),
        "the callee sees the caller as 7122: {incoming}"
    );
    c.request("accept", "");
    a.wait_event("CALL_ESTABLISHED", LONG);
    c.wait_event("CALL_ESTABLISHED", LONG);

    // Audio: each phone's RTCP report counts packets from the other, which only
    // the phones carry (neither the switches nor Kamailio touch media). The
    // reports come every few seconds.
    for (who, p) in [("the callee", &c), ("the caller", &a)] {
        poll_until(LONG, || {
            p.events()
                .iter()
                .filter(|e| e["type"] == "CALL_RTCP")
                .any(|e| {
                    e["rtcp_stats"]["rx"]["sent"]
                        .as_u64()
                        .is_some_and(|n| n > 0)
                })
                .then_some(())
        })
        .unwrap_or_else(|| panic!("no audio reached {who}:\n{:?}", p.events()));
    }

    // The callee hangs up; both see the call end.
    c.command("hangup", "");
    a.wait_event("CALL_CLOSED", LONG);
    c.wait_event("CALL_CLOSED", LONG);
}
