//! `watch`: follow the event ring, across daemon restarts.

use crate::daemon;
use crate::error::Error;
use crate::output::{clock, Out, Paint};
use coventry_shared::client::text::display_safe;
use coventry_shared::event::{CallOutcome, Event, EventRecord, ResultCode, RouteState};
use coventry_shared::runtime;
use coventry_shared::stateblock::{EventCursor, OpenError, StateReader};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde_json::{json, Value};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the daemon's process and the state block file are checked.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Events read per poll call.
const BATCH: usize = 512;

/// Options of `watch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WatchOpts {
    /// Start with the oldest event still in the ring instead of the newest end.
    pub from_start: bool,
    /// Stop after this many events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// The JSON object of one event: `seq`, `time_ms`, `kind` and the event's fields.
pub fn event_json(rec: &EventRecord) -> Value {
    let mut v = json!({
        "seq": rec.seq,
        "time_ms": rec.time_ms,
        "kind": rec.event.kind_name(),
    });
    let fields = match &rec.event {
        Event::Registered {
            ext,
            contact,
            user_agent,
        } => json!({ "ext": ext, "contact": contact, "user_agent": user_agent }),
        Event::Unregistered { ext, contact, why } => {
            json!({ "ext": ext, "contact": contact, "why": why.name() })
        }
        Event::Message {
            from,
            to,
            status,
            text,
        } => json!({ "from": from, "to": to, "status": status, "text": text }),
        Event::CommandResult { id, code, text } => {
            json!({ "id": id, "code": code.name(), "text": text })
        }
        Event::AuthFailed { user, source } => json!({ "user": user, "source": source }),
        Event::Warning { text } | Event::Notice { text } => json!({ "text": text }),
        Event::CallState {
            call,
            from,
            to,
            phase,
            rings,
        } => json!({ "call": call, "from": from, "to": to, "phase": phase.name(), "rings": rings }),
        Event::CallRecord {
            call,
            from,
            to,
            start_ms,
            answer_ms,
            end_ms,
            outcome,
            status,
        } => json!({
            "call": call,
            "from": from,
            "to": to,
            "start_ms": start_ms,
            "answer_ms": answer_ms,
            "end_ms": end_ms,
            "duration_s": end_ms.saturating_sub(*start_ms) / 1000,
            "talk_s": talk_secs(*answer_ms, *end_ms),
            "outcome": outcome.name(),
            "status": status,
        }),
        Event::Upstream {
            route,
            addr,
            state,
            detail,
        } => json!({ "route": route, "addr": addr, "state": state.name(), "detail": detail }),
    };
    if let (Some(obj), Value::Object(fields)) = (v.as_object_mut(), fields) {
        obj.extend(fields);
    }
    v
}

/// Whole seconds talked in a call answered at `answer_ms` (0: never) up to `end_ms`.
fn talk_secs(answer_ms: u64, end_ms: u64) -> u64 {
    if answer_ms == 0 {
        0
    } else {
        end_ms.saturating_sub(answer_ms) / 1000
    }
}

/// The text line of one event: local time and the event's display form.
pub fn event_line(out: &Out, rec: &EventRecord) -> String {
    let text = display_safe(&rec.event.to_string());
    let paint = match &rec.event {
        Event::Warning { .. } => Some(Paint::Yellow),
        Event::Upstream { state, .. } if *state != RouteState::Connected => Some(Paint::Yellow),
        Event::AuthFailed { .. } => Some(Paint::Red),
        Event::CommandResult { code, .. } if *code != ResultCode::Ok => Some(Paint::Red),
        Event::Message { status, .. } if *status >= 300 => Some(Paint::Red),
        Event::CallRecord { outcome, .. } if *outcome != CallOutcome::Completed => {
            Some(Paint::Yellow)
        }
        _ => None,
    };
    let text = match paint {
        Some(p) => out.paint(p, &text),
        None => text,
    };
    format!("{} {text}", out.paint(Paint::Dim, &clock(rec.time_ms)))
}

struct Attached {
    reader: StateReader,
    cursor: EventCursor,
    pid: u32,
    stop_reported: bool,
}

impl Attached {
    fn new(reader: StateReader, cursor: EventCursor) -> Attached {
        let pid = reader.header().pid;
        Attached {
            reader,
            cursor,
            pid,
            stop_reported: false,
        }
    }
}

struct Printer<'a> {
    out: &'a mut Out,
    printed: u64,
    limit: Option<u64>,
}

impl Printer<'_> {
    fn done(&self) -> bool {
        self.limit.is_some_and(|n| self.printed >= n)
    }

    /// Print everything new in the ring (until the count is reached).
    fn drain(&mut self, a: &mut Attached) -> Result<(), Error> {
        while !self.done() {
            let room = self.limit.map_or(BATCH, |n| {
                usize::try_from(n - self.printed).map_or(BATCH, |r| r.min(BATCH))
            });
            let polled = a.reader.poll_events(&mut a.cursor, room);
            if polled.lost > 0 {
                self.lost(polled.lost)?;
            }
            let n = polled.events.len();
            for rec in &polled.events {
                if self.out.json {
                    self.out.json_line(&event_json(rec))?;
                } else {
                    let line = event_line(self.out, rec);
                    self.out.line(&line)?;
                }
                self.printed += 1;
            }
            if n < room {
                break;
            }
        }
        Ok(())
    }

    fn lost(&mut self, count: u64) -> Result<(), Error> {
        if self.out.json {
            self.out
                .json_line(&json!({ "kind": "lost", "count": count }))
        } else {
            let text = self
                .out
                .paint(Paint::Yellow, &format!("-- {count} events lost --"));
            self.out.line(&text)
        }
    }

    fn daemon(&mut self, kind: &str, pid: u32, text: &str) -> Result<(), Error> {
        self.daemon_why(kind, pid, None, text)
    }

    /// A line about the daemon; `reason` (JSON only) says why when it is not plain.
    fn daemon_why(
        &mut self,
        kind: &str,
        pid: u32,
        reason: Option<&str>,
        text: &str,
    ) -> Result<(), Error> {
        if self.out.json {
            let mut v = json!({
                "kind": kind,
                "pid": pid,
                "time_ms": coventry_shared::now_ms(),
            });
            if let (Some(r), Some(obj)) = (reason, v.as_object_mut()) {
                obj.insert("reason".into(), json!(r));
            }
            self.out.json_line(&v)
        } else {
            let text = self.out.paint(Paint::Bold, &format!("-- {text} --"));
            self.out.line(&text)
        }
    }
}

/// Follow the event ring of the daemon in `dir` until the count or duration in `opts`
/// is reached (or forever). Status 3 when there is no daemon to start with; after
/// that, a stopped daemon is reported and waited for.
pub fn run(out: &mut Out, dir: &Path, opts: WatchOpts) -> Result<(), Error> {
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let path = runtime::state_path(dir);
    let reader = daemon::open_state(dir)?;
    let cursor = if opts.from_start {
        // From sequence 0: whatever the ring no longer holds is reported as lost.
        EventCursor { next: 0 }
    } else {
        reader.cursor_at_end()
    };
    let mut attached = Some(Attached::new(reader, cursor));
    let mut p = Printer {
        out,
        printed: 0,
        limit: opts.count,
    };
    let mut last_check: Option<Instant> = None;
    loop {
        if let Some(a) = attached.as_mut() {
            p.drain(a)?;
        }
        if p.done() {
            return Ok(());
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(());
        }
        if last_check.is_none_or(|t| now.duration_since(t) >= CHECK_EVERY) {
            last_check = Some(now);
            match attached.take() {
                Some(mut a) => {
                    if a.reader.truncated() {
                        // Cut under us: nothing more can be read from it. Wait for a
                        // whole block (the daemon's restart makes a new one).
                        p.daemon_why(
                            "daemon-stopped",
                            a.pid,
                            Some("truncated"),
                            &format!(
                                "the state block of coventryd (pid {}) was truncated; \
                                 waiting for a new one",
                                a.pid
                            ),
                        )?;
                        attached = reattach(&mut p, &path)?;
                    } else if a.reader.replaced() {
                        // Whatever the old daemon wrote last, then the new block.
                        p.drain(&mut a)?;
                        if p.done() {
                            return Ok(());
                        }
                        if !a.stop_reported {
                            p.daemon(
                                "daemon-stopped",
                                a.pid,
                                &format!("coventryd stopped (pid {}); waiting for it", a.pid),
                            )?;
                        }
                        attached = reattach(&mut p, &path)?;
                    } else {
                        if !a.stop_reported && !a.reader.daemon_alive() {
                            a.stop_reported = true;
                            p.daemon(
                                "daemon-stopped",
                                a.pid,
                                &format!(
                                    "coventryd stopped (pid {} is gone); waiting for it",
                                    a.pid
                                ),
                            )?;
                        }
                        attached = Some(a);
                    }
                }
                None => attached = reattach(&mut p, &path)?,
            }
        }
        let mut nap = CHECK_EVERY;
        if let Some(d) = deadline {
            nap = nap.min(d.saturating_duration_since(now));
        }
        match attached.as_ref() {
            // Asleep until the daemon announces an event (or the nap is over).
            Some(a) => {
                a.reader.wait_for_events(&a.cursor, nap);
                nap_unless_output_gone(Duration::ZERO)?;
            }
            None => nap_unless_output_gone(nap)?,
        }
    }
}

/// Whether an output with these poll events is gone: `Some(Ok)` when its reader
/// left (a pipe without reader, a terminal that hung up, a closed socket), the
/// same normal stop as a write that meets a closed pipe; `Some(Err)` when standard
/// output is not open at all.
fn output_gone(revents: PollFlags) -> Option<Error> {
    if revents.contains(PollFlags::POLLNVAL) {
        Some(Error::failed("standard output is not open"))
    } else if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
        Some(Error::output(std::io::ErrorKind::BrokenPipe.into()))
    } else {
        None
    }
}

/// Sleep `nap`, waking early to stop when standard output goes away: a watch with
/// no events to print would otherwise live on (`pbxctl watch | head -1` on a quiet
/// switch, a terminal that hung up without SIGHUP) until the next event failed to
/// print. Output that cannot be watched (a file) is simply slept on.
fn nap_unless_output_gone(nap: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let stdout = std::io::stdout();
    let ms = nap.as_micros().div_ceil(1000).min(60_000);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    // No events asked for: only the error, hang-up and invalid conditions wake it.
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    match nix::poll::poll(&mut fds, timeout) {
        Ok(0) | Err(Errno::EINTR) => return Ok(()),
        Ok(_) => {
            if let Some(e) = fds[0].revents().and_then(output_gone) {
                return Err(e);
            }
        }
        Err(_) => {}
    }
    // Woken for something else: finish the nap, so the loop never spins.
    std::thread::sleep(nap.saturating_sub(started.elapsed()));
    Ok(())
}

/// Open a new state block at `path` if there is one, announcing the new daemon.
fn reattach(p: &mut Printer<'_>, path: &Path) -> Result<Option<Attached>, Error> {
    match StateReader::open(path) {
        Ok(reader) => {
            // A new daemon starts its ring at 0: read all of it.
            let a = Attached::new(reader, EventCursor { next: 0 });
            p.daemon(
                "daemon-restarted",
                a.pid,
                &format!("coventryd restarted (pid {})", a.pid),
            )?;
            Ok(Some(a))
        }
        // Not there yet (or half made, or cut): look again later.
        Err(
            OpenError::Missing(_)
            | OpenError::Invalid(_)
            | OpenError::Truncated { .. }
            | OpenError::Io(..),
        ) => Ok(None),
        // A block we may not trust: never read it.
        Err(e @ OpenError::Untrusted(_)) => Err(Error::failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;
    use coventry_shared::event::Unregistration;

    #[test]
    fn gone_output_stops_quietly_unless_never_open() {
        assert_eq!(output_gone(PollFlags::empty()), None);
        let closed = output_gone(PollFlags::POLLERR).expect("a pipe without reader");
        assert_eq!((closed.status, closed.message), (Status::Ok, None));
        let hung_up = output_gone(PollFlags::POLLHUP).expect("a hung-up terminal");
        assert_eq!(hung_up.status, Status::Ok);
        let nval = output_gone(PollFlags::POLLNVAL).expect("no stdout");
        assert_eq!(nval.status, Status::Failed);
    }

    #[test]
    fn json_has_kind_and_fields() {
        let rec = EventRecord {
            seq: 7,
            time_ms: 1000,
            event: Event::Unregistered {
                ext: 21,
                contact: "sip:21@h".into(),
                why: Unregistration::Released,
            },
        };
        assert_eq!(
            event_json(&rec),
            json!({"seq": 7, "time_ms": 1000, "kind": "unregistered", "ext": 21,
                   "contact": "sip:21@h", "why": "released"})
        );
        let rec = EventRecord {
            seq: 8,
            time_ms: 1,
            event: Event::CommandResult {
                id: None,
                code: ResultCode::BadSyntax,
                text: "x".into(),
            },
        };
        assert_eq!(
            event_json(&rec),
            json!({"seq": 8, "time_ms": 1, "kind": "result", "id": null, "code": "bad-syntax",
                   "text": "x"})
        );
    }
}
