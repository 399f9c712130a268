//! Waiting in the event ring for the result of a command we sent.

use crate::error::Error;
use coventry_shared::event::{Event, ResultCode};
use coventry_shared::stateblock::{EventCursor, StateReader};
use std::time::{Duration, Instant};

/// How often the daemon's process is checked while waiting (between, pbxctl sleeps
/// until the daemon wakes it with an event).
const ALIVE_CHECK: Duration = Duration::from_millis(250);
/// Events read per poll call.
const BATCH: usize = 256;

/// The daemon's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The request id.
    pub id: u64,
    /// Result code.
    pub code: ResultCode,
    /// The daemon's text.
    pub text: String,
}

/// Read the ring from `cursor` until a command result with `id` shows up, the
/// daemon goes away (status 3) or `deadline` passes (status 4).
pub fn wait_for_result(
    reader: &StateReader,
    cursor: EventCursor,
    id: u64,
    deadline: Instant,
) -> Result<CommandOutcome, Error> {
    match wait_watching(reader, cursor, id, deadline, |_| {})? {
        Waited::Result(o) => Ok(o),
        Waited::Deadline { lost } => {
            let mut msg = format!("timed out waiting for the result of request #{id}");
            if lost > 0 {
                msg.push_str(&format!(
                    " ({lost} events were overwritten before pbxctl read them; \
                     the result may have been among them)"
                ));
            }
            Err(Error::timeout(msg))
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// The command's result came.
    Result(CommandOutcome),
    /// The deadline passed first; `lost` events were overwritten unread.
    Deadline {
        /// Events lost meanwhile.
        lost: u64,
    },
}

/// Like [`wait_for_result`], handing every event read to `watch` on the way (a
/// message command's receipts come before its result), and telling a passed
/// deadline apart from a daemon gone (status 3).
pub fn wait_watching(
    reader: &StateReader,
    mut cursor: EventCursor,
    id: u64,
    deadline: Instant,
    mut watch: impl FnMut(&Event),
) -> Result<Waited, Error> {
    let mut lost = 0u64;
    let mut last_check = Instant::now();
    loop {
        loop {
            let polled = reader.poll_events(&mut cursor, BATCH);
            lost += polled.lost;
            let n = polled.events.len();
            for rec in polled.events {
                watch(&rec.event);
                if let Event::CommandResult {
                    id: Some(got),
                    code,
                    text,
                } = rec.event
                {
                    if got == id {
                        return Ok(Waited::Result(CommandOutcome { id, code, text }));
                    }
                }
            }
            if n < BATCH {
                break;
            }
        }
        let now = Instant::now();
        if now.duration_since(last_check) >= ALIVE_CHECK {
            last_check = now;
            if !reader.daemon_alive() {
                return Err(Error::not_running(format!(
                    "daemon stopped before answering request #{id}"
                )));
            }
            if reader.replaced() {
                return Err(Error::not_running(format!(
                    "daemon restarted before answering request #{id}; the command may not \
                     have been carried out"
                )));
            }
        }
        if now >= deadline {
            return Ok(Waited::Deadline { lost });
        }
        reader.wait_for_events(
            &cursor,
            ALIVE_CHECK.min(deadline.saturating_duration_since(now)),
        );
    }
}
