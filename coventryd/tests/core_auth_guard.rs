//! The auth guard through the real core with a simulated clock: password guessing
//! is cut off after a few checked digests and then waits (growing), a nonce that
//! got a wrong answer is dead, and the phone of an extension under attack keeps
//! registering and calling from where it is known.

mod common;

use common::{header, status, Lab, Sent, SWITCH};
use coventry_shared::event::Event;
use coventryd::sip::digest::answer_challenge;
use std::net::SocketAddr;

const CONF: &str = "[server]\nlisten = 127.0.0.1:5060\nrealm = test\n\
                    [21]\nsecret = pw21\n[35]\nsecret = pw35\n";

fn at(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// A REGISTER for `user` from `src` (Call-ID `cid`, CSeq `cseq`), with `auth` lines.
fn register(src: SocketAddr, user: &str, cid: &str, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{cid}x{cseq}\r\n\
         From: <sip:{user}@test>;tag={cid}\r\nTo: <sip:{user}@test>\r\nCall-ID: {cid}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{src}>\r\nUser-Agent: guesser\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

fn authorization(challenge: &str, user: &str, password: &str, nc: u32) -> String {
    let v = answer_challenge(
        challenge,
        "REGISTER",
        &format!("sip:{SWITCH}"),
        user,
        password,
        "c0ffee",
        nc,
    )
    .expect("answer");
    format!("Authorization: {v}\r\n")
}

struct Guessing {
    lab: Lab,
    n: u32,
}

impl Guessing {
    fn new(conf: &str) -> Guessing {
        Guessing {
            lab: Lab::with_config(conf),
            n: 0,
        }
    }

    fn send(&mut self, src: SocketAddr, msg: &str) -> Sent {
        self.lab.sw.on_datagram(self.lab.now, src, msg.as_bytes());
        self.lab.collect()
    }

    /// One REGISTER round (challenge, then answer with `password`) from `src`;
    /// the status of the last answer.
    fn attempt(&mut self, src: SocketAddr, user: &str, password: &str) -> (u16, Sent) {
        self.n += 1;
        let cid = format!("g{}", self.n);
        let first = self.send(src, &register(src, user, &cid, 1, ""));
        if status(&first[0].1) != 401 {
            return (status(&first[0].1), first);
        }
        let ch = header(&first[0].1, "WWW-Authenticate").expect("challenge");
        let auth = authorization(ch, user, password, 1);
        let sent = self.send(src, &register(src, user, &cid, 2, &auth));
        (status(&sent[0].1), sent)
    }

    fn counters(&self) -> (u64, u64, u64) {
        let c = self.lab.sw.counters();
        (c.digests_checked, c.auth_failures, c.auth_refused)
    }
}

#[test]
fn a_guessing_burst_is_cut_off_after_five_checked_digests() {
    let mut g = Guessing::new(CONF);
    let attacker = at("127.0.0.2:5062");
    let mut answers = Vec::new();
    for i in 0..200 {
        answers.push(g.attempt(attacker, "21", &format!("guess{i}")).0);
        g.lab.now += 5;
    }
    assert_eq!(answers[..5], [403; 5]);
    assert!(answers[5..].iter().all(|s| *s == 503), "{answers:?}");
    let (checked, failed, refused) = g.counters();
    assert_eq!((checked, failed, refused), (5, 5, 195));
    // The refusal says how long to wait and checks nothing, not even a challenge.
    let (st, sent) = g.attempt(attacker, "35", "pw35");
    assert_eq!(st, 503);
    assert_eq!(header(&sent[0].1, "Retry-After"), Some("10"));
    // The event ring is not flooded: ten lines (events) a minute per address.
    let events = g
        .lab
        .events
        .iter()
        .filter(|e| matches!(e, Event::AuthFailed { .. }))
        .count();
    assert_eq!(events, 10);
}

#[test]
fn the_wait_doubles_with_every_failure_after_it() {
    let mut g = Guessing::new(CONF);
    let attacker = at("127.0.0.2:5062");
    for _ in 0..5 {
        g.attempt(attacker, "21", "guess");
    }
    for expected in [10u64, 20, 40, 80, 160, 320, 600, 600] {
        let (st, sent) = g.attempt(attacker, "21", "guess");
        assert_eq!(st, 503);
        let retry: u64 = header(&sent[0].1, "Retry-After")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert_eq!(retry, expected);
        g.lab.now += retry * 1000;
        assert_eq!(g.attempt(attacker, "21", "guess").0, 403);
    }
    assert_eq!(g.counters().0, 5 + 8);
    // An hour and a half of quiet (wait and forgetting), then a fresh start.
    g.lab.now += 5_400_000;
    assert_eq!(g.attempt(attacker, "21", "guess").0, 403);
    assert_eq!(g.attempt(attacker, "21", "pw21").0, 200);
}

#[test]
fn a_phone_that_mistypes_twice_is_never_bothered() {
    let mut g = Guessing::new(CONF);
    let phone = at("127.0.0.1:6021");
    assert_eq!(g.attempt(phone, "21", "pw12").0, 403);
    assert_eq!(g.attempt(phone, "21", "pw2l").0, 403);
    assert_eq!(g.attempt(phone, "21", "pw21").0, 200);
    assert_eq!(g.counters().2, 0);
}

#[test]
fn the_phone_of_the_extension_under_attack_keeps_registering_and_calling() {
    let mut g = Guessing::new(CONF);
    g.lab.register("21", 6021);
    g.lab.register("35", 6035);
    let attacker = at("127.0.0.2:5062");
    for round in 0..30 {
        // A burst of guesses at 21...
        for _ in 0..20 {
            g.attempt(attacker, "21", "guess");
        }
        // ...and 21's phone refreshes, calls, hangs up.
        assert_eq!(
            g.attempt(at("127.0.0.1:6021"), "21", "pw21").0,
            200,
            "round {round}"
        );
        let sent = g.lab.invite("35", &format!("call{round}"));
        let ring = common::to(&sent, 6035);
        assert!(
            ring.len() == 1 && ring[0].starts_with("INVITE"),
            "round {round}: {sent:?}"
        );
        // 35 is busy: the call ends and 21 hears it.
        let ring = ring[0].to_string();
        let back = g
            .lab
            .feed(6035, &common::respond(&ring, 486, "b", 6035, ""));
        assert!(
            common::to(&back, 6021).iter().any(|m| status(m) == 486),
            "round {round}: {back:?}"
        );
        g.lab.now += 1000;
    }
    // Of 600 guesses in 30 s, six were checked: five at once, one after the
    // first wait of 10 s (the next wait is 20 s). The rest is the phones' own
    // registrations (2) and 30 rounds of REGISTER and INVITE.
    assert_eq!(g.counters().0 - 2 - 30 * 2, 6);
    assert_eq!(g.counters().2, 600 - 6);
}

#[test]
fn guesses_spread_over_many_addresses_slow_each_address_but_never_lock_the_line() {
    let mut g = Guessing::new(CONF);
    g.lab.register("21", 6021);
    let mut checked = 0;
    for i in 0..100u8 {
        let src = SocketAddr::from(([10, 1, 0, i], 5060));
        for _ in 0..8 {
            if g.attempt(src, "21", "guess").0 == 403 {
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 100 * 5, "source_failures = 5 per address");
    // Each of them now waits...
    assert_eq!(g.attempt(at("10.1.0.7:5060"), "21", "pw21").0, 503);
    // ...but 21 is not locked out: a second set at a new address, and 21's phone
    // where it registered, and the same phone rebooted onto a new port.
    assert_eq!(g.attempt(at("10.2.0.1:5060"), "21", "pw21").0, 200);
    assert_eq!(g.attempt(at("127.0.0.1:6021"), "21", "pw21").0, 200);
    assert_eq!(g.attempt(at("127.0.0.1:7021"), "21", "pw21").0, 200);
}

#[test]
fn one_device_behind_a_nat_does_not_lock_out_the_other_lines_there() {
    let mut g = Guessing::new(CONF);
    // 21 and 35 register from behind one NAT (127.0.0.3, ports of their own).
    let nat = |port: u16| SocketAddr::from(([127, 0, 0, 3], port));
    assert_eq!(g.attempt(nat(5060), "21", "pw21").0, 200);
    assert_eq!(g.attempt(nat(5062), "35", "pw35").0, 200);
    // A misconfigured device there fails for 40 until the address waits.
    let mut refused = 0;
    for _ in 0..10 {
        if g.attempt(nat(40000), "40", "wrong").0 == 503 {
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "the device waits after five failures");
    // The lines behind that NAT go on, even from new ports (a reboot).
    assert_eq!(g.attempt(nat(5060), "21", "pw21").0, 200);
    assert_eq!(g.attempt(nat(6000), "35", "pw35").0, 200);
    // A stranger there guessing 21 reaches 21's pair threshold and waits for 21,
    // while 21's phone at its own port never does.
    let mut checked = 0;
    for _ in 0..20 {
        if g.attempt(nat(40002), "21", "guess").0 == 403 {
            checked += 1;
        }
    }
    assert_eq!(checked, 10, "extension_failures = 10 for a known host");
    assert_eq!(g.attempt(nat(40002), "21", "pw21").0, 503);
    assert_eq!(g.attempt(nat(5060), "21", "pw21").0, 200);
}

#[test]
fn a_nonce_that_got_a_wrong_answer_is_dead() {
    let mut g = Guessing::new(CONF);
    let src = at("127.0.0.2:5062");
    let first = g.send(src, &register(src, "21", "dead", 1, ""));
    let ch = header(&first[0].1, "WWW-Authenticate")
        .expect("challenge")
        .to_string();
    let wrong = g.send(
        src,
        &register(src, "21", "dead", 2, &authorization(&ch, "21", "guess", 1)),
    );
    assert_eq!(status(&wrong[0].1), 403);
    assert_eq!(g.counters().0, 1);
    // The same nonce again, even with the right password: a fresh challenge (not
    // stale: nothing was right), no digest computed, and no registration.
    let again = g.send(
        src,
        &register(src, "21", "dead", 3, &authorization(&ch, "21", "pw21", 2)),
    );
    assert_eq!(status(&again[0].1), 401, "{again:?}");
    let fresh = header(&again[0].1, "WWW-Authenticate").expect("fresh");
    assert!(!fresh.contains("stale"), "{fresh}");
    assert_ne!(fresh, ch);
    assert_eq!(g.counters(), (1, 2, 0));
    assert!(g.lab.sw.registrar().contacts(21).is_empty());
    // The fresh nonce works.
    let fresh = fresh.to_string();
    let ok = g.send(
        src,
        &register(
            src,
            "21",
            "dead",
            4,
            &authorization(&fresh, "21", "pw21", 1),
        ),
    );
    assert_eq!(status(&ok[0].1), 200, "{ok:?}");
}

#[test]
fn unknown_users_are_answered_like_wrong_passwords() {
    let mut g = Guessing::new(CONF);
    let src = at("127.0.0.2:5062");
    for user in ["21", "24", "99", "admin"] {
        assert_eq!(g.attempt(src, user, "guess").0, 403, "{user}");
    }
    // Every one of them cost the same digest computation.
    assert_eq!(g.counters().0, 4);
    // And they count alike: the fifth failure makes the address wait.
    assert_eq!(g.attempt(src, "5000", "guess").0, 403);
    assert_eq!(g.attempt(src, "21", "pw21").0, 503);
}

#[test]
fn the_knobs_apply_and_reload() {
    let conf = format!("{CONF}[security]\nsource_failures = 2\nbackoff = 3\nmax_backoff = 5\n");
    let mut g = Guessing::new(&conf);
    let src = at("127.0.0.2:5062");
    assert_eq!(g.attempt(src, "21", "a").0, 403);
    assert_eq!(g.attempt(src, "21", "b").0, 403);
    let (st, sent) = g.attempt(src, "21", "c");
    assert_eq!((st, header(&sent[0].1, "Retry-After")), (503, Some("3")));
    // A reload with the defaults: five failures before waiting again.
    let config =
        coventryd::config::Config::parse(std::path::Path::new("t.conf"), CONF).expect("config");
    g.lab.sw.apply_config(config).expect("reload");
    g.lab.now += 3000;
    let other = at("127.0.0.3:5062");
    for _ in 0..4 {
        assert_eq!(g.attempt(other, "35", "x").0, 403);
    }
    assert_eq!(g.attempt(other, "35", "x").0, 403);
    assert_eq!(g.attempt(other, "35", "pw35").0, 503);
}

#[test]
fn an_expired_nonce_is_stale_and_the_fresh_one_works() {
    // `nonce_lifetime = 5`: the phone answers a challenge 6.5 s old.
    let conf = CONF.replace("realm = test\n", "realm = test\nnonce_lifetime = 5\n");
    let mut g = Guessing::new(&conf);
    let phone = at("127.0.0.1:6021");
    let first = g.send(phone, &register(phone, "21", "stale", 1, ""));
    assert_eq!(status(&first[0].1), 401);
    let ch = header(&first[0].1, "WWW-Authenticate").expect("challenge");
    let auth = authorization(ch, "21", "pw21", 1);
    g.lab.advance(4_900);
    // Still fresh just before its lifetime.
    let fresh = g.send(phone, &register(phone, "21", "stale", 2, &auth));
    assert_eq!(status(&fresh[0].1), 200, "{fresh:?}");
    let first = g.send(phone, &register(phone, "21", "stale", 3, ""));
    let ch = header(&first[0].1, "WWW-Authenticate").expect("challenge");
    let auth = authorization(ch, "21", "pw21", 1);
    g.lab.advance(6_500);
    let stale = g.send(phone, &register(phone, "21", "stale", 4, &auth));
    assert_eq!(status(&stale[0].1), 401, "{stale:?}");
    let ch = header(&stale[0].1, "WWW-Authenticate").expect("a new challenge");
    assert!(ch.contains("stale=true"), "{ch}");
    assert_eq!(g.counters().1, 0, "a stale nonce is no failed guess");
    // The fresh nonce works.
    let auth = authorization(ch, "21", "pw21", 1);
    let ok = g.send(phone, &register(phone, "21", "stale", 5, &auth));
    assert_eq!(status(&ok[0].1), 200, "{ok:?}");
}

#[test]
fn answers_spoofed_with_nonces_fetched_elsewhere_count_against_nobody() {
    // A blind attacker fetches nonces on its own address, then sends wrong
    // answers as if from the peer's (here: 21's phone's) address. The nonces are
    // not good there: each gets a fresh challenge, nothing is checked, and the
    // real phone is never made to wait.
    let mut g = Guessing::new(CONF);
    let (attacker, phone) = (at("127.0.0.2:5062"), at("127.0.0.1:6021"));
    for n in 0..20u32 {
        let cid = format!("spoof{n}");
        let first = g.send(attacker, &register(attacker, "21", &cid, 1, ""));
        let ch = header(&first[0].1, "WWW-Authenticate").expect("challenge");
        let auth = authorization(ch, "21", &format!("guess{n}"), 1);
        let sent = g.send(phone, &register(phone, "21", &cid, 2, &auth));
        assert_eq!(status(&sent[0].1), 401, "a fresh challenge: {sent:?}");
        g.lab.now += 5;
    }
    assert_eq!(
        g.counters(),
        (0, 0, 0),
        "nothing checked, failed or refused"
    );
    let (st, _) = g.attempt(phone, "21", "pw21");
    assert_eq!(st, 200, "the real phone registers");
}
