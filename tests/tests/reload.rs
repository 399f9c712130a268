//! Reloading the configuration (SIGHUP and `pbxctl reload`): new lines work at
//! once, removed lines lose their registrations, a broken file is refused with its
//! place named and the running configuration kept.
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
