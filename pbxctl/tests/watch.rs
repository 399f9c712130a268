//! `pbxctl watch` against a fake daemon: formats, lost events, restarts, pipes.

mod common;

use common::*;
use coventry_shared::dialplan::Plan;
use coventry_shared::event::{CallOutcome, CallPhase, Event, ResultCode, Unregistration};
use coventry_shared::runtime;
use coventry_shared::stateblock::{StateWriter, RING_SLOTS};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

fn notice(text: &str) -> Event {
    Event::Notice { text: text.into() }
}

/// Start `pbxctl watch ARGS` with its stdout lines sent to a channel.
fn spawn_watch(f: &Fake, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = pbxctl_cmd(f.path())
        .arg("watch")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Push numbered notices until watch shows one, then wait until it has shown the
/// last one pushed: from then on it is following the ring with nothing pending.
fn sync(f: &Fake, rx: &Receiver<String>) {
    let number = |l: &str| -> u32 {
        let at = l
            .find("sync ")
            .unwrap_or_else(|| panic!("unexpected line {l}"));
        let digits: String = l[at + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("bad sync line {l}"))
    };
    let mut pushed = 0u32;
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = loop {
        assert!(Instant::now() < end, "watch never printed anything");
        f.push(notice(&format!("sync {pushed}")));
        pushed += 1;
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
            break number(&l);
        }
    };
    while seen + 1 < pushed {
        seen = number(&rx.recv_timeout(Duration::from_secs(5)).expect("sync line"));
    }
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn from_start_after_1500_events_reports_exactly_476_lost() {
    let f = Fake::new(Plan::TwoDigit);
    for i in 0..1500u32 {
        f.push(Event::Message {
            id: None,
            from: "21".into(),
            to: "35".into(),
            status: 200,
            text: format!("m{i}"),
        });
    }
    let o = f.run(&["watch", "--json", "--from-start", "--count", "1024"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1025);
    assert_eq!(
        parse(lines[0]),
        serde_json::json!({"kind": "lost", "count": 476})
    );
    assert_eq!(1500 - RING_SLOTS, 476);
    for (k, l) in lines[1..].iter().enumerate() {
        let v = parse(l);
        let seq = 476 + k as u64;
        assert_eq!(v["seq"].as_u64(), Some(seq), "{l}");
        assert_eq!(v["kind"], "message");
        assert_eq!(v["from"], "21");
        assert_eq!(v["to"], "35");
        assert_eq!(v["status"], 200);
        assert_eq!(v["text"], format!("m{seq}"));
        assert!(v["time_ms"].as_u64().is_some());
    }
    // The same in text form.
    let o = f.run(&["watch", "--from-start", "--count", "2"]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "-- 476 events lost --");
    assert!(
        lines[1].ends_with(" message 21 -> 35 [200]: m476"),
        "{}",
        lines[1]
    );
}

#[test]
fn every_kind_prints_with_local_time_and_display() {
    let f = Fake::new(Plan::TwoDigit);
    let events = vec![
        Event::Registered {
            ext: 21,
            contact: "sip:21@192.0.2.1".into(),
            user_agent: "Yealink".into(),
        },
        Event::Unregistered {
            ext: 21,
            contact: "sip:21@192.0.2.1".into(),
            why: Unregistration::Expired,
        },
        Event::Message {
            id: None,
            from: "21".into(),
            to: "all".into(),
            status: 202,
            text: "tea? \u{1b}[2J".into(),
        },
        Event::CommandResult {
            id: Some(9),
            code: ResultCode::NotFound,
            text: "no such extension".into(),
        },
        Event::AuthFailed {
            user: "21".into(),
            source: "192.0.2.9:5099".into(),
        },
        Event::Warning {
            text: "disk".into(),
        },
        notice("started"),
        Event::CallState {
            call: 1012,
            from: "21".into(),
            to: "35".into(),
            phase: CallPhase::Ringing,
            rings: 2,
        },
        Event::CallRecord {
            call: 1012,
            from: "21".into(),
            to: "35".into(),
            start_ms: 1_700_000_000_000,
            answer_ms: 1_700_000_004_000,
            end_ms: 1_700_000_065_900,
            outcome: CallOutcome::Completed,
            status: 200,
        },
    ];
    for e in &events {
        f.push(e.clone());
    }
    let o = f.run(&["watch", "--from-start", "--count", "9"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 9, "{out}");
    for (line, e) in lines.iter().zip(&events) {
        let (time, rest) = line.split_at(12);
        let b = time.as_bytes();
        assert!(
            b.iter().enumerate().all(|(i, c)| match i {
                2 | 5 => *c == b':',
                8 => *c == b'.',
                _ => c.is_ascii_digit(),
            }),
            "time {time:?} in {line:?}"
        );
        // Network text is made display-safe: the escape character is replaced.
        let shown = e.to_string().replace('\u{1b}', "\u{FFFD}");
        assert_eq!(rest, format!(" {shown}"));
    }
    assert!(!out.contains('\u{1b}'), "no escapes reach the terminal");

    assert!(
        lines[7].ends_with(" call 1012 21 -> 35 ringing (ring 2)"),
        "{out}"
    );
    assert!(
        lines[8].ends_with(" call 1012 21 -> 35 ended: completed [200], 65s, talked 61s"),
        "{out}"
    );

    let o = f.run(&["watch", "--json", "--from-start", "--count", "9"]);
    let out = stdout(&o);
    let v: Vec<Value> = out.lines().map(parse).collect();
    assert_eq!(v.len(), 9);
    let kinds: Vec<&str> = v
        .iter()
        .map(|x| x["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "registered",
            "unregistered",
            "message",
            "result",
            "auth-failed",
            "warning",
            "notice",
            "call",
            "call-record"
        ]
    );
    assert_eq!(v[0]["user_agent"], "Yealink");
    assert_eq!(v[1]["why"], "expired");
    assert_eq!(v[2]["text"], "tea? \u{1b}[2J");
    assert_eq!(v[3]["id"], 9);
    assert_eq!(v[3]["code"], "not-found");
    assert_eq!(v[4]["source"], "192.0.2.9:5099");
    assert_eq!(v[6]["text"], "started");
}

#[test]
fn call_events_in_json() {
    let f = Fake::new(Plan::TwoDigit);
    let phases = [
        (CallPhase::Dialing, 0),
        (CallPhase::Ringing, 1),
        (CallPhase::Ringing, 2),
        (CallPhase::Answered, 2),
        (CallPhase::Ended, 2),
    ];
    for (phase, rings) in phases {
        f.push(Event::CallState {
            call: 4_000_000_000,
            from: "21".into(),
            to: "100".into(),
            phase,
            rings,
        });
    }
    let records = [
        // Answered: talked from answer to end.
        (1_000, 5_500, 70_999, CallOutcome::Completed, 200, 69, 65),
        // Never answered: no talk time.
        (1_000, 0, 31_000, CallOutcome::NoAnswer, 480, 30, 0),
        (1_000, 0, 1_400, CallOutcome::Busy, 486, 0, 0),
    ];
    for (start_ms, answer_ms, end_ms, outcome, status, _, _) in records {
        f.push(Event::CallRecord {
            call: 1009,
            from: "22".into(),
            to: "35".into(),
            start_ms,
            answer_ms,
            end_ms,
            outcome,
            status,
        });
    }
    let o = f.run(&["watch", "--json", "--from-start", "--count", "8"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let v: Vec<Value> = out.lines().map(parse).collect();
    assert_eq!(v.len(), 8, "{out}");
    for (k, (phase, rings)) in phases.iter().enumerate() {
        let obj = v[k].as_object().expect("object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["call", "from", "kind", "phase", "rings", "seq", "time_ms", "to"]
        );
        assert_eq!(v[k]["kind"], "call");
        assert_eq!(v[k]["call"], 4_000_000_000u64);
        assert_eq!(v[k]["from"], "21");
        assert_eq!(v[k]["to"], "100");
        assert_eq!(v[k]["phase"], phase.name());
        assert_eq!(v[k]["rings"], *rings);
    }
    let phases: Vec<&str> = v[..5]
        .iter()
        .map(|x| x["phase"].as_str().expect("phase"))
        .collect();
    assert_eq!(
        phases,
        ["dialing", "ringing", "ringing", "answered", "ended"]
    );
    for (k, (start_ms, answer_ms, end_ms, outcome, status, duration, talk)) in
        records.iter().enumerate()
    {
        let r = &v[5 + k];
        let mut keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "answer_ms",
                "call",
                "duration_s",
                "end_ms",
                "from",
                "kind",
                "outcome",
                "seq",
                "start_ms",
                "status",
                "talk_s",
                "time_ms",
                "to"
            ]
        );
        assert_eq!(r["kind"], "call-record");
        assert_eq!(r["call"], 1009);
        assert_eq!(r["from"], "22");
        assert_eq!(r["to"], "35");
        assert_eq!(r["start_ms"], *start_ms);
        assert_eq!(r["answer_ms"], *answer_ms);
        assert_eq!(r["end_ms"], *end_ms);
        assert_eq!(r["outcome"], outcome.name());
        assert_eq!(r["status"], *status);
        assert_eq!(r["duration_s"], *duration, "{r}");
        assert_eq!(r["talk_s"], *talk, "{r}");
    }
    assert_eq!(v[6]["outcome"], "no-answer");
}

#[test]
fn live_follow_accounts_for_every_event_lost_or_shown() {
    let f = Fake::new(Plan::TwoDigit);
    f.push(notice("old"));
    let (child, rx) = spawn_watch(&f, &["--json"]);
    sync(&f, &rx);
    // A burst far larger than the ring, written faster than anyone can print it.
    const BURST: u64 = 20_000;
    {
        let mut w = f.w();
        for i in 0..BURST {
            w.push_event(coventry_shared::now_ms(), &notice(&format!("b{i}")));
        }
    }
    f.push(notice("end"));
    let (mut lost, mut shown, mut last) = (0u64, 0u64, None::<u64>);
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("watch output");
        let v = parse(&l);
        if v["kind"] == "lost" {
            lost += v["count"].as_u64().expect("count");
            continue;
        }
        assert_eq!(v["kind"], "notice", "{l}");
        if v["text"] == "end" {
            break;
        }
        let n: u64 = v["text"].as_str().expect("text")[1..]
            .parse()
            .expect("burst number");
        assert!(
            last.is_none_or(|p| n > p),
            "out of order: {n} after {last:?}"
        );
        last = Some(n);
        shown += 1;
    }
    assert!(
        lost > 0,
        "a 20000-event burst must overrun the 1024-slot ring"
    );
    assert_eq!(lost + shown, BURST, "lost {lost} + shown {shown}");
    assert_eq!(last, Some(BURST - 1), "the newest events are never lost");
    kill(child);
}

#[test]
fn count_and_duration_bound_the_watch() {
    let f = Fake::new(Plan::TwoDigit);
    let t = Instant::now();
    let o = f.run(&["watch", "--duration", "0.5"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // Not before its duration; that it ends at all is the point (RUN_LIMIT).
    assert!(t.elapsed() >= Duration::from_millis(500));

    // Started at the end: old events are not shown; --count stops after N new ones.
    f.push(notice("before"));
    let (mut child, rx) = spawn_watch(&f, &["--count", "1"]);
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        f.push(notice("after"));
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < end, "watch --count 1 did not stop");
        std::thread::sleep(Duration::from_millis(30));
    };
    assert_eq!(status.code(), Some(0));
    // Everything it printed: its output ends (the reader thread hangs up).
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => lines.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("watch's output never ended: {e}; {lines:?}"),
        }
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(" after"), "{lines:?}");
}

#[test]
fn daemon_stop_and_restart_are_reported_and_followed() {
    let f = Fake::new(Plan::TwoDigit);
    let (child, rx) = spawn_watch(&f, &["--json"]);
    sync(&f, &rx);
    let old_pid = std::process::id();

    // Stop: the block disappears.
    std::fs::remove_file(f.state_path()).expect("remove block");
    let l = rx.recv_timeout(Duration::from_secs(5)).expect("stop line");
    let v = parse(&l);
    assert_eq!(v["kind"], "daemon-stopped", "{l}");
    assert_eq!(v["pid"].as_u64(), Some(u64::from(old_pid)));

    // Start: a new block with its own ring, starting at sequence 0.
    let mut w = StateWriter::create(&runtime::state_path(f.path()), &init(Plan::ThreeDigit))
        .expect("new block");
    w.push_event(coventry_shared::now_ms(), &notice("second life"));
    let l = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("restart line");
    assert_eq!(parse(&l)["kind"], "daemon-restarted", "{l}");
    let v = parse(&rx.recv_timeout(Duration::from_secs(5)).expect("event"));
    assert_eq!(v["text"], "second life");
    assert_eq!(v["seq"], 0);

    // A replacement without a gap (rename over the old file) is a restart too.
    let mut w2 = StateWriter::create(&runtime::state_path(f.path()), &init(Plan::TwoDigit))
        .expect("third block");
    w.push_event(coventry_shared::now_ms(), &notice("last words"));
    w2.push_event(coventry_shared::now_ms(), &notice("third life"));
    let mut kinds = Vec::new();
    while kinds.last().map(String::as_str) != Some("third life") {
        let v = parse(&rx.recv_timeout(Duration::from_secs(5)).expect("line"));
        kinds.push(
            v["text"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v["kind"].as_str().unwrap_or("?").to_string()),
        );
    }
    assert!(kinds.contains(&"daemon-restarted".to_string()), "{kinds:?}");
    kill(child);
}

#[test]
fn dead_daemon_is_reported_once() {
    let f = Fake::new(Plan::TwoDigit);
    let (child, rx) = spawn_watch(&f, &[]);
    sync(&f, &rx);
    f.set_pid(dead_pid());
    let l = rx.recv_timeout(Duration::from_secs(5)).expect("stop line");
    assert!(
        l.starts_with("-- coventryd stopped (pid ") && l.ends_with("is gone); waiting for it --"),
        "{l}"
    );
    // A fence: watch still reads the ring of a dead daemon, so an event pushed now
    // is printed at its next look at the block, after anything that look reports
    // about the daemon: no second "stopped" line may come before it. (That the
    // follower reports a condition once however often it looks: follow.rs' and
    // shared/tests/follow.rs' tests.)
    f.push(notice("fence"));
    let mut between = Vec::new();
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("the fence never came ({e}): {between:?}"));
        if l.ends_with(" fence") {
            break;
        }
        between.push(l);
    }
    assert!(between.is_empty(), "said only once: {between:?}");
    kill(child);
}

#[test]
fn closed_pipe_ends_watch_quietly() {
    let f = Fake::new(Plan::TwoDigit);
    let mut child = pbxctl_cmd(f.path())
        .args(["watch", "--from-start"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    f.push(notice("first"));
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first line");
    assert!(line.ends_with(" first\n"), "{line}");
    drop(out);
    // The next write hits the closed pipe.
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        f.push(notice("more"));
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < end,
            "watch kept running after its reader left"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "no panic or message: {err}");
}
