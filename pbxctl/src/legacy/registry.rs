//! `pbx-registry USER [KEY [VALUE]]`: an extension's registration and settings,
//! as the original utility showed them: all keys, one key, or one key set; with
//! `--exists`, `--invite` or `--message` only the exit status answers, and
//! `--clear` releases the extension's registrations.

use super::{exit_help, offline, parse, report, Tool};
use crate::cli::{parse_seconds, OnOff};
use crate::commands;
use crate::daemon;
use crate::error::{Error, Status};
use clap::Parser;
use coventry_shared::client::text::display_safe;
use coventry_shared::client::view::{self, ExtView};
use coventry_shared::control::{Command, ForwardKind};
use coventry_shared::event::ResultCode;
use std::path::PathBuf;
use std::time::Duration;

/// Exit statuses of pbx-registry.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "done; or yes (--exists, --invite, --message)"),
    (
        1,
        "no such extension; or no (--exists, --invite, --message)",
    ),
    (2, "usage error"),
    (
        3,
        "unknown key, a key that cannot be set, or a value the switch refused",
    ),
    (
        4,
        "server offline: the switch is not running or did not answer in time",
    ),
];

/// Keys shown, in order; the settable ones are [`SETTABLE`].
pub const KEYS: &[&str] = &[
    "name",
    "state",
    "registered",
    "contacts",
    "contact",
    "user_agent",
    "expires",
    "dnd",
    "forward",
    "forward_busy",
    "forward_noanswer",
];

/// Keys `pbx-registry USER KEY VALUE` sets (`off` clears a forward).
pub const SETTABLE: &[&str] = &["dnd", "forward", "forward_busy", "forward_noanswer"];

/// An extension's registration and settings in the Coventry switch (the original
/// pbx-registry).
#[derive(Debug, Parser)]
#[command(name = "pbx-registry", version, after_help = exit_help(EXIT_CODES))]
pub struct Args {
    /// The extension.
    pub user: u16,
    /// One key to show or set (name, state, registered, contacts, contact,
    /// user_agent, expires, dnd, forward, forward_busy, forward_noanswer).
    pub key: Option<String>,
    /// The value to set KEY to (dnd: on/off; forwards: a number or off).
    pub value: Option<String>,
    /// Release every registration of USER.
    #[arg(long, conflicts_with_all = ["exists", "invite", "message", "key"])]
    pub clear: bool,
    /// Exit 0 when USER is an extension of the switch, else 1.
    #[arg(long, conflicts_with_all = ["invite", "message", "key"])]
    pub exists: bool,
    /// Exit 0 when a call to USER would ring a phone now, else 1.
    #[arg(long, conflicts_with_all = ["message", "key"])]
    pub invite: bool,
    /// Exit 0 when USER can take a text now (a phone registered), else 1.
    #[arg(long, conflicts_with = "key")]
    pub message: bool,
    /// Print nothing; the exit status tells.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds to wait for the switch's answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Runtime directory of the switch.
    #[arg(long, value_name = "DIR", env = "COVENTRY_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
}

/// The value of `key` for `e`; `None` for an unknown key.
pub fn value(e: &ExtView, key: &str, now_ms: u64) -> Option<String> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "off".into());
    let first = e.contacts.first();
    Some(match key {
        "name" => e.name.clone(),
        "state" => e.lamp().name().to_string(),
        "registered" => yes_no(e.registered),
        "contacts" => e.contacts.len().to_string(),
        "contact" => first.map(|c| c.uri.clone()).unwrap_or_default(),
        "user_agent" => first.map(|c| c.user_agent.clone()).unwrap_or_default(),
        "expires" => first
            .map(|c| (c.expires_ms.saturating_sub(now_ms) / 1000).to_string())
            .unwrap_or_default(),
        "dnd" => if e.dnd { "on" } else { "off" }.to_string(),
        "forward" => opt(&e.forward_always),
        "forward_busy" => opt(&e.forward_busy),
        "forward_noanswer" => opt(&e.forward_noanswer),
        _ => return None,
    })
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The control command setting `key` of `ext` to `value`; `None` when the key
/// cannot be set or the value makes no sense for it.
pub fn setting(ext: u16, key: &str, value: &str) -> Option<Command> {
    let target = (!value.eq_ignore_ascii_case("off")).then(|| value.to_string());
    let kind = match key {
        "dnd" => {
            let state = match value.to_ascii_lowercase().as_str() {
                "on" | "yes" | "1" => OnOff::On,
                "off" | "no" | "0" => OnOff::Off,
                _ => return None,
            };
            return commands::dnd(ext, state, None).ok();
        }
        "forward" => ForwardKind::Always,
        "forward_busy" => ForwardKind::Busy,
        "forward_noanswer" => ForwardKind::NoAnswer,
        _ => return None,
    };
    Some(Command::Forward {
        ext,
        target,
        kind,
        until: None,
    })
}

/// Run pbx-registry; returns the exit status.
pub fn main(args: Vec<std::ffi::OsString>) -> u8 {
    let a: Args = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match run(&a) {
        Ok(code) => code,
        Err(e) => {
            report(Tool::Registry, &e, a.quiet);
            if offline(&e) {
                4
            } else if e.status == Status::Usage {
                2
            } else {
                1
            }
        }
    }
}

fn run(a: &Args) -> Result<u8, Error> {
    let dir = daemon::runtime_dir(a.runtime_dir.as_deref());
    let snap = daemon::live_snapshot(&dir)?;
    let now = coventry_shared::now_ms();
    let ext = view::extensions(&snap)
        .into_iter()
        .find(|e| e.number == a.user && e.configured);
    let say = |line: &str| {
        if !a.quiet {
            println!("{}", display_safe(line));
        }
    };
    let Some(ext) = ext else {
        if !(a.quiet || a.exists || a.invite || a.message) {
            eprintln!("pbx-registry: {}: no such extension", a.user);
        }
        return Ok(1);
    };
    if a.exists {
        return Ok(0);
    }
    if a.invite {
        let rings = ext.registered && !ext.dnd && ext.forward_always.is_none();
        return Ok(u8::from(!rings));
    }
    if a.message {
        return Ok(u8::from(!ext.registered));
    }
    if a.clear {
        return apply(a, Command::Release { ext: a.user });
    }
    match (&a.key, &a.value) {
        (None, _) => {
            for k in KEYS {
                say(&format!("{k}={}", value(&ext, k, now).unwrap_or_default()));
            }
            Ok(0)
        }
        (Some(k), None) => match value(&ext, k, now) {
            Some(v) => {
                say(&v);
                Ok(0)
            }
            None => {
                if !a.quiet {
                    eprintln!("pbx-registry: unknown key {:?}", display_safe(k));
                }
                Ok(3)
            }
        },
        (Some(k), Some(v)) => match setting(a.user, k, v) {
            Some(c) => apply(a, c),
            None => {
                if !a.quiet {
                    eprintln!(
                        "pbx-registry: cannot set {:?} to {:?} (settable: {})",
                        display_safe(k),
                        display_safe(v),
                        SETTABLE.join(", ")
                    );
                }
                Ok(3)
            }
        },
    }
}

/// Send `c`; 0 when the switch did it, 3 when it refused.
fn apply(a: &Args, c: Command) -> Result<u8, Error> {
    let dir = daemon::runtime_dir(a.runtime_dir.as_deref());
    let sent = commands::send(&dir, a.timeout, c)?;
    let text = display_safe(&sent.outcome.text);
    if sent.outcome.code == ResultCode::Ok {
        if !a.quiet && !text.is_empty() {
            println!("{text}");
        }
        Ok(0)
    } else {
        if !a.quiet {
            eprintln!("pbx-registry: {}: {text}", sent.outcome.code.name());
        }
        Ok(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settable_keys_make_commands_and_others_do_not() {
        for k in SETTABLE {
            assert!(KEYS.contains(k));
        }
        assert!(matches!(
            setting(21, "forward", "35"),
            Some(Command::Forward { ext: 21, target: Some(ref t), kind: ForwardKind::Always, .. }) if t == "35"
        ));
        assert!(matches!(
            setting(21, "forward_busy", "off"),
            Some(Command::Forward {
                target: None,
                kind: ForwardKind::Busy,
                ..
            })
        ));
        assert!(setting(21, "dnd", "on").is_some());
        assert!(setting(21, "dnd", "maybe").is_none());
        assert!(setting(21, "name", "Reception").is_none());
        assert!(setting(21, "nonsense", "x").is_none());
    }
}
