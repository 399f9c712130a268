//! Hot paths of coventryd, measured with criterion (a benchmark, never a test).
//!
//!     cargo bench -p coventryd --bench hot_paths
//!     python3 bench/lib/criterion_ratios.py      # ratios to the baselines below
//!
//! Machines are noisy: read the figures as ratios to a baseline measured in the
//! same run. The baselines are `parse/register_auth` (framing + rsip parse of the
//! REGISTER that sipp sends) and `parse/message_auth`.
//!
//! - `parse/*`: `sip::framing::parse_datagram` on the exact REGISTER and MESSAGE
//!   (with credentials) that the bench rig's sipp scenarios send; for the
//!   REGISTER also its stages apart: `_normalise` (the rewrite into rsip's
//!   dialect), `_rsip` (rsip's parse of that) and `_fields` (`Fields::of`, the
//!   header fields the core reads, parsed again from rsip's headers).
//! - `digest/*`: `DigestAuthority::verify` of a fresh response (MD5, SHA-256, both
//!   `qop=auth`) to a nonce issued just before - the sipp pattern, one use per
//!   nonce, so the replay map works as under load; `digest/challenge` issues a nonce.
//! - `core/*`: the whole switch core, `Switch::on_datagram` plus draining
//!   `take_out()`, on a 3-digit plan of 600 lines (users 100..699, secret pwN,
//!   MD5) - what the rig's load drives:
//!   - `register_refresh`: one authenticated REGISTER re-using its nonce (nc+1,
//!     CSeq+1, same Call-ID) -> 200: the cheapest authenticated REGISTER;
//!   - `register_challenge_auth`: the sipp pattern, REGISTER -> 401, REGISTER with
//!     credentials -> 200 (two datagrams in);
//!   - `message_challenge_auth_deliver`: MESSAGE -> 407, MESSAGE with credentials
//!     -> MESSAGE relayed to the target's contact, its 200 -> 200 to the sender
//!     (three datagrams in, three out).
//!
//!   Only the switch's work is timed (`iter_custom`): building the client's
//!   requests and answers is not. A virtual clock advances 1 ms per 4 operations
//!   (4,000/s) and `on_tick` runs every 100 virtual ms, timed, so transactions,
//!   nonces and bindings expire as in the daemon at that rate.

use coventryd::config::Config;
use coventryd::sip::digest::{answer_challenge, Algorithm, Credentials, DigestAuthority, Verdict};
use coventryd::sip::framing::{parse_datagram, stages};
use coventryd::sip::headers::Fields;
use coventryd::switch::registrar::Registrar;
use coventryd::switch::Switch;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SWITCH: &str = "127.0.0.1:5160";
const MAX_MESSAGE: usize = 8192;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The rig's contract as a 3-digit plan: users 100..699, secret pwN.
fn config(nonce_lifetime: u32) -> Config {
    let mut text = format!(
        "[server]\nlisten = {SWITCH}\ndigits = 3\nrealm = bench\n\
         nonce_lifetime = {nonce_lifetime}\n\n"
    );
    for n in 100..700 {
        let _ = write!(text, "[{n}]\nsecret = pw{n}\n\n");
    }
    Config::parse(Path::new("bench.conf"), &text).expect("bench config")
}

/// A REGISTER as the rig's register.xml sends it (sipp 3.6).
fn register_text(user: u16, n: u64, cseq: u32, call_id: &str, auth: Option<&str>) -> String {
    let mut s = format!(
        "REGISTER sip:{SWITCH} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5093;branch=z9hG4bK-4242-{n}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{SWITCH}>;tag=4242R{n}\r\n\
         To: <sip:{user}@{SWITCH}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@127.0.0.1:5099>\r\n"
    );
    if let Some(a) = auth {
        let _ = write!(s, "Authorization: {a}\r\n");
    }
    s.push_str("Expires: 3600\r\nUser-Agent: bench-sipp\r\nContent-Length: 0\r\n\r\n");
    s
}

/// A MESSAGE as the rig's uac_message.xml sends it.
fn message_text(from: u16, to: u16, n: u64, cseq: u32, auth: Option<&str>) -> String {
    let body = format!("bench message {n} from {from} to {to}\r\n");
    let mut s = format!(
        "MESSAGE sip:{to}@{SWITCH} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5092;branch=z9hG4bK-4243-{n}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from}@{SWITCH}>;tag=4243M{n}\r\n\
         To: <sip:{to}@{SWITCH}>\r\n\
         Call-ID: {n}-4243@127.0.0.1\r\n\
         CSeq: {cseq} MESSAGE\r\n"
    );
    if let Some(a) = auth {
        let _ = write!(s, "Proxy-Authorization: {a}\r\n");
    }
    let _ = write!(
        s,
        "User-Agent: bench-sipp\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s
}

/// sipp's answer to a challenge: digest `uri` is the switch's own address.
fn credentials(challenge: &str, method: &str, user: u16, nc: u32) -> String {
    answer_challenge(
        challenge,
        method,
        &format!("sip:{SWITCH}"),
        &user.to_string(),
        &format!("pw{user}"),
        "6b8b4567",
        nc,
    )
    .expect("answerable challenge")
}

/// The value of the first `name:` header of a SIP text.
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn status(bytes: &[u8]) -> u16 {
    bytes
        .get(8..11)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The switch plus a virtual clock (1 ms per 4 operations, tick every 100 ms).
struct Core {
    sw: Switch,
    now: u64,
    ops: u64,
    next_tick: u64,
}

impl Core {
    fn new(nonce_lifetime: u32) -> Core {
        let now = epoch_ms();
        Core {
            sw: Switch::new(config(nonce_lifetime), addr(SWITCH), Registrar::new()),
            now,
            ops: 0,
            next_tick: now + 100,
        }
    }

    /// One datagram in; what the switch sends out.
    fn input(&mut self, src: SocketAddr, bytes: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.sw.on_datagram(self.now, src, bytes);
        self.sw
            .take_out()
            .sends
            .into_iter()
            .map(|(d, b)| (d.addr(), b))
            .collect()
    }

    /// Advance the virtual clock by one operation, ticking when due.
    fn step(&mut self) {
        self.ops += 1;
        if self.ops & 3 == 0 {
            self.now += 1;
        }
        if self.now >= self.next_tick {
            self.sw.on_tick(self.now);
            black_box(self.sw.take_out());
            self.next_tick += 100;
        }
    }

    /// Register `user`'s contact with the sipp pattern (untimed set-up); returns
    /// the nonce's challenge for later re-use.
    fn register(&mut self, user: u16, contact_port: u16, call_id: &str) -> String {
        let src = addr("127.0.0.1:5093");
        let first = register_text(user, u64::from(user), 1, call_id, None);
        let out = self.input(src, first.as_bytes());
        let resp = String::from_utf8_lossy(&out[0].1).into_owned();
        assert_eq!(status(&out[0].1), 401, "{resp}");
        let challenge = header(&resp, "WWW-Authenticate")
            .expect("challenge")
            .to_string();
        let auth = credentials(&challenge, "REGISTER", user, 1);
        let second = register_text(user, u64::from(user), 2, call_id, Some(&auth))
            .replace("127.0.0.1:5099", &format!("127.0.0.1:{contact_port}"));
        let out = self.input(src, second.as_bytes());
        assert_eq!(
            status(&out[0].1),
            200,
            "{}",
            String::from_utf8_lossy(&out[0].1)
        );
        challenge
    }
}

fn bench_parse(c: &mut Criterion) {
    let mut core = Core::new(300);
    let reg = register_text(300, 1, 1, "1-4242@127.0.0.1", None);
    let out = core.input(addr("127.0.0.1:5093"), reg.as_bytes());
    let challenge = header(&String::from_utf8_lossy(&out[0].1), "WWW-Authenticate")
        .expect("challenge")
        .to_string();
    let reg_auth = register_text(
        300,
        1,
        2,
        "1-4242@127.0.0.1",
        Some(&credentials(&challenge, "REGISTER", 300, 1)),
    );
    let msg_auth = message_text(
        100,
        210,
        1,
        2,
        Some(&credentials(&challenge, "MESSAGE", 100, 1)),
    );

    let mut g = c.benchmark_group("parse");
    g.bench_function("register_auth", |b| {
        b.iter(|| parse_datagram(black_box(reg_auth.as_bytes()), MAX_MESSAGE).expect("parses"))
    });
    g.bench_function("message_auth", |b| {
        b.iter(|| parse_datagram(black_box(msg_auth.as_bytes()), MAX_MESSAGE).expect("parses"))
    });
    // The stages of one parse apart: the rewrite into rsip's dialect, rsip's
    // parse of it, and the header fields the core reads (`Fields::of`).
    let canon = stages::normalise(reg_auth.as_bytes()).expect("normalises");
    g.bench_function("register_auth_normalise", |b| {
        b.iter(|| stages::normalise(black_box(reg_auth.as_bytes())).expect("normalises"))
    });
    g.bench_function("register_auth_rsip", |b| {
        b.iter(|| stages::rsip(black_box(&canon)).expect("parses"))
    });
    let Some(rsip::SipMessage::Request(req)) = stages::rsip(&canon) else {
        panic!("a request");
    };
    g.bench_function("register_auth_fields", |b| {
        b.iter(|| Fields::of(black_box(&req.headers)).vias.len())
    });
    g.finish();
}

fn bench_digest(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    let start = SystemTime::now();
    for (name, alg) in [
        ("verify_md5", Algorithm::Md5),
        ("verify_sha256", Algorithm::Sha256),
    ] {
        let auth = RefCell::new(DigestAuthority::new(
            "bench".into(),
            vec![alg],
            Duration::from_secs(300),
        ));
        let uri = format!("sip:{SWITCH}");
        let counter = RefCell::new(0u64);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // A fresh nonce answered once, as sipp does (set-up, not timed).
                    // The clock moves 1 ms per nonce (1,000 used nonces per second,
                    // as under load; the replay map evicts by issue second).
                    let mut n = counter.borrow_mut();
                    *n += 1;
                    let now = start + Duration::from_millis(*n);
                    let challenge = auth.borrow_mut().challenges(now, false).remove(0);
                    let user = 100 + (*n % 600) as u16;
                    let value = answer_challenge(
                        &challenge,
                        "REGISTER",
                        &uri,
                        &user.to_string(),
                        &format!("pw{user}"),
                        "6b8b4567",
                        1,
                    )
                    .expect("answer");
                    (value, format!("pw{user}"), now)
                },
                |(value, password, now)| {
                    let v = auth
                        .borrow_mut()
                        .verify(now, "REGISTER", &uri, &value, |_| {
                            Some(Credentials::from_password(password))
                        });
                    assert!(matches!(v, Verdict::Ok { .. }), "{v:?}");
                    v
                },
                BatchSize::SmallInput,
            )
        });
    }
    let mut issuer = DigestAuthority::new(
        "bench".into(),
        vec![Algorithm::Md5],
        Duration::from_secs(300),
    );
    g.bench_function("challenge", |b| {
        b.iter(|| issuer.challenges(black_box(start), false))
    });
    g.finish();
}

fn bench_core(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    let src = addr("127.0.0.1:5093");

    // One authenticated REGISTER re-using its nonce: 400 phones (300..699), each
    // with its own Call-ID, CSeq and nonce count. Nonces live for a day here so
    // the virtual clock never makes them stale.
    {
        struct Phone {
            user: u16,
            call_id: String,
            cseq: u32,
            nc: u32,
            challenge: String,
        }
        let mut core = Core::new(86_400);
        let mut phones: Vec<Phone> = (300..700)
            .map(|user| {
                let call_id = format!("{user}-refresh@127.0.0.1");
                let challenge = core.register(user, 5099, &call_id);
                Phone {
                    user,
                    call_id,
                    cseq: 2,
                    nc: 1,
                    challenge,
                }
            })
            .collect();
        let mut i = 0usize;
        g.bench_function("register_refresh", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let p = &mut phones[i % 400];
                    i += 1;
                    p.cseq += 1;
                    p.nc += 1;
                    let auth = credentials(&p.challenge, "REGISTER", p.user, p.nc);
                    let req = register_text(p.user, i as u64, p.cseq, &p.call_id, Some(&auth));
                    let t = Instant::now();
                    let out = core.input(src, req.as_bytes());
                    core.step();
                    spent += t.elapsed();
                    assert_eq!(
                        status(&out[0].1),
                        200,
                        "{}",
                        String::from_utf8_lossy(&out[0].1)
                    );
                }
                spent
            })
        });
    }

    // The sipp pattern: REGISTER -> 401 -> REGISTER with credentials -> 200.
    {
        let mut core = Core::new(300);
        let mut n = 0u64;
        g.bench_function("register_challenge_auth", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let user = 300 + (n % 400) as u16;
                    let call_id = format!("{n}-4242@127.0.0.1");
                    let first = register_text(user, n, 1, &call_id, None);
                    let t = Instant::now();
                    let out = core.input(src, first.as_bytes());
                    spent += t.elapsed();
                    let resp = std::str::from_utf8(&out[0].1).expect("utf8");
                    let challenge = header(resp, "WWW-Authenticate").expect("401 challenge");
                    let auth = credentials(challenge, "REGISTER", user, 1);
                    let second = register_text(user, n, 2, &call_id, Some(&auth));
                    let t = Instant::now();
                    let out = core.input(src, second.as_bytes());
                    core.step();
                    spent += t.elapsed();
                    assert_eq!(
                        status(&out[0].1),
                        200,
                        "{}",
                        String::from_utf8_lossy(&out[0].1)
                    );
                }
                spent
            })
        });
    }

    // MESSAGE -> 407 -> MESSAGE with credentials -> relayed to 210's contact -> its
    // 200 -> 200 to the sender (the rig's msgs phase: senders 100..199, targets 210..219).
    {
        let mut core = Core::new(300);
        for user in 210..220 {
            core.register(user, 5082, &format!("{user}-uas@127.0.0.1"));
        }
        let uas = addr("127.0.0.1:5082");
        let sender = addr("127.0.0.1:5092");
        let mut n = 0u64;
        g.bench_function("message_challenge_auth_deliver", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let from = 100 + (n % 100) as u16;
                    let to = 210 + (n % 10) as u16;
                    let first = message_text(from, to, n, 1, None);
                    let t = Instant::now();
                    let out = core.input(sender, first.as_bytes());
                    spent += t.elapsed();
                    let resp = std::str::from_utf8(&out[0].1).expect("utf8");
                    let challenge = header(resp, "Proxy-Authenticate").expect("407 challenge");
                    let auth = credentials(challenge, "MESSAGE", from, 1);
                    let second = message_text(from, to, n, 2, Some(&auth));
                    let t = Instant::now();
                    let out = core.input(sender, second.as_bytes());
                    spent += t.elapsed();
                    assert_eq!(out[0].0, uas, "{}", String::from_utf8_lossy(&out[0].1));
                    // The UAS's 200 (built as uas_message.xml does, not timed).
                    let relayed = std::str::from_utf8(&out[0].1).expect("utf8");
                    let ok = format!(
                        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=4244N{n}\r\n\
                         Call-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                        header(relayed, "Via").expect("Via"),
                        header(relayed, "From").expect("From"),
                        header(relayed, "To").expect("To"),
                        header(relayed, "Call-ID").expect("Call-ID"),
                        header(relayed, "CSeq").expect("CSeq"),
                    );
                    let t = Instant::now();
                    let out = core.input(uas, ok.as_bytes());
                    core.step();
                    spent += t.elapsed();
                    assert_eq!(
                        status(&out[0].1),
                        200,
                        "{}",
                        String::from_utf8_lossy(&out[0].1)
                    );
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4));
    targets = bench_parse, bench_digest, bench_core
}
criterion_main!(hot_paths);
