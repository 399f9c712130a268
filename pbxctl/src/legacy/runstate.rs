//! `pbx-runstate [STATE]`: show or set the run state, whether the switch is up
//! (it applies at once) or down (the choice is kept for its start), as the
//! original utility did from cron.

use super::{exit_help, parse, report, Tool};
use crate::cli::parse_seconds;
use crate::commands;
use crate::daemon;
use crate::error::{Error, Status};
use crate::runstate::{current, store};
use clap::Parser;
use coventry_shared::client::text::display_safe;
use coventry_shared::control::Command;
use coventry_shared::event::ResultCode;
use coventry_shared::runstate::valid_name;
use std::path::PathBuf;
use std::time::Duration;

/// Exit statuses of pbx-runstate.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "shown; or set (applied, or kept for the switch's next start)",
    ),
    (
        1,
        "the switch refused the state (no [runstate STATE] in its configuration)",
    ),
    (2, "usage error (not a state name)"),
    (3, "cannot reach the switch or its state directory"),
];

/// Show or set the run state of the Coventry switch (the original pbx-runstate).
#[derive(Debug, Parser)]
#[command(name = "pbx-runstate", version, after_help = exit_help(EXIT_CODES))]
pub struct Args {
    /// The state to set (day, night, holiday, ...); none: show the state in force.
    pub state: Option<String>,
    /// Print nothing; the exit status tells.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds to wait for the switch's answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Runtime directory of the switch.
    #[arg(long, value_name = "DIR", env = "COVENTRY_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// State directory, where the choice is kept while the switch is down.
    #[arg(long, value_name = "DIR", env = "COVENTRY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Run pbx-runstate; returns the exit status.
pub fn main(args: Vec<std::ffi::OsString>) -> u8 {
    let a: Args = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match run(&a) {
        Ok(code) => code,
        Err(e) => {
            report(Tool::Runstate, &e, a.quiet);
            if e.status == Status::Usage {
                2
            } else {
                3
            }
        }
    }
}

fn run(a: &Args) -> Result<u8, Error> {
    let dir = daemon::runtime_dir(a.runtime_dir.as_deref());
    let sdir = daemon::state_dir(a.state_dir.as_deref(), &dir);
    let Some(name) = &a.state else {
        let (name, _) = current(&dir, &sdir)?;
        if !a.quiet {
            println!("{name}");
        }
        return Ok(0);
    };
    if !valid_name(name) {
        return Err(Error::usage(format!(
            "{:?} is no run state name: lower-case letters, digits, - and _",
            display_safe(name)
        )));
    }
    match daemon::live_snapshot(&dir) {
        Ok(_) => {
            let c = Command::RunState {
                name: Some(name.clone()),
            };
            let sent = commands::send(&dir, a.timeout, c)?;
            if sent.outcome.code == ResultCode::Ok {
                Ok(0)
            } else {
                if !a.quiet {
                    eprintln!("pbx-runstate: {}", display_safe(&sent.outcome.text));
                }
                Ok(1)
            }
        }
        Err(e) if e.status == Status::NotRunning => {
            store(&sdir, name)?;
            Ok(0)
        }
        Err(e) => Err(e),
    }
}
