//! `pbx-message [--to DEST] [--subject TEXT] [--quiet] TEXT...`: send a text to
//! an extension, a group or every phone registered now (the default), as the
//! original utility did; the exit status says what happened.

use super::{exit_help, offline, parse, report, Tool};
use crate::cli::parse_seconds;
use crate::commands;
use crate::daemon;
use crate::error::Error;
use clap::Parser;
use coventry_shared::client::text::display_safe;
use coventry_shared::control::{Command, MAX_TEXT_CHARS};
use coventry_shared::event::ResultCode;
use std::path::PathBuf;
use std::time::Duration;

/// Longest destination accepted (an extension, a group, `all`, a number outside).
pub const MAX_DEST: usize = 32;
/// Longest subject accepted.
pub const MAX_SUBJECT: usize = 32;

/// Exit statuses of pbx-message.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "the switch took the text: delivered to the destination (all: to some phone)",
    ),
    (
        1,
        "not delivered: no such destination, nobody registered, or refused",
    ),
    (2, "usage error"),
    (
        4,
        "server offline: the switch is not running or did not answer in time",
    ),
    (10, "destination too long"),
    (11, "text over 160 characters (subject included)"),
    (12, "subject too long"),
];

/// Send a text through the Coventry switch (the original pbx-message).
#[derive(Debug, Parser)]
#[command(name = "pbx-message", version, after_help = exit_help(EXIT_CODES))]
pub struct Args {
    /// Destination: an extension, a group, or `all` (every phone registered now).
    #[arg(long, value_name = "DEST", default_value = "all")]
    pub to: String,
    /// A subject, sent before the text as `SUBJECT: TEXT`.
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// Print nothing; the exit status tells.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds to wait for the switch's answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Runtime directory of the switch.
    #[arg(long, value_name = "DIR", env = "COVENTRY_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// The text (words are joined with spaces).
    #[arg(required = true, value_name = "TEXT")]
    pub text: Vec<String>,
}

/// What to send, or the exit status that refuses it.
pub fn compose(a: &Args) -> Result<Command, u8> {
    if a.to.chars().count() > MAX_DEST {
        return Err(10);
    }
    if a.subject
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SUBJECT)
    {
        return Err(12);
    }
    let body = a.text.join(" ").trim().to_string();
    let text = match &a.subject {
        Some(s) if !s.trim().is_empty() => format!("{}: {body}", s.trim()),
        _ => body,
    };
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(11);
    }
    Ok(Command::Message {
        target: a.to.clone(),
        text,
    })
}

/// Run pbx-message; returns the exit status.
pub fn main(args: Vec<std::ffi::OsString>) -> u8 {
    let a: Args = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let command = match compose(&a) {
        Ok(c) => c,
        Err(code) => {
            if !a.quiet {
                let why = EXIT_CODES
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map_or("", |(_, w)| w);
                eprintln!("pbx-message: {why}");
            }
            return code;
        }
    };
    let dir = daemon::runtime_dir(a.runtime_dir.as_deref());
    match commands::follow_message(&dir, a.timeout, command) {
        Ok(f) => {
            let d = &f.delivery;
            // The original's 0: the destination has it (for all: some phone does).
            let ok = d.delivered() > 0;
            if !a.quiet {
                let refused = d.result.as_ref().filter(|(c, _)| *c != ResultCode::Ok);
                match (ok, refused) {
                    (true, _) => println!("{}", display_safe(&d.summary())),
                    (false, Some((code, text))) => {
                        eprintln!("pbx-message: {}: {}", code.name(), display_safe(text))
                    }
                    (false, None) if d.waiting() > 0 => {
                        eprintln!("pbx-message: no answer within the timeout")
                    }
                    (false, None) => eprintln!("pbx-message: {}", display_safe(&d.summary())),
                }
            }
            if ok {
                0
            } else if d.waiting() > 0 && !d.done() {
                // Nobody answered in time: as the original said when the server did not.
                4
            } else {
                1
            }
        }
        Err(e) => status_of(&e, a.quiet),
    }
}

fn status_of(e: &Error, quiet: bool) -> u8 {
    report(Tool::Message, e, quiet);
    if offline(e) {
        4
    } else if e.status == crate::error::Status::Usage {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("pbx-message").chain(v.iter().copied())).expect("args")
    }

    #[test]
    fn limits_have_their_own_statuses() {
        let c = compose(&args(&["shutdown", "at", "5"])).expect("ok");
        assert_eq!(
            c,
            Command::Message {
                target: "all".into(),
                text: "shutdown at 5".into()
            }
        );
        let long = "x".repeat(161);
        assert_eq!(compose(&args(&[&long])), Err(11));
        let fits = "é".repeat(160);
        assert!(
            compose(&args(&[&fits])).is_ok(),
            "160 characters, not bytes"
        );
        assert_eq!(compose(&args(&["--to", &"1".repeat(33), "hi"])), Err(10));
        assert_eq!(
            compose(&args(&["--subject", &"s".repeat(33), "hi"])),
            Err(12)
        );
        let c = compose(&args(&["--to", "21", "--subject", "Fire drill", "at 3"])).expect("ok");
        assert_eq!(
            c,
            Command::Message {
                target: "21".into(),
                text: "Fire drill: at 3".into()
            }
        );
        let text = "y".repeat(150);
        assert_eq!(compose(&args(&["--subject", "Fire drill", &text])), Err(11));
    }
}
