//! Command-line definitions of pbxctl (also the source of its man page).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Exit statuses of pbxctl and what they mean, in order. The `--help` text and the
/// man page's EXIT STATUS section are both made from (and tested against) this table.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "success (message: every target has the text)"),
    (
        1,
        "the daemon rejected the command or it failed; or another error \
         (message: no target has the text, and none can get it any more)",
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
        "timed out waiting for the command result (see --timeout) \
         (message: no target had the text by then, some had not answered)",
    ),
    (
        5,
        "message: some targets have the text, others refused it, are offline \
         or had not answered within --timeout; dial: the call is under way, not \
         connected within --timeout",
    ),
];

/// The `after_long_help` text of `pbxctl --help`; must list [`EXIT_CODES`].
pub const AFTER_LONG_HELP: &str = "\
Exit status:
  0  success (message: every target has the text)
  1  the daemon rejected the command or it failed; or another error (message: no target has the text, and none can get it any more)
  2  usage error (bad arguments, line too long for the control FIFO)
  3  daemon not running (no state block, pid gone, FIFO not read)
  4  timed out waiting for the command result (see --timeout) (message: no target had the text by then, some had not answered)
  5  message: some targets have the text, others refused it, are offline or had not answered within --timeout; dial: the call is under way, not connected within --timeout

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
/// Commands that go to the daemon (message, hangup, release, reload, forward, dnd,
/// dial, speed, why) wait for its result and exit with a status that tells how it
/// went, so they are safe to use from scripts and cron.
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
    /// [default: /run/coventry for root or when it exists and you may read it (group
    /// coventry), else $XDG_RUNTIME_DIR/coventry or /tmp/coventry-$UID].
    #[arg(long, value_name = "DIR", env = "COVENTRY_RUNTIME_DIR", global = true)]
    pub runtime_dir: Option<PathBuf>,

    /// Machine-readable output: one JSON object (or array) per command, one object per
    /// line for watch.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing on standard output (for cron and scripts): errors still go
    /// to standard error and the exit status is the same.
    #[arg(short, long, global = true)]
    pub quiet: bool,

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
    /// Show the daemon: pid, uptime, dial plan, address, heartbeat, the upstream
    /// routes, counters, and the extensions with forwards or do not disturb.
    ///
    /// The upstream section lists each `[upstream]` peer with the routes it serves
    /// (default, emergency, sms), its state (connecting, connected, reconnecting,
    /// down) and since when, messages sent and received, connections made, failures,
    /// calls and texts refused with 503 while it was not connected, and the last
    /// error with the next attempt.
    ///
    /// The settings section lists, per extension, do not disturb and the forwards
    /// (always, busy, no-answer) with when they revert by themselves; the switch keeps
    /// one expiry for an extension's forwards, the earliest.
    ///
    /// Exits with status 3 when the daemon is not running: no state block, its pid is
    /// gone, or its heartbeat is older than 3 seconds (the last known state is still
    /// printed, flagged as stale).
    Status,

    /// Check that the switch is healthy, for monitoring and cron: the daemon
    /// runs and every configured upstream route is connected.
    ///
    /// Exits 0 (printing one line, none with --quiet) when all is well; 1 with one
    /// line per problem on standard error (a route connecting, reconnecting or
    /// down, with its last error) otherwise; 3 when the daemon is not running. Fit
    /// for a systemd ExecCondition, a Nagios-style check or `pbxctl -q health ||
    /// alert`.
    Health,

    /// List registered contacts: extension, name, contact, source, user agent, the
    /// digest algorithm it registered with (AUTH), expiry.
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
    /// "no calls" when there are none (still status 0). Live calls come first (oldest
    /// first), then the ended ones (last ended first).
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

    /// Send a text message to an extension, a group or `all`, and report each
    /// target's receipt within --timeout.
    ///
    /// The words of TEXT are joined with single spaces. The daemon delivers it only to
    /// phones registered now: `all` means every extension registered now, a group's
    /// members that are not are reported offline. pbxctl prints one line (`all:
    /// delivered to 2 of 3 registered now, 1 not answered yet`) and, for several
    /// targets, a table of receipts: delivered, refused (with the phone's status),
    /// no-answer (the switch gave up after 32 s), offline, or waiting (no answer yet
    /// when --timeout ran out: pbxctl returns then, and later outcomes still arrive as
    /// events in `pbxctl watch`). The exit status tells a script how it went: 0 every
    /// target has it, 5 some do, 1 none does, 4 none yet. Put `--` before text that
    /// starts with a hyphen.
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

    /// Set or clear a call forward of an extension and wait for the result.
    ///
    /// Without --busy or --no-answer it is the forward of every call ("always"); with
    /// --busy it applies when the extension is busy (or on do not disturb), with
    /// --no-answer when it does not answer within its rings. `off` clears that forward.
    /// The target is an extension, a group or a number. The switch refuses a forward
    /// that would loop (21 to 35 to 21, or a chain too long) with a clear message
    /// (status 1). With --until or --for the switch reverts the forward by itself at
    /// that time; the extension's forwards share one expiry. Forwards survive a restart
    /// of the switch and show in status and exts.
    #[command(visible_alias = "fwd")]
    Forward {
        /// Extension whose calls are forwarded.
        #[arg(value_name = "EXT")]
        ext: u16,
        /// Where calls go: extension, group or number; `off` clears the forward.
        #[arg(value_name = "TARGET|off")]
        target: String,
        /// Forward only when the extension is busy (or on do not disturb).
        #[arg(long, conflicts_with = "no_answer")]
        busy: bool,
        /// Forward only when the extension does not answer within its rings.
        #[arg(long)]
        no_answer: bool,
        /// How long it lasts.
        #[command(flatten)]
        expiry: ExpiryArgs,
    },

    /// Switch do not disturb of an extension on or off and wait for the result.
    ///
    /// Callers of an extension on do not disturb get busy, or its forward-on-busy
    /// target. With --until or --for the switch switches it off by itself at that time.
    /// DND survives a restart of the switch and shows in status and exts.
    Dnd {
        /// Extension.
        #[arg(value_name = "EXT")]
        ext: u16,
        /// `on` or `off`.
        #[arg(value_name = "on|off", ignore_case = true)]
        state: OnOff,
        /// How long it lasts.
        #[command(flatten)]
        expiry: ExpiryArgs,
    },

    /// Click-to-dial: ring an extension and, when it answers, connect it to a target.
    ///
    /// The switch rings EXT first; when it answers, the switch calls TARGET and joins
    /// the two (RFC 3725). TARGET is an extension, a speed dial, or a number
    /// outside, reached through the upstream. pbxctl waits until the two are
    /// connected (status 0) or the call failed (status 1), or --timeout: then it
    /// says where the call is (calling EXT, EXT rings, calling TARGET, TARGET rings)
    /// and exits with status 5 while the call goes on (calls and watch show the rest).
    #[command(visible_alias = "call")]
    Dial {
        /// The extension rung first (usually the one at your desk).
        #[arg(value_name = "EXT")]
        ext: u16,
        /// What it is connected to: extension, group or number.
        #[arg(value_name = "TARGET")]
        target: String,
    },

    /// List the speed dials, or set or clear one and wait for the result.
    ///
    /// A speed dial is a short code (digits, * and #) that the switch dials as its
    /// target. Without arguments, speed lists the speed dials the switch follows now,
    /// in code order: the code, what it dials, and where that comes from (`config`:
    /// the [speed] section of coventry.conf; `set`: set with pbxctl speed, which takes
    /// precedence over the configuration; `cleared`: a configured code switched off
    /// with `pbxctl speed CODE off`). With CODE and TARGET it sets one; `off` clears
    /// it. Speed dials set here are kept by the switch across restarts.
    Speed {
        /// The short code (digits, * and #).
        #[arg(value_name = "CODE", requires = "target")]
        code: Option<String>,
        /// What it dials; `off` clears the code.
        #[arg(value_name = "TARGET|off")]
        target: Option<String>,
    },

    /// Manage extensions in coventry.conf: add one with a new secret, remove one,
    /// or give one a new secret; then have the daemon reload.
    ///
    /// The configuration file stays the one source of truth: pbxctl edits the
    /// extension's section in place, keeping every other line (comments, blank
    /// lines, spacing, line endings) as it was; checks the result with the
    /// daemon's own parser; writes it as a new file with the old one's mode,
    /// owner and group, renamed into place; and has the running daemon reload it
    /// (without a daemon running, the change applies at its start). A new secret
    /// (16 letters and digits from the system's random source) is printed once on
    /// standard output as `secret: ...`, and kept nowhere but in the file.
    ///
    /// Refused, with the file unchanged (status 1): a file this user may not
    /// write, or without any write permission (made read-only on purpose: even
    /// root is refused); a number outside the dial plan; adding an extension that
    /// is configured, or removing or changing one that is not; an edit the parser
    /// would refuse (a group still naming a removed extension); a file whose
    /// extensions are not the running daemon's (edited by hand and not reloaded
    /// yet, or not the file the daemon reads).
    ///
    /// A file without extension sections (such as the packaged one) keeps the
    /// built-in extensions 10-19, whose secrets the daemon generated into the
    /// `secrets` file of its state directory. The first `ext add` ends that:
    /// with --keep-builtin it first copies 10-19 with their secrets into the file
    /// (their phones stay registered), with --drop-builtin they go; without
    /// either it is refused. Removing the last extension is refused likewise.
    Ext(ExtArgs),

    /// Explain where a call to an extension or number would go right now, and why.
    ///
    /// The switch answers from its live state: registered contacts, the forward chain,
    /// do not disturb, busy, coverage, and the digest the extension is challenged with
    /// (and what its registered phones answered); for a number that is not local,
    /// the route it takes (the building, in a building of switches) and whether
    /// that link is up. pbxctl prints the explanation one step per line (with
    /// --json, the steps and the conclusion).
    Why {
        /// Extension, group, speed dial or number, as a phone would dial it.
        #[arg(value_name = "NUMBER")]
        number: String,
    },

    /// Show the run state in force (day, night, holiday...: the [runstate NAME]
    /// sections of coventry.conf), or put NAME in force.
    ///
    /// With the switch running it applies at once (every forward, do not disturb,
    /// coverage and group the state names) and is kept for the next start. With the
    /// switch down the choice is written to its state directory and applies when
    /// it starts, so a crontab line works either way. `day` is always known: the
    /// configuration as it is, without any state's changes.
    Runstate {
        /// The run state to put in force.
        #[arg(value_name = "NAME")]
        name: Option<String>,
        /// The daemon's state directory (used while it is down) [default: the
        /// one the daemon followed publishes in its state block; else
        /// /var/lib/coventry for root or when it exists and you may read it,
        /// else $XDG_STATE_HOME/coventry or ~/.local/state/coventry].
        #[arg(long, value_name = "DIR", env = "COVENTRY_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },

    /// List the call records the daemon keeps in its state directory, oldest first:
    /// call number, start, caller, number dialled, who answered, outcome, SIP status,
    /// ring and talk time, route (local, inbound, upstream, emergency, feature,
    /// click-to-dial) and the forwards followed.
    ///
    /// Reads the records files (`records.jsonl` and its rotated copies) directly, so
    /// it works while the daemon is down; the daemon's group may read them. With
    /// --json a JSON array of record objects, as they are stored. Attempts that
    /// reached no one (unknown numbers, busy or unregistered lines, limits) are
    /// kept apart, so that they cannot rotate the calls away: --attempts lists
    /// them.
    Records {
        /// List the attempts that reached no one (`attempts.jsonl`) instead.
        #[arg(long)]
        attempts: bool,
        /// Only calls this extension or number made, was dialled on, answered or
        /// forwarded.
        #[arg(long, value_name = "EXT")]
        ext: Option<String>,
        /// Only calls since then: today, yesterday, 90m, 12h, 2d, 2026-12-02 or
        /// "2026-12-02 18:00" (local time).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only calls with this outcome (completed, busy, no-answer, rejected,
        /// cancelled, unknown-number, incomplete-number, unavailable, timed-out,
        /// failed).
        #[arg(long, value_name = "OUTCOME")]
        outcome: Option<String>,
        /// Only the last N matching records.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
        /// The daemon's state directory [default: the one the daemon followed
        /// publishes in its state block; else /var/lib/coventry for root or when
        /// it exists and you may read it, else $XDG_STATE_HOME/coventry or
        /// ~/.local/state/coventry].
        #[arg(long, value_name = "DIR", env = "COVENTRY_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },

    /// Follow the event ring: one line per event (registrations, calls, messages,
    /// results...).
    ///
    /// Starts at the newest event and prints each new one with its local time; with
    /// --json one JSON object per line (seq, time_ms, kind and the event's fields).
    /// Events the daemon overwrote before pbxctl could read them are reported as
    /// `-- N events lost --` ({"kind":"lost","count":N}). When the daemon stops or
    /// restarts, watch says so and follows the new daemon. Without --count or
    /// --duration it runs until a signal ends it or its output is closed (the
    /// pipe's reader leaves, the terminal hangs up), which it notices at once,
    /// also when no event comes; a closed output ends it quietly with status 0.
    Watch(WatchArgs),

    /// Show the SIP messages the switch receives and sends, as they go: for one
    /// extension, one address, or all.
    ///
    /// TARGET is an extension number (the messages to and from the addresses its
    /// contacts registered from, and those whose From, To or Request-URI user is
    /// that number), an IP address or IP:PORT (the messages to and from it), or
    /// `all` (the default). One line per message: local time, `<-` received from
    /// or `->` sent to the peer, the peer, transport, method or status, the start
    /// of the Call-ID and the CSeq; -v adds the whole message, as it came on the
    /// wire (UDP or TCP) or went out. Digest responses and other credentials are
    /// always masked by the daemon; a text's words are shown only with
    /// `[security] show_texts = yes`, as in watch. The switch copies nothing while
    /// nobody traces; pbxctl holds a lease (a lock on the state block) that ends
    /// with it however it ends, and the daemon then stops within a tenth of a
    /// second. Messages pbxctl fell too far behind to read are reported as `-- N
    /// messages lost --`. When the daemon stops or restarts, trace says so on
    /// stderr (--json: {"kind":"daemon-stopped"} and {"kind":"daemon-restarted"}
    /// objects), waits for it and traces again on the new daemon with a new lease.
    /// Runs until --count, --duration, a signal, or its output is closed; status 3
    /// when no daemon runs at the start. Root or the daemon's group only, like
    /// everything else here.
    Trace(TraceArgs),

    /// Print the words a shell completes from the running switch, one a line
    /// (nothing when it is not running): used by the completion scripts.
    #[command(hide = true)]
    Complete {
        /// What to list.
        #[arg(value_enum)]
        kind: CompleteKind,
    },

    /// Print the shell completion script of pbxctl for SHELL (bash, zsh, fish,
    /// elvish, powershell) to standard output.
    ///
    /// With bash, zsh and fish, pbxctl's script also completes the running switch's
    /// extension numbers (forward, dnd, why...), message targets (extensions,
    /// groups, all) and run-state names, asking `pbxctl complete` as you type.
    ///
    /// The Debian package installs them where the shells look; by hand, for
    /// example: `pbxctl completions bash > ~/.local/share/bash-completion/completions/pbxctl`.
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
        /// The script for this program instead: pbx-message, pbx-registry or
        /// pbx-runstate (the original utilities pbxctl also is).
        #[arg(long, value_name = "NAME", value_parser = ["pbxctl", "pbx-message", "pbx-registry", "pbx-runstate"], default_value = "pbxctl")]
        program: String,
    },
}

/// Options and commands of `ext`.
#[derive(Debug, Args)]
pub struct ExtArgs {
    /// The configuration file the daemon reads [default: /etc/coventry.conf].
    #[arg(long, value_name = "FILE", env = "COVENTRY_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// The daemon's state directory, for --keep-builtin's secrets [default: the
    /// one the daemon publishes in its state block; else as for records].
    #[arg(long, value_name = "DIR", env = "COVENTRY_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub action: ExtCommand,
}

/// The commands of `ext`.
#[derive(Debug, Subcommand)]
pub enum ExtCommand {
    /// Add an extension with a new secret (printed once) and reload.
    Add {
        /// Extension number (of the dial plan).
        #[arg(value_name = "EXT")]
        ext: u16,
        /// Its display name (`display =`), shown to the phones it calls.
        #[arg(long, value_name = "NAME")]
        display: Option<String>,
        /// When the file has no extension sections: copy the built-in extensions
        /// 10-19 with their secrets into it first.
        #[arg(long, conflicts_with = "drop_builtin")]
        keep_builtin: bool,
        /// When the file has no extension sections: let the built-in extensions go.
        #[arg(long)]
        drop_builtin: bool,
    },
    /// Remove an extension's section and reload (its phones are unregistered).
    #[command(visible_alias = "rm")]
    Remove {
        /// Extension number.
        #[arg(value_name = "EXT")]
        ext: u16,
    },
    /// Give an extension a new secret (printed once) and reload: its phones
    /// need the new one at their next registration.
    Secret {
        /// Extension number.
        #[arg(value_name = "EXT")]
        ext: u16,
    },
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Switch it on.
    On,
    /// Switch it off.
    Off,
}

/// When a setting reverts by itself: `--until HH:MM` or `--for DURATION`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExpiryArgs {
    /// Revert at this local time today, or tomorrow when it has already passed
    /// (24-hour HH:MM).
    #[arg(long, value_name = "HH:MM", value_parser = parse_clock, conflicts_with = "for_")]
    pub until: Option<chrono::NaiveTime>,

    /// Revert after this long: a number with a unit, or several (90s, 30m, 2h, 1h30m,
    /// 1d).
    #[arg(long = "for", id = "for_", value_name = "DURATION", value_parser = parse_duration)]
    pub for_: Option<Duration>,
}

impl ExpiryArgs {
    /// Whether an expiry was given.
    pub fn is_set(&self) -> bool {
        self.until.is_some() || self.for_.is_some()
    }
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

/// Options of `trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// An extension number, an IP address, IP:PORT, or `all`.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,

    /// Print each message whole (credentials masked) after its line.
    #[arg(short, long)]
    pub verbose: bool,

    /// Exit after printing N messages.
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

/// Parse a 24-hour local time of day, `HH:MM` (`17:00`, `7:30`).
pub fn parse_clock(s: &str) -> Result<chrono::NaiveTime, String> {
    let bad = || format!("`{s}` is not a time of day as HH:MM (e.g. 17:00)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !all_digits(h) || !all_digits(m) {
        return Err(bad());
    }
    let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    chrono::NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

/// Longest `--for`: a year.
const MAX_FOR_SECS: u64 = 366 * 86_400;

/// Parse a duration as numbers with units, largest first, each unit at most once:
/// `90s`, `30m`, `2h`, `1h30m`, `1d12h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration like 90s, 30m, 2h or 1h30m");
    let t = s.trim().to_ascii_lowercase();
    let units = [('d', 86_400u64), ('h', 3600), ('m', 60), ('s', 1)];
    let mut next_unit = 0;
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let i = units.iter().position(|(u, _)| *u == c).ok_or_else(bad)?;
        if num.is_empty() || num.len() > 9 || i < next_unit {
            return Err(bad());
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(units[i].1));
        next_unit = i + 1;
        num.clear();
    }
    if !num.is_empty() || next_unit == 0 {
        return Err(bad());
    }
    if total == 0 {
        return Err(format!("`{s}`: the duration must be more than 0"));
    }
    if total > MAX_FOR_SECS {
        return Err(format!("`{s}`: at most 366 days"));
    }
    Ok(Duration::from_secs(total))
}

/// What `pbxctl complete` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompleteKind {
    /// The configured extensions.
    Exts,
    /// The configured groups.
    Groups,
    /// The run states the configuration knows.
    Runstates,
    /// What a text may go to: extensions, groups and `all`.
    Targets,
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
    fn durations() {
        let d = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(d("90s"), Ok(90));
        assert_eq!(d("30m"), Ok(1800));
        assert_eq!(d("2h"), Ok(7200));
        assert_eq!(d("1h30m"), Ok(5400));
        assert_eq!(d("1H30M15S"), Ok(5415));
        assert_eq!(d("1d12h"), Ok(129_600));
        for bad in [
            "", "10", "h", "1x", "30m2h", "1h1h", "0s", "0h0m", "1h 30m", "-1h", "400d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clock_times() {
        let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).expect("time");
        assert_eq!(parse_clock("17:00"), Ok(t(17, 0)));
        assert_eq!(parse_clock("7:05"), Ok(t(7, 5)));
        assert_eq!(parse_clock("00:00"), Ok(t(0, 0)));
        for bad in [
            "24:00", "12:60", "12", "12:5", "1200", "+1:00", "17:00:00", "5pm", "",
        ] {
            assert!(parse_clock(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn feature_commands_parse() {
        let c = Cli::try_parse_from(["pbxctl", "forward", "21", "35", "--busy", "--for", "2h"])
            .expect("ok");
        match c.command {
            CliCommand::Forward {
                ext: 21,
                target,
                busy: true,
                no_answer: false,
                expiry,
            } => {
                assert_eq!(target, "35");
                assert_eq!(expiry.for_, Some(Duration::from_secs(7200)));
                assert!(expiry.until.is_none() && expiry.is_set());
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from(["pbxctl", "dnd", "21", "on", "--until", "17:30"]).expect("ok");
        assert!(matches!(
            c.command,
            CliCommand::Dnd { ext: 21, state: OnOff::On, expiry }
                if expiry.until == chrono::NaiveTime::from_hms_opt(17, 30, 0)
        ));
        for bad in [
            &["pbxctl", "forward", "21", "35", "--busy", "--no-answer"][..],
            &[
                "pbxctl", "forward", "21", "35", "--until", "17:00", "--for", "1h",
            ],
            &["pbxctl", "dnd", "21", "perhaps"],
            &["pbxctl", "speed", "*7"],
            &["pbxctl", "why"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ext_commands_parse() {
        let c = Cli::try_parse_from(["pbxctl", "ext", "add", "23", "--display", "Front desk"])
            .expect("ok");
        match c.command {
            CliCommand::Ext(ExtArgs {
                action: ExtCommand::Add {
                    ext: 23, display, ..
                },
                ..
            }) => assert_eq!(display.as_deref(), Some("Front desk")),
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from(["pbxctl", "ext", "secret", "23", "--config", "/x.conf"])
            .expect("ok");
        assert!(matches!(
            c.command,
            CliCommand::Ext(ExtArgs { config: Some(p), action: ExtCommand::Secret { ext: 23 }, .. })
                if p == std::path::Path::new("/x.conf")
        ));
        for bad in [
            &["pbxctl", "ext"][..],
            &["pbxctl", "ext", "add"],
            &["pbxctl", "ext", "add", "x"],
            &[
                "pbxctl",
                "ext",
                "add",
                "23",
                "--keep-builtin",
                "--drop-builtin",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn speed_lists_without_arguments() {
        let c = Cli::try_parse_from(["pbxctl", "speed"]).expect("ok");
        assert!(matches!(
            c.command,
            CliCommand::Speed {
                code: None,
                target: None
            }
        ));
        let c = Cli::try_parse_from(["pbxctl", "speed", "*7", "off"]).expect("ok");
        assert!(matches!(
            c.command,
            CliCommand::Speed {
                code: Some(_),
                target: Some(_)
            }
        ));
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
