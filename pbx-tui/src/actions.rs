//! Turning what the operator typed into control commands: the answers of the
//! one-key prompts, the `:` command line, the checks before a line goes to the FIFO,
//! and which commands need a confirmation.

use crate::model::Ask;
use crate::site::Site;
use coventry_shared::control::{Command, Request};

/// Longest message text, in characters (the daemon refuses more).
pub const MAX_TEXT: usize = 160;

/// What a `:` line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineAction {
    /// A command for the daemon.
    Send(Command),
    /// Leave the console.
    Quit,
    /// Show the help screen.
    Help,
    /// A pbxctl command that only shows something: the screen already shows it.
    OnScreen(String),
}

/// The command a prompt's answer makes; `Ok(None)` when the answer is empty
/// (the prompt is cancelled), `Err` with the reason when it is not valid.
pub fn from_prompt(ask: &Ask, answer: &str) -> Result<Option<Command>, String> {
    let answer = answer.trim();
    if answer.is_empty() {
        return Ok(None);
    }
    match ask {
        Ask::Forward { ext } => parse(&format!("forward {ext} {answer}"))
            .map(Some)
            .map_err(|_| "answer TARGET [always|busy|noanswer], or off".to_string()),
        Ask::Dial { ext } => parse(&format!("dial {ext} {answer}"))
            .map(Some)
            .map_err(|_| "answer a number (digits, * and #)".to_string()),
        Ask::Message { target } => {
            let n = answer.chars().count();
            if n > MAX_TEXT {
                return Err(format!("{n} characters: at most {MAX_TEXT}"));
            }
            Ok(Some(Command::Message {
                target: target.clone(),
                text: answer.to_string(),
            }))
        }
    }
}

fn parse(line: &str) -> Result<Command, String> {
    Request::parse(line.as_bytes())
        .map(|r| r.command)
        .map_err(|(_, e)| e.to_string())
}

/// What a `:` line means: the same commands as pbxctl (`message`, `hangup`,
/// `release`, `reload`, `forward`, `dnd`, `dial`, ... with the daemon's own grammar),
/// plus `help` and `quit`. `Ok(None)` for an empty line.
pub fn from_command_line(line: &str) -> Result<Option<LineAction>, String> {
    let line = line.trim();
    let verb = line
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(Some(match verb.as_str() {
        "" => return Ok(None),
        "q" | "quit" | "exit" => LineAction::Quit,
        "help" | "?" => LineAction::Help,
        "status" | "regs" | "calls" | "exts" | "watch" => LineAction::OnScreen(verb),
        _ if line.starts_with('#') => {
            return Err("request ids are added by the console: leave out #ID".into())
        }
        _ => LineAction::Send(parse(line)?),
    }))
}

/// Whether `c` needs a `y` first: hanging up, releasing, messaging everybody.
pub fn is_destructive(c: &Command) -> bool {
    match c {
        Command::Hangup { .. } | Command::Release { .. } => true,
        Command::Message { target, .. } => target.eq_ignore_ascii_case("all"),
        _ => false,
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The confirmation question for a destructive command.
pub fn question(c: &Command, site: Option<&Site>) -> String {
    match c {
        Command::Hangup { target } => {
            let ext = target
                .parse::<u16>()
                .ok()
                .filter(|n| site.is_some_and(|s| s.plan.contains(*n)));
            match (ext, site) {
                (Some(n), Some(s)) => format!(
                    "Hang up every call of {n} ({} live)?",
                    s.calls_of(n).count()
                ),
                _ => format!("Hang up call {target}?"),
            }
        }
        Command::Release { ext } => {
            let n = site
                .and_then(|s| s.ext(*ext))
                .map_or(0, |e| e.contacts.len());
            format!(
                "Release every registration of {ext} ({})?",
                plural(n, "contact")
            )
        }
        Command::Message { text, .. } => {
            format!("Send to ALL registered extensions: \u{201c}{text}\u{201d}?")
        }
        other => format!("Run `{other}`?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::control::ForwardKind;

    #[test]
    fn prompt_answers() {
        let fwd = Ask::Forward { ext: 21 };
        assert_eq!(
            from_prompt(&fwd, "35"),
            Ok(Some(Command::Forward {
                ext: 21,
                target: Some("35".into()),
                kind: ForwardKind::Always,
                until: None
            }))
        );
        assert_eq!(
            from_prompt(&fwd, " off busy ").map(|c| c.map(|c| c.to_string())),
            Ok(Some("forward 21 off busy".into()))
        );
        assert!(from_prompt(&fwd, "sip:evil").is_err());
        assert_eq!(from_prompt(&fwd, "  "), Ok(None));
        let msg = Ask::Message {
            target: "all".into(),
        };
        assert!(from_prompt(&msg, &"x".repeat(161)).is_err());
        assert!(from_prompt(&msg, &"é".repeat(160)).is_ok());
        assert_eq!(
            from_prompt(&Ask::Dial { ext: 21 }, "*35#").map(|c| c.map(|c| c.to_string())),
            Ok(Some("dial 21 *35#".into()))
        );
    }

    #[test]
    fn command_lines() {
        assert_eq!(from_command_line("  "), Ok(None));
        assert_eq!(from_command_line("quit"), Ok(Some(LineAction::Quit)));
        assert_eq!(
            from_command_line("regs"),
            Ok(Some(LineAction::OnScreen("regs".into())))
        );
        assert_eq!(
            from_command_line("msg all hello there"),
            Ok(Some(LineAction::Send(Command::Message {
                target: "all".into(),
                text: "hello there".into()
            })))
        );
        assert!(from_command_line("#5 reload").is_err());
        assert!(from_command_line("frobnicate").is_err());
        assert!(from_command_line("release x")
            .expect_err("usage")
            .contains("usage: release EXT"));
    }

    #[test]
    fn destructive_ones() {
        assert!(is_destructive(&Command::Release { ext: 21 }));
        assert!(is_destructive(&Command::Hangup {
            target: "1001".into()
        }));
        assert!(is_destructive(&Command::Message {
            target: "ALL".into(),
            text: "x".into()
        }));
        assert!(!is_destructive(&Command::Message {
            target: "21".into(),
            text: "x".into()
        }));
        assert!(!is_destructive(&Command::Reload));
    }
}
