//! A call's timers, once per clock tick: retransmissions, rings, delayed
//! coverage joining, no answer (forward on no answer, else 480/408), the
//! longest call allowed, and forgetting calls whose Timer D passed. What is due
//! is the call's own pure rule ([`Call::tick`](super::call::Call::tick)); this
//! is what the switch does about it.

use super::call::outcome_of;
use super::features::{Caller, Resolution};
use super::upstream::RouteStatus;
use super::Switch;
use coventry_shared::event::{CallOutcome, Event};
use coventry_shared::record::{Hop, HopReason};
use coventry_shared::stateblock::CallEntry;

impl Switch {
    /// Timers of every call: INVITE retransmissions (A/B), rings, no answer, and
    /// our final's retransmissions (G/H); then forget finished calls.
    pub(super) fn calls_tick(&mut self, now_ms: u64) {
        let ring_ms = self.ring_ms();
        let max_ms = u64::from(self.config.calls.max_duration) * 1000;
        // Live calls every tick; the ended ones lingering for Timer D (their
        // retransmissions, their removal) twice a second: under load they are
        // thousands, and T1 is 500 ms anyway.
        for no in self.calls.due_for_tick() {
            let Some(call) = self.calls.get_mut(no) else {
                continue;
            };
            let due = call.tick(now_ms, ring_ms, max_ms);
            for (to, bytes) in due.resend {
                self.send(to, bytes);
            }
            if due.ring_changed {
                self.call_event(no);
                self.publish_call(no);
            }
            if due.too_long {
                self.end_too_long(now_ms, no, max_ms);
                continue;
            }
            if !due.join.is_empty() {
                self.join_later(now_ms, no, due.join);
            }
            if due.no_answer && !self.forwarded_on_no_answer(now_ms, no) {
                self.fail_unanswered(now_ms, no);
            } else if let Some(best) = self
                .calls
                .get(no)
                .filter(|c| c.all_branches_failed())
                .map(|c| c.best.unwrap_or(408))
            {
                self.fail_call(now_ms, no, best, None, outcome_of(best));
            }
            if self.calls.get(no).is_some_and(|c| c.expired(now_ms)) {
                self.calls.remove(no);
            }
        }
        for slot in self.calls.expire_slots(now_ms) {
            self.out.calls.insert(slot, CallEntry::FREE);
        }
    }

    /// An answered call past `[calls] max_duration`: the switch hangs it up.
    fn end_too_long(&mut self, now_ms: u64, no: u32, max_ms: u64) {
        let text = format!(
            "call {no} hung up by the switch after {} s ([calls] max_duration)",
            max_ms / 1000
        );
        log::warn!("{text}");
        self.out.events.push(Event::Warning { text });
        self.bye_both(now_ms, no);
        self.end_call(now_ms, no, CallOutcome::Completed, 200);
    }

    /// Delayed coverage joins a ringing call: those of `exts` who can take it.
    fn join_later(&mut self, now_ms: u64, no: u32, exts: Vec<u16>) {
        let free: Vec<u16> = exts
            .into_iter()
            .filter(|e| {
                !self.registrar.contacts(*e).is_empty()
                    && !self.ext_settings(*e).dnd
                    && !self.is_busy(*e)
            })
            .collect();
        self.fork(now_ms, no, &free);
        self.publish_call(no);
    }

    /// Nobody answered in time: 480 when a phone rang, else 408.
    fn fail_unanswered(&mut self, now_ms: u64, no: u32) {
        let rang = self.calls.get(no).is_some_and(|c| c.got_ringing);
        if rang {
            let reason = Some("Temporarily Unavailable (no answer)");
            self.fail_call(now_ms, no, 480, reason, CallOutcome::NoAnswer);
        } else {
            self.fail_call(now_ms, no, 408, None, CallOutcome::TimedOut);
        }
    }

    /// Nobody answered and the callee forwards on no answer: ring the target
    /// instead (the caller keeps hearing ringback). False when there is no
    /// target or it cannot be reached either.
    fn forwarded_on_no_answer(&mut self, now_ms: u64, no: u32) -> bool {
        let Some((caller, target)) = self
            .calls
            .get_mut(no)
            .and_then(|c| Some((c.caller.ext, c.noanswer.take()?)))
        else {
            return false;
        };
        match self.resolve(&target, Caller::of(caller)) {
            Resolution::Ring {
                primary,
                now,
                noanswer,
                ..
            } => {
                let next = noanswer.filter(|t| *t != target);
                self.redirect_unanswered(now_ms, no, &target, Some(primary), next);
                self.fork(now_ms, no, &now);
            }
            Resolution::Upstream { kind, number, .. } => {
                let RouteStatus::Up(link, peer) = self.route_status(kind) else {
                    return false;
                };
                if self.over_upstream_limit(now_ms) {
                    return false;
                }
                self.redirect_unanswered(now_ms, no, &target, None, None);
                self.calls.route_upstream(no);
                self.fork_upstream(now_ms, no, &number, link, peer);
            }
            Resolution::Fail { .. } => return false,
        }
        self.publish_call(no);
        true
    }

    /// Turn call `no` from the callee who did not answer to `target`: its
    /// branches cancelled, the hop noted, a new window, `callee` (none: a
    /// number outside) ringing and `noanswer` to try after it.
    fn redirect_unanswered(
        &mut self,
        now_ms: u64,
        no: u32,
        target: &str,
        callee: Option<u16>,
        noanswer: Option<String>,
    ) {
        self.cancel_branches(now_ms, no, None);
        let deadline_ms = now_ms + self.no_answer_window_ms();
        let Some(c) = self.calls.get_mut(no) else {
            return;
        };
        if let Some(from) = c.callee.ext {
            let to = crate::logfmt::quoted(target);
            log::info!("call {no}: no answer from {from}, forwarding to {to}");
            c.hops.push(Hop {
                from,
                to: target.to_string(),
                why: HopReason::NoAnswer,
            });
        }
        c.callee.ext = callee;
        c.deadline_ms = deadline_ms;
        c.noanswer = noanswer;
        c.later.clear();
    }

    /// How long a call rings before nobody answered: `noanswer` rings.
    pub(super) fn no_answer_window_ms(&self) -> u64 {
        self.ring_ms() * u64::from(self.config.calls.noanswer)
    }

    /// How long one ring lasts.
    pub(super) fn ring_ms(&self) -> u64 {
        u64::from(self.config.calls.ring).max(1) * 1000
    }
}
