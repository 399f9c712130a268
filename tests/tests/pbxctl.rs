//! The real pbxctl against the real daemon: message (to a sipp phone), release,
//! regs/status JSON, watch, and the documented exit codes.
#![allow(clippy::unwrap_used)]

use coventry_shared::event::{hidden_text, Event};
use coventry_tests::sipp::{logged, sipp_phone};
use coventry_tests::ua::Ua;
use coventry_tests::{pbxctl_in, Conf, Switch, T};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Every JSON object anywhere in `v`.
fn objects(v: &Value) -> Vec<&serde_json::Map<String, Value>> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            out.push(m);
            for x in m.values() {
                out.extend(objects(x));
            }
        }
        Value::Array(a) => {
            for x in a {
                out.extend(objects(x));
            }
        }
        _ => {}
    }
    out
}

#[test]
fn pbxctl_message_reaches_a_sipp_phone() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let uas = sipp_phone(&sw, 22);
    let mark = sw.mark();
    let o = sw.pbxctl(&["message", "22", "lunch", "is", "ready"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let run = uas.wait();
    run.assert_success("UAS receiving the operator's MESSAGE");
    assert_eq!(
        logged(&run.logs, "text"),
        Some("lunch is ready"),
        "{}",
        run.report()
    );
    assert!(
        logged(&run.logs, "type").is_some_and(|t| t.to_ascii_lowercase().starts_with("text/plain")),
        "{}",
        run.report()
    );
    sw.expect_event_after(
        mark,
        "Message to 22 delivered",
        |e| matches!(e, Event::Message { to, status: 200, text, .. } if to == "22" && *text == hidden_text("lunch is ready")),
        T,
    );
}

/// The longest text goes through the control FIFO and reaches the phone whole,
/// whatever its characters: 160 of four bytes each (640 bytes of text).
#[test]
fn pbxctl_sends_the_longest_text_in_four_byte_characters() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let text = "\u{1F600}".repeat(160);
    let o = sw.pbxctl(&["message", "22", &text]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let got = phone.expect_request("the 160-character text", T);
    assert_eq!(got.method().as_deref(), Some("MESSAGE"));
    assert_eq!(got.text(), text);
}

#[test]
fn pbxctl_message_failures_exit_1() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let o = sw.pbxctl(&["message", "22", "offline"]);
    assert_eq!(code(&o), 1, "offline target: {}", show(&o));
    let o = sw.pbxctl(&["message", "77", "nobody"]);
    assert_eq!(code(&o), 1, "unknown target: {}", show(&o));
    let o = sw.pbxctl(&["message", "22", &"x".repeat(161)]);
    assert!(matches!(code(&o), 1 | 2), "161 characters: {}", show(&o));
}

#[test]
fn pbxctl_usage_errors_exit_2() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    for args in [
        &["frobnicate"][..],
        &["message", "21"],
        &["release", "x"],
        &["--no-such-flag", "status"],
    ] {
        let o = sw.pbxctl(args);
        assert_eq!(code(&o), 2, "pbxctl {args:?}: {}", show(&o));
    }
}

#[test]
fn pbxctl_without_a_daemon_exits_3() {
    let mut sw = Switch::start(&Conf::new(&[21]).build());
    let empty = tempfile::tempdir().unwrap();
    for args in [
        &["status"][..],
        &["regs"],
        &["message", "21", "hi"],
        &["release", "21"],
        &["watch"],
    ] {
        let o = pbxctl_in(empty.path(), args, Duration::from_secs(20));
        assert_eq!(code(&o), 3, "pbxctl {args:?} with no daemon: {}", show(&o));
    }
    // A daemon that stopped (its state block may remain).
    sw.stop();
    let o = sw.pbxctl_bounded(&["release", "21"], Duration::from_secs(20));
    assert_eq!(
        code(&o),
        3,
        "pbxctl release after the daemon stopped: {}",
        show(&o)
    );
    let o = sw.pbxctl_bounded(&["status"], Duration::from_secs(20));
    assert_eq!(
        code(&o),
        3,
        "pbxctl status after the daemon stopped: {}",
        show(&o)
    );
}

#[test]
fn pbxctl_times_out_with_4() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    sw.signal(nix::sys::signal::Signal::SIGSTOP);
    let o = sw.pbxctl_bounded(
        &["--timeout", "1", "release", "21"],
        Duration::from_secs(20),
    );
    sw.signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(code(&o), 4, "a frozen daemon: {}", show(&o));
}

#[test]
fn pbxctl_release() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    ua.register(300);
    sw.wait_contacts(21, &[ua.contact_uri()]);
    let o = sw.pbxctl(&["release", "21"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    sw.wait_contacts(21, &[]);
}

#[test]
fn pbxctl_regs_and_status_json() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    ua.register(300);
    sw.wait_contacts(21, &[ua.contact_uri()]);
    let o = sw.pbxctl(&["regs", "--json"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    let regs: Vec<_> = objects(&v)
        .into_iter()
        .filter(|m| m.contains_key("contact"))
        .collect();
    assert_eq!(regs.len(), 1, "{v}");
    assert_eq!(regs[0].get("ext").and_then(Value::as_u64), Some(21), "{v}");
    assert_eq!(
        regs[0].get("contact").and_then(Value::as_str),
        Some(ua.contact_uri().as_str()),
        "{v}"
    );

    let o = sw.pbxctl(&["status", "--json"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert_eq!(
        v.get("pid").and_then(Value::as_u64),
        sw.pid().map(u64::from),
        "{v}"
    );
    assert_eq!(
        v.get("bound").and_then(Value::as_str),
        Some(sw.host().as_str()),
        "{v}"
    );
    assert_eq!(v.get("running").and_then(Value::as_bool), Some(true), "{v}");
    assert_eq!(v.get("realm").and_then(Value::as_str), Some("test"), "{v}");
}

#[test]
fn pbxctl_watch_json() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut ua = Ua::ext(sw.addr(), 21);
    ua.register(300);
    sw.wait_contacts(21, &[ua.contact_uri()]);
    // From the start of the ring: exactly the events the harness saw.
    let seen = sw.events();
    let n = seen.len().to_string();
    let o = sw.pbxctl_bounded(
        &["watch", "--json", "--from-start", "--count", &n],
        Duration::from_secs(20),
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON: {e}: {l}")))
        .collect();
    let kinds: Vec<&str> = lines
        .iter()
        .filter_map(|v| v.get("kind").and_then(Value::as_str))
        .collect();
    let want: Vec<&str> = seen.iter().map(|r| r.event.kind_name()).collect();
    assert_eq!(kinds, want, "{}", show(&o));
    let reg = lines
        .iter()
        .find(|v| v.get("kind").and_then(Value::as_str) == Some("registered"))
        .unwrap();
    assert_eq!(reg.get("ext").and_then(Value::as_u64), Some(21));

    // Live: a watcher started now sees the result of a command written later (an
    // unknown verb: its result is the only event it causes). The command is
    // repeated until the watcher has seen one, so a slow pbxctl start cannot race.
    let rdir = sw.runtime_dir().to_path_buf();
    let watcher = std::thread::spawn(move || {
        pbxctl_in(
            &rdir,
            &["watch", "--json", "--count", "1", "--duration", "15"],
            Duration::from_secs(20),
        )
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !watcher.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        sw.fifo_write(b"#77 frobnicate\n").unwrap();
    }
    let o = watcher.join().unwrap();
    assert_eq!(code(&o), 0, "{}", show(&o));
    let line: Value = serde_json::from_str(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or(""),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert_eq!(
        line.get("kind").and_then(Value::as_str),
        Some("result"),
        "{line}"
    );
    assert_eq!(line.get("id").and_then(Value::as_u64), Some(77), "{line}");
}

#[test]
fn message_all_answers_within_its_timeout_with_a_silent_phone() {
    // 21 answers, 22 never does, 23 is configured but not registered (not part
    // of `all`, which means the phones registered now).
    let sw = Switch::start(&Conf::new(&[21, 22, 23]).build());
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
    let mut silent = Ua::ext(sw.addr(), 22);
    silent.register(300);
    silent.set_answer(0);
    // pbxctl's timeout: long enough for 21's receipt on any machine, far shorter
    // than 22's transaction (32 s). That it answered at its timeout, not at the
    // end of 22's transaction, shows in what it says: 22 still waiting.
    let o = sw.pbxctl_bounded(
        &[
            "--json",
            "--timeout",
            "10",
            "message",
            "all",
            "shutdown at 5",
        ],
        Duration::from_secs(25),
    );
    assert_eq!(code(&o), 5, "some have it, not all: {}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["text"],
        "all: delivered to 1 of 2 registered now, 1 not answered yet"
    );
    assert_eq!(v["done"], false);
    assert_eq!(
        v["receipts"],
        serde_json::json!([
            {"ext": 21, "result": "delivered", "status": 200},
            {"ext": 22, "result": "waiting", "status": null},
        ])
    );
    let id = v["id"].as_u64().unwrap();
    // The late outcome still arrives, as a typed receipt with the command's id.
    sw.expect_event_after(
        0,
        "the 408 receipt of 22",
        |e| matches!(e, Event::Message { id: Some(i), to, status: 408, .. } if *i == id && to == "22"),
        coventry_tests::LONG,
    );
    // Every phone answering: status 0; a single offline extension: status 1.
    silent.set_answer(200);
    let o = sw.pbxctl(&["message", "all", "all clear"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = sw.pbxctl(&["message", "23", "hello?"]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("23 is offline"),
        "{}",
        show(&o)
    );
}

/// For cron: `-q` prints nothing on success and keeps the exit status; errors
/// still reach stderr.
#[test]
fn quiet_prints_nothing_on_success_and_keeps_errors_and_codes() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let o = sw.pbxctl(&["-q", "message", "all", "shutdown at 5"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    assert_eq!(phone.expect_request("the text", T).text(), "shutdown at 5");
    for args in [&["-q", "status"][..], &["--quiet", "regs"], &["exts", "-q"]] {
        let o = sw.pbxctl(args);
        assert_eq!(code(&o), 0, "pbxctl {args:?}: {}", show(&o));
        assert!(o.stdout.is_empty(), "pbxctl {args:?}: {}", show(&o));
    }
    let o = sw.pbxctl(&["-q", "message", "21", "offline"]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    assert!(!o.stderr.is_empty(), "the failure is told: {}", show(&o));
}

/// `health`: 0 when the daemon runs and every route is connected, 1 with one
/// line per problem otherwise, 3 when it is not running.
#[test]
fn health_says_whether_the_switch_and_its_routes_are_up() {
    let mut alone = Switch::start(&Conf::new(&[21]).build());
    let o = alone.pbxctl(&["health"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("ok: "),
        "{}",
        show(&o)
    );
    let o = alone.pbxctl(&["-q", "health"]);
    assert_eq!(
        (code(&o), o.stdout.len(), o.stderr.len()),
        (0, 0, 0),
        "{}",
        show(&o)
    );
    alone.stop();
    let o = alone.pbxctl_bounded(&["health"], Duration::from_secs(20));
    assert_eq!(code(&o), 3, "{}", show(&o));

    // A route that answers (a listening socket: the kernel completes the
    // connection) and one that refuses.
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_port = up.local_addr().unwrap().port();
    let down_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let conf = Conf::new(&[21])
        .section("upstream", &format!("route = 127.0.0.1:{up_port}"))
        .section("upstream", &format!("sms_route = 127.0.0.1:{down_port}"))
        .build();
    let sw = Switch::start(&conf);
    let routes_known = coventry_tests::poll_until(Duration::from_secs(20), || {
        let o = sw.pbxctl(&["status", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        let states: Vec<String> = v["upstream"]
            .as_array()?
            .iter()
            .map(|r| r["state"].as_str().unwrap_or("").to_string())
            .collect();
        (states.len() == 2 && states[0] == "connected" && states[1] != "connecting").then_some(())
    });
    assert!(routes_known.is_some(), "the routes never settled");
    let o = sw.pbxctl(&["-q", "health"]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line per problem: {err}");
    assert!(
        lines[0].contains(&format!("127.0.0.1:{down_port}")) && lines[0].contains("sms"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&sw.pbxctl(&["health", "--json"]).stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    drop(up);
}

/// A forward to a number outside, with no upstream to take the calls, is
/// refused with the reason (calls would only get 404).
#[test]
fn a_forward_outside_without_an_upstream_is_refused_with_the_reason() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let o = sw.pbxctl(&["forward", "21", "07700900123"]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no [upstream] route"), "{err}");
    let o = sw.pbxctl(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["settings"], serde_json::json!([]), "nothing was set: {v}");
}

/// Completions offer the running switch's extensions, groups and run states:
/// bash's and zsh's completion functions, loaded from `pbxctl completions
/// bash|zsh`, called as the shells call them.
#[test]
fn completions_offer_the_live_extensions_groups_and_run_states() {
    let conf = Conf::new(&[21, 22, 35])
        .group(100, &[21, 22])
        .section("runstate night", "dnd.21 = on")
        .build();
    let sw = Switch::start(&conf);
    let words = |kind: &str| {
        let o = sw.pbxctl(&["complete", kind]);
        assert_eq!(code(&o), 0, "{}", show(&o));
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(words("exts"), ["21", "22", "35"]);
    assert_eq!(words("groups"), ["100"]);
    assert_eq!(words("runstates"), ["day", "night"]);
    assert_eq!(words("targets"), ["21", "22", "35", "100", "all"]);

    // bash, as it completes `pbxctl forward 2<Tab>` and `pbxctl runstate n<Tab>`.
    let script = sw.pbxctl(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pbxctl.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let bin = coventry_tests::pbxctl_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // One shell program run as a completion would be: pbxctl (just built) on
    // PATH, the switch's runtime dir; the words it printed.
    let run_shell = |shell: &str, flag: &str, program: &str| {
        let mut cmd = std::process::Command::new(shell);
        cmd.args([flag, "-c", program])
            .env("PATH", &path)
            .env("COVENTRY_RUNTIME_DIR", sw.runtime_dir());
        let o = coventry_tests::run_bounded(cmd, Duration::from_secs(20)).unwrap();
        assert!(o.status.success(), "{shell}: {}", show(&o));
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let quoted = |line: &[&str]| {
        line.iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let complete = |line: &[&str]| {
        let program = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _pbxctl_live pbxctl; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            quoted(line),
            line.len() - 1
        );
        run_shell("bash", "--norc", &program)
    };
    assert_eq!(complete(&["pbxctl", "forward", "2"]), ["21", "22"]);
    assert_eq!(complete(&["pbxctl", "runstate", "n"]), ["night"]);
    assert_eq!(complete(&["pbxctl", "message", "1"]), ["100"]);
    assert_eq!(
        complete(&["pbxctl", "--timeout", "5", "dnd", "3"]),
        ["35"],
        "an option's value is not the subcommand"
    );

    // zsh, as it loads `_pbxctl` from fpath (the packaged vendor-completions
    // file) and calls it with `words` and `CURRENT` set. compadd is zsh's own
    // (it filters by the typed prefix); here it prints what it is offered, and
    // _arguments (clap's completion of everything else) says it was reached.
    let zsh_dir = dir.path().join("zsh");
    std::fs::create_dir(&zsh_dir).unwrap();
    let script = sw.pbxctl(&["completions", "zsh"]);
    std::fs::write(zsh_dir.join("_pbxctl"), &script.stdout).unwrap();
    let zsh_complete = |line: &[&str]| {
        let program = format!(
            "fpath=('{}' $fpath); autoload -U _pbxctl; \
             compadd() {{ [[ $1 == -a ]] && print -l -- ${{(P)2}} }}; \
             _arguments() {{ print clap }}; \
             words=({}); CURRENT={}; _pbxctl",
            zsh_dir.display(),
            quoted(line),
            line.len()
        );
        run_shell("zsh", "-f", &program)
    };
    assert_eq!(
        zsh_complete(&["pbxctl", "forward", "2"]),
        ["21", "22", "35"]
    );
    assert_eq!(zsh_complete(&["pbxctl", "runstate", "n"]), ["day", "night"]);
    assert_eq!(
        zsh_complete(&["pbxctl", "message", ""]),
        ["21", "22", "35", "100", "all"]
    );
    assert_eq!(zsh_complete(&["pbxctl", "sta"]), ["clap"]);
    assert_eq!(zsh_complete(&["pbxctl", "forward", "21", ""]), ["clap"]);
}
