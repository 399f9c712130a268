//! The follower of a state block (what `pbxctl watch` and the console print) on
//! a clock the test moves: a daemon that is gone is reported once however often
//! the follower looks, and the block's events are still read meanwhile.

use coventry_shared::client::follow::{Change, Down, Follower, Start};
use coventry_shared::dialplan::Plan;
use coventry_shared::event::Event;
use coventry_shared::stateblock::{BlockInit, Header, StateWriter};
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// A pid that certainly belonged to a process that is gone now.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

#[test]
fn a_gone_daemon_is_reported_once_however_often_the_follower_looks() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    let mut w = StateWriter::create(
        &path,
        &BlockInit {
            plan: Plan::TwoDigit,
            bound: "127.0.0.1:5060".into(),
            realm: "test".into(),
            state_dir: String::new(),
            start_ms: 1_000,
        },
    )
    .expect("create");
    let t0 = 5_000;
    w.heartbeat(t0);
    let mut f = Follower::new(&path, Start::End, Start::Zero, Duration::ZERO);
    assert!(matches!(f.poll(t0)[..], [Change::Up { .. }]));

    let dead = dead_pid();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open block")
        .write_all_at(
            &dead.to_ne_bytes(),
            std::mem::offset_of!(Header, pid) as u64,
        )
        .expect("write pid");
    let mut changes = Vec::new();
    // Looked at every 250 ms (pbxctl's nap) for a minute, an event now and then.
    for i in 1..=240u64 {
        if i % 60 == 0 {
            w.push_event(
                t0 + i * 250,
                &Event::Notice {
                    text: format!("n{i}"),
                },
            );
        }
        changes.extend(f.poll(t0 + i * 250));
    }
    let downs: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c, Change::Down(_)))
        .collect();
    assert!(
        matches!(downs[..], [Change::Down(Down::Gone(p))] if *p == dead),
        "one report of the gone daemon: {changes:?}"
    );
    let events = changes
        .iter()
        .filter_map(|c| match c {
            Change::Events { events, .. } => Some(events.len()),
            _ => None,
        })
        .sum::<usize>();
    assert_eq!(events, 4, "its events are still read: {changes:?}");
}
