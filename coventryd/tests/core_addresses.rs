//! Nothing the switch writes names an unspecified address: listening on
//! 0.0.0.0, every URI and Via of its own requests (BLF NOTIFY, operator texts,
//! click-to-dial) carries the address the packet leaves from towards that peer,
//! as the routing table says (simulated here; the shell asks the kernel). The
//! end-to-end test with phones in a network namespace is in
//! `tests/tests/addresses.rs`. Listening on 0.0.0.0, another host on the same
//! port (a building's Kamailio on 5060) is not the switch itself.

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Phones on 192.0.2.0/24, reached from 192.0.2.1 (the switch's LAN address).
fn lab() -> Lab {
    let conf = CONF.replace("listen = 127.0.0.1:5060", "listen = 0.0.0.0:5060");
    let lan = |ip: IpAddr| match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [192, 0, 2] => {
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        }
        _ => None,
    };
    let mut lab =
        Lab::listening(&conf, "0.0.0.0:5060".parse().expect("addr")).routed(Box::new(lan));
    for (user, host) in [("21", 21u8), ("35", 35), ("36", 36)] {
        let from = phone(host);
        let sent = lab.authed_at(from, user, "REGISTER", |auth, cseq| {
            format!(
                "REGISTER sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKr{cseq}{host}\r\n\
                 From: <sip:{user}@test>;tag=r{host}\r\nTo: <sip:{user}@test>\r\nCall-ID: reg{host}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{from}>\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        });
        assert!(sent.iter().any(|(_, m)| status(m) == 200), "{sent:?}");
    }
    lab
}

fn phone(host: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, host], 5060))
}

/// What the switch sent to `to`.
fn sent_to(sent: &[(SocketAddr, String)], to: SocketAddr) -> Vec<&str> {
    sent.iter()
        .filter(|(a, _)| *a == to)
        .map(|(_, m)| m.as_str())
        .collect()
}

fn assert_own_address(msg: &str) {
    assert!(
        !msg.contains("0.0.0.0"),
        "an unspecified address written:\n{msg}"
    );
    assert!(
        msg.contains("192.0.2.1:5060"),
        "our LAN address missing:\n{msg}"
    );
}

#[test]
fn operator_texts_name_the_address_the_phone_reaches() {
    let mut lab = lab();
    let (sent, _) = lab.command("message 21 shutdown at 5");
    let msgs = sent_to(&sent, phone(21));
    assert_eq!(msgs.len(), 1, "{sent:?}");
    assert!(msgs[0].starts_with("MESSAGE "));
    assert_own_address(msgs[0]);
}

#[test]
fn click_to_dial_names_the_address_the_phone_reaches() {
    let mut lab = lab();
    let (sent, _) = lab.command("dial 21 35");
    let inv = sent_to(&sent, phone(21));
    assert_eq!(inv.len(), 1, "{sent:?}");
    assert!(inv[0].starts_with("INVITE "));
    assert_own_address(inv[0]);
}

#[test]
fn busy_lamp_notifies_name_the_address_the_subscriber_reaches() {
    let mut lab = lab();
    let from = phone(36);
    let sent = lab.authed_at(from, "36", "SUBSCRIBE", |auth, cseq| {
        format!(
            "SUBSCRIBE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKsub{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:36@test>;tag=w\r\nTo: <sip:35@test>\r\nCall-ID: blf\r\n\
             CSeq: {cseq} SUBSCRIBE\r\nEvent: dialog\r\nExpires: 600\r\nContact: <sip:36@{from}>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    });
    let notify: Vec<&str> = sent_to(&sent, from)
        .into_iter()
        .filter(|m| m.starts_with("NOTIFY "))
        .collect();
    assert_eq!(notify.len(), 1, "{sent:?}");
    assert_own_address(notify[0]);
    assert_eq!(
        header(notify[0], "Contact"),
        Some("<sip:system@192.0.2.1:5060>")
    );
}

/// Listening on 0.0.0.0:5060, a phone elsewhere on port 5060 (as most desk
/// phones and every SIP server listen) is someone else, not the switch: the
/// caller's BYE reaches the callee instead of a 481 from the switch.
#[test]
fn a_bye_reaches_a_phone_on_another_host_at_the_switchs_own_port() {
    let mut lab = lab();
    let caller = phone(21);
    let sent = lab.authed_at(caller, "21", "INVITE", |auth, cseq| {
        format!(
            "INVITE sip:35@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {caller};branch=z9hG4bKinv{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=a\r\nTo: <sip:35@test>\r\nCall-ID: far5060\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:21@{caller}>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    });
    let inv = sent_to(&sent, phone(35));
    assert_eq!(inv.len(), 1, "{sent:?}");
    let ok = respond(inv[0], 200, "b", 5060, SDP).replace("127.0.0.1:5060", "192.0.2.35:5060");
    let answered = lab.feed_at(phone(35), &ok);
    let ok = sent_to(&answered, caller);
    assert_eq!(ok.len(), 1, "{answered:?}");
    assert_eq!(status(ok[0]), 200);
    let routes: Vec<&str> = ok[0]
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .collect();
    let bye = format!(
        "BYE sip:35@192.0.2.35:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {caller};branch=z9hG4bKbye\r\n\
         Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=a\r\nTo: <sip:35@test>;tag=b\r\n\
         Call-ID: far5060\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
        routes.join(", ")
    );
    let sent = lab.feed_at(caller, &bye);
    assert!(
        sent_to(&sent, caller).iter().all(|m| status(m) != 481),
        "{sent:?}"
    );
    let relayed = sent_to(&sent, phone(35));
    assert_eq!(relayed.len(), 1, "the BYE goes on to 35: {sent:?}");
    assert!(relayed[0].starts_with("BYE sip:35@192.0.2.35:5060 SIP/2.0\r\n"));
}

/// Every entry of every `name` header of `msg`, top first.
fn entries(msg: &str, name: &str) -> Vec<String> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(", ").map(|e| e.trim().to_string()))
        .collect()
}

#[test]
fn an_in_dialog_request_to_another_host_on_our_port_is_relayed() {
    // Listening on 0.0.0.0:5060 behind a building's Kamailio that also uses
    // 5060 (and leaves the port out of its Record-Route, as Kamailio does for
    // 5060): the ACK is for Kamailio, not for the switch itself.
    let kam: SocketAddr = "192.0.2.200:5060".parse().expect("addr");
    let conf = CONF.replace("listen = 127.0.0.1:5060", "listen = 0.0.0.0:5060")
        + "[upstream]\nroute = 192.0.2.200:5060\n";
    let lan = |ip: IpAddr| match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [192, 0, 2] => {
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        }
        _ => None,
    };
    let mut lab =
        Lab::listening(&conf, "0.0.0.0:5060".parse().expect("addr")).routed(Box::new(lan));
    lab.register("21", 6021);
    lab.sw.on_link(0, Some(kam));
    lab.call_from("21", "0044123", "bldg1");
    let inv = lab
        .tcp
        .iter()
        .find(|(a, m)| *a == kam && m.starts_with("INVITE "))
        .map(|(_, m)| m.clone())
        .expect("the INVITE to the building");
    let ok = respond(&inv, 200, "far", 7000, SDP).replacen(
        "Record-Route: ",
        "Record-Route: <sip:192.0.2.200;transport=tcp;lr>, ",
        1,
    );
    let ok = lab.feed_tcp(kam, &ok);
    let ok = to(&ok, 6021)[0].to_string();
    let mut routes = entries(&ok, "Record-Route");
    routes.reverse();
    let ack = format!(
        "ACK sip:far@192.0.2.7:7000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKack\r\n\
         Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\n\
         To: <sip:0044123@test>;tag=far\r\nCall-ID: bldg1\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
        routes.join(", ")
    );
    let before = lab.tcp.len();
    lab.feed(6021, &ack);
    let relayed = &lab.tcp[before..];
    assert_eq!(
        relayed.len(),
        1,
        "the ACK goes to the building: {relayed:?}"
    );
    assert_eq!(relayed[0].0, kam);
    assert!(
        relayed[0].1.starts_with("ACK sip:far@192.0.2.7:7000"),
        "{relayed:?}"
    );
}
