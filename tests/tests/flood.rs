//! Floods from one address, as a scanner or a broken phone sends them: the
//! switch's memory stays bounded in bytes whatever the requests carry (75 Vias
//! each), and a legitimate phone on another address registers, calls and texts
//! throughout, because every source gets its share of the switch's time.
#![allow(clippy::unwrap_used)]

use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{poll_until, Conf, Switch, T};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Datagrams a second a flood sends.
const RATE: u64 = 40_000;
/// The longest any flood runs, whatever happens to the test.
const FLOOD_CAP: Duration = Duration::from_secs(40);

/// A flood from 127.0.0.2 until stopped (or [`FLOOD_CAP`]); counts what it sent.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    /// Send the requests `make(n)` builds, `n` counting up, `rate` a second:
    /// more than the switch can handle, less than the loopback can carry (a LAN
    /// attacker's full rate; an unpaced loop on loopback outruns any reader).
    fn start(
        server: SocketAddr,
        rate: u64,
        make: impl Fn(u64, SocketAddr) -> Vec<u8> + Send + 'static,
    ) -> Flood {
        let sock = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let local = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let began = Instant::now();
            let mut n = 0u64;
            let mut junk = [0u8; 2048];
            sock.set_nonblocking(true).unwrap();
            while !s.load(Ordering::Relaxed) && began.elapsed() < FLOOD_CAP {
                // Pace in 1 ms steps.
                let due = (began.elapsed().as_micros() as u64) * rate / 1_000_000;
                if n >= due {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                if sock.send_to(&make(n, local), server).is_ok() {
                    n += 1;
                    c.store(n, Ordering::Relaxed);
                }
                // Read (and drop) the answers so our own buffer never blocks us.
                while sock.recv_from(&mut junk).is_ok() {}
            }
        });
        Flood {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request of a mixed flood: OPTIONS, a REGISTER for 21 with a wrong answer,
/// an INVITE to 22 without credentials; every one a new transaction.
fn mixed(n: u64, local: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let branch = format!("z9hG4bKflood{n}");
    let (method, uri, extra) = match n % 3 {
        0 => ("OPTIONS", format!("sip:{server}"), String::new()),
        1 => (
            "REGISTER",
            format!("sip:{server}"),
            format!(
                "Contact: <sip:21@{local}>\r\nAuthorization: Digest username=\"21\", \
                 realm=\"coventry\", nonce=\"x{n}\", uri=\"sip:{server}\", \
                 response=\"00000000000000000000000000000000\", algorithm=MD5\r\n"
            ),
        ),
        _ => (
            "INVITE",
            format!("sip:22@{server}"),
            format!("Contact: <sip:21@{local}>\r\n"),
        ),
    };
    let to = if method == "INVITE" { "22" } else { "21" };
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:21@{server}>;tag=f{n}\r\nTo: <sip:{to}@{server}>\r\n\
         Call-ID: flood-{n}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// An OPTIONS carrying 75 Vias, each about 90 bytes (7 KB in all): the switch
/// copies every Via into its answer and keeps that answer for retransmissions.
fn many_vias(n: u64, local: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let mut vias = format!("Via: SIP/2.0/UDP {local};branch=z9hG4bKbig{n};rport\r\n");
    for i in 0..74 {
        vias.push_str(&format!(
            "Via: SIP/2.0/UDP 192.0.2.{}:5060;branch=z9hG4bK{:0>40}\r\n",
            i + 1,
            format!("{n}x{i}")
        ));
    }
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\n{vias}Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:{server}>\r\nCall-ID: big-{n}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Resident memory of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_flood_from_one_address_leaves_a_phone_its_share() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let server = sw.addr();
    let mut b = Ua::ext(server, 22);
    b.register(300);
    let flood = Flood::start(server, RATE, move |n, local| mixed(n, local, server));
    // The flood is on before the phone starts.
    let on = Instant::now() + Duration::from_secs(5);
    while flood.sent() < 20_000 && Instant::now() < on {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = flood.sent();
    assert!(before >= 20_000, "the flood did not start: {before} sent");

    // Throughout the flood, 21 registers, calls 22 (answered, hung up) and texts it.
    let worked = Instant::now();
    let mut a = Ua::ext(server, 21);
    a.register(300);
    let mut call = a.call_start("22", &sdp("21", 1, "sendrecv"));
    let inv = b.expect_invite("the call under the flood", T);
    b.respond_sdp(&inv, 200, &sdp("22", 1, "sendrecv"));
    a.call_expect_final(&mut call, 200, T);
    a.ack(&mut call);
    b.expect_method("ACK", "ACK under the flood", T);
    assert_eq!(a.bye(call.dialog()).status(), 200, "BYE under the flood");
    b.expect_method("BYE", "BYE under the flood", T);
    let texted = a.message("22", "still here");
    assert!(texted == 200 || texted == 403, "{texted}");

    let took = worked.elapsed();
    let during = flood.sent() - before;
    drop(flood);
    // The flood kept at least half its pace while the phone worked.
    let pace = during as f64 / took.as_secs_f64().max(0.001);
    assert!(
        pace >= RATE as f64 / 2.0,
        "the flood ran thin while the phone worked ({during} in {took:?}): the test proved nothing"
    );
    let c = sw.snapshot().body.counters;
    assert!(c.shed > 0, "the flooder was never held to its share: {c:?}");
}

#[test]
fn memory_stays_bounded_under_answers_with_75_vias() {
    let mut sw = Switch::start(&Conf::new(&[21]).build());
    let server = sw.addr();
    let pid = sw.pid().unwrap();
    let start = rss_kib(pid);
    // 15,000 answers of 7 KB would keep 105 MB if the switch kept them all.
    let flood = Flood::start(server, 5_000, move |n, local| many_vias(n, local, server));
    let handled = poll_until(Duration::from_secs(40), || {
        let c = sw.snapshot().body.counters;
        (c.sip_out >= 15_000).then_some(c.sip_out)
    });
    drop(flood);
    let peak = rss_kib(pid);
    assert!(
        handled.is_some(),
        "the switch answered too little of the flood to prove anything: {:?}",
        sw.snapshot().body.counters
    );
    // Kept answers may take 8 MiB per source; allow the rest of the daemon 24 MiB.
    assert!(
        peak < start + 32 * 1024,
        "memory grew from {start} KiB to {peak} KiB answering {handled:?} requests"
    );
    // Still answering.
    let mut a = Ua::ext(server, 21);
    assert_eq!(a.options().and_then(|r| r.status()), Some(200));
    assert!(sw.is_running());
}
