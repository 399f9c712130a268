//! A call's branches: the caller's INVITE forked to every registered contact of
//! the extensions that ring (Record-Route, our Via, Timers A and B), their
//! responses relayed to the caller, the first 2xx winning, the losers
//! cancelled, failures ACKed hop by hop and the best of them passed on.

use super::call::{better_final, outcome_of, Branch, BranchState, Party, Retx};
use super::identity;
use super::indialog::tag_of;
use super::trust::UNTRUSTED_IDENTITY;
use super::{ClientTag, Switch};
use crate::sip::dest::Dest;
use crate::sip::forward::{rewrite, status_line, Rewrite};
use crate::sip::headers::Fields;
use crate::sip::request::Own;
use crate::switch::transaction::T2_MS;
use coventry_shared::event::CallPhase;
use std::net::SocketAddr;

/// Who a forked INVITE is from, as the switch shows it.
pub(super) struct Shown<'a> {
    /// The extension the caller authenticated as; none: the upstream peer's.
    pub caller: Option<u16>,
    /// The forwards the call followed, in order.
    pub hops: &'a [coventry_shared::record::Hop],
    /// The host that names the forwarding extensions in Diversion.
    pub host: &'a str,
    /// What goes before local numbers for the party reached: this site's
    /// prefix towards the building, nothing inside the switch.
    pub prefix: &'a str,
}

/// A branch's response as relayed to the caller: our Via off, the caller's own
/// From back (`caller_from`: the callee was shown the switch's), and identity
/// headers off unless it came from the upstream peer (a phone asserts none).
fn relayed_response(resp: &rsip::Response, from: Dest, caller_from: &str) -> Vec<u8> {
    rewrite(
        &resp.headers,
        &resp.body,
        &Rewrite {
            start_line: status_line(resp),
            drop_top_via: true,
            drop_named: if from.is_tcp() {
                &[]
            } else {
                UNTRUSTED_IDENTITY
            },
            replace_from: Some(caller_from),
            ..Rewrite::default()
        },
    )
}

impl Switch {
    /// Send the caller's INVITE to every registered contact of `exts`.
    pub(super) fn fork(&mut self, now_ms: u64, no: u32, exts: &[u16]) {
        let Some(req) = self.calls.get(no).and_then(|c| c.invite.request.clone()) else {
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
        let Some((from, caller, hops)) = self
            .calls
            .get(no)
            .map(|c| (c.invite.replier.dest, c.caller.ext, c.hops.clone()))
        else {
            return;
        };
        let realm = self.config.server.realm.clone();
        for (ext, uri, dest) in contacts {
            let Some(dest) = dest.map(Dest::Udp) else {
                continue;
            };
            let id = self.branch('x');
            let via = self.via_to(dest, &id);
            let rr = self.record_route_between(from, dest);
            let prepend = [("Via", via.as_str()), ("Record-Route", rr.as_str())];
            let shown = Shown {
                caller,
                hops: &hops,
                host: &realm,
                prefix: "",
            };
            let bytes = self.forked_invite(&req, &uri, &prepend, &shown);
            self.start_branch(now_ms, no, (id, via), (uri, dest), bytes, Some(ext));
        }
    }

    /// The caller's INVITE as forked to `uri`: `prepend` (our Via and
    /// Record-Route, the upstream's P-Asserted-Identity) on top, then a Diversion
    /// per forward followed, the Route entries naming the switch off, the
    /// credentials meant for the switch off, Max-Forwards one less, the caller
    /// shown as the switch asserts it (see `identity.rs`), and identity headers
    /// off when a phone sent them.
    pub(super) fn forked_invite(
        &self,
        req: &rsip::Request,
        uri: &str,
        prepend: &[(&str, &str)],
        shown: &Shown<'_>,
    ) -> Vec<u8> {
        let fields = Fields::of(&req.headers);
        let presented = self.presented_as(fields.from, shown.caller, shown.prefix);
        let diversions = identity::diversions(shown.hops, shown.host, shown.prefix);
        let mut top: Vec<(&str, &str)> = prepend.to_vec();
        top.extend(diversions.iter().map(|d| ("Diversion", d.as_str())));
        rewrite(
            &req.headers,
            &req.body,
            &Rewrite {
                start_line: format!("INVITE {uri} SIP/2.0"),
                prepend: &top,
                drop_routes: self.our_routes(&fields),
                drop_proxy_auth: true,
                decrement_max_forwards: true,
                drop_named: if presented.drop_identity {
                    UNTRUSTED_IDENTITY
                } else {
                    &[]
                },
                replace_from: presented.from.as_deref(),
                ..Rewrite::default()
            },
        )
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
        let Some(call) = self.calls.get_mut(no) else {
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
        self.calls.index_branch(id, no, idx);
    }

    /// Answer the caller's INVITE: `resp` relayed from a branch (`Some(from)`:
    /// where it came from), or our own `code`.
    pub(super) fn send_invite_response(
        &mut self,
        now_ms: u64,
        no: u32,
        resp: Option<(&rsip::Response, Dest)>,
        code: u16,
    ) {
        let Some(call) = self.calls.get(no) else {
            return;
        };
        let bytes = match resp {
            Some((resp, from)) => relayed_response(resp, from, &call.invite.from_hdr),
            None => call.invite.replier.build(code, None, &[], None),
        };
        self.answer_caller(now_ms, no, bytes, false);
    }

    /// Send `bytes` to the caller as an answer to its INVITE, kept by its server
    /// transaction; a final failure (`until_ack`) is re-sent until the caller
    /// ACKs it (Timer G/H).
    pub(super) fn answer_caller(&mut self, now_ms: u64, no: u32, bytes: Vec<u8>, until_ack: bool) {
        let Some(call) = self.calls.get_mut(no) else {
            return;
        };
        let dest = call.invite.replier.dest;
        if until_ack {
            call.invite.final_retx = Some(Retx::new(bytes.clone(), dest, now_ms, T2_MS));
        }
        let key = call.invite.key.clone();
        self.server_tx.answered(key, dest, bytes.clone(), now_ms);
        self.send(dest, bytes);
    }

    /// A response on one of our INVITE branches.
    pub(super) fn on_invite_response(
        &mut self,
        now_ms: u64,
        resp: &rsip::Response,
        no: u32,
        idx: usize,
    ) {
        match resp.status_code.code() {
            code if code < 200 => self.on_branch_provisional(now_ms, resp, no, idx),
            200..=299 => self.on_branch_answer(now_ms, resp, no, idx),
            _ => self.on_branch_failure(now_ms, resp, no, idx),
        }
    }

    /// A provisional response on a branch: the first ringing one makes the call
    /// ring, a CANCEL waiting for it goes out, and it is relayed to the caller
    /// (but 100, which is hop by hop).
    fn on_branch_provisional(&mut self, now_ms: u64, resp: &rsip::Response, no: u32, idx: usize) {
        let code = resp.status_code.code();
        let Some(call) = self.calls.get_mut(no) else {
            return;
        };
        let Some(b) = call.branches.get_mut(idx) else {
            return;
        };
        let branch_dest = b.dest;
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
    }

    /// A 2xx on a branch: the first one answers the call (whoever picked up is
    /// the callee now, the other branches are cancelled); the winner's
    /// retransmissions are relayed; any other 2xx is released.
    fn on_branch_answer(&mut self, now_ms: u64, resp: &rsip::Response, no: u32, idx: usize) {
        let code = resp.status_code.code();
        let f = Fields::of(&resp.headers);
        // Where in-dialog requests to the answering side go (operator hang-up).
        let route = self.route_beyond_us(&f.record_routes);
        let hop = self.dialog_hop(&route, &f.contact_uri());
        let Some(call) = self.calls.get_mut(no) else {
            return;
        };
        let Some(b) = call.branches.get_mut(idx) else {
            return;
        };
        b.finish(code);
        let (branch_dest, branch_ext) = (b.dest, b.ext);
        let tag = tag_of(f.to);
        if call.answer_ms.is_some() && call.callee.tag.as_ref() == Some(&tag) {
            // The answering phone re-sends its 200 (our ACK was lost, or the
            // caller's): pass it on, even after the call ended, so the caller
            // ACKs again. Never hang up the winning dialog ourselves.
            return self.send_invite_response(now_ms, no, Some((resp, branch_dest)), code);
        }
        if call.ended() || call.phase == CallPhase::Answered {
            // Answered elsewhere, cancelled or timed out: nobody wants this one.
            return self.release_branch(now_ms, no, resp);
        }
        call.phase = CallPhase::Answered;
        call.answer_ms = Some(now_ms);
        self.out.calls_kept = true;
        let rang = call.callee.ext;
        call.callee = Party {
            ext: branch_ext,
            tag: Some(tag),
            contact: Some(f.contact_uri()),
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
        self.send_invite_response(now_ms, no, Some((resp, branch_dest)), code);
    }

    /// A failure on a branch: ACKed hop by hop; once every branch failed the
    /// caller gets the best of them (relayed as received when it is this one).
    fn on_branch_failure(&mut self, now_ms: u64, resp: &rsip::Response, no: u32, idx: usize) {
        let code = resp.status_code.code();
        let Some(call) = self.calls.get_mut(no) else {
            return;
        };
        let Some(b) = call.branches.get_mut(idx) else {
            return;
        };
        let branch_dest = b.dest;
        if b.finish(code) {
            call.best = Some(better_final(call.best, code));
        }
        self.ack_branch(no, idx, resp);
        let Some(call) = self.calls.get(no) else {
            return;
        };
        if !call.all_branches_failed() {
            return;
        }
        let best = call.best.unwrap_or(code);
        if best != code {
            return self.fail_call(now_ms, no, best, None, outcome_of(best));
        }
        let bytes = relayed_response(resp, branch_dest, &call.invite.from_hdr);
        self.answer_caller(now_ms, no, bytes, true);
        self.end_call(now_ms, no, outcome_of(best), code);
    }

    /// CANCEL every branch still ringing (but `except`).
    pub(super) fn cancel_branches(&mut self, now_ms: u64, no: u32, except: Option<usize>) {
        let Some(call) = self.calls.get_mut(no) else {
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
        let Some(call) = self.calls.get(no) else {
            return;
        };
        let Some(b) = call.branches.get(idx) else {
            return;
        };
        // The other phones of a call answered elsewhere stop ringing without
        // showing a missed call (RFC 3326).
        let completed: &[(&str, &str)] =
            &[("Reason", "SIP;cause=200;text=\"Call completed elsewhere\"")];
        // A switch that stops says why its ringing calls end.
        let stopping: &[(&str, &str)] = &[("Reason", "SIP;cause=503;text=\"Switch restarting\"")];
        let bytes = Own {
            from: &call.invite.from_hdr,
            to: &call.invite.to_hdr,
            cseq: call.invite.cseq,
            headers: if call.phase == CallPhase::Answered {
                completed
            } else if self.stopping {
                stopping
            } else {
                &[]
            },
            ..Own::new("CANCEL", &b.uri, &b.via, &call.call_id)
        }
        .to_bytes();
        let (dest, id) = (b.dest, b.id.clone());
        self.client_tx
            .start(id, dest, bytes.clone(), ClientTag::Fire, now_ms);
        self.send(dest, bytes);
    }

    /// Hop-by-hop ACK for a non-2xx final on a branch (RFC 3261 §17.1.1.3).
    fn ack_branch(&mut self, no: u32, idx: usize, resp: &rsip::Response) {
        let Some(call) = self.calls.get(no) else {
            return;
        };
        let Some(b) = call.branches.get(idx) else {
            return;
        };
        let bytes = Own {
            from: &call.invite.from_hdr,
            to: Fields::of(&resp.headers).to,
            cseq: call.invite.cseq,
            ..Own::new("ACK", &b.uri, &b.via, &call.call_id)
        }
        .to_bytes();
        let dest = b.dest;
        self.send(dest, bytes);
    }

    /// A 2xx from a branch nobody wants any more (the call was cancelled, timed out
    /// or answered elsewhere): ACK it and hang it up.
    fn release_branch(&mut self, now_ms: u64, no: u32, resp: &rsip::Response) {
        let Some(call) = self.calls.get(no) else {
            return;
        };
        let f = Fields::of(&resp.headers);
        let contact = f.contact_uri();
        let route = self.route_beyond_us(&f.record_routes);
        let Some(dest) = self.dialog_hop(&route, &contact) else {
            return;
        };
        let mk = |sw: &Switch, method: &str, cseq: u32, branch: &str| {
            Own {
                route: &route,
                from: &call.invite.from_hdr,
                to: f.to,
                cseq,
                ..Own::new(method, &contact, &sw.via_to(dest, branch), &call.call_id)
            }
            .to_bytes()
        };
        let ack_branch = self.branch('a');
        let ack = mk(self, "ACK", call.invite.cseq, &ack_branch);
        let bye_branch = self.branch('b');
        let bye = mk(self, "BYE", call.invite.cseq + 1, &bye_branch);
        self.send(dest, ack);
        self.client_tx
            .start(bye_branch, dest, bye.clone(), ClientTag::Fire, now_ms);
        self.send(dest, bye);
    }
}
