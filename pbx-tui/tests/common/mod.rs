//! Fixtures for the console's tests: state-block snapshots built with the shared
//! contract's own layout (decoded by the real `Site::from_snapshot`), a model at a
//! fixed time in UTC, keys, and rendering on ratatui's `TestBackend`.
#![allow(dead_code)]

use coventry_shared::dialplan::Plan;
use coventry_shared::event::{Event, EventRecord, RouteState};
use coventry_shared::stateblock::{
    call_state, put_str, set_bit, Body, CallEntry, HeaderInfo, Snapshot, EXT_CONFIGURED,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pbx_tui::model::{Model, Options};
use pbx_tui::msg::{DaemonMsg, Effect, Msg};
use pbx_tui::site::Site;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// The fixed "now" of every test: 2025-06-15 12:00:00 UTC.
pub const NOW: u64 = 1_749_988_800_000;
/// The daemon's pid in fixtures.
pub const PID: u32 = 4242;
/// The first request id of a test model.
pub const FIRST_ID: u64 = 1;

/// Builds a snapshot of the state block.
pub struct Block {
    snap: Snapshot,
    calls: usize,
}

impl Block {
    /// An empty block of `plan`, daemon up for 3 h 25 min.
    pub fn new(plan: Plan) -> Block {
        let mut body = Body::boxed_zeroed();
        for (i, n) in plan.numbers().enumerate() {
            body.exts[i].number = n;
        }
        Block {
            snap: Snapshot {
                header: HeaderInfo {
                    pid: PID,
                    plan,
                    start_ms: NOW - (3 * 3600 + 25 * 60) * 1000,
                    heartbeat_ms: NOW,
                    bound: "192.168.1.5:5060".into(),
                    realm: "office".into(),
                    state_dir: String::new(),
                    event_head: 0,
                },
                body,
            },
            calls: 0,
        }
    }

    fn index(&self, n: u16) -> usize {
        self.snap.header.plan.index_of(n).expect("in the plan")
    }

    /// Configure extension `n` named `name` with `lines` contacts allowed.
    pub fn ext(mut self, n: u16, name: &str) -> Block {
        let i = self.index(n);
        let e = &mut self.snap.body.exts[i];
        e.flags |= EXT_CONFIGURED;
        e.lines = 2;
        put_str(&mut e.name, name);
        self
    }

    /// Register a contact of `n` with user agent `ua`, expiring in `secs`.
    pub fn reg(mut self, n: u16, ua: &str, secs: u64) -> Block {
        let i = self.index(n);
        let e = &mut self.snap.body.exts[i];
        let c = &mut e.contacts[usize::from(e.contact_count)];
        put_str(&mut c.uri, &format!("sip:{n}@192.168.1.{}:5060", 100 + i));
        put_str(&mut c.source, &format!("192.168.1.{}:5060", 100 + i));
        put_str(&mut c.user_agent, ua);
        c.registered_ms = NOW - 60_000;
        c.expires_ms = NOW + secs * 1000;
        e.contact_count += 1;
        set_bit(&mut self.snap.body.bitmaps.registered, i, true);
        self
    }

    /// Turn DND on for `n`, reverting at `until_ms` (0: never).
    pub fn dnd(mut self, n: u16, until_ms: u64) -> Block {
        let i = self.index(n);
        self.snap.body.exts[i].dnd_until_ms = until_ms;
        set_bit(&mut self.snap.body.bitmaps.dnd, i, true);
        self
    }

    /// Forward `n`: always / busy / no-answer targets (empty: none).
    pub fn forward(mut self, n: u16, always: &str, busy: &str, noanswer: &str) -> Block {
        let i = self.index(n);
        let e = &mut self.snap.body.exts[i];
        put_str(&mut e.forward_always, always);
        put_str(&mut e.forward_busy, busy);
        put_str(&mut e.forward_noanswer, noanswer);
        set_bit(&mut self.snap.body.bitmaps.forwarded, i, true);
        self
    }

    /// A call `from` → `to` in `state` with `rings` rings; `(ago, talk)`: started
    /// `ago` s before now, answered `talk` s before now (0: not answered).
    pub fn call(
        mut self,
        id: u32,
        from: u16,
        to: u16,
        state: u8,
        rings: u8,
        times: (u64, u64),
    ) -> Block {
        let (ago, talk) = times;
        let mut c = CallEntry::FREE;
        c.id = id;
        c.state = state;
        c.ring_count = rings;
        put_str(&mut c.from, &from.to_string());
        put_str(&mut c.to, &to.to_string());
        put_str(&mut c.call_id, &format!("call-{id}@test"));
        c.start_ms = NOW - ago * 1000;
        if talk > 0 {
            c.answer_ms = NOW - talk * 1000;
        }
        if state == call_state::ENDED {
            c.end_ms = NOW - 1000;
            c.outcome = coventry_shared::event::CallOutcome::Busy as u16;
            c.cause = 486;
        }
        let bits = &mut self.snap.body.bitmaps;
        let plan = self.snap.header.plan;
        match state {
            call_state::RINGING | call_state::DIALING => {
                if let Some(i) = plan.index_of(to) {
                    set_bit(&mut bits.ringing, i, true);
                }
                if let Some(i) = plan.index_of(from) {
                    set_bit(&mut bits.busy, i, true);
                }
            }
            call_state::ANSWERED => {
                for n in [from, to] {
                    if let Some(i) = plan.index_of(n) {
                        set_bit(&mut bits.busy, i, true);
                    }
                }
            }
            _ => {}
        }
        self.snap.body.calls[self.calls] = c;
        self.calls += 1;
        self
    }

    /// An upstream connection serving `route` at `addr` in `state`.
    pub fn upstream(mut self, route: &str, addr: &str, state: RouteState) -> Block {
        let slot = self
            .snap
            .body
            .routes
            .iter()
            .take_while(|r| r.in_use())
            .count();
        let r = &mut self.snap.body.routes[slot];
        put_str(&mut r.name, route);
        put_str(&mut r.addr, addr);
        r.state = state as u8;
        r.since_ms = NOW - 60_000;
        self
    }

    /// The site the console makes of this block.
    pub fn site(&self) -> Site {
        Site::from_snapshot(&self.snap)
    }
}

/// A 2-digit office: 10–29 configured, most registered.
pub fn office() -> Block {
    let names = [
        (10, "Reception"),
        (11, "Alice Martin"),
        (12, "Bob Stone"),
        (13, "Carol Diaz"),
        (14, "Dan Wu"),
        (15, "Erin Cole"),
        (16, "Frank Ito"),
        (17, "Grace Hall"),
        (18, "Kitchen"),
        (19, "Meeting room"),
        (20, "Hana Lee"),
        (21, "Ivan Petrov"),
        (22, "Julia Roth"),
        (23, "Karl Berg"),
        (24, "Lena Fox"),
        (25, "Mona Gray"),
        (26, "Nils Holm"),
        (27, "Olga Kim"),
        (28, "Paul Adams"),
        (29, "Quinn Ray"),
    ];
    let mut b = Block::new(Plan::TwoDigit);
    for (n, name) in names {
        b = b.ext(n, name);
    }
    for n in [10, 11, 12, 13, 15, 16, 18, 20, 21, 22, 24, 25, 27] {
        b = b.reg(n, "Yealink SIP-T46U 108.86.0.20", 3540);
    }
    b.reg(21, "Linphone/5.2.5 (Android)", 290)
}

/// A model at [`NOW`] (UTC), colours as given, connected to a daemon showing `site`,
/// with the log holding `events`.
pub fn model_with(site: Option<Site>, color: bool, events: Vec<Event>) -> Model {
    let mut m = Model::new(Options {
        readonly: false,
        color,
        now_ms: NOW,
        utc_offset_s: 0,
        first_request_id: FIRST_ID,
        runtime_dir: "/run/coventry".into(),
    });
    if let Some(site) = site {
        m.update(Msg::Daemon(DaemonMsg::Up {
            pid: PID,
            again: false,
        }));
        m.update(Msg::Site(Box::new(site)));
    }
    let n = events.len() as u64;
    let records = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| EventRecord {
            seq: i as u64,
            time_ms: NOW - (n - i as u64) * 7_000,
            event,
        })
        .collect();
    m.update(Msg::Events {
        events: records,
        lost: 0,
    });
    m
}

/// [`model_with`] in monochrome without events.
pub fn model(site: Site) -> Model {
    model_with(Some(site), false, Vec::new())
}

/// A key press.
pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// A character key press.
pub fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

/// Ctrl + `c`.
pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Type `text` (one key per character) and collect the effects.
pub fn type_text(m: &mut Model, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| m.update(ch(c))).collect()
}

/// Press keys given as a string where `\n` is Enter and `\x1b` is Esc; returns
/// every effect.
pub fn press(m: &mut Model, keys: &str) -> Vec<Effect> {
    keys.chars()
        .flat_map(|c| {
            m.update(match c {
                '\n' => key(KeyCode::Enter),
                '\x1b' => key(KeyCode::Esc),
                '\t' => key(KeyCode::Tab),
                c => ch(c),
            })
        })
        .collect()
}

/// The FIFO lines among `effects`.
pub fn lines(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// Render `m` on a `w`×`h` test terminal.
pub fn render(m: &Model, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| m.view(f)).expect("draw");
    t
}

/// The screen of `m` at `w`×`h` as text, one line per row.
pub fn screen(m: &Model, w: u16, h: u16) -> String {
    let t = render(m, w, h);
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..h {
        for x in 0..w {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}
