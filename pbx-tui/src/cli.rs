//! Command-line definition of pbx-tui (also the source of its man page).

use clap::Parser;
use std::path::PathBuf;

/// The `after_long_help` text of `pbx-tui --help`.
pub const AFTER_LONG_HELP: &str = "\
Keys: ? shows every key. Arrows or hjkl move, digits jump to an extension; f forward,
d do-not-disturb, m message, M message all, c dial, x hang up, r release; : takes the
same commands as pbxctl; / filters the log; q quits.

Environment:
  COVENTRY_RUNTIME_DIR  runtime directory (as --runtime-dir)
  NO_COLOR              when set and not empty: no colour (as --no-color)";

/// The live attendant console of the Coventry SIP switch (coventryd).
///
/// pbx-tui shows the whole switch on one screen and keeps it current: the extension
/// grid (every extension of the dial plan as a cell, its state shown by a letter and
/// a colour), the selected extension's registrations, forwards and DND, the live
/// calls with their ring counts and durations, and the message and event log. One
/// key acts on the selected extension (forward, DND, message, click-to-dial, hang
/// up, release), and `:` takes the same commands as pbxctl. Every action shows the
/// daemon's answer on the status line; hanging up, releasing and messaging everybody
/// ask first.
///
/// Like pbxctl it reads only the daemon's state block and writes only its control
/// FIFO, both in the runtime directory. It fits an 80x24 terminal and uses more room
/// when there is more; it redraws only what changed, so it is cheap over a slow SSH
/// link. When the daemon stops, restarts or stops answering, a banner says so and
/// the console follows the new daemon by itself.
#[derive(Debug, Parser)]
#[command(name = "pbx-tui", version, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// Runtime directory of the daemon, holding the state block and the control FIFO
    /// [default: /run/coventry for root or when it exists and you may read it (group
    /// coventry), else $XDG_RUNTIME_DIR/coventry or /tmp/coventry-$UID].
    #[arg(long, value_name = "DIR", env = "COVENTRY_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Watch only: every action (forward, DND, message, dial, hang up, release, the
    /// command line) is refused, and nothing is ever written to the control FIFO.
    #[arg(long)]
    pub readonly: bool,

    /// No colour: states are shown by their letters, the selection in reverse video
    /// (also when NO_COLOR is set and not empty).
    #[arg(long)]
    pub no_color: bool,

    /// How often the state block is looked at, in milliseconds (50-2000). Events
    /// (registrations, calls, texts, command results) wake the console at once;
    /// other changes (counters, expiry times) appear at most this long after they
    /// happen.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 150,
        value_parser = clap::value_parser!(u64).range(50..=2000)
    )]
    pub poll_ms: u64,
}

impl Cli {
    /// Whether to draw with colours: not with --no-color, a non-empty NO_COLOR, or
    /// TERM=dumb.
    pub fn color(&self) -> bool {
        let env_set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        !(self.no_color
            || env_set("NO_COLOR")
            || std::env::var_os("TERM").is_some_and(|t| t == "dumb"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options() {
        let c = Cli::try_parse_from(["pbx-tui", "--readonly", "--poll-ms", "100"]).expect("ok");
        assert!(c.readonly);
        assert_eq!(c.poll_ms, 100);
        assert!(Cli::try_parse_from(["pbx-tui", "--poll-ms", "5"]).is_err());
        assert!(Cli::try_parse_from(["pbx-tui", "extra"]).is_err());
        let c = Cli::try_parse_from(["pbx-tui", "--no-color"]).expect("ok");
        assert!(!c.color());
    }
}
