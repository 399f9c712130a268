//! Non-INVITE transactions over UDP (RFC 3261 §17): the server side absorbs
//! retransmitted requests by re-sending the stored response; the client side
//! retransmits what the switch sends (Timer E) until a final response or Timer F.
//!
//! Pure state: times are passed in (ms), sends are returned, nothing does I/O.

use crate::sip::dest::Dest;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// RFC 3261 T1 (RTT estimate), ms.
pub const T1_MS: u64 = 500;
/// RFC 3261 T2 (longest retransmit interval for non-INVITE), ms.
pub const T2_MS: u64 = 4000;
/// Timer F / Timer J: 64 × T1.
pub const TIMEOUT_MS: u64 = 64 * T1_MS;
/// How long an answered server transaction absorbs retransmissions. RFC 3261's
/// Timer J is 32 s on UDP; like Kamailio's wait timer the switch keeps 5 s, which
/// covers a phone's first four retransmissions (0.5, 1.5, 3.5 s) and keeps memory
/// flat under load: at 4,000 requests/s, 32 s of stored responses grew the daemon
/// past 100 MB (bench/README.md), 5 s stays under 20 MB.
pub const SERVER_RETAIN_MS: u64 = 5_000;
/// Most server transactions kept; beyond it the oldest are forgotten first.
pub const MAX_SERVER_TRANSACTIONS: usize = 100_000;
/// Most bytes of kept responses (and keys), all sources together; beyond it the
/// oldest are forgotten first. Under a 4,000 requests/s load 5 s of answers take
/// about 12 MB.
pub const MAX_SERVER_BYTES: usize = 32 << 20;
/// Most bytes one source address may hold; beyond it that source's new answers
/// are not kept (its retransmissions are then handled anew), so a flood of large
/// requests (75 Vias each) costs its sender retransmission absorption and nobody
/// else anything.
pub const MAX_SOURCE_BYTES: usize = 8 << 20;
/// What an entry costs beyond its key and response (map slot, order entries).
const ENTRY_OVERHEAD: usize = 96;

/// What the server side knows of a request seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Still being handled (no final response yet): absorb the retransmission.
    Pending,
    /// Answered: re-send these bytes to this address.
    Answered(Dest, Vec<u8>),
    /// Relayed without state (the answer comes from the far side): forward the
    /// retransmission again, these bytes to this address, without judging it anew
    /// (its nonce was used once already).
    Relayed(Dest, Vec<u8>),
}

#[derive(Debug)]
struct ServerEntry {
    seen: Seen,
    expires_ms: u64,
    /// Bytes counted for it.
    size: usize,
    /// The address it is counted against (answered entries).
    source: Option<IpAddr>,
}

/// Server transactions keyed by top-Via branch, sent-by and method, bounded in
/// bytes overall and per source address.
#[derive(Debug, Default)]
pub struct ServerTransactions {
    map: HashMap<String, ServerEntry>,
    /// Expiry order of answered and relayed entries (same retention each).
    order: VecDeque<(u64, String)>,
    /// Expiry order of pending entries (a longer retention of their own).
    pending_order: VecDeque<(u64, String)>,
    bytes: usize,
    /// Bytes held per source address (answered and relayed entries).
    sources: HashMap<IpAddr, usize>,
}

/// The key of a server transaction (RFC 3261 §17.2.3).
pub fn server_key(branch: &str, top_via: &str, method: &str) -> String {
    // sent-by is the part of the Via between the protocol and the first ';'.
    let sent_by = top_via
        .split(';')
        .next()
        .and_then(|s| s.split_whitespace().nth(1))
        .unwrap_or("");
    let mut k = String::with_capacity(branch.len() + sent_by.len() + method.len() + 2);
    k.push_str(branch);
    k.push('|');
    k.push_str(sent_by);
    k.push('|');
    k.push_str(method);
    k
}

/// The key of a server transaction of a request that came from `from`: the
/// transaction is the sender's own, so a stranger who copies a phone's branch
/// and Via starts its own transaction and never pre-empts the phone's.
pub fn sender_key(branch: &str, top_via: &str, method: &str, from: &Dest) -> String {
    let mut key = server_key(branch, top_via, method);
    key.push('|');
    key.push_str(&from.to_string());
    key
}

impl ServerTransactions {
    /// A request arrived: `Some` when it is a retransmission of a known one.
    pub fn check(&self, key: &str) -> Option<&Seen> {
        self.map.get(key).map(|e| &e.seen)
    }

    /// Start a transaction whose final response comes later: it absorbs
    /// retransmissions until then, however long that takes (at most the client
    /// transaction's Timer F it waits on, plus the retention of its answer).
    pub fn pending(&mut self, key: String, now_ms: u64) {
        self.insert(key, Seen::Pending, None, now_ms + TIMEOUT_MS);
    }

    /// A request from `source` relayed statelessly as `bytes` to `to`: its
    /// retransmissions are relayed again as they were.
    pub fn relayed(&mut self, key: String, source: Dest, to: Dest, bytes: Vec<u8>, now_ms: u64) {
        let ip = Some(source.addr().ip());
        self.insert(key, Seen::Relayed(to, bytes), ip, now_ms);
    }

    /// Record the final response of a transaction (kept for Timer J).
    pub fn answered(&mut self, key: String, to: Dest, bytes: Vec<u8>, now_ms: u64) {
        let source = Some(to.addr().ip());
        self.insert(key, Seen::Answered(to, bytes), source, now_ms);
    }

    fn insert(&mut self, key: String, seen: Seen, source: Option<IpAddr>, now_ms: u64) {
        let expires_ms = now_ms + SERVER_RETAIN_MS;
        let size = key.len()
            + ENTRY_OVERHEAD
            + match &seen {
                Seen::Pending => 0,
                Seen::Answered(_, b) | Seen::Relayed(_, b) => b.len(),
            };
        self.remove(&key);
        if let Some(ip) = source {
            let held = self.sources.entry(ip).or_default();
            if *held + size > MAX_SOURCE_BYTES {
                // Over its share: this answer is not kept.
                if *held == 0 {
                    self.sources.remove(&ip);
                }
                return;
            }
            *held += size;
        }
        self.bytes += size;
        let pending = matches!(seen, Seen::Pending);
        self.map.insert(
            key.clone(),
            ServerEntry {
                seen,
                expires_ms,
                size,
                source,
            },
        );
        if pending {
            self.pending_order.push_back((expires_ms, key.clone()));
        } else {
            self.order.push_back((expires_ms, key.clone()));
        }
        while self.bytes > MAX_SERVER_BYTES || self.map.len() > MAX_SERVER_TRANSACTIONS {
            match self.order.pop_front() {
                Some((_, k)) if k != key => self.remove(&k),
                Some(_) => {}
                None => break,
            }
        }
        self.shrink();
    }

    fn remove(&mut self, key: &str) {
        let Some(e) = self.map.remove(key) else {
            return;
        };
        forget(&mut self.bytes, &mut self.sources, e.size, e.source);
    }

    /// Give memory back after a burst: tables much larger than their contents
    /// are shrunk.
    fn shrink(&mut self) {
        if self.map.capacity() > 1024 && self.map.len() < self.map.capacity() / 4 {
            self.map.shrink_to(self.map.len() * 2);
        }
        for order in [&mut self.order, &mut self.pending_order] {
            if order.capacity() > 1024 && order.len() < order.capacity() / 4 {
                order.shrink_to(order.len() * 2);
            }
        }
    }

    /// Forget transactions whose Timer J ran out.
    pub fn expire(&mut self, now_ms: u64) {
        for order in [&mut self.order, &mut self.pending_order] {
            while let Some((exp, _)) = order.front() {
                if *exp > now_ms {
                    break;
                }
                if let Some((_, k)) = order.pop_front() {
                    if let Some(e) = self.map.get(&k).filter(|e| e.expires_ms <= now_ms) {
                        let (size, source) = (e.size, e.source);
                        self.map.remove(&k);
                        forget(&mut self.bytes, &mut self.sources, size, source);
                    }
                }
            }
        }
        self.shrink();
    }

    /// Transactions held.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.map.len()
    }

    /// Bytes held, overall and for `ip`.
    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> (usize, usize) {
        (self.bytes, self.sources.get(&ip).copied().unwrap_or(0))
    }
}

/// Take an entry's bytes off the totals it counted in.
fn forget(
    bytes: &mut usize,
    sources: &mut HashMap<IpAddr, usize>,
    size: usize,
    source: Option<IpAddr>,
) {
    *bytes -= size;
    if let Some(ip) = source {
        if let Some(held) = sources.get_mut(&ip) {
            *held -= size;
            if *held == 0 {
                sources.remove(&ip);
            }
        }
    }
}

/// A request the switch sent and retransmits until answered.
#[derive(Debug, Clone)]
struct ClientTx<T> {
    dest: Dest,
    bytes: Vec<u8>,
    next_ms: u64,
    interval_ms: u64,
    deadline_ms: u64,
    tag: T,
}

/// What happened to a client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// The caller's tag given at start.
    pub tag: T,
    /// Final status (408 when Timer F fired).
    pub status: u16,
}

/// Client transactions keyed by the branch of the Via the switch added.
#[derive(Debug)]
pub struct ClientTransactions<T> {
    map: HashMap<String, ClientTx<T>>,
}

impl<T> Default for ClientTransactions<T> {
    fn default() -> Self {
        ClientTransactions {
            map: HashMap::new(),
        }
    }
}

impl<T: Clone> ClientTransactions<T> {
    /// Track a request just sent (the caller sends it the first time).
    pub fn start(&mut self, branch: String, dest: Dest, bytes: Vec<u8>, tag: T, now_ms: u64) {
        self.map.insert(
            branch,
            ClientTx {
                dest,
                bytes,
                next_ms: now_ms + T1_MS,
                interval_ms: T1_MS,
                deadline_ms: now_ms + TIMEOUT_MS,
                tag,
            },
        );
    }

    /// Where the request with this branch went, while its transaction lives.
    pub fn dest_of(&self, branch: &str) -> Option<Dest> {
        self.map.get(branch).map(|tx| tx.dest)
    }

    /// A response with top-Via `branch` arrived from `from`; returns the outcome
    /// when final. A response from anywhere but where the request went is not
    /// this transaction's (a stranger cannot fake a delivery receipt).
    pub fn response(
        &mut self,
        branch: &str,
        from: Dest,
        status: u16,
        now_ms: u64,
    ) -> Option<Outcome<T>> {
        if !self
            .map
            .get(branch)
            .is_some_and(|tx| tx.dest.same_party(from))
        {
            return None;
        }
        if status < 200 {
            // Proceeding: retransmit at T2 from now on (RFC 3261 §17.1.2.2).
            if let Some(tx) = self.map.get_mut(branch) {
                tx.interval_ms = T2_MS;
                tx.next_ms = now_ms + T2_MS;
            }
            return None;
        }
        self.map.remove(branch).map(|tx| Outcome {
            tag: tx.tag,
            status,
        })
    }

    /// Retransmissions due now (Timer E) and transactions that timed out (Timer F).
    pub fn tick(&mut self, now_ms: u64, resend: &mut Vec<(Dest, Vec<u8>)>) -> Vec<Outcome<T>> {
        let mut done = Vec::new();
        self.map.retain(|_, tx| {
            if now_ms >= tx.deadline_ms {
                done.push(Outcome {
                    tag: tx.tag.clone(),
                    status: 408,
                });
                return false;
            }
            // Over TCP only Timer F applies (RFC 3261 §17.1.2.2).
            if now_ms >= tx.next_ms && !tx.dest.is_tcp() {
                resend.push((tx.dest, tx.bytes.clone()));
                tx.interval_ms = (tx.interval_ms * 2).min(T2_MS);
                tx.next_ms = now_ms + tx.interval_ms;
            }
            true
        });
        done
    }

    /// Transactions in flight.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Dest {
        Dest::Udp("127.0.0.1:5000".parse().expect("addr"))
    }

    #[test]
    fn server_absorbs_then_forgets() {
        let mut s = ServerTransactions::default();
        let k = server_key(
            "z9hG4bK1",
            "SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1",
            "REGISTER",
        );
        assert_eq!(k, "z9hG4bK1|127.0.0.1:5000|REGISTER");
        assert!(s.check(&k).is_none());
        s.pending(k.clone(), 0);
        assert_eq!(s.check(&k), Some(&Seen::Pending));
        s.answered(k.clone(), addr(), b"SIP/2.0 200 OK".to_vec(), 100);
        assert!(matches!(s.check(&k), Some(Seen::Answered(_, b)) if b.starts_with(b"SIP/2.0 200")));
        s.expire(100 + SERVER_RETAIN_MS - 1);
        assert!(s.check(&k).is_some());
        s.expire(100 + SERVER_RETAIN_MS);
        assert!(s.check(&k).is_none());
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn a_pending_transaction_absorbs_until_its_answer_however_late() {
        let mut s = ServerTransactions::default();
        s.pending("msg|1".into(), 0);
        s.answered("other|1".into(), addr(), b"SIP/2.0 200 OK".to_vec(), 0);
        // Past the retention of answers, before Timer F of what it waits on.
        s.expire(SERVER_RETAIN_MS + 2_500);
        assert_eq!(
            s.check("msg|1"),
            Some(&Seen::Pending),
            "7.5 s: still absorbed"
        );
        assert!(
            s.check("other|1").is_none(),
            "answers go after their retention"
        );
        // Answered at 32 s: kept for the retention from then.
        s.answered("msg|1".into(), addr(), b"SIP/2.0 408".to_vec(), TIMEOUT_MS);
        s.expire(TIMEOUT_MS + SERVER_RETAIN_MS - 1);
        assert!(matches!(s.check("msg|1"), Some(Seen::Answered(..))));
        s.expire(TIMEOUT_MS + SERVER_RETAIN_MS + 1);
        assert!(s.check("msg|1").is_none());
        // One never answered goes at last.
        s.pending("lost|1".into(), 0);
        s.expire(TIMEOUT_MS + SERVER_RETAIN_MS);
        assert!(s.check("lost|1").is_none());
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn large_answers_are_bounded_per_source_and_overall() {
        let mut s = ServerTransactions::default();
        let flood = Dest::Udp("127.0.0.2:5000".parse().expect("addr"));
        let phone = addr();
        s.answered("phone|1".into(), phone, vec![b'p'; 500], 0);
        let big = vec![b'v'; 7_000];
        for n in 0..10_000 {
            s.answered(format!("flood|{n}"), flood, big.clone(), n / 10);
        }
        let (all, flooder) = s.held(flood.addr().ip());
        assert!(flooder <= MAX_SOURCE_BYTES, "{flooder}");
        assert!(all <= MAX_SERVER_BYTES, "{all}");
        assert!(s.check("phone|1").is_some(), "the phone's answer survives");
        assert!(s.check("flood|0").is_some(), "within its share, kept");
        assert!(
            s.check("flood|9999").is_none(),
            "beyond its share, not kept"
        );
        s.expire(10_000 + SERVER_RETAIN_MS);
        assert_eq!(s.count(), 0);
        assert_eq!(s.held(flood.addr().ip()), (0, 0));
        assert!(s.sources.is_empty());
        assert!(
            s.map.capacity() < 2048,
            "memory given back: {}",
            s.map.capacity()
        );
    }

    #[test]
    fn client_timer_e_and_f() {
        let mut c = ClientTransactions::default();
        c.start("b1".into(), addr(), b"MESSAGE".to_vec(), 7u32, 0);
        let mut out = Vec::new();
        assert!(c.tick(499, &mut out).is_empty());
        assert!(out.is_empty());
        c.tick(500, &mut out);
        c.tick(1500, &mut out);
        c.tick(3500, &mut out);
        assert_eq!(out.len(), 3);
        out.clear();
        // Provisional: T2 interval.
        assert_eq!(c.response("b1", addr(), 100, 3600), None);
        c.tick(7000, &mut out);
        assert!(out.is_empty());
        c.tick(7600, &mut out);
        assert_eq!(out.len(), 1);
        let done = c.tick(TIMEOUT_MS, &mut out);
        assert_eq!(
            done,
            vec![Outcome {
                tag: 7,
                status: 408
            }]
        );
        assert_eq!(c.count(), 0);
        c.start("b2".into(), addr(), vec![], 8, 0);
        let stranger = Dest::Udp("127.0.0.2:5000".parse().expect("addr"));
        assert_eq!(c.response("b2", stranger, 200, 10), None);
        assert_eq!(
            c.response("b2", addr(), 200, 10),
            Some(Outcome {
                tag: 8,
                status: 200
            })
        );
        assert_eq!(c.response("b2", addr(), 200, 10), None);
        // Over TCP: no retransmissions, Timer F still fires.
        let tcp = Dest::Tcp("127.0.0.1:5070".parse().expect("addr"));
        c.start("b3".into(), tcp, b"MESSAGE".to_vec(), 9, 0);
        out.clear();
        c.tick(600, &mut out);
        c.tick(1600, &mut out);
        assert!(out.is_empty());
        assert_eq!(c.tick(TIMEOUT_MS, &mut out).len(), 1);
    }
}
