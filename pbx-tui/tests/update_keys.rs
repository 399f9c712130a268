//! `update` without a terminal: keys → actions → the exact lines for the control
//! FIFO, confirmations, the command line with completion, results and time-outs,
//! read-only mode, navigation, and what the daemon link reports.

mod common;

use common::*;
use coventry_shared::dialplan::Plan;
use coventry_shared::event::{CallPhase, Event, EventRecord, ResultCode};
use coventry_shared::stateblock::call_state;
use crossterm::event::KeyCode;
use pbx_tui::model::{Link, Mode, Model, Tone};
use pbx_tui::msg::{DaemonMsg, Effect, Ending, Msg};

fn office_model() -> Model {
    let mut m = model(office().dnd(22, 0).site());
    press(&mut m, "21");
    assert_eq!(m.selected, 21);
    m
}

fn status(m: &Model) -> (Tone, String) {
    let s = m.status.clone().expect("a status line");
    (s.tone, s.text)
}

fn result(m: &mut Model, id: u64, code: ResultCode, text: &str) {
    m.update(Msg::Events {
        events: vec![EventRecord {
            seq: 99,
            time_ms: NOW,
            event: Event::CommandResult {
                id: Some(id),
                code,
                text: text.into(),
            },
        }],
        lost: 0,
    });
}

#[test]
fn forward_by_keys() {
    let mut m = office_model();
    assert!(press(&mut m, "f").is_empty());
    assert!(matches!(m.mode, Mode::Prompt(_)));
    let fx = press(&mut m, "35\n");
    assert_eq!(lines(&fx), vec!["#1 forward 21 35 always\n"]);
    assert_eq!(
        fx,
        vec![Effect::Send {
            id: 1,
            line: "#1 forward 21 35 always\n".into()
        }]
    );
    assert_eq!(m.mode, Mode::Normal);
    assert!(m.pending.contains_key(&1));
    assert_eq!(status(&m).0, Tone::Waiting);

    assert_eq!(
        lines(&press(&mut m, "f35 busy\n")),
        vec!["#2 forward 21 35 busy\n"]
    );
    assert_eq!(
        lines(&press(&mut m, "foff noanswer\n")),
        vec!["#3 forward 21 off noanswer\n"]
    );
    assert_eq!(
        lines(&press(&mut m, "f*72#\n")),
        vec!["#4 forward 21 *72# always\n"]
    );
}

#[test]
fn a_bad_answer_keeps_the_prompt() {
    let mut m = office_model();
    assert!(press(&mut m, "fsip:35\n").is_empty());
    match &m.mode {
        Mode::Prompt(p) => assert!(p.error.as_deref().is_some_and(|e| e.contains("TARGET"))),
        other => panic!("{other:?}"),
    }
    // Fixing the answer sends it.
    for _ in 0.."sip:35".len() {
        m.update(key(KeyCode::Backspace));
    }
    assert_eq!(
        lines(&press(&mut m, "36\n")),
        vec!["#1 forward 21 36 always\n"]
    );
}

#[test]
fn empty_answers_and_escape_cancel() {
    let mut m = office_model();
    assert!(press(&mut m, "f\n").is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(press(&mut m, "m hi\x1b").is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(press(&mut m, "c35").is_empty());
    m.update(ctrl('c'));
    assert_eq!(m.mode, Mode::Normal, "Ctrl-C cancels a prompt");
    assert!(!m.quit);
    assert!(m.pending.is_empty());
}

#[test]
fn dnd_toggles() {
    let mut m = office_model();
    assert_eq!(lines(&press(&mut m, "d")), vec!["#1 dnd 21 on\n"]);
    press(&mut m, "22");
    assert_eq!(
        lines(&press(&mut m, "d")),
        vec!["#2 dnd 22 off\n"],
        "22 is on DND"
    );
}

#[test]
fn message_and_dial() {
    let mut m = office_model();
    assert_eq!(
        lines(&press(&mut m, "mlunch is ready ✓\n")),
        vec!["#1 message 21 lunch is ready ✓\n"]
    );
    assert_eq!(lines(&press(&mut m, "c35\n")), vec!["#2 dial 21 35\n"]);
    // More than 160 characters is refused before anything is sent.
    let long = format!("m{}\n", "x".repeat(161));
    assert!(press(&mut m, &long).is_empty());
    assert!(matches!(m.mode, Mode::Prompt(_)));
}

#[test]
fn destructive_actions_ask_first() {
    let mut m = office_model();
    // Message to all: prompt, then confirm.
    assert!(press(&mut m, "Mshutdown at 5\n").is_empty());
    match &m.mode {
        Mode::Confirm(c) => assert!(c.question.contains("ALL"), "{}", c.question),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lines(&press(&mut m, "y")),
        vec!["#1 message all shutdown at 5\n"]
    );
    // Hang up: confirm; anything but y cancels.
    assert!(press(&mut m, "x").is_empty());
    match &m.mode {
        Mode::Confirm(c) => assert_eq!(c.question, "Hang up every call of 21 (0 live)?"),
        other => panic!("{other:?}"),
    }
    assert!(press(&mut m, "n").is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(status(&m).1.starts_with("cancelled"));
    assert_eq!(lines(&press(&mut m, "xY")), vec!["#2 hangup 21\n"]);
    // Release: confirm names the contacts.
    press(&mut m, "r");
    match &m.mode {
        Mode::Confirm(c) => {
            assert_eq!(c.question, "Release every registration of 21 (2 contacts)?")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(lines(&press(&mut m, "y")), vec!["#3 release 21\n"]);
}

#[test]
fn command_line_takes_pbxctl_commands() {
    let mut m = office_model();
    assert_eq!(
        lines(&press(&mut m, ":forward 21 35 busy\n")),
        vec!["#1 forward 21 35 busy\n"]
    );
    assert_eq!(
        lines(&press(&mut m, ":dnd 23 on\n")),
        vec!["#2 dnd 23 on\n"]
    );
    assert_eq!(
        lines(&press(&mut m, ":msg 23 hi there\n")),
        vec!["#3 message 23 hi there\n"]
    );
    assert_eq!(lines(&press(&mut m, ":reload\n")), vec!["#4 reload\n"]);
    assert_eq!(
        lines(&press(&mut m, ":dial 21 0123\n")),
        vec!["#5 dial 21 0123\n"]
    );
    // Destructive ones ask, as with the keys.
    assert!(press(&mut m, ":hangup 1001\n").is_empty());
    assert_eq!(lines(&press(&mut m, "y")), vec!["#6 hangup 1001\n"]);
    assert!(press(&mut m, ":release 23\n").is_empty());
    assert_eq!(lines(&press(&mut m, "y")), vec!["#7 release 23\n"]);
    assert!(press(&mut m, ":message all bye\n").is_empty());
    assert_eq!(lines(&press(&mut m, "y")), vec!["#8 message all bye\n"]);
}

#[test]
fn command_line_errors_stay_on_the_line() {
    let mut m = office_model();
    assert!(press(&mut m, ":frobnicate 21\n").is_empty());
    match &m.mode {
        Mode::Command(c) => {
            assert_eq!(c.error.as_deref(), Some("unknown command `frobnicate`"));
            assert_eq!(c.input.text(), "frobnicate 21");
        }
        other => panic!("{other:?}"),
    }
    m.update(key(KeyCode::Esc));
    assert!(press(&mut m, ":forward 21\n").is_empty());
    match &m.mode {
        Mode::Command(c) => assert!(c
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("usage: forward"))),
        other => panic!("{other:?}"),
    }
    m.update(key(KeyCode::Esc));
    assert!(press(&mut m, ":regs\n").is_empty());
    assert_eq!(status(&m).0, Tone::Info);
    assert_eq!(press(&mut m, ":help\n"), vec![]);
    assert_eq!(m.mode, Mode::Help { scroll: 0 });
    m.update(key(KeyCode::Esc));
    assert_eq!(press(&mut m, ":quit\n"), vec![Effect::Quit]);
    assert!(m.quit);
}

#[test]
fn completion_of_verbs_and_numbers() {
    let mut m = office_model();
    press(&mut m, ":fo\t");
    let text = |m: &Model| match &m.mode {
        Mode::Command(c) => (c.input.text().to_string(), c.candidates.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(text(&m).0, "forward ");
    press(&mut m, "1\t");
    let (t, c) = text(&m);
    assert_eq!(t, "forward 1");
    assert_eq!(c.len(), 10, "10-19 are configured: {c:?}");
    press(&mut m, "9\t");
    assert_eq!(text(&m).0, "forward 19 ");
    press(&mut m, "o\t");
    assert_eq!(text(&m).0, "forward 19 off ");
    press(&mut m, "b\t");
    assert_eq!(text(&m).0, "forward 19 off busy ");
    assert_eq!(
        lines(&press(&mut m, "\n")),
        vec!["#1 forward 19 off busy\n"]
    );
}

#[test]
fn results_reach_the_status_line() {
    let mut m = office_model();
    press(&mut m, "f35\n");
    result(
        &mut m,
        1,
        ResultCode::Failed,
        "not available in this version",
    );
    assert_eq!(
        status(&m),
        (
            Tone::Bad,
            "forward 21 35 always: failed \u{2014} not available in this version".into()
        )
    );
    assert!(m.pending.is_empty());
    press(&mut m, "r");
    press(&mut m, "y");
    result(&mut m, 2, ResultCode::Ok, "released 21 (2 contacts)");
    assert_eq!(
        status(&m),
        (
            Tone::Good,
            "release 21: ok \u{2014} released 21 (2 contacts)".into()
        )
    );
    // Somebody else's result does not touch the status line, but is logged.
    result(&mut m, 77, ResultCode::Ok, "theirs");
    assert!(status(&m).1.starts_with("release 21"));
    assert!(m.log.lines().any(|l| l.text.contains("theirs")));
}

#[test]
fn results_that_never_come_time_out() {
    let mut m = office_model();
    press(&mut m, "d");
    m.update(Msg::Tick {
        now_ms: NOW + 4_000,
        utc_offset_s: 0,
    });
    assert_eq!(m.pending.len(), 1);
    m.update(Msg::Tick {
        now_ms: NOW + 5_000,
        utc_offset_s: 0,
    });
    assert!(m.pending.is_empty());
    let (tone, text) = status(&m);
    assert_eq!(tone, Tone::Bad);
    assert!(text.contains("no result from the daemon"), "{text}");
}

#[test]
fn fifo_failures_reach_the_status_line() {
    let mut m = office_model();
    press(&mut m, "d");
    m.update(Msg::SendFailed {
        id: 1,
        error: "daemon not running: nobody reads the control FIFO".into(),
    });
    assert_eq!(
        status(&m),
        (
            Tone::Bad,
            "dnd 21 on: daemon not running: nobody reads the control FIFO".into()
        )
    );
    assert!(m.pending.is_empty());
}

#[test]
fn readonly_refuses_every_action() {
    let mut m = office_model();
    m.readonly = true;
    for k in ["f", "d", "m", "M", "c", "x", "r", ":"] {
        assert!(press(&mut m, k).is_empty(), "{k}");
        assert_eq!(m.mode, Mode::Normal, "{k}");
        assert!(status(&m).1.contains("read-only"));
    }
    // Watching still works.
    press(&mut m, "35");
    assert_eq!(m.selected, 35);
    press(&mut m, "/reg\n");
    assert_eq!(m.log.filter(), "reg");
    assert_eq!(press(&mut m, "q"), vec![Effect::Quit]);
}

#[test]
fn moving_around() {
    let mut m = model(office().site());
    assert_eq!(m.selected, 10, "the first configured extension");
    press(&mut m, "l");
    m.update(key(KeyCode::Right));
    assert_eq!(m.selected, 12);
    press(&mut m, "j");
    m.update(key(KeyCode::Down));
    assert_eq!(m.selected, 32);
    press(&mut m, "k");
    m.update(key(KeyCode::Left));
    assert_eq!(m.selected, 21);
    press(&mut m, "h]");
    assert_eq!(m.selected, 89, "clamped to the plan");
    press(&mut m, "[");
    assert_eq!(m.selected, 10);
    press(&mut m, "kh");
    assert_eq!(m.selected, 10);
    press(&mut m, "57");
    assert_eq!(m.selected, 57);
    press(&mut m, "9");
    assert_eq!(m.selected, 57);
    assert!(status(&m).1.contains("no extension starts with 9"));
    press(&mut m, "0");
    assert_eq!(m.mode, Mode::Normal);
    press(&mut m, "3");
    assert_eq!(m.mode, Mode::Jump("3".into()));
    m.update(key(KeyCode::Esc));
    assert_eq!((m.mode.clone(), m.selected), (Mode::Normal, 57));
}

#[test]
fn jumping_in_the_three_digit_plan() {
    let site = Block::new(Plan::ThreeDigit).ext(215, "x").site();
    let mut m = model(site);
    assert_eq!(m.selected, 215);
    press(&mut m, "6");
    press(&mut m, "9");
    press(&mut m, "9");
    assert_eq!(m.selected, 699);
    press(&mut m, "7");
    assert!(status(&m).1.contains("no extension starts with 7"));
    press(&mut m, "[[");
    assert_eq!(m.selected, 499);
    press(&mut m, "j");
    assert_eq!(m.selected, 509);
}

#[test]
fn quitting() {
    let mut m = office_model();
    assert_eq!(press(&mut m, "q"), vec![Effect::Quit]);
    let mut m = office_model();
    assert_eq!(m.update(ctrl('c')), vec![Effect::Quit]);
    let mut m = office_model();
    assert_eq!(m.update(ctrl('l')), vec![Effect::Repaint]);
    assert!(!m.quit);
}

/// The terminal going away or an ending signal ends the console in every mode: no
/// prompt, confirmation, help screen or command awaiting its result holds it.
#[test]
fn the_terminal_gone_or_a_signal_ends_every_mode() {
    type InMode = fn(&Mode) -> bool;
    let modes: [(&str, InMode); 9] = [
        ("", |m| *m == Mode::Normal),
        ("?", |m| matches!(m, Mode::Help { .. })),
        (":", |m| matches!(m, Mode::Command(_))),
        (":hangup 2", |m| matches!(m, Mode::Command(_))),
        ("f", |m| matches!(m, Mode::Prompt(_))),
        ("/reg", |m| matches!(m, Mode::Filter { .. })),
        ("2", |m| matches!(m, Mode::Jump(_))),
        ("r", |m| matches!(m, Mode::Confirm(_))),
        // A command sent, its result still awaited.
        ("d", |m| *m == Mode::Normal),
    ];
    let endings = [
        Ending::TerminalGone("the terminal hung up (end of input)".into()),
        Ending::Signal(1),
        Ending::Signal(15),
    ];
    for (keys, in_mode) in modes {
        for ending in &endings {
            let mut m = office_model();
            press(&mut m, keys);
            assert!(in_mode(&m.mode), "{keys:?} gives {:?}", m.mode);
            assert_eq!(m.update(Msg::End(ending.clone())), vec![Effect::Quit]);
            assert!(m.quit, "{keys:?} {ending:?}");
            assert_eq!(m.ending.as_ref(), Some(ending));
            // A second reason changes nothing: the first one is the exit status.
            m.update(Msg::End(Ending::Signal(2)));
            assert_eq!(m.ending.as_ref(), Some(ending));
        }
    }
    // Also with no daemon at all.
    let mut m = model_with(None, false, Vec::new());
    m.update(Msg::Daemon(DaemonMsg::Down {
        reason: "no state block".into(),
    }));
    assert_eq!(m.update(Msg::End(Ending::Signal(15))), vec![Effect::Quit]);
    assert!(m.quit);
}

#[test]
fn exit_statuses() {
    assert_eq!(Ending::TerminalGone(String::new()).exit_status(), 1);
    assert_eq!(Ending::Signal(1).exit_status(), 129);
    assert_eq!(Ending::Signal(2).exit_status(), 130);
    assert_eq!(Ending::Signal(3).exit_status(), 131);
    assert_eq!(Ending::Signal(15).exit_status(), 143);
}

#[test]
fn help_opens_scrolls_and_closes() {
    let mut m = office_model();
    press(&mut m, "?");
    assert_eq!(m.mode, Mode::Help { scroll: 0 });
    press(&mut m, "jj");
    assert_eq!(m.mode, Mode::Help { scroll: 2 });
    press(&mut m, "q");
    assert_eq!(m.mode, Mode::Normal, "q closes the help, it does not quit");
    assert!(!m.quit);
}

#[test]
fn actions_need_a_snapshot() {
    let mut m = model_with(None, false, Vec::new());
    assert!(press(&mut m, "f").is_empty());
    assert!(status(&m).1.contains("no state block yet"));
    press(&mut m, "21");
    assert_eq!(m.selected, 0);
}

#[test]
fn the_daemon_restarting_and_going_down() {
    let mut m = office_model();
    press(&mut m, "d");
    m.update(Msg::Daemon(DaemonMsg::Up {
        pid: 5000,
        again: true,
    }));
    assert_eq!(m.link, Link::Up { pid: 5000 });
    assert!(m.pending.is_empty(), "a restart forgets pending commands");
    assert!(m
        .log
        .lines()
        .any(|l| l.text.contains("restarted (pid 5000)")));
    assert!(status(&m).1.contains("restarted"));
    m.update(Msg::Daemon(DaemonMsg::Down {
        reason: "no state block".into(),
    }));
    assert!(matches!(m.link, Link::Down { .. }));
    assert!(m.site.is_some(), "the last known state stays");
    let before = m.log.lines().count();
    m.update(Msg::Daemon(DaemonMsg::Down {
        reason: "no state block".into(),
    }));
    assert_eq!(m.log.lines().count(), before, "said once");
    m.update(Msg::Daemon(DaemonMsg::Stale {
        heartbeat_ms: NOW - 4000,
    }));
    assert_eq!(
        m.link,
        Link::Stale {
            heartbeat_ms: NOW - 4000
        }
    );
}

#[test]
fn ring_updates_are_not_logged_phase_changes_are() {
    let mut m = office_model();
    let before = m.log.lines().count();
    let ev = |phase, rings| EventRecord {
        seq: 0,
        time_ms: NOW,
        event: Event::CallState {
            call: 1001,
            from: "21".into(),
            to: "22".into(),
            phase,
            rings,
        },
    };
    m.update(Msg::Events {
        events: vec![
            ev(CallPhase::Dialing, 0),
            ev(CallPhase::Ringing, 1),
            ev(CallPhase::Ringing, 2),
            ev(CallPhase::Ringing, 3),
            ev(CallPhase::Answered, 3),
        ],
        lost: 2,
    });
    let new: Vec<String> = m.log.lines().skip(before).map(|l| l.text.clone()).collect();
    assert_eq!(new.len(), 4, "{new:?}");
    assert!(new[0].contains("2 events were overwritten"));
    assert!(new[3].ends_with("answered"));
}

#[test]
fn filter_applies_as_typed_and_escape_restores() {
    let mut m = model_with(
        Some(office().site()),
        false,
        vec![
            Event::Notice {
                text: "coventryd started".into(),
            },
            Event::Message {
                id: None,
                from: "21".into(),
                to: "22".into(),
                status: 200,
                text: "Lunch?".into(),
            },
        ],
    );
    press(&mut m, "/lun");
    assert_eq!(m.log.filter(), "lun");
    assert_eq!(m.log.matching(), 1);
    press(&mut m, "\x1b");
    assert_eq!(m.log.filter(), "");
    press(&mut m, "/msg\n");
    assert_eq!(m.log.filter(), "msg");
    assert_eq!(m.mode, Mode::Normal);
    press(&mut m, "\x1b");
    assert_eq!(m.log.filter(), "", "Esc in normal mode clears the filter");
}

#[test]
fn calls_in_the_site_feed_the_questions() {
    let site = office()
        .call(1001, 21, 22, call_state::RINGING, 3, (12, 0))
        .call(1002, 23, 21, call_state::ANSWERED, 0, (100, 90))
        .site();
    let mut m = model(site);
    press(&mut m, "21x");
    match &m.mode {
        Mode::Confirm(c) => assert_eq!(c.question, "Hang up every call of 21 (2 live)?"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ids_count_up_from_the_base() {
    let mut m = office_model();
    m.next_id = 500;
    let fx = press(&mut m, "dd");
    assert_eq!(lines(&fx), vec!["#500 dnd 21 on\n", "#501 dnd 21 on\n"]);
}

#[test]
fn a_message_to_all_reports_its_receipts_at_the_timeout() {
    let mut m = office_model();
    press(&mut m, "Mshutdown at 5\n");
    assert_eq!(
        lines(&press(&mut m, "y")),
        vec!["#1 message all shutdown at 5\n"]
    );
    let ev = |event| EventRecord {
        seq: 0,
        time_ms: NOW,
        event,
    };
    m.update(Msg::Events {
        events: vec![
            ev(Event::Delivering {
                id: Some(1),
                to: "all".into(),
                targets: vec![21, 22],
                offline: vec![],
            }),
            ev(Event::Message {
                id: Some(1),
                from: "operator".into(),
                to: "21".into(),
                status: 200,
                text: "shutdown at 5".into(),
            }),
        ],
        lost: 0,
    });
    // 22 never answers: at the timeout the console says what it knows.
    m.update(Msg::Tick {
        now_ms: NOW + 5_000,
        utc_offset_s: 0,
    });
    let (tone, text) = status(&m);
    assert_eq!(tone, Tone::Waiting);
    assert!(
        text.contains("all: delivered to 1 of 2 registered now, 1 not answered yet"),
        "{text}"
    );
    assert!(m.pending.is_empty());
}

#[test]
fn t_opens_and_closes_the_live_sip_trace_of_the_selected_extension() {
    let mut m = office_model();
    let effects = press(&mut m, "T");
    assert_eq!(effects, vec![Effect::TraceStart { ext: 21 }]);
    let empty = screen(&m, 80, 24);
    assert!(empty.contains("SIP trace of 21 (T closes)"), "{empty}");
    assert!(empty.contains("waiting for its SIP messages"), "{empty}");
    m.update(Msg::Trace {
        lines: vec![
            "12:00:01 <- 127.0.0.1:5062 udp REGISTER a84b4c76e66710 1 REGISTER".into(),
            "12:00:01 -> 127.0.0.1:5062 udp 401 Unauthorized a84b4c76e66710 1 REGISTER".into(),
        ],
        lost: 0,
    });
    let shown = screen(&m, 80, 24);
    assert!(shown.contains("401 Unauthorized"), "{shown}");
    assert!(
        !shown.contains(" Log "),
        "the trace takes the log's place: {shown}"
    );
    m.update(Msg::TraceEnded("the switch ended the trace".into()));
    assert!(screen(&m, 80, 24).contains("ended: the switch ended the trace"));
    assert_eq!(press(&mut m, "T"), vec![Effect::TraceStop]);
    assert!(m.trace.is_none());
    assert!(screen(&m, 80, 24).contains(" Log "));
}
