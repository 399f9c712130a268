//! New calls: an INVITE without a To tag is admitted (not looped, hops left,
//! its caller authenticated), becomes a [`Call`] and goes where routing sends
//! it; the caller's CANCEL and the ACK of our failure end its transaction.
//! Forking and the branches' responses are in `fork`, timers in
//! `call_timers`, ending in `call_end`.

use super::auth::{Auth, Claim};
use super::call::{Call, CallerInvite, Party};
use super::features::{Caller, Resolution};
use super::indialog::tag_of;
use super::reply::Replier;
use super::upstream::RouteStatus;
use super::Incoming;
use super::Switch;
use crate::config::RouteKind;
use crate::sip::{parse::parse_name_addr, parse::parse_uri, parse::parse_via};
use coventry_shared::event::{CallOutcome, CallPhase};
use coventry_shared::record::Route;
use std::net::{IpAddr, SocketAddr};

/// The address part of a SIP URI as a socket address (IP literals only).
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let u = parse_uri(uri)?;
    let ip: IpAddr = u.host.parse().ok()?;
    Some(SocketAddr::new(ip, u.port_or_default()))
}

fn user_of(value: &str) -> String {
    parse_name_addr(value)
        .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
        .unwrap_or_default()
}

/// What was dialled: the Request-URI's user, else the To's.
fn dialled_of(inc: &Incoming<'_>) -> String {
    inc.req
        .uri
        .auth
        .as_ref()
        .map(|a| a.user.clone())
        .unwrap_or_else(|| user_of(inc.f.to))
}

/// Whether an INVITE may start a call.
enum Admission {
    /// No: answer with this status.
    Refused(u16),
    /// Not yet or not at all: it was answered already (a challenge, a refusal).
    Answered,
    /// Yes, from this extension (none: from the upstream peer).
    Caller(Option<u16>),
}

impl Switch {
    /// A new call: an INVITE without a To tag, from `from`. A Route naming the
    /// switch (a phone's outbound proxy setting) changes nothing: the caller
    /// authenticates like any other, and our Route entries are taken off.
    pub(super) fn on_invite(&mut self, inc: &Incoming<'_>, r: Replier) {
        let caller = match self.admit_invite(inc, &r) {
            Admission::Refused(code) => return self.answer(inc.now_ms, r, code, None, &[]),
            Admission::Answered => return,
            Admission::Caller(caller) => caller,
        };
        let dialled = dialled_of(inc);
        if let (Some(ext), true) = (caller, dialled.starts_with(['*', '#'])) {
            if let Some(outcome) = self.feature_code(inc.now_ms, ext, &dialled) {
                return self.answer_feature(inc, r, ext, outcome);
            }
        }
        if let Some(ext) = caller {
            if self.over_call_limit(inc.now_ms, ext) {
                let reason = Some("Service Unavailable (too many calls at once)");
                return self.answer(inc.now_ms, r, 503, reason, &[("Retry-After", "10")]);
            }
        }
        // Over TCP only the upstream peer reaches the switch.
        let routed_as = if r.dest.is_tcp() {
            Caller::Upstream
        } else {
            Caller::of(caller)
        };
        let call = self.open_call(inc, r, caller, &dialled);
        let resolution = self.resolve(&dialled, routed_as);
        self.start_call(inc.now_ms, call, resolution);
    }

    /// Whether an INVITE may start a call: not looped, hops left, and its caller
    /// proved who it is (an extension's digest; over TCP the upstream peer, which
    /// the I/O shell alone lets in and whose callers are not extensions).
    fn admit_invite(&mut self, inc: &Incoming<'_>, r: &Replier) -> Admission {
        let f = inc.f;
        if f.max_forwards.is_some_and(|m| m.trim() == "0") {
            return Admission::Refused(483);
        }
        // One of our own Vias below the top: listening on 0.0.0.0 we write the
        // address towards each peer, so only the port is ours for sure.
        let own_via = if self.local.ip().is_unspecified() {
            format!(":{}", self.local.port())
        } else {
            format!("{}:{}", self.local.ip(), self.local.port())
        };
        if f.vias.iter().skip(1).any(|v| {
            v.contains(&own_via)
                && parse_via(v)
                    .and_then(|v| v.branch().map(str::to_string))
                    .is_some_and(|b| b.contains(&self.instance))
        }) {
            return Admission::Refused(482);
        }
        if r.dest.is_tcp() {
            return match self.upstream_peer_allowed(inc, r) {
                true => Admission::Caller(None),
                false => Admission::Answered,
            };
        }
        let caller_user = user_of(f.from);
        let claim = Claim {
            user: &caller_user,
            credentials: &f.proxy_authorization,
            challenge_code: 407,
            peer: false,
        };
        match self.authenticate(inc, claim, r) {
            Auth::Ok(user) => Admission::Caller(user.parse().ok()),
            _ => Admission::Answered,
        }
    }

    /// The call an admitted INVITE from `caller` to `dialled` starts: numbered,
    /// in the call table, dialling, its caller's dialog side and INVITE kept.
    fn open_call(
        &mut self,
        inc: &Incoming<'_>,
        r: Replier,
        caller: Option<u16>,
        dialled: &str,
    ) -> Call {
        let Incoming {
            now_ms,
            from,
            req,
            f,
        } = *inc;
        let no = self.call_number();
        self.counters.calls += 1;
        let branch = parse_via(f.vias[0])
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let contact = f.contact_uri();
        let caller_route: Vec<String> = f.record_routes.iter().map(|r| r.to_string()).collect();
        let caller_addr = self.dialog_hop(&caller_route, &contact).or(Some(r.dest));
        let caller = Party {
            ext: caller,
            tag: Some(tag_of(f.from)),
            contact: Some(contact),
            addr: caller_addr,
            route: caller_route,
            cseq: f.cseq_number().unwrap_or(1),
        };
        let invite = CallerInvite {
            request: Some(Box::new(req.clone())),
            key: r.key.clone(),
            branch,
            replier: r,
            final_retx: None,
            cseq: f.cseq_number().unwrap_or(1),
            from_hdr: f.from.to_string(),
            to_hdr: f.to.to_string(),
            src: from,
        };
        let label = self.caller_label(f, caller.ext);
        let deadline_ms = now_ms + self.no_answer_window_ms();
        let mut call = Call::new(
            no,
            f.call_id,
            (caller, label),
            dialled,
            invite,
            (now_ms, deadline_ms),
        );
        call.slot = self.calls.take_slot(no);
        if from.is_tcp() {
            call.route = coventry_shared::record::Route::Inbound;
        }
        call
    }

    /// Take a new call where routing sent it: upstream, ringing extensions, or
    /// failing at once.
    fn start_call(&mut self, now_ms: u64, mut call: Call, resolution: Resolution) {
        let no = call.no;
        log::debug!(
            "call {no} {} -> {}: {}",
            crate::logfmt::quoted(&call.caller_label),
            crate::logfmt::quoted(&call.dialled),
            crate::logfmt::quoted(&resolution.trail().join("; "))
        );
        match resolution {
            Resolution::Upstream {
                kind, number, hops, ..
            } => {
                call.hops = hops;
                call.route = match kind {
                    RouteKind::Emergency => Route::Emergency,
                    _ => Route::Upstream,
                };
                if call.route == Route::Upstream && self.over_upstream_limit(now_ms) {
                    self.calls.insert(call);
                    self.publish_call(no);
                    let retry: &[(&str, &str)] = &[("Retry-After", "10")];
                    let why = Some("Service Unavailable (too many calls outside)");
                    return self.fail_call_with(now_ms, no, 503, why, CallOutcome::Failed, retry);
                }
                self.calls.insert(call);
                self.send_invite_response(now_ms, no, None, 100);
                self.call_event(no);
                self.publish_call(no);
                match self.route_status(kind) {
                    RouteStatus::Up(link, peer) => {
                        self.fork_upstream(now_ms, no, &number, link, peer)
                    }
                    RouteStatus::Down(link) => self.fail_route_down(now_ms, no, link),
                    RouteStatus::None => {
                        self.fail_call(now_ms, no, 404, None, CallOutcome::Unknown)
                    }
                }
            }
            Resolution::Fail {
                code,
                reason,
                outcome,
                ..
            } => {
                self.calls.insert(call);
                self.publish_call(no);
                self.fail_call(now_ms, no, code, Some(reason), outcome);
            }
            Resolution::Ring {
                primary,
                now,
                later,
                delay,
                noanswer,
                hops,
                ..
            } => {
                call.hops = hops;
                call.callee.ext = Some(primary);
                call.later = later;
                call.delay = delay;
                call.noanswer = noanswer;
                self.calls.insert(call);
                self.send_invite_response(now_ms, no, None, 100);
                self.fork(now_ms, no, &now);
                self.call_event(no);
                self.publish_call(no);
                // Every contact unreachable (no IP address): nothing was sent.
                if self.calls.get(no).is_some_and(|c| c.branches.is_empty()) {
                    self.fail_call(now_ms, no, 480, None, CallOutcome::Unavailable);
                }
            }
        }
    }

    /// The caller CANCELs its INVITE: the CANCEL must match the INVITE's branch
    /// and come from where the INVITE came from.
    pub(super) fn on_cancel(&mut self, inc: &Incoming<'_>, r: Replier) {
        let Incoming {
            now_ms, from, f, ..
        } = *inc;
        let branch = parse_via(f.vias[0])
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let call = self
            .calls
            .by_call_id(f.call_id)
            .as_ref()
            .and_then(|no| self.calls.get(*no))
            .filter(|c| c.invite.branch == branch);
        let Some(no) = call.map(|c| c.no) else {
            return self.answer(now_ms, r, 481, None, &[]);
        };
        if !call.is_some_and(|c| c.invite.src.same_party(from)) {
            self.counters.refused += 1;
            log::warn!("CANCEL of call {no} from a stranger at {from}: refused");
            return self.answer(now_ms, r, 481, None, &[]);
        }
        self.answer(now_ms, r, 200, None, &[]);
        let answered = self
            .calls
            .get(no)
            .is_some_and(|c| c.phase == CallPhase::Answered || c.ended());
        if !answered {
            self.fail_call(now_ms, no, 487, None, CallOutcome::Cancelled);
        }
    }

    /// An ACK: for our non-2xx final it ends the server transaction; an ACK for a
    /// 2xx is routed end to end like any in-dialog request.
    pub(super) fn on_ack(&mut self, inc: &Incoming<'_>) {
        let Incoming {
            now_ms, from, f, ..
        } = *inc;
        let branch = parse_via(f.vias[0])
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        if self.local_dialog_ack(now_ms, f.call_id) {
            return;
        }
        if let Some(no) = self.calls.by_call_id(f.call_id) {
            if let Some(call) = self.calls.get_mut(no) {
                if call.invite.branch == branch && call.invite.src.same_party(from) {
                    // The call stays for Timer D so that failures the callee
                    // re-sends are ACKed again (RFC 3261 §17.1.1.2).
                    call.invite.final_retx = None;
                    return;
                }
            }
        }
        // The ACK of a final failure the switch answered itself (a 407
        // challenge, a 403, a 404...) belongs to that INVITE's server
        // transaction (RFC 3261 §17.2.1): absorbed, not judged as in-dialog.
        let key = super::transaction::sender_key(&branch, f.vias[0], "INVITE", &from);
        if matches!(
            self.server_tx.check(&key),
            Some(super::transaction::Seen::Answered(..))
        ) {
            return;
        }
        if !tag_of(f.to).is_empty() {
            self.route_in_dialog(inc, None);
        }
    }
}
