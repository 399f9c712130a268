//! Typed views of a state-block snapshot: what every client reads, decoded once.
//!
//! Strings are as the daemon published them (they may hold anything a phone sent):
//! pass them through [`super::text::display_safe`] before a terminal sees them.
//! Absent values are `None`, never empty strings or zero times.

use crate::auth::DigestAlgorithm;
use crate::dialplan::Plan;
use crate::event::{CallOutcome, CallPhase, RouteState};
use crate::stateblock::{
    call_state, get_bit, get_str, CallEntry, ContactEntry, Lamp, LampBits, RouteEntry, Snapshot,
    EXT_CONFIGURED,
};

/// One registered contact of an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactView {
    /// Contact URI.
    pub uri: String,
    /// Source address:port of its REGISTER.
    pub source: String,
    /// Its User-Agent (empty when it sent none).
    pub user_agent: String,
    /// The digest algorithm it registered with (none: not recorded).
    pub algorithm: Option<DigestAlgorithm>,
    /// When it (last) registered, ms since the epoch.
    pub registered_ms: u64,
    /// When it expires, ms since the epoch.
    pub expires_ms: u64,
}

impl ContactView {
    fn of(c: &ContactEntry) -> ContactView {
        ContactView {
            uri: get_str(&c.uri),
            source: get_str(&c.source),
            user_agent: get_str(&c.user_agent),
            algorithm: DigestAlgorithm::from_code(c.algorithm),
            registered_ms: c.registered_ms,
            expires_ms: c.expires_ms,
        }
    }
}

/// One extension of the plan with its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtView {
    /// Extension number.
    pub number: u16,
    /// Display name (empty: none).
    pub name: String,
    /// It has a section in the configuration.
    pub configured: bool,
    /// Contacts allowed (`lines`).
    pub lines: u8,
    /// Registered contacts.
    pub contacts: Vec<ContactView>,
    /// At least one contact registered.
    pub registered: bool,
    /// A call to it rings.
    pub ringing: bool,
    /// In a call.
    pub busy: bool,
    /// Do not disturb.
    pub dnd: bool,
    /// Forwarded.
    pub forwarded: bool,
    /// Forward-always target.
    pub forward_always: Option<String>,
    /// Forward-on-busy target.
    pub forward_busy: Option<String>,
    /// Forward-on-no-answer target.
    pub forward_noanswer: Option<String>,
    /// When DND reverts by itself, ms since the epoch.
    pub dnd_until_ms: Option<u64>,
    /// When the first of its forwards reverts by itself, ms since the epoch.
    pub forward_until_ms: Option<u64>,
}

impl ExtView {
    /// The lamp: the first that applies of ringing, busy, DND, forwarded,
    /// registered; else offline when configured and unconfigured when not.
    pub fn lamp(&self) -> Lamp {
        Lamp::of(LampBits {
            configured: self.configured,
            registered: self.registered,
            ringing: self.ringing,
            busy: self.busy,
            dnd: self.dnd,
            forwarded: self.forwarded,
        })
    }

    /// The forwards set, as `(kind, target)` with kind `always`, `busy` or
    /// `no-answer`.
    pub fn forwards(&self) -> Vec<(&'static str, &str)> {
        [
            ("always", &self.forward_always),
            ("busy", &self.forward_busy),
            ("no-answer", &self.forward_noanswer),
        ]
        .into_iter()
        .filter_map(|(k, t)| t.as_deref().map(|t| (k, t)))
        .collect()
    }

    /// Whether any forward target is set.
    pub fn has_forward(&self) -> bool {
        self.forward_always.is_some()
            || self.forward_busy.is_some()
            || self.forward_noanswer.is_some()
    }

    /// Whether it has DND on or any forward set.
    pub fn has_settings(&self) -> bool {
        self.dnd || self.has_forward()
    }
}

/// One call of the call table: live, or ended moments ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    /// Switch-local call number (1000 and up).
    pub id: u32,
    /// Where it is.
    pub phase: CallPhase,
    /// Rings so far.
    pub rings: u8,
    /// How it ended and the SIP status behind it (ended calls only).
    pub outcome: Option<(CallOutcome, u16)>,
    /// Caller.
    pub from: String,
    /// Callee as dialled.
    pub to: String,
    /// SIP Call-ID, as far as the table keeps it (a prefix).
    pub call_id: String,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Answer, ms since the epoch.
    pub answer_ms: Option<u64>,
    /// End, ms since the epoch.
    pub end_ms: Option<u64>,
}

/// Whether a call-table slot holds a call (live or recently ended): the one rule.
pub fn slot_in_use(e: &CallEntry) -> bool {
    e.id != 0 && e.state != call_state::FREE
}

impl CallView {
    /// The call in table slot `e` (see [`slot_in_use`]).
    pub fn of(e: &CallEntry) -> CallView {
        let phase = CallPhase::from_u16(u16::from(e.state));
        CallView {
            id: e.id,
            phase,
            rings: e.ring_count,
            outcome: (phase == CallPhase::Ended)
                .then(|| (CallOutcome::from_u16(e.outcome), e.cause)),
            from: get_str(&e.from),
            to: get_str(&e.to),
            call_id: get_str(&e.call_id),
            start_ms: e.start_ms,
            answer_ms: (e.answer_ms != 0).then_some(e.answer_ms),
            end_ms: (e.end_ms != 0).then_some(e.end_ms),
        }
    }

    /// Whether the call is still going on.
    pub fn is_live(&self) -> bool {
        self.phase != CallPhase::Ended
    }

    /// Whether extension `n` takes part (as caller or as dialled callee).
    pub fn involves(&self, n: u16) -> bool {
        let n = n.to_string();
        self.from == n || self.to == n
    }

    /// Until when it counts: its end, or `now_ms` while it lasts.
    fn until(&self, now_ms: u64) -> u64 {
        match self.end_ms {
            Some(end) if !self.is_live() => end,
            _ => now_ms,
        }
    }

    /// Milliseconds since it started (up to its end).
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        self.until(now_ms).saturating_sub(self.start_ms)
    }

    /// Milliseconds talked (since the answer, up to the end; 0 if never answered).
    pub fn talk_ms(&self, now_ms: u64) -> u64 {
        self.answer_ms
            .map_or(0, |a| self.until(now_ms).saturating_sub(a))
    }

    /// The time a client shows: talk time once answered, else the time since it
    /// started.
    pub fn shown_ms(&self, now_ms: u64) -> u64 {
        if self.answer_ms.is_some() {
            self.talk_ms(now_ms)
        } else {
            self.age_ms(now_ms)
        }
    }
}

/// One upstream connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    /// The routes it serves, `+`-joined (`default+sms`).
    pub name: String,
    /// The peer as configured (host:port).
    pub addr: String,
    /// Its state.
    pub state: RouteState,
    /// In this state since, ms since the epoch.
    pub since_ms: u64,
    /// Next connection attempt while not connected, ms since the epoch.
    pub retry_ms: Option<u64>,
    /// Connections established.
    pub connects: u64,
    /// Attempts that failed and connections lost or cut off.
    pub failures: u64,
    /// SIP messages sent to the peer.
    pub sent: u64,
    /// SIP messages received from the peer.
    pub received: u64,
    /// Calls and texts refused with 503 while it was not connected.
    pub refused: u64,
    /// The last error.
    pub last_error: Option<String>,
}

impl RouteView {
    fn of(r: &RouteEntry) -> RouteView {
        RouteView {
            name: get_str(&r.name),
            addr: get_str(&r.addr),
            state: r.state(),
            since_ms: r.since_ms,
            retry_ms: (r.retry_ms != 0).then_some(r.retry_ms),
            connects: r.connects,
            failures: r.failures,
            sent: r.sent,
            received: r.received,
            refused: r.refused,
            last_error: Some(get_str(&r.last_error)).filter(|s| !s.is_empty()),
        }
    }
}

fn target(field: &[u8]) -> Option<String> {
    Some(get_str(field)).filter(|s| !s.is_empty())
}

/// Every extension of the plan of `snap`, in plan order.
pub fn extensions(snap: &Snapshot) -> Vec<ExtView> {
    let plan: Plan = snap.header.plan;
    let b = &snap.body.bitmaps;
    snap.exts()
        .iter()
        .enumerate()
        .map(|(i, e)| ExtView {
            number: plan.number_at(i).unwrap_or(e.number),
            name: get_str(&e.name),
            configured: e.flags & EXT_CONFIGURED != 0,
            lines: e.lines,
            contacts: e
                .active_contacts()
                .iter()
                .filter(|c| c.expires_ms != 0)
                .map(ContactView::of)
                .collect(),
            registered: get_bit(&b.registered, i),
            ringing: get_bit(&b.ringing, i),
            busy: get_bit(&b.busy, i),
            dnd: get_bit(&b.dnd, i),
            forwarded: get_bit(&b.forwarded, i),
            forward_always: target(&e.forward_always),
            forward_busy: target(&e.forward_busy),
            forward_noanswer: target(&e.forward_noanswer),
            dnd_until_ms: (e.dnd_until_ms != 0).then_some(e.dnd_until_ms),
            forward_until_ms: (e.forward_until_ms != 0).then_some(e.forward_until_ms),
        })
        .collect()
}

/// The calls of `snap`: live ones first (oldest first), then ended ones (newest
/// first).
pub fn calls(snap: &Snapshot) -> Vec<CallView> {
    let mut calls: Vec<CallView> = snap
        .body
        .calls
        .iter()
        .filter(|e| slot_in_use(e))
        .map(CallView::of)
        .collect();
    calls.sort_by_key(|c| {
        if c.is_live() {
            (0, c.start_ms, c.id)
        } else {
            (1, u64::MAX - c.end_ms.unwrap_or(0), c.id)
        }
    });
    calls
}

/// The upstream connections of `snap`, in `[upstream]` order.
pub fn routes(snap: &Snapshot) -> Vec<RouteView> {
    snap.routes().map(RouteView::of).collect()
}

/// The run state in force ([`crate::runstate::DEFAULT_RUNSTATE`] unless one was
/// chosen).
pub fn runstate(snap: &Snapshot) -> String {
    match get_str(&snap.body.site.runstate) {
        r if r.is_empty() => crate::runstate::DEFAULT_RUNSTATE.to_string(),
        r => r,
    }
}

/// The run states the switch knows, `day` first (as far as they fit the
/// state block).
pub fn runstate_names(snap: &Snapshot) -> Vec<String> {
    get_str(&snap.body.site.runstate_names)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The configured group numbers (as far as they fit the state block).
pub fn group_numbers(snap: &Snapshot) -> Vec<u16> {
    get_str(&snap.body.site.group_numbers)
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stateblock::{put_str, set_bit, Body, HeaderInfo};

    fn snap() -> Snapshot {
        let plan = Plan::TwoDigit;
        let mut body = Body::boxed_zeroed();
        for (i, n) in plan.numbers().enumerate() {
            body.exts[i].number = n;
        }
        let e = &mut body.exts[11];
        e.flags = EXT_CONFIGURED;
        e.lines = 2;
        put_str(&mut e.name, "Ann");
        e.contact_count = 2;
        put_str(&mut e.contacts[0].uri, "sip:21@10.0.0.1");
        e.contacts[0].expires_ms = 99;
        put_str(&mut e.contacts[1].uri, "sip:21@10.0.0.2");
        put_str(&mut e.forward_busy, "35");
        set_bit(&mut body.bitmaps.registered, 11, true);
        set_bit(&mut body.bitmaps.dnd, 11, true);
        let mut c = CallEntry::FREE;
        c.id = 1001;
        c.state = call_state::ENDED;
        c.start_ms = 5;
        c.answer_ms = 20;
        c.end_ms = 50;
        c.cause = 200;
        body.calls[0] = c;
        let mut c = CallEntry::FREE;
        c.id = 1002;
        c.state = call_state::RINGING;
        c.ring_count = 3;
        put_str(&mut c.from, "21");
        put_str(&mut c.to, "35");
        c.start_ms = 10;
        body.calls[5] = c;
        let mut c = CallEntry::FREE;
        c.id = 1003; // a number with a freed slot: not a call
        body.calls[6] = c;
        Snapshot {
            header: HeaderInfo {
                pid: 7,
                plan,
                start_ms: 1,
                heartbeat_ms: 2,
                bound: "127.0.0.1:5060".into(),
                state_dir: String::new(),
                realm: "test".into(),
                event_head: 0,
            },
            body,
        }
    }

    #[test]
    fn extensions_decode() {
        let exts = extensions(&snap());
        assert_eq!(exts.len(), 80);
        let e = &exts[11];
        assert_eq!(e.number, 21);
        assert!(e.configured && e.registered && e.dnd && !e.ringing);
        assert_eq!(e.lamp(), Lamp::Dnd);
        assert_eq!(e.contacts.len(), 1, "unused contact slots are not contacts");
        assert_eq!(e.forward_busy.as_deref(), Some("35"));
        assert_eq!(e.forward_always, None);
        assert_eq!(e.forwards(), vec![("busy", "35")]);
        assert!(e.has_settings());
        assert_eq!(e.dnd_until_ms, None);
    }

    #[test]
    fn calls_live_first_and_one_liveness_rule() {
        let calls = calls(&snap());
        assert_eq!(
            calls.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![1002, 1001]
        );
        assert!(calls[0].is_live() && calls[0].involves(35) && !calls[0].involves(22));
        assert_eq!(calls[0].shown_ms(110), 100);
        assert_eq!(calls[0].outcome, None);
        let ended = &calls[1];
        assert_eq!(ended.outcome.map(|o| o.1), Some(200));
        assert_eq!(ended.talk_ms(1000), 30, "up to its end");
        assert_eq!(ended.age_ms(1000), 45);
    }

    #[test]
    fn runstate_defaults_to_day() {
        let mut s = snap();
        assert_eq!(runstate(&s), crate::runstate::DEFAULT_RUNSTATE);
        put_str(&mut s.body.site.runstate, "night");
        assert_eq!(runstate(&s), "night");
    }
}
