//! The commands that go to the daemon — `message`, `hangup`, `release`, `reload`,
//! `forward`, `dnd`, `dial`, `speed`, `why`: send one control line and report the
//! daemon's result.

use crate::cli::{ExpiryArgs, OnOff};
use crate::daemon;
use crate::error::{Error, Status};
use crate::output::{warn, Out, Paint};
use crate::wait::{self, CommandOutcome, Waited};
use chrono::{DateTime, LocalResult, NaiveTime, TimeZone};
use coventry_shared::client::receipts::{Delivery, Outcome, Verdict};
use coventry_shared::client::send::{checked_line, first_request_id, send_line};
use coventry_shared::client::text::display_safe;
use coventry_shared::control::{Command, ForwardKind, Request};
use coventry_shared::event::{DialStep, Event, ResultCode};
use coventry_shared::runtime;
use coventry_shared::stateblock::{EventCursor, StateReader};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The `message` command for `target` and the words of the text.
pub fn message(target: &str, words: &[String]) -> Command {
    Command::Message {
        target: target.to_string(),
        text: words.join(" ").trim().to_string(),
    }
}

/// `off` (any case) is "clear"; anything else is a target.
fn target_or_off(target: &str) -> Option<String> {
    (!target.eq_ignore_ascii_case("off")).then(|| target.to_string())
}

/// The `forward` command. An expiry with `off` is a usage error: there is nothing
/// to revert.
pub fn forward(
    ext: u16,
    target: &str,
    busy: bool,
    no_answer: bool,
    until: Option<u64>,
) -> Result<Command, Error> {
    let target = target_or_off(target);
    if target.is_none() && until.is_some() {
        return Err(Error::usage(
            "--until and --for need a target: `off` clears the forward now",
        ));
    }
    let kind = if busy {
        ForwardKind::Busy
    } else if no_answer {
        ForwardKind::NoAnswer
    } else {
        ForwardKind::Always
    };
    Ok(Command::Forward {
        ext,
        target,
        kind,
        until,
    })
}

/// The `dnd` command. An expiry with `off` is a usage error.
pub fn dnd(ext: u16, state: OnOff, until: Option<u64>) -> Result<Command, Error> {
    let on = state == OnOff::On;
    if !on && until.is_some() {
        return Err(Error::usage(
            "--until and --for go with `on`: `off` switches do not disturb off now",
        ));
    }
    Ok(Command::Dnd { ext, on, until })
}

/// The `speed` command.
pub fn speed(code: &str, target: &str) -> Command {
    Command::Speed {
        code: code.to_string(),
        target: target_or_off(target),
    }
}

/// The expiry of `e` as seconds since the epoch (`until=`), for a command given at
/// `now` (local time): `--for` from now, rounded up to a whole second; `--until` the
/// next time the clock shows that time of day (today, or tomorrow when it has
/// passed).
pub fn expiry_secs<Tz: TimeZone>(e: &ExpiryArgs, now: &DateTime<Tz>) -> Result<Option<u64>, Error> {
    let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    if let Some(d) = e.for_ {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        return Ok(Some(now_ms.saturating_add(ms).div_ceil(1000)));
    }
    let Some(t) = e.until else {
        return Ok(None);
    };
    next_time_of_day(now, t).map(Some)
}

/// Seconds since the epoch of the first moment after `now` at which the local clock
/// of `now`'s zone shows `t`. On a day when the clock goes back and shows `t` twice,
/// the earlier; on a day when it skips `t`, a usage error.
pub fn next_time_of_day<Tz: TimeZone>(now: &DateTime<Tz>, t: NaiveTime) -> Result<u64, Error> {
    let tz = now.timezone();
    let today = now.date_naive();
    for day in [today, today + chrono::Days::new(1)] {
        let naive = day.and_time(t);
        let at = match tz.from_local_datetime(&naive) {
            LocalResult::Single(a) => a,
            LocalResult::Ambiguous(a, _) => a,
            LocalResult::None => {
                return Err(Error::usage(format!(
                    "{} does not exist on {day} here (the clock skips it); use --for",
                    t.format("%H:%M")
                )))
            }
        };
        if at > *now {
            return u64::try_from(at.timestamp())
                .map_err(|_| Error::usage("that time is before 1970"));
        }
    }
    Err(Error::usage(format!(
        "cannot find the next {}",
        t.format("%H:%M")
    )))
}

/// The `until=` seconds of `e` for a command given now.
pub fn expiry_now(e: &ExpiryArgs) -> Result<Option<u64>, Error> {
    expiry_secs(e, &chrono::Local::now())
}

/// A request written to the daemon: what waiting for what it causes needs.
struct Dispatched {
    /// Its request id.
    id: u64,
    /// The request.
    request: Request,
    /// The daemon's state block.
    reader: StateReader,
    /// The event ring's end before the line was written, so nothing the request
    /// causes can slip by.
    cursor: EventCursor,
    /// When waiting ends.
    deadline: Instant,
}

/// Check `command` as far as it can be checked here (before the daemon is
/// involved), then write it to the daemon in `dir` with a new request id.
fn dispatch(dir: &Path, timeout: Duration, command: Command) -> Result<Dispatched, Error> {
    let id = first_request_id(coventry_shared::now_ms());
    let request = Request {
        id: Some(id),
        command,
    };
    let line = checked_line(&request)?;
    let reader = daemon::open_state(dir)?;
    daemon::require_alive(&reader)?;
    let deadline = Instant::now() + timeout;
    let cursor = reader.cursor_at_end();
    send_line(&runtime::control_path(dir), &line, deadline)?;
    Ok(Dispatched {
        id,
        request,
        reader,
        cursor,
        deadline,
    })
}

/// A request written and its result.
pub struct Sent {
    /// What was sent.
    pub request: Request,
    /// The daemon's answer.
    pub outcome: CommandOutcome,
    /// The state block it was read from (for names).
    pub reader: StateReader,
}

/// Send `command` to the daemon in `dir` and wait up to `timeout` for its result.
pub fn send(dir: &Path, timeout: Duration, command: Command) -> Result<Sent, Error> {
    let Dispatched {
        id,
        request,
        reader,
        cursor,
        deadline,
    } = dispatch(dir, timeout, command)?;
    let outcome = wait::wait_for_result(&reader, cursor, id, deadline)?;
    Ok(Sent {
        request,
        outcome,
        reader,
    })
}

/// Send `command` to the daemon in `dir`, wait up to `timeout` for its result and
/// print it. Status 1 when the result is not `ok`.
pub fn run(out: &mut Out, dir: &Path, timeout: Duration, command: Command) -> Result<(), Error> {
    if matches!(command, Command::Message { .. }) {
        return send_message(out, dir, timeout, command);
    }
    if matches!(command, Command::Dial { .. }) {
        return send_dial(out, dir, timeout, command);
    }
    if matches!(command, Command::Why { .. }) {
        return send_why(out, dir, timeout, command);
    }
    if matches!(command, Command::SpeedList) {
        return send_speed_list(out, dir, timeout, command);
    }
    let sent = send(dir, timeout, command)?;
    report(out, &sent.request, &sent.outcome)
}

/// The JSON object every command result starts from.
fn result_json(request: &Request, outcome: &CommandOutcome) -> Map<String, Value> {
    let v = json!({
        "id": outcome.id,
        "code": outcome.code.name(),
        "ok": outcome.code == ResultCode::Ok,
        "text": outcome.text,
        "command": request.command.to_string(),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Status 1 with `pbxctl: CODE: TEXT` on stderr unless the result is `ok`.
fn finish(outcome: &CommandOutcome, text: &str) -> Result<(), Error> {
    if outcome.code == ResultCode::Ok {
        Ok(())
    } else {
        warn(&format!("{}: {}", outcome.code.name(), display_safe(text)));
        Err(Error::quiet(Status::Failed))
    }
}

fn report(out: &mut Out, request: &Request, outcome: &CommandOutcome) -> Result<(), Error> {
    let ok = outcome.code == ResultCode::Ok;
    if out.json {
        out.json_line(&Value::Object(result_json(request, outcome)))?;
    } else if ok {
        let text = if outcome.text.is_empty() {
            "ok".to_string()
        } else {
            display_safe(&outcome.text)
        };
        let line = out.paint(Paint::Green, &text);
        out.line(&line)?;
    }
    finish(outcome, &outcome.text)
}

/// Send a `why` command: its steps come as typed events before its result, whose
/// text is the conclusion; one line each.
fn send_why(out: &mut Out, dir: &Path, timeout: Duration, command: Command) -> Result<(), Error> {
    let Dispatched {
        id,
        request,
        reader,
        cursor,
        deadline,
    } = dispatch(dir, timeout, command)?;
    let mut steps: Vec<(u16, String)> = Vec::new();
    let waited = wait::wait_watching(&reader, cursor, id, deadline, |e| {
        if let Event::WhyStep {
            id: Some(got),
            step,
            text,
        } = e
        {
            if *got == id {
                steps.push((*step, text.clone()));
            }
        }
    })?;
    let Waited::Result(outcome) = waited else {
        return Err(Error::timeout(format!(
            "timed out waiting for the result of request #{id}"
        )));
    };
    steps.sort_by_key(|(n, _)| *n);
    if out.json {
        let mut m = result_json(&request, &outcome);
        let list: Vec<Value> = steps.iter().map(|(_, t)| json!(t)).collect();
        m.insert("steps".into(), Value::Array(list));
        out.json_line(&Value::Object(m))?;
    } else if outcome.code == ResultCode::Ok {
        for (_, t) in &steps {
            out.line(&display_safe(t))?;
        }
        out.line(&display_safe(&outcome.text))?;
    }
    finish(&outcome, &outcome.text)
}

/// One speed dial as the switch listed it: code, what it dials now (`None`:
/// cleared at run time), what the configuration says.
pub type SpeedDial = (String, Option<String>, Option<String>);

/// Where a listed speed dial comes from: `config`, `set` (at run time, over the
/// configuration's when it has the code) or `cleared`.
pub fn speed_source(target: Option<&str>, config: Option<&str>) -> String {
    match (target, config) {
        (None, _) => "cleared".to_string(),
        (Some(t), Some(c)) if t == c => "config".to_string(),
        (Some(_), Some(c)) => format!("set (config: {c})"),
        (Some(_), None) => "set".to_string(),
    }
}

/// Send `speed` without arguments: the switch answers with one typed event per
/// speed dial, then its result; printed as a table (or a JSON list).
fn send_speed_list(
    out: &mut Out,
    dir: &Path,
    timeout: Duration,
    command: Command,
) -> Result<(), Error> {
    let Dispatched {
        id,
        request,
        reader,
        cursor,
        deadline,
    } = dispatch(dir, timeout, command)?;
    let mut dials: Vec<SpeedDial> = Vec::new();
    let waited = wait::wait_watching(&reader, cursor, id, deadline, |e| {
        if let Event::SpeedDial {
            id: Some(got),
            code,
            target,
            config,
        } = e
        {
            if *got == id {
                dials.push((code.clone(), target.clone(), config.clone()));
            }
        }
    })?;
    let Waited::Result(outcome) = waited else {
        return Err(Error::timeout(format!(
            "timed out waiting for the result of request #{id}"
        )));
    };
    if out.json {
        let mut m = result_json(&request, &outcome);
        let list: Vec<Value> = dials
            .iter()
            .map(|(code, target, config)| {
                json!({
                    "code": code,
                    "target": target,
                    "config": config,
                    "source": speed_source(target.as_deref(), config.as_deref()),
                })
            })
            .collect();
        m.insert("dials".into(), Value::Array(list));
        out.json_line(&Value::Object(m))?;
    } else if outcome.code == ResultCode::Ok {
        if dials.is_empty() {
            out.line("no speed dials")?;
        } else {
            let mut table = out.table(&["CODE", "TARGET", "SOURCE"]);
            for (code, target, config) in &dials {
                table.add_row(vec![
                    display_safe(code),
                    target.as_deref().map_or("off".to_string(), display_safe),
                    display_safe(&speed_source(target.as_deref(), config.as_deref())),
                ]);
            }
            out.print_table(&table)?;
        }
    }
    finish(&outcome, &outcome.text)
}

/// What pbxctl learnt of a `message` command: the request, its receipts, the
/// state block they came from and how many events were overwritten unread.
pub struct Followed {
    /// What was sent.
    pub request: Request,
    /// Its receipts and (when it came in time) its result.
    pub delivery: Delivery,
    /// The state block (for names).
    pub reader: StateReader,
    /// Events overwritten before pbxctl read them.
    pub lost: u64,
}

/// Send a `message` command and follow its receipts until its result or the
/// timeout, whichever comes first: what is known then is the answer.
pub fn follow_message(dir: &Path, timeout: Duration, command: Command) -> Result<Followed, Error> {
    let Dispatched {
        id,
        request,
        reader,
        cursor,
        deadline,
    } = dispatch(dir, timeout, command)?;
    let mut delivery = Delivery::new(id);
    let waited = wait::wait_watching(&reader, cursor, id, deadline, |e| {
        delivery.note(e);
    })?;
    let lost = match &waited {
        Waited::Deadline { lost } => *lost,
        Waited::Result(_) => 0,
    };
    Ok(Followed {
        request,
        delivery,
        reader,
        lost,
    })
}

fn send_message(
    out: &mut Out,
    dir: &Path,
    timeout: Duration,
    command: Command,
) -> Result<(), Error> {
    let f = follow_message(dir, timeout, command)?;
    report_message(out, &f.request, &f.delivery, &f.reader, f.lost)
}

/// Send a `dial` command and follow its call's progress until its result
/// (connected or failed) or the timeout: then say where the call is (started, the
/// first phone ringing, calling the number, the number ringing), status 5 while
/// it goes on.
fn send_dial(out: &mut Out, dir: &Path, timeout: Duration, command: Command) -> Result<(), Error> {
    let Dispatched {
        id,
        request,
        reader,
        cursor,
        deadline,
    } = dispatch(dir, timeout, command)?;
    let mut progress: Option<(u32, DialStep)> = None;
    let waited = wait::wait_watching(&reader, cursor, id, deadline, |e| {
        if let Event::Dialing {
            id: Some(got),
            call,
            step,
        } = e
        {
            if *got == id {
                progress = Some((*call, *step));
            }
        }
    })?;
    match waited {
        Waited::Result(outcome) => report(out, &request, &outcome),
        Waited::Deadline { .. } => {
            let Some((call, step)) = progress else {
                return Err(Error::timeout(format!(
                    "timed out waiting for the result of request #{id}"
                )));
            };
            let (a, b) = match &request.command {
                Command::Dial { ext, target } => (ext.to_string(), target.clone()),
                _ => (String::new(), String::new()),
            };
            let text = match step {
                DialStep::Started => format!("call {call}: calling {a}"),
                DialStep::ARinging => format!("call {call}: {a} rings"),
                DialStep::CallingB => format!("call {call}: {a} answered, calling {b}"),
                DialStep::BRinging => format!("call {call}: {a} answered, {b} rings"),
            };
            if out.json {
                out.json_line(&json!({
                    "id": id,
                    "command": request.command.to_string(),
                    "done": false,
                    "code": null,
                    "ok": false,
                    "text": text,
                    "call": call,
                    "step": step.name(),
                }))?;
            } else {
                let line = out.paint(
                    Paint::Yellow,
                    &format!("{text} (not connected within the timeout; it goes on: pbxctl calls)"),
                );
                out.line(&line)?;
            }
            Err(Error::quiet(Status::Partial))
        }
    }
}

/// The text of a receipt's status column.
fn status_text(o: Outcome) -> String {
    o.status()
        .map_or_else(|| "-".to_string(), |s| s.to_string())
}

/// The colour of a receipt's row.
fn receipt_paint(o: Outcome) -> Option<Paint> {
    match o {
        Outcome::Delivered => Some(Paint::Green),
        Outcome::Offline | Outcome::Waiting => Some(Paint::Dim),
        Outcome::Refused(_) | Outcome::NoAnswer => Some(Paint::Red),
    }
}

/// Print what is known of a message and end with the status its verdict means:
/// 0 every target has it, 5 some have it, 1 nobody has it (or the switch refused
/// the command), 4 nobody yet and some have not answered by the timeout.
fn report_message(
    out: &mut Out,
    request: &Request,
    d: &Delivery,
    reader: &StateReader,
    lost: u64,
) -> Result<(), Error> {
    // Refused before anything was sent (no such target, nobody online...).
    let refused = d
        .result
        .as_ref()
        .filter(|(code, _)| *code != ResultCode::Ok && d.total() == 0);
    let summary = match (refused, &d.result) {
        (Some((_, text)), _) => text.clone(),
        (None, Some((code, text))) if *code != ResultCode::Ok && d.delivered() == 0 => text.clone(),
        (None, _) if d.total() == 0 => "no receipt within the timeout".to_string(),
        (None, _) => d.summary(),
    };
    let status = match (refused, d.verdict()) {
        (Some(_), _) => Status::Failed,
        (None, _) if d.total() == 0 => Status::Timeout,
        (None, Verdict::All) => Status::Ok,
        (None, Verdict::Some) => Status::Partial,
        (None, Verdict::None) => Status::Failed,
        (None, Verdict::NothingYet) => Status::Timeout,
    };
    if out.json {
        let receipts: Vec<Value> = d
            .receipts()
            .into_iter()
            .map(|(ext, o)| json!({"ext": ext, "result": o.name(), "status": o.status()}))
            .collect();
        out.json_line(&json!({
            "id": request.id,
            "command": request.command.to_string(),
            "to": d.to,
            "done": d.done(),
            "code": d.result.as_ref().map(|(c, _)| c.name()),
            "ok": status == Status::Ok,
            "text": summary,
            "delivered": d.delivered(),
            "waiting": d.waiting(),
            "total": d.total(),
            "lost": lost,
            "receipts": receipts,
        }))?;
    } else {
        if status == Status::Failed {
            // As every refused command: `pbxctl: CODE: TEXT` on standard error.
            let (code, text) = d
                .result
                .clone()
                .unwrap_or((ResultCode::Failed, summary.clone()));
            warn(&format!("{}: {}", code.name(), display_safe(&text)));
        } else {
            let paint = match status {
                Status::Ok => Paint::Green,
                _ => Paint::Yellow,
            };
            let mut line = display_safe(&summary);
            if !d.done() && d.total() > 0 {
                line.push_str(" (later outcomes arrive as events: pbxctl watch)");
            }
            let line = out.paint(paint, &line);
            out.line(&line)?;
        }
        if d.total() > 1 {
            let snap = reader.snapshot();
            let name = |ext: u16| {
                snap.as_ref()
                    .and_then(|s| {
                        let i = s.header.plan.index_of(ext)?;
                        s.exts().get(i).map(|e| display_safe(&e.name()))
                    })
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "-".to_string())
            };
            let mut table = out.table(&["EXT", "NAME", "RESULT", "STATUS"]);
            let mut paints = Vec::new();
            for (ext, o) in d.receipts() {
                table.add_row(vec![
                    ext.to_string(),
                    name(ext),
                    o.name().to_string(),
                    status_text(o),
                ]);
                paints.push(receipt_paint(o));
            }
            out.print_table_painted(&table, &paints)?;
        }
        if lost > 0 {
            warn(&format!(
                "{lost} events were overwritten before pbxctl read them"
            ));
        }
    }
    if status == Status::Ok {
        Ok(())
    } else {
        Err(Error::quiet(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    #[test]
    fn message_words_are_joined() {
        let words = vec!["hello".to_string(), "big".to_string(), "world ".to_string()];
        assert_eq!(
            message("21", &words),
            Command::Message {
                target: "21".into(),
                text: "hello big world".into()
            }
        );
    }

    #[test]
    fn forward_kinds_and_off() {
        let c = forward(21, "35", false, false, None).expect("ok");
        assert_eq!(c.to_string(), "forward 21 35 always");
        let c = forward(21, "35", true, false, Some(1_800_000_000)).expect("ok");
        assert_eq!(c.to_string(), "forward 21 35 busy until=1800000000");
        let c = forward(21, "OFF", false, true, None).expect("ok");
        assert_eq!(c.to_string(), "forward 21 off noanswer");
        let e = forward(21, "off", false, false, Some(1)).expect_err("usage");
        assert_eq!(e.status, Status::Usage);
        assert!(dnd(21, OnOff::Off, Some(1)).is_err());
        let c = dnd(21, OnOff::On, Some(7)).expect("ok");
        assert_eq!(c.to_string(), "dnd 21 on until=7");
        assert_eq!(speed("*7", "Off").to_string(), "speed *7 off");
        assert_eq!(speed_source(Some("35"), Some("35")), "config");
        assert_eq!(speed_source(Some("36"), Some("35")), "set (config: 35)");
        assert_eq!(speed_source(Some("36"), None), "set");
        assert_eq!(speed_source(None, Some("35")), "cleared");
    }

    #[test]
    fn expiry_from_for_rounds_up() {
        let now = Utc
            .timestamp_millis_opt(1_700_000_000_250)
            .single()
            .expect("t");
        let e = ExpiryArgs {
            until: None,
            for_: Some(Duration::from_secs(5400)),
        };
        assert_eq!(expiry_secs(&e, &now).expect("ok"), Some(1_700_005_401));
        assert_eq!(expiry_secs(&ExpiryArgs::default(), &now).expect("ok"), None);
    }

    #[test]
    fn until_is_today_or_tomorrow() {
        // 2023-11-14 22:13:20 UTC is 1_700_000_000.
        let now = Utc.timestamp_opt(1_700_000_000, 0).single().expect("t");
        let at = |h, m| next_time_of_day(&now, NaiveTime::from_hms_opt(h, m, 0).expect("t"));
        // 23:00 today.
        assert_eq!(at(23, 0).expect("ok"), 1_700_000_000 - 80_000 + 82_800);
        // 17:00 has passed: tomorrow.
        assert_eq!(
            at(17, 0).expect("ok"),
            1_700_000_000 - 80_000 + 86_400 + 61_200
        );
        // Exactly now is not "after now": tomorrow.
        assert_eq!(at(22, 13).expect("ok") % 86_400, 80_000 - 20);
        // In another zone the same instant is another local time.
        let plus2 = FixedOffset::east_opt(7200).expect("tz");
        let now2 = now.with_timezone(&plus2); // 00:13:20 on the 15th
        let t = next_time_of_day(&now2, NaiveTime::from_hms_opt(1, 0, 0).expect("t"));
        assert_eq!(t.expect("ok"), 1_700_000_000 + 2800);
    }
}
