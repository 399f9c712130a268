//! Calls: what the switch remembers of each call it proxies, the call table slots
//! it occupies in the state block, and the pure rules (outcome of a status, ring
//! counting) that do not need the rest of the switch.

use super::reply::Replier;
use crate::sip::dest::Dest;
use crate::switch::transaction::T2_MS;
use coventry_shared::event::{CallOutcome, CallPhase};
use coventry_shared::record::CallRecord;
use coventry_shared::stateblock::{call_state, put_str, CallEntry};

/// The first call number.
pub const FIRST_CALL_NUMBER: u32 = 1000;

/// How long an ended call stays visible in the call table.
pub const LINGER_MS: u64 = 10_000;
/// Timer B / Timer H: 64 × T1.
pub const TRANSACTION_TIMEOUT_MS: u64 = 32_000;

/// A retransmission schedule (Timer A for INVITEs we send, Timer G for our
/// non-2xx finals): double the interval up to T2 until `deadline_ms`.
#[derive(Debug, Clone)]
pub struct Retx {
    /// What to re-send.
    pub bytes: Vec<u8>,
    /// Where.
    pub dest: Dest,
    /// Next re-send.
    pub next_ms: u64,
    /// Current interval.
    pub interval_ms: u64,
    /// Give up at.
    pub deadline_ms: u64,
}

impl Retx {
    /// Start a schedule at `now_ms` (first re-send after T1).
    pub fn new(bytes: Vec<u8>, dest: Dest, now_ms: u64, cap_ms: u64) -> Retx {
        Retx {
            bytes,
            dest,
            next_ms: now_ms + crate::switch::transaction::T1_MS,
            interval_ms: crate::switch::transaction::T1_MS,
            deadline_ms: now_ms + TRANSACTION_TIMEOUT_MS,
        }
        .capped(cap_ms)
    }

    fn capped(mut self, cap_ms: u64) -> Retx {
        self.interval_ms = self.interval_ms.min(cap_ms);
        self
    }

    /// Due re-sends at `now_ms`; `Err(())` once the deadline passed.
    pub fn due(&mut self, now_ms: u64, cap_ms: u64) -> Result<bool, ()> {
        if now_ms >= self.deadline_ms {
            return Err(());
        }
        // Over TCP the transport retransmits; only the deadline applies.
        if now_ms >= self.next_ms && !self.dest.is_tcp() {
            self.interval_ms = (self.interval_ms * 2).min(cap_ms);
            self.next_ms = now_ms + self.interval_ms;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Where one forked INVITE is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchState {
    /// Sent, nothing back (Timer A retransmits).
    Calling,
    /// A provisional response came back.
    Proceeding,
    /// A final response came back (or the branch timed out).
    Done,
}

/// One contact the INVITE was forked to.
#[derive(Debug)]
pub struct Branch {
    /// Our Via branch for this fork.
    pub id: String,
    /// Request-URI (the contact).
    pub uri: String,
    /// Where it was sent.
    pub dest: Dest,
    /// Our Via header value.
    pub via: String,
    /// State.
    pub state: BranchState,
    /// Timer A while Calling; Timer B as its deadline.
    pub retx: Retx,
    /// A CANCEL is wanted but waits for a provisional response (RFC 3261 §9.1).
    pub cancel_wanted: bool,
    /// A CANCEL went out.
    pub cancelled: bool,
    /// Final status received.
    pub status: Option<u16>,
    /// The extension this contact belongs to (none: the upstream).
    pub ext: Option<u16>,
}

impl Branch {
    /// A final response `status` (or a timeout) ends the branch: no more
    /// retransmissions. True when it is the branch's first final.
    pub fn finish(&mut self, status: u16) -> bool {
        let first = self.state != BranchState::Done;
        self.state = BranchState::Done;
        self.retx.bytes = Vec::new();
        self.status = Some(status);
        first
    }
}

/// One party of a call's dialog: which extension it is and how the switch
/// reaches it. The caller's is known from its INVITE; the callee's once it
/// answers (until then only the extension ringing).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Party {
    /// Its extension (none: a number outside, reached through the upstream).
    pub ext: Option<u16>,
    /// Its tag in the dialog (the caller's From tag, the callee's To tag).
    pub tag: Option<String>,
    /// Its Contact URI.
    pub contact: Option<String>,
    /// Where requests to it go (the first hop of `route`, else its contact).
    pub addr: Option<Dest>,
    /// Proxies between it and the switch (Route set, in order).
    pub route: Vec<String>,
    /// Highest CSeq seen from it in this dialog.
    pub cseq: u32,
}

impl Party {
    /// Whether it is extension `ext`.
    pub fn is(&self, ext: u16) -> bool {
        self.ext == Some(ext)
    }
}

/// The caller's INVITE as the switch received it: its server transaction and
/// the headers requests of the switch's own in the dialog are built from.
#[derive(Debug)]
pub struct CallerInvite {
    /// The request, kept to fork again (delayed coverage, forward on no answer)
    /// until the call ends.
    pub request: Option<Box<rsip::Request>>,
    /// Its server-transaction key.
    pub key: String,
    /// Its Via branch (its CANCEL and non-2xx ACK carry it).
    pub branch: String,
    /// Answers it.
    pub replier: Replier,
    /// Our non-2xx final, re-sent until the caller ACKs (Timer G/H).
    pub final_retx: Option<Retx>,
    /// Its CSeq number.
    pub cseq: u32,
    /// The caller's From (with tag).
    pub from_hdr: String,
    /// Its To (without tag).
    pub to_hdr: String,
    /// Where it came from (its CANCEL and ACK must too).
    pub src: Dest,
}

/// What a call's timers ask of the switch at one instant ([`Call::tick`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Retransmissions to send now: INVITEs on branches, our final to the caller.
    pub resend: Vec<(Dest, Vec<u8>)>,
    /// Another ring was counted.
    pub ring_changed: bool,
    /// Delayed coverage whose turn came.
    pub join: Vec<u16>,
    /// Nobody answered within the call's window.
    pub no_answer: bool,
    /// Answered for longer than the longest call allowed.
    pub too_long: bool,
}

/// One call through the switch.
#[derive(Debug)]
pub struct Call {
    /// Switch-local number.
    pub no: u32,
    /// Slot in the call table, if one was free.
    pub slot: Option<usize>,
    /// SIP Call-ID.
    pub call_id: String,
    /// The calling party (no extension: a call from upstream).
    pub caller: Party,
    /// The caller as shown: the extension, or the upstream caller's number.
    pub caller_label: String,
    /// The called party: the extension ringing or answering (none when the
    /// number was not an extension), and once answered how to reach it.
    pub callee: Party,
    /// What was dialled.
    pub dialled: String,
    /// Where the call is.
    pub phase: CallPhase,
    /// Rings so far.
    pub rings: u8,
    /// When it started, ms since the epoch.
    pub start_ms: u64,
    /// When it was answered.
    pub answer_ms: Option<u64>,
    /// When it ended.
    pub end_ms: Option<u64>,
    /// When ringing started.
    pub ring_started_ms: Option<u64>,
    /// No answer by then: CANCEL and 480 (or 408 when nothing rang).
    pub deadline_ms: u64,
    /// How it ended.
    pub outcome: Option<(CallOutcome, u16)>,
    /// The caller's INVITE and its server transaction.
    pub invite: CallerInvite,
    /// Forks.
    pub branches: Vec<Branch>,
    /// A branch sent 180/183.
    pub got_ringing: bool,
    /// Best final status from the branches so far.
    pub best: Option<u16>,
    /// Delayed coverage still to join.
    pub later: Vec<u16>,
    /// Rings before `later` joins.
    pub delay: u8,
    /// Forward-on-no-answer target still to try.
    pub noanswer: Option<String>,
    /// Where it went (for the record).
    pub route: coventry_shared::record::Route,
    /// The forwards it followed.
    pub hops: Vec<coventry_shared::record::Hop>,
    /// Restarts of the switch the call lived through (kept answered calls).
    pub restarts: u32,
    /// Where each side was known before a restart (kept answered calls): its
    /// forks are gone, these addresses stand for them.
    pub known_at: KnownAt,
}

/// Transport addresses each side of a call is known by.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownAt {
    /// The caller's.
    pub caller: Vec<Dest>,
    /// The callee's.
    pub callee: Vec<Dest>,
}

impl Call {
    /// A new call `no` with Call-ID `call_id` from `caller` (shown as `label`) to
    /// `dialled`, started at `now_ms` by `invite`, unanswered by `deadline_ms`.
    pub fn new(
        no: u32,
        call_id: &str,
        (caller, label): (Party, String),
        dialled: &str,
        invite: CallerInvite,
        (now_ms, deadline_ms): (u64, u64),
    ) -> Call {
        Call {
            no,
            slot: None,
            call_id: call_id.to_string(),
            caller,
            caller_label: label,
            callee: Party::default(),
            dialled: dialled.to_string(),
            phase: CallPhase::Dialing,
            rings: 0,
            start_ms: now_ms,
            answer_ms: None,
            end_ms: None,
            ring_started_ms: None,
            deadline_ms,
            outcome: None,
            invite,
            branches: Vec::new(),
            got_ringing: false,
            best: None,
            later: Vec::new(),
            delay: 0,
            noanswer: None,
            route: coventry_shared::record::Route::Local,
            hops: Vec::new(),
            restarts: 0,
            known_at: KnownAt::default(),
        }
    }

    /// Whether the call is over.
    pub fn ended(&self) -> bool {
        self.phase == CallPhase::Ended
    }

    /// Whether nothing more will happen: ended, caller's ACK in (or Timer H), and
    /// every branch finished.
    pub fn finished(&self) -> bool {
        self.ended()
            && self.invite.final_retx.is_none()
            && self.branches.iter().all(|b| b.state == BranchState::Done)
    }

    /// Run the call's timers to `now_ms` with rings of `ring_ms` and calls of at
    /// most `max_ms` (0: no limit): schedule retransmissions, count rings, end
    /// branches that never answered (408), and say what else is due.
    pub fn tick(&mut self, now_ms: u64, ring_ms: u64, max_ms: u64) -> Due {
        let mut due = Due::default();
        for b in &mut self.branches {
            if b.state == BranchState::Done {
                continue;
            }
            match b.retx.due(now_ms, T2_MS * 16) {
                Ok(true) if b.state == BranchState::Calling => {
                    due.resend.push((b.dest, b.retx.bytes.clone()))
                }
                Ok(_) => {}
                Err(()) => {
                    b.finish(408);
                    self.best = Some(better_final(self.best, 408));
                }
            }
        }
        if let Some(fr) = self.invite.final_retx.as_mut() {
            match fr.due(now_ms, T2_MS) {
                Ok(true) => due.resend.push((fr.dest, fr.bytes.clone())),
                Ok(false) => {}
                Err(()) => self.invite.final_retx = None,
            }
        }
        if self.phase == CallPhase::Ringing {
            let started = self.ring_started_ms.unwrap_or(now_ms);
            let count = 1 + (now_ms.saturating_sub(started) / ring_ms.max(1)).min(254) as u8;
            if count > self.rings {
                self.rings = count;
                due.ring_changed = true;
            }
            if !self.later.is_empty() && self.rings > self.delay {
                due.join = std::mem::take(&mut self.later);
            }
        }
        due.no_answer = matches!(self.phase, CallPhase::Dialing | CallPhase::Ringing)
            && now_ms >= self.deadline_ms;
        due.too_long = self.phase == CallPhase::Answered
            && max_ms > 0
            && self
                .answer_ms
                .is_some_and(|t| now_ms >= t.saturating_add(max_ms));
        due
    }

    /// Whether every branch failed while the call waits for an answer: it fails
    /// with the best of their statuses.
    pub fn all_branches_failed(&self) -> bool {
        !self.ended()
            && self.phase != CallPhase::Answered
            && !self.branches.is_empty()
            && self.branches.iter().all(|b| b.state == BranchState::Done)
    }

    /// Whether the call can be forgotten at `now_ms`: finished, and Timer D
    /// passed since it ended.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.finished()
            && self
                .end_ms
                .is_some_and(|t| now_ms >= t + TRANSACTION_TIMEOUT_MS)
    }

    /// The call's record at its end (`now_ms`, `outcome` with SIP `status`); its
    /// forwards move into it.
    pub fn record(&mut self, now_ms: u64, outcome: CallOutcome, status: u16) -> CallRecord {
        let (ring_ms, talk_ms) = CallRecord::times(self.start_ms, self.answer_ms, now_ms);
        CallRecord {
            call: self.no,
            outcome,
            status,
            caller: self.caller_label.clone(),
            dialled: self.dialled.clone(),
            answered_by: self.answer_ms.map(|_| match self.callee.ext {
                None => self.dialled.clone(),
                Some(e) => e.to_string(),
            }),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms,
            end_ms: now_ms,
            ring_ms,
            talk_ms,
            route: self.route,
            forwards: std::mem::take(&mut self.hops),
            restarts: self.restarts,
        }
    }

    /// The call-table entry for this call.
    pub fn entry(&self) -> CallEntry {
        let mut e = CallEntry {
            id: self.no,
            state: match self.phase {
                CallPhase::Dialing => call_state::DIALING,
                CallPhase::Ringing => call_state::RINGING,
                CallPhase::Answered => call_state::ANSWERED,
                CallPhase::Ended => call_state::ENDED,
            },
            ring_count: self.rings,
            cause: self.outcome.map(|o| o.1).unwrap_or(0),
            outcome: self.outcome.map(|o| o.0 as u16).unwrap_or(0),
            from: [0; 24],
            to: [0; 24],
            call_id: [0; 62],
            start_ms: self.start_ms,
            answer_ms: self.answer_ms.unwrap_or(0),
            end_ms: self.end_ms.unwrap_or(0),
        };
        put_str(&mut e.from, &self.caller_label);
        put_str(&mut e.to, &self.dialled);
        put_str(&mut e.call_id, &self.call_id);
        e
    }
}

/// The outcome a final status from the callee's side means.
pub fn outcome_of(status: u16) -> CallOutcome {
    match status {
        200..=299 => CallOutcome::Completed,
        486 | 600 => CallOutcome::Busy,
        603 => CallOutcome::Rejected,
        487 => CallOutcome::Cancelled,
        404 | 604 => CallOutcome::Unknown,
        484 => CallOutcome::Incomplete,
        408 => CallOutcome::TimedOut,
        480 => CallOutcome::Unavailable,
        _ => CallOutcome::Failed,
    }
}

/// Better of two final statuses for the caller (RFC 3261 §16.7: 6xx first, then
/// the lowest class; among equals the first).
pub fn better_final(a: Option<u16>, b: u16) -> u16 {
    match a {
        None => b,
        Some(a) if a >= 600 => a,
        Some(_) if b >= 600 => b,
        Some(a) if b / 100 < a / 100 => b,
        Some(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_best_status() {
        assert_eq!(outcome_of(486), CallOutcome::Busy);
        assert_eq!(outcome_of(603), CallOutcome::Rejected);
        assert_eq!(outcome_of(487), CallOutcome::Cancelled);
        assert_eq!(outcome_of(500), CallOutcome::Failed);
        assert_eq!(better_final(None, 486), 486);
        assert_eq!(better_final(Some(486), 603), 603);
        assert_eq!(better_final(Some(603), 486), 603);
        assert_eq!(better_final(Some(500), 486), 486);
        assert_eq!(better_final(Some(486), 480), 486);
    }

    fn call_at(now_ms: u64, deadline_ms: u64) -> Call {
        let dest = Dest::Udp("127.0.0.1:5062".parse().expect("addr"));
        let replier = Replier {
            key: "k".into(),
            dest,
            ctx: crate::sip::error::ReplyContext {
                method: "INVITE".into(),
                vias: vec!["SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKa".into()],
                from: "<sip:21@h>;tag=a".into(),
                to: "<sip:22@h>".into(),
                call_id: "c".into(),
                cseq: "1 INVITE".into(),
                status: 0,
            },
            to_tag: "t".into(),
        };
        let invite = CallerInvite {
            request: None,
            key: "k".into(),
            branch: "z9hG4bKa".into(),
            replier,
            final_retx: None,
            cseq: 1,
            from_hdr: "<sip:21@h>;tag=a".into(),
            to_hdr: "<sip:22@h>".into(),
            src: dest,
        };
        let caller = Party {
            ext: Some(21),
            ..Party::default()
        };
        Call::new(
            1000,
            "c",
            (caller, "21".into()),
            "22",
            invite,
            (now_ms, deadline_ms),
        )
    }

    fn branch_to(dest: Dest, now_ms: u64) -> Branch {
        Branch {
            id: "z9hG4bKx".into(),
            uri: "sip:22@127.0.0.1:5064".into(),
            dest,
            via: String::new(),
            state: BranchState::Calling,
            retx: Retx::new(b"INVITE".to_vec(), dest, now_ms, T2_MS * 16),
            cancel_wanted: false,
            cancelled: false,
            status: None,
            ext: Some(22),
        }
    }

    #[test]
    fn a_silent_branch_is_resent_then_ends_408() {
        let dest = Dest::Udp("127.0.0.1:5064".parse().expect("addr"));
        let mut call = call_at(0, 60_000);
        call.branches.push(branch_to(dest, 0));
        assert_eq!(call.tick(499, 1000, 0), Due::default());
        assert_eq!(
            call.tick(500, 1000, 0).resend,
            vec![(dest, b"INVITE".to_vec())]
        );
        assert!(!call.all_branches_failed());
        let due = call.tick(TRANSACTION_TIMEOUT_MS, 1000, 0);
        assert!(due.resend.is_empty());
        assert_eq!(call.branches[0].status, Some(408));
        assert_eq!(call.best, Some(408));
        assert!(call.all_branches_failed());
    }

    #[test]
    fn rings_are_counted_and_delayed_coverage_joins_after_them() {
        let mut call = call_at(0, 20_000);
        call.later = vec![24];
        call.delay = 2;
        call.phase = CallPhase::Ringing;
        call.ring_started_ms = Some(1000);
        let first = call.tick(1000, 5000, 0);
        assert!(first.ring_changed && first.join.is_empty());
        assert_eq!(call.rings, 1);
        assert!(!call.tick(5999, 5000, 0).ring_changed);
        let second = call.tick(6000, 5000, 0);
        assert!(second.ring_changed && second.join.is_empty());
        let third = call.tick(11_000, 5000, 0);
        assert_eq!((call.rings, third.join), (3, vec![24]));
        assert!(call.tick(16_000, 5000, 0).join.is_empty(), "joins once");
        assert!(!call.tick(19_999, 5000, 0).no_answer);
        assert!(call.tick(20_000, 5000, 0).no_answer);
    }

    #[test]
    fn an_answered_call_is_too_long_only_past_the_limit() {
        let mut call = call_at(0, 20_000);
        call.phase = CallPhase::Answered;
        call.answer_ms = Some(3000);
        assert!(!call.tick(1_000_000, 5000, 0).too_long, "0: no limit");
        assert!(!call.tick(62_999, 5000, 60_000).too_long);
        let due = call.tick(63_000, 5000, 60_000);
        assert!(due.too_long && !due.no_answer);
    }

    #[test]
    fn our_final_is_resent_until_timer_h_then_the_call_expires() {
        let dest = Dest::Udp("127.0.0.1:5062".parse().expect("addr"));
        let mut call = call_at(0, 20_000);
        call.invite.final_retx = Some(Retx::new(b"486".to_vec(), dest, 0, T2_MS));
        call.phase = CallPhase::Ended;
        call.end_ms = Some(0);
        assert_eq!(
            call.tick(500, 5000, 0).resend,
            vec![(dest, b"486".to_vec())]
        );
        assert!(!call.expired(TRANSACTION_TIMEOUT_MS - 1));
        call.tick(TRANSACTION_TIMEOUT_MS, 5000, 0);
        assert!(call.invite.final_retx.is_none());
        assert!(call.expired(TRANSACTION_TIMEOUT_MS));
    }

    #[test]
    fn the_record_takes_the_forwards_and_names_who_answered() {
        let mut call = call_at(1000, 20_000);
        call.hops.push(coventry_shared::record::Hop {
            from: 22,
            to: "24".into(),
            why: coventry_shared::record::HopReason::Busy,
        });
        call.callee.ext = Some(24);
        call.answer_ms = Some(4000);
        let record = call.record(10_000, CallOutcome::Completed, 200);
        assert_eq!(record.answered_by.as_deref(), Some("24"));
        assert_eq!((record.ring_ms, record.talk_ms), (3000, 6000));
        assert_eq!(record.forwards.len(), 1);
        assert!(call.hops.is_empty(), "moved into the record");
        assert!(matches!(
            record.event(),
            coventry_shared::event::Event::CallRecord {
                call: 1000,
                answer_ms: 4000,
                status: 200,
                ..
            }
        ));
    }

    #[test]
    fn retransmission_schedule() {
        let dest = Dest::Udp("127.0.0.1:1".parse().expect("addr"));
        let mut r = Retx::new(vec![], dest, 0, 4000);
        assert_eq!(r.due(499, 4000), Ok(false));
        assert_eq!(r.due(500, 4000), Ok(true));
        assert_eq!(r.due(1499, 4000), Ok(false));
        assert_eq!(r.due(1500, 4000), Ok(true));
        assert_eq!(r.due(TRANSACTION_TIMEOUT_MS, 4000), Err(()));
    }
}
