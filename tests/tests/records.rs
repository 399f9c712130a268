//! Call records end to end: calls of every outcome through the real daemon end up
//! in the records file of its state directory (`records.jsonl`), `pbxctl records`
//! lists and filters them (extension, outcome, since, last, `--json`), also while
//! the daemon is down; records shown before a `kill -9` are still there after it,
//! and call numbers go on counting across restarts; the file rotates at its size
//! limit and a torn last line costs that line only.
#![allow(clippy::unwrap_used)]

use coventry_shared::record::{CallRecord, RECORDS_FILE};
use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{pbxctl_in, poll_until, Conf, Switch, T};
use serde_json::Value;
use std::process::Output;

fn phone(sw: &Switch, ext: u16) -> Ua {
    let mut p = Ua::ext(sw.addr(), ext);
    p.register(300);
    p
}

/// `pbxctl records ARGS --json` against the switch's state directory.
fn records(sw: &Switch, args: &[&str]) -> Vec<CallRecord> {
    let o = pbxctl(sw, &[&["records", "--json"], args].concat());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    serde_json::from_slice::<Vec<CallRecord>>(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", show(&o)))
}

/// `pbxctl records ...` (`args` start with `records`) on the switch's state
/// directory.
fn pbxctl(sw: &Switch, args: &[&str]) -> Output {
    let mut a = vec![args[0], "--state-dir", sw.state_dir().to_str().unwrap()];
    a.extend_from_slice(&args[1..]);
    pbxctl_in(sw.runtime_dir(), &a, T)
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Wait until `pbxctl records` lists at least `n` records.
fn wait_records(sw: &Switch, n: usize) -> Vec<CallRecord> {
    poll_until(T, || {
        let r = records(sw, &[]);
        (r.len() >= n).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "fewer than {n} records: {:?}\n{}",
            records(sw, &[]),
            sw.log()
        )
    })
}

/// 21 calls 22; 22 answers with `status` (200: answered and hung up by 21).
fn call(a: &mut Ua, b: &Ua, status: u16) {
    let mut c = a.call_start("22", &sdp("21", 1, "sendrecv"));
    let inv = b.expect_invite("the call", T);
    if status == 200 {
        b.respond_sdp(&inv, 200, &sdp("22", 1, "sendrecv"));
        a.call_expect(&mut c, 200, T);
        a.ack(&mut c);
        assert_eq!(a.bye(c.dialog()).status(), 200);
    } else {
        b.respond(&inv, status, None);
        a.call_expect_final(&mut c, status, T);
    }
}

#[test]
fn every_call_gets_a_record_that_pbxctl_lists_and_filters() {
    let sw = Switch::start(&Conf::new(&[21, 22, 23]).calls(1, 2).build());
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    call(&mut a, &b, 200);
    call(&mut a, &b, 486);
    call(&mut a, &b, 603);
    // Unknown and unregistered numbers, a feature code.
    let mut c = a.call_start("77", &sdp("21", 1, "sendrecv"));
    a.call_expect_final(&mut c, 404, T);
    let mut c = a.call_start("23", &sdp("21", 1, "sendrecv"));
    a.call_expect_final(&mut c, 480, T);
    let mut c = a.call_start("*78", &sdp("21", 1, "sendrecv"));
    a.call_expect(&mut c, 200, T);
    a.ack(&mut c);
    let all = wait_records(&sw, 5);
    let outcomes: Vec<&str> = all.iter().map(|r| r.outcome.name()).collect();
    assert_eq!(
        outcomes,
        ["completed", "busy", "rejected", "unavailable", "completed"],
        "{all:?}"
    );
    // The call that reached no one is kept apart, with the attempts.
    let attempts = records(&sw, &["--attempts"]);
    let outcomes: Vec<&str> = attempts.iter().map(|r| r.outcome.name()).collect();
    assert_eq!(outcomes, ["unknown-number"], "{attempts:?}");
    let first = &all[0];
    assert_eq!(
        (first.caller.as_str(), first.dialled.as_str()),
        ("21", "22")
    );
    assert_eq!(first.answered_by.as_deref(), Some("22"));
    assert!(first.answer_ms.is_some() && first.end_ms >= first.answer_ms.unwrap());
    let feature = all.last().unwrap();
    let route = serde_json::to_value(feature.route).unwrap();
    assert_eq!(route, Value::from("feature"));
    assert!(
        all.windows(2).all(|w| w[0].call < w[1].call),
        "numbers rise"
    );

    // Filters.
    assert_eq!(records(&sw, &["--outcome", "busy"]).len(), 1);
    assert_eq!(records(&sw, &["--ext", "23"]).len(), 1);
    assert_eq!(records(&sw, &["--last", "2"]).len(), 2);
    assert_eq!(records(&sw, &["--since", "1h"]).len(), 5);
    assert_eq!(records(&sw, &["--since", "2999-01-01"]).len(), 0);
    let o = pbxctl(&sw, &["records", "--outcome", "nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    // The table for people.
    let o = pbxctl(&sw, &["records", "--ext", "22"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("ANSWERED BY") && text.contains("rejected"),
        "{text}"
    );
}

#[test]
fn records_survive_kill_9_and_numbers_keep_counting() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).calls(1, 2).build());
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    call(&mut a, &b, 200);
    call(&mut a, &b, 486);
    let before = wait_records(&sw, 2);
    sw.kill9();
    // The daemon is down: the records are still there to read.
    let after_kill = records(&sw, &[]);
    assert_eq!(after_kill, before, "acknowledged records lost by kill -9");
    sw.restart();
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    call(&mut a, &b, 200);
    let all = wait_records(&sw, 3);
    let last_before = before.iter().map(|r| r.call).max().unwrap();
    assert!(
        all[2].call > last_before,
        "call numbers start again after a restart: {:?}",
        all.iter().map(|r| r.call).collect::<Vec<_>>()
    );
    // After a clean stop the next call gets the next number.
    let last = all[2].call;
    sw.stop();
    sw.restart();
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    call(&mut a, &b, 200);
    let all = wait_records(&sw, 4);
    assert_eq!(
        all[3].call,
        last + 1,
        "numbering goes on after a clean stop: {:?}",
        all.iter().map(|r| r.call).collect::<Vec<_>>()
    );
    // After kill -9 at most one block of numbers (100) is skipped.
    assert!(all[2].call - last_before <= 100, "{all:?}");
    // A torn last line (a crash mid-write) costs that line only.
    let path = sw.state_dir().join(RECORDS_FILE);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"call\": 99, \"outc");
    std::fs::write(&path, text).unwrap();
    let o = pbxctl(&sw, &["records", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("1 unreadable"),
        "{}",
        show(&o)
    );
}

#[test]
fn the_records_file_rotates_at_its_size_limit() {
    let sw = Switch::start(
        &Conf::new(&[21, 22])
            .calls(1, 2)
            .section("records", "max_size = 4096")
            .section("records", "keep = 2")
            .build(),
    );
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    for _ in 0..20 {
        call(&mut a, &b, 486);
    }
    let rotated = sw.state_dir().join(format!("{RECORDS_FILE}.1"));
    let ok = poll_until(T, || rotated.exists().then_some(()));
    assert!(ok.is_some(), "no rotation:\n{}", sw.log());
    assert!(!sw.state_dir().join(format!("{RECORDS_FILE}.3")).exists());
    let all = records(&sw, &[]);
    assert!(all.len() >= 15, "{}", all.len());
    assert!(
        all.windows(2).all(|w| w[0].call < w[1].call),
        "oldest first"
    );
}

#[test]
fn pbxctl_finds_the_records_of_the_daemon_it_follows_without_state_dir() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    call(&mut a, &b, 486);
    wait_records(&sw, 1);
    // Only the runtime directory: the daemon publishes its state directory there.
    let o = pbxctl_in(sw.runtime_dir(), &["records", "--json"], T);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let got: Vec<CallRecord> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got.len(), 1, "{}", show(&o));
    let o = pbxctl_in(sw.runtime_dir(), &["runstate"], T);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}
