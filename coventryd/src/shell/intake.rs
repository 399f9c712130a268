//! Fair intake of datagrams: the shell's reader drains the socket faster than
//! the switch handles requests, queues what it read per source address and hands
//! the switch one datagram per waiting source in turn (a source is an IPv4
//! address or an IPv6 /64, as the auth guard counts them). Before anything is queued
//! (and so before any parsing) each source address spends a token of its own
//! bucket (`[security] source_rate` a second, as Kamailio's pike does), and a
//! source the auth guard has told to wait gets only a trickle ([`HELD_RATE`]),
//! except from the address:ports known for a user there. A source that floods
//! fills only its own queue; when the intake is full, the source holding the most
//! waits its turn by losing datagrams. Everything dropped unread is counted as
//! shed, so a phone on another address is served within one round however hard
//! one address sends.
//!
//! Pure state: the shell feeds it and drains it; nothing here does I/O, and the
//! time is passed in.

use crate::switch::guard::{Held, SourceKey};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Most datagrams waiting in all queues together.
pub const MAX_QUEUED: usize = 4096;
/// Most bytes waiting in all queues together.
pub const MAX_QUEUED_BYTES: usize = 8 << 20;
/// Buffers kept for reuse, and the largest one kept.
const POOL: usize = 512;
const POOL_BUFFER_MAX: usize = 16 << 10;
/// Queues kept, empty ones included, before the empty ones are dropped.
const IDLE_QUEUES: usize = 256;
/// Sources looked at to find the heaviest when it is not known.
const SAMPLE: usize = 32;
/// Datagrams a second a source the auth guard holds back may still send (its
/// retries get their `503` and `Retry-After`; a flood is dropped unparsed).
pub const HELD_RATE: u32 = 100;
/// Most sources with a bucket; idle ones (full buckets) make room first.
const MAX_BUCKETS: usize = 4096;
/// One datagram's cost in a bucket, in thousandths of a token.
const TOKEN: u64 = 1000;

/// A source's token bucket: `rate` tokens a second, at most one second's worth
/// kept, one token per datagram.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a token.
    milli: u64,
    last_ms: u64,
}

impl Bucket {
    fn full(rate: u32, now_ms: u64) -> Bucket {
        Bucket {
            milli: u64::from(rate) * TOKEN,
            last_ms: now_ms,
        }
    }

    /// Refill for the time passed and spend one token; false when none is left.
    fn take(&mut self, rate: u32, now_ms: u64) -> bool {
        let cap = u64::from(rate) * TOKEN;
        let passed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli = (self.milli + passed * u64::from(rate)).min(cap);
        if self.milli >= TOKEN {
            self.milli -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full again at `now_ms` (nothing to remember).
    fn idle(&self, rate: u32, now_ms: u64) -> bool {
        self.milli + now_ms.saturating_sub(self.last_ms) * u64::from(rate)
            >= u64::from(rate) * TOKEN
    }
}

/// What became of a datagram offered to the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queued for the switch.
    Queued,
    /// Dropped: its source had spent its tokens (or is held back).
    Limited,
    /// Dropped: the intake is full and its source holds the most.
    Shed,
}

/// One datagram as read from the socket.
#[derive(Debug)]
pub struct Datagram {
    /// Where it came from.
    pub src: SocketAddr,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Per-source queues served in turn.
#[derive(Debug, Default)]
pub struct Intake {
    /// Datagrams a second per source address (0: no limit).
    rate: u32,
    buckets: HashMap<SourceKey, Bucket>,
    /// Sources held back by the auth guard (until when, their known ports) and
    /// the bucket of their trickle.
    held: HashMap<SourceKey, (Held, Bucket)>,
    limited: u64,
    queues: HashMap<SourceKey, VecDeque<Datagram>>,
    /// Sources with something waiting, in serving order (each once).
    turn: VecDeque<SourceKey>,
    /// The source believed to hold the most (checked before use).
    heaviest: Option<SourceKey>,
    queued: usize,
    bytes: usize,
    shed: u64,
    pool: Vec<Vec<u8>>,
}

impl Intake {
    /// An intake allowing each source address `rate` datagrams a second (0: no
    /// limit but the fair share of the queues).
    pub fn new(rate: u32) -> Intake {
        Intake {
            rate,
            ..Intake::default()
        }
    }

    /// Change the rate (reload); buckets start over.
    pub fn set_rate(&mut self, rate: u32) {
        if rate != self.rate {
            self.rate = rate;
            self.buckets.clear();
        }
    }

    /// The sources the auth guard holds back now (replacing the last list).
    pub fn set_held(&mut self, now_ms: u64, held: Vec<Held>) {
        let mut old = std::mem::take(&mut self.held);
        self.held = held
            .into_iter()
            .map(|h| {
                let bucket = old
                    .remove(&h.source)
                    .map_or_else(|| Bucket::full(HELD_RATE, now_ms), |(_, b)| b);
                (h.source, (h, bucket))
            })
            .collect();
    }

    /// Offer a datagram read from `src` at `now_ms`: queued, or dropped unread
    /// because its source spent its share (counted in [`Intake::shed`]).
    pub fn offer(&mut self, now_ms: u64, src: SocketAddr, bytes: &[u8]) -> Admit {
        if !self.admit(now_ms, src) {
            self.limited += 1;
            return Admit::Limited;
        }
        if self.push(src, bytes) {
            Admit::Queued
        } else {
            Admit::Shed
        }
    }

    /// Spend a token of `src`'s bucket (the held-back rate for a held source).
    fn admit(&mut self, now_ms: u64, src: SocketAddr) -> bool {
        let ip = SourceKey::of(src.ip());
        if let Some((h, bucket)) = self.held.get_mut(&ip) {
            if h.until_ms > now_ms && !h.known.contains(&src) {
                return bucket.take(HELD_RATE, now_ms);
            }
        }
        let rate = self.rate;
        if rate == 0 {
            return true;
        }
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_BUCKETS {
            self.buckets.retain(|_, b| !b.idle(rate, now_ms));
            if self.buckets.len() >= MAX_BUCKETS {
                // Thousands of sources all sending hard: the queues' fair share
                // still bounds each of them.
                return true;
            }
        }
        self.buckets
            .entry(ip)
            .or_insert_with(|| Bucket::full(rate, now_ms))
            .take(rate, now_ms)
    }

    /// Queue a datagram read from `src`, whatever its bucket holds. Returns false
    /// when it was shed: the intake is full and `src` already holds at least as
    /// much as any other.
    pub fn push(&mut self, src: SocketAddr, bytes: &[u8]) -> bool {
        let ip = SourceKey::of(src.ip());
        while self.queued >= MAX_QUEUED || self.bytes + bytes.len() > MAX_QUEUED_BYTES {
            let own = self.queues.get(&ip).map_or(0, VecDeque::len);
            let victim = self
                .heaviest()
                .filter(|(h, len)| *h != ip && *len > own)
                .map(|(h, _)| h);
            match victim {
                // Another source holds more: its oldest datagram makes room.
                Some(h) => self.drop_oldest(h),
                None => {
                    self.shed += 1;
                    return false;
                }
            }
        }
        let mut data = self.pool.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(bytes);
        self.bytes += data.len();
        self.queued += 1;
        let q = self.queues.entry(ip).or_default();
        if q.is_empty() {
            self.turn.push_back(ip);
        }
        q.push_back(Datagram { src, data });
        let len = q.len();
        let heavier = match self.heaviest {
            Some(h) if h != ip => self.queues.get(&h).map_or(0, VecDeque::len) < len,
            _ => true,
        };
        if heavier {
            self.heaviest = Some(ip);
        }
        true
    }

    /// The source holding the most, as far as known: the remembered one, else
    /// the longest of the next [`SAMPLE`] sources in turn (bounded work even when
    /// thousands of addresses each hold one datagram).
    fn heaviest(&mut self) -> Option<(SourceKey, usize)> {
        let len = |q: &HashMap<SourceKey, VecDeque<Datagram>>, ip: &SourceKey| {
            q.get(ip).map_or(0, VecDeque::len)
        };
        if let Some(h) = self.heaviest {
            return Some((h, len(&self.queues, &h)));
        }
        let best = self
            .turn
            .iter()
            .take(SAMPLE)
            .map(|ip| (*ip, len(&self.queues, ip)))
            .max_by_key(|(_, n)| *n)?;
        self.heaviest = Some(best.0);
        Some(best)
    }

    fn drop_oldest(&mut self, ip: SourceKey) {
        if let Some(d) = self.queues.get_mut(&ip).and_then(VecDeque::pop_front) {
            self.shed += 1;
            self.forget(&d);
            self.recycle(d.data);
        }
        if self.queues.get(&ip).is_some_and(VecDeque::is_empty) {
            self.turn.retain(|t| *t != ip);
            self.heaviest = None;
        }
    }

    fn forget(&mut self, d: &Datagram) {
        self.queued -= 1;
        self.bytes -= d.data.len();
    }

    /// The next datagram to handle: the oldest of the source whose turn it is.
    pub fn pop(&mut self) -> Option<Datagram> {
        let ip = self.turn.pop_front()?;
        let q = self.queues.get_mut(&ip)?;
        let d = q.pop_front()?;
        if q.is_empty() {
            // The empty queue stays for the source's next datagram (no new
            // allocation per datagram); many idle ones are dropped at once.
            if self.heaviest == Some(ip) {
                self.heaviest = None;
            }
            if self.queues.len() > IDLE_QUEUES {
                self.queues.retain(|_, q| !q.is_empty());
            }
        } else {
            self.turn.push_back(ip);
        }
        self.forget(&d);
        Some(d)
    }

    /// Give a handled datagram's buffer back for the next read.
    pub fn recycle(&mut self, data: Vec<u8>) {
        if self.pool.len() < POOL && data.capacity() <= POOL_BUFFER_MAX {
            self.pool.push(data);
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Datagrams dropped unread so far (over their source's rate, or shed when
    /// the intake was full).
    pub fn shed(&self) -> u64 {
        self.shed + self.limited
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), port)
    }

    #[test]
    fn sources_take_turns() {
        let mut i = Intake::default();
        for n in 0..5u8 {
            assert!(i.push(at("127.0.0.2", 1000), &[n]));
        }
        assert!(i.push(at("127.0.0.1", 5060), b"phone"));
        let order: Vec<Vec<u8>> = std::iter::from_fn(|| i.pop().map(|d| d.data)).collect();
        assert_eq!(order[0], vec![0]);
        assert_eq!(order[1], b"phone".to_vec(), "the phone is served second");
        assert_eq!(order.len(), 6);
        assert!(i.is_empty());
        assert_eq!(i.shed(), 0);
    }

    #[test]
    fn a_flood_loses_its_own_datagrams_not_the_phones() {
        let mut i = Intake::default();
        let mut shed = 0;
        for n in 0..(MAX_QUEUED + 100) {
            if !i.push(at("127.0.0.2", 1000 + (n % 7) as u16), b"flood") {
                shed += 1;
            }
        }
        assert_eq!(shed, 100, "one source alone may fill the intake, no more");
        assert_eq!(i.len(), MAX_QUEUED);
        // A phone arriving now still gets in; the flood makes room.
        for _ in 0..3 {
            assert!(i.push(at("127.0.0.1", 5060), b"phone"));
        }
        assert_eq!(i.len(), MAX_QUEUED);
        assert_eq!(i.shed(), 103);
        let first_two: Vec<std::net::IpAddr> =
            (0..2).filter_map(|_| i.pop()).map(|d| d.src.ip()).collect();
        assert!(first_two.contains(&"127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn each_source_spends_its_own_tokens() {
        let mut i = Intake::new(100);
        let flood = at("127.0.0.2", 1000);
        let phone = at("127.0.0.1", 5060);
        let queued = (0..1000)
            .filter(|_| i.offer(0, flood, b"x") == Admit::Queued)
            .count();
        assert_eq!(queued, 100, "one second's worth at once");
        assert_eq!(i.offer(0, phone, b"p"), Admit::Queued, "others untouched");
        assert_eq!(i.offer(5, flood, b"x"), Admit::Limited);
        assert_eq!(i.offer(10, flood, b"x"), Admit::Queued, "10 ms refill one");
        assert_eq!(i.shed(), 901);
        let mut unlimited = Intake::new(0);
        assert!((0..1000).all(|_| unlimited.offer(0, flood, b"x") == Admit::Queued));
    }

    #[test]
    fn a_held_source_trickles_but_its_known_phones_pass() {
        let mut i = Intake::new(1000);
        let phone = at("127.0.0.2", 5060);
        let guesser = at("127.0.0.2", 40000);
        i.set_held(
            0,
            vec![Held {
                source: SourceKey::of(guesser.ip()),
                until_ms: 60_000,
                known: vec![phone],
            }],
        );
        let passed = (0..100)
            .filter(|_| i.offer(0, guesser, b"g") == Admit::Queued)
            .count();
        assert_eq!(passed, HELD_RATE as usize);
        assert!((0..100).all(|_| i.offer(0, phone, b"p") == Admit::Queued));
        // Once the wait is over, the source is back on the ordinary rate.
        assert_eq!(i.offer(60_000, guesser, b"g"), Admit::Queued);
    }

    #[test]
    fn buckets_are_bounded() {
        let mut i = Intake::new(10);
        for n in 0..(MAX_BUCKETS as u32 + 500) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n);
            i.offer(u64::from(n), SocketAddr::new(ip.into(), 1), b"x");
            while let Some(d) = i.pop() {
                i.recycle(d.data);
            }
        }
        assert!(i.buckets.len() <= MAX_BUCKETS);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let mut i = Intake::new(10);
        let passed = (0..20u16)
            .filter(|n| {
                let ip = format!("2001:db8::{n:x}");
                i.offer(0, at(&ip, 5060), b"x") == Admit::Queued
            })
            .count();
        assert_eq!(passed, 10, "one bucket for the whole /64");
        assert_eq!(i.offer(0, at("2001:db8:0:1::1", 5060), b"x"), Admit::Queued);
    }

    #[test]
    fn bytes_are_bounded_too() {
        let mut i = Intake::default();
        let big = vec![0u8; 65_000];
        let fits = MAX_QUEUED_BYTES / big.len();
        for _ in 0..fits + 10 {
            i.push(at("127.0.0.2", 1), &big);
        }
        assert_eq!(i.len(), fits);
        assert_eq!(i.shed(), 10);
        assert!(i.push(at("127.0.0.1", 2), b"small"));
        while let Some(d) = i.pop() {
            i.recycle(d.data);
        }
        assert!(i.is_empty());
        assert!(i.pool.iter().all(|b| b.capacity() <= POOL_BUFFER_MAX));
    }
}
