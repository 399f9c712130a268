//! pbxctl against a fake daemon: status, regs, message/release/reload, exit codes.

mod common;

use common::*;
use coventry_shared::dialplan::Plan;
use coventry_shared::event::ResultCode;
use coventry_shared::now_ms;
use coventry_shared::stateblock::{put_str, set_bit, EXT_CONFIGURED};
use serde_json::Value;
use std::time::{Duration, Instant};

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(o)))
}

/// Extensions 21 (two contacts), 35 (one), 40 (configured, not registered); counters.
fn populate(f: &Fake) {
    let now = now_ms();
    let mut w = f.w();
    let plan = w.plan();
    let mut b = w.body_mut();
    for (ext, name) in [
        (21u16, "Reception"),
        (35, "Flat 3 \u{1b}[31mred"),
        (40, "Cellar"),
    ] {
        let i = plan.index_of(ext).expect("in plan");
        b.exts[i].flags = EXT_CONFIGURED;
        b.exts[i].lines = 2;
        put_str(&mut b.exts[i].name, name);
    }
    let contacts: [(u16, &str, &str, &str, u64); 3] = [
        (
            21,
            "sip:21@192.0.2.10:5060",
            "192.0.2.10:5060",
            "Yealink SIP-T46S",
            600_000,
        ),
        (
            21,
            "sip:21@192.0.2.11:5062",
            "192.0.2.11:5062",
            "Linphone",
            90_500,
        ),
        (
            35,
            "sip:35@192.0.2.35:5060",
            "192.0.2.35:5060",
            "Grandstream",
            3_000_000,
        ),
    ];
    for (ext, uri, src, ua, left) in contacts {
        let i = plan.index_of(ext).expect("in plan");
        let e = &mut b.exts[i];
        let c = &mut e.contacts[usize::from(e.contact_count)];
        put_str(&mut c.uri, uri);
        put_str(&mut c.source, src);
        put_str(&mut c.user_agent, ua);
        c.registered_ms = now - 1000;
        c.expires_ms = now + left;
        e.contact_count += 1;
        set_bit(&mut b.bitmaps.registered, i, true);
    }
    b.counters.sip_in = 42;
    b.counters.sip_out = 41;
    b.counters.registers = 3;
    b.counters.auth_failures = 7;
    b.counters.calls = 2;
    drop(b);
    w.heartbeat(now);
}

#[test]
fn no_state_block_is_status_3_for_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["status"][..],
        &["regs"],
        &["message", "21", "hi"],
        &["release", "21"],
        &["reload"],
        &["calls"],
        &["exts"],
        &["hangup", "21"],
        &["--json", "calls"],
        &["watch", "--count", "1"],
        &["--json", "status"],
    ] {
        let o = pbxctl_in(dir.path(), args);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("pbxctl: daemon not running") && err.lines().count() == 1,
            "{args:?}: {err:?}"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn dead_pid_is_status_3() {
    let f = Fake::with_unread_fifo();
    populate(&f);
    f.set_pid(dead_pid());

    let o = f.run(&["status"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stdout(&o).contains("STALE: not running"), "{}", stdout(&o));
    assert!(stderr(&o).contains("is gone"), "{}", stderr(&o));

    let o = f.run(&["--json", "status"]);
    assert_eq!(code(&o), 3);
    let v = json(&o);
    assert_eq!(v["state"], "gone");
    assert_eq!(v["running"], false);
    assert_eq!(v["stale"], true);

    for args in [
        &["message", "21", "hi"][..],
        &["regs"],
        &["reload"],
        &["calls"],
        &["exts"],
        &["hangup", "1007"],
    ] {
        let o = f.run(args);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("is gone"), "{}", stderr(&o));
    }
}

#[test]
fn stale_heartbeat_is_flagged_and_status_3() {
    let f = Fake::new(Plan::TwoDigit);
    f.w().heartbeat(now_ms() - 10_000);
    let o = f.run(&["--json", "status"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["state"], "stale");
    assert_eq!(v["stale"], true);
    assert!(v["heartbeat_age_ms"].as_u64().expect("age") >= 10_000);
    let o = f.run(&["status"]);
    assert_eq!(code(&o), 3);
    assert!(stdout(&o).contains("(stale)"), "{}", stdout(&o));
}

#[test]
fn fifo_without_reader_or_missing_is_status_3() {
    let f = Fake::with_unread_fifo();
    let o = f.run(&["message", "21", "hello"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nobody reads the control FIFO"),
        "{}",
        stderr(&o)
    );

    let f = Fake::new(Plan::TwoDigit);
    let o = f.run(&["reload"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("no control FIFO"), "{}", stderr(&o));
}

#[test]
fn message_sends_one_line_with_an_id_and_prints_the_result() {
    let f = Fake::answering(answer_ok("delivered to 21 (2 contacts)"));
    let o = f.run(&["message", "21", "hello", "big", "world"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "delivered to 21\n");
    assert!(o.stderr.is_empty());
    let lines = f.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let id = id_of(&lines[0]);
    assert_eq!(lines[0], format!("#{id} message 21 hello big world"));

    // --json: the object carries the same id as the line that was written.
    let o = f.run(&["message", "--json", "all", "dinner", "is", "ready"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let lines = f.lines();
    assert_eq!(lines.len(), 2);
    let id2 = id_of(&lines[1]);
    assert_ne!(id, id2, "request ids must differ between invocations");
    assert_eq!(v["id"].as_u64(), Some(id2));
    assert_eq!(v["code"], "ok");
    assert_eq!(v["ok"], true);
    assert_eq!(v["text"], "all: delivered to 2 of 2 registered now");
    assert_eq!(v["command"], "message all dinner is ready");
    assert_eq!(
        v["receipts"][1],
        serde_json::json!({"ext": 22, "result": "delivered", "status": 200})
    );
}

#[test]
fn release_and_reload_write_their_lines() {
    let f = Fake::answering(answer_ok(""));
    let o = f.run(&["release", "21"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "ok\n");
    let o = f.run(&["reload", "--timeout", "2"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = f.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], format!("#{} release 21", id_of(&lines[0])));
    assert_eq!(lines[1], format!("#{} reload", id_of(&lines[1])));
}

#[test]
fn rejected_command_is_status_1() {
    let f = Fake::answering(answer_with(ResultCode::NotFound, "no such extension 88"));
    let o = f.run(&["release", "88"]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    assert_eq!(stderr(&o), "pbxctl: not-found: no such extension 88\n");

    let o = f.run(&["--json", "message", "88", "hi"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["code"], "not-found");
    assert_eq!(v["ok"], false);
    assert_eq!(v["text"], "no such extension 88");

    let f = Fake::answering(answer_with(ResultCode::Failed, "35 is offline"));
    let o = f.run(&["message", "35", "hi"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "pbxctl: failed: 35 is offline\n");
}

#[test]
fn silent_daemon_is_status_4_after_the_timeout() {
    let f = Fake::answering(answer_never());
    let t = Instant::now();
    let o = f.run(&["--timeout", "0.4", "reload"]);
    let took = t.elapsed();
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("pbxctl: timed out"),
        "{}",
        stderr(&o)
    );
    // Not before its timeout (only a broken pbxctl is faster); that it ends at
    // all is the point (a hung one is stopped at RUN_LIMIT).
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert_eq!(f.lines().len(), 1);
}

#[test]
fn results_for_other_requests_are_not_ours() {
    // The fake answers, but with another id and without one: pbxctl must keep waiting.
    let f = Fake::answering(Box::new(|r| {
        Some((ResultCode::Ok, "not yours".into(), r.id.map(|i| i + 1)))
    }));
    let o = f.run(&["--timeout", "0.3", "release", "21"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let f = Fake::answering(Box::new(|_| {
        Some((ResultCode::Ok, "anonymous".into(), None))
    }));
    let o = f.run(&["--timeout", "0.3", "release", "21"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
}

#[test]
fn usage_errors_are_status_2_and_send_nothing() {
    let f = Fake::answering(answer_ok("sent"));
    populate(&f);
    let long = "x".repeat(600);
    for args in [
        &["message", "21", long.as_str()][..],
        &["message", "21", "two\nlines"],
        &["message", "21"],
        &["release", "abc"],
        &["release", "70000"],
        &["regs", "95"],
        &["--timeout", "0", "reload"],
        &["frobnicate"],
    ] {
        let o = f.run(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
    let o = f.run(&["message", "21", long.as_str()]);
    assert!(stderr(&o).starts_with("pbxctl: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("longer than"), "{}", stderr(&o));
    assert_eq!(f.lines(), Vec::<String>::new());
    // The longest text is sent whatever its characters: 160 of four bytes each.
    let o = f.run(&["message", "21", &"\u{1F600}".repeat(160)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = f.run(&["message", "21", &"\u{1F600}".repeat(161)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("161 characters, longer than 160"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn status_shows_the_daemon() {
    let f = Fake::new(Plan::TwoDigit);
    populate(&f);
    let o = f.run(&["--json", "status"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["state"], "running");
    assert_eq!(v["running"], true);
    assert_eq!(v["stale"], false);
    assert_eq!(v["pid"].as_u64(), Some(u64::from(std::process::id())));
    assert_eq!(v["digits"], 2);
    assert_eq!(v["plan"], "2-digit (10-89)");
    assert_eq!(v["bound"], "127.0.0.1:5060");
    assert_eq!(v["realm"], "testrealm");
    assert_eq!(v["registered"], 2);
    assert_eq!(v["configured"], 3);
    let up = v["uptime_s"].as_u64().expect("uptime");
    assert!((3723..3790).contains(&up), "{up}");
    assert!(v["heartbeat_age_ms"].as_u64().expect("age") < 3000);
    let c = &v["counters"];
    assert_eq!(c["sip_in"], 42);
    assert_eq!(c["sip_out"], 41);
    assert_eq!(c["auth_failures"], 7);
    assert_eq!(c["messages_delivered"], 0);
    assert_eq!(c.as_object().expect("object").len(), 19);

    let o = f.run(&["status"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains(&format!("running, pid {}", std::process::id())),
        "{s}"
    );
    assert!(s.contains("1h02m"), "{s}");
    assert!(s.contains("2-digit (10-89)"), "{s}");
    assert!(s.contains("127.0.0.1:5060"), "{s}");
    assert!(s.contains("2 registered / 3 configured"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["auth_failures", "7"]),
        "{s}"
    );
    assert!(!s.contains('\u{1b}'), "no ANSI when not a terminal: {s:?}");
}

#[test]
fn regs_lists_contacts_as_table_and_json() {
    let f = Fake::new(Plan::TwoDigit);
    populate(&f);
    let o = f.run(&["regs"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 4, "{s}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["EXT", "NAME", "LINES", "CONTACT", "SOURCE", "USER", "AGENT", "AUTH", "EXPIRES"]
    );
    assert!(lines[1].trim_start().starts_with("21"), "{s}");
    assert!(lines[1].contains("Reception") && lines[1].contains("sip:21@192.0.2.10:5060"));
    assert!(lines[1].contains("Yealink SIP-T46S") && lines[1].contains("192.0.2.10:5060"));
    assert!(lines[2].contains("Linphone"), "{s}");
    let exp2: &str = lines[2].split_whitespace().last().expect("expires");
    assert!(exp2 == "89s" || exp2 == "90s", "{exp2}");
    // The escape character in 35's name is replaced, never sent to the terminal.
    assert!(lines[3].contains("\u{FFFD}[31mred"), "{s}");
    assert!(!s.contains("Cellar"), "40 is not registered: {s}");
    assert!(
        !s.contains('│') && !s.contains('|'),
        "plain table when piped: {s}"
    );

    let o = f.run(&["regs", "--json"]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0]["ext"], 21);
    assert_eq!(arr[0]["name"], "Reception");
    assert_eq!(arr[0]["contact"], "sip:21@192.0.2.10:5060");
    assert_eq!(arr[0]["source"], "192.0.2.10:5060");
    assert_eq!(arr[0]["user_agent"], "Yealink SIP-T46S");
    let e = arr[0]["expires_in"].as_u64().expect("expires_in");
    assert!((598..=600).contains(&e), "{e}");
    assert_eq!(arr[2]["ext"], 35);
    assert_eq!(arr[2]["name"], "Flat 3 \u{1b}[31mred");

    let o = f.run(&["--json", "regs", "35"]);
    let v = json(&o);
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["user_agent"], "Grandstream");
    let o = f.run(&["--json", "regs", "40"]);
    assert_eq!(json(&o), serde_json::json!([]));
    let o = f.run(&["regs", "40"]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), "40 has no registered contact\n");
}

#[test]
fn three_digit_plan_and_runtime_dir_from_the_environment() {
    let f = Fake::new(Plan::ThreeDigit);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pbxctl"))
        .args(["status", "--json"])
        .env("COVENTRY_RUNTIME_DIR", f.path())
        .output()
        .expect("run");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["digits"], 3);
    assert_eq!(v["configured"], 0);
    let o = f.run(&["regs", "21"]);
    assert_eq!(code(&o), 2, "21 is not in the 3-digit plan");
    let o = f.run(&["regs", "150"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn colour_and_borders_only_on_a_terminal() {
    // `script` gives pbxctl a pseudo-terminal as stdout.
    if !have_script() {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let f = Fake::new(Plan::TwoDigit);
    populate(&f);
    let run_tty = |args: &str, no_color: bool| pbxctl_tty(f.path(), args, no_color);
    let s = run_tty("status", false);
    assert!(s.contains("\u{1b}[32mrunning"), "{s:?}");
    let s = run_tty("status", true);
    assert!(s.contains("running") && !s.contains('\u{1b}'), "{s:?}");
    let s = run_tty("regs", true);
    assert!(s.contains('│'), "boxed table on a terminal: {s}");
}
