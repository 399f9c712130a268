//! `watch`: follow the event ring, across daemon restarts.

use crate::daemon;
use crate::error::Error;
use crate::output::{clock, Out, Paint};
use coventry_shared::client::follow::{Change, Down, Follower, Start};
use coventry_shared::client::text::display_safe;
use coventry_shared::event::{CallOutcome, Event, EventRecord, ResultCode, RouteState};
use coventry_shared::runtime;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde_json::{json, Map, Value};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the daemon's process and the state block file are checked at least.
const CHECK_EVERY: Duration = Duration::from_millis(250);

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

/// The JSON object of one event: `seq`, `time_ms`, `kind` and the event's fields
/// as serde writes them (a call record adds its whole seconds, `duration_s` and
/// `talk_s`).
pub fn event_json(rec: &EventRecord) -> Value {
    // serde writes an event as `{"Variant": {fields}}`: its fields are the object,
    // its kind the name the console and the text lines use.
    let mut obj = match serde_json::to_value(&rec.event) {
        Ok(Value::Object(outer)) => match outer.into_iter().next() {
            Some((_, Value::Object(fields))) => fields,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    obj.insert("seq".into(), rec.seq.into());
    obj.insert("time_ms".into(), rec.time_ms.into());
    obj.insert("kind".into(), rec.event.kind_name().into());
    if let Event::CallRecord {
        start_ms,
        answer_ms,
        end_ms,
        ..
    } = rec.event
    {
        let duration_s = end_ms.saturating_sub(start_ms) / 1000;
        let talk_s = if answer_ms == 0 {
            0
        } else {
            end_ms.saturating_sub(answer_ms) / 1000
        };
        obj.insert("duration_s".into(), duration_s.into());
        obj.insert("talk_s".into(), talk_s.into());
    }
    Value::Object(obj)
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

struct Printer<'a> {
    out: &'a mut Out,
    printed: u64,
    limit: Option<u64>,
}

impl Printer<'_> {
    fn done(&self) -> bool {
        self.limit.is_some_and(|n| self.printed >= n)
    }

    /// Print events (until the count is reached).
    fn events(&mut self, events: &[EventRecord], lost: u64) -> Result<(), Error> {
        if lost > 0 {
            self.lost(lost)?;
        }
        for rec in events {
            if self.done() {
                break;
            }
            if self.out.json {
                self.out.json_line(&event_json(rec))?;
            } else {
                let line = event_line(self.out, rec);
                self.out.line(&line)?;
            }
            self.printed += 1;
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

    /// A line about the daemon; `reason` (JSON only) says why when it is not plain.
    fn daemon(
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

    /// Report what the follower saw: events, and the daemon stopping or coming back.
    fn change(&mut self, c: Change) -> Result<(), Error> {
        match c {
            Change::Events { events, lost } => self.events(&events, lost),
            Change::Restarted { pid } => self.daemon(
                "daemon-restarted",
                pid,
                None,
                &format!("coventryd restarted (pid {pid})"),
            ),
            Change::Down(Down::Gone(pid)) => self.daemon(
                "daemon-stopped",
                pid,
                None,
                &format!("coventryd stopped (pid {pid} is gone); waiting for it"),
            ),
            Change::Down(Down::Replaced(pid)) => self.daemon(
                "daemon-stopped",
                pid,
                None,
                &format!("coventryd stopped (pid {pid}); waiting for it"),
            ),
            // Cut under us: nothing more can be read from it. A whole block (the
            // daemon's restart makes a new one) is waited for.
            Change::Down(Down::Truncated(pid)) => self.daemon(
                "daemon-stopped",
                pid,
                Some("truncated"),
                &format!(
                    "the state block of coventryd (pid {pid}) was truncated; waiting for a new one"
                ),
            ),
            // A block we may not trust: never read it.
            Change::Down(d @ Down::Untrusted(_)) => Err(Error::failed(d.to_string())),
            // Not there yet (or half made): looked for again.
            Change::Down(Down::Missing(_) | Down::Unreadable(_))
            | Change::Up { .. }
            | Change::Stale { .. } => Ok(()),
        }
    }
}

/// Follow the event ring of the daemon in `dir` until the count or duration in `opts`
/// is reached (or forever). Status 3 when there is no daemon to start with; after
/// that, a stopped daemon is reported and waited for.
pub fn run(out: &mut Out, dir: &Path, opts: WatchOpts) -> Result<(), Error> {
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let reader = daemon::open_state(dir)?;
    // --from-start: from sequence 0, whatever the ring no longer holds reported
    // as lost. A new daemon's ring is read whole.
    let first = if opts.from_start {
        Start::Zero
    } else {
        Start::End
    };
    let mut follower = Follower::new(&runtime::state_path(dir), first, Start::Zero, CHECK_EVERY)
        .with_reader(reader);
    let mut p = Printer {
        out,
        printed: 0,
        limit: opts.count,
    };
    loop {
        for c in follower.poll(coventry_shared::now_ms()) {
            p.change(c)?;
            if p.done() {
                return Ok(());
            }
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(());
        }
        let mut nap = CHECK_EVERY;
        if let Some(d) = deadline {
            nap = nap.min(d.saturating_duration_since(now));
        }
        if follower.reader().is_some() {
            // Asleep until the daemon announces an event (or the nap is over).
            follower.wait(nap);
            nap_unless_output_gone(Duration::ZERO)?;
        } else {
            nap_unless_output_gone(nap)?;
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
pub(crate) fn nap_unless_output_gone(nap: Duration) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;
    use coventry_shared::event::{DialStep, Unregistration};

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

    #[test]
    fn json_of_the_other_kinds() {
        let json_of = |event: Event| {
            event_json(&EventRecord {
                seq: 1,
                time_ms: 2,
                event,
            })
        };
        assert_eq!(
            json_of(Event::SpeedDial {
                id: Some(3),
                code: "*7".into(),
                target: None,
                config: Some("21".into()),
            }),
            json!({"seq": 1, "time_ms": 2, "kind": "speed-dial", "id": 3, "code": "*7",
                   "target": null, "config": "21"})
        );
        assert_eq!(
            json_of(Event::Delivering {
                id: None,
                to: "100".into(),
                targets: vec![21, 22],
                offline: vec![],
            }),
            json!({"seq": 1, "time_ms": 2, "kind": "delivering", "id": null, "to": "100",
                   "targets": [21, 22], "offline": []})
        );
        assert_eq!(
            json_of(Event::Dialing {
                id: Some(4),
                call: 9,
                step: DialStep::CallingB,
            }),
            json!({"seq": 1, "time_ms": 2, "kind": "dialing", "id": 4, "call": 9,
                   "step": "calling-b"})
        );
        assert_eq!(
            json_of(Event::Upstream {
                route: "default".into(),
                addr: "127.0.0.1:5070".into(),
                state: RouteState::Down,
                detail: "refused".into(),
            }),
            json!({"seq": 1, "time_ms": 2, "kind": "upstream", "route": "default",
                   "addr": "127.0.0.1:5070", "state": "down", "detail": "refused"})
        );
        assert_eq!(
            json_of(Event::CallRecord {
                call: 7,
                from: "21".into(),
                to: "35".into(),
                start_ms: 1_000,
                answer_ms: 5_500,
                end_ms: 70_999,
                outcome: CallOutcome::Unknown,
                status: 404,
            }),
            json!({"seq": 1, "time_ms": 2, "kind": "call-record", "call": 7, "from": "21",
                   "to": "35", "start_ms": 1000, "answer_ms": 5500, "end_ms": 70999,
                   "duration_s": 69, "talk_s": 65, "outcome": "unknown-number", "status": 404})
        );
    }
}
