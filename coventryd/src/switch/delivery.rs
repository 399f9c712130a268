//! Message delivery jobs: one text to one or more extensions, each to all its
//! registered contacts, as MESSAGE client transactions; the job reports back to
//! whoever asked (a phone's MESSAGE transaction or a control command).

use super::limits::InFlight;
use super::reply::Replier;
use super::trust::UNTRUSTED_IDENTITY;
use super::Switch;
use crate::sip::forward::{rewrite, Rewrite};
use crate::sip::request::Own;
use coventry_shared::event::{Event, ResultCode};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Which job and target a client transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRef {
    job: u64,
    target: usize,
}

/// Who waits for a job's outcome.
#[derive(Debug)]
pub(super) enum Origin {
    /// A phone's MESSAGE to one extension: answered with the outcome.
    Sip(Box<Replier>),
    /// A phone's MESSAGE to a group or `all`: already answered 202.
    Broadcast,
    /// A control line: answered with a command-result event.
    Command(Option<u64>),
}

#[derive(Debug)]
struct Target {
    ext: u16,
    /// Contacts not yet answered.
    pending: usize,
    /// Best final status so far.
    status: Option<u16>,
    /// The outcome is known: one contact accepted, or every contact failed.
    /// Later answers from the other contacts change nothing.
    settled: bool,
}

/// A text being delivered.
#[derive(Debug)]
pub(super) struct Job {
    origin: Origin,
    /// Sender label for events (`21`, `operator`).
    from: String,
    /// Sender user part for the From URI (`21`, `system`).
    from_user: String,
    /// Display name in From.
    from_display: String,
    /// Target as addressed (`35`, `100`, `all`).
    to: String,
    text: String,
    targets: Vec<Target>,
    /// Members that were offline when the job started (reported, not tried).
    offline: Vec<u16>,
    /// A MESSAGE passed on: its headers are kept as the sender wrote them
    /// (Call-ID, From, To, Geolocation...), except what the switch must change.
    /// `None`: the switch's own text.
    relayed: Option<Relayed>,
}

/// A MESSAGE the switch passes on to extensions.
#[derive(Debug)]
pub(super) struct Relayed {
    /// The request as it arrived.
    pub req: Box<rsip::Request>,
    /// It came from the upstream peer, whose identity headers are kept.
    pub from_upstream: bool,
}

/// All jobs in flight.
#[derive(Debug, Default)]
pub struct Jobs {
    map: HashMap<u64, Job>,
    next: u64,
}

impl Jobs {
    fn insert(&mut self, id: u64, job: Job, in_flight: &mut InFlight) {
        in_flight.add(&job.from, job.text.len());
        self.map.insert(id, job);
    }

    fn remove(&mut self, id: u64, in_flight: &mut InFlight) -> Option<Job> {
        let job = self.map.remove(&id)?;
        in_flight.remove(&job.from, job.text.len());
        Some(job)
    }
}

/// What a delivery request says.
pub(super) struct Request {
    pub origin: Origin,
    pub from: String,
    pub from_user: String,
    pub from_display: String,
    pub to: String,
    pub text: String,
    pub targets: Vec<u16>,
    pub offline: Vec<u16>,
    /// The sender's own MESSAGE, when the text is one (see [`Job`]).
    pub relayed: Option<Relayed>,
}

/// Better of two final statuses for the same target (2xx wins; then 6xx; then lowest).
fn better(a: Option<u16>, b: u16) -> u16 {
    match a {
        None => b,
        Some(a) if (200..300).contains(&a) => a,
        Some(_) if (200..300).contains(&b) => b,
        Some(a) if a >= 600 => a,
        Some(_) if b >= 600 => b,
        Some(a) => a.min(b),
    }
}

impl Switch {
    /// Start delivering; targets without any reachable contact fail at once.
    pub(super) fn deliver(&mut self, now_ms: u64, req: Request) {
        let id = self.jobs.next;
        self.jobs.next += 1;
        let mut job = Job {
            origin: req.origin,
            from: req.from,
            from_user: req.from_user,
            from_display: req.from_display,
            to: req.to,
            text: req.text,
            targets: Vec::new(),
            offline: req.offline,
            relayed: req.relayed,
        };
        for (ti, ext) in req.targets.iter().enumerate() {
            let mut target = Target {
                ext: *ext,
                pending: 0,
                status: None,
                settled: false,
            };
            let contacts: Vec<(String, Option<SocketAddr>)> = self
                .registrar
                .contacts(*ext)
                .iter()
                .map(|b| (b.uri.clone(), b.dest()))
                .collect();
            for (uri, dest) in contacts {
                let Some(dest) = dest else {
                    continue;
                };
                let branch = self.branch('t');
                // Our address as this phone reaches it (never 0.0.0.0).
                let host = self.via_host(dest.ip());
                let bytes = match &job.relayed {
                    Some(m) => self.relay_message(m, &uri, &branch, dest),
                    None => self.build_message(&job, &host, &uri, *ext, &branch, &dest),
                };
                let r = DeliveryRef {
                    job: id,
                    target: ti,
                };
                self.client_tx.start(
                    branch,
                    dest.into(),
                    bytes.clone(),
                    super::ClientTag::Delivery(r),
                    now_ms,
                );
                self.send(dest, bytes);
                target.pending += 1;
            }
            if target.pending == 0 {
                target.status = Some(480);
                target.settled = true;
            }
            job.targets.push(target);
        }
        self.jobs.insert(id, job, &mut self.texts_in_flight);
        // Targets that could not be tried are finished now.
        for ti in 0..req.targets.len() {
            let finished = self
                .jobs
                .map
                .get(&id)
                .is_some_and(|j| j.targets[ti].settled);
            if finished {
                self.target_finished(id, ti);
            }
        }
        self.maybe_finish(now_ms, id);
    }

    fn build_message(
        &self,
        job: &Job,
        host: &str,
        uri: &str,
        ext: u16,
        branch: &str,
        dest: &SocketAddr,
    ) -> Vec<u8> {
        let via = format!(
            "SIP/2.0/UDP {};branch={branch};rport",
            self.via_host(dest.ip())
        );
        let tag = &branch[7..];
        let from = format!(
            "\"{}\" <sip:{}@{host}>;tag={tag}",
            job.from_display.replace(['"', '\\'], ""),
            job.from_user
        );
        Own {
            from: &from,
            to: &format!("<sip:{ext}@{host}>"),
            body: Some(("text/plain;charset=UTF-8", job.text.as_bytes())),
            ..Own::new("MESSAGE", uri, &via, &format!("{tag}@coventry"))
        }
        .to_bytes()
    }

    /// A phone's MESSAGE `req` passed on to `uri` at `dest` as a proxy would:
    /// our Via on top, the Request-URI the contact, Max-Forwards decremented,
    /// our Route entries, the credentials meant for us and identity claims
    /// removed; every other header and the body as the sender wrote them.
    fn relay_message(&self, m: &Relayed, uri: &str, branch: &str, dest: SocketAddr) -> Vec<u8> {
        let req = &m.req;
        let f = crate::sip::headers::Fields::of(&req.headers);
        let via = self.via_to(dest.into(), branch);
        rewrite(
            &req.headers,
            &req.body,
            &Rewrite {
                start_line: format!("MESSAGE {uri} SIP/2.0"),
                prepend: &[("Via", &via)],
                drop_routes: self.our_routes(&f),
                drop_proxy_auth: true,
                decrement_max_forwards: true,
                drop_named: if m.from_upstream {
                    &[]
                } else {
                    UNTRUSTED_IDENTITY
                },
                ..Rewrite::default()
            },
        )
    }

    /// A final response (or timeout) for one contact of a job's target.
    pub(super) fn delivery_done(&mut self, now_ms: u64, r: DeliveryRef, status: u16) {
        let Some(job) = self.jobs.map.get_mut(&r.job) else {
            return;
        };
        let Some(t) = job.targets.get_mut(r.target) else {
            return;
        };
        t.pending = t.pending.saturating_sub(1);
        if t.settled {
            return;
        }
        t.status = Some(better(t.status, status));
        if (200..300).contains(&status) || t.pending == 0 {
            t.settled = true;
            self.target_finished(r.job, r.target);
            self.maybe_finish(now_ms, r.job);
        }
    }

    fn target_finished(&mut self, job_id: u64, ti: usize) {
        let Some(job) = self.jobs.map.get(&job_id) else {
            return;
        };
        let t = &job.targets[ti];
        let status = t.status.unwrap_or(480);
        if (200..300).contains(&status) {
            self.counters.messages_delivered += 1;
        } else {
            self.counters.messages_failed += 1;
        }
        let id = match job.origin {
            Origin::Command(id) => id,
            Origin::Sip(_) | Origin::Broadcast => None,
        };
        self.out.events.push(Event::Message {
            id,
            from: job.from.clone(),
            to: t.ext.to_string(),
            status,
            text: job.text.clone(),
        });
    }

    fn maybe_finish(&mut self, now_ms: u64, job_id: u64) {
        let done = self
            .jobs
            .map
            .get(&job_id)
            .is_some_and(|j| j.targets.iter().all(|t| t.settled));
        if !done {
            return;
        }
        let Some(job) = self.jobs.remove(job_id, &mut self.texts_in_flight) else {
            return;
        };
        let ok: Vec<u16> = job
            .targets
            .iter()
            .filter(|t| t.status.is_some_and(|s| (200..300).contains(&s)))
            .map(|t| t.ext)
            .collect();
        match job.origin {
            Origin::Sip(r) => {
                let status = job.targets.first().and_then(|t| t.status).unwrap_or(480);
                let code = match status {
                    200..=299 => 200,
                    401 | 407 => 480,
                    s => s,
                };
                self.answer(now_ms, *r, code, None, &[]);
            }
            Origin::Broadcast => {}
            Origin::Command(id) => {
                let (code, text) = summary(&job, &ok);
                if code == ResultCode::Ok {
                    self.counters.commands_ok += 1;
                } else {
                    self.counters.commands_failed += 1;
                }
                self.out
                    .events
                    .push(Event::CommandResult { id, code, text });
            }
        }
    }
}

/// The result of a command delivery, for people: how many of the targets got it.
/// The receipts themselves travel as typed events (one [`Event::Message`] per
/// target with the command's id, after its [`Event::Delivering`]).
fn summary(job: &Job, ok: &[u16]) -> (ResultCode, String) {
    let code = if ok.is_empty() {
        ResultCode::Failed
    } else {
        ResultCode::Ok
    };
    let sent = job.targets.len();
    let text = match (job.targets.as_slice(), job.to.as_str()) {
        ([t], to) if to == t.ext.to_string() => match t.status.unwrap_or(480) {
            200..=299 => format!("delivered to {}", t.ext),
            408 => format!("{}: no answer (408)", t.ext),
            480 => format!("{} is offline", t.ext),
            s => format!("{}: refused ({s})", t.ext),
        },
        (_, "all") => format!("all: delivered to {} of {sent} registered now", ok.len()),
        (_, to) => {
            let mut t = format!("{to}: delivered to {} of {sent} online", ok.len());
            if !job.offline.is_empty() {
                t.push_str(&format!(" ({} offline)", job.offline.len()));
            }
            t
        }
    };
    (code, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_status() {
        assert_eq!(better(None, 480), 480);
        assert_eq!(better(Some(480), 200), 200);
        assert_eq!(better(Some(200), 486), 200);
        assert_eq!(better(Some(480), 603), 603);
        assert_eq!(better(Some(486), 480), 480);
    }
}
