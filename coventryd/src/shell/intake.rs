//! Fair intake of datagrams: the shell reads the socket faster than the switch
//! handles requests, queues what it read per source address and hands the
//! switch one datagram per waiting source in turn. A source that floods fills
//! only its own queue; when the intake is full, the source holding the most
//! waits its turn by losing datagrams (counted as shed), so a phone on another
//! address is served within one round however hard one address sends.
//!
//! Pure state: the shell feeds it and drains it; nothing here does I/O.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

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
    queues: HashMap<IpAddr, VecDeque<Datagram>>,
    /// Sources with something waiting, in serving order (each once).
    turn: VecDeque<IpAddr>,
    /// The source believed to hold the most (checked before use).
    heaviest: Option<IpAddr>,
    queued: usize,
    bytes: usize,
    shed: u64,
    pool: Vec<Vec<u8>>,
}

impl Intake {
    /// Queue a datagram read from `src`. Returns false when it was shed: the
    /// intake is full and `src` already holds at least as much as any other.
    pub fn push(&mut self, src: SocketAddr, bytes: &[u8]) -> bool {
        let ip = src.ip();
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
    fn heaviest(&mut self) -> Option<(IpAddr, usize)> {
        let len = |q: &HashMap<IpAddr, VecDeque<Datagram>>, ip: &IpAddr| {
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

    fn drop_oldest(&mut self, ip: IpAddr) {
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

    /// Datagrams dropped unread so far.
    pub fn shed(&self) -> u64 {
        self.shed
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
        let first_two: Vec<IpAddr> = (0..2).filter_map(|_| i.pop()).map(|d| d.src.ip()).collect();
        assert!(first_two.contains(&"127.0.0.1".parse::<IpAddr>().expect("ip")));
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
