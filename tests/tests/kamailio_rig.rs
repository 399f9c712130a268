//! Self-test of the Kamailio rig (`tests/src/kamailio.rs`, `tests/kamailio/upstream.cfg`)
//! with no coventryd: sipp plays Coventry (a TCP caller to the routes, a TCP
//! callee for inbound calls) and the far ends (UDP). This tells a broken rig from a
//! broken switch in the upstream tests. Needs the Debian package
//! `kamailio` (scripts/test installs it).
#![allow(clippy::unwrap_used)]

use coventry_tests::free_udp_port;
use coventry_tests::kamailio::{Kamailio, KamailioPorts, TcpSipp};
use coventry_tests::sipp::{logged, Sipp, SippRun};
use coventry_tests::ua::dialog::uri_of;
use coventry_tests::ua::{Msg, Ua};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The bound for one step of the in-test UA.
const W: Duration = Duration::from_secs(5);

fn start(peers: KamailioPorts) -> Kamailio {
    Kamailio::start(peers).unwrap_or_else(|e| panic!("{e}"))
}

/// Ports for the peers of a test: the given ones, fresh unused ones for the rest.
fn peers(uas: Option<u16>, emergency: Option<u16>, sms: Option<u16>) -> KamailioPorts {
    KamailioPorts {
        coventry: free_udp_port(),
        uas: uas.unwrap_or_else(free_udp_port),
        emergency_uas: emergency.unwrap_or_else(free_udp_port),
        sms_uas: sms.unwrap_or_else(free_udp_port),
    }
}

/// Panic with both sipp reports and Kamailio's log unless `run` succeeded.
fn ok(run: &SippRun, what: &str, k: &Kamailio) {
    assert!(
        run.success(),
        "sipp {what} failed:\n{}\n{}",
        run.report(),
        k.rig_log()
    );
}

/// The first message starting with `start` that `run` received (UDP hops may
/// retransmit, so there can be more).
fn first(run: &SippRun, start: &str) -> Msg {
    match run.received(start).into_iter().next() {
        Some(m) => m,
        None => panic!("sipp never received `{start}`:\n{}", run.report()),
    }
}

/// A caller over TCP (Coventry's side) to `port` calling `target`.
fn tcp_caller(scenario: &str, port: u16, target: &str) -> Sipp {
    Sipp::new(scenario)
        .remote(SocketAddr::from(([127, 0, 0, 1], port)))
        .arg("-t")
        .arg("t1")
        .key("ext", "21")
        .key("target", target)
        .timeout(Duration::from_secs(10))
        .set(
            if scenario.contains("remote_bye") {
                "linger"
            } else {
                "hold"
            },
            "200",
        )
}

/// The INVITE relayed from TCP to UDP carries Kamailio's double Record-Route (one
/// per transport, both on the port the request came in on or left from).
fn check_double_rr(inv: &Msg, k: &Kamailio, in_port: u16) {
    let rr = inv.list("Record-Route");
    assert_eq!(rr.len(), 2, "double Record-Route expected:\n{}", inv.dump());
    let uris: Vec<String> = rr.iter().map(|r| uri_of(r)).collect();
    assert!(
        uris.iter()
            .any(|u| u.contains(&format!("127.0.0.1:{in_port}")) && u.contains("transport=tcp")),
        "a TCP Record-Route on the port the call came in on: {uris:?}"
    );
    assert!(
        uris.iter()
            .any(|u| u.contains(&format!("127.0.0.1:{}", k.main_port()))
                && !u.contains("transport=tcp")),
        "a UDP Record-Route on the main port: {uris:?}"
    );
}

#[test]
fn default_route_call_from_tcp_to_udp_uas() {
    let uas = Sipp::new("uas_call.xml")
        .key("ext", "900")
        .set("ring", "100")
        .set("linger", "200")
        .timeout(Duration::from_secs(10));
    let k = start(peers(Some(uas.local_port()), None, None));
    let uas = uas.spawn();
    let caller = tcp_caller("upstream_uac_call.xml", k.main_port(), "5551234").run();
    ok(&caller, "caller (TCP, default route)", &k);
    let callee = uas.wait();
    ok(&callee, "callee (UDP UAS of the default route)", &k);

    let inv = first(&callee, "INVITE ");
    assert_eq!(
        inv.uri().as_deref(),
        Some(format!("sip:5551234@127.0.0.1:{}", k.main_port()).as_str()),
        "the Request-URI is kept:\n{}",
        inv.dump()
    );
    check_double_rr(&inv, &k, k.main_port());
    first(&callee, "ACK ");
    let bye = first(&callee, "BYE ");
    assert!(bye.header("Route").is_none(), "{}", bye.dump());
    assert!(
        k.rig_log().contains("default route: INVITE"),
        "{}",
        k.rig_log()
    );
}

#[test]
fn default_route_call_cancelled_while_ringing() {
    // The callee is the in-test UA: it answers the CANCEL with 200 and the INVITE
    // with 487 built from the INVITE. (sipp's uas_ring_cancel.xml builds its 487
    // from the CANCEL's Via, which behind Kamailio holds only Kamailio's Via, so
    // the 487 would reach the caller with no Via at all.)
    let callee = Ua::new(SocketAddr::from(([127, 0, 0, 1], 9)), "900", "x");
    let k = start(peers(Some(callee.local_addr().port()), None, None));
    let caller = Sipp::new("upstream_uac_call_cancel.xml")
        .remote(k.main_addr())
        .arg("-t")
        .arg("t1")
        .key("ext", "21")
        .key("target", "5551234")
        .set("ring", "200")
        .set("linger", "0");
    let caller = std::thread::spawn(move || caller.run());
    let inv = callee.expect_invite("the call over the default route", W);
    callee.respond(&inv, 180, None);
    let cancel = callee.expect_method("CANCEL", "the caller gave up", W);
    assert_eq!(
        cancel.header("Via"),
        inv.list("Via").first().map(String::as_str),
        "Kamailio's CANCEL has its INVITE's Via (one: hop by hop)"
    );
    callee.expect_method("ACK", "Kamailio's ACK of the 487", W);
    assert_eq!(callee.invite_final(&inv), Some(487));
    let caller = caller.join().unwrap();
    ok(&caller, "caller cancelling (TCP, default route)", &k);
    first(&caller, "SIP/2.0 487");
}

#[test]
fn emergency_route_call_hung_up_by_the_callee() {
    let uas = Sipp::new("uas_call_bye.xml")
        .key("ext", "112")
        .set("ring", "100")
        .set("hold", "200")
        .timeout(Duration::from_secs(10));
    let k = start(peers(None, Some(uas.local_port()), None));
    let uas = uas.spawn();
    let caller = tcp_caller(
        "upstream_uac_call_remote_bye.xml",
        k.emergency_port(),
        "112",
    )
    .run();
    ok(&caller, "caller (TCP, emergency route)", &k);
    let callee = uas.wait();
    ok(&callee, "callee (UDP UAS of the emergency route)", &k);
    let inv = first(&callee, "INVITE ");
    assert_eq!(
        inv.uri().as_deref().and_then(|u| u.split('@').next()),
        Some("sip:112")
    );
    check_double_rr(&inv, &k, k.emergency_port());
    // The callee's BYE crossed back to the caller over its TCP connection.
    first(&caller, "BYE ");
    assert!(
        k.rig_log().contains("emergency route: INVITE"),
        "{}",
        k.rig_log()
    );
}

#[test]
fn sms_route_message() {
    let uas = Sipp::new("uas_message.xml").timeout(Duration::from_secs(10));
    let k = start(peers(None, None, Some(uas.local_port())));
    let uas = uas.spawn();
    let sender = Sipp::new("upstream_uac_message.xml")
        .remote(k.sms_addr())
        .arg("-t")
        .arg("t1")
        .key("ext", "21")
        .key("target", "5550000")
        .key("text", "to the SMS route")
        .run();
    ok(&sender, "MESSAGE over TCP to the SMS route", &k);
    let got = uas.wait();
    ok(&got, "the SMS route's UAS", &k);
    assert_eq!(
        logged(&got.logs, "text"),
        Some("to the SMS route"),
        "{}",
        got.report()
    );
    let m = first(&got, "MESSAGE ");
    assert!(
        m.uri().is_some_and(|u| u.starts_with("sip:5550000@")),
        "{}",
        m.dump()
    );
    assert!(
        k.rig_log().contains("sms route: MESSAGE"),
        "{}",
        k.rig_log()
    );
}

#[test]
fn inbound_udp_call_reaches_coventry_over_tcp() {
    // The sipp callee plays Coventry: it listens on TCP only.
    let coventry = Sipp::new("upstream_uas_call.xml")
        .key("ext", "21")
        .set("ring", "100")
        .set("linger", "200")
        .timeout(Duration::from_secs(10));
    let mut p = peers(None, None, None);
    p.coventry = coventry.local_port();
    let k = start(p);
    let mut coventry = TcpSipp::spawn(coventry);
    let caller = Sipp::new("upstream_uac_call.xml")
        .remote(k.main_addr())
        .key("ext", "5551234")
        .key("target", "21")
        .set("hold", "200")
        .run();
    ok(&caller, "outside caller (UDP to the main port)", &k);
    let callee = coventry.wait();
    ok(&callee, "\"coventry\" (TCP UAS)", &k);
    assert_eq!(
        logged(&callee.logs, "ruri"),
        Some(format!("sip:21@127.0.0.1:{};transport=tcp", coventry.port()).as_str()),
        "{}",
        callee.report()
    );
    let inv = first(&callee, "INVITE ");
    assert!(
        inv.header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP 127.0.0.1:")),
        "Kamailio's Via says TCP:\n{}",
        inv.dump()
    );
    let rr: Vec<String> = inv.list("Record-Route").iter().map(|r| uri_of(r)).collect();
    assert_eq!(rr.len(), 2, "double Record-Route: {rr:?}");
    assert!(
        rr[0].contains(&format!("127.0.0.1:{};transport=tcp", k.main_port())),
        "the top Record-Route faces Coventry over TCP from the main socket: {rr:?}"
    );
    first(&callee, "BYE ");
}

#[test]
fn restarts_on_the_same_ports() {
    let uas = Sipp::new("uas_call.xml")
        .key("ext", "900")
        .set("ring", "100")
        .set("linger", "200")
        .timeout(Duration::from_secs(10));
    let mut k = start(peers(Some(uas.local_port()), None, None));
    let (main, emergency, sms) = (k.main_port(), k.emergency_port(), k.sms_port());
    assert!(k.stop().is_some(), "it was running");
    assert!(!k.is_running());
    assert!(k.ping().is_err(), "a stopped Kamailio answers nothing");
    // Someone holds the emergency port until restart()'s first attempt has failed
    // to bind (its log says so): restart() keeps trying and gets it then.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", emergency)).unwrap();
    let log = k.log_path().to_path_buf();
    let held = std::thread::spawn(move || {
        coventry_tests::poll_until(coventry_tests::LONG, || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("Address already in use"))
        });
        drop(squatter);
    });
    k.restart().unwrap_or_else(|e| panic!("{e}"));
    held.join().unwrap();
    assert!(
        k.log().contains("Address already in use"),
        "the first restart attempt should have failed to bind:\n{}",
        k.report()
    );
    assert_eq!(
        (k.main_port(), k.emergency_port(), k.sms_port()),
        (main, emergency, sms)
    );
    k.ping().unwrap_or_else(|e| panic!("{e}\n{}", k.report()));

    let uas = uas.spawn();
    let caller = tcp_caller("upstream_uac_call.xml", main, "5551234").run();
    ok(&caller, "caller after the restart", &k);
    ok(&uas.wait(), "callee after the restart", &k);
}

/// Read from `s` once, or until a whole SIP message head when `until_head`
/// (bounded by the stream's read timeout).
fn read_some(s: &mut TcpStream, until_head: bool) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e} (got {:?})", String::from_utf8_lossy(&got)),
        }
        if !until_head || got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn request(method: &str, user: &str, s: &TcpStream, port: u16) -> String {
    let local = s.local_addr().unwrap();
    let id = coventry_tests::ua::unique("");
    format!(
        "{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:21@{local}>;tag={id}\r\n\
         To: <sip:{user}@127.0.0.1:{port}>\r\n\
         Call-ID: {id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:21@{local};transport=tcp>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn tcp_keepalive_probe_refusals_and_503() {
    let k = start(peers(None, None, None));
    // A CRLF ping on the SMS route's connection gets its CRLF pong; the connection
    // stays usable, and the route refuses anything but MESSAGE.
    let mut s = TcpStream::connect(k.sms_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"\r\n\r\n").unwrap();
    assert_eq!(read_some(&mut s, false), "\r\n", "{}", k.report());
    let invite = request("INVITE", "5551234", &s, k.sms_port());
    s.write_all(invite.as_bytes()).unwrap();
    let reply = read_some(&mut s, true);
    assert!(reply.starts_with("SIP/2.0 405"), "{reply}\n{}", k.rig_log());
    // Nothing listens on Coventry's TCP port: an outside call gets 503 at once.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let local = udp.local_addr().unwrap();
    let id = coventry_tests::ua::unique("");
    let main = k.main_port();
    let inv = format!(
        "INVITE sip:21@127.0.0.1:{main} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:5551234@{local}>;tag={id}\r\n\
         To: <sip:21@127.0.0.1:{main}>\r\n\
         Call-ID: {id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:5551234@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    udp.send_to(inv.as_bytes(), k.main_addr()).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut codes = Vec::new();
    while let Ok((n, _)) = udp.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        codes.push(code);
        if code >= 200 {
            break;
        }
    }
    assert_eq!(
        codes.last(),
        Some(&503),
        "replies {codes:?}\n{}",
        k.rig_log()
    );
}
