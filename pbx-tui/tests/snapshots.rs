//! Snapshot tests of `view` on ratatui's `TestBackend`, at 80×24 (the smallest
//! terminal the console is made for) and 120×40. The clock, the time zone (UTC) and
//! the site are fixed, so the screens are the same on every run. Colours are checked
//! separately (the snapshots hold the text).

mod common;

use common::*;
use coventry_shared::dialplan::Plan;
use coventry_shared::event::{CallOutcome, CallPhase, Event, RouteState, Unregistration};
use coventry_shared::stateblock::call_state;
use pbx_tui::model::Model;
use pbx_tui::msg::{DaemonMsg, Msg};

fn office_events() -> Vec<Event> {
    vec![
        Event::Notice {
            text: "coventryd 0.1.0 started on 192.168.1.5:5060".into(),
        },
        Event::Registered {
            ext: 21,
            contact: "sip:21@192.168.1.111:5060".into(),
            user_agent: "Linphone/5.2.5 (Android)".into(),
        },
        Event::Message {
            id: None,
            from: "21".into(),
            to: "11".into(),
            status: 200,
            text: "Lunch at 1?\x1b[2J".into(),
        },
        Event::Unregistered {
            ext: 14,
            contact: "sip:14@192.168.1.104:5060".into(),
            why: Unregistration::Expired,
        },
        Event::AuthFailed {
            user: "99".into(),
            source: "203.0.113.9:5060".into(),
        },
    ]
}

fn both_sizes(name: &str, m: &Model) {
    insta::assert_snapshot!(format!("{name}_80x24"), screen(m, 80, 24));
    insta::assert_snapshot!(format!("{name}_120x40"), screen(m, 120, 40));
}

#[test]
fn idle_site() {
    let mut m = model_with(Some(office().site()), false, office_events());
    press(&mut m, "21");
    both_sizes("idle", &m);
}

#[test]
fn ringing_and_answered_calls() {
    let site = office()
        .call(1001, 11, 21, call_state::RINGING, 4, (17, 0))
        .call(1002, 12, 20, call_state::ANSWERED, 0, (200, 185))
        .call(1003, 13, 35, call_state::DIALING, 0, (1, 0))
        .call(1000, 15, 16, call_state::ENDED, 0, (9, 0))
        .site();
    let events = vec![
        Event::CallState {
            call: 1002,
            from: "12".into(),
            to: "20".into(),
            phase: CallPhase::Answered,
            rings: 2,
        },
        Event::CallRecord {
            call: 1000,
            from: "15".into(),
            to: "16".into(),
            start_ms: NOW - 9000,
            answer_ms: 0,
            end_ms: NOW - 1000,
            outcome: CallOutcome::Busy,
            status: 486,
        },
        Event::CallState {
            call: 1001,
            from: "11".into(),
            to: "21".into(),
            phase: CallPhase::Ringing,
            rings: 1,
        },
    ];
    let mut m = model_with(Some(site), false, events);
    press(&mut m, "21");
    both_sizes("calls", &m);
}

#[test]
fn dnd_and_forwarded_extensions() {
    let site = office()
        .dnd(12, NOW + 2 * 3600 * 1000)
        .dnd(16, 0)
        .forward(13, "35", "", "")
        .forward(18, "", "10", "19")
        .site();
    let mut m = model_with(Some(site), false, Vec::new());
    press(&mut m, "18");
    both_sizes("dnd_forward", &m);
}

#[test]
fn upstream_state_in_the_header() {
    let up = office()
        .upstream("default+sms", "127.0.0.1:5070", RouteState::Connected)
        .upstream("emergency", "10.0.0.9:5060", RouteState::Connected)
        .site();
    let m = model_with(Some(up), false, Vec::new());
    let top = screen(&m, 120, 40);
    assert!(
        top.lines()
            .next()
            .is_some_and(|l| l.contains("upstream ok")),
        "{top}"
    );
    let down = office()
        .upstream("default+sms", "127.0.0.1:5070", RouteState::Connected)
        .upstream("emergency", "10.0.0.9:5060", RouteState::Reconnecting)
        .site();
    let lost = Event::Upstream {
        route: "emergency".into(),
        addr: "10.0.0.9:5060".into(),
        state: RouteState::Reconnecting,
        detail: "connection refused".into(),
    };
    let m = model_with(Some(down), false, vec![lost]);
    both_sizes("upstream_down", &m);
    let none = model_with(Some(office().site()), false, Vec::new());
    assert!(!screen(&none, 120, 40).contains("upstream"));
}

#[test]
fn a_site_of_a_building_shows_the_building_link() {
    let first_line = |state: RouteState| {
        let site = office()
            .upstream("building+emergency+sms", "10.0.0.1:5060", state)
            .site();
        let m = model_with(Some(site), false, Vec::new());
        screen(&m, 80, 24).lines().next().unwrap_or("").to_string()
    };
    let up = first_line(RouteState::Connected);
    assert!(up.contains("building ok"), "{up}");
    let down = first_line(RouteState::Reconnecting);
    assert!(down.contains("building retrying"), "{down}");
    assert!(!down.contains("upstream"), "{down}");
}

#[test]
fn three_digit_plan() {
    let mut b = Block::new(Plan::ThreeDigit);
    for n in (100..700).step_by(7) {
        b = b.ext(n, &format!("User {n}"));
    }
    for n in (100..700).step_by(14) {
        b = b.reg(n, "Grandstream GXP2170 1.0.11.3", 1800);
    }
    let site = b
        .dnd(254, 0)
        .forward(261, "100", "", "")
        .call(1001, 100, 268, call_state::RINGING, 2, (8, 0))
        .site();
    let mut m = model_with(Some(site), false, Vec::new());
    press(&mut m, "268");
    both_sizes("three_digit", &m);
}

#[test]
fn daemon_down_banner() {
    let mut m = model_with(Some(office().site()), false, office_events());
    press(&mut m, "21");
    m.update(Msg::Tick {
        now_ms: NOW + 2000,
        utc_offset_s: 0,
    });
    m.update(Msg::Daemon(DaemonMsg::Down {
        reason: "no state block at /run/coventry/state (is coventryd running?)".into(),
    }));
    m.update(Msg::Tick {
        now_ms: NOW + 9000,
        utc_offset_s: 0,
    });
    both_sizes("daemon_down", &m);
}

#[test]
fn daemon_stale_banner() {
    let mut m = model_with(Some(office().site()), false, Vec::new());
    m.update(Msg::Daemon(DaemonMsg::Stale {
        heartbeat_ms: NOW - 4000,
    }));
    insta::assert_snapshot!("stale_80x24", screen(&m, 80, 24));
}

#[test]
fn never_connected() {
    let mut m = model_with(None, false, Vec::new());
    m.update(Msg::Daemon(DaemonMsg::Down {
        reason: "no state block at /run/coventry/state (is coventryd running?)".into(),
    }));
    insta::assert_snapshot!("never_connected_80x24", screen(&m, 80, 24));
}

#[test]
fn help_screen() {
    let mut m = model(office().site());
    press(&mut m, "?");
    both_sizes("help", &m);
}

#[test]
fn prompts_and_command_line() {
    let mut m = model(office().site());
    press(&mut m, "21f35");
    insta::assert_snapshot!("prompt_forward_80x24", screen(&m, 80, 24));
    let mut m = model(office().site());
    press(&mut m, ":forward 1\t");
    insta::assert_snapshot!("command_completion_80x24", screen(&m, 80, 24));
    let mut m = model(office().site());
    press(&mut m, "21r");
    insta::assert_snapshot!("confirm_release_80x24", screen(&m, 80, 24));
}

/// Colours carry the state on a colour terminal; the selection is reverse video.
#[test]
fn colours_follow_the_state() {
    use ratatui::style::{Color, Modifier};
    let site = office()
        .call(1001, 11, 21, call_state::RINGING, 4, (17, 0))
        .dnd(12, 0)
        .forward(13, "35", "", "")
        .site();
    let mut m = model_with(Some(site), true, Vec::new());
    press(&mut m, "22");
    let t = render(&m, 80, 24);
    let buf = t.backend().buffer();
    // Row 2 is 10-19, row 3 is 20-29; a cell is marker, two digits, letter.
    let cell = |n: u16| {
        let (row, col) = (2 + (n / 10 - 1), 1 + (n % 10) * 4);
        (&buf[(col, row)], &buf[(col + 2, row)])
    };
    assert_eq!(cell(21).1.symbol(), "r");
    assert_eq!(cell(21).1.fg, Color::Yellow);
    assert_eq!(cell(11).1.fg, Color::Red, "the caller is busy");
    assert_eq!(cell(12).1.fg, Color::Magenta);
    assert_eq!(cell(13).1.fg, Color::Cyan);
    assert_eq!(cell(10).1.fg, Color::Green);
    assert!(cell(22).0.modifier.contains(Modifier::REVERSED));
    assert!(!cell(21).0.modifier.contains(Modifier::REVERSED));
}

/// With NO_COLOR nothing has a colour: letters, bold, dim and reverse video only.
#[test]
fn monochrome_has_no_colour() {
    use ratatui::style::{Color, Modifier};
    let site = office()
        .call(1001, 11, 21, call_state::RINGING, 4, (17, 0))
        .dnd(12, 0)
        .site();
    let mut m = model_with(Some(site), false, office_events());
    m.update(Msg::Daemon(DaemonMsg::Down {
        reason: "gone".into(),
    }));
    press(&mut m, "22f3");
    for (w, h) in [(80, 24), (120, 40)] {
        let t = render(&m, w, h);
        for c in t.backend().buffer().content() {
            assert_eq!((c.fg, c.bg), (Color::Reset, Color::Reset), "{c:?}");
        }
    }
    let t = render(&m, 80, 24);
    let buf = t.backend().buffer();
    assert!(
        buf[(1, 1)].modifier.contains(Modifier::REVERSED),
        "the banner stands out"
    );
}

/// Text from the network never reaches the terminal with control characters.
#[test]
fn network_text_is_sanitised() {
    let site = office()
        .reg(23, "Evil\x1b]0;owned\x07UA\u{202e}", 60)
        .site();
    let events = vec![Event::Message {
        id: None,
        from: "23".into(),
        to: "21".into(),
        status: 200,
        text: "hi\x1b[2J\x1b[31mred\r\nnext".into(),
    }];
    let mut m = model_with(Some(site), false, events);
    press(&mut m, "23");
    let text = screen(&m, 120, 40);
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
    assert!(
        text.contains("hi\u{FFFD}[2J\u{FFFD}[31mred  next"),
        "{text}"
    );
    assert!(
        text.contains("Evil\u{FFFD}]0;owned\u{FFFD}UA\u{FFFD}"),
        "{text}"
    );
}

/// Tiny, odd and huge terminals: every mode draws without panicking.
#[test]
fn any_size_draws() {
    let site = office()
        .call(1001, 11, 21, call_state::RINGING, 4, (17, 0))
        .site();
    let three = Block::new(Plan::ThreeDigit).ext(650, "x").site();
    for (site, keys) in [
        (site.clone(), ""),
        (site.clone(), "?"),
        (site.clone(), "21f35"),
        (site.clone(), ":fo\t"),
        (site.clone(), "/reg"),
        (site.clone(), "21x"),
        (site, "2"),
        (three, "650"),
    ] {
        let mut m = model_with(Some(site), true, office_events());
        press(&mut m, keys);
        m.update(Msg::Daemon(DaemonMsg::Down {
            reason: "x".repeat(300),
        }));
        for (w, h) in [
            (1, 1),
            (2, 3),
            (10, 4),
            (20, 6),
            (40, 12),
            (79, 23),
            (300, 90),
        ] {
            screen(&m, w, h);
        }
    }
}

#[test]
fn the_header_fits_80_columns_with_a_failing_route_and_keeps_the_address_whole() {
    let site = office()
        .upstream(
            "default+emergency+sms",
            "10.0.0.9:5060",
            RouteState::Reconnecting,
        )
        .site();
    let m = model_with(Some(site), false, Vec::new());
    let top = screen(&m, 80, 24);
    let first = top.lines().next().unwrap_or("");
    assert!(first.contains("192.168.1.5:5060"), "{first}");
    assert!(
        first.contains("upstream") && first.contains("retrying"),
        "{first}"
    );
    // Wide enough, everything in full.
    let wide = screen(&m, 160, 40);
    let first = wide.lines().next().unwrap_or("");
    assert!(
        first.contains("upstream default+emergency+sms retrying") && first.contains("pid "),
        "{first}"
    );
}
