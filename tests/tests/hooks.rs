//! Hooks end to end through the real daemon: executables in a hook directory that
//! write what they received to a file (`register`, `release`, `call`), a chat
//! service (`msg-echo`) answering `/msg` with texts from `system`, hooks that
//! answer through `pbxctl` and through the control FIFO, a hook that hangs (killed
//! at its timeout, with what it started), a flood of registrations against a slow
//! hook (bounded queue, overflow logged, the switch keeps serving), hooks that may
//! not run (skipped with one log line), and hooks killed when the switch stops.
#![allow(clippy::unwrap_used)]

use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{pbxctl_bin, poll_until, Conf, Switch, LONG, T};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A hook directory (mode 0700, ours) with hooks written into it.
struct HookDir {
    dir: tempfile::TempDir,
}

impl HookDir {
    fn new() -> HookDir {
        let dir = tempfile::Builder::new()
            .prefix("coventry-hooks-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        HookDir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write hook `name` (a bash script) with `mode`.
    fn hook(&self, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// A hook that appends its stdin (one JSON line) to `NAME.out`.
    fn recorder(&self, name: &str) {
        let out = self.path().join(format!("{name}.out"));
        self.hook(name, &format!("cat >> '{}'", out.display()), 0o755);
    }

    /// The JSON objects hook `name` recorded so far.
    fn recorded(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path().join(format!("{name}.out")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait until hook `name` recorded something that satisfies `f`.
    fn wait(&self, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        poll_until(T, || self.recorded(name).into_iter().find(|v| f(v)))
            .unwrap_or_else(|| panic!("hook {name}: no {what}; recorded {:?}", self.recorded(name)))
    }
}

fn conf(h: &HookDir, extra: &[&str]) -> Conf {
    let mut c = Conf::new(&[21, 22, 23])
        .calls(1, 2)
        .section("hooks", &format!("dir = {}", h.path().display()));
    for l in extra {
        c = c.section("hooks", l);
    }
    c
}

fn phone(sw: &Switch, ext: u16) -> Ua {
    let mut p = Ua::ext(sw.addr(), ext);
    p.register(300);
    p
}

/// Whether a process whose command line contains `marker` is running.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
}

#[test]
fn register_release_and_call_hooks_get_their_data_on_stdin() {
    let h = HookDir::new();
    for name in ["register", "release", "call"] {
        h.recorder(name);
    }
    let sw = Switch::start(&conf(&h, &[]).build());
    let mut a = phone(&sw, 21);
    let b = phone(&sw, 22);
    let reg = h.wait("register", "registration of 21", |v| v["ext"] == 21);
    assert_eq!(reg["event"], "register");
    assert_eq!(reg["contact"], a.contact_uri());
    assert!(reg["time_ms"].as_u64().unwrap() > 0);

    // An answered call and a busy one: a record each.
    let mut call = a.call_start("22", &sdp("21", 1, "sendrecv"));
    let inv = b.expect_invite("the call", T);
    b.respond_sdp(&inv, 200, &sdp("22", 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    // Answered before this, ended after the next reading: the talk time covers
    // at least the time between them (the system clock, as the switch's).
    let answered_by_now = coventry_shared::now_ms();
    a.ack(&mut call);
    let bye_from_now = coventry_shared::now_ms();
    assert_eq!(a.bye(call.dialog()).status(), 200);
    let rec = h.wait("call", "completed call", |v| v["outcome"] == "completed");
    assert_eq!(
        (rec["caller"].as_str(), rec["dialled"].as_str()),
        (Some("21"), Some("22"))
    );
    assert_eq!(rec["answered_by"], "22");
    assert_eq!(rec["route"], "local");
    assert_eq!(rec["status"], 200);
    let talk = rec["talk_ms"].as_u64().unwrap();
    assert!(talk >= bye_from_now - answered_by_now, "{rec}");
    assert_eq!(
        Some(talk),
        rec["end_ms"]
            .as_u64()
            .zip(rec["answer_ms"].as_u64())
            .map(|(e, a)| e - a),
        "{rec}"
    );
    b.set_answer(486);
    let mut busy = a.call_start("22", &sdp("21", 2, "sendrecv"));
    let inv = b.expect_invite("the second call", T);
    b.respond(&inv, 486, None);
    a.call_expect_final(&mut busy, 486, T);
    let rec = h.wait("call", "busy call", |v| v["outcome"] == "busy");
    assert_eq!(rec["status"], 486);
    assert_eq!(rec["talk_ms"], 0);

    // Unregistering: release.
    a.register(0);
    let rel = h.wait("release", "release of 21", |v| v["ext"] == 21);
    assert_eq!(rel["why"], "unregistered");
}

#[test]
fn msg_runs_a_chat_service_whose_lines_come_back_as_texts() {
    let h = HookDir::new();
    // Reads the JSON object; answers with two lines.
    h.hook(
        "msg-echo",
        "read -r line\ntext=$(printf '%s' \"$line\" | sed 's/.*\"text\":\"\\([^\"]*\\)\".*/\\1/')\n\
         echo \"echo: $text\"\necho \"bye from $COVENTRY_HOOK\"",
        0o755,
    );
    let sw = Switch::start(&conf(&h, &[]).build());
    let mut a = phone(&sw, 21);
    assert_eq!(a.message("system", "/msg echo hello there"), 200);
    let first = a.expect_request("the chat's first line", T);
    assert_eq!(first.text(), "echo: hello there");
    assert!(
        first.header("From").unwrap().contains("system"),
        "{}",
        first.dump()
    );
    let second = a.expect_request("the chat's second line", T);
    assert_eq!(second.text(), "bye from msg-echo");
    // No such service: the sender is told.
    assert_eq!(a.message("system", "/msg nobody hi"), 200);
    let m = a.expect_request("no such service", T);
    assert!(m.text().contains("not available"), "{}", m.text());
}

#[test]
fn a_hook_answers_through_pbxctl_and_through_the_fifo() {
    let h = HookDir::new();
    let pbxctl = pbxctl_bin();
    h.hook(
        "register",
        &format!(
            "cat >/dev/null\n'{}' dnd 22 on >/dev/null\n\
             printf 'forward 23 21\\n' > \"$COVENTRY_RUNTIME_DIR/control\"",
            pbxctl.display()
        ),
        0o755,
    );
    let sw = Switch::start(&conf(&h, &[]).build());
    let _a = phone(&sw, 21);
    sw.wait_settings(22, "on DND (pbxctl from the hook)", |r| r.dnd);
    sw.wait_settings(23, "forwarded to 21 (the FIFO from the hook)", |r| {
        r.always == "21"
    });
}

#[test]
fn a_hanging_hook_is_killed_with_what_it_started() {
    let h = HookDir::new();
    let marker = format!("coventry-hang-{}", std::process::id());
    // The hook starts a child and both sleep far past the timeout.
    h.hook(
        "register",
        &format!("sh -c 'exec -a {marker}-child sleep 600' &\nexec -a {marker} sleep 600"),
        0o755,
    );
    let sw = Switch::start(&conf(&h, &["timeout = 1"]).build());
    let _a = phone(&sw, 21);
    assert!(
        poll_until(T, || running(&marker).then_some(())).is_some(),
        "the hook never started"
    );
    let gone = poll_until(LONG, || (!running(&marker)).then_some(()));
    assert!(
        gone.is_some(),
        "the hook (or its child) outlived its timeout"
    );
    // The daemon logs the kill after it made it: wait for the line.
    let logged = poll_until(T, || sw.log().contains("killed").then_some(()));
    assert!(logged.is_some(), "{}", sw.log());
    // The switch went on serving meanwhile.
    let mut b = Ua::ext(sw.addr(), 22);
    assert_eq!(b.register(300).status(), Some(200));
}

#[test]
fn a_flood_against_a_slow_hook_is_bounded_and_the_switch_keeps_serving() {
    let h = HookDir::new();
    let marker = format!("coventry-slow-{}", std::process::id());
    // A hook that takes ten minutes: the switch must not wait for it.
    h.hook(
        "register",
        &format!("cat >/dev/null\nexec -a {marker} sleep 600"),
        0o755,
    );
    let mut sw =
        Switch::start(&conf(&h, &["max_running = 1", "queue = 2", "timeout = 3600"]).build());
    // 20 registrations (new contacts) from 21 and 22 in a burst: every one is
    // answered while the first hook still runs (it cannot have ended), so none
    // waited for it, however long they took.
    let mut phones: Vec<Ua> = (0..20).map(|i| Ua::ext(sw.addr(), 21 + (i % 2))).collect();
    for p in &mut phones {
        assert_eq!(p.register(300).status(), Some(200));
        p.register(0);
    }
    assert!(
        poll_until(T, || running(&marker).then_some(())).is_some(),
        "the slow hook never started"
    );
    let logged = poll_until(T, || sw.log().contains("hook queue full").then_some(()));
    assert!(logged.is_some(), "{}", sw.log());
    // Never more than one running.
    let count = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).starts_with(&marker))
                    .unwrap_or(false)
            })
            .count()
    };
    assert!(count() <= 1, "{} slow hooks at once", count());
    // Hooks end with the switch (none is left behind for ten minutes).
    sw.stop();
    let gone = poll_until(LONG, || (!running(&marker)).then_some(()));
    assert!(gone.is_some(), "a hook outlived the switch");
}

#[test]
fn hooks_that_may_not_run_are_skipped_with_one_line() {
    let h = HookDir::new();
    let ran = h.path().join("ran");
    let body = format!("touch '{}'", ran.display());
    h.hook("register", &body, 0o644); // not executable
    h.hook("release", &body, 0o777); // anyone may write it
    h.recorder("call"); // a good one, the fence
    let sw = Switch::start(&conf(&h, &["max_running = 1"]).build());
    let mut a = phone(&sw, 21);
    a.register(0);
    let mut a = phone(&sw, 21);
    a.register(0);
    // A fence: the call hook of a later call. Hooks start in order, one at a
    // time: had a bad hook run, it would have finished (touched the file) before
    // the call hook could start.
    let mut a = phone(&sw, 21);
    let mut call = a.call_start("23", &sdp("21", 1, "sendrecv"));
    a.call_expect_final(&mut call, 480, T);
    h.wait("call", "the fence's call record", |v| v["dialled"] == "23");
    assert!(!ran.exists(), "a hook that may not run ran");
    let log = sw.log();
    assert_eq!(
        log.matches("register skipped: it is not executable")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("release skipped: it may be written by someone else")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn hooks_still_running_end_with_the_switch() {
    let h = HookDir::new();
    let marker = format!("coventry-stop-{}", std::process::id());
    h.hook(
        "register",
        &format!("cat >/dev/null\nexec -a {marker} sleep 600"),
        0o755,
    );
    let mut sw = Switch::start(&conf(&h, &["timeout = 3600"]).build());
    let _a = phone(&sw, 21);
    assert!(poll_until(T, || running(&marker).then_some(())).is_some());
    sw.stop();
    let gone = poll_until(LONG, || (!running(&marker)).then_some(()));
    assert!(gone.is_some(), "a hook outlived the switch");
}
