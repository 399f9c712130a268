//! Command-line definitions of pbxctl (also the source of its man page).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Exit statuses of pbxctl and what they mean, in order. The `--help` text and the
/// man page's EXIT STATUS section are both made from (and tested against) this table.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "success"),
    (
        1,
        "the daemon rejected the command or it failed; or another error",
    ),
    (
        2,
        "usage error (bad arguments, line too long for the control FIFO)",
    ),
    (
        3,
        "daemon not running (no state block, pid gone, FIFO not read)",
    ),
    (
        4,
        "timed out waiting for the command result (see --timeout)",
    ),
];

/// The `after_long_help` text of `pbxctl --help`; must list [`EXIT_CODES`].
pub const AFTER_LONG_HELP: &str = "\
Exit status:
  0  success
  1  the daemon rejected the command or it failed; or another error
  2  usage error (bad arguments, line too long for the control FIFO)
  3  daemon not running (no state block, pid gone, FIFO not read)
  4  timed out waiting for the command result (see --timeout)

Environment:
  COVENTRY_RUNTIME_DIR  runtime directory (as --runtime-dir)
  NO_COLOR              when set and not empty: no colour";

/// Control and inspect a running Coventry SIP switch (coventryd).
///
/// pbxctl reads the daemon's state block (registrations, calls, extension states,
/// counters, the event ring) and sends commands through its control FIFO, both in the
/// runtime directory. It never speaks SIP. Output is a table for people, or JSON with
/// --json for scripts; colour is used only on a terminal and never when NO_COLOR is
/// set.
///
/// Commands that change something (message, hangup, release, reload) wait for the
/// daemon's result and exit with a status that tells how it went, so they are safe to
/// use from scripts and cron.
#[derive(Debug, Parser)]
#[command(
    name = "pbxctl",
    version,
    after_long_help = AFTER_LONG_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Options valid with every command.
    #[command(flatten)]
    pub global: GlobalOpts,

    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// Options valid before or after any command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Runtime directory of the daemon, holding the state block and the control FIFO
    /// [default: /run/coventry for root, else $XDG_RUNTIME_DIR/coventry or /tmp/coventry-$UID].
    #[arg(long, value_name = "DIR", env = "COVENTRY_RUNTIME_DIR", global = true)]
    pub runtime_dir: Option<PathBuf>,

    /// Machine-readable output: one JSON object (or array) per command, one object per
    /// line for watch.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for the daemon's result of a command (decimals allowed).
    #[arg(
        long,
        value_name = "SECS",
        default_value = "5",
        value_parser = parse_seconds,
        global = true
    )]
    pub timeout: Duration,
}

/// The commands of pbxctl.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Show the daemon: pid, uptime, dial plan, address, heartbeat, counters.
    ///
    /// Exits with status 3 when the daemon is not running: no state block, its pid is
    /// gone, or its heartbeat is older than 3 seconds (the last known state is still
    /// printed, flagged as stale).
    Status,

    /// List registered contacts: extension, name, contact, source, user agent, expiry.
    Regs {
        /// Show only this extension.
        #[arg(value_name = "EXT")]
        ext: Option<u16>,
    },

    /// List calls: live ones, and those that ended in the last seconds.
    ///
    /// One row per call: its number (from 1000, for hangup), caller, callee as
    /// dialled, state (dialing, ringing with the rings so far, answered, ended), rings,
    /// local start time, duration and, once ended, the outcome with its SIP status
    /// (completed, busy, no-answer, rejected, cancelled, unknown-number,
    /// incomplete-number, unavailable, timed-out, failed). The duration of an answered
    /// call is its talk time; of any other call, the time since it started (until it
    /// ended). The switch keeps ended calls in its table for about 10 seconds. Prints
    /// "no calls" when there are none (still status 0).
    Calls {
        /// Show only calls from or to this extension (as dialled).
        #[arg(value_name = "EXT")]
        ext: Option<u16>,
    },

    /// Show the extension grid: one cell per extension of the dial plan, like a
    /// busy-lamp field.
    ///
    /// Ten cells per row (10-19, 20-29, ... or 100-109, ...), each the extension
    /// number and a letter: r ringing, B busy (in a call), D do not disturb, F
    /// forwarded, R registered and idle, - configured but not registered (offline),
    /// . not configured. When several apply, the first of that list wins. Below the
    /// grid: how many extensions are configured (of the plan's 80 or 600), registered,
    /// ringing, busy, in DND and forwarded; then the legend.
    Exts,

    /// Send a text message to an extension, a group or `all`, and wait for the result.
    ///
    /// The words of TEXT are joined with single spaces. The daemon delivers it only to
    /// contacts registered now; an offline target is a failure (status 1). Put `--`
    /// before text that starts with a hyphen.
    #[command(visible_alias = "msg")]
    Message {
        /// Extension number, group number or `all`.
        #[arg(value_name = "TARGET")]
        target: String,
        /// The text (at most 160 characters).
        #[arg(value_name = "TEXT", required = true, num_args = 1..)]
        text: Vec<String>,
    },

    /// End a call, or every call of an extension, and wait for the result.
    ///
    /// The switch sends BYE to both sides of an answered call and cancels one that
    /// is still ringing. A number with the dial plan's digit count (21, or 215 in the
    /// 3-digit plan) names an extension: all its calls end. Call numbers, as shown by
    /// calls, start at 1000, so they never read as an extension. When nothing
    /// matches, the daemon says so (status 1).
    Hangup {
        /// Call number (1000 and up), or extension number.
        #[arg(value_name = "CALL|EXT")]
        target: String,
    },

    /// Drop every registration of an extension and wait for the result.
    Release {
        /// Extension number.
        #[arg(value_name = "EXT")]
        ext: u16,
    },

    /// Make the daemon re-read its configuration file and wait for the result.
    Reload,

    /// Follow the event ring: one line per event (registrations, calls, messages,
    /// results...).
    ///
    /// Starts at the newest event and prints each new one with its local time; with
    /// --json one JSON object per line (seq, time_ms, kind and the event's fields).
    /// Events the daemon overwrote before pbxctl could read them are reported as
    /// `-- N events lost --` ({"kind":"lost","count":N}). When the daemon stops or
    /// restarts, watch says so and follows the new daemon. Without --count or
    /// --duration it runs until interrupted or its output is closed.
    Watch(WatchArgs),
}

/// Options of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Begin with the oldest event still in the ring (events already overwritten are
    /// reported as lost).
    #[arg(long)]
    pub from_start: bool,

    /// Exit after printing N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Exit after SECS seconds (decimals allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
}

/// Parse a positive number of seconds, decimals allowed (`5`, `0.25`).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 * 365.0 {
        return Err(format!("`{s}`: seconds must be more than 0"));
    }
    Ok(Duration::from_secs_f64(v))
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
    fn help_lists_every_exit_code() {
        for (code, meaning) in EXIT_CODES {
            let line = format!("  {code}  {meaning}");
            assert!(AFTER_LONG_HELP.contains(&line), "missing in --help: {line}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn global_options_go_anywhere() {
        let c = Cli::try_parse_from(["pbxctl", "regs", "21", "--json", "--timeout", "1.5"])
            .expect("parses");
        assert!(c.global.json);
        assert_eq!(c.global.timeout, Duration::from_millis(1500));
        assert!(matches!(c.command, CliCommand::Regs { ext: Some(21) }));
        let c = Cli::try_parse_from(["pbxctl", "message", "21", "hello", "there"]).expect("ok");
        match c.command {
            CliCommand::Message { target, text } => {
                assert_eq!(target, "21");
                assert_eq!(text, vec!["hello", "there"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["pbxctl", "message", "21"]).is_err());
        assert!(Cli::try_parse_from(["pbxctl", "release", "x"]).is_err());
        let c = Cli::try_parse_from(["pbxctl", "calls", "21", "--json"]).expect("ok");
        assert!(matches!(c.command, CliCommand::Calls { ext: Some(21) }));
        let c = Cli::try_parse_from(["pbxctl", "exts"]).expect("ok");
        assert!(matches!(c.command, CliCommand::Exts));
        let c = Cli::try_parse_from(["pbxctl", "hangup", "1234"]).expect("ok");
        assert!(matches!(c.command, CliCommand::Hangup { target } if target == "1234"));
        assert!(Cli::try_parse_from(["pbxctl", "hangup"]).is_err());
    }
}
