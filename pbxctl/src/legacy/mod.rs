//! The original Coventry utilities as personalities of pbxctl: installed as links
//! named `pbx-message`, `pbx-registry` and `pbx-runstate`, pbxctl behaves as each,
//! with its options and exit codes, so that existing sites' scripts keep working.
//! Each speaks to the switch the way pbxctl does (state block, control FIFO).

pub mod message;
pub mod registry;
pub mod runstate;

use crate::error::{Error, Status};
use std::ffi::OsStr;
use std::path::Path;

/// One of the original tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `pbx-message`: send a text.
    Message,
    /// `pbx-registry`: an extension's registration and settings.
    Registry,
    /// `pbx-runstate`: show or set the run state.
    Runstate,
}

impl Tool {
    /// Every tool, in the order of their names.
    pub const ALL: [Tool; 3] = [Tool::Message, Tool::Registry, Tool::Runstate];

    /// The command name (and link name).
    pub fn name(self) -> &'static str {
        match self {
            Tool::Message => "pbx-message",
            Tool::Registry => "pbx-registry",
            Tool::Runstate => "pbx-runstate",
        }
    }

    /// The tool a program invoked as `argv0` is, if any (by its file name).
    pub fn of_argv0(argv0: &OsStr) -> Option<Tool> {
        let name = Path::new(argv0).file_name()?.to_str()?;
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Its exit statuses and what they mean (documented in its man page).
    pub fn exit_codes(self) -> &'static [(u8, &'static str)] {
        match self {
            Tool::Message => message::EXIT_CODES,
            Tool::Registry => registry::EXIT_CODES,
            Tool::Runstate => runstate::EXIT_CODES,
        }
    }

    /// Run it on `args` (argv, the program name first); returns the exit status.
    /// The tool's command line, as clap knows it (for its completions).
    pub fn command(self) -> clap::Command {
        use clap::CommandFactory;
        match self {
            Tool::Message => message::Args::command(),
            Tool::Registry => registry::Args::command(),
            Tool::Runstate => runstate::Args::command(),
        }
    }

    /// Run the tool on `args` and return its exit status.
    pub fn main(self, args: Vec<std::ffi::OsString>) -> u8 {
        match self {
            Tool::Message => message::main(args),
            Tool::Registry => registry::main(args),
            Tool::Runstate => runstate::main(args),
        }
    }
}

/// The `Exit status:` text of a tool's `--help`, from its table.
pub fn exit_help(codes: &[(u8, &str)]) -> String {
    let mut s = String::from("Exit status:\n");
    for (c, what) in codes {
        s.push_str(&format!("  {c:>2}  {what}\n"));
    }
    s
}

/// Parse `args` with clap for a tool: `--help`/`--version` print and end with 0,
/// a usage error prints and ends with 2 (`Err(code)`).
pub fn parse<T: clap::Parser>(args: Vec<std::ffi::OsString>) -> Result<T, u8> {
    T::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            2
        } else {
            0
        }
    })
}

/// Print a pbxctl error as `NAME: message` unless quiet.
pub fn report(tool: Tool, e: &Error, quiet: bool) {
    if let (Some(m), false) = (&e.message, quiet) {
        eprintln!("{}: {m}", tool.name());
    }
}

/// Whether `e` means the switch is not there to ask (not running, or no answer).
pub fn offline(e: &Error) -> bool {
    matches!(e.status, Status::NotRunning | Status::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personalities_by_file_name() {
        assert_eq!(
            Tool::of_argv0(OsStr::new("/usr/bin/pbx-message")),
            Some(Tool::Message)
        );
        assert_eq!(
            Tool::of_argv0(OsStr::new("pbx-runstate")),
            Some(Tool::Runstate)
        );
        assert_eq!(
            Tool::of_argv0(OsStr::new("./pbx-registry")),
            Some(Tool::Registry)
        );
        assert_eq!(Tool::of_argv0(OsStr::new("pbxctl")), None);
        assert_eq!(Tool::of_argv0(OsStr::new("pbx-messages")), None);
    }

    #[test]
    fn exit_help_lists_every_code() {
        for t in Tool::ALL {
            let h = exit_help(t.exit_codes());
            for (c, what) in t.exit_codes() {
                assert!(h.contains(&format!("{c:>2}  {what}")), "{h}");
            }
        }
    }
}
