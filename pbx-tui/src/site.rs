//! The switch as the console shows it: an owned, sanitised copy of one state-block
//! snapshot (extensions of the plan, calls, counters, header facts).
//!
//! It is plain data that compares with `==`, so the console redraws only when the
//! switch really changed; the heartbeat is deliberately not part of it.

use crate::sanitize::clean;
use coventry_shared::client::view::{self, CallView, ContactView, ExtView, RouteView};
use coventry_shared::dialplan::Plan;
use coventry_shared::stateblock::{Counters, Snapshot};

fn clean_opt(s: &mut Option<String>) {
    if let Some(t) = s {
        *t = clean(t);
    }
}

fn clean_contact(mut c: ContactView) -> ContactView {
    c.uri = clean(&c.uri);
    c.source = clean(&c.source);
    c.user_agent = clean(&c.user_agent);
    c
}

fn clean_ext(mut e: ExtView) -> ExtView {
    e.name = clean(&e.name);
    e.contacts = e.contacts.into_iter().map(clean_contact).collect();
    clean_opt(&mut e.forward_always);
    clean_opt(&mut e.forward_busy);
    clean_opt(&mut e.forward_noanswer);
    e
}

fn clean_call(mut c: CallView) -> CallView {
    c.from = clean(&c.from);
    c.to = clean(&c.to);
    c.call_id = clean(&c.call_id);
    c
}

fn clean_route(mut r: RouteView) -> RouteView {
    r.name = clean(&r.name);
    r.addr = clean(&r.addr);
    clean_opt(&mut r.last_error);
    r
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

/// Everything the console shows about the switch, as of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The dial plan.
    pub plan: Plan,
    /// Header facts.
    pub daemon: Daemon,
    /// Every extension of the plan, in order.
    pub exts: Vec<ExtView>,
    /// Calls: live ones first (oldest first), then ended ones (newest first).
    pub calls: Vec<CallView>,
    /// The daemon's counters.
    pub counters: Counters,
    /// The upstream connections (none when no upstream is configured).
    pub upstream: Vec<RouteView>,
    /// The run state in force (`day` unless one was chosen).
    pub runstate: String,
}

impl Site {
    /// Decode a state-block snapshot.
    pub fn from_snapshot(snap: &Snapshot) -> Site {
        let plan = snap.header.plan;
        let exts = view::extensions(snap).into_iter().map(clean_ext).collect();
        let calls = view::calls(snap).into_iter().map(clean_call).collect();
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
            upstream: view::routes(snap).into_iter().map(clean_route).collect(),
            runstate: clean(&view::runstate(snap)),
        }
    }

    /// The extension numbered `n`, if it is in the plan.
    pub fn ext(&self, n: u16) -> Option<&ExtView> {
        self.plan.index_of(n).and_then(|i| self.exts.get(i))
    }

    /// Numbers of the configured extensions.
    pub fn configured(&self) -> impl Iterator<Item = u16> + '_ {
        self.exts.iter().filter(|e| e.configured).map(|e| e.number)
    }

    /// Calls that are still going on.
    pub fn live_calls(&self) -> impl Iterator<Item = &CallView> {
        self.calls.iter().filter(|c| c.is_live())
    }

    /// The live calls extension `n` takes part in.
    pub fn calls_of(&self, n: u16) -> impl Iterator<Item = &CallView> {
        self.live_calls().filter(move |c| c.involves(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::stateblock::{
        call_state, put_str, set_bit, Body, CallEntry, HeaderInfo, EXT_CONFIGURED,
    };

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
                state_dir: String::new(),
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
        assert_eq!(e.forward_busy.as_deref(), Some("35"));
        assert!(e.has_forward());
        assert_eq!(site.configured().collect::<Vec<_>>(), vec![21]);
        assert_eq!(
            site.calls.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![1002, 1001],
            "live calls first"
        );
        assert_eq!(site.calls_of(35).count(), 1);
        assert_eq!(site.calls_of(22).count(), 0);
        assert_eq!(site.calls[0].shown_ms(110), 100);
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
