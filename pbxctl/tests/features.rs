//! pbxctl's switch-feature commands against a fake daemon: forward, dnd, dial, speed,
//! why, broadcast receipts of message, and forwards/DND in status and exts.

mod common;

use common::*;
use coventry_shared::event::{Event, ResultCode};
use coventry_shared::now_ms;
use coventry_shared::stateblock::{put_str, set_bit, EXT_CONFIGURED};
use serde_json::{json, Value};
use std::process::{Output, Stdio};

fn json_of(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(o)))
}

/// Answer every request with `ok` and the command as the daemon read it.
fn echo() -> Answer {
    Box::new(|r| Some((ResultCode::Ok, format!("did {}", r.command), r.id)))
}

/// The last line the fake read, without its request id (which must be there).
fn last_line(f: &Fake) -> String {
    let lines = f.lines();
    let line = lines.last().expect("a line was written");
    let id = id_of(line);
    line.strip_prefix(&format!("#{id} "))
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string()
}

/// Seconds since the epoch now.
fn now_s() -> u64 {
    now_ms() / 1000
}

/// The `until=` value of a control line.
fn until_of(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("until="))
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no until= in {line:?}"))
}

/// Run pbxctl in `f` with the time zone `tz`.
fn run_tz(f: &Fake, tz: &str, args: &[&str]) -> Output {
    pbxctl_cmd(f.path())
        .env("TZ", tz)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pbxctl")
}

/// Name extensions 21, 35, 36 and 38 and mark them configured.
fn name_exts(f: &Fake) {
    let mut w = f.w();
    let plan = w.plan();
    let mut b = w.body_mut();
    for (ext, name) in [
        (21u16, "Reception"),
        (35, "Flat 3"),
        (36, "Flat 4"),
        (38, "Cellar"),
    ] {
        let i = plan.index_of(ext).expect("in plan");
        b.exts[i].flags = EXT_CONFIGURED;
        put_str(&mut b.exts[i].name, name);
    }
}

#[test]
fn forward_writes_the_exact_lines() {
    let f = Fake::answering(echo());
    for (args, want) in [
        (&["forward", "21", "35"][..], "forward 21 35 always"),
        (&["forward", "21", "35", "--busy"], "forward 21 35 busy"),
        (
            &["forward", "21", "35", "--no-answer"],
            "forward 21 35 noanswer",
        ),
        (&["forward", "21", "off"], "forward 21 off always"),
        (&["forward", "21", "OFF", "--busy"], "forward 21 off busy"),
        (
            &["fwd", "21", "off", "--no-answer"],
            "forward 21 off noanswer",
        ),
        (
            &["forward", "21", "0123456789"],
            "forward 21 0123456789 always",
        ),
    ] {
        let o = f.run(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(last_line(&f), want, "{args:?}");
        assert_eq!(stdout(&o), format!("did {want}\n"), "{args:?}");
    }
    assert_eq!(f.lines().len(), 7);
}

#[test]
fn for_durations_become_until_seconds() {
    let f = Fake::answering(echo());
    for (args, secs) in [
        (&["forward", "21", "35", "--for", "2h"][..], 7200u64),
        (&["forward", "21", "35", "--busy", "--for", "1h30m"], 5400),
        (&["forward", "21", "35", "--for", "90s"], 90),
        (&["dnd", "21", "on", "--for", "30m"], 1800),
        (&["dnd", "21", "on", "--for", "1d"], 86_400),
    ] {
        let before = now_s();
        let o = f.run(args);
        let after = now_ms().div_ceil(1000);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let line = last_line(&f);
        let u = until_of(&line);
        assert!(
            (before + secs..=after + secs).contains(&u),
            "{args:?}: until={u}, want {}..={}",
            before + secs,
            after + secs
        );
        let head = if args[0] == "dnd" {
            "dnd 21 on until=".to_string()
        } else if args.contains(&"--busy") {
            "forward 21 35 busy until=".to_string()
        } else {
            "forward 21 35 always until=".to_string()
        };
        assert_eq!(line, format!("{head}{u}"), "{args:?}");
    }
}

#[test]
fn until_is_the_next_local_time_of_day() {
    use chrono::{Timelike, Utc};
    let f = Fake::answering(echo());
    // TZ=UTC, and a POSIX zone three hours east of it (no tz database needed).
    for (tz, offset_s) in [("UTC", 0i64), ("XYZ-3", 3 * 3600)] {
        for (shift_h, day) in [(2i64, 0u64), (-2, 86_400)] {
            // The local time shift_h hours from now; a past one means tomorrow.
            let t = Utc::now() + chrono::Duration::seconds(shift_h * 3600 + offset_s);
            let hhmm = t.format("%H:%M").to_string();
            let at_minute =
                u64::try_from(t.timestamp() - offset_s).expect("positive") - u64::from(t.second());
            let o = run_tz(&f, tz, &["forward", "21", "35", "--until", &hhmm]);
            assert_eq!(code(&o), 0, "{tz} {hhmm}: {}", stderr(&o));
            assert_eq!(
                until_of(&last_line(&f)),
                at_minute + day,
                "{tz} --until {hhmm}"
            );
            let o = run_tz(&f, tz, &["dnd", "21", "on", "--until", &hhmm]);
            assert_eq!(code(&o), 0, "{tz} {hhmm}: {}", stderr(&o));
            assert_eq!(
                last_line(&f),
                format!("dnd 21 on until={}", at_minute + day)
            );
        }
    }
}

#[test]
fn dnd_dial_speed_why_write_their_lines() {
    let f = Fake::answering(echo());
    for (args, want) in [
        (&["dnd", "21", "on"][..], "dnd 21 on"),
        (&["dnd", "21", "OFF"], "dnd 21 off"),
        (&["dial", "21", "35"], "dial 21 35"),
        (&["call", "21", "*72"], "dial 21 *72"),
        (&["speed", "*7", "0123456"], "speed *7 0123456"),
        (&["speed", "12", "off"], "speed 12 off"),
        (&["why", "21"], "why 21"),
    ] {
        let o = f.run(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(last_line(&f), want, "{args:?}");
    }
    // --json: the usual result object with the command as sent.
    let o = f.run(&["--json", "dnd", "21", "on"]);
    assert_eq!(code(&o), 0);
    let v = json_of(&o);
    assert_eq!(v["command"], "dnd 21 on");
    assert_eq!(v["ok"], true);
    assert_eq!(v["text"], "did dnd 21 on");
    assert_eq!(v["id"].as_u64(), Some(id_of(&f.lines()[7])));
}

#[test]
fn usage_errors_send_nothing() {
    let f = Fake::answering(echo());
    for args in [
        &["forward", "21", "off", "--for", "1h"][..],
        &["forward", "21", "35", "--busy", "--no-answer"],
        &["forward", "21", "35", "--until", "25:00"],
        &["forward", "21", "35", "--until", "5pm"],
        &["forward", "21", "35", "--until", "17:00", "--for", "1h"],
        &["forward", "21", "35", "--for", "10"],
        &["forward", "21", "35", "--for", "0m"],
        &["forward", "21", "35", "--for", "30m2h"],
        &["forward", "21", "sip:35@evil"],
        &["forward", "21"],
        &["forward", "x", "35"],
        &["dnd", "21", "maybe"],
        &["dnd", "21", "off", "--until", "17:00"],
        &["dial", "21"],
        &["dial", "21", "35;x"],
        &["speed", "*7"],
        &["speed", "ab", "12"],
        &["why"],
        &["why", "x"],
    ] {
        let o = f.run(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
    assert_eq!(f.lines(), Vec::<String>::new());
    let o = f.run(&["forward", "21", "off", "--for", "1h"]);
    assert_eq!(
        stderr(&o),
        "pbxctl: --until and --for need a target: `off` clears the forward now\n"
    );
}

#[test]
fn rejected_is_status_1_and_silence_status_4() {
    let f = Fake::answering(answer_with(
        ResultCode::Failed,
        "refused: 21 -> 35 -> 21 would loop",
    ));
    let o = f.run(&["forward", "21", "35"]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        "pbxctl: failed: refused: 21 -> 35 -> 21 would loop\n"
    );
    let o = f.run(&["--json", "forward", "21", "35"]);
    assert_eq!(code(&o), 1);
    assert_eq!(json_of(&o)["code"], "failed");
    for args in [
        &["dnd", "21", "on"][..],
        &["dial", "21", "35"],
        &["speed", "*7", "12"],
        &["why", "21"],
    ] {
        let o = f.run(args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(stderr(&o).starts_with("pbxctl: failed: "), "{args:?}");
    }
    let f = Fake::answering(answer_with(ResultCode::NotFound, "no extension 88"));
    let o = f.run(&["why", "88"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "pbxctl: not-found: no extension 88\n");

    let f = Fake::answering(answer_never());
    for args in [
        &["forward", "21", "35", "--for", "1h"][..],
        &["dnd", "21", "on"],
        &["dial", "21", "35"],
        &["speed", "*7", "off"],
        &["why", "21"],
    ] {
        let mut a = vec!["--timeout", "0.3"];
        a.extend_from_slice(args);
        let o = f.run(&a);
        assert_eq!(code(&o), 4, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("pbxctl: timed out"), "{args:?}");
    }
    assert_eq!(f.lines().len(), 5);
}

#[test]
fn no_daemon_is_status_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["forward", "21", "35"][..],
        &["dnd", "21", "on", "--for", "1h"],
        &["dial", "21", "35"],
        &["speed", "*7", "12"],
        &["why", "21"],
    ] {
        let o = pbxctl_in(dir.path(), args);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
    }
}

/// The steps of `why 21` as the switch sends them, before its conclusion.
const WHY_STEPS: [&str; 4] = [
    "21 forwards every call to 35",
    "35 is busy",
    "it forwards on busy to 36",
    "36 rings on 2 registered contact(s)",
];
const WHY: &str = "a call to 21 rings 36 (for 36)";

#[test]
fn why_prints_one_step_per_line_and_raw_json() {
    let steps: Receipts = Box::new(|r, _| {
        WHY_STEPS
            .iter()
            .enumerate()
            .map(|(i, t)| Event::WhyStep {
                id: r.id,
                step: i as u16,
                text: t.to_string(),
            })
            .collect()
    });
    let f = Fake::answering_with(answer_ok(WHY), steps);
    let o = f.run(&["why", "21"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "21 forwards every call to 35\n35 is busy\nit forwards on busy to 36\n\
         36 rings on 2 registered contact(s)\na call to 21 rings 36 (for 36)\n"
    );
    assert_eq!(last_line(&f), "why 21");
    let o = f.run(&["--json", "why", "21"]);
    assert_eq!(code(&o), 0);
    let v = json_of(&o);
    assert_eq!(v["text"], WHY);
    assert_eq!(v["steps"], json!(WHY_STEPS));
    assert_eq!(v["command"], "why 21");
    assert_eq!(v["code"], "ok");
}

/// The receipts of a text as the switch sends them: whom it went to, who was
/// offline, then each target's outcome (`None`: no answer yet).
fn receipts(to: &str, outcomes: &[(u16, Option<u16>)], offline: &[u16]) -> Receipts {
    let (to, outcomes, offline) = (to.to_string(), outcomes.to_vec(), offline.to_vec());
    Box::new(move |r, _| {
        let mut ev = vec![Event::Delivering {
            id: r.id,
            to: to.clone(),
            targets: outcomes.iter().map(|(e, _)| *e).collect(),
            offline: offline.clone(),
        }];
        ev.extend(outcomes.iter().filter_map(|(e, s)| {
            s.map(|status| Event::Message {
                id: r.id,
                from: "operator".into(),
                to: e.to_string(),
                status,
                text: "x".into(),
            })
        }));
        ev
    })
}

#[test]
fn broadcast_receipts_as_a_table_and_json() {
    let outcomes = [
        (21, Some(200)),
        (35, Some(200)),
        (36, Some(486)),
        (40, Some(408)),
    ];
    let f = Fake::answering_with(
        answer_ok("all: delivered to 2 of 4 registered now"),
        receipts("all", &outcomes, &[]),
    );
    name_exts(&f);
    let o = f.run(&["message", "all", "shutdown", "at", "5"]);
    assert_eq!(code(&o), 5, "some, not all: {}", stderr(&o));
    assert_eq!(last_line(&f), "message all shutdown at 5");
    let s = stdout(&o);
    let rows: Vec<Vec<&str>> = s.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        s.lines().next(),
        Some("all: delivered to 2 of 4 registered now"),
        "{s}"
    );
    assert_eq!(
        rows[1..],
        [
            vec!["EXT", "NAME", "RESULT", "STATUS"],
            vec!["21", "Reception", "delivered", "200"],
            vec!["35", "Flat", "3", "delivered", "200"],
            vec!["36", "Flat", "4", "refused", "486"],
            vec!["40", "-", "no-answer", "408"],
        ],
        "{s}"
    );
    assert!(o.stderr.is_empty());

    let o = f.run(&["--json", "message", "all", "shutdown"]);
    assert_eq!(code(&o), 5);
    let v = json_of(&o);
    assert_eq!(v["text"], "all: delivered to 2 of 4 registered now");
    assert_eq!(
        (v["delivered"].as_u64(), v["total"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(
        v["receipts"],
        json!([
            {"ext": 21, "result": "delivered", "status": 200},
            {"ext": 35, "result": "delivered", "status": 200},
            {"ext": 36, "result": "refused", "status": 486},
            {"ext": 40, "result": "no-answer", "status": 408},
        ])
    );
}

#[test]
fn failed_broadcast_still_shows_receipts() {
    let f = Fake::answering_with(
        answer_with(
            ResultCode::Failed,
            "7: delivered to 0 of 1 online (1 offline)",
        ),
        receipts("7", &[(38, Some(503))], &[36]),
    );
    name_exts(&f);
    let o = f.run(&["message", "7", "hi"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "pbxctl: failed: 7: delivered to 0 of 1 online (1 offline)\n"
    );
    let s = stdout(&o);
    assert!(
        s.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["38", "Cellar", "refused", "503"]),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["36", "Flat", "4", "offline", "480"]),
        "{s}"
    );
    let o = f.run(&["--json", "message", "7", "hi"]);
    assert_eq!(code(&o), 1);
    let v = json_of(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["receipts"][1],
        json!({"ext": 38, "result": "refused", "status": 503})
    );
}

#[test]
fn a_silent_phone_gets_no_answer_yet_at_the_timeout() {
    // 21 took it, 22 never answers, and the switch's result is 32 s away: pbxctl
    // answers at its timeout with what is known then.
    let f = Fake::answering_with(
        Box::new(|_| None),
        receipts("all", &[(21, Some(200)), (22, None)], &[]),
    );
    // The fake publishes the receipts at once; the timeout only has to outlast
    // that on any machine. That pbxctl answered at its timeout shows in its words.
    let o = f.run(&["--timeout", "5", "message", "all", "shutdown at 5"]);
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.starts_with("all: delivered to 1 of 2 registered now, 1 not answered yet"),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["22", "-", "waiting", "-"]),
        "{s}"
    );
    // Nobody answered at all: status 4.
    let f = Fake::answering_with(Box::new(|_| None), receipts("22", &[(22, None)], &[]));
    let o = f.run(&["--timeout", "5", "--json", "message", "22", "hi"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(
        (v["done"].as_bool(), v["waiting"].as_u64()),
        (Some(false), Some(1))
    );
}

#[test]
fn single_extension_result_stays_as_it_is() {
    let f = Fake::answering(answer_ok("delivered to 21"));
    let o = f.run(&["message", "21", "hi"]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), "delivered to 21\n");
    let o = f.run(&["--json", "message", "21", "hi"]);
    let v = json_of(&o);
    assert_eq!(v["text"], "delivered to 21");
    assert_eq!(
        v["receipts"],
        json!([{"ext": 21, "result": "delivered", "status": 200}])
    );
}

/// 21: DND until in 2 h, forward always 35 and on busy 36 until in 1 h; 35: forward
/// on no answer 40, no expiry; 36: nothing.
fn set_settings(f: &Fake, now: u64) {
    name_exts(f);
    let mut w = f.w();
    let plan = w.plan();
    let mut b = w.body_mut();
    let i21 = plan.index_of(21).expect("21");
    let i35 = plan.index_of(35).expect("35");
    put_str(&mut b.exts[i21].forward_always, "35");
    put_str(&mut b.exts[i21].forward_busy, "36");
    b.exts[i21].forward_until_ms = now + 3_600_000;
    b.exts[i21].dnd_until_ms = now + 7_200_000;
    set_bit(&mut b.bitmaps.dnd, i21, true);
    set_bit(&mut b.bitmaps.forwarded, i21, true);
    put_str(&mut b.exts[i35].forward_noanswer, "40");
    drop(b);
    w.heartbeat(now);
}

#[test]
fn status_and_exts_show_forwards_and_dnd() {
    let f = Fake::new(coventry_shared::dialplan::Plan::TwoDigit);
    let o = f.run(&["status"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.ends_with("settings\n  no forwards, no dnd\n"), "{s}");
    assert_eq!(
        json_of(&f.run(&["--json", "status"]))["settings"],
        json!([])
    );

    let now = now_ms();
    set_settings(&f, now);
    let o = f.run(&["status"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    let tail: Vec<&str> = s.lines().skip_while(|l| *l != "settings").collect();
    assert_eq!(tail.len(), 3, "{s}");
    let l21 = tail[1];
    assert!(l21.starts_with("  21   Reception  dnd until "), "{l21}");
    assert!(
        l21.contains("(in 2h00m)") || l21.contains("(in 1h59m)"),
        "{l21}"
    );
    assert!(
        l21.contains("; forward always 35, busy 36 (earliest expiry "),
        "{l21}"
    );
    assert!(
        l21.ends_with(", in 1h00m)") || l21.contains(", in 59m5"),
        "{l21}"
    );
    assert_eq!(tail[2], "  35   Flat 3     forward no-answer 40");
    // A single forward with an expiry reverts then.
    {
        let mut w = f.w();
        let i35 = w.plan().index_of(35).expect("35");
        w.body_mut().exts[i35].forward_until_ms = now + 600_000;
    }
    let s = stdout(&f.run(&["status"]));
    let l35 = s.lines().find(|l| l.starts_with("  35 ")).expect("35");
    assert!(
        l35.starts_with("  35   Flat 3     forward no-answer 40 until "),
        "{l35}"
    );
    {
        let mut w = f.w();
        let i35 = w.plan().index_of(35).expect("35");
        w.body_mut().exts[i35].forward_until_ms = 0;
    }

    let v = json_of(&f.run(&["--json", "status"]));
    assert_eq!(
        v["settings"],
        json!([
            {"ext": 21, "name": "Reception", "dnd": true, "dnd_until_ms": now + 7_200_000,
             "forward_always": "35", "forward_busy": "36", "forward_noanswer": null,
             "forward_until_ms": now + 3_600_000},
            {"ext": 35, "name": "Flat 3", "dnd": false, "dnd_until_ms": null,
             "forward_always": null, "forward_busy": null, "forward_noanswer": "40",
             "forward_until_ms": null},
        ])
    );

    let o = f.run(&["--json", "exts"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json_of(&o);
    let e21 = &v[11];
    assert_eq!(e21["ext"], 21);
    assert_eq!(e21["dnd"], true);
    assert_eq!(e21["forwarded"], true);
    assert_eq!(e21["forward_always"], "35");
    assert_eq!(e21["forward_busy"], "36");
    assert_eq!(e21["forward_noanswer"], Value::Null);
    assert_eq!(e21["dnd_until_ms"], now + 7_200_000);
    assert_eq!(e21["forward_until_ms"], now + 3_600_000);
    let e35 = &v[25];
    assert_eq!(e35["ext"], 35);
    assert_eq!(e35["forward_noanswer"], "40");
    assert_eq!(e35["dnd_until_ms"], Value::Null);
    assert_eq!(v[26]["forward_always"], Value::Null);
    // The grid shows them too.
    let s = stdout(&f.run(&["exts"]));
    assert!(s.contains("21 D"), "{s}");
}
