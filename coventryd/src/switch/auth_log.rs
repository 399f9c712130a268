//! Rate limit for log lines and records written on behalf of someone (pure
//! state; time passed in): at most so many per key (a source address for
//! failed-authentication lines, `[security] log_failures`; a caller for the
//! records of call attempts) per minute; the rest are counted and reported in one
//! summary per key and minute, so a flood cannot fill the disk or the event ring,
//! and the log still says how much happened and from where.

use super::bounded::{BoundedMap, Worth};
use crate::sip::dest::Dest;
use std::net::IpAddr;

/// Where failures came from: phones and strangers over UDP, or an upstream peer
/// over TCP. The two are counted and written apart, so a peer's failures never
/// read like a guesser's (the fail2ban filter matches only the latter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A UDP source address.
    Phone(IpAddr),
    /// An upstream peer's address (its TCP connection).
    Peer(IpAddr),
}

impl Origin {
    /// The origin of a request that came from `from`.
    pub fn of(from: Dest) -> Origin {
        match from {
            Dest::Udp(a) => Origin::Phone(a.ip()),
            Dest::Tcp(a) => Origin::Peer(a.ip()),
        }
    }
}

/// The length of one window, ms.
pub const WINDOW_MS: u64 = 60_000;
/// Most addresses with an open window.
pub const MAX_WINDOWS: usize = 4096;

/// One address's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    lines: u32,
    suppressed: u64,
}

impl Worth for Window {
    fn worth(&self, now_ms: u64) -> u64 {
        if self.suppressed > 0 {
            // Keep the ones with a summary to write.
            (1 << 62) + self.start_ms
        } else if now_ms.saturating_sub(self.start_ms) >= WINDOW_MS {
            0
        } else {
            self.start_ms.max(1)
        }
    }
}

/// What to write for one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Write this failure's line (and its event).
    pub write: bool,
}

/// A summary to write: `count` lines from `source` were left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary<K = Origin> {
    /// Whose lines.
    pub source: K,
    /// Lines left out.
    pub count: u64,
}

/// The limiter's state, per key `K`.
#[derive(Debug)]
pub struct WindowLog<K> {
    per_window: u32,
    windows: BoundedMap<K, Window>,
    /// Summaries not yet written (from windows that closed or were evicted).
    ready: Vec<Summary<K>>,
    /// The earliest end of a window holding suppressed lines.
    next_due_ms: Option<u64>,
}

/// The failed-authentication lines' limiter: per source address.
pub type AuthLog = WindowLog<Origin>;

impl<K: std::hash::Hash + Eq + Clone> WindowLog<K> {
    /// A limiter writing at most `per_window` lines per key per window.
    pub fn new(per_window: u32) -> WindowLog<K> {
        WindowLog {
            per_window: per_window.max(1),
            windows: BoundedMap::new(MAX_WINDOWS),
            ready: Vec::new(),
            next_due_ms: None,
        }
    }

    /// Change the limit (reload).
    pub fn set_limit(&mut self, per_window: u32) {
        self.per_window = per_window.max(1);
    }

    /// One line for `source`: write it or count it.
    pub fn note(&mut self, now_ms: u64, source: K) -> Decision {
        let fresh = Window {
            start_ms: now_ms,
            lines: 0,
            suppressed: 0,
        };
        let (w, evicted) = self.windows.entry(now_ms, source.clone(), || fresh);
        if now_ms.saturating_sub(w.start_ms) >= WINDOW_MS {
            if w.suppressed > 0 {
                self.ready.push(Summary {
                    source,
                    count: w.suppressed,
                });
            }
            *w = fresh;
        }
        let write = w.lines < self.per_window;
        if write {
            w.lines += 1;
        } else {
            w.suppressed += 1;
            let due = w.start_ms + WINDOW_MS;
            self.next_due_ms = Some(self.next_due_ms.map_or(due, |d| d.min(due)));
        }
        for (source, w) in evicted {
            if w.suppressed > 0 {
                self.ready.push(Summary {
                    source,
                    count: w.suppressed,
                });
            }
        }
        Decision { write }
    }

    /// The summaries due at `now_ms`: of windows that have ended with lines left
    /// out (each reported once), and of any that had to make room.
    pub fn take_summaries(&mut self, now_ms: u64) -> Vec<Summary<K>> {
        if self.next_due_ms.is_some_and(|d| d <= now_ms) {
            let mut next = None::<u64>;
            let mut ready = Vec::new();
            self.windows.retain(|source, w| {
                let ended = now_ms.saturating_sub(w.start_ms) >= WINDOW_MS;
                if ended && w.suppressed > 0 {
                    ready.push(Summary {
                        source: source.clone(),
                        count: w.suppressed,
                    });
                    w.suppressed = 0;
                } else if w.suppressed > 0 {
                    let due = w.start_ms + WINDOW_MS;
                    next = Some(next.map_or(due, |d| d.min(due)));
                }
                !ended
            });
            self.ready.extend(ready);
            self.next_due_ms = next;
        }
        std::mem::take(&mut self.ready)
    }
}

impl<K: std::hash::Hash + Eq + Clone> WindowLog<K> {
    /// Every summary still open, whether its window has ended or not (at stop, so
    /// no count is lost).
    pub fn take_all(&mut self) -> Vec<Summary<K>> {
        let mut out = std::mem::take(&mut self.ready);
        self.windows.retain(|source, w| {
            if w.suppressed > 0 {
                out.push(Summary {
                    source: source.clone(),
                    count: w.suppressed,
                });
            }
            false
        });
        self.next_due_ms = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_few_lines_and_one_summary_per_minute() {
        let mut log = AuthLog::new(3);
        let src = Origin::Phone("127.0.0.2".parse().expect("ip"));
        let other = Origin::Phone("127.0.0.3".parse().expect("ip"));
        let mut now = 1_000_000;
        let mut written = 0;
        for _ in 0..1000 {
            written += usize::from(log.note(now, src).write);
            now += 10;
        }
        assert_eq!(written, 3);
        assert!(
            log.note(now, other).write,
            "another address has its own budget"
        );
        assert!(log.take_summaries(now).is_empty(), "the minute is not over");
        let s = log.take_summaries(1_000_000 + WINDOW_MS);
        assert_eq!(
            s,
            vec![Summary {
                source: src,
                count: 997
            }]
        );
        assert!(log.take_summaries(1_000_000 + 2 * WINDOW_MS).is_empty());
        // The same address as an upstream peer is counted apart.
        let peer = Origin::Peer("127.0.0.2".parse().expect("ip"));
        assert!(log.note(now, peer).write);
        // A new minute: lines again.
        let later = 1_000_000 + 2 * WINDOW_MS;
        let writes: Vec<bool> = (0..4).map(|_| log.note(later, src).write).collect();
        assert_eq!(writes, [true, true, true, false]);
        // At stop, what is open is reported at once.
        assert_eq!(
            log.take_all(),
            vec![Summary {
                source: src,
                count: 1
            }]
        );
        assert!(log.take_all().is_empty());
    }

    #[test]
    fn a_window_that_restarts_reports_what_it_left_out() {
        let mut log = AuthLog::new(1);
        let src = Origin::Phone("::1".parse().expect("ip"));
        assert!(log.note(0, src).write);
        assert!(!log.note(1, src).write);
        assert!(log.note(WINDOW_MS + 5, src).write);
        assert_eq!(
            log.take_summaries(WINDOW_MS + 5),
            vec![Summary {
                source: src,
                count: 1
            }]
        );
    }

    #[test]
    fn cycling_addresses_keeps_it_bounded_and_loses_no_count() {
        let mut log = AuthLog::new(1);
        let mut total = 0;
        for i in 0..20_000u32 {
            let ip = Origin::Phone(IpAddr::from(i.to_be_bytes()));
            log.note(0, ip);
            log.note(0, ip);
            total += 1;
        }
        let left_out: u64 = log.take_summaries(WINDOW_MS).iter().map(|s| s.count).sum();
        assert_eq!(left_out, total);
    }
}
