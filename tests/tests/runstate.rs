//! Run states end to end: `pbxctl runstate NAME` while the switch is down keeps the
//! choice for its next start; while it runs it applies at once; `pbxctl status`
//! and `pbxctl runstate` show it; an unknown name is refused.
#![allow(clippy::unwrap_used)]

use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{pbxctl_in, Conf, Switch, T};
use serde_json::Value;
use std::process::Output;

fn runstate(sw: &Switch, args: &[&str]) -> Output {
    let mut a = vec!["runstate", "--state-dir", sw.state_dir().to_str().unwrap()];
    a.extend_from_slice(args);
    pbxctl_in(sw.runtime_dir(), &a, T)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// 23 calls 21: which phone gets the INVITE (and it answers 486).
fn who_rings(sw: &Switch, p21: &Ua, p22: &Ua) -> u16 {
    let mut c = Ua::ext(sw.addr(), 23);
    c.register(300);
    let mut call = c.call_start("21", &sdp("23", 1, "sendrecv"));
    // Either phone may ring: look at both in turn until one does (bounded).
    let got = coventry_tests::poll_until(T, || {
        [(21u16, p21), (22, p22)].into_iter().find_map(|(n, p)| {
            p.recv_method("INVITE", std::time::Duration::from_millis(10))
                .map(|inv| (n, p, inv))
        })
    });
    let (n, p, inv) = got.expect("somebody rings");
    p.respond(&inv, 486, None);
    c.call_expect_final(&mut call, 486, T);
    n
}

#[test]
fn a_run_state_chosen_while_down_applies_at_start_and_changes_at_once_while_up() {
    let conf = Conf::new(&[21, 22, 23])
        .calls(1, 2)
        .section("runstate night", "forward.21 = 22");
    let mut sw = Switch::start(&conf.build());
    sw.stop();
    let o = runstate(&sw, &["night"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("kept"), "{}", text(&o));
    let o = runstate(&sw, &[]);
    assert!(text(&o).contains("night"), "{}", text(&o));
    sw.restart();
    let o = runstate(&sw, &[]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "night",
        "{}",
        text(&o)
    );
    let status: Value = serde_json::from_slice(&sw.pbxctl(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["runstate"], "night");
    let mut p21 = Ua::ext(sw.addr(), 21);
    p21.register(300);
    let mut p22 = Ua::ext(sw.addr(), 22);
    p22.register(300);
    assert_eq!(who_rings(&sw, &p21, &p22), 22, "night: 21 forwards to 22");
    // While up: at once.
    let o = runstate(&sw, &["day"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(who_rings(&sw, &p21, &p22), 21, "day: 21 rings");
    let o = runstate(&sw, &["holiday"]);
    assert_eq!(o.status.code(), Some(1), "unknown state: {}", text(&o));
    assert!(text(&o).contains("no run state holiday"), "{}", text(&o));
    let o = runstate(&sw, &["Bad Name"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // The choice made while up is kept for the next start.
    runstate(&sw, &["night"]);
    sw.restart();
    let o = runstate(&sw, &[]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "night",
        "{}",
        text(&o)
    );
    let _ = (&mut p21, &mut p22);
}

#[test]
fn a_run_state_that_cannot_be_read_is_an_error_never_a_silent_day() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-state-dir");
    let o = pbxctl_in(
        dir.path(),
        &["runstate", "--state-dir", missing.to_str().unwrap()],
        T,
    );
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot read the run state"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("day"), "{o:?}");
}
