//! `trace`: the SIP messages the switch receives and sends, for one extension or
//! address or all, as they go, across restarts of the daemon.
//!
//! pbxctl takes a lease (a read lock on one byte of the state block, which the
//! kernel lets go when pbxctl ends however it ends), asks the daemon to trace for
//! it, then follows the trace ring and prints the records carrying its lease's bit
//! (`coventry_shared::client::trace`). A lease lives and dies with the daemon it
//! was taken on: when that daemon stops or restarts, pbxctl prints what its ring
//! still held, says so, waits for a daemon to run again and takes a new lease
//! there. Nothing here reads SIP: the one-line form comes from the record's typed
//! fields (`show`).

mod show;

pub use show::{message_lines, record_json, record_line};

use crate::daemon;
use crate::error::{Error, Status};
use crate::output::{Out, Paint};
use crate::wait;
use crate::watch::nap_unless_output_gone;
use coventry_shared::client::send::{checked_line, first_request_id, send_line};
use coventry_shared::client::text::display_safe;
use coventry_shared::client::trace::{Batch, BeginError, Health, TraceSession};
use coventry_shared::event::ResultCode;
use coventry_shared::runtime;
use coventry_shared::stateblock::trace::SLOTS;
use coventry_shared::trace::Filter;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the daemon's process and the lease are checked at least; also how
/// often a daemon that went away is looked for.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Records read per poll.
const BATCH: usize = 256;

/// Options of `trace`.
#[derive(Debug, Clone, Default)]
pub struct TraceOpts {
    /// What to follow: an extension, an address, `all` (`None`: all).
    pub target: Option<String>,
    /// Print each message whole after its line.
    pub verbose: bool,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// What is printed, and whether the count is reached.
struct Printer<'a> {
    out: &'a mut Out,
    verbose: bool,
    printed: u64,
    count: Option<u64>,
}

impl Printer<'_> {
    fn done(&self) -> bool {
        self.count.is_some_and(|n| self.printed >= n)
    }

    /// The records of a batch (until the count is reached), after the lost ones.
    fn batch(&mut self, b: &Batch) -> Result<(), Error> {
        if b.lost > 0 {
            if self.out.json {
                self.out
                    .json_line(&json!({ "kind": "lost", "count": b.lost }))?;
            } else {
                let t = format!("-- {} messages lost (pbxctl fell behind) --", b.lost);
                let t = self.out.paint(Paint::Yellow, &t);
                self.out.line(&t)?;
            }
        }
        for r in &b.records {
            if self.done() {
                break;
            }
            if self.out.json {
                self.out.json_line(&record_json(r))?;
            } else {
                let line = record_line(self.out, r);
                self.out.line(&line)?;
                if self.verbose {
                    for l in message_lines(r) {
                        self.out.line(&format!("    {l}"))?;
                    }
                    self.out.line("")?;
                }
            }
            self.printed += 1;
        }
        Ok(())
    }

    /// The daemon went away or came back: one line on stderr, or with --json
    /// an object like watch's (`daemon-stopped`, `daemon-restarted`).
    fn daemon(&mut self, kind: &str, pid: u32, text: &str) -> Result<(), Error> {
        if self.out.json {
            let v = json!({ "kind": kind, "pid": pid, "time_ms": coventry_shared::now_ms() });
            return self.out.json_line(&v);
        }
        eprintln!("{}", self.out.paint(Paint::Dim, &format!("-- {text} --")));
        Ok(())
    }
}

/// Why following one daemon's trace stopped.
enum Stop {
    /// The count or the duration is reached.
    Done,
    /// The daemon runs but dropped the lease.
    Ended,
    /// The daemon (this pid) stopped or restarted.
    DaemonGone(u32),
}

fn begin_error(e: BeginError) -> Error {
    match e {
        BeginError::Open(e) => daemon::open_error(e),
        e @ BeginError::Gone(_) => Error::not_running(e.to_string()),
        e @ BeginError::Lease(_) => Error::failed(e.to_string()),
    }
}

/// Take a lease on the daemon in `dir`, ask it (request `id`) to trace `filter`
/// for it and wait up to `timeout` until it does. Status 3 when no daemon runs.
fn start(dir: &Path, timeout: Duration, filter: Filter, id: u64) -> Result<TraceSession, Error> {
    // The lease first: the daemon starts nothing for a lease nobody holds.
    let mut session = TraceSession::begin(dir, filter).map_err(begin_error)?;
    let line = checked_line(&session.request(Some(id)))?;
    let cursor = session.reader().cursor_at_end();
    let deadline = Instant::now() + timeout;
    send_line(&runtime::control_path(dir), &line, deadline)?;
    let outcome = wait::wait_for_result(session.reader(), cursor, id, deadline)?;
    if outcome.code != ResultCode::Ok {
        return Err(Error::failed(format!(
            "{}: {}",
            outcome.code.name(),
            display_safe(&outcome.text)
        )));
    }
    match session.attach() {
        Ok(true) => Ok(session),
        Ok(false) => Err(Error::failed(
            "the daemon does not show the trace it started",
        )),
        Err(e) => Err(Error::failed(e.to_string())),
    }
}

/// How long to sleep at most: `nap`, cut at the deadline.
fn nap_until(nap: Duration, deadline: Option<Instant>) -> Duration {
    deadline.map_or(nap, |d| {
        nap.min(d.saturating_duration_since(Instant::now()))
    })
}

/// Print the records of `session` until the count or the deadline is reached,
/// the daemon drops the lease, or it goes away (after what its ring still held).
fn follow(
    session: &mut TraceSession,
    p: &mut Printer,
    deadline: Option<Instant>,
) -> Result<Stop, Error> {
    let mut last_check = Instant::now();
    loop {
        let b = session.poll(BATCH);
        p.batch(&b)?;
        if p.done() {
            return Ok(Stop::Done);
        }
        if b.more {
            continue;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(Stop::Done);
        }
        if now.duration_since(last_check) >= CHECK_EVERY {
            last_check = now;
            match session.health() {
                Health::Running => {}
                Health::Ended => return Ok(Stop::Ended),
                Health::DaemonGone(pid) => {
                    // Nothing is written to the old ring any more: a bounded read
                    // of what it still holds.
                    for _ in 0..=SLOTS / BATCH {
                        let b = session.poll(BATCH);
                        p.batch(&b)?;
                        if p.done() {
                            return Ok(Stop::Done);
                        }
                        if !b.more {
                            break;
                        }
                    }
                    return Ok(Stop::DaemonGone(pid));
                }
            }
        }
        // Asleep until the daemon writes a record (or the nap is over); then a
        // look at whether anyone still reads the output.
        session.wait(nap_until(CHECK_EVERY, deadline));
        nap_unless_output_gone(Duration::ZERO)?;
    }
}

/// Wait until a daemon runs in `dir` again and trace there (`None`: the deadline
/// came first). No daemon can wake a waiter meanwhile: it looks every
/// [`CHECK_EVERY`], as `watch` does, and ends at once when its output goes away.
fn resume(
    dir: &Path,
    timeout: Duration,
    filter: Filter,
    deadline: Option<Instant>,
    next_id: &mut impl FnMut() -> u64,
) -> Result<Option<TraceSession>, Error> {
    loop {
        match start(dir, timeout, filter, next_id()) {
            Ok(s) => return Ok(Some(s)),
            Err(e) if e.status == Status::NotRunning => {}
            Err(e) => return Err(e),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        nap_unless_output_gone(nap_until(CHECK_EVERY, deadline))?;
    }
}

/// Trace until the count or duration of `opts` is reached, the output goes away
/// or a signal ends pbxctl. Status 3 when no daemon runs at the start; a daemon
/// that stops or restarts later is waited for, and traced again when it runs.
pub fn run(out: &mut Out, dir: &Path, timeout: Duration, opts: TraceOpts) -> Result<(), Error> {
    let filter = match opts.target.as_deref() {
        None => Filter::All,
        Some(t) => Filter::parse(t).ok_or_else(|| {
            Error::usage(format!(
                "`{t}` is not an extension number, an IP address, IP:PORT or `all`"
            ))
        })?,
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut id = first_request_id(coventry_shared::now_ms());
    let mut next_id = move || {
        id += 1;
        id
    };
    let mut session = start(dir, timeout, filter, next_id())?;
    if !out.json {
        let note = format!("-- tracing {filter}; Ctrl-C ends --");
        eprintln!("{}", out.paint(Paint::Dim, &note));
    }
    let mut p = Printer {
        out,
        verbose: opts.verbose,
        printed: 0,
        count: opts.count,
    };
    loop {
        let pid = match follow(&mut session, &mut p, deadline)? {
            Stop::Done => return Ok(()),
            Stop::Ended => return Err(Error::failed("the daemon ended this trace")),
            Stop::DaemonGone(pid) => pid,
        };
        // The old lease goes with the old daemon's block.
        drop(session);
        p.daemon(
            "daemon-stopped",
            pid,
            &format!("coventryd stopped (pid {pid}); waiting for it to come back"),
        )?;
        session = match resume(dir, timeout, filter, deadline, &mut next_id)? {
            Some(s) => s,
            None => return Ok(()),
        };
        let pid = session.pid();
        p.daemon(
            "daemon-restarted",
            pid,
            &format!("coventryd restarted (pid {pid}); tracing {filter} again"),
        )?;
    }
}
