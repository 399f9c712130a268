//! Registrations survive a clean restart and a `kill -9`; removed and expired ones
//! stay gone.
#![allow(clippy::unwrap_used)]

use coventry_tests::ua::Ua;
use coventry_tests::{poll_until, Conf, SnapshotExt, Switch, LONG, T};

fn conf() -> String {
    Conf::new(&[21, 22, 23]).build()
}

/// Wait (bounded by [`LONG`]) until the saved registrations (`registrations.json`
/// in the state directory) list every contact of `saved` and none of `gone`:
/// what a `kill -9` now leaves behind.
fn wait_saved(sw: &Switch, saved: &[String], gone: &[String]) {
    let path = sw.state_dir().join("registrations.json");
    let quoted = |uri: &String| format!("\"{uri}\"");
    let done = poll_until(LONG, || {
        let text = std::fs::read_to_string(&path).ok()?;
        (saved.iter().all(|u| text.contains(&quoted(u)))
            && !gone.iter().any(|u| text.contains(&quoted(u))))
        .then_some(())
    });
    assert!(
        done.is_some(),
        "{} never listed {saved:?} without {gone:?}:\n{}",
        path.display(),
        std::fs::read_to_string(&path).unwrap_or_default()
    );
}

#[test]
fn sigterm_exits_cleanly() {
    let mut sw = Switch::start(&conf());
    let st = sw.stop().expect("exit status");
    assert!(
        st.success(),
        "SIGTERM must end coventryd with status 0, got {st}"
    );
}

#[test]
fn registrations_survive_a_restart() {
    let mut sw = Switch::start(&conf());
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(3600);
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(3600);
    let old_pid = sw.pid();
    let before = sw
        .wait_contacts(22, &[b.contact_uri()])
        .ext(22)
        .unwrap()
        .active_contacts()[0]
        .expires_ms;
    sw.restart();
    assert_ne!(sw.pid(), old_pid);
    assert_eq!(sw.reader().header().pid, sw.pid().unwrap());
    sw.wait_contacts(21, &[a.contact_uri()]);
    let snap = sw.wait_contacts(22, &[b.contact_uri()]);
    let after = snap.ext(22).unwrap().active_contacts()[0].expires_ms;
    assert!(
        after.abs_diff(before) < 2000,
        "expiry changed across restart: {before} -> {after}"
    );
    // And the restored contact is reachable.
    assert_eq!(a.message("22", "after restart"), 200);
    assert_eq!(
        b.expect_request("MESSAGE after restart", T).text(),
        "after restart"
    );
}

#[test]
fn registrations_survive_kill_9() {
    let mut sw = Switch::start(&conf());
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(3600);
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(3600);
    // The phones have their 200s; the file is written soon after: wait for it.
    wait_saved(&sw, &[a.contact_uri(), b.contact_uri()], &[]);
    sw.kill9();
    sw.restart();
    sw.wait_contacts(21, &[a.contact_uri()]);
    sw.wait_contacts(22, &[b.contact_uri()]);
    assert_eq!(a.message("22", "after kill -9"), 200);
    assert_eq!(
        b.expect_request("MESSAGE after kill -9", T).text(),
        "after kill -9"
    );
}

#[test]
fn repeated_kill_9_keeps_the_latest_registrations() {
    let mut sw = Switch::start(&conf());
    let mut phones = Vec::new();
    for round in 0..3u16 {
        let mut p = Ua::ext(sw.addr(), 21 + round);
        p.register(3600);
        phones.push(p);
        let uris: Vec<String> = phones.iter().map(Ua::contact_uri).collect();
        wait_saved(&sw, &uris, &[]);
        sw.kill9();
        sw.restart();
        for (i, p) in phones.iter().enumerate() {
            eprintln!("round {round}: extension {}", 21 + i);
            sw.wait_contacts(21 + i as u16, &[p.contact_uri()]);
        }
    }
}

#[test]
fn removed_registrations_stay_removed() {
    let mut sw = Switch::start(&conf());
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(3600);
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(3600);
    let ex = a.register_exchange(Some(0), None);
    assert_eq!(ex.status(), 200);
    let mark = sw.mark();
    sw.fifo_write(b"#1 release 22\n").unwrap();
    sw.expect_event_after(
        mark,
        "release result",
        |e| {
            matches!(
                e,
                coventry_shared::event::Event::CommandResult { id: Some(1), .. }
            )
        },
        T,
    );
    wait_saved(&sw, &[], &[a.contact_uri(), b.contact_uri()]);
    sw.kill9();
    sw.restart();
    // Loaded at start, before the loop reads the FIFO: after a control fence the
    // state block shows what was loaded. Neither may be back.
    sw.control_fence();
    let snap = sw.snapshot();
    assert!(!snap.is_registered(21), "un-REGISTERed contact came back");
    assert!(!snap.is_registered(22), "released contact came back");
}

#[test]
fn expired_registrations_are_dropped_at_start() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).server("min_expires = 1").build());
    let mut a = Ua::ext(sw.addr(), 21);
    let r = a.register_exchange(Some(2), None);
    assert_eq!(r.status(), 200);
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(3600);
    let expires_ms = sw
        .wait_contacts(21, &[a.contact_uri()])
        .ext(21)
        .unwrap()
        .active_contacts()[0]
        .expires_ms;
    wait_saved(&sw, &[a.contact_uri(), b.contact_uri()], &[]);
    sw.kill9();
    // While it is down, 21's registration runs out: the clock passes its expiry.
    let passed = poll_until(LONG, || {
        (coventry_shared::now_ms() > expires_ms).then_some(())
    });
    assert!(passed.is_some(), "the clock never passed {expires_ms}");
    sw.restart();
    let snap = sw.wait_contacts(22, &[b.contact_uri()]);
    assert!(
        !snap.is_registered(21),
        "an expired registration was restored"
    );
}

#[test]
fn a_corrupt_settings_file_is_moved_aside_and_the_switch_starts() {
    let mut sw = Switch::start(&conf());
    let out = sw.pbxctl(&["dnd", "21", "on"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sw.wait_settings(21, "DND on", |r| r.dnd);
    let path = sw.state_dir().join("settings.json");
    assert!(path.exists(), "settings are saved at once");
    sw.stop();
    // A half-written file, as a disk full or a crashed editor would leave it.
    std::fs::write(&path, b"{\"version\":1,\"settings\":{\"exts\":").unwrap();
    sw.restart();
    assert!(
        !sw.snapshot().settings_of(21).dnd,
        "the switch starts without the lost settings"
    );
    let moved: Vec<_> = std::fs::read_dir(sw.state_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("settings.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "the bad file is kept aside, not deleted");
    assert!(
        sw.log().contains("settings file unreadable"),
        "and the log says so:\n{}",
        sw.log()
    );
    // New settings are saved again.
    assert!(sw.pbxctl(&["dnd", "22", "on"]).status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("22"), "{text}");
}

#[test]
fn a_corrupt_calls_file_is_moved_aside_and_the_switch_starts() {
    let mut sw = Switch::start(&conf());
    sw.stop();
    // A torn file, as a full disk or a crashed editor would leave it.
    let path = sw.state_dir().join("calls.json");
    std::fs::write(
        &path,
        b"{\"version\":1,\"instance\":\"abc123\",\"calls\":[{\"no\":",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    sw.restart();
    let moved: Vec<_> = std::fs::read_dir(sw.state_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("calls.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "the bad file is kept aside, not deleted");
    assert!(
        sw.log().contains("calls file unreadable"),
        "and the log says so:\n{}",
        sw.log()
    );
    // The switch works.
    let mut p = Ua::ext(sw.addr(), 21);
    p.register(300);
}
