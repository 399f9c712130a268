//! pbxctl calls, exts and hangup against a fake daemon.

mod common;

use common::*;
use coventry_shared::dialplan::Plan;
use coventry_shared::event::{CallOutcome, ResultCode};
use coventry_shared::now_ms;
use coventry_shared::stateblock::{call_state, put_str, set_bit, Body, EXT_CONFIGURED};
use serde_json::Value;
use std::time::{Duration, Instant};

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(o)))
}

/// One call-table slot.
struct Slot {
    slot: usize,
    id: u32,
    state: u8,
    rings: u8,
    /// How it ended (ended calls only) and the SIP status behind it.
    outcome: Option<CallOutcome>,
    cause: u16,
    from: &'static str,
    to: &'static str,
    /// Milliseconds before now; 0 = not set.
    start_ago: u64,
    answer_ago: u64,
    end_ago: u64,
}

fn put_call(b: &mut Body, now: u64, s: &Slot) {
    let at = |ago: u64| if ago == 0 { 0 } else { now - ago };
    let e = &mut b.calls[s.slot];
    e.id = s.id;
    e.state = s.state;
    e.ring_count = s.rings;
    e.outcome = s.outcome.map_or(0, |o| o as u16);
    e.cause = s.cause;
    put_str(&mut e.from, s.from);
    put_str(&mut e.to, s.to);
    put_str(&mut e.call_id, &format!("call-{}@192.0.2.1", s.id));
    e.start_ms = at(s.start_ago);
    e.answer_ms = at(s.answer_ago);
    e.end_ms = at(s.end_ago);
}

/// A ringing, an answered and two ended calls spread over the table, and a free slot
/// with leftovers. Returns "now".
fn populate_calls(f: &Fake) -> u64 {
    let now = now_ms();
    let slots = [
        // Ringing for 12.4 s, third ring.
        Slot {
            slot: 0,
            id: 1007,
            state: call_state::RINGING,
            rings: 3,
            outcome: None,
            cause: 0,
            from: "21",
            to: "35",
            start_ago: 12_400,
            answer_ago: 0,
            end_ago: 0,
        },
        // Answered 90.4 s ago after 10 s.
        Slot {
            slot: 3,
            id: 1008,
            state: call_state::ANSWERED,
            rings: 2,
            outcome: None,
            cause: 0,
            from: "22",
            to: "40",
            start_ago: 100_400,
            answer_ago: 90_400,
            end_ago: 0,
        },
        // Busy: ended 2 s ago after 18 s.
        Slot {
            slot: 10,
            id: 1005,
            state: call_state::ENDED,
            rings: 0,
            outcome: Some(CallOutcome::Busy),
            cause: 486,
            from: "23",
            to: "36",
            start_ago: 20_000,
            answer_ago: 0,
            end_ago: 2_000,
        },
        // No answer (480), though no ring was counted: the stored outcome is shown.
        Slot {
            slot: 127,
            id: 1006,
            state: call_state::ENDED,
            rings: 0,
            outcome: Some(CallOutcome::NoAnswer),
            cause: 480,
            from: "24",
            to: "37",
            start_ago: 30_000,
            answer_ago: 0,
            end_ago: 3_000,
        },
    ];
    {
        let mut w = f.w();
        let mut b = w.body_mut();
        for s in &slots {
            put_call(&mut b, now, s);
        }
        // A free slot (id 0) is not a call, whatever else it holds.
        b.calls[1].state = call_state::RINGING;
        put_str(&mut b.calls[1].from, "99");
    }
    now
}

fn is_clock(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 8
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn calls_table_shows_live_calls_then_ended_ones() {
    let f = Fake::new(Plan::TwoDigit);
    populate_calls(&f);
    let o = f.run(&["calls"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    let rows: Vec<Vec<&str>> = s.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 5, "header and four calls: {s}");
    assert_eq!(
        rows[0],
        ["CALL", "FROM", "TO", "STATE", "RINGS", "STARTED", "DURATION", "OUTCOME"]
    );
    // Live calls first (oldest first), then the ended ones (last ended first).
    let calls: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(calls, ["1008", "1007", "1005", "1006"], "{s}");

    // Answered: the duration is the talk time (90 s), not the time since the start.
    let r = &rows[1];
    assert_eq!(r[1..4], ["22", "40", "answered"], "{s}");
    assert_eq!(r[4], "2");
    assert!(is_clock(r[5]), "{s}");
    assert!(r[6] == "1m30s" || r[6] == "1m31s", "talk time: {s}");
    assert_eq!(r[7], "-");

    // Ringing: the rings so far; duration since the start.
    let r = &rows[2];
    assert_eq!(r[1..5], ["21", "35", "ringing", "3"], "{s}");
    assert!(is_clock(r[5]), "{s}");
    assert!(r[6] == "12s" || r[6] == "13s", "{s}");
    assert_eq!(r[7], "-");

    // Ended: marked, with the outcome and SIP status of the table entry and the
    // duration up to the end.
    assert_eq!(rows[4][1..5], ["24", "37", "ended", "0"], "{s}");
    assert_eq!(rows[4][6..], ["27s", "no-answer", "(480)"], "{s}");
    assert_eq!(rows[3][1..4], ["23", "36", "ended"], "{s}");
    assert_eq!(rows[3][6..], ["18s", "busy", "(486)"], "{s}");
    assert!(!s.contains("99"), "free slots are not calls: {s}");
    assert!(!s.contains('\u{1b}'), "no colour when piped: {s:?}");

    // Only the calls of one extension (as caller or as dialled).
    let o = f.run(&["calls", "35"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    assert_eq!(s.lines().count(), 2, "{s}");
    assert!(
        s.lines().nth(1).is_some_and(|l| l.starts_with("1007 ")),
        "{s}"
    );
    let o = f.run(&["calls", "23"]);
    assert_eq!(stdout(&o).lines().count(), 2);
    let o = f.run(&["calls", "60"]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), "no calls for 60\n");
    let o = f.run(&["calls", "95"]);
    assert_eq!(code(&o), 2, "95 is not in the 2-digit plan");
}

#[test]
fn calls_json_has_every_field() {
    let f = Fake::new(Plan::TwoDigit);
    let now = populate_calls(&f);
    let o = f.run(&["--json", "calls"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 4);
    let by_call = |n: u64| {
        arr.iter()
            .find(|c| c["call"].as_u64() == Some(n))
            .unwrap_or_else(|| panic!("call {n} in {v}"))
    };

    let c = by_call(1008);
    assert_eq!(c["from"], "22");
    assert_eq!(c["to"], "40");
    assert_eq!(c["state"], "answered");
    assert_eq!(c["ended"], false);
    assert_eq!(c["rings"], 2);
    assert_eq!(c["start_ms"].as_u64(), Some(now - 100_400));
    assert_eq!(c["answer_ms"].as_u64(), Some(now - 90_400));
    assert_eq!(c["end_ms"], 0);
    let d = c["duration_s"].as_u64().expect("duration");
    assert!((100..=102).contains(&d), "{d}");
    let t = c["talk_s"].as_u64().expect("talk");
    assert!((90..=92).contains(&t), "{t}");
    assert_eq!(c["outcome"], Value::Null);
    assert_eq!(c["status"], Value::Null);
    assert_eq!(c["call_id"], "call-1008@192.0.2.1");

    let c = by_call(1007);
    assert_eq!(c["state"], "ringing");
    assert_eq!(c["rings"], 3);
    assert_eq!(c["talk_s"], 0);
    assert_eq!(c["answer_ms"], 0);

    let c = by_call(1006);
    assert_eq!(c["state"], "ended");
    assert_eq!(c["ended"], true);
    assert_eq!(c["end_ms"].as_u64(), Some(now - 3_000));
    assert_eq!(c["duration_s"], 27);
    assert_eq!(c["talk_s"], 0);
    assert_eq!(c["outcome"], "no-answer");
    assert_eq!(c["status"], 480);

    let c = by_call(1005);
    assert_eq!(c["outcome"], "busy");
    assert_eq!(c["status"], 486);
    assert_eq!(c["duration_s"], 18);

    let o = f.run(&["calls", "--json", "40"]);
    let v = json(&o);
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["call"], 1008);
}

/// The outcome shown is the one the switch stored with the call, not a guess from
/// the SIP status or the rings: the same 480 reads "no-answer" or "unavailable".
#[test]
fn ended_calls_show_the_stored_outcome() {
    let f = Fake::new(Plan::TwoDigit);
    let now = now_ms();
    let ended = [
        (0, 1000, 0, CallOutcome::NoAnswer, 480, "21"),
        (1, 1001, 4, CallOutcome::Unavailable, 480, "22"),
        (2, 1002, 1, CallOutcome::Rejected, 603, "23"),
        (3, 1003, 0, CallOutcome::Failed, 486, "24"),
    ];
    {
        let mut w = f.w();
        let mut b = w.body_mut();
        for (slot, id, rings, outcome, cause, from) in ended {
            put_call(
                &mut b,
                now,
                &Slot {
                    slot,
                    id,
                    state: call_state::ENDED,
                    rings,
                    outcome: Some(outcome),
                    cause,
                    from,
                    to: "35",
                    start_ago: 9_000 - 1_000 * u64::from(id - 1000),
                    answer_ago: 0,
                    end_ago: 1_000,
                },
            );
        }
    }
    let o = f.run(&["calls"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    let shown: Vec<(String, String)> = s
        .lines()
        .skip(1)
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[w.len() - 2..].join(" "))
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("1000".to_string(), "no-answer (480)".to_string()),
            ("1001".to_string(), "unavailable (480)".to_string()),
            ("1002".to_string(), "rejected (603)".to_string()),
            ("1003".to_string(), "failed (486)".to_string()),
        ],
        "{s}"
    );

    let o = f.run(&["--json", "calls"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let got: Vec<(u64, &str, u64)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["call"].as_u64().expect("call"),
                c["outcome"].as_str().expect("outcome"),
                c["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1000, "no-answer", 480),
            (1001, "unavailable", 480),
            (1002, "rejected", 603),
            (1003, "failed", 486),
        ]
    );
}

#[test]
fn no_calls_is_not_an_error() {
    let f = Fake::new(Plan::TwoDigit);
    let o = f.run(&["calls"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "no calls\n");
    assert!(o.stderr.is_empty());
    let o = f.run(&["--json", "calls"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o), serde_json::json!([]));
}

/// Configure `ext` and set its bits (`R` registered with `contacts` contacts, `r`
/// ringing, `B` busy, `D` dnd, `F` forwarded); `.` leaves it unconfigured.
fn set_ext(f: &Fake, ext: u16, bits: &str, contacts: u8) {
    let mut w = f.w();
    let plan = w.plan();
    let i = plan.index_of(ext).expect("in plan");
    let mut b = w.body_mut();
    if !bits.contains('.') {
        b.exts[i].flags = EXT_CONFIGURED;
        put_str(&mut b.exts[i].name, &format!("Room {ext}"));
    }
    for c in 0..usize::from(contacts) {
        put_str(
            &mut b.exts[i].contacts[c].uri,
            &format!("sip:{ext}@192.0.2.{c}"),
        );
        b.exts[i].contacts[c].expires_ms = now_ms() + 60_000;
    }
    b.exts[i].contact_count = contacts;
    let m = &mut b.bitmaps;
    set_bit(&mut m.registered, i, bits.contains('R'));
    set_bit(&mut m.ringing, i, bits.contains('r'));
    set_bit(&mut m.busy, i, bits.contains('B'));
    set_bit(&mut m.dnd, i, bits.contains('D'));
    set_bit(&mut m.forwarded, i, bits.contains('F'));
}

/// The grid's cells, `(number, letter)`, row by row; and the lines after it.
fn cells(s: &str) -> (Vec<Vec<(u16, String)>>, Vec<String>) {
    let lines: Vec<&str> = s.lines().collect();
    let blank = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or_else(|| panic!("no blank line after the grid: {s}"));
    let rows = lines[..blank]
        .iter()
        .map(|l| {
            l.split("  ")
                .map(|c| {
                    let (n, letter) = c
                        .split_once(' ')
                        .unwrap_or_else(|| panic!("bad cell {c:?} in {l:?}"));
                    (n.parse().expect("number"), letter.to_string())
                })
                .collect()
        })
        .collect();
    let rest = lines[blank + 1..].iter().map(|l| l.to_string()).collect();
    (rows, rest)
}

#[test]
fn exts_grid_two_digit_plan() {
    let f = Fake::new(Plan::TwoDigit);
    set_ext(&f, 10, "", 0);
    set_ext(&f, 11, "R", 1);
    set_ext(&f, 12, "Rr", 1);
    set_ext(&f, 13, "RB", 2);
    set_ext(&f, 14, "RD", 1);
    set_ext(&f, 15, "RF", 1);
    set_ext(&f, 16, "RBDF", 1); // busy beats DND and forwarded
    set_ext(&f, 17, "RrB", 1); // ringing beats busy
    set_ext(&f, 18, "D", 0); // DND while offline
    set_ext(&f, 89, "", 0);
    let o = f.run(&["exts"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    assert!(!s.contains('\u{1b}'), "no colour when piped: {s:?}");
    let (rows, rest) = cells(&s);
    assert_eq!(rows.len(), 8, "{s}");
    assert!(rows.iter().all(|r| r.len() == 10), "{s}");
    let numbers: Vec<u16> = rows.iter().flatten().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (10..=89).collect::<Vec<u16>>());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0].0, 10 * (i as u16 + 1), "rows are decades: {s}");
    }
    let letters: Vec<&str> = rows[0].iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(letters, ["-", "R", "r", "B", "D", "F", "B", "r", "D", "."]);
    assert_eq!(rows[7][9], (89, "-".to_string()));
    assert_eq!(rows[3][5], (45, ".".to_string()));
    assert_eq!(
        rest[0],
        "configured 10/80, registered 7, ringing 2, busy 3, dnd 3, forwarded 2"
    );
    assert_eq!(
        rest[1],
        "r ringing  B busy  D dnd  F forwarded  R registered  - offline  . not configured"
    );
    assert_eq!(rest.len(), 2);

    let o = f.run(&["exts", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 80);
    assert_eq!(
        arr[3],
        serde_json::json!({"ext": 13, "name": "Room 13", "state": "B", "configured": true,
            "registered": true, "ringing": false, "busy": true, "dnd": false,
            "forwarded": false, "contacts": 2,
            "forward_always": null, "forward_busy": null, "forward_noanswer": null,
            "dnd_until_ms": null, "forward_until_ms": null})
    );
    assert_eq!(
        arr[0],
        serde_json::json!({"ext": 10, "name": "Room 10", "state": "-", "configured": true,
            "registered": false, "ringing": false, "busy": false, "dnd": false,
            "forwarded": false, "contacts": 0,
            "forward_always": null, "forward_busy": null, "forward_noanswer": null,
            "dnd_until_ms": null, "forward_until_ms": null})
    );
    assert_eq!(arr[35]["ext"], 45);
    assert_eq!(arr[35]["configured"], false);
    assert_eq!(arr[35]["state"], ".");
    assert_eq!(arr[35]["name"], "");
    let states: String = arr
        .iter()
        .take(10)
        .map(|e| e["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, "-RrBDFBrD.");
    for (k, e) in arr.iter().enumerate() {
        assert_eq!(e["ext"].as_u64(), Some(10 + k as u64));
    }
}

#[test]
fn exts_grid_three_digit_plan() {
    let f = Fake::new(Plan::ThreeDigit);
    set_ext(&f, 100, "R", 1);
    set_ext(&f, 215, "Rr", 1);
    set_ext(&f, 350, "RD", 1);
    set_ext(&f, 351, "F", 0);
    set_ext(&f, 352, "", 0);
    set_ext(&f, 699, "RB", 4);
    let o = f.run(&["exts"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    let (rows, rest) = cells(&s);
    assert_eq!(rows.len(), 60, "{s}");
    assert!(rows.iter().all(|r| r.len() == 10));
    let all: Vec<(u16, String)> = rows.into_iter().flatten().collect();
    assert_eq!(all.len(), 600);
    assert_eq!(
        all.iter().map(|(n, _)| *n).collect::<Vec<u16>>(),
        (100..=699).collect::<Vec<u16>>()
    );
    let letter = |n: u16| all[usize::from(n - 100)].1.as_str();
    assert_eq!(letter(100), "R");
    assert_eq!(letter(215), "r");
    assert_eq!(letter(350), "D");
    assert_eq!(letter(351), "F");
    assert_eq!(letter(352), "-");
    assert_eq!(letter(699), "B");
    assert_eq!(letter(101), ".");
    let others = all.iter().filter(|(_, l)| l == ".").count();
    assert_eq!(others, 594);
    assert!(
        rest[0] == "configured 6/600, registered 4, ringing 1, busy 1, dnd 1, forwarded 1",
        "{}",
        rest[0]
    );
    // Every line fits an 80-column terminal.
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");

    let o = f.run(&["--json", "exts"]);
    let v = json(&o);
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 600);
    assert_eq!(arr[599]["ext"], 699);
    assert_eq!(arr[599]["busy"], true);
    assert_eq!(arr[599]["contacts"], 4);
    assert_eq!(arr[115]["ext"], 215);
    assert_eq!(arr[115]["ringing"], true);
    assert_eq!(arr[251]["forwarded"], true);
    assert_eq!(arr[251]["registered"], false);
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    if !have_script() {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let f = Fake::new(Plan::TwoDigit);
    set_ext(&f, 11, "R", 1);
    set_ext(&f, 12, "Rr", 1);
    set_ext(&f, 13, "RB", 1);
    populate_calls(&f);

    let s = pbxctl_tty(f.path(), "exts", false);
    assert!(s.contains("\u{1b}[32m11 R\u{1b}[0m"), "{s:?}");
    assert!(s.contains("\u{1b}[33m12 r\u{1b}[0m"), "{s:?}");
    assert!(s.contains("\u{1b}[31m13 B\u{1b}[0m"), "{s:?}");
    assert!(s.contains("\u{1b}[2m14 .\u{1b}[0m"), "{s:?}");
    let s = pbxctl_tty(f.path(), "exts", true);
    assert!(s.contains("11 R  12 r  13 B  14 ."), "{s:?}");
    assert!(!s.contains('\u{1b}'), "{s:?}");

    // Calls: boxed, ringing rows yellow, ended ones dimmed, the columns intact.
    let s = pbxctl_tty(f.path(), "calls", false);
    let dimmed: Vec<&str> = s.lines().filter(|l| l.starts_with("\u{1b}[2m")).collect();
    assert_eq!(dimmed.len(), 2, "{s}");
    assert!(dimmed.iter().all(|l| l.contains("ended")), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("\u{1b}[33m") && l.contains("ringing")),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with('│') && l.contains("answered")),
        "{s}"
    );
    let widths: Vec<usize> = s
        .lines()
        .filter(|l| l.contains('│'))
        .map(|l| strip_ansi(l).chars().count())
        .collect();
    assert!(
        widths.len() == 5 && widths.iter().all(|w| *w == widths[0]),
        "{s}"
    );
    let s = pbxctl_tty(f.path(), "calls", true);
    assert!(s.contains('│') && !s.contains('\u{1b}'), "{s:?}");
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

#[test]
fn hangup_sends_its_line_and_reports_the_result() {
    let f = Fake::answering(answer_ok("call 1007 ended (21 -> 35)"));
    let o = f.run(&["hangup", "1007"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "call 1007 ended (21 -> 35)\n");
    assert!(o.stderr.is_empty());
    let o = f.run(&["--json", "hangup", "21"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = f.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], format!("#{} hangup 1007", id_of(&lines[0])));
    assert_eq!(lines[1], format!("#{} hangup 21", id_of(&lines[1])));
    let v = json(&o);
    assert_eq!(v["id"].as_u64(), Some(id_of(&lines[1])));
    assert_eq!(v["ok"], true);
    assert_eq!(v["command"], "hangup 21");
}

#[test]
fn hangup_rejected_is_status_1() {
    let f = Fake::answering(answer_with(ResultCode::NotFound, "no call matches 21"));
    let o = f.run(&["hangup", "21"]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    assert_eq!(stderr(&o), "pbxctl: not-found: no call matches 21\n");
    let o = f.run(&["hangup", "--json", "21"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["code"], "not-found");
    assert_eq!(v["ok"], false);
    assert_eq!(v["text"], "no call matches 21");
}

#[test]
fn hangup_timeout_is_status_4_and_bad_targets_are_status_2() {
    let f = Fake::answering(answer_never());
    let t = Instant::now();
    let o = f.run(&["--timeout", "0.3", "hangup", "1007"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("pbxctl: timed out"),
        "{}",
        stderr(&o)
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(f.lines().len(), 1);
    let o = f.run(&["hangup", "-1"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    for bad in ["abc", "7x", "12345678901", ""] {
        let o = f.run(&["hangup", bad]);
        assert_eq!(code(&o), 2, "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("pbxctl: "), "{}", stderr(&o));
    }
    assert_eq!(f.lines().len(), 1, "nothing more was sent");
}
