//! The original Coventry utilities, as sites' scripts call them: pbxctl invoked
//! through links named pbx-message, pbx-registry and pbx-runstate, against a
//! running switch and a stopped one, with every documented exit status.
#![allow(clippy::unwrap_used)]

use coventry_tests::ua::Ua;
use coventry_tests::{pbxctl_bin, run_bounded, Conf, Switch, T};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory of links to pbxctl under the original names.
fn links() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    for name in ["pbx-message", "pbx-registry", "pbx-runstate"] {
        std::os::unix::fs::symlink(pbxctl_bin(), d.path().join(name)).unwrap();
    }
    let p = d.path().to_path_buf();
    (d, p)
}

/// Run `tool ARGS` for the switch `sw` (its directories from the environment).
fn tool(bin: &Path, name: &str, sw: &Switch, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin.join(name));
    cmd.args(args)
        .env("COVENTRY_RUNTIME_DIR", sw.runtime_dir())
        .env("COVENTRY_STATE_DIR", sw.state_dir());
    run_bounded(cmd, T * 2).unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn pbx_message_sends_and_exits_as_the_original() {
    let (_keep, bin) = links();
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut p = Ua::ext(sw.addr(), 21);
    p.register(300);
    p.set_answer(200);

    let o = tool(
        &bin,
        "pbx-message",
        &sw,
        &["--to", "21", "--subject", "Drill", "at", "3"],
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let m = p.expect_request("the text", T);
    assert_eq!(m.text(), "Drill: at 3");
    // The default destination is every phone registered now.
    let o = tool(
        &bin,
        "pbx-message",
        &sw,
        &["--quiet", "shutdown", "at", "5"],
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", show(&o));
    assert_eq!(p.expect_request("the broadcast", T).text(), "shutdown at 5");
    // Limits, each with its status, checked before the switch is asked.
    let long = "x".repeat(161);
    assert_eq!(code(&tool(&bin, "pbx-message", &sw, &[&long])), 11);
    let s = "s".repeat(33);
    assert_eq!(
        code(&tool(&bin, "pbx-message", &sw, &["--subject", &s, "hi"])),
        12
    );
    let d = "2".repeat(33);
    assert_eq!(
        code(&tool(&bin, "pbx-message", &sw, &["--to", &d, "hi"])),
        10
    );
    // Nobody to take it: 1. No text: usage, 2.
    let o = tool(&bin, "pbx-message", &sw, &["--to", "22", "hello"]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert_eq!(code(&tool(&bin, "pbx-message", &sw, &[])), 2);
    // The switch down: server offline, 4.
    sw.stop();
    let o = tool(&bin, "pbx-message", &sw, &["hello"]);
    assert_eq!(code(&o), 4, "{}", show(&o));
}

#[test]
fn pbx_registry_shows_sets_and_answers_by_status() {
    let (_keep, bin) = links();
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut p = Ua::ext(sw.addr(), 21);
    p.register(300);

    let o = tool(&bin, "pbx-registry", &sw, &["21"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("registered=yes"), "{out}");
    assert!(
        out.contains(&format!("contact={}", p.contact_uri())),
        "{out}"
    );
    assert!(out.contains("dnd=off"), "{out}");
    let o = tool(&bin, "pbx-registry", &sw, &["21", "state"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "idle",
        "{}",
        show(&o)
    );

    // The yes/no questions answer by status alone.
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["--exists", "21"])),
        0
    );
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["--exists", "23"])),
        1
    );
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["--message", "21"])),
        0
    );
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["--message", "22"])),
        1
    );
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["--invite", "21"])),
        0
    );

    // Setting a key goes through the switch; DND stops invites.
    let o = tool(&bin, "pbx-registry", &sw, &["21", "dnd", "on"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    sw.wait_settings(21, "dnd on", |s| s.dnd);
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["--invite", "21"])),
        1
    );
    let o = tool(&bin, "pbx-registry", &sw, &["21", "forward", "22"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = tool(&bin, "pbx-registry", &sw, &["21", "forward"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "22",
        "{}",
        show(&o)
    );
    // Unknown or read-only keys, and values the switch refuses: 3.
    assert_eq!(code(&tool(&bin, "pbx-registry", &sw, &["21", "colour"])), 3);
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["21", "name", "X"])),
        3
    );
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["21", "forward", "21"])),
        3
    );
    // No such extension: 1; usage: 2.
    assert_eq!(code(&tool(&bin, "pbx-registry", &sw, &["23"])), 1);
    assert_eq!(code(&tool(&bin, "pbx-registry", &sw, &["twenty"])), 2);

    // --clear releases the registration.
    let o = tool(&bin, "pbx-registry", &sw, &["--clear", "21"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    sw.wait_contacts(21, &[]);
    assert_eq!(
        code(&tool(&bin, "pbx-registry", &sw, &["--message", "21"])),
        1
    );

    sw.stop();
    assert_eq!(code(&tool(&bin, "pbx-registry", &sw, &["21"])), 4);
}

#[test]
fn pbx_runstate_sets_while_down_and_up() {
    let (_keep, bin) = links();
    let conf = Conf::new(&[21, 22]).section("runstate night", "forward.21 = 22");
    let mut sw = Switch::start(&conf.build());
    let o = tool(&bin, "pbx-runstate", &sw, &[]);
    assert_eq!(
        (code(&o), String::from_utf8_lossy(&o.stdout).trim()),
        (0, "day")
    );
    // Up: applied at once.
    assert_eq!(code(&tool(&bin, "pbx-runstate", &sw, &["night"])), 0);
    let o = tool(&bin, "pbx-runstate", &sw, &[]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "night");
    // A state the configuration does not have: refused, 1; not a name: 2.
    let o = tool(&bin, "pbx-runstate", &sw, &["holiday"]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert_eq!(code(&tool(&bin, "pbx-runstate", &sw, &["Not A Name"])), 2);
    // Down: kept for the next start.
    sw.stop();
    assert_eq!(code(&tool(&bin, "pbx-runstate", &sw, &["day"])), 0);
    sw.restart();
    let o = tool(&bin, "pbx-runstate", &sw, &[]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "day");
}
