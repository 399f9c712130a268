//! Ending calls: our failure to a caller whose call never connected, the
//! record of every call at its end, and the operator's hang-up (BYE to both
//! sides of an answered call, 487 to a ringing one).

use super::record_books::Filing;
use super::refusal::Refusal;
use super::{ClientTag, Switch};
use crate::sip::dest::Dest;
use crate::sip::request::Own;
use coventry_shared::event::{CallOutcome, CallPhase};
use coventry_shared::record::CallRecord;

impl Switch {
    /// End a call that never connected: our final to the caller (re-sent until it
    /// ACKs), CANCEL for branches still ringing, the record.
    pub(super) fn fail_call(
        &mut self,
        now_ms: u64,
        no: u32,
        code: u16,
        reason: Option<&str>,
        outcome: CallOutcome,
    ) {
        self.fail_call_with(now_ms, no, code, reason, outcome, &[]);
    }

    /// [`Switch::fail_call`] with extra headers in our final (Retry-After...).
    pub(super) fn fail_call_with(
        &mut self,
        now_ms: u64,
        no: u32,
        code: u16,
        reason: Option<&str>,
        outcome: CallOutcome,
        extra: &[(&str, &str)],
    ) {
        let Some(call) = self.calls.get(no) else {
            return;
        };
        if call.ended() || call.phase == CallPhase::Answered {
            return;
        }
        let bytes = call.invite.replier.build(code, reason, extra, None);
        self.answer_caller(now_ms, no, bytes, true);
        self.cancel_branches(now_ms, no, None);
        self.end_call(now_ms, no, outcome, code);
    }

    /// Mark a call ended: events, call table, bitmaps.
    pub(super) fn end_call(&mut self, now_ms: u64, no: u32, outcome: CallOutcome, status: u16) {
        if self.calls.get(no).is_none_or(|c| c.ended()) {
            return;
        }
        self.calls.deactivate(no);
        let Some(call) = self.calls.get_mut(no) else {
            return;
        };
        if call.phase == CallPhase::Answered {
            self.out.calls_kept = true;
        }
        call.phase = CallPhase::Ended;
        call.end_ms = Some(now_ms);
        // What lingers for Timer D needs no INVITE to fork again.
        call.invite.request = None;
        call.later.clear();
        call.outcome = Some((outcome, status));
        let slot = call.slot;
        let reached = !call.branches.is_empty() || call.answer_ms.is_some();
        let record = call.record(now_ms, outcome, status);
        if let Some(slot) = slot {
            self.calls.slot_ended(slot, now_ms);
        }
        self.call_event(no);
        self.record_call(now_ms, record, reached);
        self.publish_call(no);
    }

    /// File a call's record: for its book's file and, as an event, for whoever
    /// watches (and the log). `reached`: a phone rang, the upstream was tried or
    /// the switch served the call; a call that reached no one is held to its
    /// caller's budget (`record_books.rs`).
    pub(super) fn record_call(&mut self, now_ms: u64, record: CallRecord, reached: bool) {
        let Filing::Book(book) = self.books.file(now_ms, &record, reached) else {
            return;
        };
        let event = record.event();
        // Caller and dialled number came from the network: quoted (logfmt).
        log::info!(
            "call {} {} -> {} ended: {} [{}], {}s, talked {}s",
            record.call,
            crate::logfmt::quoted(&record.caller),
            crate::logfmt::quoted(&record.dialled),
            record.outcome.name(),
            record.status,
            record.end_ms.saturating_sub(record.start_ms) / 1000,
            record.talk_ms / 1000
        );
        self.out.events.push(event);
        self.out.records.push((book, record));
    }

    /// `hangup CALL|EXT`: BYE both sides of answered calls, CANCEL ringing ones.
    pub(super) fn hangup(&mut self, now_ms: u64, id: Option<u64>, target: &str) {
        use coventry_shared::event::ResultCode;
        let plan = self.config.server.plan;
        let ext = target
            .parse::<u16>()
            .ok()
            .filter(|e| target.len() == usize::from(plan.digits()) && plan.contains(*e));
        let numbers: Vec<u32> = match ext {
            Some(ext) => self.calls.active_for(ext).map(|c| c.no).collect(),
            None => target
                .parse::<u32>()
                .ok()
                .filter(|n| self.calls.get(*n).is_some_and(|c| !c.ended()))
                .into_iter()
                .collect(),
        };
        // Click-to-dial calls end like any call.
        let dials: Vec<u32> = match ext {
            Some(ext) => self.dials_of(ext),
            None => target
                .parse::<u32>()
                .ok()
                .filter(|n| self.dials.contains(*n))
                .into_iter()
                .collect(),
        };
        if numbers.is_empty() && dials.is_empty() {
            return super::command::refuse(self, id, Refusal::NoCall(target.to_string()));
        }
        let mut done: Vec<String> = dials
            .into_iter()
            .filter_map(|no| self.dial_hangup(now_ms, no))
            .collect();
        for no in numbers {
            let Some(c) = self.calls.get(no) else {
                continue;
            };
            done.push(format!("{} ({} -> {})", no, c.caller_label, c.dialled));
            if c.phase == CallPhase::Answered {
                self.bye_both(now_ms, no);
                self.end_call(now_ms, no, CallOutcome::Completed, 200);
            } else {
                self.fail_call(
                    now_ms,
                    no,
                    487,
                    Some("Request Terminated (operator)"),
                    CallOutcome::Cancelled,
                );
            }
        }
        super::command::result(
            self,
            id,
            ResultCode::Ok,
            format!("hung up call {}", done.join(", ")),
        );
    }

    /// The switch ends an answered call: a BYE to each side, as the other side.
    pub(super) fn bye_both(&mut self, now_ms: u64, no: u32) {
        let bye = InDialog {
            method: "BYE",
            kind: 'b',
            cseq: OwnCseq::Next,
            tag: ClientTag::Fire,
            phones_only: false,
        };
        self.send_to_both_sides(now_ms, no, &bye);
    }

    /// Send `req` inside call `no`'s dialog to each side, as the other side:
    /// to the callee from the caller's From with the caller's CSeq space, and
    /// back.
    pub(super) fn send_to_both_sides(&mut self, now_ms: u64, no: u32, req: &InDialog) {
        let Some(c) = self.calls.get_mut(no) else {
            return;
        };
        if req.cseq == OwnCseq::Next {
            c.caller.cseq += 1;
            c.callee.cseq += 1;
        }
        let Some(c) = self.calls.get(no) else {
            return;
        };
        let caller_side = c.invite.from_hdr.as_str();
        let callee_side = format!(
            "{};tag={}",
            c.invite.to_hdr,
            c.callee.tag.as_deref().unwrap_or_default()
        );
        let cseq_of = |n: u32| if req.cseq == OwnCseq::Next { n } else { 0 };
        let requests: Vec<(String, Dest, Vec<u8>)> = [
            (
                &c.callee,
                caller_side,
                callee_side.as_str(),
                cseq_of(c.caller.cseq),
            ),
            (
                &c.caller,
                callee_side.as_str(),
                caller_side,
                cseq_of(c.callee.cseq),
            ),
        ]
        .into_iter()
        .filter_map(|(party, from, to, cseq)| {
            let dest = party.addr.filter(|d| !(req.phones_only && d.is_tcp()))?;
            let branch = self.branch(req.kind);
            let bytes = Own {
                route: &party.route,
                from,
                to,
                cseq,
                ..Own::new(
                    req.method,
                    party.contact.as_deref().unwrap_or_default(),
                    &self.via_to(dest, &branch),
                    &c.call_id,
                )
            }
            .to_bytes();
            Some((branch, dest, bytes))
        })
        .collect();
        for (branch, dest, bytes) in requests {
            self.client_tx
                .start(branch, dest, bytes.clone(), req.tag, now_ms);
            self.send(dest, bytes);
        }
    }
}

/// The CSeq of a request the switch sends inside a call's dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnCseq {
    /// The next number of the side it speaks for (a BYE).
    Next,
    /// 0: it takes no number from the side it speaks for (a probe).
    Zero,
}

/// A request the switch sends itself to both sides of a call.
pub(super) struct InDialog {
    /// Its method.
    pub method: &'static str,
    /// The letter of its branches.
    pub kind: char,
    /// Its CSeq.
    pub cseq: OwnCseq,
    /// What its answers are for.
    pub tag: ClientTag,
    /// Only to sides that are phones (UDP), not to the upstream.
    pub phones_only: bool,
}
