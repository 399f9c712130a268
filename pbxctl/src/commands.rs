//! `message`, `hangup`, `release`, `reload`: send one control line and report the daemon's result.

use crate::daemon;
use crate::error::{Error, Status};
use crate::fifo;
use crate::output::{sanitize, warn, Out, Paint};
use crate::wait::{self, CommandOutcome};
use coventry_shared::control::{Command, Request};
use coventry_shared::event::ResultCode;
use coventry_shared::runtime;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// The `message` command for `target` and the words of the text.
pub fn message(target: &str, words: &[String]) -> Command {
    Command::Message {
        target: target.to_string(),
        text: words.join(" ").trim().to_string(),
    }
}

/// Send `command` to the daemon in `dir`, wait up to `timeout` for its result and
/// print it. Status 1 when the result is not `ok`.
pub fn run(out: &mut Out, dir: &Path, timeout: Duration, command: Command) -> Result<(), Error> {
    let id = wait::request_id();
    let request = Request {
        id: Some(id),
        command,
    };
    // Everything that can be checked locally is, before the daemon is involved.
    let line = fifo::checked_line(&request)?;
    let reader = daemon::open_state(dir)?;
    daemon::require_alive(&reader)?;
    let deadline = Instant::now() + timeout;
    // The cursor is taken before the line is written so the result cannot slip by.
    let cursor = reader.cursor_at_end();
    fifo::send_line(&runtime::control_path(dir), &line, deadline)?;
    let outcome = wait::wait_for_result(&reader, cursor, id, deadline)?;
    report(out, &request, &outcome)
}

fn report(out: &mut Out, request: &Request, outcome: &CommandOutcome) -> Result<(), Error> {
    let ok = outcome.code == ResultCode::Ok;
    if out.json {
        out.json_line(&json!({
            "id": outcome.id,
            "code": outcome.code.name(),
            "ok": ok,
            "text": outcome.text,
            "command": request.command.to_string(),
        }))?;
    } else if ok {
        let text = if outcome.text.is_empty() {
            "ok".to_string()
        } else {
            sanitize(&outcome.text)
        };
        let line = out.paint(Paint::Green, &text);
        out.line(&line)?;
    }
    if ok {
        Ok(())
    } else {
        warn(&format!(
            "{}: {}",
            outcome.code.name(),
            sanitize(&outcome.text)
        ));
        Err(Error::quiet(Status::Failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
