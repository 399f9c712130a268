//! The pure side of a link: its back-off schedule and its state machine
//! (Connecting, Connected, Reconnecting, Down), with the counters the state block
//! shows. No I/O, no clock: every input carries the time.

use coventry_shared::event::RouteState;
use std::net::SocketAddr;
use std::time::Duration;

/// Consecutive failures from which a link counts as down (it keeps retrying).
pub const DOWN_AFTER: u32 = 3;

/// Longest error text kept (the state block keeps 64 bytes of it).
const MAX_ERROR_LEN: usize = 200;

/// The pause before the next attempt after `consecutive` failures in a row
/// (`first`, doubled per further failure, at most `max`; zero for none).
pub fn backoff_delay(first: Duration, max: Duration, consecutive: u32) -> Duration {
    if consecutive == 0 {
        return Duration::ZERO;
    }
    let shift = (consecutive - 1).min(20);
    first.saturating_mul(1u32 << shift).min(max)
}

/// A state change of a link: the new state and why (for the ring event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub state: RouteState,
    /// The error, or the address connected to.
    pub detail: String,
}

/// What the switch knows about one link, and its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// Current state.
    pub state: RouteState,
    /// In this state since (ms since the epoch).
    pub since_ms: u64,
    /// When the next attempt is due while not connected (ms since the epoch; 0: now
    /// or connected).
    pub retry_ms: u64,
    /// Connections established.
    pub connects: u64,
    /// Failed attempts plus lost connections.
    pub failures: u64,
    /// Failures since the last successful connection.
    pub consecutive: u32,
    /// SIP messages sent to the peer.
    pub sent: u64,
    /// SIP messages received from the peer.
    pub received: u64,
    /// The latest error.
    pub last_error: String,
    /// The remote address while connected.
    pub peer: Option<SocketAddr>,
}

impl LinkStatus {
    /// A link whose first attempt starts at `now_ms`.
    pub fn new(now_ms: u64) -> LinkStatus {
        LinkStatus {
            state: RouteState::Connecting,
            since_ms: now_ms,
            retry_ms: 0,
            connects: 0,
            failures: 0,
            consecutive: 0,
            sent: 0,
            received: 0,
            last_error: String::new(),
            peer: None,
        }
    }

    /// Whether the link is connected.
    pub fn is_connected(&self) -> bool {
        self.state == RouteState::Connected
    }

    /// A connection to `peer` was established.
    pub fn connected(&mut self, now_ms: u64, peer: SocketAddr) -> Option<Transition> {
        self.connects += 1;
        self.consecutive = 0;
        self.retry_ms = 0;
        self.peer = Some(peer);
        self.enter(
            now_ms,
            RouteState::Connected,
            format!("connected to {peer}"),
        )
    }

    /// An attempt failed or the connection was lost (`error`); the next attempt is
    /// due in `retry_in`.
    pub fn failed(&mut self, now_ms: u64, error: &str, retry_in: Duration) -> Option<Transition> {
        self.failures += 1;
        self.consecutive = self.consecutive.saturating_add(1);
        self.peer = None;
        let retry = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
        self.retry_ms = now_ms.saturating_add(retry);
        self.last_error = clip(error);
        let state = if self.consecutive >= DOWN_AFTER {
            RouteState::Down
        } else {
            RouteState::Reconnecting
        };
        self.enter(now_ms, state, self.last_error.clone())
    }

    fn enter(&mut self, now_ms: u64, state: RouteState, detail: String) -> Option<Transition> {
        if self.state == state {
            return None;
        }
        self.state = state;
        self.since_ms = now_ms;
        Some(Transition { state, detail })
    }
}

/// `s` cut to [`MAX_ERROR_LEN`] bytes at a character boundary, control characters
/// replaced.
fn clip(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_ERROR_LEN));
    for c in s.chars() {
        if out.len() + c.len_utf8() > MAX_ERROR_LEN {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(10);

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5070))
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let d: Vec<u64> = (0..8).map(|n| backoff_delay(S, MAX, n).as_secs()).collect();
        assert_eq!(d, [0, 1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(backoff_delay(S, MAX, u32::MAX), MAX);
        assert_eq!(
            backoff_delay(Duration::from_millis(50), Duration::from_millis(300), 3),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn first_attempt_fails_then_down_after_three() {
        let mut s = LinkStatus::new(1000);
        assert_eq!(s.state, RouteState::Connecting);
        let t = s.failed(2000, "connect: refused", S).expect("change");
        assert_eq!(t.state, RouteState::Reconnecting);
        assert_eq!(t.detail, "connect: refused");
        assert_eq!((s.since_ms, s.retry_ms, s.failures), (2000, 3000, 1));
        assert_eq!(s.failed(3000, "again", 2 * S), None);
        assert_eq!(s.since_ms, 2000);
        assert_eq!(s.retry_ms, 5000);
        let t = s.failed(5000, "third", 4 * S).expect("down");
        assert_eq!(t.state, RouteState::Down);
        assert_eq!((s.failures, s.consecutive, s.connects), (3, 3, 0));
        assert_eq!(s.last_error, "third");
        assert_eq!(s.failed(9000, "fourth", 8 * S), None);
        assert_eq!(s.state, RouteState::Down);
    }

    #[test]
    fn connect_resets_and_loss_reconnects() {
        let mut s = LinkStatus::new(0);
        for i in 0..4 {
            let _ = s.failed(i, "x", S);
        }
        let t = s.connected(10, addr()).expect("up");
        assert_eq!(t.state, RouteState::Connected);
        assert_eq!(t.detail, "connected to 127.0.0.1:5070");
        assert_eq!((s.consecutive, s.retry_ms, s.connects), (0, 0, 1));
        assert_eq!(s.peer, Some(addr()));
        let t = s.failed(20, "closed by peer", S).expect("lost");
        assert_eq!(t.state, RouteState::Reconnecting);
        assert_eq!(s.peer, None);
        assert_eq!(s.failures, 5);
        assert_eq!(s.last_error, "closed by peer");
    }

    #[test]
    fn errors_are_clipped_and_cleaned() {
        let mut s = LinkStatus::new(0);
        let long = "é\n".repeat(300);
        let _ = s.failed(0, &long, S);
        assert!(s.last_error.len() <= MAX_ERROR_LEN);
        assert!(!s.last_error.contains('\n'));
        assert!(s.last_error.starts_with("é "));
    }
}
