//! Reloading the configuration (SIGHUP and `pbxctl reload`): new lines work at
//! once, removed lines lose their registrations, a broken file is refused with its
//! place named and the running configuration kept, what only a restart can change
//! is refused whole, and a change in each section applies ([hooks]: the new hook
//! runs and the old one no longer does).
#![allow(clippy::unwrap_used)]

use coventry_shared::event::{Event, Unregistration};
use coventry_shared::stateblock::EXT_CONFIGURED;
use coventry_tests::ua::Ua;
use coventry_tests::{Conf, Switch, T};

fn config_path(sw: &Switch) -> std::path::PathBuf {
    sw.root().join("coventry.conf")
}

#[test]
fn sighup_applies_a_new_configuration() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(300);
    sw.wait_contacts(22, &[b.contact_uri()]);
    let mark = sw.mark();

    let new = Conf::new(&[21, 23])
        .ext_line(21, "display = Front Desk")
        .build();
    std::fs::write(config_path(&sw), new).unwrap();
    sw.signal(nix::sys::signal::Signal::SIGHUP);

    sw.expect_event_after(
        mark,
        "22 removed by the reload",
        |e| {
            matches!(
                e,
                Event::Unregistered {
                    ext: 22,
                    why: Unregistration::Removed,
                    ..
                }
            )
        },
        T,
    );
    let snap = sw.wait_state("23 configured, 22 not, 21 renamed", T, |s| {
        s.ext(23).unwrap().flags & EXT_CONFIGURED != 0
            && s.ext(22).unwrap().flags & EXT_CONFIGURED == 0
            && s.ext(21).unwrap().name() == "Front Desk"
    });
    assert!(!snap.is_registered(22));
    assert!(
        snap.is_registered(21),
        "21 is still configured: its registration stays"
    );
    let mut c = Ua::ext(sw.addr(), 23);
    c.register(300);
    // 22 no longer exists: its secret no longer opens anything.
    let ex = b.register_exchange(Some(300), None);
    assert_eq!(ex.status(), 403);
}

#[test]
fn a_broken_file_is_refused_and_the_old_configuration_kept() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
    let broken = Conf::new(&[21, 22]).ext_line(22, "lines = 9").build();
    std::fs::write(config_path(&sw), &broken).unwrap();
    let out = sw.pbxctl(&["reload"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused reload is a rejected command"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = broken.lines().position(|l| l == "lines = 9").unwrap() + 1;
    assert!(
        format!("{stdout}{stderr}").contains(&format!("coventry.conf:{line}: [22] lines")),
        "the error names file, line and key:\n{stdout}{stderr}"
    );
    let snap = sw.snapshot();
    assert!(snap.is_registered(21));
    assert!(snap.ext(22).unwrap().flags & EXT_CONFIGURED != 0);
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(300);
}

#[test]
fn the_dial_plan_changes_only_with_a_restart() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let three = Conf::new(&[150]).digits(3).build();
    std::fs::write(config_path(&sw), three).unwrap();
    let out = sw.pbxctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("restart"), "{said}");
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
}

#[test]
fn what_only_a_restart_can_change_is_refused_and_nothing_applies() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let port = sw.addr().port();
    // A new extension and a new listen address in one change.
    let new = Conf::new(&[21, 23]).build().replace(
        "listen = 127.0.0.1:0",
        &format!("listen = 127.0.0.1:{}", port + 1),
    );
    assert!(new.contains(&format!(":{}", port + 1)), "{new}");
    std::fs::write(config_path(&sw), new).unwrap();
    let out = sw.pbxctl(&["reload"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a half reload must not say reloaded"
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("listen address changes only with a restart"),
        "{text}"
    );
    // Nothing of it applied: 23 does not exist.
    let mut c = Ua::ext(sw.addr(), 23);
    let ex = c.register_exchange(Some(300), None);
    assert_eq!(ex.status(), 403, "{}", ex.response().dump());
}

#[test]
fn a_change_in_every_section_applies_at_a_reload() {
    use coventry_tests::ua::dialog::sdp;
    let sw = Switch::start(&Conf::new(&[21, 35, 36]).build());
    let mut p21 = Ua::ext(sw.addr(), 21);
    p21.register(300);
    let mut p35 = Ua::ext(sw.addr(), 35);
    p35.register(300);
    let mut p36 = Ua::ext(sw.addr(), 36);
    p36.register(300);
    // One change in each section coventry.conf(5) describes (the dial plan,
    // listen, [upstream], [hooks] and the lines have tests of their own).
    let new = Conf::new(&[21, 35, 36])
        .group(100, &[35, 36])
        .section("calls", "max_per_line = 1")
        .section("speed", "9 = 35")
        .section("features", "dnd_on = *55")
        .section("runstate night", "dnd.36 = on")
        .section("records", "max_size = 4096")
        .section("records", "keep = 1")
        .section("security", "source_failures = 1")
        .build()
        .replace("realm = test", "realm = reloaded");
    std::fs::write(config_path(&sw), new).unwrap();
    let out = sw.pbxctl(&["reload"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // [server]: the new realm is the one challenged for (a REGISTER that binds
    // nothing: expires 0).
    let ex = Ua::ext(sw.addr(), 21).register_exchange(Some(0), None);
    let challenge = ex.challenge.as_ref().expect("a challenge").dump();
    assert!(challenge.contains("realm=\"reloaded\""), "{challenge}");
    // [speed] and [groups]: 9 rings 35; 100 rings 35 and 36.
    let mut call = p36.call_start("9", &sdp("36", 1, "sendrecv"));
    let inv = p35.expect_invite("speed dial 9", T);
    p35.respond(&inv, 486, None);
    p36.call_expect_final(&mut call, 486, T);
    let mut group = p21.call_start("100", &sdp("21", 1, "sendrecv"));
    let a = p35.expect_invite("group 100 rings 35", T);
    let b = p36.expect_invite("group 100 rings 36", T);
    // [calls]: while that call rings, 21 may make no second one.
    let mut second = p21.call_start("36", &sdp("21", 2, "sendrecv"));
    p21.call_expect_final(&mut second, 503, T);
    p35.respond(&a, 486, None);
    p36.respond(&b, 486, None);
    p21.call_expect_final(&mut group, 486, T);
    // [features]: the new code is a feature code (answered by the switch).
    let mut code = p35.call_start("*55", &sdp("35", 1, "sendrecv"));
    p35.call_expect(&mut code, 200, T);
    // [runstate night]: the new state may be put in force.
    let out = sw.pbxctl(&["runstate", "night"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // [security]: one wrong answer from a stranger and its address waits.
    let sock = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut g = Ua::with_socket(sock, sw.addr(), "21", "guess");
    assert_eq!(g.register_exchange(Some(60), None).status(), 403);
    assert_eq!(g.register_exchange(Some(60), None).status(), 503);
    // [records]: past 4096 bytes the file rotates, one copy kept.
    let rotated = sw.state_dir().join("records.jsonl.1");
    for n in 0..40u32 {
        if rotated.exists() {
            break;
        }
        // (35 is on do not disturb now: 21 takes these.)
        let mut c = p36.call_start("21", &sdp("36", n + 2, "sendrecv"));
        let inv = p21.expect_invite("a call for the records", T);
        p21.respond(&inv, 486, None);
        p36.call_expect_final(&mut c, 486, T);
    }
    coventry_tests::poll_until(T, || rotated.exists().then_some(()))
        .unwrap_or_else(|| panic!("records.jsonl never rotated at 4096 bytes"));
}

/// A hook directory (0700) whose `register` hook appends what it gets (one JSON
/// line) to `register.out` in it.
fn register_recorder(parent: &std::path::Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let hook = dir.join("register");
    let out = dir.join("register.out");
    std::fs::write(&hook, format!("#!/bin/sh\ncat >> '{}'\n", out.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The extensions whose registration the hook in `dir` recorded.
fn recorded_exts(dir: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("register.out"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["ext"].as_u64())
        .collect()
}

#[test]
fn a_changed_hook_applies_at_a_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let old = register_recorder(tmp.path(), "old");
    let new = register_recorder(tmp.path(), "new");
    // One hook at a time: the switch's own hooks run in the order of their events.
    let conf = |dir: &std::path::Path| {
        Conf::new(&[21, 22, 23])
            .section("hooks", &format!("dir = {}", dir.display()))
            .section("hooks", "max_running = 1")
            .build()
    };
    let sw = Switch::start(&conf(&old));
    Ua::ext(sw.addr(), 21).register(300);
    coventry_tests::poll_until(T, || recorded_exts(&old).contains(&21).then_some(()))
        .unwrap_or_else(|| panic!("the old hook never ran: {:?}", recorded_exts(&old)));

    std::fs::write(config_path(&sw), conf(&new)).unwrap();
    let out = sw.pbxctl(&["reload"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 22 registers (the event the old hook would have run for), then 23; once the
    // new hook has recorded 23, the run for 22 is over, whichever hook it was.
    Ua::ext(sw.addr(), 22).register(300);
    Ua::ext(sw.addr(), 23).register(300);
    coventry_tests::poll_until(T, || recorded_exts(&new).contains(&23).then_some(()))
        .unwrap_or_else(|| panic!("the new hook never ran: {:?}", recorded_exts(&new)));
    assert_eq!(recorded_exts(&new), [22, 23], "the new hook runs");
    assert_eq!(recorded_exts(&old), [21], "the old hook no longer runs");
}
