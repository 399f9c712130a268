//! The phone's retransmissions, as RFC 3261 asks of a UA on UDP, run by the
//! phone's reader thread whatever the test is doing meanwhile:
//!
//! - a client transaction resends its request: Timer E for non-INVITE (T1
//!   doubling to T2, and every T2 once a provisional came) until a final response;
//!   Timer A for INVITE (T1 doubling) until any response; both give up after
//!   64·T1 (Timers B/F);
//! - the ACK of a 2xx is sent again whenever that 2xx is retransmitted (§13.2.2.4);
//! - a server INVITE transaction resends its final response (2xx: §13.3.1.4;
//!   others: Timer G, §17.2.1) until the ACK with its CSeq arrives, or 64·T1.
//!
//! Pure bookkeeping over `Instant`s: the reader thread asks what is due and sends it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// RFC 3261 T1.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2.
pub const T2: Duration = Duration::from_secs(4);
/// How long a transaction retransmits at most (64·T1, Timers B, F and H).
pub const GIVE_UP: Duration = Duration::from_secs(32);

/// A transaction's key: Call-ID, CSeq number and CSeq method.
pub type TxnKey = (String, u32, String);

/// One message resent on a timer.
#[derive(Debug, Clone)]
struct Resend {
    bytes: Vec<u8>,
    to: SocketAddr,
    next: Instant,
    interval: Duration,
    until: Instant,
}

impl Resend {
    fn new(bytes: Vec<u8>, to: SocketAddr, now: Instant) -> Resend {
        Resend {
            bytes,
            to,
            next: now + T1,
            interval: T1,
            until: now + GIVE_UP,
        }
    }

    /// The bytes when due at `now` (and the next time set), else `None`.
    fn due(&mut self, now: Instant, cap: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        if now < self.next {
            return None;
        }
        self.interval = (self.interval * 2).min(cap);
        self.next = now + self.interval;
        Some((self.bytes.clone(), self.to))
    }
}

/// A client transaction of the phone.
#[derive(Debug, Clone)]
struct Client {
    resend: Resend,
    invite: bool,
    /// A provisional response came: INVITE stops resending, others slow to T2.
    provisional: bool,
}

/// Everything the phone resends on its own.
#[derive(Debug, Default)]
pub struct Timers {
    clients: HashMap<TxnKey, Client>,
    /// ACKs of 2xx responses, by Call-ID and CSeq number of the INVITE.
    acks: HashMap<(String, u32), (Vec<u8>, SocketAddr, Instant)>,
    /// Final responses of server INVITE transactions awaiting their ACK.
    finals: HashMap<(String, u32), Resend>,
}

impl Timers {
    /// A request was sent to `to`: resend it until its transaction ends.
    pub fn client(&mut self, key: TxnKey, bytes: Vec<u8>, to: SocketAddr, now: Instant) {
        let invite = key.2 == "INVITE";
        self.clients.insert(
            key,
            Client {
                resend: Resend::new(bytes, to, now),
                invite,
                provisional: false,
            },
        );
    }

    /// Stop resending the request of `key` (the test stopped waiting for it).
    pub fn forget_client(&mut self, key: &TxnKey) {
        self.clients.remove(key);
    }

    /// The ACK `bytes` answered the 2xx of the INVITE `(call_id, cseq)`.
    pub fn ack_sent(&mut self, call_id: &str, cseq: u32, bytes: Vec<u8>, to: SocketAddr) {
        self.acks.insert(
            (call_id.to_string(), cseq),
            (bytes, to, Instant::now() + GIVE_UP),
        );
    }

    /// The phone answered an INVITE finally with `bytes`: resend until its ACK.
    pub fn final_sent(&mut self, call_id: &str, cseq: u32, bytes: Vec<u8>, to: SocketAddr) {
        let now = Instant::now();
        self.finals
            .insert((call_id.to_string(), cseq), Resend::new(bytes, to, now));
    }

    /// A response with `status` arrived for `key`. Returns an ACK to send again
    /// when it is a retransmitted 2xx of an INVITE already ACKed.
    pub fn response(&mut self, key: &TxnKey, status: u16) -> Option<(Vec<u8>, SocketAddr)> {
        if let Some(c) = self.clients.get_mut(key) {
            if status >= 200 || c.invite {
                // A final ends the transaction's resending; for an INVITE any
                // response does (Timer A stops, the proxy took over).
                if status >= 200 {
                    self.clients.remove(key);
                } else {
                    c.provisional = true;
                }
            } else {
                c.provisional = true;
                c.resend.interval = T2;
            }
        }
        if key.2 == "INVITE" && (200..300).contains(&status) {
            return self
                .acks
                .get(&(key.0.clone(), key.1))
                .map(|(b, to, _)| (b.clone(), *to));
        }
        None
    }

    /// An ACK arrived for the INVITE `(call_id, cseq)`: stop resending its final.
    pub fn ack_received(&mut self, call_id: &str, cseq: u32) {
        self.finals.remove(&(call_id.to_string(), cseq));
    }

    /// Everything due at `now`, to send; finished timers are dropped.
    pub fn due(&mut self, now: Instant) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut out = Vec::new();
        self.clients.retain(|_, c| {
            if now >= c.resend.until {
                return false;
            }
            if c.invite && c.provisional {
                return true;
            }
            let cap = if c.invite { GIVE_UP } else { T2 };
            out.extend(c.resend.due(now, cap));
            true
        });
        self.finals.retain(|_, r| {
            if now >= r.until {
                return false;
            }
            out.extend(r.due(now, T2));
            true
        });
        // ACKs are kept as long as a 2xx may still be retransmitted to us.
        self.acks.retain(|_, (_, _, until)| now < *until);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(m: &str) -> TxnKey {
        ("c".into(), 1, m.into())
    }

    fn to() -> SocketAddr {
        "127.0.0.1:5060".parse().expect("addr")
    }

    #[test]
    fn non_invite_doubles_to_t2_until_final() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.client(key("REGISTER"), b"R".to_vec(), to(), t0);
        assert!(t.due(t0).is_empty());
        let sent: Vec<u64> = (1..=20)
            .map(|i| t0 + Duration::from_millis(250 * i))
            .filter(|at| !t.due(*at).is_empty())
            .map(|at| (at - t0).as_millis() as u64)
            .collect();
        // T1, then 1 s later, 2 s later, then every T2.
        assert_eq!(sent, vec![500, 1500, 3500]);
        assert!(t.response(&key("REGISTER"), 200).is_none());
        assert!(t.due(t0 + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn invite_stops_at_any_response_and_acks_repeat() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.client(key("INVITE"), b"I".to_vec(), to(), t0);
        assert_eq!(t.due(t0 + T1).len(), 1);
        t.response(&key("INVITE"), 100);
        assert!(t.due(t0 + Duration::from_secs(20)).is_empty());
        assert!(t.response(&key("INVITE"), 200).is_none(), "no ACK sent yet");
        t.ack_sent("c", 1, b"A".to_vec(), to());
        assert_eq!(
            t.response(&key("INVITE"), 200).map(|a| a.0),
            Some(b"A".to_vec())
        );
    }

    #[test]
    fn a_final_is_resent_until_its_ack_or_64_t1() {
        let mut t = Timers::default();
        t.final_sent("c", 1, b"200".to_vec(), to());
        let later = Instant::now() + T1;
        assert_eq!(t.due(later).len(), 1);
        t.ack_received("c", 1);
        assert!(t.due(later + T2).is_empty());
        t.final_sent("c", 2, b"486".to_vec(), to());
        assert!(t.due(Instant::now() + GIVE_UP).is_empty());
        assert!(t.finals.is_empty());
    }
}
