//! The link to the daemon: opening (and re-opening) its state block, judging
//! whether it is alive, and turning what changed since the last look into messages.

use crate::msg::{DaemonMsg, Msg};
use crate::site::Site;
use coventry_shared::client::{liveness, Liveness};
use coventry_shared::stateblock::{EventCursor, OpenError, StateReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a missing state block is looked for again.
pub const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// Events already in the ring that the log starts with.
pub const HISTORY: u64 = 200;
/// Events read per call of `poll_events`.
const BATCH: usize = 512;

/// What was last reported about the daemon, to report only changes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Up(u32),
    Stale,
    Down(String),
}

/// The console's view of one runtime directory's state block.
pub struct DaemonLink {
    path: PathBuf,
    reader: Option<StateReader>,
    cursor: EventCursor,
    last_site: Option<Site>,
    condition: Option<Condition>,
    last_attempt: Option<Instant>,
    ever_up: bool,
    new_block: bool,
}

impl DaemonLink {
    /// A link to the state block at `path` (opened at the first poll).
    pub fn new(path: &Path) -> DaemonLink {
        DaemonLink {
            path: path.to_path_buf(),
            reader: None,
            cursor: EventCursor { next: 0 },
            last_site: None,
            condition: None,
            last_attempt: None,
            ever_up: false,
            new_block: false,
        }
    }

    fn report(&mut self, c: Condition, out: &mut Vec<Msg>) {
        if self.condition.as_ref() == Some(&c) {
            return;
        }
        out.push(Msg::Daemon(match &c {
            Condition::Up(pid) => {
                let again = self.ever_up && self.new_block;
                self.ever_up = true;
                self.new_block = false;
                DaemonMsg::Up { pid: *pid, again }
            }
            Condition::Stale => DaemonMsg::Stale {
                heartbeat_ms: self.reader.as_ref().map_or(0, |r| r.header().heartbeat_ms),
            },
            Condition::Down(reason) => DaemonMsg::Down {
                reason: reason.clone(),
            },
        }));
        self.condition = Some(c);
    }

    fn open(&mut self, out: &mut Vec<Msg>) {
        if self
            .last_attempt
            .is_some_and(|t| t.elapsed() < REOPEN_EVERY)
        {
            return;
        }
        self.last_attempt = Some(Instant::now());
        match StateReader::open(&self.path) {
            Ok(r) => {
                let head = r.header().event_head;
                let oldest = r.cursor_at_start().next;
                self.cursor = EventCursor {
                    next: head.saturating_sub(HISTORY).max(oldest),
                };
                self.reader = Some(r);
                self.last_site = None;
                self.new_block = true;
            }
            Err(e) => {
                let reason = match e {
                    OpenError::Missing(p) => {
                        format!("no state block at {} (is coventryd running?)", p.display())
                    }
                    other => other.to_string(),
                };
                self.report(Condition::Down(reason), out);
            }
        }
    }

    /// Look at the state block: what changed since the last poll, as messages (the
    /// daemon's condition first, then a new snapshot, then new events).
    pub fn poll(&mut self, now_ms: u64) -> Vec<Msg> {
        let mut out = Vec::new();
        if self.reader.as_ref().is_some_and(StateReader::replaced) {
            self.reader = None;
            self.last_attempt = None;
        }
        if self.reader.is_none() {
            self.open(&mut out);
        }
        let Some(reader) = &self.reader else {
            return out;
        };
        let h = reader.header();
        let condition = match liveness(reader, &h, now_ms) {
            Liveness::Gone => Condition::Down(format!(
                "its process (pid {}) is gone; the state block is left over",
                h.pid
            )),
            Liveness::StaleHeartbeat => Condition::Stale,
            Liveness::Running => Condition::Up(h.pid),
        };
        self.report(condition, &mut out);
        let Some(reader) = &self.reader else {
            return out;
        };
        if let Some(snap) = reader.snapshot() {
            let site = Site::from_snapshot(&snap);
            if self.last_site.as_ref() != Some(&site) {
                self.last_site = Some(site.clone());
                out.push(Msg::Site(Box::new(site)));
            }
        }
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
            out.push(Msg::Events { events, lost });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::dialplan::Plan;
    use coventry_shared::event::Event;
    use coventry_shared::stateblock::{BlockInit, StateWriter};

    fn init() -> BlockInit {
        BlockInit {
            plan: Plan::TwoDigit,
            bound: "127.0.0.1:5060".into(),
            realm: "test".into(),
            start_ms: 1_000,
        }
    }

    #[test]
    fn follows_a_block_through_its_replacement() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state");
        let mut link = DaemonLink::new(&path);
        let msgs = link.poll(5_000);
        assert!(
            matches!(&msgs[..], [Msg::Daemon(DaemonMsg::Down { reason })] if reason.contains("no state block")),
            "{msgs:?}"
        );
        assert!(link.poll(5_000).is_empty(), "nothing new to say");

        let mut w = StateWriter::create(&path, &init()).expect("create");
        w.heartbeat(5_000);
        w.push_event(
            5_000,
            &Event::Notice {
                text: "hello".into(),
            },
        );
        std::thread::sleep(REOPEN_EVERY);
        let msgs = link.poll(5_000);
        assert!(matches!(
            msgs[0],
            Msg::Daemon(DaemonMsg::Up { again: false, .. })
        ));
        assert!(matches!(msgs[1], Msg::Site(_)));
        assert!(matches!(&msgs[2], Msg::Events { events, lost: 0 } if events.len() == 1));
        assert!(link.poll(5_500).is_empty(), "no change, no message");

        let msgs = link.poll(9_000);
        assert!(matches!(
            msgs[..],
            [Msg::Daemon(DaemonMsg::Stale {
                heartbeat_ms: 5_000
            })]
        ));

        drop(w);
        let w = StateWriter::create(&path, &init()).expect("create again");
        w.heartbeat(10_000);
        let msgs = link.poll(10_000);
        assert!(
            matches!(msgs[0], Msg::Daemon(DaemonMsg::Up { again: true, .. })),
            "{msgs:?}"
        );
        assert!(matches!(msgs[1], Msg::Site(_)));
    }

    #[test]
    fn a_truncated_block_reads_as_the_daemon_down() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state");
        let w = StateWriter::create(&path, &init()).expect("create");
        w.heartbeat(5_000);
        let mut link = DaemonLink::new(&path);
        let msgs = link.poll(5_000);
        assert!(
            matches!(msgs[0], Msg::Daemon(DaemonMsg::Up { .. })),
            "{msgs:?}"
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(0)
            .expect("truncate");
        let msgs = link.poll(5_100);
        assert!(
            matches!(&msgs[..], [Msg::Daemon(DaemonMsg::Down { reason })] if reason.contains("truncated")),
            "{msgs:?}"
        );
        drop(w);
    }
}
