//! One follower of a runtime directory's state block and event ring, for every
//! client that watches the daemon over time (`pbxctl watch`, the console): it
//! opens the block (and opens it again when a restarted daemon replaces it),
//! judges the daemon's condition, and hands out what changed since the last look
//! — the daemon up, stale, down or restarted, new events, events lost.
//!
//! It never sleeps: the caller polls, and between polls waits on the ring with
//! [`Follower::wait`] (a futex wake-up, no busy polling).

use super::{liveness, Liveness};
use crate::event::EventRecord;
use crate::stateblock::{EventCursor, OpenError, StateReader, RING_SLOTS};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where reading a newly opened block's ring starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// With the next event written.
    End,
    /// With the oldest event the ring still holds.
    Oldest,
    /// With sequence 0: events the ring no longer holds are reported lost.
    Zero,
    /// With at most this many of the newest events already there.
    Last(u64),
}

/// Why there is no running daemon to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// No state block at the path.
    Missing(PathBuf),
    /// The block's daemon process (this pid) is gone; the block is left over.
    Gone(u32),
    /// The block of this pid was cut under us (a new one is waited for).
    Truncated(u32),
    /// The daemon of this pid stopped and removed or replaced its block.
    Replaced(u32),
    /// The block may not be trusted (owner or mode); it is never read.
    Untrusted(String),
    /// It cannot be opened for another reason (half made, I/O error).
    Unreadable(String),
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::Missing(p) => write!(
                f,
                "no state block at {} (is coventryd running?)",
                p.display()
            ),
            Down::Gone(pid) => write!(
                f,
                "its process (pid {pid}) is gone; the state block is left over"
            ),
            Down::Truncated(pid) => write!(f, "the state block of pid {pid} was truncated"),
            Down::Replaced(pid) => write!(f, "coventryd (pid {pid}) stopped"),
            Down::Untrusted(m) | Down::Unreadable(m) => f.write_str(m),
        }
    }
}

/// Something that changed, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new block replaced the one read before: a new daemon (reported before
    /// its condition and events).
    Restarted {
        /// The new daemon's process id.
        pid: u32,
    },
    /// The daemon runs: first seen, after a restart, or recovered from a stale
    /// heartbeat.
    Up {
        /// Its process id.
        pid: u32,
    },
    /// Its process exists but its heartbeat is old (stuck).
    Stale {
        /// The last heartbeat, ms since the epoch.
        heartbeat_ms: u64,
    },
    /// No running daemon.
    Down(Down),
    /// New events, and how many were overwritten before they could be read.
    Events {
        /// The events, oldest first.
        events: Vec<EventRecord>,
        /// Events lost before them.
        lost: u64,
    },
}

/// The condition last reported, so only changes are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Up(u32),
    Stale,
    Down(Down),
}

/// Follows one state block path across daemon restarts.
pub struct Follower {
    path: PathBuf,
    reader: Option<StateReader>,
    cursor: EventCursor,
    /// Where the next opened block is read from.
    start: Start,
    /// Where blocks after the first are read from.
    later: Start,
    condition: Option<Condition>,
    last_attempt: Option<Instant>,
    reopen_every: Duration,
    /// A block was attached before (the next one is a restart).
    attached_before: bool,
}

/// Events read from the ring per step of a poll.
const BATCH: usize = 512;

impl Follower {
    /// A follower of the block at `path`, opened at the first poll. The first
    /// block is read from `first`, blocks of later daemons from `later`; a missing
    /// block is looked for at most every `reopen_every`.
    pub fn new(path: &Path, first: Start, later: Start, reopen_every: Duration) -> Follower {
        Follower {
            path: path.to_path_buf(),
            reader: None,
            cursor: EventCursor { next: 0 },
            start: first,
            later,
            condition: None,
            last_attempt: None,
            reopen_every,
            attached_before: false,
        }
    }

    /// Follow an already opened block (e.g. one a client checked before it began).
    pub fn with_reader(mut self, reader: StateReader) -> Follower {
        self.attach(reader, &mut Vec::new());
        self
    }

    /// The block being read, if one is open.
    pub fn reader(&self) -> Option<&StateReader> {
        self.reader.as_ref()
    }

    fn attach(&mut self, reader: StateReader, out: &mut Vec<Change>) {
        let head = reader.header().event_head;
        let oldest = head.saturating_sub(RING_SLOTS as u64);
        let next = match self.start {
            Start::End => head,
            Start::Oldest => oldest,
            Start::Zero => 0,
            Start::Last(n) => head.saturating_sub(n).max(oldest),
        };
        if self.attached_before {
            out.push(Change::Restarted {
                pid: reader.header().pid,
            });
            // The new daemon's condition is news even if it equals the old one's.
            self.condition = None;
        }
        self.cursor = EventCursor { next };
        self.reader = Some(reader);
        self.start = self.later;
        self.attached_before = true;
    }

    fn report(&mut self, c: Condition, out: &mut Vec<Change>) {
        if self.condition.as_ref() == Some(&c) {
            return;
        }
        out.push(match &c {
            Condition::Up(pid) => Change::Up { pid: *pid },
            Condition::Stale => Change::Stale {
                heartbeat_ms: self.reader.as_ref().map_or(0, |r| r.header().heartbeat_ms),
            },
            Condition::Down(d) => Change::Down(d.clone()),
        });
        self.condition = Some(c);
    }

    fn open(&mut self, out: &mut Vec<Change>, quiet: bool) {
        if self
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.reopen_every)
        {
            return;
        }
        self.last_attempt = Some(Instant::now());
        match StateReader::open(&self.path) {
            Ok(r) => self.attach(r, out),
            Err(e) => {
                let down = match e {
                    OpenError::Missing(p) => Down::Missing(p),
                    e @ OpenError::Untrusted(_) => Down::Untrusted(e.to_string()),
                    other => Down::Unreadable(other.to_string()),
                };
                if !quiet || matches!(down, Down::Untrusted(_)) {
                    self.report(Condition::Down(down), out);
                }
            }
        }
    }

    /// Everything new in the open block's ring.
    fn drain(&mut self, out: &mut Vec<Change>) {
        let Some(reader) = &self.reader else {
            return;
        };
        let mut events = Vec::new();
        let mut lost = 0;
        loop {
            let polled = reader.poll_events(&mut self.cursor, BATCH);
            lost += polled.lost;
            let n = polled.events.len();
            events.extend(polled.events);
            if n < BATCH {
                break;
            }
        }
        if !events.is_empty() || lost > 0 {
            out.push(Change::Events { events, lost });
        }
    }

    /// Look at the block: what changed since the last poll, in order (a replaced
    /// block's last events, the daemon's condition, new events).
    pub fn poll(&mut self, now_ms: u64) -> Vec<Change> {
        let mut out = Vec::new();
        if let Some(r) = &self.reader {
            if r.replaced() {
                let pid = r.header().pid;
                let truncated = r.truncated();
                if !truncated {
                    // What the old daemon wrote last, before the new block.
                    self.drain(&mut out);
                }
                self.reader = None;
                self.last_attempt = None;
                let down = if truncated {
                    Down::Truncated(pid)
                } else {
                    Down::Replaced(pid)
                };
                if !matches!(self.condition, Some(Condition::Down(Down::Gone(_)))) || truncated {
                    self.report(Condition::Down(down), &mut out);
                }
            }
        }
        if self.reader.is_none() {
            // When the block just went, why it cannot be opened again is news at
            // the next attempt, not on top of why it went.
            let just_lost = out.iter().any(|c| matches!(c, Change::Down(_)));
            self.open(&mut out, just_lost);
        }
        let Some(reader) = &self.reader else {
            return out;
        };
        let h = reader.header();
        let condition = match liveness(reader, &h, now_ms) {
            Liveness::Gone => Condition::Down(Down::Gone(h.pid)),
            Liveness::StaleHeartbeat => Condition::Stale,
            Liveness::Running => Condition::Up(h.pid),
        };
        self.report(condition, &mut out);
        self.drain(&mut out);
        out
    }

    /// Sleep until the daemon writes an event or `nap` is over; without an open
    /// block, just `nap`.
    pub fn wait(&self, nap: Duration) {
        match &self.reader {
            Some(r) => r.wait_for_events(&self.cursor, nap),
            None => std::thread::sleep(nap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::stateblock::{BlockInit, StateWriter};

    fn notice(w: &mut StateWriter, text: &str) {
        w.push_event(5_000, &Event::Notice { text: text.into() });
    }

    fn texts(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Events { events, .. } => {
                    Some(events.iter().map(|e| format!("{:?}", e.event)))
                }
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn follows_a_block_through_its_replacement() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state");
        let mut f = Follower::new(&path, Start::Last(10), Start::Zero, Duration::ZERO);
        let c = f.poll(5_000);
        assert!(matches!(&c[..], [Change::Down(Down::Missing(_))]), "{c:?}");
        assert!(f.poll(5_000).is_empty(), "nothing new to say");

        let mut w = StateWriter::create(&path, &BlockInit::for_tests()).expect("create");
        w.heartbeat(5_000);
        notice(&mut w, "first");
        let c = f.poll(5_000);
        assert!(matches!(c[0], Change::Up { .. }), "{c:?}");
        assert_eq!(texts(&c).len(), 1);
        notice(&mut w, "last words");
        // The daemon restarts: the old block is replaced by a new one.
        drop(w);
        std::fs::remove_file(&path).expect("rm");
        let mut w = StateWriter::create(&path, &BlockInit::for_tests()).expect("create again");
        w.heartbeat(5_000);
        notice(&mut w, "second life");
        let c = f.poll(5_000);
        let t = texts(&c);
        assert!(t[0].contains("last words"), "{c:?}");
        assert!(
            c.iter()
                .any(|x| matches!(x, Change::Down(Down::Replaced(_)))),
            "{c:?}"
        );
        let restart = c.iter().position(|x| matches!(x, Change::Restarted { .. }));
        let up = c.iter().position(|x| matches!(x, Change::Up { .. }));
        assert!(restart.is_some() && restart < up, "{c:?}");
        assert!(t.last().is_some_and(|s| s.contains("second life")), "{c:?}");
    }

    #[test]
    fn stale_and_gone_are_reported_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state");
        let w = StateWriter::create(&path, &BlockInit::for_tests()).expect("create");
        w.heartbeat(5_000);
        let mut f = Follower::new(&path, Start::End, Start::Zero, Duration::ZERO);
        assert!(matches!(f.poll(5_000)[..], [Change::Up { .. }]));
        let c = f.poll(5_000 + super::super::STALE_AFTER_MS + 1);
        assert!(
            matches!(
                c[..],
                [Change::Stale {
                    heartbeat_ms: 5_000
                }]
            ),
            "{c:?}"
        );
        assert!(f.poll(5_000 + super::super::STALE_AFTER_MS + 2).is_empty());
        w.heartbeat(9_000);
        assert!(matches!(f.poll(9_000)[..], [Change::Up { .. }]));
    }

    #[test]
    fn start_positions() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state");
        let mut w = StateWriter::create(&path, &BlockInit::for_tests()).expect("create");
        w.heartbeat(5_000);
        for i in 0..5 {
            notice(&mut w, &format!("n{i}"));
        }
        for (start, n) in [
            (Start::End, 0),
            (Start::Last(2), 2),
            (Start::Oldest, 5),
            (Start::Zero, 5),
        ] {
            let mut f = Follower::new(&path, start, Start::Zero, Duration::ZERO);
            assert_eq!(texts(&f.poll(5_000)).len(), n, "{start:?}");
        }
    }
}
