//! The console's side of a live SIP trace (I/O, used by the event loop only): a
//! [`TraceSession`] — the lease taken on the state block, the `trace` line sent
//! on the control FIFO, the ring's records — turned into screen lines, and taken
//! up again on the new switch when the switch restarts (a lease goes with the
//! daemon it was taken on). Letting go of the [`TraceLink`] lets go of the
//! lease, and the switch ends the trace by itself.

use crate::clock;
use coventry_shared::client::send::{checked_line, send_line, SendError};
use coventry_shared::client::trace::{Health, TraceSession};
use coventry_shared::runtime;
use coventry_shared::stateblock::trace::SLOTS;
use coventry_shared::trace::{Filter, Record};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the switch gets to show the trace it was asked for.
const START_PATIENCE: Duration = Duration::from_secs(5);
/// How often a switch that went away is looked for.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// Most records read in one step of a turn of the loop.
const BATCH: usize = 256;

/// Where an open trace is.
enum Phase {
    /// The `trace` line went out at `asked`; the switch has not shown the lease.
    Asked {
        session: TraceSession,
        asked: Instant,
    },
    /// The switch traces for the lease.
    Tracing(TraceSession),
    /// The switch went away; a new one is looked for (last look at `looked`).
    Waiting { looked: Option<Instant> },
}

/// One open trace.
pub struct TraceLink {
    dir: PathBuf,
    filter: Filter,
    /// How long a full control FIFO is waited for.
    patience: Duration,
    phase: Phase,
    /// The trace was taken up again on a new switch: said once it runs.
    resumed: bool,
}

/// One screen line for a traced message: time, arrow, peer, transport, what,
/// Call-ID and CSeq.
pub fn line_of(r: &Record, utc_offset_s: i32) -> String {
    let call_id: String = r.call_id.chars().take(16).collect();
    let mut line = format!(
        "{} {} {} {} {} {} {} {}",
        clock::time_of_day(r.time_ms, utc_offset_s),
        r.dir.arrow(),
        r.peer,
        r.transport.name(),
        r.what(),
        call_id,
        r.cseq,
        r.cseq_method
    );
    line.retain(|c| !c.is_control());
    line
}

/// Take a lease on the switch in `dir` and send the line that asks it to trace
/// `filter` (waiting up to `patience` for room in the FIFO); `Ok(None)` when no
/// switch runs.
fn ask(dir: &Path, filter: Filter, patience: Duration) -> Result<Option<TraceSession>, String> {
    let session = match TraceSession::begin(dir, filter) {
        Ok(s) => s,
        Err(e) if e.not_running() => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let line = checked_line(&session.request(None)).map_err(|e| e.to_string())?;
    match send_line(
        &runtime::control_path(dir),
        &line,
        Instant::now() + patience,
    ) {
        Ok(()) => Ok(Some(session)),
        Err(SendError::NotRunning(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

impl TraceLink {
    /// Take a lease and ask the switch in `dir` to trace extension `ext` for as
    /// long as it is held (`patience`: how long a full control FIFO is waited
    /// for).
    pub fn start(dir: &Path, ext: u16, patience: Duration) -> Result<TraceLink, String> {
        let filter = Filter::Ext(ext);
        let session = ask(dir, filter, patience)?.ok_or("the switch is not running")?;
        Ok(TraceLink {
            dir: dir.to_path_buf(),
            filter,
            patience,
            phase: Phase::Asked {
                session,
                asked: Instant::now(),
            },
            resumed: false,
        })
    }

    /// The lines traced since the last call and the messages missed; `Err` with
    /// the reason when the trace ended (or never started). When the switch stops
    /// or restarts, a line says so, and another when the new switch traces again.
    pub fn poll(&mut self, utc_offset_s: i32) -> Result<(Vec<String>, u64), String> {
        let mut lines = Vec::new();
        let mut lost = 0;
        let phase = std::mem::replace(&mut self.phase, Phase::Waiting { looked: None });
        self.phase = match phase {
            Phase::Waiting { looked } => self.look_again(looked)?,
            Phase::Asked { mut session, asked } => match session.health() {
                Health::DaemonGone(pid) => gone(pid, &mut lines),
                _ => match session.attach().map_err(|e| e.to_string())? {
                    true => {
                        if std::mem::take(&mut self.resumed) {
                            lines.push(format!(
                                "-- the switch restarted (pid {}); tracing {} again --",
                                session.pid(),
                                self.filter
                            ));
                        }
                        Phase::Tracing(session)
                    }
                    false if asked.elapsed() < START_PATIENCE => Phase::Asked { session, asked },
                    false => return Err("the switch did not start the trace".into()),
                },
            },
            Phase::Tracing(mut session) => {
                // Looked at before reading: a switch gone leaves its last records.
                let health = session.health();
                for _ in 0..=SLOTS / BATCH {
                    let b = session.poll(BATCH);
                    lost += b.lost;
                    lines.extend(b.records.iter().map(|r| line_of(r, utc_offset_s)));
                    if !b.more {
                        break;
                    }
                }
                match health {
                    Health::Running => Phase::Tracing(session),
                    Health::Ended => return Err("the switch ended the trace".into()),
                    Health::DaemonGone(pid) => gone(pid, &mut lines),
                }
            }
        };
        Ok((lines, lost))
    }

    /// Look for a new switch (at most every [`LOOK_EVERY`]) and ask it to trace.
    fn look_again(&mut self, looked: Option<Instant>) -> Result<Phase, String> {
        if looked.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return Ok(Phase::Waiting { looked });
        }
        Ok(match ask(&self.dir, self.filter, self.patience)? {
            Some(session) => {
                self.resumed = true;
                Phase::Asked {
                    session,
                    asked: Instant::now(),
                }
            }
            None => Phase::Waiting {
                looked: Some(Instant::now()),
            },
        })
    }
}

/// The switch of pid `pid` went away: said on a line; a new one is waited for.
fn gone(pid: u32, lines: &mut Vec<String>) -> Phase {
    lines.push(format!(
        "-- the switch stopped (pid {pid}); waiting for it to come back --"
    ));
    Phase::Waiting { looked: None }
}
