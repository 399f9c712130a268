//! The link to the daemon: the shared follower of its state block
//! ([`Follower`]) turned into the console's messages, plus a new site snapshot
//! whenever what the screen shows of the block changed.

use crate::msg::{DaemonMsg, Msg};
use crate::site::Site;
use coventry_shared::client::follow::{Change, Follower, Start};
use coventry_shared::stateblock::StateReader;
use std::path::Path;
use std::time::Duration;

/// How often a missing state block is looked for again.
pub const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// Events already in the ring that the log starts with.
pub const HISTORY: u64 = 200;

/// The console's view of one runtime directory's state block.
pub struct DaemonLink {
    follower: Follower,
    last_site: Option<Site>,
    /// A new daemon replaced the one seen before, not yet reported up.
    restarted: bool,
}

impl DaemonLink {
    /// A link to the state block at `path` (opened at the first poll).
    pub fn new(path: &Path) -> DaemonLink {
        DaemonLink {
            follower: Follower::new(
                path,
                Start::Last(HISTORY),
                Start::Last(HISTORY),
                REOPEN_EVERY,
            ),
            last_site: None,
            restarted: false,
        }
    }

    /// The block being read, if one is open.
    pub fn reader(&self) -> Option<&StateReader> {
        self.follower.reader()
    }

    /// Look at the state block: what changed since the last poll, as messages (the
    /// daemon's condition first, then a new snapshot, then new events).
    pub fn poll(&mut self, now_ms: u64) -> Vec<Msg> {
        let mut out = Vec::new();
        let mut events_out = Vec::new();
        for change in self.follower.poll(now_ms) {
            match change {
                Change::Restarted { .. } => {
                    // A new daemon: its site is news even if it looks the same.
                    self.last_site = None;
                    self.restarted = true;
                }
                Change::Up { pid } => {
                    let again = std::mem::take(&mut self.restarted);
                    out.push(Msg::Daemon(DaemonMsg::Up { pid, again }));
                }
                Change::Stale { heartbeat_ms } => {
                    out.push(Msg::Daemon(DaemonMsg::Stale { heartbeat_ms }));
                }
                Change::Down(why) => out.push(Msg::Daemon(DaemonMsg::Down {
                    reason: why.to_string(),
                })),
                Change::Events { events, lost } => events_out.push(Msg::Events { events, lost }),
            }
        }
        if let Some(snap) = self.follower.reader().and_then(StateReader::snapshot) {
            let site = Site::from_snapshot(&snap);
            if self.last_site.as_ref() != Some(&site) {
                self.last_site = Some(site.clone());
                out.push(Msg::Site(Box::new(site)));
            }
        }
        out.extend(events_out);
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
            state_dir: String::new(),
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
            matches!(&msgs[0], Msg::Daemon(DaemonMsg::Down { reason }) if reason.contains("stopped")),
            "{msgs:?}"
        );
        assert!(
            matches!(msgs[1], Msg::Daemon(DaemonMsg::Up { again: true, .. })),
            "{msgs:?}"
        );
        assert!(matches!(msgs[2], Msg::Site(_)));
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
