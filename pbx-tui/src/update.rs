//! `update`: every message changes the model and may ask for effects. No I/O here,
//! so keys → actions → FIFO lines are tested without a terminal or a daemon.

use crate::actions::{self, LineAction};
use crate::complete::complete;
use crate::line_edit::LineEdit;
use crate::log::LogLine;
use crate::model::{Ask, CommandLine, Confirm, Link, Mode, Model, Pending, Prompt, Status, Tone};
use crate::msg::{DaemonMsg, Effect, Msg};
use crate::site::Site;
use coventry_shared::client::receipts::{Delivery, Verdict};
use coventry_shared::client::send::checked_line;
use coventry_shared::control::{Command, Request};
use coventry_shared::event::{Event, EventRecord};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// How long a command's result is awaited before the console gives up on it.
pub const RESULT_TIMEOUT_MS: u64 = 5000;
/// Lines the log moves per PgUp/PgDn.
pub const LOG_PAGE: usize = 5;

fn ctrl(key: &KeyEvent, c: char) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char(c)
}

impl Model {
    /// Apply one message; returns what the event loop must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => {
                if key.kind == KeyEventKind::Release {
                    return Vec::new();
                }
                self.dirty = true;
                return self.on_key(key);
            }
            Msg::Resize => self.dirty = true,
            Msg::End(ending) => {
                // In every mode: nothing the console shows or awaits may hold it.
                self.ending.get_or_insert(ending);
                return self.quit();
            }
            Msg::Tick {
                now_ms,
                utc_offset_s,
            } => self.on_tick(now_ms, utc_offset_s),
            Msg::Daemon(d) => self.on_daemon(d),
            Msg::Site(site) => self.on_site(*site),
            Msg::Events { events, lost } => self.on_events(events, lost),
            Msg::Trace { lines, lost } => self.on_trace(lines, lost),
            Msg::TraceEnded(why) => {
                if let Some(t) = self.trace.as_mut() {
                    t.ended.get_or_insert(why);
                    self.dirty = true;
                }
            }
            Msg::SendFailed { id, error } => {
                let command = self
                    .pending
                    .remove(&id)
                    .map_or_else(|| format!("#{id}"), |p| p.command);
                self.say(Tone::Bad, format!("{command}: {error}"));
            }
        }
        Vec::new()
    }

    fn say(&mut self, tone: Tone, text: impl Into<String>) {
        self.status = Some(Status {
            tone,
            text: crate::sanitize::clean(&text.into()),
        });
        self.dirty = true;
    }

    fn note(&mut self, text: &str) {
        self.log.push(LogLine::note(self.now_ms, text));
        self.dirty = true;
    }

    // ----- the world -----

    fn on_tick(&mut self, now_ms: u64, utc_offset_s: i32) {
        if now_ms / 1000 != self.now_ms / 1000 || utc_offset_s != self.utc_offset_s {
            self.dirty = true;
        }
        self.now_ms = now_ms;
        self.utc_offset_s = utc_offset_s;
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ms.saturating_sub(p.sent_ms) >= RESULT_TIMEOUT_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(p) = self.pending.remove(&id) {
                let (tone, text) = match &p.delivery {
                    // A message: what is known at the timeout; the rest comes to
                    // the log as events.
                    Some(d) if d.total() > 0 => (
                        match d.verdict() {
                            Verdict::All => Tone::Good,
                            Verdict::Some => Tone::Waiting,
                            Verdict::None | Verdict::NothingYet => Tone::Bad,
                        },
                        format!(
                            "{}: {} (later outcomes go to the log)",
                            p.command,
                            d.summary()
                        ),
                    ),
                    _ => (
                        Tone::Bad,
                        format!(
                            "{}: no result from the daemon within {} s",
                            p.command,
                            RESULT_TIMEOUT_MS / 1000
                        ),
                    ),
                };
                self.say(tone, text);
            }
        }
    }

    fn fail_pending(&mut self, why: &str) {
        let pending = std::mem::take(&mut self.pending);
        for p in pending.into_values() {
            self.say(
                Tone::Bad,
                format!("{}: {why}; it may not have been carried out", p.command),
            );
        }
    }

    fn on_daemon(&mut self, d: DaemonMsg) {
        match d {
            DaemonMsg::Up { pid, again } => {
                let was = std::mem::replace(&mut self.link, Link::Up { pid });
                match was {
                    Link::Up { pid: old } if old == pid => {}
                    Link::Stale { .. } if !again => {
                        self.note(&format!("coventryd (pid {pid}) is responding again"))
                    }
                    _ if again => {
                        self.fail_pending("the daemon restarted before answering");
                        let text =
                            format!("coventryd restarted (pid {pid}): state block re-opened");
                        self.note(&text);
                        self.say(Tone::Info, text);
                    }
                    _ => self.note(&format!("connected to coventryd (pid {pid})")),
                }
            }
            DaemonMsg::Stale { heartbeat_ms } => {
                if !matches!(self.link, Link::Stale { .. }) {
                    self.note("coventryd stopped updating its heartbeat");
                }
                self.link = Link::Stale { heartbeat_ms };
            }
            DaemonMsg::Down { reason } => {
                if matches!(&self.link, Link::Down { reason: r, .. } if *r == reason) {
                    return;
                }
                self.fail_pending("the daemon went away before answering");
                self.note(&format!("coventryd is down: {reason}"));
                self.link = Link::Down {
                    reason,
                    since_ms: self.now_ms,
                };
            }
        }
        self.dirty = true;
    }

    fn on_site(&mut self, site: Site) {
        if !site.plan.contains(self.selected) {
            self.selected = site.configured().next().unwrap_or(site.plan.first());
        }
        self.site = Some(site);
        self.dirty = true;
    }

    fn on_events(&mut self, events: Vec<EventRecord>, lost: u64) {
        if lost > 0 {
            self.note(&format!(
                "{lost} events were overwritten before the console read them"
            ));
        }
        for rec in events {
            for p in self.pending.values_mut() {
                if let Some(d) = p.delivery.as_mut() {
                    d.note(&rec.event);
                }
            }
            match &rec.event {
                Event::CommandResult {
                    id: Some(id),
                    code,
                    text,
                } => {
                    if let Some(p) = self.pending.remove(id) {
                        let ok = *code == coventry_shared::event::ResultCode::Ok;
                        let mut s = format!("{}: {}", p.command, code.name());
                        // A message's typed receipts say more than the text.
                        let text = match &p.delivery {
                            Some(d) if d.total() > 0 => d.summary(),
                            _ => text.clone(),
                        };
                        if !text.is_empty() {
                            s.push_str(&format!(" \u{2014} {text}"));
                        }
                        let tone = match p.delivery.as_ref().map(|d| (d.total(), d.verdict())) {
                            Some((n, Verdict::Some)) if n > 0 => Tone::Waiting,
                            _ if ok => Tone::Good,
                            _ => Tone::Bad,
                        };
                        self.say(tone, s);
                    }
                }
                Event::CallState { call, phase, .. } => {
                    if self.call_phases.get(call) == Some(phase) {
                        continue;
                    }
                    self.call_phases.insert(*call, *phase);
                }
                Event::CallRecord { call, .. } => {
                    self.call_phases.remove(call);
                }
                _ => {}
            }
            self.log.push(LogLine::of(&rec));
            self.dirty = true;
        }
        if self.call_phases.len() > 1000 {
            self.call_phases.clear();
        }
    }

    // ----- keys -----

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if ctrl(&key, 'l') {
            return vec![Effect::Repaint];
        }
        if ctrl(&key, 'c') {
            if self.mode == Mode::Normal {
                return self.quit();
            }
            self.mode = Mode::Normal;
            self.say(Tone::Info, "cancelled");
            return Vec::new();
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key),
            Mode::Jump(digits) => self.jump_key(digits, key),
            Mode::Prompt(p) => self.prompt_key(p, key),
            Mode::Command(c) => self.command_key(c, key),
            Mode::Filter { input, previous } => self.filter_key(input, previous, key),
            Mode::Confirm(c) => self.confirm_key(c, key),
            Mode::Help { scroll } => {
                self.help_key(scroll, key);
                Vec::new()
            }
        }
    }

    fn quit(&mut self) -> Vec<Effect> {
        self.quit = true;
        vec![Effect::Quit]
    }

    fn normal_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('q') => return self.quit(),
            KeyCode::Char('?') | KeyCode::F(1) => self.mode = Mode::Help { scroll: 0 },
            KeyCode::Left | KeyCode::Char('h') => self.move_by(-1),
            KeyCode::Right | KeyCode::Char('l') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-10),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(10),
            KeyCode::Char('[') => self.move_by(-100),
            KeyCode::Char(']') => self.move_by(100),
            KeyCode::Char(c @ '0'..='9') => return self.jump_key(String::new(), key_char(c)),
            KeyCode::PageUp => self.log.scroll_back(LOG_PAGE),
            KeyCode::PageDown => self.log.scroll_forward(LOG_PAGE),
            KeyCode::Home => self.log.scroll_to_oldest(),
            KeyCode::End => self.log.follow(),
            KeyCode::Char('/') => {
                let previous = self.log.filter().to_string();
                self.mode = Mode::Filter {
                    input: LineEdit::with_text(&previous),
                    previous,
                }
            }
            KeyCode::Esc => {
                self.status = None;
                if !self.log.filter().is_empty() {
                    self.log.set_filter("");
                }
            }
            KeyCode::Char(c @ ('f' | 'd' | 'm' | 'M' | 'c' | 'x' | 'r' | ':')) => {
                return self.action_key(c)
            }
            KeyCode::Char('T') => return self.toggle_trace(),
            _ => {}
        }
        Vec::new()
    }

    /// `T`: open the live SIP trace of the selected extension in place of the
    /// log, or close the one open.
    fn toggle_trace(&mut self) -> Vec<Effect> {
        if self.trace.take().is_some() {
            self.say(Tone::Info, "trace closed");
            return vec![Effect::TraceStop];
        }
        let Some(ext) = self.selected_ext().map(|e| e.number) else {
            self.say(Tone::Bad, "no state block yet: no extension selected");
            return Vec::new();
        };
        self.trace = Some(crate::model::TracePane {
            ext,
            lines: std::collections::VecDeque::new(),
            lost: 0,
            ended: None,
        });
        vec![Effect::TraceStart { ext }]
    }

    fn on_trace(&mut self, lines: Vec<String>, lost: u64) {
        let Some(t) = self.trace.as_mut() else {
            return;
        };
        t.lost += lost;
        t.lines.extend(lines);
        while t.lines.len() > crate::model::TRACE_LINES {
            t.lines.pop_front();
        }
        self.dirty = true;
    }

    fn move_by(&mut self, delta: i32) {
        let Some(site) = &self.site else {
            return;
        };
        let (first, last) = (i32::from(site.plan.first()), i32::from(site.plan.last()));
        let to = (i32::from(self.selected) + delta).clamp(first, last);
        self.selected = u16::try_from(to).unwrap_or(site.plan.first());
    }

    fn jump_key(&mut self, mut digits: String, key: KeyEvent) -> Vec<Effect> {
        let Some(plan) = self.site.as_ref().map(|s| s.plan) else {
            self.say(Tone::Bad, "no state block yet: nothing to jump to");
            return Vec::new();
        };
        match key.code {
            KeyCode::Char(c @ '0'..='9') => digits.push(c),
            KeyCode::Backspace => {
                digits.pop();
                if digits.is_empty() {
                    return Vec::new();
                }
                self.mode = Mode::Jump(digits);
                return Vec::new();
            }
            KeyCode::Esc => return Vec::new(),
            _ => return self.normal_key(key),
        }
        let width = u32::from(plan.digits());
        let len = digits.len() as u32;
        let prefix: u32 = digits.parse().unwrap_or(0);
        let scale = 10u32.pow(width.saturating_sub(len));
        let (lo, hi) = (prefix * scale, (prefix + 1) * scale - 1);
        if digits.starts_with('0') || hi < u32::from(plan.first()) || lo > u32::from(plan.last()) {
            self.say(
                Tone::Bad,
                format!("no extension starts with {digits} ({plan})"),
            );
        } else if len >= width {
            self.selected = u16::try_from(prefix).unwrap_or(plan.first());
            self.status = None;
        } else {
            self.mode = Mode::Jump(digits);
        }
        Vec::new()
    }

    fn action_key(&mut self, c: char) -> Vec<Effect> {
        if self.readonly {
            self.say(
                Tone::Bad,
                "read-only console (--readonly): actions are disabled",
            );
            return Vec::new();
        }
        if c == ':' {
            self.mode = Mode::Command(CommandLine::default());
            return Vec::new();
        }
        let Some(ext) = self.selected_ext().cloned() else {
            self.say(Tone::Bad, "no state block yet: no extension selected");
            return Vec::new();
        };
        let n = ext.number;
        let prompt = |ask| {
            Mode::Prompt(Prompt {
                ask,
                input: LineEdit::new(),
                error: None,
            })
        };
        match c {
            'f' => self.mode = prompt(Ask::Forward { ext: n }),
            'm' => {
                self.mode = prompt(Ask::Message {
                    target: n.to_string(),
                })
            }
            'M' => {
                self.mode = prompt(Ask::Message {
                    target: "all".into(),
                })
            }
            'c' => self.mode = prompt(Ask::Dial { ext: n }),
            'd' => {
                return self.send(Command::Dnd {
                    ext: n,
                    on: !ext.dnd,
                    until: None,
                })
            }
            'x' => {
                return self.confirm_or_send(Command::Hangup {
                    target: n.to_string(),
                })
            }
            'r' => return self.confirm_or_send(Command::Release { ext: n }),
            _ => {}
        }
        Vec::new()
    }

    fn confirm_or_send(&mut self, command: Command) -> Vec<Effect> {
        if actions::is_destructive(&command) {
            self.mode = Mode::Confirm(Confirm {
                question: actions::question(&command, self.site.as_ref()),
                command,
            });
            Vec::new()
        } else {
            self.send(command)
        }
    }

    /// Send `command` with a fresh request id: the FIFO line becomes an effect and
    /// the command waits in `pending` for its result.
    fn send(&mut self, command: Command) -> Vec<Effect> {
        if self.readonly {
            self.say(
                Tone::Bad,
                "read-only console (--readonly): actions are disabled",
            );
            return Vec::new();
        }
        let id = self.next_id;
        let request = Request {
            id: Some(id),
            command,
        };
        let shown = request.command.to_string();
        match checked_line(&request).map_err(|e| e.to_string()) {
            Ok(line) => {
                self.next_id += 1;
                let delivery =
                    matches!(request.command, Command::Message { .. }).then(|| Delivery::new(id));
                self.pending.insert(
                    id,
                    Pending {
                        command: shown.clone(),
                        sent_ms: self.now_ms,
                        delivery,
                    },
                );
                self.say(
                    Tone::Waiting,
                    format!("{shown}: sent, waiting for the daemon"),
                );
                vec![Effect::Send { id, line }]
            }
            Err(e) => {
                self.say(Tone::Bad, format!("not sent: {e}"));
                Vec::new()
            }
        }
    }

    fn prompt_key(&mut self, mut p: Prompt, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => {
                self.say(Tone::Info, "cancelled");
                Vec::new()
            }
            KeyCode::Enter => match actions::from_prompt(&p.ask, p.input.text()) {
                Ok(None) => {
                    self.say(Tone::Info, "cancelled");
                    Vec::new()
                }
                Ok(Some(command)) => self.confirm_or_send(command),
                Err(e) => {
                    p.error = Some(e);
                    self.mode = Mode::Prompt(p);
                    Vec::new()
                }
            },
            _ => {
                if p.input.handle(&key) {
                    p.error = None;
                }
                self.mode = Mode::Prompt(p);
                Vec::new()
            }
        }
    }

    fn command_key(&mut self, mut c: CommandLine, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => Vec::new(),
            KeyCode::Tab => {
                let (exts, calls) = match &self.site {
                    Some(s) => (
                        s.configured().collect::<Vec<_>>(),
                        s.live_calls().map(|c| c.id).collect::<Vec<_>>(),
                    ),
                    None => (Vec::new(), Vec::new()),
                };
                let done = complete(c.input.before_cursor(), &exts, &calls);
                c.input.set_before_cursor(&done.head);
                c.candidates = done.candidates;
                c.error = None;
                self.mode = Mode::Command(c);
                Vec::new()
            }
            KeyCode::Enter => match actions::from_command_line(c.input.text()) {
                Ok(None) => Vec::new(),
                Ok(Some(LineAction::Quit)) => self.quit(),
                Ok(Some(LineAction::Help)) => {
                    self.mode = Mode::Help { scroll: 0 };
                    Vec::new()
                }
                Ok(Some(LineAction::OnScreen(verb))) => {
                    self.say(
                        Tone::Info,
                        format!("`{verb}` is what this screen shows; `?` lists the keys"),
                    );
                    Vec::new()
                }
                Ok(Some(LineAction::Send(command))) => self.confirm_or_send(command),
                Err(e) => {
                    c.error = Some(e);
                    c.candidates.clear();
                    self.mode = Mode::Command(c);
                    Vec::new()
                }
            },
            KeyCode::Backspace if c.input.text().is_empty() => Vec::new(),
            _ => {
                if c.input.handle(&key) {
                    c.candidates.clear();
                    c.error = None;
                }
                self.mode = Mode::Command(c);
                Vec::new()
            }
        }
    }

    fn filter_key(&mut self, mut input: LineEdit, previous: String, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => self.log.set_filter(&previous),
            KeyCode::Enter => self.log.set_filter(input.text()),
            _ => {
                input.handle(&key);
                self.log.set_filter(input.text());
                self.mode = Mode::Filter { input, previous };
            }
        }
        Vec::new()
    }

    fn confirm_key(&mut self, c: Confirm, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Char('y' | 'Y') => self.send(c.command),
            _ => {
                self.say(Tone::Info, format!("cancelled: {}", c.command));
                Vec::new()
            }
        }
    }

    fn help_key(&mut self, scroll: u16, key: KeyEvent) {
        let scroll = match key.code {
            KeyCode::Down | KeyCode::Char('j') => scroll.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => scroll.saturating_add(10),
            KeyCode::PageUp => scroll.saturating_sub(10),
            KeyCode::Home => 0,
            _ => return,
        };
        self.mode = Mode::Help { scroll };
    }
}

fn key_char(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}
