//! Calls: what the switch remembers of each call it proxies, the call table slots
//! it occupies in the state block, and the pure rules (outcome of a status, ring
//! counting) that do not need the rest of the switch.

use super::reply::Replier;
use crate::sip::dest::Dest;
use coventry_shared::event::{CallOutcome, CallPhase};
use coventry_shared::stateblock::{call_state, put_str, CallEntry, MAX_CALLS};
use std::collections::HashMap;

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

/// One party of a call's dialog: which extension it is and how the switch
/// reaches it. The caller's is known from its INVITE; the callee's once it
/// answers (until then only the extension ringing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// Which call-table slots are in use.
#[derive(Debug)]
pub struct Slots {
    /// Per slot: the call and, once ended, when.
    used: Vec<Option<(u32, u64)>>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            used: vec![None; MAX_CALLS],
        }
    }
}

impl Slots {
    /// Take a free slot, else the one whose call ended longest ago.
    pub fn take(&mut self, call: u32) -> Option<usize> {
        let free = self.used.iter().position(Option::is_none).or_else(|| {
            self.used
                .iter()
                .enumerate()
                .filter_map(|(i, u)| u.filter(|(_, ended)| *ended > 0).map(|(_, e)| (i, e)))
                .min_by_key(|(_, e)| *e)
                .map(|(i, _)| i)
        })?;
        self.used[free] = Some((call, 0));
        Some(free)
    }

    /// The call in `slot` ended at `now_ms`.
    pub fn ended(&mut self, slot: usize, now_ms: u64) {
        if let Some(Some((_, e))) = self.used.get_mut(slot) {
            *e = now_ms.max(1);
        }
    }

    /// Free slots whose call ended more than [`LINGER_MS`] ago; returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<usize> {
        let mut freed = Vec::new();
        for (i, u) in self.used.iter_mut().enumerate() {
            if let Some((_, e)) = u {
                if *e > 0 && *e + LINGER_MS <= now_ms {
                    *u = None;
                    freed.push(i);
                }
            }
        }
        freed
    }
}

/// Active calls by number, with indexes by Call-ID and by our branch.
#[derive(Debug, Default)]
pub struct CallBook {
    /// Calls by number.
    pub calls: HashMap<u32, Call>,
    /// Call-ID → number.
    pub by_call_id: HashMap<String, u32>,
    /// Our INVITE branch → (number, branch index).
    pub by_branch: HashMap<String, (u32, usize)>,
    /// Next call number.
    pub next: u32,
    /// Call-table slots.
    pub slots: Slots,
    /// Numbers of the calls not ended yet: ended calls linger for Timer D, and
    /// under load they far outnumber the live ones, so scans go over this.
    pub active: std::collections::BTreeSet<u32>,
    /// Clock ticks seen (for the slower scan of ended calls).
    pub ticks: u64,
}

impl CallBook {
    /// A new call number: from 1000 on, so a call number never reads as an
    /// extension number (`hangup 42` can only mean extension 42).
    /// The next number handed out is `first` (or the first call number).
    pub fn resume_at(&mut self, first: u32) {
        self.next = first.saturating_sub(1);
    }

    pub fn number(&mut self) -> u32 {
        self.next = self.next.wrapping_add(1).max(FIRST_CALL_NUMBER);
        self.next
    }

    /// Add a new call.
    pub fn insert(&mut self, call: Call) {
        if !call.ended() {
            self.active.insert(call.no);
        }
        self.calls.insert(call.no, call);
    }

    /// The calls not ended yet.
    pub fn live(&self) -> impl Iterator<Item = &Call> {
        self.active.iter().filter_map(|n| self.calls.get(n))
    }

    /// Forget a finished call.
    pub fn remove(&mut self, no: u32) -> Option<Call> {
        self.active.remove(&no);
        let call = self.calls.remove(&no)?;
        if self.by_call_id.get(&call.call_id) == Some(&no) {
            self.by_call_id.remove(&call.call_id);
        }
        for b in &call.branches {
            self.by_branch.remove(&b.id);
        }
        Some(call)
    }

    /// Calls in progress (not ended) that involve `ext`.
    pub fn active_for(&self, ext: u16) -> impl Iterator<Item = &Call> {
        self.live()
            .filter(move |c| !c.ended() && (c.caller.is(ext) || c.callee.is(ext)))
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

    #[test]
    fn slots_reuse_the_longest_ended() {
        let mut s = Slots::default();
        for c in 0..MAX_CALLS as u32 {
            assert!(s.take(c + 1).is_some());
        }
        assert_eq!(s.take(999), None, "all live: no slot");
        s.ended(5, 100);
        s.ended(7, 50);
        assert_eq!(s.take(1000), Some(7));
        assert_eq!(s.take(1001), Some(5));
        s.ended(9, 10);
        assert!(s.expire(10 + LINGER_MS - 1).is_empty());
        assert_eq!(s.expire(10 + LINGER_MS), vec![9]);
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
