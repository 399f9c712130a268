//! A site in a building of switches (`[upstream] site_prefix`), on the simulated
//! clock: the building knows the site's callers by PREFIX+EXT (From,
//! P-Asserted-Identity, Diversion; calls and texts), the site's own prefix
//! dialled here stays local, a building caller keeps its building number, and
//! `why` says when a number goes to the building and whether that link is up.
//! The end-to-end test with Kamailio and three sites is `tests/tests/building.rs`.

mod common;

use common::*;
use coventry_shared::event::ResultCode;
use std::net::SocketAddr;

const SITE: &str = "[upstream]\nroute = 127.0.0.1:5070\nsite_prefix = 71\n\
                    forward_prefixes = 72\n";

fn kam() -> SocketAddr {
    addr(5070)
}

/// Site 71: 21 ("Reception"), 35 and 36 registered, the building link up.
fn site() -> Lab {
    let conf = CONF.replace(
        "[21]\nsecret = pw21\n",
        "[21]\nsecret = pw21\ndisplay = Reception\n",
    );
    let mut lab = Lab::with_config(&format!("{conf}{SITE}"));
    lab.register("21", 6021);
    lab.register("35", 6035);
    lab.register("36", 6036);
    lab.sw.on_link(0, Some(kam()));
    lab
}

/// The requests of `method` sent to the building so far.
fn to_building<'a>(lab: &'a Lab, method: &str) -> Vec<&'a String> {
    lab.tcp
        .iter()
        .filter(|(a, m)| *a == kam() && m.starts_with(method))
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn the_building_sees_a_caller_by_its_building_number_and_the_phone_its_own_from() {
    let mut lab = site();
    lab.call_from("21", "7235", "out");
    let out = to_building(&lab, "INVITE");
    assert_eq!(out.len(), 1, "{:?}", lab.tcp);
    let inv = out[0].clone();
    assert!(
        inv.starts_with("INVITE sip:7235@127.0.0.1:5070 SIP/2.0\r\n"),
        "{inv}"
    );
    assert_eq!(
        header(&inv, "From"),
        Some("\"Reception\" <sip:7121@test>;tag=caller"),
        "{inv}"
    );
    assert_eq!(
        header(&inv, "P-Asserted-Identity"),
        Some("\"Reception\" <sip:7121@test>")
    );
    // The phone gets its own From back on the answers.
    let ringing = lab.feed_tcp(kam(), &respond(&inv, 180, "far", 7000, ""));
    let back = to(&ringing, 6021)[0];
    assert_eq!(status(back), 180);
    assert_eq!(header(back, "From"), Some("<sip:21@test>;tag=caller"));
}

#[test]
fn a_text_to_another_site_carries_the_senders_building_number() {
    let mut lab = site();
    lab.text("35", "7221", "lunch?", "t1");
    let out = to_building(&lab, "MESSAGE");
    assert_eq!(out.len(), 1, "{:?}", lab.tcp);
    let m = out[0].clone();
    assert!(
        m.starts_with("MESSAGE sip:7221@127.0.0.1:5070 SIP/2.0\r\n"),
        "{m}"
    );
    assert_eq!(header(&m, "From"), Some("<sip:7135@test>;tag=m"));
    assert_eq!(
        header(&m, "P-Asserted-Identity"),
        Some("\"Extension 35\" <sip:7135@test>")
    );
    let ok = lab.feed_tcp(kam(), &respond(&m, 200, "far", 5070, ""));
    let receipt = to(&ok, 6035)[0];
    assert_eq!(
        status(receipt),
        200,
        "the sender gets the far site's receipt"
    );
    assert_eq!(header(receipt, "From"), Some("<sip:35@test>;tag=m"));
}

#[test]
fn the_sites_own_prefix_dialled_here_stays_local() {
    let mut lab = site();
    let sent = lab.call_from("21", "7135", "own");
    let inv = to(&sent, 6035);
    assert_eq!(inv.len(), 1, "35 rings: {sent:?}");
    assert!(
        to_building(&lab, "INVITE").is_empty(),
        "no trip through the building"
    );
    let sent = lab.text("36", "7121", "hi", "t2");
    assert_eq!(texts(&sent, 6021), vec!["hi".to_string()]);
    assert!(to_building(&lab, "MESSAGE").is_empty());
    // A forward to the own building number is a local forward.
    let (_, result) = lab.command("forward 36 7135");
    assert_eq!(result.map(|r| r.0), Some(ResultCode::Ok));
}

#[test]
fn a_call_forwarded_to_another_site_names_the_forwarder_by_its_building_number() {
    let mut lab = site();
    let (_, result) = lab.command("forward 35 7221");
    assert_eq!(result.map(|r| r.0), Some(ResultCode::Ok), "72 is allowed");
    lab.call_from("36", "35", "fwd");
    let out = to_building(&lab, "INVITE");
    assert_eq!(out.len(), 1, "{:?}", lab.tcp);
    assert!(out[0].starts_with("INVITE sip:7221@"), "{}", out[0]);
    assert_eq!(
        header(out[0], "Diversion"),
        Some("<sip:7135@test>;reason=unconditional;counter=1")
    );
    assert_eq!(
        header(out[0], "P-Asserted-Identity"),
        Some("\"Extension 36\" <sip:7136@test>")
    );
}

#[test]
fn a_caller_from_the_building_keeps_its_building_number() {
    let mut lab = site();
    let sent = lab.feed_tcp(addr(40002), &inbound_invite_from("7235", "21", "in"));
    let inv = to(&sent, 6021)[0];
    assert_eq!(header(inv, "From"), Some("<sip:7235@provider>;tag=out"));
    assert_eq!(
        header(inv, "P-Asserted-Identity"),
        Some("<sip:7235@provider>"),
        "not a local-looking number: nothing to mark"
    );
}

#[test]
fn why_says_a_number_goes_to_the_building_and_whether_the_link_is_up() {
    let mut lab = site();
    let steps = |lab: &Lab| -> Vec<String> {
        lab.events
            .iter()
            .filter_map(|e| match e {
                coventry_shared::event::Event::WhyStep { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    };
    let (_, result) = lab.command("why 7235");
    let (code, text) = result.expect("a result");
    assert_eq!(code, ResultCode::Ok);
    assert_eq!(
        text,
        "a call to 7235 goes to the building as 7235 (connected to 127.0.0.1:5070)"
    );
    assert!(steps(&lab).contains(&"7235 is not local: to the building".to_string()));

    let (_, result) = lab.command("why 7135");
    let (_, text) = result.expect("a result");
    assert!(text.starts_with("a call to 7135 rings 35"), "{text}");
    assert!(steps(&lab).contains(&"7135 is 35 here (site prefix 71)".to_string()));

    lab.sw.on_link(0, None);
    let (_, result) = lab.command("why 7235");
    assert_eq!(
        result.map(|r| r.1),
        Some("a call to 7235 goes to the building as 7235 (not connected: callers get 503)".into())
    );
}
