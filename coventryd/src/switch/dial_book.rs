//! Click-to-dial calls as data: a call's two legs (dialogs between the switch,
//! as a user agent, and each party), the book that finds them by number, by
//! our branches and by Call-ID, and the pure rules over them (which leg, its
//! timers, its call-table entry, its record). The switch's side is `dial`.

use super::call::Retx;
use crate::sip::dest::Dest;
use crate::switch::transaction::T2_MS;
use coventry_shared::event::{CallOutcome, CallPhase, DialStep};
use coventry_shared::record::{CallRecord, Route};
use coventry_shared::stateblock::{call_state, put_str, CallEntry};
use std::collections::HashMap;

/// Which leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The extension rung first.
    A,
    /// The party it is connected to.
    B,
}

/// One leg: a dialog between the switch (as a user agent) and a phone, or a
/// party reached through the upstream.
#[derive(Debug)]
pub struct Leg {
    /// Call-ID of this leg.
    pub call_id: String,
    /// Branch of our INVITE.
    pub branch: String,
    /// Request-URI of our INVITE (the phone's contact, or the number upstream).
    pub uri: String,
    /// Where it goes (the first hop of `route` once answered).
    pub dest: Dest,
    /// Where our INVITE went: its responses come from there, and requests in
    /// the dialog from there or from `dest`.
    pub sent_to: Dest,
    /// Route set from the 2xx's Record-Route (proxies on the way, e.g. upstream).
    pub route: Vec<String>,
    /// Our Via value.
    pub via: String,
    /// Our From (with our tag).
    pub from: String,
    /// Its To (tag added from the 2xx).
    pub to: String,
    /// The phone's Contact from its 2xx.
    pub contact: String,
    /// Timer A/B of our INVITE.
    pub retx: Option<Retx>,
    /// A provisional came back (CANCEL allowed).
    pub proceeding: bool,
    /// Answered.
    pub answered: bool,
    /// Our next CSeq in this dialog.
    pub cseq: u32,
    /// The last ACK we sent for a 2xx on this leg: sent again when the 2xx is
    /// (our ACK was lost).
    pub ack: Option<Vec<u8>>,
}

/// A click-to-dial session.
#[derive(Debug)]
pub struct Dial {
    /// The FIFO request id to answer.
    pub id: Option<u64>,
    /// Extension A.
    pub a: u16,
    /// What A is connected to (as dialled).
    pub target: String,
    /// The extension reached for it (after forwards, speed dials), once known
    /// (none: a number outside).
    pub b: Option<u16>,
    /// Leg to A.
    pub leg_a: Leg,
    /// Leg to B, once A answered.
    pub leg_b: Option<Leg>,
    /// Start / answer times.
    pub start_ms: u64,
    /// When both legs were connected.
    pub answer_ms: Option<u64>,
    /// A must answer by then.
    pub deadline_ms: u64,
    /// Call-table slot.
    pub slot: Option<usize>,
    /// Result sent.
    pub reported: bool,
    /// The last progress step reported to the command's sender.
    pub step: Option<DialStep>,
    /// A re-INVITE from one side waiting for the other side's answer.
    pub reinvite: Option<Reinvite>,
    /// Branches of answered re-INVITEs (to ACK their retransmitted 2xx).
    pub branches: Vec<String>,
}

/// A re-INVITE passed from one leg to the other.
#[derive(Debug)]
pub struct Reinvite {
    /// Answers the side that sent it.
    pub replier: super::reply::Replier,
    /// The leg it was passed to.
    pub to: Side,
    /// Our branch and CSeq of the re-INVITE on that leg.
    pub branch: String,
    /// Its CSeq number.
    pub cseq: u32,
}

/// The click-to-dial calls in progress and how their messages find them.
#[derive(Debug, Default)]
pub(super) struct DialBook {
    /// By call number.
    calls: HashMap<u32, Dial>,
    /// By the branches of the INVITEs the switch sent for them, with the leg.
    branches: HashMap<String, (u32, Side)>,
    /// By the Call-ID of either leg.
    by_call_id: HashMap<String, u32>,
}

impl Leg {
    /// A leg about to be called: Call-ID, our branch and Via, the Request-URI
    /// and where it goes, our From and its To (no tag yet).
    pub fn new(
        call_id: String,
        (branch, via): (String, String),
        uri: &str,
        dest: Dest,
        (from, to): (String, String),
    ) -> Leg {
        Leg {
            call_id,
            branch,
            uri: uri.to_string(),
            dest,
            sent_to: dest,
            route: Vec::new(),
            via,
            from,
            to,
            contact: String::new(),
            retx: None,
            proceeding: false,
            answered: false,
            cseq: 1,
            ack: None,
        }
    }
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What a click-to-dial call's timers ask for at one instant ([`Dial::tick`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DialDue {
    /// INVITEs to send again.
    pub resend: Vec<(Dest, Vec<u8>)>,
    /// An INVITE got no answer in time, or A did not answer: the call ends.
    pub timed_out: bool,
}

impl Dial {
    /// Leg `side` (B only once A answered).
    pub fn leg(&self, side: Side) -> Option<&Leg> {
        match side {
            Side::A => Some(&self.leg_a),
            Side::B => self.leg_b.as_ref(),
        }
    }

    /// Leg `side`, to change.
    pub fn leg_mut(&mut self, side: Side) -> Option<&mut Leg> {
        match side {
            Side::A => Some(&mut self.leg_a),
            Side::B => self.leg_b.as_mut(),
        }
    }

    /// The leg whose Call-ID is `call_id` (else B: the book found the call by
    /// one of its legs' Call-IDs).
    pub fn side_of(&self, call_id: &str) -> Side {
        if self.leg_a.call_id == call_id {
            Side::A
        } else {
            Side::B
        }
    }

    /// Whether both legs are connected.
    pub fn connected(&self) -> bool {
        self.leg_b.as_ref().is_some_and(|b| b.answered)
    }

    /// Run the call's timers to `now_ms`: INVITE retransmissions (A/B), A's
    /// window to answer.
    pub fn tick(&mut self, now_ms: u64) -> DialDue {
        let mut due = DialDue::default();
        for leg in [Some(&mut self.leg_a), self.leg_b.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(r) = leg.retx.as_mut() {
                match r.due(now_ms, T2_MS * 16) {
                    Ok(true) if !leg.proceeding => due.resend.push((r.dest, r.bytes.clone())),
                    Ok(_) => {}
                    Err(()) => due.timed_out = true,
                }
            }
        }
        due.timed_out |= !self.leg_a.answered && now_ms >= self.deadline_ms;
        due
    }

    /// The call-table entry of call `no` in `phase` (`status`: why it ended).
    pub fn entry(&self, no: u32, phase: CallPhase, status: u16) -> CallEntry {
        let mut e = CallEntry::FREE;
        e.id = no;
        e.state = match phase {
            CallPhase::Dialing => call_state::DIALING,
            CallPhase::Ringing => call_state::RINGING,
            CallPhase::Answered => call_state::ANSWERED,
            CallPhase::Ended => call_state::ENDED,
        };
        e.cause = status;
        put_str(&mut e.from, &self.a.to_string());
        put_str(&mut e.to, &self.target);
        put_str(&mut e.call_id, &self.leg_a.call_id);
        e.start_ms = self.start_ms;
        e.answer_ms = self.answer_ms.unwrap_or(0);
        e
    }

    /// Call `no`'s record at its end.
    pub fn record(&self, no: u32, now_ms: u64, outcome: CallOutcome, status: u16) -> CallRecord {
        let (ring_ms, talk_ms) = CallRecord::times(self.start_ms, self.answer_ms, now_ms);
        CallRecord {
            call: no,
            outcome,
            status,
            caller: self.a.to_string(),
            dialled: self.target.clone(),
            answered_by: self.answer_ms.map(|_| match self.b {
                None => self.target.clone(),
                Some(b) => b.to_string(),
            }),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms,
            end_ms: now_ms,
            ring_ms,
            talk_ms,
            route: Route::ClickToDial,
            forwards: Vec::new(),
            restarts: 0,
        }
    }
}

impl DialBook {
    /// Call `no`.
    pub fn get(&self, no: u32) -> Option<&Dial> {
        self.calls.get(&no)
    }

    /// Call `no`, to change.
    pub fn get_mut(&mut self, no: u32) -> Option<&mut Dial> {
        self.calls.get_mut(&no)
    }

    /// Whether call `no` is a click-to-dial call in progress.
    pub fn contains(&self, no: u32) -> bool {
        self.calls.contains_key(&no)
    }

    /// The calls in progress with their numbers.
    pub fn iter(&self) -> impl Iterator<Item = (&u32, &Dial)> {
        self.calls.iter()
    }

    /// The numbers of the calls in progress.
    pub fn numbers(&self) -> Vec<u32> {
        self.calls.keys().copied().collect()
    }

    /// Add call `no`, found by its legs' Call-IDs from now on.
    pub fn insert(&mut self, no: u32, d: Dial) {
        self.calls.insert(no, d);
        self.index_call_ids(no);
    }

    /// The call with a leg of this Call-ID.
    pub fn by_call_id(&self, call_id: &str) -> Option<u32> {
        self.by_call_id.get(call_id).copied()
    }

    /// The call and leg our INVITE with this branch was for.
    pub fn by_branch(&self, branch: &str) -> Option<(u32, Side)> {
        self.branches.get(branch).copied()
    }

    /// Our INVITE on leg `side` of call `no` went out with `branch`.
    pub fn index_branch(&mut self, branch: String, no: u32, side: Side) {
        self.branches.insert(branch, (no, side));
    }

    /// Find call `no` by the Call-IDs of its legs (again once B's leg exists).
    pub fn index_call_ids(&mut self, no: u32) {
        let Some(d) = self.calls.get(&no) else {
            return;
        };
        for leg in [Some(&d.leg_a), d.leg_b.as_ref()].into_iter().flatten() {
            self.by_call_id.insert(leg.call_id.clone(), no);
        }
    }

    /// Forget call `no` and every way to find it.
    pub fn remove(&mut self, no: u32) -> Option<Dial> {
        let d = self.calls.remove(&no)?;
        for leg in [Some(&d.leg_a), d.leg_b.as_ref()].into_iter().flatten() {
            self.by_call_id.remove(&leg.call_id);
            self.branches.remove(&leg.branch);
        }
        for b in &d.branches {
            self.branches.remove(b);
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::call::TRANSACTION_TIMEOUT_MS;

    fn leg(call_id: &str, port: u16) -> Leg {
        let dest = Dest::Udp(format!("127.0.0.1:{port}").parse().expect("addr"));
        let branch = format!("z9hG4bK{call_id}");
        let via = format!("SIP/2.0/UDP 127.0.0.1:5060;branch={branch}");
        let parties = ("<sip:x@h>;tag=1".to_string(), "<sip:21@h>".to_string());
        Leg::new(call_id.into(), (branch, via), "sip:21@h", dest, parties)
    }

    fn dial() -> Dial {
        Dial {
            id: Some(7),
            a: 21,
            target: "35".into(),
            b: None,
            leg_a: leg("a", 5062),
            leg_b: None,
            start_ms: 1000,
            answer_ms: None,
            deadline_ms: 31_000,
            slot: None,
            reported: false,
            step: None,
            reinvite: None,
            branches: vec!["z9hG4bKre".into()],
        }
    }

    #[test]
    fn legs_by_side_and_call_id() {
        let mut d = dial();
        assert_eq!(d.side_of("a"), Side::A);
        assert!(d.leg(Side::B).is_none() && !d.connected());
        d.leg_b = Some(leg("b", 5064));
        assert_eq!(d.side_of("b"), Side::B);
        assert_eq!(Side::B.other(), Side::A);
        d.leg_mut(Side::B).expect("b").answered = true;
        assert!(d.connected());
    }

    #[test]
    fn a_silent_leg_is_resent_and_a_that_never_answers_times_out() {
        let mut d = dial();
        let dest = d.leg_a.dest;
        d.leg_a.retx = Some(Retx::new(b"INVITE".to_vec(), dest, 1000, T2_MS * 16));
        assert_eq!(d.tick(1499), DialDue::default());
        assert_eq!(d.tick(1500).resend, vec![(dest, b"INVITE".to_vec())]);
        d.leg_a.proceeding = true;
        let ringing = d.tick(2500);
        assert!(ringing.resend.is_empty() && !ringing.timed_out);
        assert!(d.tick(31_000).timed_out, "A's window");
        let mut lost = dial();
        lost.deadline_ms = u64::MAX;
        lost.leg_a.retx = Some(Retx::new(vec![], dest, 0, T2_MS * 16));
        assert!(lost.tick(TRANSACTION_TIMEOUT_MS).timed_out, "Timer B");
    }

    #[test]
    fn the_record_names_who_answered() {
        let mut d = dial();
        let missed = d.record(1001, 5000, CallOutcome::NoAnswer, 480);
        assert_eq!(
            (missed.answered_by, missed.ring_ms, missed.talk_ms),
            (None, 4000, 0)
        );
        d.b = Some(35);
        d.answer_ms = Some(3000);
        let talked = d.record(1001, 9000, CallOutcome::Completed, 200);
        assert_eq!(talked.answered_by.as_deref(), Some("35"));
        assert_eq!((talked.ring_ms, talked.talk_ms), (2000, 6000));
        assert_eq!(talked.route, Route::ClickToDial);
    }

    #[test]
    fn removing_a_call_forgets_every_way_to_it() {
        let mut book = DialBook::default();
        let mut d = dial();
        d.leg_b = Some(leg("b", 5064));
        book.branches
            .insert(d.leg_a.branch.clone(), (1001, Side::A));
        book.branches.insert("z9hG4bKb".into(), (1001, Side::B));
        book.branches.insert("z9hG4bKre".into(), (1001, Side::B));
        book.calls.insert(1001, d);
        book.index_call_ids(1001);
        assert_eq!(book.by_call_id.len(), 2);
        assert!(book.remove(1001).is_some());
        assert!(book.calls.is_empty() && book.by_call_id.is_empty() && book.branches.is_empty());
        assert!(book.remove(1001).is_none());
    }
}
