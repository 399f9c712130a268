//! The switch as the console shows it: an owned, sanitised copy of one state-block
//! snapshot (extensions of the plan, calls, counters, header facts).
//!
//! It is plain data that compares with `==`, so the console redraws only when the
//! switch really changed; the heartbeat is deliberately not part of it.

use crate::ext_state::ExtState;
use crate::sanitize::clean;
use coventry_shared::dialplan::Plan;
use coventry_shared::event::{CallOutcome, CallPhase, RouteState};
use coventry_shared::stateblock::{
    call_state, get_bit, get_str, ContactEntry, Counters, ExtEntry, Snapshot, EXT_CONFIGURED,
};

/// One registered contact of an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Contact URI.
    pub uri: String,
    /// Source address:port of its REGISTER.
    pub source: String,
    /// Its User-Agent.
    pub user_agent: String,
    /// When it (last) registered, ms since the epoch.
    pub registered_ms: u64,
    /// When it expires, ms since the epoch.
    pub expires_ms: u64,
}

/// One extension of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext {
    /// Extension number.
    pub number: u16,
    /// Display name (may be empty).
    pub name: String,
    /// It has a section in the configuration.
    pub configured: bool,
    /// Contacts allowed.
    pub lines: u8,
    /// Registered contacts.
    pub contacts: Vec<Contact>,
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
    /// Forward-always target (empty: none).
    pub forward_always: String,
    /// Forward-on-busy target.
    pub forward_busy: String,
    /// Forward-on-no-answer target.
    pub forward_noanswer: String,
    /// When DND reverts by itself, ms since the epoch (0: never).
    pub dnd_until_ms: u64,
    /// When the forwards revert by themselves (0: never).
    pub forward_until_ms: u64,
}

impl Ext {
    /// An unconfigured, idle extension `number`.
    pub fn empty(number: u16) -> Ext {
        Ext {
            number,
            name: String::new(),
            configured: false,
            lines: 0,
            contacts: Vec::new(),
            registered: false,
            ringing: false,
            busy: false,
            dnd: false,
            forwarded: false,
            forward_always: String::new(),
            forward_busy: String::new(),
            forward_noanswer: String::new(),
            dnd_until_ms: 0,
            forward_until_ms: 0,
        }
    }

    /// The state shown in the grid.
    pub fn state(&self) -> ExtState {
        crate::ext_state::of(self)
    }

    /// Whether any forward target is set.
    pub fn has_forward(&self) -> bool {
        !(self.forward_always.is_empty()
            && self.forward_busy.is_empty()
            && self.forward_noanswer.is_empty())
    }
}

/// One call of the call table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Switch-local call number (1000 and up).
    pub id: u32,
    /// Where it is.
    pub phase: CallPhase,
    /// Rings so far.
    pub rings: u8,
    /// SIP status of the outcome once ended.
    pub cause: u16,
    /// How it ended (meaningful once ended).
    pub outcome: CallOutcome,
    /// Caller.
    pub from: String,
    /// Callee as dialled.
    pub to: String,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Answer, ms since the epoch (0: not answered).
    pub answer_ms: u64,
    /// End, ms since the epoch (0: not ended).
    pub end_ms: u64,
}

impl Call {
    /// Whether the call is still going on.
    pub fn is_live(&self) -> bool {
        self.phase != CallPhase::Ended
    }

    /// Whether extension `n` takes part (as caller or as dialled callee).
    pub fn involves(&self, n: u16) -> bool {
        let n = n.to_string();
        self.from == n || self.to == n
    }

    /// The time to show: talk time once answered, else time since the start (up to
    /// the end for an ended call), in ms.
    pub fn duration_ms(&self, now_ms: u64) -> u64 {
        let end = if self.end_ms > 0 { self.end_ms } else { now_ms };
        let from = if self.answer_ms > 0 {
            self.answer_ms
        } else {
            self.start_ms
        };
        end.saturating_sub(from)
    }
}

/// Facts from the header that do not change while the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// Daemon pid.
    pub pid: u32,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Bound UDP address:port.
    pub bound: String,
    /// Digest realm.
    pub realm: String,
}

/// One upstream connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The routes it serves (`default+sms`).
    pub route: String,
    /// The peer as configured.
    pub addr: String,
    /// Its state.
    pub state: RouteState,
}

/// Everything the console shows about the switch, as of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The dial plan.
    pub plan: Plan,
    /// Header facts.
    pub daemon: Daemon,
    /// Every extension of the plan, in order.
    pub exts: Vec<Ext>,
    /// Calls: live ones first (oldest first), then ended ones (newest first).
    pub calls: Vec<Call>,
    /// The daemon's counters.
    pub counters: Counters,
    /// The upstream connections (none when no upstream is configured).
    pub upstream: Vec<Upstream>,
    /// The run state in force (`day` unless one was chosen).
    pub runstate: String,
}

fn contact(c: &ContactEntry) -> Contact {
    Contact {
        uri: clean(&get_str(&c.uri)),
        source: clean(&get_str(&c.source)),
        user_agent: clean(&get_str(&c.user_agent)),
        registered_ms: c.registered_ms,
        expires_ms: c.expires_ms,
    }
}

fn ext(snap: &Snapshot, i: usize, number: u16, e: &ExtEntry) -> Ext {
    let bits = &snap.body.bitmaps;
    Ext {
        number,
        name: clean(&get_str(&e.name)),
        configured: e.flags & EXT_CONFIGURED != 0,
        lines: e.lines,
        contacts: e.active_contacts().iter().map(contact).collect(),
        registered: get_bit(&bits.registered, i),
        ringing: get_bit(&bits.ringing, i),
        busy: get_bit(&bits.busy, i),
        dnd: get_bit(&bits.dnd, i),
        forwarded: get_bit(&bits.forwarded, i),
        forward_always: clean(&get_str(&e.forward_always)),
        forward_busy: clean(&get_str(&e.forward_busy)),
        forward_noanswer: clean(&get_str(&e.forward_noanswer)),
        dnd_until_ms: e.dnd_until_ms,
        forward_until_ms: e.forward_until_ms,
    }
}

impl Site {
    /// Decode a state-block snapshot.
    pub fn from_snapshot(snap: &Snapshot) -> Site {
        let plan = snap.header.plan;
        let exts = plan
            .numbers()
            .enumerate()
            .map(|(i, n)| ext(snap, i, n, &snap.body.exts[i]))
            .collect();
        let mut calls: Vec<Call> = snap
            .body
            .calls
            .iter()
            .filter(|c| c.id != 0 && c.state != call_state::FREE)
            .map(|c| Call {
                id: c.id,
                phase: CallPhase::from_u16(u16::from(c.state)),
                rings: c.ring_count,
                cause: c.cause,
                outcome: CallOutcome::from_u16(c.outcome),
                from: clean(&get_str(&c.from)),
                to: clean(&get_str(&c.to)),
                start_ms: c.start_ms,
                answer_ms: c.answer_ms,
                end_ms: c.end_ms,
            })
            .collect();
        calls.sort_by_key(|c| {
            if c.is_live() {
                (0, c.start_ms, c.id)
            } else {
                (1, u64::MAX - c.end_ms, c.id)
            }
        });
        Site {
            plan,
            daemon: Daemon {
                pid: snap.header.pid,
                start_ms: snap.header.start_ms,
                bound: clean(&snap.header.bound),
                realm: clean(&snap.header.realm),
            },
            exts,
            calls,
            counters: snap.body.counters,
            upstream: snap
                .routes()
                .map(|r| Upstream {
                    route: clean(&get_str(&r.name)),
                    addr: clean(&get_str(&r.addr)),
                    state: r.state(),
                })
                .collect(),
            runstate: match clean(&get_str(&snap.body.site.runstate)) {
                r if r.is_empty() => coventry_shared::runstate::DEFAULT_RUNSTATE.to_string(),
                r => r,
            },
        }
    }

    /// The extension numbered `n`, if it is in the plan.
    pub fn ext(&self, n: u16) -> Option<&Ext> {
        self.plan.index_of(n).and_then(|i| self.exts.get(i))
    }

    /// Numbers of the configured extensions.
    pub fn configured(&self) -> impl Iterator<Item = u16> + '_ {
        self.exts.iter().filter(|e| e.configured).map(|e| e.number)
    }

    /// Calls that are still going on.
    pub fn live_calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.iter().filter(|c| c.is_live())
    }

    /// The live calls extension `n` takes part in.
    pub fn calls_of(&self, n: u16) -> impl Iterator<Item = &Call> {
        self.live_calls().filter(move |c| c.involves(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::stateblock::{put_str, set_bit, Body, CallEntry, HeaderInfo};

    fn snap() -> Snapshot {
        let plan = Plan::TwoDigit;
        let mut body = Body::boxed_zeroed();
        for (i, n) in plan.numbers().enumerate() {
            body.exts[i].number = n;
        }
        let e = &mut body.exts[11];
        e.flags = EXT_CONFIGURED;
        e.lines = 2;
        put_str(&mut e.name, "Ann\x1b[31m");
        e.contact_count = 1;
        put_str(&mut e.contacts[0].uri, "sip:21@10.0.0.1");
        put_str(&mut e.contacts[0].user_agent, "Evil\x07Phone");
        e.contacts[0].expires_ms = 99;
        put_str(&mut e.forward_busy, "35");
        set_bit(&mut body.bitmaps.registered, 11, true);
        set_bit(&mut body.bitmaps.dnd, 11, true);
        let mut c = CallEntry::FREE;
        c.id = 1001;
        c.state = call_state::ENDED;
        c.end_ms = 50;
        body.calls[0] = c;
        let mut c = CallEntry::FREE;
        c.id = 1002;
        c.state = call_state::RINGING;
        c.ring_count = 3;
        put_str(&mut c.from, "21");
        put_str(&mut c.to, "35");
        c.start_ms = 10;
        body.calls[5] = c;
        Snapshot {
            header: HeaderInfo {
                pid: 7,
                plan,
                start_ms: 1,
                heartbeat_ms: 2,
                bound: "127.0.0.1:5060".into(),
                realm: "test".into(),
                event_head: 0,
            },
            body,
        }
    }

    #[test]
    fn decodes_and_cleans() {
        let site = Site::from_snapshot(&snap());
        assert_eq!(site.exts.len(), 80);
        let e = site.ext(21).expect("21");
        assert!(e.configured && e.registered && e.dnd && !e.ringing);
        assert_eq!(e.name, "Ann\u{FFFD}[31m");
        assert_eq!(e.contacts.len(), 1);
        assert_eq!(e.contacts[0].user_agent, "Evil\u{FFFD}Phone");
        assert_eq!(e.forward_busy, "35");
        assert!(e.has_forward());
        assert_eq!(site.configured().collect::<Vec<_>>(), vec![21]);
        assert_eq!(
            site.calls.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![1002, 1001],
            "live calls first"
        );
        assert_eq!(site.calls_of(35).count(), 1);
        assert_eq!(site.calls_of(22).count(), 0);
        assert_eq!(site.calls[0].duration_ms(110), 100);
    }

    #[test]
    fn equal_snapshots_compare_equal() {
        let s = snap();
        assert_eq!(Site::from_snapshot(&s), Site::from_snapshot(&s));
        let mut t = snap();
        t.header.heartbeat_ms = 999;
        assert_eq!(
            Site::from_snapshot(&s),
            Site::from_snapshot(&t),
            "the heartbeat alone is no change"
        );
    }
}
