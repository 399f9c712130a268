//! INVITE: a transaction-stateful proxy that stays on the path (Record-Route),
//! forks to every registered contact of the callee, relays provisional and final
//! responses, CANCELs the losing branches, and follows each call through every
//! state to its record.

use super::call::{better_final, outcome_of, Branch, BranchState, Call, CallerInvite, Party, Retx};
use super::features::{Caller, Resolution};
use super::indialog::tag_of;
use super::register::{Auth, Claim};
use super::reply::Replier;
use super::trust::UNTRUSTED_IDENTITY;
use super::upstream::RouteStatus;
use super::Incoming;
use super::{ClientTag, Switch};
use crate::config::RouteKind;
use crate::sip::dest::Dest;
use crate::sip::forward::{rewrite, status_line, Rewrite};
use crate::sip::headers::Fields;
use crate::sip::{parse::parse_name_addr, parse::parse_uri, parse::parse_via};
use crate::switch::transaction::T2_MS;
use coventry_shared::event::{CallOutcome, CallPhase, Event};
use coventry_shared::record::{CallRecord, Hop, HopReason, Route};
use coventry_shared::stateblock::CallEntry;
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

fn contact_uri(f: &Fields<'_>) -> String {
    f.contacts
        .first()
        .and_then(|c| parse_name_addr(c))
        .map(|n| n.uri)
        .unwrap_or_default()
}

impl Switch {
    /// Our Record-Route / Route URI: marked with this switch's instance token so
    /// that a Route naming us is recognised whatever address the phone used.
    pub(super) fn record_route(&self, toward: IpAddr) -> String {
        format!("<sip:{};lr;cv={}>", self.via_host(toward), self.instance)
    }

    /// How many Route headers at the top name this switch.
    pub(super) fn our_routes(&self, f: &Fields<'_>) -> usize {
        let token = format!("cv={}", self.instance);
        f.routes
            .iter()
            .take_while(|r| {
                parse_name_addr(r).is_some_and(|n| {
                    n.uri.split(';').any(|p| p == token)
                        || uri_addr(&n.uri).is_some_and(|a| a == self.local)
                })
            })
            .count()
    }

    /// A new call: an INVITE without a To tag, from `from`. A Route naming the
    /// switch (a phone's outbound proxy setting) changes nothing: the caller
    /// authenticates like any other, and our Route entries are taken off.
    pub(super) fn on_invite(&mut self, inc: &Incoming<'_>, r: Replier) {
        let Incoming {
            now_ms,
            from,
            req,
            f,
        } = *inc;
        let src = from.addr();
        if f.max_forwards.is_some_and(|m| m.trim() == "0") {
            return self.answer(now_ms, r, 483, None, &[]);
        }
        let own_via = format!("{}:{}", self.local.ip(), self.local.port());
        if f.vias.iter().skip(1).any(|v| {
            v.contains(&own_via)
                && parse_via(v)
                    .and_then(|v| v.branch().map(str::to_string))
                    .is_some_and(|b| b.contains(&self.instance))
        }) {
            return self.answer(now_ms, r, 482, None, &[]);
        }
        // Over TCP only the upstream peer reaches the switch (the I/O shell accepts
        // no one else): its callers are not extensions and need no digest.
        let from_upstream = r.dest.is_tcp();
        let caller: Option<u16> = if from_upstream {
            if !self.upstream_peer_allowed(now_ms, src, req, f, &r) {
                return;
            }
            None
        } else {
            let caller_user = user_of(f.from);
            let claim = Claim {
                user: &caller_user,
                credentials: &f.proxy_authorization,
                challenge_code: 407,
                peer: false,
            };
            let Auth::Ok(caller_user) = self.authenticate(now_ms, src, req, claim, &r) else {
                return;
            };
            caller_user.parse().ok()
        };
        let dialled = req
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_else(|| user_of(f.to));
        if let (Some(ext), true) = (caller, dialled.starts_with(['*', '#'])) {
            if let Some(outcome) = self.feature_code(now_ms, ext, &dialled) {
                return self.answer_feature(now_ms, req, f, r, ext, outcome);
            }
        }
        let no = self.call_number();
        self.counters.calls += 1;
        let branch = parse_via(f.vias[0])
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let ring_ms = u64::from(self.config.calls.ring) * 1000;
        let contact = contact_uri(f);
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
        let deadline_ms = now_ms + ring_ms * u64::from(self.config.calls.noanswer);
        let mut call = Call::new(
            no,
            f.call_id,
            (caller, label),
            &dialled,
            invite,
            (now_ms, deadline_ms),
        );
        call.slot = self.calls.slots.take(no);
        let from = if from_upstream {
            Caller::Upstream
        } else {
            Caller::of(call.caller.ext)
        };
        let resolution = self.resolve(&dialled, from);
        self.calls.by_call_id.insert(call.call_id.clone(), no);
        match resolution {
            Resolution::Upstream {
                kind,
                number,
                hops,
                trail,
            } => {
                log::debug!(
                    "call {no} {} -> {dialled}: {}",
                    call.caller_label,
                    trail.join("; ")
                );
                call.hops = hops;
                call.route = match kind {
                    RouteKind::Emergency => Route::Emergency,
                    _ => Route::Upstream,
                };
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
                trail,
            } => {
                log::debug!(
                    "call {no} {} -> {dialled}: {}",
                    call.caller_label,
                    trail.join("; ")
                );
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
                trail,
            } => {
                log::debug!(
                    "call {no} {} -> {dialled}: {}",
                    call.caller_label,
                    trail.join("; ")
                );
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
                if self
                    .calls
                    .calls
                    .get(&no)
                    .is_some_and(|c| c.branches.is_empty())
                {
                    self.fail_call(now_ms, no, 480, None, CallOutcome::Unavailable);
                }
            }
        }
    }

    /// Send the caller's INVITE to every registered contact of `exts`.
    fn fork(&mut self, now_ms: u64, no: u32, exts: &[u16]) {
        let Some(req) = self
            .calls
            .calls
            .get(&no)
            .and_then(|c| c.invite.request.clone())
        else {
            return;
        };
        let contacts: Vec<(u16, String, Option<SocketAddr>)> = exts
            .iter()
            .flat_map(|e| {
                self.registrar
                    .contacts(*e)
                    .iter()
                    .map(move |b| (*e, b.uri.clone(), b.dest()))
            })
            .collect();
        let Some((from, caller)) = self
            .calls
            .calls
            .get(&no)
            .map(|c| (c.invite.replier.dest, c.caller.ext))
        else {
            return;
        };
        let ours = self.our_routes(&Fields::of(&req.headers));
        for (ext, uri, dest) in contacts {
            let Some(dest) = dest.map(Dest::Udp) else {
                continue;
            };
            let id = self.branch('x');
            let via = self.via_to(dest, &id);
            let rr = self.record_route_between(from, dest);
            let bytes = rewrite(
                &req.headers,
                &req.body,
                &Rewrite {
                    start_line: format!("INVITE {uri} SIP/2.0"),
                    prepend: &[("Via", &via), ("Record-Route", &rr)],
                    drop_routes: ours,
                    drop_proxy_auth: true,
                    decrement_max_forwards: true,
                    drop_named: if caller.is_some() {
                        UNTRUSTED_IDENTITY
                    } else {
                        &[]
                    },
                    ..Rewrite::default()
                },
            );
            self.start_branch(now_ms, no, (id, via), (uri, dest), bytes, Some(ext));
        }
    }

    /// Send call `no`'s INVITE `bytes` as a new branch (`id`, our `via`) to `uri`
    /// at `dest`, for extension `ext` (none: upstream), with Timers A and B.
    pub(super) fn start_branch(
        &mut self,
        now_ms: u64,
        no: u32,
        (id, via): (String, String),
        (uri, dest): (String, Dest),
        bytes: Vec<u8>,
        ext: Option<u16>,
    ) {
        self.send(dest, bytes.clone());
        let Some(call) = self.calls.calls.get_mut(&no) else {
            return;
        };
        let idx = call.branches.len();
        call.branches.push(Branch {
            id: id.clone(),
            uri,
            dest,
            via,
            state: BranchState::Calling,
            retx: Retx::new(bytes, dest, now_ms, T2_MS * 16),
            cancel_wanted: false,
            cancelled: false,
            status: None,
            ext,
        });
        self.calls.by_branch.insert(id, (no, idx));
    }

    /// Answer the caller's INVITE: `resp` relayed from a branch (`Some(from)`:
    /// where it came from), or our own `code`.
    fn send_invite_response(
        &mut self,
        now_ms: u64,
        no: u32,
        resp: Option<(&rsip::Response, Dest)>,
        code: u16,
    ) {
        let Some(call) = self.calls.calls.get(&no) else {
            return;
        };
        let dest = call.invite.replier.dest;
        let bytes = match resp {
            Some((resp, from)) => rewrite(
                &resp.headers,
                &resp.body,
                &Rewrite {
                    start_line: status_line(resp),
                    drop_top_via: true,
                    // A phone asserts no identity; the upstream peer may.
                    drop_named: if from.is_tcp() {
                        &[]
                    } else {
                        UNTRUSTED_IDENTITY
                    },
                    ..Rewrite::default()
                },
            ),
            None => call.invite.replier.build(code, None, &[], None),
        };
        let key = call.invite.key.clone();
        self.server_tx.answered(key, dest, bytes.clone(), now_ms);
        self.send(dest, bytes);
    }

    /// End a call that never connected: our final to the caller (re-sent until it
    /// ACKs), CANCEL for branches still ringing, the record.
    pub(super) fn fail_call(
        &mut self,
        now_ms: u64,
        no: u32,
        code: u16,
        reason: Option<&str>,
        outcome: CallOutcome,
    ) {
        self.fail_call_with(now_ms, no, code, reason, outcome, &[]);
    }

    /// [`Switch::fail_call`] with extra headers in our final (Retry-After...).
    pub(super) fn fail_call_with(
        &mut self,
        now_ms: u64,
        no: u32,
        code: u16,
        reason: Option<&str>,
        outcome: CallOutcome,
        extra: &[(&str, &str)],
    ) {
        let Some(call) = self.calls.calls.get_mut(&no) else {
            return;
        };
        if call.ended() || call.phase == CallPhase::Answered {
            return;
        }
        let bytes = call.invite.replier.build(code, reason, extra, None);
        let dest = call.invite.replier.dest;
        call.invite.final_retx = Some(Retx::new(bytes.clone(), dest, now_ms, T2_MS));
        let key = call.invite.key.clone();
        self.server_tx.answered(key, dest, bytes.clone(), now_ms);
        self.send(dest, bytes);
        self.cancel_branches(now_ms, no, None);
        self.end_call(now_ms, no, outcome, code);
    }

    /// Mark a call ended: events, call table, bitmaps.
    pub(super) fn end_call(&mut self, now_ms: u64, no: u32, outcome: CallOutcome, status: u16) {
        let Some(call) = self.calls.calls.get_mut(&no) else {
            return;
        };
        if call.ended() {
            return;
        }
        call.phase = CallPhase::Ended;
        call.end_ms = Some(now_ms);
        self.calls.active.remove(&no);
        // What lingers for Timer D needs no INVITE to fork again.
        call.invite.request = None;
        call.later.clear();
        call.outcome = Some((outcome, status));
        if let Some(slot) = call.slot {
            self.calls.slots.ended(slot, now_ms);
        }
        let answer_ms = call.answer_ms;
        let (ring_ms, talk_ms) = CallRecord::times(call.start_ms, answer_ms, now_ms);
        let answered_by = answer_ms.map(|_| match call.callee.ext {
            None => call.dialled.clone(),
            Some(e) => e.to_string(),
        });
        self.out.records.push(CallRecord {
            call: no,
            outcome,
            status,
            caller: call.caller_label.clone(),
            dialled: call.dialled.clone(),
            answered_by,
            start_ms: call.start_ms,
            answer_ms,
            end_ms: now_ms,
            ring_ms,
            talk_ms,
            route: call.route,
            forwards: std::mem::take(&mut call.hops),
        });
        let record = Event::CallRecord {
            call: no,
            from: call.caller_label.clone(),
            to: call.dialled.clone(),
            start_ms: call.start_ms,
            answer_ms: call.answer_ms.unwrap_or(0),
            end_ms: now_ms,
            outcome,
            status,
        };
        log::info!("{record}");
        self.call_event(no);
        self.out.events.push(record);
        self.publish_call(no);
    }

    /// CANCEL every branch still ringing (but `except`).
    fn cancel_branches(&mut self, now_ms: u64, no: u32, except: Option<usize>) {
        let Some(call) = self.calls.calls.get_mut(&no) else {
            return;
        };
        let mut now_cancel = Vec::new();
        for (i, b) in call.branches.iter_mut().enumerate() {
            if Some(i) == except || b.state == BranchState::Done || b.cancelled {
                continue;
            }
            if b.state == BranchState::Proceeding {
                b.cancelled = true;
                now_cancel.push(i);
            } else {
                b.cancel_wanted = true;
            }
        }
        for i in now_cancel {
            self.send_cancel(now_ms, no, i);
        }
    }

    fn send_cancel(&mut self, now_ms: u64, no: u32, idx: usize) {
        let Some(call) = self.calls.calls.get(&no) else {
            return;
        };
        let Some(b) = call.branches.get(idx) else {
            return;
        };
        // The other phones of a call answered elsewhere stop ringing without
        // showing a missed call (RFC 3326).
        let reason = if call.phase == CallPhase::Answered {
            "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"
        } else {
            ""
        };
        let bytes = format!(
            "CANCEL {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {} CANCEL\r\n{reason}Content-Length: 0\r\n\r\n",
            b.uri, b.via, call.invite.from_hdr, call.invite.to_hdr, call.call_id, call.invite.cseq
        )
        .into_bytes();
        let (dest, id) = (b.dest, b.id.clone());
        self.client_tx
            .start(id, dest, bytes.clone(), ClientTag::Fire, now_ms);
        self.send(dest, bytes);
    }

    /// Hop-by-hop ACK for a non-2xx final on a branch (RFC 3261 §17.1.1.3).
    fn ack_branch(&mut self, no: u32, idx: usize, resp: &rsip::Response) {
        let Some(call) = self.calls.calls.get(&no) else {
            return;
        };
        let Some(b) = call.branches.get(idx) else {
            return;
        };
        let to = Fields::of(&resp.headers).to.to_string();
        let bytes = format!(
            "ACK {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\n\
             Call-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            b.uri, b.via, call.invite.from_hdr, call.call_id, call.invite.cseq
        )
        .into_bytes();
        let dest = b.dest;
        self.send(dest, bytes);
    }

    /// A 2xx from a branch nobody wants any more (the call was cancelled, timed out
    /// or answered elsewhere): ACK it and hang it up.
    fn release_branch(&mut self, now_ms: u64, no: u32, resp: &rsip::Response) {
        let Some(call) = self.calls.calls.get(&no) else {
            return;
        };
        let f = Fields::of(&resp.headers);
        let contact = contact_uri(&f);
        let route = self.route_beyond_us(&f.record_routes);
        let Some(dest) = self.dialog_hop(&route, &contact) else {
            return;
        };
        let routes = Self::route_lines(&route);
        let mk = |sw: &Switch, method: &str, cseq: u32, branch: String| {
            format!(
                "{method} {contact} SIP/2.0\r\nVia: {}\r\n{routes}\
                 Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
                 Content-Length: 0\r\n\r\n",
                sw.via_to(dest, &branch),
                call.invite.from_hdr,
                f.to,
                call.call_id
            )
            .into_bytes()
        };
        let ack_branch = self.branch('a');
        let ack = mk(self, "ACK", call.invite.cseq, ack_branch);
        let bye_branch = self.branch('b');
        let bye = mk(self, "BYE", call.invite.cseq + 1, bye_branch.clone());
        self.send(dest, ack);
        self.client_tx
            .start(bye_branch, dest, bye.clone(), ClientTag::Fire, now_ms);
        self.send(dest, bye);
    }

    /// A response on one of our INVITE branches.
    pub(super) fn on_invite_response(
        &mut self,
        now_ms: u64,
        resp: &rsip::Response,
        no: u32,
        idx: usize,
    ) {
        let code = resp.status_code.code();
        // Where in-dialog requests to the answering side go (operator hang-up).
        let answer_path = (200..300).contains(&code).then(|| {
            let f = Fields::of(&resp.headers);
            let route = self.route_beyond_us(&f.record_routes);
            let hop = self.dialog_hop(&route, &contact_uri(&f));
            (route, hop)
        });
        let Some(call) = self.calls.calls.get_mut(&no) else {
            return;
        };
        let Some(b) = call.branches.get_mut(idx) else {
            return;
        };
        let branch_dest = b.dest;
        if code < 200 {
            if b.state == BranchState::Calling {
                b.state = BranchState::Proceeding;
            }
            let cancel_now = b.cancel_wanted && !b.cancelled;
            if cancel_now {
                b.cancelled = true;
            }
            let ringing = code != 100 && !call.ended() && call.phase == CallPhase::Dialing;
            if code != 100 && !call.ended() {
                call.got_ringing = true;
            }
            if ringing {
                call.phase = CallPhase::Ringing;
                call.rings = 1;
                call.ring_started_ms = Some(now_ms);
            }
            let relay = code != 100 && !call.ended() && call.phase != CallPhase::Answered;
            if cancel_now {
                self.send_cancel(now_ms, no, idx);
            }
            if relay {
                self.send_invite_response(now_ms, no, Some((resp, branch_dest)), code);
            }
            if ringing {
                self.call_event(no);
                self.publish_call(no);
            }
            return;
        }
        let first_final = b.state != BranchState::Done;
        b.state = BranchState::Done;
        b.retx.bytes = Vec::new(); // no more retransmissions of this INVITE
        b.status = Some(code);
        let branch_ext = b.ext;
        if (200..300).contains(&code) {
            let f = Fields::of(&resp.headers);
            let tag = tag_of(f.to);
            let winner = call.answer_ms.is_some() && call.callee.tag.as_ref() == Some(&tag);
            if winner {
                // The answering phone re-sends its 200 (our ACK was lost, or the
                // caller's): pass it on, even after the call ended, so the caller
                // ACKs again. Never hang up the winning dialog ourselves.
                self.send_invite_response(now_ms, no, Some((resp, branch_dest)), code);
                return;
            }
            if call.ended() || call.phase == CallPhase::Answered {
                // Answered elsewhere, cancelled or timed out: nobody wants this one.
                self.release_branch(now_ms, no, resp);
                return;
            }
            if call.phase != CallPhase::Answered {
                call.phase = CallPhase::Answered;
                call.answer_ms = Some(now_ms);
                // With coverage or a group, whoever picked up is the callee now.
                let rang = call.callee.ext;
                let (route, hop) = answer_path.unwrap_or_default();
                call.callee = Party {
                    ext: branch_ext,
                    tag: Some(tag),
                    contact: Some(contact_uri(&f)),
                    addr: hop.or(Some(branch_dest)),
                    route,
                    cseq: 0,
                };
                self.cancel_branches(now_ms, no, Some(idx));
                self.call_event(no);
                self.publish_call(no);
                if let (Some(rang), true) = (rang, rang != branch_ext) {
                    self.publish_bits(rang);
                }
            }
            // Every 2xx (and its retransmissions) goes back to the caller.
            self.send_invite_response(now_ms, no, Some((resp, branch_dest)), code);
            return;
        }
        if first_final {
            call.best = Some(better_final(call.best, code));
        }
        self.ack_branch(no, idx, resp);
        let Some(call) = self.calls.calls.get(&no) else {
            return;
        };
        let all_done = call.branches.iter().all(|b| b.state == BranchState::Done);
        if all_done && !call.ended() && call.phase != CallPhase::Answered {
            let best = call.best.unwrap_or(code);
            let outcome = outcome_of(best);
            let bytes_from_branch = resp;
            // Relay the best failure as received when it is this one, else ours.
            if best == code {
                if let Some(call) = self.calls.calls.get_mut(&no) {
                    let bytes = rewrite(
                        &bytes_from_branch.headers,
                        &bytes_from_branch.body,
                        &Rewrite {
                            start_line: status_line(bytes_from_branch),
                            drop_top_via: true,
                            drop_named: if branch_dest.is_tcp() {
                                &[]
                            } else {
                                UNTRUSTED_IDENTITY
                            },
                            ..Rewrite::default()
                        },
                    );
                    let dest = call.invite.replier.dest;
                    call.invite.final_retx = Some(Retx::new(bytes.clone(), dest, now_ms, T2_MS));
                    let key = call.invite.key.clone();
                    self.server_tx.answered(key, dest, bytes.clone(), now_ms);
                    self.send(dest, bytes);
                    self.end_call(now_ms, no, outcome, code);
                }
            } else {
                self.fail_call(now_ms, no, best, None, outcome);
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
            .by_call_id
            .get(f.call_id)
            .and_then(|no| self.calls.calls.get(no))
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
            .calls
            .get(&no)
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
        if let Some(no) = self.calls.by_call_id.get(f.call_id).copied() {
            if let Some(call) = self.calls.calls.get_mut(&no) {
                if call.invite.branch == branch && call.invite.src.same_party(from) {
                    // The call stays for Timer D so that failures the callee
                    // re-sends are ACKed again (RFC 3261 §17.1.1.2).
                    call.invite.final_retx = None;
                    return;
                }
            }
        }
        if !tag_of(f.to).is_empty() {
            self.route_in_dialog(inc, None);
        }
    }

    /// Timers of every call: INVITE retransmissions (A/B), rings, no answer, and
    /// our final's retransmissions (G/H); then forget finished calls.
    pub(super) fn calls_tick(&mut self, now_ms: u64) {
        let ring_ms = u64::from(self.config.calls.ring).max(1) * 1000;
        let max_ms = u64::from(self.config.calls.max_duration) * 1000;
        // Live calls every tick; the ended ones lingering for Timer D (their
        // retransmissions, their removal) twice a second: under load they are
        // thousands, and T1 is 500 ms anyway.
        self.calls.ticks = (self.calls.ticks + 1) % 5;
        let numbers: Vec<u32> = if self.calls.ticks == 0 {
            self.calls.calls.keys().copied().collect()
        } else {
            self.calls.active.iter().copied().collect()
        };
        for no in numbers {
            let mut resend = Vec::new();
            let mut timed_out = Vec::new();
            let mut ring_changed = false;
            let mut no_answer = false;
            let Some(call) = self.calls.calls.get_mut(&no) else {
                continue;
            };
            for (i, b) in call.branches.iter_mut().enumerate() {
                if b.state == BranchState::Done {
                    continue;
                }
                match b.retx.due(now_ms, T2_MS * 16) {
                    Ok(true) if b.state == BranchState::Calling => {
                        resend.push((b.dest, b.retx.bytes.clone()))
                    }
                    Ok(_) => {}
                    Err(()) => timed_out.push(i),
                }
            }
            if call.phase == CallPhase::Ringing {
                let started = call.ring_started_ms.unwrap_or(now_ms);
                let due = 1 + (now_ms.saturating_sub(started) / ring_ms).min(254) as u8;
                if due > call.rings {
                    call.rings = due;
                    ring_changed = true;
                }
            }
            let mut join_later = Vec::new();
            if call.phase == CallPhase::Ringing && !call.later.is_empty() && call.rings > call.delay
            {
                join_later = std::mem::take(&mut call.later);
            }
            if matches!(call.phase, CallPhase::Dialing | CallPhase::Ringing)
                && now_ms >= call.deadline_ms
            {
                no_answer = true;
            }
            let too_long = call.phase == CallPhase::Answered
                && max_ms > 0
                && call
                    .answer_ms
                    .is_some_and(|t| now_ms >= t.saturating_add(max_ms));
            if let Some(fr) = call.invite.final_retx.as_mut() {
                match fr.due(now_ms, T2_MS) {
                    Ok(true) => resend.push((fr.dest, fr.bytes.clone())),
                    Ok(false) => {}
                    Err(()) => call.invite.final_retx = None,
                }
            }
            let got_ringing = call.got_ringing;
            for (to, bytes) in resend {
                self.send(to, bytes);
            }
            if ring_changed {
                self.call_event(no);
                self.publish_call(no);
            }
            if too_long {
                let text = format!(
                    "call {no} hung up by the switch after {} s ([calls] max_duration)",
                    max_ms / 1000
                );
                log::warn!("{text}");
                self.out
                    .events
                    .push(coventry_shared::event::Event::Warning { text });
                self.bye_both(now_ms, no);
                self.end_call(now_ms, no, CallOutcome::Completed, 200);
                continue;
            }
            for i in timed_out {
                if let Some(b) = self
                    .calls
                    .calls
                    .get_mut(&no)
                    .and_then(|c| c.branches.get_mut(i))
                {
                    b.state = BranchState::Done;
                    b.status = Some(408);
                }
                if let Some(c) = self.calls.calls.get_mut(&no) {
                    c.best = Some(better_final(c.best, 408));
                }
            }
            if !join_later.is_empty() {
                let free: Vec<u16> = join_later
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
            let forward = if no_answer {
                self.calls
                    .calls
                    .get_mut(&no)
                    .and_then(|c| c.noanswer.take())
            } else {
                None
            };
            if let Some(target) = forward {
                no_answer = !self.forward_unanswered(now_ms, no, &target);
            }
            if no_answer {
                let (code, outcome) = if got_ringing {
                    (480, CallOutcome::NoAnswer)
                } else {
                    (408, CallOutcome::TimedOut)
                };
                let reason = if got_ringing {
                    Some("Temporarily Unavailable (no answer)")
                } else {
                    None
                };
                self.fail_call(now_ms, no, code, reason, outcome);
            } else if self.calls.calls.get(&no).is_some_and(|c| {
                !c.ended()
                    && c.phase != CallPhase::Answered
                    && !c.branches.is_empty()
                    && c.branches.iter().all(|b| b.state == BranchState::Done)
            }) {
                let best = self
                    .calls
                    .calls
                    .get(&no)
                    .and_then(|c| c.best)
                    .unwrap_or(408);
                self.fail_call(now_ms, no, best, None, outcome_of(best));
            }
            if self.calls.calls.get(&no).is_some_and(|c| {
                c.finished()
                    && c.end_ms
                        .is_some_and(|t| now_ms >= t + super::call::TRANSACTION_TIMEOUT_MS)
            }) {
                self.calls.remove(no);
            }
        }
        for slot in self.calls.slots.expire(now_ms) {
            self.out.calls.insert(slot, CallEntry::FREE);
        }
    }

    /// Nobody answered and the callee forwards on no answer: ring the target
    /// instead (the caller keeps hearing ringback). False when that fails too.
    fn forward_unanswered(&mut self, now_ms: u64, no: u32, target: &str) -> bool {
        let Some(caller) = self.calls.calls.get(&no).map(|c| c.caller.ext) else {
            return false;
        };
        match self.resolve(target, Caller::of(caller)) {
            Resolution::Ring {
                primary,
                now,
                noanswer,
                ..
            } => {
                self.cancel_branches(now_ms, no, None);
                let ring_ms = u64::from(self.config.calls.ring).max(1) * 1000;
                let window = ring_ms * u64::from(self.config.calls.noanswer);
                if let Some(c) = self.calls.calls.get_mut(&no) {
                    if let Some(from) = c.callee.ext {
                        log::info!("call {no}: no answer from {from}, forwarding to {target}");
                        c.hops.push(Hop {
                            from,
                            to: target.to_string(),
                            why: HopReason::NoAnswer,
                        });
                    }
                    c.callee.ext = Some(primary);
                    c.deadline_ms = now_ms + window;
                    c.noanswer = noanswer.filter(|t| t != target);
                    c.later.clear();
                }
                self.fork(now_ms, no, &now);
                self.publish_call(no);
                true
            }
            Resolution::Upstream { kind, number, .. } => {
                let RouteStatus::Up(link, peer) = self.route_status(kind) else {
                    return false;
                };
                self.cancel_branches(now_ms, no, None);
                let ring_ms = u64::from(self.config.calls.ring).max(1) * 1000;
                let window = ring_ms * u64::from(self.config.calls.noanswer);
                if let Some(c) = self.calls.calls.get_mut(&no) {
                    if let Some(from) = c.callee.ext {
                        log::info!(
                            "call {no}: no answer from {from}, forwarding upstream to {number}"
                        );
                        c.hops.push(Hop {
                            from,
                            to: target.to_string(),
                            why: HopReason::NoAnswer,
                        });
                    }
                    c.route = Route::Upstream;
                    c.callee.ext = None;
                    c.deadline_ms = now_ms + window;
                    c.noanswer = None;
                    c.later.clear();
                }
                self.fork_upstream(now_ms, no, &number, link, peer);
                self.publish_call(no);
                true
            }
            Resolution::Fail { .. } => false,
        }
    }

    /// A call-state event for call `no`.
    pub(super) fn call_event(&mut self, no: u32) {
        if let Some(c) = self.calls.calls.get(&no) {
            self.out.events.push(Event::CallState {
                call: no,
                from: c.caller_label.clone(),
                to: c.dialled.clone(),
                phase: c.phase,
                rings: c.rings,
            });
        }
    }

    /// Queue the call-table entry and the ringing/busy bits the call affects.
    pub(super) fn publish_call(&mut self, no: u32) {
        let Some(c) = self.calls.calls.get(&no) else {
            return;
        };
        if let Some(slot) = c.slot {
            self.out.calls.insert(slot, c.entry());
        }
        let mut exts: Vec<u16> = c.branches.iter().filter_map(|b| b.ext).collect();
        exts.extend([c.caller.ext, c.callee.ext].into_iter().flatten());
        exts.sort_unstable();
        exts.dedup();
        for ext in exts {
            self.publish_bits(ext);
        }
    }

    /// Queue the lamp bits of `ext`: ringing (one of its phones rings for a
    /// call), busy (in a call: [`Switch::in_call`]).
    pub(super) fn publish_bits(&mut self, ext: u16) {
        if ext == 0 {
            return;
        }
        let ringing = self.calls.live().any(|c| {
            c.phase == CallPhase::Ringing
                && c.branches
                    .iter()
                    .any(|b| b.ext == Some(ext) && b.state != BranchState::Done)
        });
        let busy = self.in_call(ext);
        self.out.bits.insert(ext, (ringing, busy));
    }

    /// `hangup CALL|EXT`: BYE both sides of answered calls, CANCEL ringing ones.
    pub(super) fn hangup(&mut self, now_ms: u64, id: Option<u64>, target: &str) {
        use coventry_shared::event::ResultCode;
        let plan = self.config.server.plan;
        let ext = target
            .parse::<u16>()
            .ok()
            .filter(|e| target.len() == usize::from(plan.digits()) && plan.contains(*e));
        let numbers: Vec<u32> = match ext {
            Some(ext) => self.calls.active_for(ext).map(|c| c.no).collect(),
            None => target
                .parse::<u32>()
                .ok()
                .filter(|n| self.calls.calls.get(n).is_some_and(|c| !c.ended()))
                .into_iter()
                .collect(),
        };
        // Click-to-dial calls end like any call.
        let dials: Vec<u32> = match ext {
            Some(ext) => self.dials_of(ext),
            None => target
                .parse::<u32>()
                .ok()
                .filter(|n| self.dials.calls.contains_key(n))
                .into_iter()
                .collect(),
        };
        if numbers.is_empty() && dials.is_empty() {
            return super::command::result(
                self,
                id,
                ResultCode::NotFound,
                format!("no call matches {target}"),
            );
        }
        let mut done: Vec<String> = dials
            .into_iter()
            .filter_map(|no| self.dial_hangup(now_ms, no))
            .collect();
        for no in numbers {
            let Some(c) = self.calls.calls.get(&no) else {
                continue;
            };
            done.push(format!("{} ({} -> {})", no, c.caller_label, c.dialled));
            if c.phase == CallPhase::Answered {
                self.bye_both(now_ms, no);
                self.end_call(now_ms, no, CallOutcome::Completed, 200);
            } else {
                self.fail_call(
                    now_ms,
                    no,
                    487,
                    Some("Request Terminated (operator)"),
                    CallOutcome::Cancelled,
                );
            }
        }
        super::command::result(
            self,
            id,
            ResultCode::Ok,
            format!("hung up call {}", done.join(", ")),
        );
    }

    /// The switch ends an answered call: a BYE to each side, as the other side.
    fn bye_both(&mut self, now_ms: u64, no: u32) {
        let Some(c) = self.calls.calls.get_mut(&no) else {
            return;
        };
        c.caller.cseq += 1;
        c.callee.cseq += 1;
        let to_tag = c.callee.tag.clone().unwrap_or_default();
        let to_callee = c.callee.addr.map(|dest| {
            (
                dest,
                c.callee.contact.clone().unwrap_or_default(),
                Self::route_lines(&c.callee.route),
                c.invite.from_hdr.clone(),
                format!("{};tag={to_tag}", c.invite.to_hdr),
                c.caller.cseq,
            )
        });
        let to_caller = c.caller.addr.map(|dest| {
            (
                dest,
                c.caller.contact.clone().unwrap_or_default(),
                Self::route_lines(&c.caller.route),
                format!("{};tag={to_tag}", c.invite.to_hdr),
                c.invite.from_hdr.clone(),
                c.callee.cseq,
            )
        });
        let call_id = c.call_id.clone();
        for (dest, uri, routes, from, to, cseq) in [to_callee, to_caller].into_iter().flatten() {
            let branch = self.branch('b');
            let bytes = format!(
                "BYE {uri} SIP/2.0\r\nVia: {}\r\n{routes}Max-Forwards: 70\r\n\
                 From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} BYE\r\n\
                 Content-Length: 0\r\n\r\n",
                self.via_to(dest, &branch)
            )
            .into_bytes();
            self.client_tx
                .start(branch, dest, bytes.clone(), ClientTag::Fire, now_ms);
            self.send(dest, bytes);
        }
    }
}
