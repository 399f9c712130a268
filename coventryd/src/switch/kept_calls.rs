//! Answered calls outlive the switch: the media flows between the phones, so a
//! restart (an upgrade, a crash) must not strand their calls. Every answered call
//! is kept in the state directory with what the switch needs to go on relaying
//! its dialog — its parties, where each is known, their route sets and tags —
//! to end it with one record (noting the restart) and to hang it up; with them,
//! the token of the instance that Record-Routed them, so the Route entries in
//! their requests still name this switch after a restart, as a loose router's
//! would. A stop never sends BYEs for them.
//!
//! A kept call may have ended while the switch was down (a hang-up whose BYE
//! found no switch for 32 s), or just before a crash: at the start each phone in
//! it (not the upstream side) is asked with an in-dialog OPTIONS (RFC 3261 §11),
//! and one that answers 481 or not at all ends the call, with its record.

use super::call::{Call, CallerInvite, KnownAt, Party};
use super::call_end::{InDialog, OwnCseq};
use super::reply::Replier;
use super::{ClientTag, Switch};
use crate::sip::error::ReplyContext;
use coventry_shared::event::CallPhase;
use coventry_shared::record::{Hop, Route};
use serde::{Deserialize, Serialize};

/// Format version of the kept calls.
pub const VERSION: u32 = 1;

/// The answered calls of a switch, as kept on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptCalls {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The Record-Route token of the instance that routed them.
    pub instance: String,
    /// The calls.
    pub calls: Vec<KeptCall>,
}

/// One answered call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptCall {
    /// Its number.
    pub no: u32,
    /// Its Call-ID.
    pub call_id: String,
    /// The caller's side of the dialog.
    pub caller: Party,
    /// The callee's side.
    pub callee: Party,
    /// Every transport address each side is known by.
    pub known_at: KnownAt,
    /// The caller as shown.
    pub caller_label: String,
    /// What was dialled.
    pub dialled: String,
    /// The caller's From (with tag) and To (without), for our own requests.
    pub from_hdr: String,
    /// The To of the caller's INVITE.
    pub to_hdr: String,
    /// Start and answer, ms since the epoch.
    pub start_ms: u64,
    /// When it was answered.
    pub answer_ms: u64,
    /// Where it went.
    pub route: Route,
    /// The forwards it followed.
    pub hops: Vec<Hop>,
    /// Restarts it lived through before this one.
    pub restarts: u32,
}

/// Whether `token` could be an instance token (six hex digits).
fn valid_instance(token: &str) -> bool {
    token.len() == 6 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Switch {
    /// The answered calls, to keep on disk.
    pub fn kept_calls(&self) -> KeptCalls {
        let mut calls: Vec<KeptCall> = self
            .calls
            .live()
            .filter(|c| c.phase == CallPhase::Answered)
            .map(|c| {
                let parties = self.parties(&c.call_id);
                KeptCall {
                    no: c.no,
                    call_id: c.call_id.clone(),
                    caller: c.caller.clone(),
                    callee: c.callee.clone(),
                    known_at: KnownAt {
                        caller: parties
                            .as_ref()
                            .map(|p| p.caller.clone())
                            .unwrap_or_default(),
                        callee: parties.map(|p| p.callee).unwrap_or_default(),
                    },
                    caller_label: c.caller_label.clone(),
                    dialled: c.dialled.clone(),
                    from_hdr: c.invite.from_hdr.clone(),
                    to_hdr: c.invite.to_hdr.clone(),
                    start_ms: c.start_ms,
                    answer_ms: c.answer_ms.unwrap_or(c.start_ms),
                    route: c.route,
                    hops: c.hops.clone(),
                    restarts: c.restarts,
                }
            })
            .collect();
        calls.sort_by_key(|c| c.no);
        KeptCalls {
            version: VERSION,
            instance: self.instance.clone(),
            calls,
        }
    }

    /// Go on with the answered calls a previous run kept: their dialogs are
    /// relayed again, a BYE ends them with a record, the operator can hang them
    /// up; each side is asked whether it is still in the call (at `now_ms`).
    /// Returns how many were taken.
    pub fn restore_calls(&mut self, now_ms: u64, kept: KeptCalls) -> usize {
        self.last_now = self.last_now.max(now_ms);
        if kept.version != VERSION || kept.calls.is_empty() {
            return 0;
        }
        if valid_instance(&kept.instance) {
            self.instance = kept.instance;
        }
        let mut taken = 0;
        for k in kept.calls {
            if self.calls.contains(k.no) || self.calls.by_call_id(&k.call_id).is_some() {
                continue;
            }
            let Some(src) = k.known_at.caller.first().copied().or(k.caller.addr) else {
                continue;
            };
            let invite = CallerInvite {
                request: None,
                key: String::new(),
                branch: String::new(),
                replier: Replier {
                    key: String::new(),
                    dest: src,
                    ctx: ReplyContext {
                        method: "INVITE".into(),
                        vias: Vec::new(),
                        from: k.from_hdr.clone(),
                        to: k.to_hdr.clone(),
                        call_id: k.call_id.clone(),
                        cseq: String::new(),
                        status: 500,
                    },
                    to_tag: k.callee.tag.clone().unwrap_or_default(),
                },
                final_retx: None,
                cseq: k.caller.cseq,
                from_hdr: k.from_hdr,
                to_hdr: k.to_hdr,
                src,
            };
            let mut call = Call::new(
                k.no,
                &k.call_id,
                (k.caller, k.caller_label),
                &k.dialled,
                invite,
                (k.start_ms, k.start_ms),
            );
            call.callee = k.callee;
            call.phase = CallPhase::Answered;
            call.answer_ms = Some(k.answer_ms);
            call.route = k.route;
            call.hops = k.hops;
            call.restarts = k.restarts + 1;
            call.known_at = k.known_at;
            call.slot = self.calls.take_slot(k.no);
            let no = call.no;
            self.calls.insert(call);
            self.publish_call(no);
            self.probe(no);
            taken += 1;
        }
        if taken > 0 {
            self.out.calls_kept = true;
        }
        taken
    }
}

impl Switch {
    /// Ask both sides of kept call `no` whether the dialog is still up: an
    /// in-dialog OPTIONS each, as the other side (`bye_both`'s way of
    /// addressing), with CSeq 0 so that it takes no number from the side it
    /// speaks for: a phone whose dialog is up answers it (or 500, out of order,
    /// RFC 3261 §12.2.2) and the side's own next request still fits; a phone
    /// without the dialog answers 481.
    fn probe(&mut self, no: u32) {
        // Phones only: the upstream link may not be up again yet, and a probe
        // lost on it would read as a call that is over.
        let probe = InDialog {
            method: "OPTIONS",
            kind: 'p',
            cseq: OwnCseq::Zero,
            tag: ClientTag::Probe(no),
            phones_only: true,
        };
        self.send_to_both_sides(self.last_now, no, &probe);
    }

    /// A side of kept call `no` answered its probe with `status` (408: no
    /// answer): 481 or none means the call ended while the switch was down.
    pub(super) fn probe_answered(&mut self, now_ms: u64, no: u32, status: u16) {
        if !matches!(status, 481 | 408) {
            return;
        }
        let up = self
            .calls
            .get(no)
            .is_some_and(|c| c.phase == CallPhase::Answered);
        if up {
            log::info!("call {no}: its dialog ended while the switch was down ({status})");
            self.end_call(
                now_ms,
                no,
                coventry_shared::event::CallOutcome::Completed,
                200,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_instance;

    #[test]
    fn only_six_hex_digits_make_an_instance() {
        assert!(valid_instance("0a1b2c"));
        assert!(!valid_instance("0a1b2"));
        assert!(!valid_instance("zzzzzz"));
        assert!(!valid_instance("0a1b2c;x=1"));
    }
}
