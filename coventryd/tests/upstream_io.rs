//! The upstream adapter's TCP I/O against real sockets on loopback: fake peers are
//! plain tokio listeners and streams, ports are chosen by the kernel, and every wait
//! is bounded. Timings are shortened through `Upstream::start_with`.

use coventry_shared::event::{Event, RouteState};
use coventry_shared::stateblock::get_str;
use coventryd::config::{HostPort, RouteKind, UpstreamConfig};
use coventryd::shell::links::{
    Change, TcpEvent, Timings, Upstream, LINK_BACKLOG, PER_SOURCE, UNPROVEN_DEADLINE, WRITE_STALL,
};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

/// The longest any single expected thing may take: a bound that only stops a
/// hung test.
const WAIT: Duration = Duration::from_secs(15);

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
        unproven: UNPROVEN_DEADLINE,
        write_stall: WRITE_STALL,
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

/// `/proc/net/tcp`'s spelling of an IPv4 socket address (`0100007F:1F90`).
fn proc_net_addr(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("{:08X}:{:04X}", u32::from_ne_bytes(ip.octets()), a.port()),
        IpAddr::V6(_) => panic!("IPv4 only: {a}"),
    }
}

/// Wait (bounded, yielding to the runtime) until the switch's end of the
/// connection whose other end is `peer` has read everything sent to it: its
/// receive queue in `/proc/net/tcp` is empty.
async fn read_by_switch(peer: &TcpStream) {
    let ours = proc_net_addr(peer.peer_addr().expect("peer addr"));
    let theirs = proc_net_addr(peer.local_addr().expect("local addr"));
    let deadline = Instant::now() + WAIT;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let unread = table.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 4 && f[1] == ours && f[2] == theirs)
                .then(|| f[4].split(':').nth(1).map(|q| q.to_string()))
                .flatten()
        });
        if unread
            .as_deref()
            .is_some_and(|q| u64::from_str_radix(q, 16) == Ok(0))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the switch never read what was sent ({ours} <- {theirs}: {unread:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
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
            TcpEvent::Message { peer, msg, .. } => {
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

    /// Process the events already there; none may change a link's state.
    async fn steady_so_far(&mut self) {
        if let Some(c) = self.change_within(Duration::ZERO).await {
            panic!("unexpected change {c:?}");
        }
    }

    /// Process events until `f` holds (bounded); no link may change state
    /// meanwhile.
    async fn steady_until(&mut self, what: &str, f: impl Fn(&Harness) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !f(&*self) {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("channel open");
            if let Some(c) = self.handle(ev) {
                panic!("unexpected change while waiting for {what}: {c:?}");
            }
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

    // A message written in two pieces arrives once, whole: the second piece goes
    // once the switch has read the first.
    let text = options("one", "hello upstream");
    let (a, b) = text.as_bytes().split_at(40);
    peer.write_all(a).await.expect("write");
    peer.flush().await.expect("flush");
    read_by_switch(&peer).await;
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
    // Still retrying, still down: two more failures, no change of state.
    h.steady_until("two more failures", |h| h.up.entries()[0].failures >= 5)
        .await;
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
    // The rest of the 505 (no body): up to its blank line.
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n\r\n") {
        rest.extend(read_exact(&mut peer, 1).await);
    }
    peer.write_all(options("good", "after").as_bytes())
        .await
        .expect("write");
    assert_eq!(body_of(&h.message().await.1), b"after");
    // The link is still there: a ping after it is answered.
    peer.write_all(b"\r\n\r\n").await.expect("ping");
    assert_eq!(read_exact(&mut peer, 2).await, b"\r\n");
    h.steady_so_far().await;
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
    // Taken before the link exists: its timers cannot have started earlier, so
    // these lower bounds hold however slow the test is (only an early ping or
    // cut breaks them; the schedule itself is framing.rs' unit tests').
    let up_at = Instant::now();
    let mut h = Harness::start(&route_to(addr), None, 8192, t);
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    let ping = read_exact(&mut peer, 4).await;
    assert_eq!(ping, b"\r\n\r\n");
    assert!(up_at.elapsed() >= Duration::from_millis(300));
    // The peer never answers: no second ping, and the link is cut.
    let c = h.expect(0, RouteState::Reconnecting).await;
    assert!(detail(&c).contains("keep-alive"), "{c:?}");
    assert!(
        up_at.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        up_at.elapsed()
    );
    assert_eq!(read_to_end(&mut peer).await, b"");
    let _peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
}

#[tokio::test]
async fn keepalive_answered_keeps_the_link() {
    // A ping every 100 ms, each answered; unanswered, the link would be cut 1.5 s
    // after one. 17 answered pings span at least 1.6 s: past a pong deadline
    // whatever the machine's speed, so the answers are what keeps the link.
    const PINGS: u32 = 17;
    let (l, addr) = listener().await;
    let t = Timings {
        keepalive: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(1500),
        ..fast()
    };
    let mut h = Harness::start(&route_to(addr), None, 8192, t);
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    let answering = tokio::spawn(async move {
        let mut buf = [0u8; 4];
        for _ in 0..PINGS {
            match timeout(WAIT, peer.read_exact(&mut buf)).await {
                Ok(Ok(_)) => {
                    assert_eq!(&buf, b"\r\n\r\n");
                    peer.write_all(b"\r\n").await.expect("pong");
                }
                Ok(Err(e)) => panic!("read: {e}"),
                Err(_) => panic!("no ping within {WAIT:?}"),
            }
        }
        peer
    });
    // Events handled meanwhile (none may change the link), looking at the peer
    // every 20 ms (bounded).
    let deadline = Instant::now() + WAIT;
    while !answering.is_finished() {
        assert!(Instant::now() < deadline, "the pings never came");
        if let Some(c) = h.change_within(Duration::from_millis(20)).await {
            panic!("unexpected change while pings were answered: {c:?}");
        }
    }
    let _peer = answering.await.expect("peer task");
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
    // A pong is not answered.
    peer.write_all(b"\r\n").await.expect("pong");
    // A fence: a message after them is delivered, so the link has dealt with the
    // ping and the pong; then something the switch sends after that. Before it,
    // the peer may have got nothing more than the one pong already read.
    peer.write_all(options("fence", "").as_bytes())
        .await
        .expect("write");
    assert_eq!(h.message().await.0, addr);
    let marker = options("marker", "").into_bytes();
    assert!(h.up.send(addr, marker.clone()));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&marker) {
        let n = timeout(WAIT, peer.read(&mut buf))
            .await
            .expect("the marker in time")
            .expect("read");
        assert!(n > 0, "closed before the marker: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        &got[..got.len() - marker.len()],
        b"",
        "one pong to one ping, none to a pong"
    );
    h.steady_so_far().await;
}

#[tokio::test]
async fn a_burst_of_our_own_is_held_and_paced_and_nothing_is_dropped() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;

    // 20,000 BYE-sized messages at once, without yielding (a mass hang-up):
    // far more than the socket takes; every one is held.
    let msg = options("burst", &"x".repeat(300)).into_bytes();
    let n = 20_000;
    for i in 0..n {
        assert!(h.up.send(addr, msg.clone()), "message {i} refused");
    }
    assert_eq!(h.up.dropped(), 0);
    // The peer takes it all as it reads; the link stays.
    let total = msg.len() * n;
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + WAIT;
    while got < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let k = timeout(left, peer.read(&mut buf))
            .await
            .expect("bytes arrive in time")
            .expect("read");
        assert!(k > 0, "closed after {got} of {total} bytes");
        got += k;
    }
    assert_eq!(got, total);
    h.steady_so_far().await;
    assert_eq!(h.up.entries()[0].sent, n as u64);
    assert_eq!(h.up.dropped(), 0);
}

#[tokio::test]
async fn beyond_the_backlog_messages_are_dropped_and_counted_and_the_link_stays() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&route_to(addr), None, 8192, fast());
    let mut peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    let big = vec![b'x'; 1 << 20];
    let accepted = (0..40).filter(|_| h.up.send(addr, big.clone())).count();
    assert_eq!(accepted, LINK_BACKLOG >> 20);
    assert_eq!(h.up.dropped(), 40 - accepted as u64);
    // What was held reaches the peer; the link stays.
    let got = read_exact(&mut peer, accepted << 20).await;
    assert!(got.iter().all(|b| *b == b'x'));
    h.steady_so_far().await;
    assert!(h.up.send(addr, b"after".to_vec()));
    assert_eq!(read_exact(&mut peer, 5).await, b"after");
}

#[tokio::test]
async fn a_peer_that_takes_nothing_is_cut_off_after_the_write_stall() {
    let (l, addr) = listener().await;
    let t = Timings {
        write_stall: Duration::from_millis(300),
        ..fast()
    };
    let mut h = Harness::start(&route_to(addr), None, 8192, t);
    let peer = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
    // 24 MB: more than the kernel's buffers take, less than the backlog; the
    // peer reads none of it.
    let msg = options("q", &"x".repeat(1000)).into_bytes();
    for _ in 0..24_000 {
        assert!(h.up.send(addr, msg.clone()));
    }
    let c = h.expect(0, RouteState::Reconnecting).await;
    assert!(
        detail(&c).starts_with("peer not reading: nothing taken for 0.3 s"),
        "{c:?}"
    );
    drop(peer);
    let _again = accept(&l).await;
    h.expect(0, RouteState::Connected).await;
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

fn trust_loopback() -> UpstreamConfig {
    UpstreamConfig {
        trust: vec!["127.0.0.1".parse().expect("ip")],
        ..UpstreamConfig::default()
    }
}

#[tokio::test]
async fn an_inbound_connection_not_proven_in_time_is_closed_and_a_proven_one_stays() {
    let (l, addr) = listener().await;
    let t = Timings {
        unproven: Duration::from_millis(300),
        ..fast()
    };
    let mut h = Harness::start(&trust_loopback(), Some(l), 8192, t);
    let mut a = TcpStream::connect(addr).await.expect("connect");
    a.write_all(options("a", "").as_bytes())
        .await
        .expect("write");
    let (from_a, _) = h.message().await;
    h.up.prove(from_a);
    let mut b = TcpStream::connect(addr).await.expect("connect");
    b.write_all(options("b", "").as_bytes())
        .await
        .expect("write");
    let (from_b, _) = h.message().await;
    // An OPTIONS proves nothing: b is closed at its deadline...
    assert_eq!(read_to_end(&mut b).await, b"");
    h.until("b's close", |h| {
        h.inbound_closed.iter().any(|(p, _)| *p == from_b)
    })
    .await;
    assert_eq!(h.inbound_closed.len(), 1, "{:?}", h.inbound_closed);
    assert!(
        h.inbound_closed[0]
            .1
            .starts_with("not proven to be the upstream peer within"),
        "{:?}",
        h.inbound_closed
    );
    // ... while a, older and proven, stays past it.
    a.write_all(b"\r\n\r\n").await.expect("ping");
    assert_eq!(read_exact(&mut a, 2).await, b"\r\n");
    assert!(h.up.send(from_a, b"still here".to_vec()));
    assert_eq!(read_exact(&mut a, 10).await, b"still here");
}

#[tokio::test]
async fn strangers_from_one_address_beyond_their_share_evict_their_own_oldest() {
    let (l, addr) = listener().await;
    let mut h = Harness::start(&trust_loopback(), Some(l), 8192, fast());
    let mut conns = Vec::new();
    let mut froms = Vec::new();
    for i in 0..PER_SOURCE {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(options(&format!("s{i}"), "").as_bytes())
            .await
            .expect("write");
        froms.push(h.message().await.0);
        conns.push(c);
    }
    // One proven connection from the same address does not count against it.
    h.up.prove(froms[1]);
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    extra
        .write_all(options("extra", "").as_bytes())
        .await
        .expect("write");
    let _ = h.message().await;
    // PER_SOURCE - 1 strangers: room for the newcomer, nobody evicted.
    let mut last = TcpStream::connect(addr).await.expect("connect");
    last.write_all(options("last", "").as_bytes())
        .await
        .expect("write");
    let _ = h.message().await;
    // Now PER_SOURCE strangers were there: the oldest, froms[0], gave way.
    assert_eq!(read_to_end(&mut conns[0]).await, b"");
    h.until("the eviction", |h| !h.inbound_closed.is_empty())
        .await;
    assert_eq!(h.inbound_closed[0].0, froms[0]);
    assert!(
        h.inbound_closed[0].1.starts_with("evicted"),
        "{:?}",
        h.inbound_closed
    );
    // The proven one still answers.
    conns[1].write_all(b"\r\n\r\n").await.expect("ping");
    assert_eq!(read_exact(&mut conns[1], 2).await, b"\r\n");
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
    // A's connection was kept: the old one still works, A's link connected once
    // and no other connection to A waits in its listener's backlog.
    assert!(h.up.send(a, b"ping-a".to_vec()));
    assert_eq!(read_exact(&mut peer_a, 6).await, b"ping-a");
    let e = h.up.entries();
    assert_eq!(e.len(), 2);
    assert_eq!(
        e.iter()
            .filter(|e| get_str(&e.addr) == a.to_string())
            .map(|e| e.connects)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert!(timeout(Duration::ZERO, la.accept()).await.is_err());

    // Everything to B: A's link is stopped and its connection closed.
    let changes = h.up.reconfigure(&route_to(b), now_ms());
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].link, 0);
    assert_eq!(changes[0].peer, Some(b));
    assert_eq!(changes[0].kinds.len(), 3);
    assert_eq!(read_to_end(&mut peer_a).await, b"");
    assert!(!h.up.send(a, b"gone".to_vec()));
    assert_eq!(h.up.entries().len(), 1);
    h.steady_so_far().await;
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
    let Harness { up, mut rx, .. } = h;
    drop(up);
    assert_eq!(read_to_end(&mut peer).await, b"");
    assert_eq!(read_to_end(&mut client).await, b"");
    // Nobody reconnects: every task that could is gone (the event channel's
    // senders are all dropped), and none connected before it went (nothing
    // waits in the listener's backlog).
    let ended = timeout(WAIT, async { while rx.recv().await.is_some() {} }).await;
    assert!(ended.is_ok(), "a task of the upstream outlived it");
    assert!(timeout(Duration::ZERO, l.accept()).await.is_err());
}
