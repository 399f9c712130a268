//! The console's whole state (the "model" of The Elm Architecture). `update`
//! (in [`crate::update`]) is the only code that changes it; `view` (in
//! [`crate::view`]) only reads it.

use crate::line_edit::LineEdit;
use crate::log::EventLog;
use crate::msg::Ending;
use crate::site::Site;
use coventry_shared::control::Command;
use coventry_shared::event::CallPhase;
use std::collections::{BTreeMap, HashMap};

/// How the console starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Refuse every action (`--readonly`).
    pub readonly: bool,
    /// Draw with colours (off with `NO_COLOR` or `--no-color`).
    pub color: bool,
    /// The time now, ms since the epoch.
    pub now_ms: u64,
    /// The local offset from UTC, seconds.
    pub utc_offset_s: i32,
    /// The request id of the first command; the next ones count up from it.
    pub first_request_id: u64,
    /// The runtime directory, for messages.
    pub runtime_dir: String,
}

/// The daemon's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not known yet (before the first look at the state block).
    Connecting,
    /// Alive with a fresh heartbeat.
    Up {
        /// Its pid.
        pid: u32,
    },
    /// Its process exists but the heartbeat is old.
    Stale {
        /// The last heartbeat, ms since the epoch.
        heartbeat_ms: u64,
    },
    /// Not running.
    Down {
        /// Why.
        reason: String,
        /// Since when, ms since the epoch.
        since_ms: u64,
    },
}

/// How the status line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Neutral information.
    Info,
    /// A command was sent; its result is awaited.
    Waiting,
    /// A command succeeded.
    Good,
    /// Something failed or was refused.
    Bad,
}

/// The status line: what the last action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// How to draw it.
    pub tone: Tone,
    /// What to say.
    pub text: String,
}

/// A command sent to the daemon whose result has not come back yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The command as sent (without the id).
    pub command: String,
    /// When it was sent, ms since the epoch.
    pub sent_ms: u64,
    /// A message's receipts as they come (none for other commands).
    pub delivery: Option<coventry_shared::client::receipts::Delivery>,
}

/// What a prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// Where to forward extension `ext` (`TARGET [always|busy|noanswer]` or `off`).
    Forward {
        /// The extension.
        ext: u16,
    },
    /// The text of a message to `target` (an extension or `all`).
    Message {
        /// Where it goes.
        target: String,
    },
    /// What to connect extension `ext` to (click-to-dial).
    Dial {
        /// The extension rung first.
        ext: u16,
    },
}

/// A prompt on the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// What is asked.
    pub ask: Ask,
    /// The answer being typed.
    pub input: LineEdit,
    /// Why the last answer was refused.
    pub error: Option<String>,
}

/// A destructive command waiting for `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// The question.
    pub question: String,
    /// What is done on `y`.
    pub command: Command,
}

/// The `:` command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// What is typed.
    pub input: LineEdit,
    /// Completion candidates of the last Tab (more than one).
    pub candidates: Vec<String>,
    /// Why the last line was refused.
    pub error: Option<String>,
}

/// What the keys do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Moving around the grid; one-key actions.
    Normal,
    /// Digits typed to jump to an extension.
    Jump(String),
    /// An action asks for its argument.
    Prompt(Prompt),
    /// The `:` command line.
    Command(CommandLine),
    /// Typing the log filter (`/`); it applies as it is typed.
    Filter {
        /// The filter being typed.
        input: LineEdit,
        /// The filter before, restored by Esc.
        previous: String,
    },
    /// A destructive action asks for confirmation.
    Confirm(Confirm),
    /// The help screen, scrolled by `scroll` lines.
    Help {
        /// First line shown.
        scroll: u16,
    },
}

/// The console's state.
#[derive(Debug, Clone)]
pub struct Model {
    /// Now, ms since the epoch (moved on by ticks).
    pub now_ms: u64,
    /// The local offset from UTC, seconds.
    pub utc_offset_s: i32,
    /// Actions are refused.
    pub readonly: bool,
    /// Draw with colours.
    pub color: bool,
    /// The runtime directory, for messages.
    pub runtime_dir: String,
    /// The daemon's condition.
    pub link: Link,
    /// The last snapshot (kept while the daemon is down).
    pub site: Option<Site>,
    /// The selected extension (0 before the first snapshot).
    pub selected: u16,
    /// What the keys do now.
    pub mode: Mode,
    /// The message and event log.
    pub log: EventLog,
    /// The status line.
    pub status: Option<Status>,
    /// Commands sent whose results are awaited, by request id.
    pub pending: BTreeMap<u64, Pending>,
    /// The id of the next command.
    pub next_id: u64,
    /// The last phase logged per call (ring updates are not logged).
    pub call_phases: HashMap<u32, CallPhase>,
    /// Leave at the next turn of the loop.
    pub quit: bool,
    /// Why the console ends, when the operator did not quit (the first reason).
    pub ending: Option<Ending>,
    /// Something visible changed since the last draw.
    pub dirty: bool,
    /// The live SIP trace shown instead of the log (`T`), if one is open.
    pub trace: Option<TracePane>,
}

/// Most trace lines kept on screen (the oldest go first).
pub const TRACE_LINES: usize = 500;

/// The live SIP trace of one extension, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracePane {
    /// The extension traced.
    pub ext: u16,
    /// One line per SIP message, oldest first, at most [`TRACE_LINES`].
    pub lines: std::collections::VecDeque<String>,
    /// Messages the console missed (it fell behind the daemon).
    pub lost: u64,
    /// Why the trace stopped, once it has.
    pub ended: Option<String>,
}

impl Model {
    /// A console that has not seen the daemon yet.
    pub fn new(o: Options) -> Model {
        Model {
            now_ms: o.now_ms,
            utc_offset_s: o.utc_offset_s,
            readonly: o.readonly,
            color: o.color,
            runtime_dir: o.runtime_dir,
            link: Link::Connecting,
            site: None,
            selected: 0,
            mode: Mode::Normal,
            log: EventLog::new(),
            status: None,
            pending: BTreeMap::new(),
            next_id: o.first_request_id.max(1),
            call_phases: HashMap::new(),
            quit: false,
            ending: None,
            dirty: true,
            trace: None,
        }
    }

    /// The selected extension's entry, if there is a snapshot.
    pub fn selected_ext(&self) -> Option<&coventry_shared::client::view::ExtView> {
        self.site.as_ref().and_then(|s| s.ext(self.selected))
    }

    /// Whether the view needs drawing.
    pub fn needs_draw(&self) -> bool {
        self.dirty
    }

    /// Note that the view was drawn.
    pub fn drawn(&mut self) {
        self.dirty = false;
    }
}
