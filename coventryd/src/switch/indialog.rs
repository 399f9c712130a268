//! Requests inside dialogs the switch created — calls it proxied and
//! subscriptions it passed between phones, both Record-Routed through it — are
//! relayed statelessly: only from one of the dialog's parties (its transport
//! address), only to the other, with a branch only the switch can mint; their
//! responses come back the same way. A Route naming the switch, a known Call-ID
//! or a guessed tag earn a stranger nothing.

use super::trust::{back_of, UNTRUSTED_IDENTITY};
use super::Incoming;
use super::Switch;
use crate::sip::dest::Dest;
use crate::sip::forward::{rewrite, status_line, Rewrite};
use crate::sip::headers::Fields;
use crate::sip::{parse, parse::parse_name_addr, parse::parse_via, serialize};
use coventry_shared::event::{CallOutcome, CallPhase};
use std::net::SocketAddr;

/// One side of a dialog the switch created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// The side that sent the request that made the dialog (caller, subscriber).
    Caller,
    /// The side it reached (callee, notifier).
    Callee,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

/// The parties of a dialog: the transport addresses each side is known by.
#[derive(Debug, Default)]
pub(super) struct Parties {
    /// Where the caller (subscriber) speaks from and is reached at.
    pub caller: Vec<Dest>,
    /// Where the callee (notifier) speaks from and is reached at.
    pub callee: Vec<Dest>,
    /// The call the dialog belongs to (none: a subscription passed through).
    pub call: Option<u32>,
    /// The caller's From tag: tells the sides apart when one address is both.
    pub caller_tag: String,
}

impl Parties {
    fn addrs(&self, side: Side) -> &[Dest] {
        match side {
            Side::Caller => &self.caller,
            Side::Callee => &self.callee,
        }
    }

    /// Which side speaks from `src` (a phone calling its own other contact is
    /// both: its From tag decides).
    pub fn side_of(&self, src: Dest, from_tag: &str) -> Option<Side> {
        let caller = self.caller.iter().any(|k| k.same_party(src));
        let callee = self.callee.iter().any(|k| k.same_party(src));
        match (caller, callee) {
            (true, true) if from_tag == self.caller_tag => Some(Side::Caller),
            (true, true) => Some(Side::Callee),
            (true, false) => Some(Side::Caller),
            (false, true) => Some(Side::Callee),
            (false, false) => None,
        }
    }

    /// Whether `dest` is where `side` is known to be reached.
    pub fn reaches(&self, side: Side, dest: Dest) -> bool {
        self.addrs(side).iter().any(|k| k.same_party(dest))
    }
}

pub(super) fn tag_of(value: &str) -> String {
    parse_name_addr(value)
        .and_then(|n| n.tag().map(str::to_string))
        .unwrap_or_default()
}

impl Switch {
    /// Where extension `ext`'s phones are: their contacts and where they
    /// registered from (a phone that moved re-registers before it speaks).
    fn phones_of(&self, ext: Option<u16>) -> Vec<Dest> {
        let Some(ext) = ext else {
            return Vec::new();
        };
        self.registrar
            .contacts(ext)
            .iter()
            .flat_map(|b| [b.dest(), b.source.parse::<SocketAddr>().ok()])
            .flatten()
            .map(Dest::Udp)
            .collect()
    }

    /// The parties of the dialog with this Call-ID, when the switch made it.
    pub(super) fn parties(&self, call_id: &str) -> Option<Parties> {
        if let Some(c) = self
            .calls
            .by_call_id(call_id)
            .as_ref()
            .and_then(|no| self.calls.get(*no))
        {
            let mut caller = vec![c.invite.src, c.invite.replier.dest];
            caller.extend(c.caller.addr);
            caller.extend(self.phones_of(c.caller.ext));
            caller.extend(c.known_at.caller.iter().copied());
            let mut callee: Vec<Dest> = c.branches.iter().map(|b| b.dest).collect();
            callee.extend(c.callee.addr);
            callee.extend(c.known_at.callee.iter().copied());
            callee.extend(self.phones_of(c.callee.ext));
            for b in &c.branches {
                callee.extend(self.phones_of(b.ext));
            }
            caller.sort_unstable_by_key(|d| (d.is_tcp(), d.addr()));
            caller.dedup();
            callee.sort_unstable_by_key(|d| (d.is_tcp(), d.addr()));
            callee.dedup();
            return Some(Parties {
                caller,
                callee,
                call: Some(c.no),
                caller_tag: c.caller.tag.clone().unwrap_or_default(),
            });
        }
        let s = self.subscriptions.relayed(call_id)?;
        let mut caller = vec![s.subscriber];
        caller.extend(self.phones_of(s.subscriber_ext));
        let mut callee = vec![s.notifier];
        callee.extend(self.phones_of(Some(s.notifier_ext)));
        Some(Parties {
            caller,
            callee,
            call: None,
            caller_tag: s.subscriber_tag.clone(),
        })
    }

    /// Route a request inside a dialog the switch created, by its Route header
    /// (we Record-Routed) or its Request-URI; statelessly, with a branch derived
    /// from the incoming one so retransmissions take the same path. Refused
    /// (`r`: answered; an ACK is dropped) unless it comes from one of the
    /// dialog's parties and goes to the other.
    pub(super) fn route_in_dialog(&mut self, inc: &Incoming<'_>, r: Option<super::reply::Replier>) {
        let Incoming {
            now_ms,
            from,
            req,
            f,
        } = *inc;
        let method = req.method.to_string();
        let reject = |sw: &mut Switch, code: u16, reason: Option<&str>| {
            if let Some(r) = r.clone() {
                sw.answer(now_ms, r, code, reason, &[]);
            }
        };
        if f.max_forwards.is_some_and(|m| m.trim() == "0") {
            return reject(self, 483, None);
        }
        let Some(parties) = self.parties(f.call_id) else {
            // Not a dialog of ours, whatever its Route says.
            self.counters.refused += 1;
            let m = crate::logfmt::quoted(&method);
            log::debug!("in-dialog {m} from {from} for no dialog of ours: refused");
            return reject(self, 481, None);
        };
        let Some(side) = parties.side_of(from, &tag_of(f.from)) else {
            self.counters.refused += 1;
            let what = parties
                .call
                .map_or("a subscription".into(), |n| format!("call {n}"));
            let m = crate::logfmt::quoted(&method);
            log::warn!("in-dialog {m} for {what} from a stranger at {from}: refused");
            return reject(self, 403, None);
        };
        let ours = self.our_routes(f);
        let next_hop = match f.routes.get(ours) {
            Some(route) => parse_name_addr(route).and_then(|n| self.hop_of(&n.uri)),
            None => self.hop_of(&serialize::format_uri(&req.uri)),
        };
        let Some(dest) = next_hop else {
            return reject(self, 404, None);
        };
        if self.is_own_addr(dest.addr()) {
            // Addressed to the switch itself with no further route: nothing to
            // forward.
            return reject(self, 481, None);
        }
        if !parties.reaches(side.other(), dest) {
            // A party may not use the dialog to reach a third address.
            self.counters.refused += 1;
            log::warn!(
                "in-dialog {method} from {from} toward {dest}, not a party of its dialog: refused"
            );
            return reject(self, 403, Some("Forbidden (not a party of this dialog)"));
        }
        match parties.call {
            Some(no) => self.track_call_dialog(now_ms, no, side, &method, f),
            None => self.track_relayed_subscription(now_ms, side, &method, f),
        }
        self.relay_statelessly(from, dest, req, f, ours);
    }

    /// CSeq per side; a BYE ends an answered call.
    fn track_call_dialog(
        &mut self,
        now_ms: u64,
        no: u32,
        side: Side,
        method: &str,
        f: &Fields<'_>,
    ) {
        let Some(call) = self.calls.get_mut(no) else {
            return;
        };
        let cseq = f.cseq_number().unwrap_or(0);
        match side {
            Side::Caller => call.caller.cseq = call.caller.cseq.max(cseq),
            Side::Callee => call.callee.cseq = call.callee.cseq.max(cseq),
        }
        if method == "BYE" && call.phase == CallPhase::Answered {
            self.end_call(now_ms, no, CallOutcome::Completed, 200);
        }
    }

    /// Pass `req` from `from` on to `dest` without keeping state: our Via with a
    /// branch only we can mint, our `ours` Route entries off, credentials meant
    /// for the switch and (from a phone) identity headers removed.
    fn relay_statelessly(
        &mut self,
        from: Dest,
        dest: Dest,
        req: &rsip::Request,
        f: &Fields<'_>,
        ours: usize,
    ) {
        let method = req.method.to_string();
        let incoming = parse_via(f.vias[0])
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let top = match from {
            Dest::Tcp(src) => parse::via_with_connection(f.vias[0], src),
            Dest::Udp(src) => parse::via_with_received_rport(f.vias[0], src),
        };
        let back = back_of(top.as_deref().unwrap_or(f.vias[0])).unwrap_or(from);
        let branch = self
            .relay_key
            .stateless_branch(&incoming, &method, back, dest);
        let via = self.via_to(dest, &branch);
        let bytes = rewrite(
            &req.headers,
            &req.body,
            &Rewrite {
                start_line: format!("{method} {} SIP/2.0", serialize::format_uri(&req.uri)),
                prepend: &[("Via", &via)],
                replace_top_via: top.as_deref(),
                drop_routes: ours,
                drop_proxy_auth: true,
                decrement_max_forwards: true,
                drop_named: if from.is_tcp() {
                    &[]
                } else {
                    UNTRUSTED_IDENTITY
                },
                ..Rewrite::default()
            },
        );
        self.send(dest, bytes);
    }

    /// A response from `src` to a request we forwarded statelessly: passed to
    /// the Via below ours only when our branch proves we sent that request to
    /// `src` on behalf of that Via (no forged receipts, no reflection).
    pub(super) fn relay_stateless_response(
        &mut self,
        src: Dest,
        branch: &str,
        resp: &rsip::Response,
    ) {
        let f = Fields::of(&resp.headers);
        let Some(next_via) = f.vias.get(1) else {
            return;
        };
        let Some(back) = back_of(next_via) else {
            return;
        };
        let incoming = parse_via(next_via)
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let method = f.cseq.split_whitespace().nth(1).unwrap_or("");
        if !self.relay_key.verify(branch, &incoming, method, back, src) {
            self.counters.refused += 1;
            log::debug!("dropped a response from {src} with a branch we did not make");
            return;
        }
        self.peer_proven(src);
        let bytes = rewrite(
            &resp.headers,
            &resp.body,
            &Rewrite {
                start_line: status_line(resp),
                drop_top_via: true,
                drop_named: if src.is_tcp() {
                    &[]
                } else {
                    UNTRUSTED_IDENTITY
                },
                ..Rewrite::default()
            },
        );
        self.send(back, bytes);
    }
}
