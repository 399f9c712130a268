//! What comes into `update` ([`Msg`]) and what goes out of it ([`Effect`]).
//!
//! Keys, the clock, everything read from the state block, the terminal going away
//! and the ending signals arrive as messages;
//! `update` changes the model and answers with effects (a line for the control FIFO,
//! quitting) that the event loop carries out. Nothing else touches the world.

use crate::site::Site;
use coventry_shared::event::EventRecord;
use crossterm::event::KeyEvent;

/// An input to [`crate::model::Model::update`].
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key was pressed.
    Key(KeyEvent),
    /// The terminal changed size (the next draw adapts).
    Resize,
    /// The clock moved on.
    Tick {
        /// Now, ms since the epoch.
        now_ms: u64,
        /// The local offset from UTC, seconds.
        utc_offset_s: i32,
    },
    /// What the console learnt about the daemon.
    Daemon(DaemonMsg),
    /// A new snapshot that differs from the last one.
    Site(Box<Site>),
    /// New events from the ring.
    Events {
        /// The events, oldest first.
        events: Vec<EventRecord>,
        /// Events the daemon overwrote before the console read them.
        lost: u64,
    },
    /// The console must end, whatever it is doing (a prompt, a confirmation, the
    /// help, a command awaiting its result): its terminal is gone or a signal
    /// came.
    End(Ending),
    /// New lines of the open trace (`lost`: messages missed).
    Trace {
        /// One line per SIP message, oldest first.
        lines: Vec<String>,
        /// Messages the console missed.
        lost: u64,
    },
    /// The open trace could not start, or stopped (the reason).
    TraceEnded(String),
    /// A line could not be written to the control FIFO.
    SendFailed {
        /// Its request id.
        id: u64,
        /// Why.
        error: String,
    },
}

/// Why the console ends when the operator did not quit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Its terminal is gone: reading it gave end-of-file or an error (a hang-up:
    /// the SSH link dropped, the tmux session was killed), said in words.
    TerminalGone(String),
    /// An ending signal came (SIGTERM, SIGHUP, SIGINT, SIGQUIT): its number.
    Signal(i32),
}

impl Ending {
    /// The exit status: 1 when the terminal is gone, 128 + the number after a
    /// signal.
    pub fn exit_status(&self) -> u8 {
        match self {
            Ending::TerminalGone(_) => 1,
            Ending::Signal(sig) => crate::signals::exit_status(*sig),
        }
    }
}

/// The daemon's condition as seen through its state block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonMsg {
    /// The state block is open and the daemon alive. `again` when this is not the
    /// first daemon this console saw (it restarted, or came back after being down).
    Up {
        /// Its pid.
        pid: u32,
        /// Not the first connection.
        again: bool,
    },
    /// The daemon's process exists but its heartbeat is older than 3 s.
    Stale {
        /// Its last heartbeat, ms since the epoch.
        heartbeat_ms: u64,
    },
    /// No daemon: no state block, or its process is gone.
    Down {
        /// Why, for the banner.
        reason: String,
    },
}

/// Something for the event loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write this line (newline included) to the control FIFO; on failure answer
    /// with [`Msg::SendFailed`].
    Send {
        /// The request id in the line.
        id: u64,
        /// The line.
        line: String,
    },
    /// Start tracing extension `ext` (a lease, the `trace` command, the ring).
    TraceStart {
        /// The extension.
        ext: u16,
    },
    /// Stop the trace (the lease is let go; the daemon ends it).
    TraceStop,
    /// Clear and repaint the whole terminal (Ctrl-L).
    Repaint,
    /// Leave the console.
    Quit,
}
