//! Control lines from the FIFO: parse, carry out, answer with a result event.

use super::delivery::{Origin, Request as Delivery};
use super::message::MAX_TEXT_CHARS;
use super::refusal::Refusal;
use super::Switch;
use coventry_shared::control::{Command, ParseError, Request};
use coventry_shared::dialplan::Target;
use coventry_shared::event::{Event, ResultCode, Unregistration, DELIVERING_CHUNK};
use coventry_shared::trace::Filter;

/// One control line as the shell read it from the FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without its newline), at most the FIFO's line limit.
    Complete(Vec<u8>),
    /// A line that went over the limit; its first bytes, for the request id.
    TooLong(Vec<u8>),
}

/// Tell the command's sender whom its text goes to: [`Event::Delivering`]s (as
/// many as the lists need), before any receipt.
fn announce(sw: &mut Switch, id: Option<u64>, to: &str, targets: &[u16], offline: &[u16]) {
    let all: Vec<(u16, bool)> = targets
        .iter()
        .map(|t| (*t, true))
        .chain(offline.iter().map(|o| (*o, false)))
        .collect();
    for chunk in all.chunks(DELIVERING_CHUNK) {
        sw.out.events.push(Event::Delivering {
            id,
            to: to.to_string(),
            targets: chunk.iter().filter(|(_, t)| *t).map(|(e, _)| *e).collect(),
            offline: chunk.iter().filter(|(_, t)| !*t).map(|(e, _)| *e).collect(),
        });
    }
}

/// Request id at the start of a (possibly broken) line.
fn leading_id(bytes: &[u8]) -> Option<u64> {
    let rest = bytes.strip_prefix(b"#")?;
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

pub(super) fn handle(sw: &mut Switch, now_ms: u64, line: Line) {
    let req = match line {
        Line::TooLong(head) => {
            return result(
                sw,
                leading_id(&head),
                ResultCode::BadSyntax,
                ParseError::TooLong.to_string(),
            );
        }
        Line::Complete(bytes) => match Request::parse(&bytes) {
            Ok(r) => r,
            Err((id, e)) => {
                let code = match e {
                    ParseError::UnknownVerb(_) => ResultCode::UnknownVerb,
                    _ => ResultCode::BadSyntax,
                };
                return result(sw, id, code, e.to_string());
            }
        },
    };
    let id = req.id;
    match req.command {
        Command::Message { target, text } => message(sw, now_ms, id, &target, text),
        Command::Release { ext } => {
            if !sw.config.is_configured(ext) {
                return refuse(sw, id, Refusal::NoExtension(ext));
            }
            let changes = sw.registrar.remove_all(ext, Unregistration::Released);
            let n = changes.len();
            sw.apply_changes(changes);
            result(
                sw,
                id,
                ResultCode::Ok,
                format!("released {ext} ({n} contacts)"),
            );
        }
        Command::Reload => sw.out.reload = Some(id),
        Command::Hangup { target } => sw.hangup(now_ms, id, &target),
        Command::Forward {
            ext,
            target,
            kind,
            until,
        } => {
            let until_ms = until.map(|u| u.saturating_mul(1000));
            let outcome = sw.set_forward(now_ms, ext, kind, target.as_deref(), until_ms);
            answer(sw, id, outcome)
        }
        Command::Dnd { ext, on, until } => {
            let until_ms = until.map(|u| u.saturating_mul(1000));
            let outcome = sw.set_dnd(now_ms, ext, on, until_ms);
            answer(sw, id, outcome)
        }
        Command::Speed { code, target } => {
            let outcome = sw.set_speed(&code, target.as_deref());
            answer(sw, id, outcome)
        }
        Command::SpeedList => {
            let dials = sw.speed_dials();
            let in_force = dials.iter().filter(|(_, t, _)| t.is_some()).count();
            for (code, target, config) in dials {
                sw.out.events.push(Event::SpeedDial {
                    id,
                    code,
                    target,
                    config,
                });
            }
            result(sw, id, ResultCode::Ok, format!("{in_force} speed dials"))
        }
        Command::Why { number } => match sw.why(&number) {
            Ok((steps, conclusion)) => {
                for (step, text) in steps.into_iter().enumerate() {
                    sw.out.events.push(Event::WhyStep {
                        id,
                        step: u16::try_from(step).unwrap_or(u16::MAX),
                        text,
                    });
                }
                result(sw, id, ResultCode::Ok, conclusion)
            }
            Err(r) => refuse(sw, id, r),
        },
        Command::Dial { ext, target } => sw.dial(now_ms, id, ext, &target),
        Command::Trace { token, filter } => {
            if let Some(Filter::Ext(n)) = filter {
                if !sw.config.is_configured(n) {
                    return refuse(sw, id, Refusal::NoExtension(n));
                }
            }
            sw.out.trace.push(super::TraceOrder { id, token, filter });
        }
        Command::RunState { name } => {
            let outcome = sw.set_runstate(name.as_deref());
            answer(sw, id, outcome)
        }
    }
}

/// Answer a command with what carrying it out said: `ok` and its text, or the
/// refusal's code and text.
fn answer(sw: &mut Switch, id: Option<u64>, outcome: Result<String, Refusal>) {
    match outcome {
        Ok(text) => result(sw, id, ResultCode::Ok, text),
        Err(r) => refuse(sw, id, r),
    }
}

/// Answer a command the switch refused, with the refusal's code and text.
pub(super) fn refuse(sw: &mut Switch, id: Option<u64>, r: Refusal) {
    result(sw, id, r.code(), r.to_string())
}

/// Append a command-result event.
pub(super) fn result(sw: &mut Switch, id: Option<u64>, code: ResultCode, text: String) {
    if code == ResultCode::Ok {
        sw.counters.commands_ok += 1;
    } else {
        sw.counters.commands_failed += 1;
    }
    sw.out.events.push(Event::CommandResult { id, code, text });
}

fn message(sw: &mut Switch, now_ms: u64, id: Option<u64>, target: &str, text: String) {
    if text.chars().count() > MAX_TEXT_CHARS {
        return refuse(sw, id, Refusal::TextTooLong);
    }
    let cfg = &sw.config;
    let (targets, offline) = match cfg.target_of(target) {
        Target::Extension(n) => {
            if sw.registrar.contacts(n).is_empty() {
                sw.out.events.push(Event::Message {
                    id,
                    from: "operator".into(),
                    to: n.to_string(),
                    status: 480,
                    text,
                });
                return refuse(sw, id, Refusal::Offline(n));
            }
            (vec![n], vec![])
        }
        Target::Group(g) => {
            let members = sw.config.groups.get(&g).cloned().unwrap_or_default();
            members
                .into_iter()
                .partition(|m| !sw.registrar.contacts(*m).is_empty())
        }
        // `all` means the phones registered now: nobody else is a target.
        Target::All => (
            sw.config
                .lines
                .keys()
                .copied()
                .filter(|e| !sw.registrar.contacts(*e).is_empty())
                .collect(),
            Vec::new(),
        ),
        Target::System => return refuse(sw, id, Refusal::SystemCannotReceive),
        Target::Unknown(t) | Target::External(t) => return refuse(sw, id, Refusal::NoTarget(t)),
    };
    if targets.is_empty() {
        return refuse(sw, id, Refusal::NobodyOnline(target.to_string()));
    }
    announce(sw, id, target, &targets, &offline);
    sw.deliver(
        now_ms,
        Delivery {
            origin: Origin::Command(id),
            from: "operator".into(),
            from_user: "system".into(),
            from_display: "Operator".into(),
            to: target.to_string(),
            text,
            targets,
            offline,
            relayed: None,
        },
    );
}
