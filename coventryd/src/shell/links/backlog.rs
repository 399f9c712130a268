//! The write side's rules (pure, explicit instants): telling a burst of our
//! own (thousands of BYEs from one `hangup`) from a peer that does not read.
//! A burst is held, up to a byte budget, and fed to the socket as it drains;
//! only a peer that takes no byte for [`WRITE_STALL`] while output waits is
//! cut off. What does not fit the budget is dropped, counted, and logged at
//! most once per [`Tally`] interval with the count.

use super::framing::later;
use std::time::{Duration, Instant};

/// Bytes an outbound link holds for its peer beyond the socket: room for
/// tens of thousands of BYEs (one is well under 1 KiB).
pub const LINK_BACKLOG: usize = 32 * 1024 * 1024;

/// Bytes an inbound connection holds: what goes there answers what the peer
/// sent, so the peer paces it by reading.
pub const INBOUND_BACKLOG: usize = 4 * 1024 * 1024;

/// A peer that takes no byte for this long while output waits is not reading:
/// it is cut off.
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// Whether `len` more bytes fit when `held` are held already.
pub fn fits(held: usize, len: usize, budget: usize) -> bool {
    held.checked_add(len).is_some_and(|total| total <= budget)
}

/// The clock of a connection's writes: since when output has waited without
/// the peer taking a byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    waiting_since: Option<Instant>,
}

impl Progress {
    /// Output waits at `now`: the clock runs (from now, unless it already does).
    pub fn waiting(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
    }

    /// Nothing waits: the clock stops.
    pub fn idle(&mut self) {
        self.waiting_since = None;
    }

    /// The peer took bytes at `now`: the clock starts again.
    pub fn wrote(&mut self, now: Instant) {
        self.waiting_since = Some(now);
    }

    /// When the peer counts as not reading (after `stall` without taking a
    /// byte, [`WRITE_STALL`] in production), while output waits.
    pub fn deadline(&self, stall: Duration) -> Option<Instant> {
        self.waiting_since.map(|t| later(t, stall))
    }

    /// Whether the peer has taken nothing for `stall` at `now`.
    pub fn stalled(&self, now: Instant, stall: Duration) -> bool {
        self.deadline(stall).is_some_and(|d| now >= d)
    }
}

/// Counts events (drops, evictions) and says when to log them: the first at
/// once, then at most one line per interval with the count since the last one.
#[derive(Debug, Clone)]
pub struct Tally {
    every: Duration,
    last_line: Option<Instant>,
    pending: u64,
    total: u64,
}

impl Tally {
    /// A tally that logs at most once per `every`.
    pub fn new(every: Duration) -> Tally {
        Tally {
            every,
            last_line: None,
            pending: 0,
            total: 0,
        }
    }

    /// One more event at `now`; `Some(n)` when a line is due, covering `n`.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.pending = self.pending.saturating_add(1);
        self.total = self.total.saturating_add(1);
        self.due(now)
    }

    /// Events not logged yet whose line is due at `now` (call it from a clock
    /// so the last ones of a burst are logged too).
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        if self.pending == 0 {
            return None;
        }
        if self.last_line.is_some_and(|t| now < later(t, self.every)) {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.pending))
    }

    /// When the next line may be written, while events wait for one.
    pub fn next_due(&self) -> Option<Instant> {
        (self.pending > 0).then(|| {
            self.last_line
                .map_or_else(Instant::now, |t| later(t, self.every))
        })
    }

    /// Every event counted.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_byes_fit_a_links_budget_but_not_without_end() {
        let bye = 1024;
        let mut held = 0;
        for _ in 0..10_000 {
            assert!(fits(held, bye, LINK_BACKLOG));
            held += bye;
        }
        assert!(fits(LINK_BACKLOG - 10, 10, LINK_BACKLOG));
        assert!(!fits(LINK_BACKLOG - 10, 11, LINK_BACKLOG));
        assert!(!fits(usize::MAX, 1, LINK_BACKLOG));
        const { assert!(INBOUND_BACKLOG < LINK_BACKLOG) };
    }

    #[test]
    fn a_peer_that_keeps_taking_bytes_is_never_stalled() {
        let t0 = Instant::now();
        let mut p = Progress::default();
        assert_eq!(p.deadline(WRITE_STALL), None);
        p.waiting(t0);
        // A slow drain: a few bytes every 9 s for a minute.
        for n in 1..=7u32 {
            let t = t0 + Duration::from_secs(9) * n;
            assert!(!p.stalled(t, WRITE_STALL), "at {n}");
            p.wrote(t);
            p.waiting(t + Duration::from_millis(1));
        }
        let last = t0 + Duration::from_secs(63);
        assert_eq!(p.deadline(WRITE_STALL), Some(last + WRITE_STALL));
        assert!(!p.stalled(last + WRITE_STALL - Duration::from_millis(1), WRITE_STALL));
        assert!(p.stalled(last + WRITE_STALL, WRITE_STALL));
    }

    #[test]
    fn an_idle_connection_has_no_write_clock() {
        let t0 = Instant::now();
        let mut p = Progress::default();
        p.waiting(t0);
        p.waiting(t0 + Duration::from_secs(5));
        assert_eq!(
            p.deadline(WRITE_STALL),
            Some(t0 + WRITE_STALL),
            "the clock runs on"
        );
        p.idle();
        assert!(!p.stalled(t0 + Duration::from_secs(3600), WRITE_STALL));
        p.waiting(t0 + Duration::from_secs(3600));
        assert!(!p.stalled(t0 + Duration::from_secs(3605), WRITE_STALL));
    }

    #[test]
    fn a_tally_logs_the_first_at_once_then_one_line_per_interval() {
        let t0 = Instant::now();
        let every = Duration::from_secs(60);
        let mut t = Tally::new(every);
        assert_eq!(t.next_due(), None);
        assert_eq!(t.note(t0), Some(1));
        for n in 1..13_531u64 {
            assert_eq!(t.note(t0 + Duration::from_millis(n)), None);
        }
        assert_eq!(t.next_due(), Some(t0 + every));
        assert_eq!(t.due(t0 + Duration::from_secs(59)), None);
        assert_eq!(t.due(t0 + every), Some(13_530));
        assert_eq!(t.due(t0 + every * 3), None, "nothing new");
        assert_eq!(t.note(t0 + every * 3), Some(1));
        assert_eq!(t.total(), 13_532);
    }
}
