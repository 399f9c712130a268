//! The upstream adapter's TCP I/O against real sockets on loopback: fake peers are
//! plain tokio listeners and streams, ports are chosen by the kernel, and every wait
//! is bounded. Timings are shortened through `Upstream::start_with`.

use coventry_shared::event::{Event, RouteState};
use coventry_shared::stateblock::get_str;
use coventryd::config::{HostPort, RouteKind, UpstreamConfig};
use coventryd::shell::links::{Change, TcpEvent, Timings, Upstream};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

/// The longest any single expected thing may take.
const WAIT: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn fast() -> Timings {
    Timings {
        connect_timeout: Duration::from_secs(1),
        keepalive: Duration::from_secs(60),
        pong_timeout: Duration::from_secs(10),
        backoff_first: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        flush_timeout: Duration::from_millis(500),
        inbound_idle: Duration::from_secs(60),
    }
}

fn hp(addr: SocketAddr) -> HostPort {
    HostPort {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

fn route_to(addr: SocketAddr) -> UpstreamConfig {
    UpstreamConfig {
        route: Some(hp(addr)),
        ..UpstreamConfig::default()
    }
}

fn options(call_id: &str, body: &str) -> String {
    format!(
        "OPTIONS sip:100@example.net SIP/2.0\r\n\
         Via: SIP/2.0/TCP 10.1.2.3:5060;branch=z9hG4bK-{call_id}\r\n\
         From: <sip:kamailio@example.net>;tag=a1\r\nTo: <sip:100@example.net>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("local addr");
    (l, a)
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> SocketAddr {
    let (l, a) = listener().await;
    drop(l);
    a
}

async fn accept(l: &TcpListener) -> TcpStream {
    timeout(WAIT, l.accept())
        .await
        .expect("the link connects in time")
        .expect("accept")
        .0
}

async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("bytes arrive in time")
        .expect("read");
    buf
}

/// Everything until the switch closes the connection (a reset counts as the end).
async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!("the switch did not close the connection; got {out:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Nothing arrives on `s` for `d`.
async fn silent(s: &mut TcpStream, d: Duration) {
    let mut buf = [0u8; 64];
    if let Ok(r) = timeout(d, s.read(&mut buf)).await {
        let n = *r.as_ref().unwrap_or(&0);
        panic!("expected silence, got {r:?} {:?}", &buf[..n]);
    }
}

/// The main loop's part: events applied, messages collected.
struct Harness {
    up: Upstream,
    rx: Receiver<TcpEvent>,
    messages: VecDeque<(SocketAddr, rsip::SipMessage)>,
    inbound_opened: Vec<SocketAddr>,
    inbound_closed: Vec<(SocketAddr, String)>,
}

impl Harness {
    fn start(cfg: &UpstreamConfig, listener: Option<TcpListener>, max: usize, t: Timings) -> Self {
        let (up, rx) = Upstream::start_with(cfg, listener, max, now_ms(), t);
        Harness {
            up,
            rx,
            messages: VecDeque::new(),
            inbound_opened: Vec::new(),
            inbound_closed: Vec::new(),
        }
    }

    fn handle(&mut self, ev: TcpEvent) -> Option<Change> {
        match ev {
            TcpEvent::Message { peer, msg } => {
                self.up.note_received(peer);
                self.messages.push_back((peer, msg));
                None
            }
            other => {
                match &other {
                    TcpEvent::InboundOpened { peer, .. } => self.inbound_opened.push(*peer),
                    TcpEvent::InboundClosed { peer, error, .. } => {
                        self.inbound_closed.push((*peer, error.clone()))
                    }
                    _ => {}
                }
                self.up.apply(now_ms(), other)
            }
        }
    }

    /// Process events until a Change comes, within `limit`.
    async fn change_within(&mut self, limit: Duration) -> Option<Change> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()??;
            if let Some(c) = self.handle(ev) {
                return Some(c);
            }
        }
    }

    /// The next Change, which must put link `link` into `state`.
    async fn expect(&mut self, link: usize, state: RouteState) -> Change {
        let c = self
            .change_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no change to {state:?} in time"));
        assert_eq!(c.link, link, "{c:?}");
        match &c.event {
            Event::Upstream { state: s, .. } => assert_eq!(*s, state, "{c:?}"),
            other => panic!("not an upstream event: {other:?}"),
        }
        assert_eq!(c.peer.is_some(), state == RouteState::Connected, "{c:?}");
        c
    }

    /// Process events for `d`; no link may change state meanwhile.
    async fn steady(&mut self, d: Duration) {
        if let Some(c) = self.change_within(d).await {
            panic!("unexpected change {c:?}");
        }
    }

    /// Process events until a message arrives.
    async fn message(&mut self) -> (SocketAddr, rsip::SipMessage) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self.messages.pop_front() {
                return m;
            }
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .expect("a message in time")
                .expect("channel open");
            if let Some(c) = self.handle(ev) {
                panic!("unexpected change while waiting for a message: {c:?}");
            }
        }
    }

    /// Process events until `f` holds (bounded).
    async fn until(&mut self, what: &str, f: impl Fn(&Harness) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !f(&*self) {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("channel open");
            let _ = self.handle(ev);
        }
    }
}

fn detail(c: &Change) -> &str {
    match &c.event {
        Event::Upstream { detail, .. } => detail,
        _ => "",
    }
}

fn body_of(m: &rsip::SipMessage) -> Vec<u8> {
    match m {
        rsip::SipMessage::Request(r) => r.body.clone(),
        rsip::SipMessage::Response(r) => r.body.clone(),
    }
}

#[tokio::test]
async fn link_connects_and_carries_messages_both_ways() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let mut peer = accept(&l).await;
    let c = h.expect(0, RouteState::Connected).await;
    assert_eq!(
        c,
        Change {
            link: 0,
            kinds: vec![RouteKind::Default, RouteKind::Emergency, RouteKind::Sms],
            peer: Some(addr),
            event: Event::Upstream {
                route: "default+emergency+sms".into(),
                addr: addr.to_string(),
                state: RouteState::Connected,
                detail: format!("connected to {addr}"),
            },
        }
    );
    assert_eq!(h.up.peer_for(RouteKind::Sms), Some(addr));

    // A message written in two pieces arrives once, whole.
    let text = options("one", "hello upstream");
    let (a, b) = text.as_bytes().split_at(40);
    peer.write_all(a).await.expect("write");
    peer.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.write_all(b).await.expect("write");
    let (from, msg) = h.message().await;
    assert_eq!(from, addr);
    assert_eq!(body_of(&msg), b"hello upstream");
    assert!(matches!(msg, rsip::SipMessage::Request(ref r) if r.method == rsip::Method::Options));

    // What the switch sends arrives byte for byte.
    let out = options("two", "from the switch").into_bytes();
    assert!(h.up.send(addr, out.clone()));
    assert_eq!(read_exact(&mut peer, out.len()).await, out);
    assert!(!h
        .up
        .send("127.0.0.1:9".parse().expect("addr"), b"x".to_vec()));

    let e = h.up.entries();
    assert_eq!(e.len(), 1);
    assert_eq!(get_str(&e[0].name), "default+emergency+sms");
    assert_eq!(get_str(&e[0].addr), addr.to_string());
    assert_eq!(e[0].state, RouteState::Connected as u8);
    assert_eq!(
        (
            e[0].connects,
            e[0].failures,
            e[0].sent,
            e[0].received,
            e[0].retry_ms
        ),
        (1, 0, 1, 1, 0)
    );
}

#[tokio::test]
async fn peer_closing_and_coming_back_reconnects() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    // The peer closes the connection but still listens: back within the back-off.
    drop(peer);
    let c = h.expect(0, RouteState::Reconnecting).await;
    assert_eq!(detail(&c), "closed by peer");
    let _peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    // The peer goes away altogether: reconnecting, then down, then back when it
    // listens again on the same port.
    drop(_peer);
    drop(l);
    h.expect(0, RouteState::Reconnecting).await;
    let c = h.expect(0, RouteState::Down).await;
    assert!(detail(&c).contains("refused"), "{c:?}");
    let l = TcpListener::bind(addr).await.expect("listen again");
    let _peer = accept(&l).await;
    let c = h.expect(0, RouteState::Connected).await;
    assert_eq!(c.peer, Some(addr));
    let e = &h.up.entries()[0];
    assert_eq!((e.connects, e.failures), (3, 4));
}

#[tokio::test]
async fn refused_attempts_go_reconnecting_then_down() {
    let addr = closed_port().await;
    let started = now_ms();
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let e = &h.up.entries()[0];
    assert_eq!(e.state, RouteState::Connecting as u8);
    assert_eq!(h.up.peer_for(RouteKind::Default), None);

    let c = h.expect(0, RouteState::Reconnecting).await;
    assert!(detail(&c).contains(&format!("connect to {addr}")), "{c:?}");
    assert!(detail(&c).contains("refused"), "{c:?}");
    // The second failure changes nothing visible but the counters; the third: down.
    let c = h.expect(0, RouteState::Down).await;
    assert!(detail(&c).contains("refused"), "{c:?}");
    let e = &h.up.entries()[0];
    assert_eq!(e.state, RouteState::Down as u8);
    assert_eq!((e.connects, e.failures), (0, 3));
    assert!(e.since_ms >= started);
    // Back-off after three failures: 50 ms doubled twice.
    assert!(e.retry_ms >= e.since_ms + 150, "{e:?}");
    assert!(e.retry_ms <= e.since_ms + 250, "{e:?}");
    assert!(get_str(&e.last_error).contains("refused"));
    // Still retrying, still down.
    h.steady(Duration::from_millis(600)).await;
    assert!(h.up.entries()[0].failures >= 5);
}

#[tokio::test]
async fn garbage_without_content_length_cuts_the_link() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    let garbage = options("g", "").replace("Content-Length: 0\r\n", "");
    peer.write_all(garbage.as_bytes()).await.expect("write");
    let reply = String::from_utf8_lossy(&read_to_end(&mut peer).await).into_owned();
    assert!(reply.starts_with("SIP/2.0 400 "), "{reply}");
    assert!(reply.contains("Call-ID: g\r\n"), "{reply}");
    let c = h.expect(0, RouteState::Reconnecting).await;
    assert!(detail(&c).starts_with("garbage from peer: "), "{c:?}");
    assert!(detail(&c).contains("Content-Length"), "{c:?}");
    assert!(h.messages.is_empty());

    // A new connection, trusted afresh.
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    peer.write_all(options("ok", "fine").as_bytes())
        .await
        .expect("write");
    assert_eq!(body_of(&h.message().await.1), b"fine");
}

#[tokio::test]
async fn oversized_message_cuts_the_link() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 1024, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    peer.write_all(options("big", &"x".repeat(3000)).as_bytes())
        .await
        .expect("write");
    let reply = String::from_utf8_lossy(&read_to_end(&mut peer).await).into_owned();
    assert!(reply.starts_with("SIP/2.0 513 "), "{reply}");
    let c = h.expect(0, RouteState::Reconnecting).await;
    assert_eq!(detail(&c), "garbage from peer: message too large");
    let _peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    assert!(h.messages.is_empty());
    let e = &h.up.entries()[0];
    assert_eq!((e.connects, e.failures, e.received), (2, 1, 0));
    assert_eq!(
        get_str(&e.last_error),
        "garbage from peer: message too large"
    );
}

#[tokio::test]
async fn a_framed_but_broken_request_is_answered_and_the_link_stays() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    let bad = options("bad", "").replace(" SIP/2.0\r\n", " SIP/3.0\r\n");
    peer.write_all(bad.as_bytes()).await.expect("write");
    let head = read_exact(&mut peer, 12).await;
    assert_eq!(head, b"SIP/2.0 505 ");
    peer.write_all(options("good", "after").as_bytes())
        .await
        .expect("write");
    assert_eq!(body_of(&h.message().await.1), b"after");
    h.steady(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn keepalive_pings_an_idle_link_and_cuts_a_silent_peer() {
    assert_eq!(
        Timings::from_config(&UpstreamConfig {
            keepalive: 5,
            ..UpstreamConfig::default()
        })
        .keepalive,
        Duration::from_secs(5)
    );
    let (l, addr) = listener().await;
    let t = Timings {
        keepalive: Duration::from_millis(300),
        pong_timeout: Duration::from_millis(700),
        ..fast()
    };
    let mut h = Harness::start(&route_to(addr), None, 8192, t);
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    let up_at = Instant::now();

    let ping = read_exact(&mut peer, 4).await;
    assert_eq!(ping, b"\r\n\r\n");
    assert!(up_at.elapsed() >= Duration::from_millis(200));
    // The peer never answers: no second ping, and the link is cut.
    let c = h.expect(0, RouteState::Reconnecting).await;
    assert!(detail(&c).contains("keep-alive"), "{c:?}");
    assert!(
        up_at.elapsed() >= Duration::from_millis(800),
        "{:?}",
        up_at.elapsed()
    );
    assert_eq!(read_to_end(&mut peer).await, b"");
    let _peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
}

#[tokio::test]
async fn keepalive_answered_keeps_the_link() {
    let (l, addr) = listener().await;
    let t = Timings {
        keepalive: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(1000),
        ..fast()
    };
    let mut h = Harness::start(&route_to(addr), None, 8192, t);
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    let answering = tokio::spawn(async move {
        let mut pings = 0;
        let mut buf = [0u8; 4];
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            match timeout(Duration::from_millis(1000), peer.read_exact(&mut buf)).await {
                Ok(Ok(_)) => {
                    assert_eq!(&buf, b"\r\n\r\n");
                    pings += 1;
                    peer.write_all(b"\r\n").await.expect("pong");
                }
                Ok(Err(e)) => panic!("read: {e}"),
                Err(_) => panic!("no ping within a second"),
            }
        }
        (pings, peer)
    });
    h.steady(Duration::from_millis(1600)).await;
    let (pings, _peer) = timeout(WAIT, answering)
        .await
        .expect("peer done")
        .expect("peer task");
    assert!((4..=9).contains(&pings), "{pings} pings");
    assert_eq!(h.up.entries()[0].connects, 1);
}

#[tokio::test]
async fn a_ping_from_the_peer_gets_a_pong() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    peer.write_all(b"\r\n\r\n").await.expect("ping");
    assert_eq!(read_exact(&mut peer, 2).await, b"\r\n");
    silent(&mut peer, Duration::from_millis(200)).await;
    // A pong is not answered.
    peer.write_all(b"\r\n").await.expect("pong");
    silent(&mut peer, Duration::from_millis(200)).await;
    h.steady(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_peer_that_does_not_read_is_cut_off() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    // Without yielding, the connection task cannot drain its queue: it takes 1024
    // messages, then the peer counts as not reading.
    let msg = options("q", "").into_bytes();
    let accepted = (0..2000)
        .take_while(|_| h.up.send(addr, msg.clone()))
        .count();
    assert_eq!(accepted, 1024);
    let c = h.expect(0, RouteState::Reconnecting).await;
    assert_eq!(detail(&c), "peer not reading (write queue full)");
    let got = read_to_end(&mut peer).await;
    assert!(got.len() < msg.len() * 1024, "the queue was thrown away");
    let _peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    assert_eq!(h.up.entries()[0].sent, 1024);
}

#[tokio::test]
async fn trusted_inbound_connection_is_served() {
    let (l, addr) = listener().await;
    let cfg = UpstreamConfig {
        trust: vec!["127.0.0.1".parse().expect("ip")],
        ..UpstreamConfig::default()
    };
    let mut h = Harness::start(&cfg, Some(l), 8192, fast());
    assert!(h.up.is_trusted("127.0.0.1".parse().expect("ip")));
    assert!(h.up.is_trusted("::ffff:127.0.0.1".parse().expect("ip")));
    assert!(!h.up.is_trusted("127.0.0.2".parse().expect("ip")));
    assert!(h.up.entries().is_empty());

    let mut client = TcpStream::connect(addr).await.expect("connect");
    let me = client.local_addr().expect("local");
    client
        .write_all(options("in", "inbound").as_bytes())
        .await
        .expect("write");
    let (from, msg) = h.message().await;
    assert_eq!(from, me);
    assert_eq!(body_of(&msg), b"inbound");
    assert_eq!(h.inbound_opened, vec![me]);

    let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
    assert!(h.up.send(me, reply.clone()));
    assert_eq!(read_exact(&mut client, reply.len()).await, reply);
    client.write_all(b"\r\n\r\n").await.expect("ping");
    assert_eq!(read_exact(&mut client, 2).await, b"\r\n");

    // Garbage closes it like a link's, and then nothing can be sent there.
    client
        .write_all(b"HELLO\r\nthere: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_to_end(&mut client).await, b"");
    h.until("the inbound close", |h| !h.inbound_closed.is_empty())
        .await;
    assert_eq!(h.inbound_closed[0].0, me);
    assert!(h.inbound_closed[0].1.starts_with("garbage from peer"));
    assert!(!h.up.send(me, b"late".to_vec()));
}

#[tokio::test]
async fn a_route_host_is_trusted_inbound() {
    let (l, addr) = listener().await;
    let route = closed_port().await;
    let mut h = Harness::start(&route_to(route), Some(l), 8192, fast());
    assert!(h.up.is_trusted(IpAddr::from([127, 0, 0, 1])));
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client
        .write_all(options("r", "via route").as_bytes())
        .await
        .expect("write");
    // The link itself keeps failing meanwhile (changes are not what we wait for).
    h.until("the message", |h| !h.messages.is_empty()).await;
    let (from, msg) = h.messages.pop_front().expect("message");
    assert_eq!(from, client.local_addr().expect("local"));
    assert_eq!(body_of(&msg), b"via route");
    assert_eq!(h.inbound_opened, vec![from]);
}

#[tokio::test]
async fn untrusted_inbound_connection_is_closed() {
    let (l, addr) = listener().await;
    let cfg = UpstreamConfig {
        route: Some(HostPort {
            host: "127.0.0.2".into(),
            port: closed_port().await.port(),
        }),
        trust: vec!["10.9.8.7".parse().expect("ip")],
        ..UpstreamConfig::default()
    };
    let mut h = Harness::start(&cfg, Some(l), 8192, fast());
    assert!(h.up.is_trusted("127.0.0.2".parse().expect("ip")));
    assert!(h.up.is_trusted("10.9.8.7".parse().expect("ip")));
    assert!(!h.up.is_trusted("127.0.0.1".parse().expect("ip")));

    let mut client = TcpStream::connect(addr).await.expect("connect");
    let _ = client.write_all(options("x", "let me in").as_bytes()).await;
    assert_eq!(read_to_end(&mut client).await, b"");
    // Meanwhile the link to 127.0.0.2 keeps failing; no inbound connection was
    // opened and no message came through.
    h.expect(0, RouteState::Reconnecting).await;
    h.expect(0, RouteState::Down).await;
    assert!(h.inbound_opened.is_empty());
    assert!(h.messages.is_empty());
}

#[tokio::test]
async fn reconfigure_keeps_replaces_and_adds_links() {
    let (la, a) = listener().await;
    let (lb, b) = listener().await;
    let mut h = Harness::start(&route_to(a), None, 8192, fast());
    let mut peer_a = accept(&la).await;
    h.expect(0, RouteState::Connected).await;

    // A keeps default and emergency, SMS goes to B.
    let cfg = UpstreamConfig {
        route: Some(hp(a)),
        sms_route: Some(hp(b)),
        ..UpstreamConfig::default()
    };
    let changes = h.up.reconfigure(&cfg, now_ms());
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[0].kinds,
        vec![RouteKind::Default, RouteKind::Emergency]
    );
    assert_eq!(changes[0].peer, Some(a));
    assert!(matches!(
        &changes[0].event,
        Event::Upstream { route, state: RouteState::Connected, .. } if route == "default+emergency"
    ));
    assert_eq!(changes[1].kinds, vec![RouteKind::Sms]);
    assert!(matches!(
        &changes[1].event,
        Event::Upstream {
            state: RouteState::Connecting,
            ..
        }
    ));
    let _peer_b = accept(&lb).await;
    let c = h.expect(1, RouteState::Connected).await;
    assert_eq!(c.peer, Some(b));
    assert_eq!(h.up.peer_for(RouteKind::Sms), Some(b));
    assert_eq!(h.up.peer_for(RouteKind::Default), Some(a));
    // A's connection was kept: no new connection there, the old one still works.
    assert!(timeout(Duration::from_millis(200), la.accept())
        .await
        .is_err());
    assert!(h.up.send(a, b"ping-a".to_vec()));
    assert_eq!(read_exact(&mut peer_a, 6).await, b"ping-a");

    // Everything to B: A's link is stopped and its connection closed.
    let changes = h.up.reconfigure(&route_to(b), now_ms());
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].link, 0);
    assert_eq!(changes[0].peer, Some(b));
    assert_eq!(changes[0].kinds.len(), 3);
    assert_eq!(read_to_end(&mut peer_a).await, b"");
    assert!(!h.up.send(a, b"gone".to_vec()));
    assert_eq!(h.up.entries().len(), 1);
    h.steady(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn dropping_the_upstream_closes_everything() {
    let (l, addr) = listener().await;
    let (li, iaddr) = listener().await;
    let cfg = UpstreamConfig {
        trust: vec!["127.0.0.1".parse().expect("ip")],
        ..route_to(addr)
    };
    let mut h = Harness::start(&cfg, Some(li), 8192, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    let mut client = TcpStream::connect(iaddr).await.expect("connect");
    h.until("the inbound connection", |h| !h.inbound_opened.is_empty())
        .await;
    drop(h);
    assert_eq!(read_to_end(&mut peer).await, b"");
    assert_eq!(read_to_end(&mut client).await, b"");
    // Nobody reconnects.
    assert!(timeout(Duration::from_millis(400), l.accept())
        .await
        .is_err());
}
