//! Click-to-dial (third-party call control, RFC 3725 flow I): the switch rings
//! extension A with an INVITE without SDP; A's 200 carries A's offer, which the
//! switch sends to B in a second INVITE; B's answer goes back to A in the ACK.
//! The switch is the user agent on both legs, so a BYE from either side is
//! answered and passed on as a BYE to the other, and a re-INVITE (hold, resume)
//! as a re-INVITE to the other whose answer goes back in the 200. B may be a
//! number reached through the upstream (its leg goes over TCP and follows the
//! route set).

use super::call::Retx;
use super::dial_book::{Dial, Leg, Reinvite, Side};
use super::features::{Caller, Resolution};
use super::refusal::Refusal;
use super::upstream::RouteStatus;
use super::{ClientTag, Switch};
use crate::sip::dest::Dest;
use crate::sip::headers::Fields;
use crate::sip::request::Own;
use crate::switch::transaction::T2_MS;
use coventry_shared::event::{CallOutcome, CallPhase, DialStep, Event, ResultCode};

impl Switch {
    fn leg(&mut self, call_id: String, uri: &str, dest: Dest, from: String, to: String) -> Leg {
        let branch = self.branch('d');
        let via = self.via_to(dest, &branch);
        Leg::new(call_id, (branch, via), uri, dest, (from, to))
    }

    fn leg_request(
        &self,
        leg: &Leg,
        method: &str,
        cseq: u32,
        body: Option<&[u8]>,
        via: &str,
    ) -> Vec<u8> {
        let host = self.via_host(leg.dest.ip());
        let uri = if leg.contact.is_empty() {
            &leg.uri
        } else {
            &leg.contact
        };
        // In the dialog (after the 2xx) requests follow its route set; a CANCEL or
        // the ACK of a failure go where the INVITE went.
        let route: &[String] = if leg.answered && method != "CANCEL" {
            &leg.route
        } else {
            &[]
        };
        let transport = if leg.dest.is_tcp() {
            ";transport=tcp"
        } else {
            ""
        };
        let contact = format!("<sip:system@{host}{transport}>");
        Own {
            route,
            from: &leg.from,
            to: &leg.to,
            cseq,
            headers: &[("Contact", &contact)],
            body: body.map(|b| ("application/sdp", b)),
            ..Own::new(method, uri, via, &leg.call_id)
        }
        .to_bytes()
    }

    fn send_invite(&mut self, now_ms: u64, no: u32, side: Side, body: Option<&[u8]>) {
        let Some(d) = self.dials.get(no) else {
            return;
        };
        let Some(leg) = (match side {
            Side::A => Some(&d.leg_a),
            Side::B => d.leg_b.as_ref(),
        }) else {
            return;
        };
        let bytes = self.leg_request(leg, "INVITE", 1, body, &leg.via.clone());
        let (dest, branch) = (leg.dest, leg.branch.clone());
        self.dials.index_branch(branch, no, side);
        self.send(dest, bytes.clone());
        if let Some(leg) = self.dial_leg(no, side) {
            leg.retx = Some(Retx::new(bytes, dest, now_ms, T2_MS * 16));
        }
    }

    /// Where the INVITE of call `no`'s leg `side` went.
    pub(super) fn dial_leg_sent_to(&self, no: u32, side: Side) -> Option<Dest> {
        Some(self.dials.get(no)?.leg(side)?.sent_to)
    }

    fn dial_leg(&mut self, no: u32, side: Side) -> Option<&mut Leg> {
        self.dials.get_mut(no)?.leg_mut(side)
    }

    fn dial_leg_ref(&self, no: u32, side: Side) -> Option<&Leg> {
        self.dials.get(no)?.leg(side)
    }

    /// `dial A TARGET`.
    pub(super) fn dial(&mut self, now_ms: u64, id: Option<u64>, a: u16, target: &str) {
        if !self.config.is_configured(a) {
            return super::command::refuse(self, id, Refusal::NoExtension(a));
        }
        let Some((uri, dest)) = self
            .registrar
            .contacts(a)
            .iter()
            .max_by_key(|b| b.registered_ms)
            .and_then(|b| Some((b.uri.clone(), b.dest()?)))
        else {
            return super::command::refuse(self, id, Refusal::NotRegistered(a));
        };
        if self.is_busy(a) {
            return super::command::refuse(self, id, Refusal::Busy(a));
        }
        let no = self.call_number();
        self.counters.calls += 1;
        let host = self.via_host(dest.ip());
        let tag = self.ids.next();
        let call_id = format!("{}@coventry", self.ids.next());
        let from = format!("\"Call to {target}\" <sip:{target}@{host}>;tag={tag}");
        let to = format!("<sip:{a}@{host}>");
        let leg_a = self.leg(call_id, &uri, Dest::Udp(dest), from, to);
        let ring_ms = u64::from(self.config.calls.ring).max(1) * 1000;
        let slot = self.calls.take_slot(no);
        self.dials.insert(
            no,
            Dial {
                id,
                a,
                target: target.to_string(),
                b: None,
                leg_a,
                leg_b: None,
                start_ms: now_ms,
                answer_ms: None,
                deadline_ms: now_ms + ring_ms * u64::from(self.config.calls.noanswer),
                slot,
                reported: false,
                step: None,
                reinvite: None,
                branches: Vec::new(),
            },
        );
        self.send_invite(now_ms, no, Side::A, None);
        self.dial_state(no, CallPhase::Dialing, 0);
        self.dial_step(no, DialStep::Started);
    }

    /// Tell the command's sender how its call is getting on (each step once).
    fn dial_step(&mut self, no: u32, step: DialStep) {
        let Some(d) = self.dials.get_mut(no) else {
            return;
        };
        if d.step.is_some_and(|s| s as u16 >= step as u16) {
            return;
        }
        d.step = Some(step);
        let id = d.id;
        self.out.events.push(Event::Dialing { id, call: no, step });
    }

    /// Call-table entry, bits and a state event for a click-to-dial call.
    fn dial_state(&mut self, no: u32, phase: CallPhase, status: u16) {
        let Some(d) = self.dials.get(no) else {
            return;
        };
        if let Some(slot) = d.slot {
            self.out.calls.insert(slot, d.entry(no, phase, status));
        }
        let (a, b) = (d.a, d.b);
        self.out.events.push(Event::CallState {
            call: no,
            from: d.a.to_string(),
            to: d.target.clone(),
            phase,
            rings: 0,
        });
        self.publish_bits(a);
        if let Some(b) = b {
            self.publish_bits(b);
        }
    }

    /// End a click-to-dial call: record, result, table.
    fn dial_end(&mut self, now_ms: u64, no: u32, outcome: CallOutcome, status: u16, text: String) {
        let Some(d) = self.dials.get_mut(no) else {
            return;
        };
        let (id, reported) = (d.id, d.reported);
        d.reported = true;
        let record = d.record(no, now_ms, outcome, status);
        if let Some(slot) = d.slot {
            self.calls.slot_ended(slot, now_ms);
        }
        self.dial_state(no, CallPhase::Ended, status);
        if let Some(slot) = self.dials.get(no).and_then(|d| d.slot) {
            if let Some(e) = self.out.calls.get_mut(&slot) {
                e.outcome = outcome as u16;
                e.end_ms = now_ms;
            }
        }
        self.record_call(now_ms, record, true);
        if !reported {
            let code = if outcome == CallOutcome::Completed {
                ResultCode::Ok
            } else {
                ResultCode::Failed
            };
            super::command::result(self, id, code, text);
        }
        if let Some(d) = self.dials.remove(no) {
            // The lamps of its parties without it.
            self.publish_bits(d.a);
            if let Some(b) = d.b {
                self.publish_bits(b);
            }
        }
    }

    /// Send an in-dialog request (ACK, BYE) on a leg.
    fn leg_send(&mut self, now_ms: u64, no: u32, side: Side, method: &str, body: Option<&[u8]>) {
        let Some(leg) = self.dial_leg_ref(no, side) else {
            return;
        };
        let branch = self.branch('d');
        let via = self.via_to(leg.dest, &branch);
        let cseq = if method == "ACK" { 1 } else { leg.cseq + 1 };
        let bytes = self.leg_request(leg, method, cseq, body, &via);
        let dest = leg.dest;
        if method != "ACK" {
            self.client_tx
                .start(branch, dest, bytes.clone(), ClientTag::Fire, now_ms);
        } else if let Some(leg) = self.dial_leg(no, side) {
            leg.ack = Some(bytes.clone());
        }
        self.send(dest, bytes);
    }

    /// A response on one of our click-to-dial INVITEs.
    pub(super) fn on_dial_response(
        &mut self,
        now_ms: u64,
        resp: &rsip::Response,
        no: u32,
        side: Side,
    ) {
        match resp.status_code.code() {
            code if code < 200 => self.dial_provisional(no, side, code),
            200..=299 => self.dial_answered(now_ms, resp, no, side),
            code => self.dial_failed(now_ms, resp, no, side, code),
        }
    }

    /// A provisional on a leg: no more retransmissions, and a ringing phone is
    /// a step the command's sender hears of.
    fn dial_provisional(&mut self, no: u32, side: Side, code: u16) {
        let Some(leg) = self.dial_leg(no, side) else {
            return;
        };
        leg.proceeding = true;
        leg.retx = None;
        if code == 100 {
            return;
        }
        match side {
            Side::A => {
                self.dial_state(no, CallPhase::Ringing, 0);
                self.dial_step(no, DialStep::ARinging);
            }
            Side::B => self.dial_step(no, DialStep::BRinging),
        }
    }

    /// A 2xx on a leg: A's carries the offer B is called with; B's answer goes
    /// to A in A's ACK and the call is connected. A retransmitted 2xx gets our
    /// ACK again.
    fn dial_answered(&mut self, now_ms: u64, resp: &rsip::Response, no: u32, side: Side) {
        let f = Fields::of(&resp.headers);
        // Where requests in the dialog go: the answer's route set, else its contact.
        let contact = f.contact_uri();
        let route = self.route_beyond_us(&f.record_routes);
        let hop = self.dialog_hop(&route, &contact);
        let Some(leg) = self.dial_leg(no, side) else {
            return;
        };
        leg.retx = None;
        if leg.answered {
            // A retransmitted 2xx: our ACK was lost (or has not gone yet, while
            // the other leg is still being set up).
            if let Some(ack) = leg.ack.clone() {
                let dest = leg.dest;
                self.send(dest, ack);
            }
            return;
        }
        leg.answered = true;
        leg.to = f.to.to_string();
        leg.contact = contact;
        leg.route = route;
        if let Some(hop) = hop {
            leg.dest = hop;
        }
        match side {
            Side::A => self.dial_second_leg(now_ms, no, &resp.body),
            Side::B => {
                self.leg_send(now_ms, no, Side::B, "ACK", None);
                self.leg_send(now_ms, no, Side::A, "ACK", Some(&resp.body));
                if let Some(d) = self.dials.get_mut(no) {
                    d.answer_ms = Some(now_ms);
                    d.reported = true;
                    let (id, a, t) = (d.id, d.a, d.target.clone());
                    super::command::result(
                        self,
                        id,
                        ResultCode::Ok,
                        format!("connected {a} and {t} (call {no})"),
                    );
                }
                self.dial_state(no, CallPhase::Answered, 200);
            }
        }
    }

    /// A failure on a leg: ACKed (the INVITE's branch); A's ends the call, B's
    /// leaves A connected to nothing, so A's dialog is completed and hung up.
    fn dial_failed(&mut self, now_ms: u64, resp: &rsip::Response, no: u32, side: Side, code: u16) {
        let Some(leg) = self.dial_leg(no, side) else {
            return;
        };
        leg.retx = None;
        leg.to = Fields::of(&resp.headers).to.to_string();
        leg.contact = leg.uri.clone();
        if let Some(leg) = self.dial_leg_ref(no, side) {
            let bytes = self.leg_request(leg, "ACK", 1, None, &leg.via);
            let dest = leg.dest;
            self.send(dest, bytes);
        }
        let Some(d) = self.dials.get(no) else {
            return;
        };
        let (a, target) = (d.a, d.target.clone());
        let outcome = super::call::outcome_of(code);
        let text = match side {
            Side::A => format!("{a} did not take the call ({code})"),
            Side::B => {
                let decline = super::keypad::decline_all(&[], "0.0.0.0");
                self.leg_send(now_ms, no, Side::A, "ACK", Some(decline.as_bytes()));
                self.leg_send(now_ms, no, Side::A, "BYE", None);
                let word = match outcome {
                    CallOutcome::Busy => "is busy",
                    CallOutcome::Unavailable => "is not available",
                    CallOutcome::Rejected => "declined",
                    _ => "failed",
                };
                format!("{target} {word} ({code})")
            }
        };
        self.dial_end(now_ms, no, outcome, code, text);
    }

    /// A answered with its offer: call B with it.
    fn dial_second_leg(&mut self, now_ms: u64, no: u32, offer: &[u8]) {
        self.dial_step(no, DialStep::CallingB);
        let Some(d) = self.dials.get(no) else {
            return;
        };
        let (a, target) = (d.a, d.target.clone());
        let resolution = match self.resolve(&target, Caller::Extension(a)) {
            Resolution::Upstream { kind, number, .. } => match self.route_status(kind) {
                RouteStatus::Up(link, peer) => Ok((
                    Some((self.upstream_uri(&number, link), Dest::Tcp(peer), None)),
                    number,
                )),
                RouteStatus::Down(link) => Err((self.route_down(link).0, CallOutcome::Failed)),
                RouteStatus::None => Err((404, CallOutcome::Unknown)),
            },
            Resolution::Ring { primary, .. } => Ok((
                self.registrar
                    .contacts(primary)
                    .iter()
                    .max_by_key(|b| b.registered_ms)
                    .and_then(|b| Some((b.uri.clone(), Dest::Udp(b.dest()?), Some(primary)))),
                primary.to_string(),
            )),
            Resolution::Fail { code, outcome, .. } => Err((code, outcome)),
        };
        let (contact, callee) = match resolution {
            Ok(found) => found,
            Err((code, outcome)) => {
                let decline = super::keypad::decline_all(offer, "0.0.0.0");
                self.leg_send(now_ms, no, Side::A, "ACK", Some(decline.as_bytes()));
                self.leg_send(now_ms, no, Side::A, "BYE", None);
                let word = match outcome {
                    CallOutcome::Busy => "is busy",
                    CallOutcome::Unavailable => "is not available",
                    _ => "cannot be called",
                };
                return self.dial_end(
                    now_ms,
                    no,
                    outcome,
                    code,
                    format!("{target} {word} ({code})"),
                );
            }
        };
        let Some((uri, dest, b)) = contact else {
            return self.dial_end(
                now_ms,
                no,
                CallOutcome::Unavailable,
                480,
                format!("{target} is not available"),
            );
        };
        let host = self.via_host(dest.addr().ip());
        let name = self
            .config
            .lines
            .get(&a)
            .map(|l| l.display.clone())
            .unwrap_or_default();
        let tag = self.ids.next();
        let call_id = format!("{}@coventry", self.ids.next());
        let from = format!("\"{}\" <sip:{a}@{host}>;tag={tag}", name.replace('"', ""));
        let to = format!("<sip:{callee}@{host}>");
        let leg = self.leg(call_id, &uri, dest, from, to);
        if let Some(d) = self.dials.get_mut(no) {
            d.leg_b = Some(leg);
            d.b = b;
        }
        self.dials.index_call_ids(no);
        self.send_invite(now_ms, no, Side::B, Some(offer));
    }

    /// The click-to-dial calls extension `n` is a party of.
    pub(super) fn dials_of(&self, n: u16) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .dials
            .iter()
            .filter(|(_, d)| d.a == n || d.b == Some(n))
            .map(|(no, _)| *no)
            .collect();
        v.sort_unstable();
        v
    }

    /// The operator ends click-to-dial call `no`: BYE on a connected leg,
    /// CANCEL on a ringing one. Returns what was hung up, for the result.
    pub(super) fn dial_hangup(&mut self, now_ms: u64, no: u32) -> Option<String> {
        let d = self.dials.get(no)?;
        let label = format!("{no} ({} -> {})", d.a, d.target);
        let connected = d.connected();
        let mut cancels = Vec::new();
        let mut byes = Vec::new();
        for side in [Side::A, Side::B] {
            let Some(leg) = d.leg(side) else {
                continue;
            };
            if leg.answered {
                byes.push(side);
            } else if leg.proceeding {
                let bytes = self.leg_request(leg, "CANCEL", 1, None, &leg.via);
                cancels.push((leg.dest, bytes));
            }
        }
        for (dest, bytes) in cancels {
            self.send(dest, bytes);
        }
        for side in byes {
            self.leg_send(now_ms, no, side, "BYE", None);
        }
        let (outcome, status) = if connected {
            (CallOutcome::Completed, 200)
        } else {
            (CallOutcome::Cancelled, 487)
        };
        log::info!("click-to-dial call {no}: hung up by the operator");
        self.dial_end(
            now_ms,
            no,
            outcome,
            status,
            "hung up by the operator".into(),
        );
        Some(label)
    }

    /// Whether `n` is a party of a click-to-dial call in progress: A from the
    /// start, B once its leg answered.
    pub(super) fn in_dial(&self, n: u16) -> bool {
        self.dials
            .iter()
            .map(|(_, d)| d)
            .any(|d| d.a == n || (d.b == Some(n) && d.connected()))
    }

    /// The click-to-dial dialogs of `n` for BLF: (call, state, direction, peer).
    pub(super) fn dial_dialogs_of(
        &self,
        n: u16,
    ) -> Vec<(String, &'static str, &'static str, String)> {
        self.dials
            .iter()
            .filter_map(|(no, d)| {
                let state = if d.connected() { "confirmed" } else { "early" };
                if d.a == n {
                    Some((no.to_string(), state, "recipient", d.target.clone()))
                } else if d.b == Some(n) {
                    Some((no.to_string(), state, "recipient", d.a.to_string()))
                } else {
                    None
                }
            })
            .collect()
    }

    /// A request inside a click-to-dial leg (BYE ends both legs).
    pub(super) fn on_dial_request(
        &mut self,
        now_ms: u64,
        no: u32,
        (src, method, body): (Dest, &str, &[u8]),
        f: &Fields<'_>,
        r: super::reply::Replier,
    ) {
        let Some(d) = self.dials.get(no) else {
            return;
        };
        // Each leg is a dialog between the switch and one phone: only that phone
        // (its transport address) may speak in it.
        let side = d.side_of(f.call_id);
        if !d
            .leg(side)
            .is_some_and(|l| l.dest.same_party(src) || l.sent_to.same_party(src))
        {
            log::warn!("click-to-dial call {no}: {method} from a stranger at {src}: refused");
            self.counters.refused += 1;
            return self.answer(now_ms, r, 403, None, &[]);
        }
        match method {
            "ACK" => {}
            "BYE" => {
                self.answer(now_ms, r, 200, None, &[]);
                self.leg_send(now_ms, no, side.other(), "BYE", None);
                let who = if side == Side::A { "A" } else { "B" };
                log::info!("click-to-dial call {no}: {who} hung up");
                self.dial_end(now_ms, no, CallOutcome::Completed, 200, String::new());
            }
            "INVITE" => self.dial_reinvite(now_ms, no, side.other(), body, r),
            _ => self.answer(
                now_ms,
                r,
                488,
                Some("Not Acceptable Here (click-to-dial call)"),
                &[],
            ),
        }
    }

    /// Pass a re-INVITE (hold, resume) with its offer `body` to the `other` leg;
    /// its answer goes back in our 200 (see [`Switch::dial_reinvite_answered`]).
    fn dial_reinvite(
        &mut self,
        now_ms: u64,
        no: u32,
        other: Side,
        body: &[u8],
        r: super::reply::Replier,
    ) {
        let pending = self.dials.get(no).is_some_and(|d| d.reinvite.is_some());
        let connected = self.dials.get(no).is_some_and(Dial::connected);
        if pending {
            return self.answer(now_ms, r, 491, None, &[]);
        }
        if !connected || body.is_empty() {
            // Offerless re-INVITEs (and any before both legs are up) stay unsupported.
            return self.answer(
                now_ms,
                r,
                488,
                Some("Not Acceptable Here (re-INVITE without an offer)"),
                &[],
            );
        }
        let branch = self.branch('d');
        let Some(leg) = self.dial_leg(no, other) else {
            return;
        };
        leg.cseq += 1;
        let cseq = leg.cseq;
        let dest = leg.dest;
        let Some(leg) = self.dial_leg_ref(no, other) else {
            return;
        };
        let via = self.via_to(dest, &branch);
        let bytes = self.leg_request(leg, "INVITE", cseq, Some(body), &via);
        self.server_tx.pending(r.key.clone(), now_ms);
        self.client_tx.start(
            branch.clone(),
            dest,
            bytes.clone(),
            ClientTag::DialReinvite(no),
            now_ms,
        );
        if let Some(d) = self.dials.get_mut(no) {
            d.reinvite = Some(Reinvite {
                replier: r,
                to: other,
                branch,
                cseq,
            });
        }
        self.send(dest, bytes);
    }

    /// The other side answered a re-INVITE we passed on (`resp`; `None`: it never
    /// did, `code` 408): ACK it, and answer the side that sent it with the same
    /// status (and the SDP answer).
    pub(super) fn dial_reinvite_answered(
        &mut self,
        now_ms: u64,
        no: u32,
        code: u16,
        resp: Option<&rsip::Response>,
    ) {
        let Some(ri) = self.dials.get_mut(no).and_then(|d| d.reinvite.take()) else {
            return;
        };
        let Some(leg) = self.dial_leg_ref(no, ri.to) else {
            return;
        };
        // A 2xx is ACKed end to end (new branch), a failure hop by hop (its branch).
        let ack_branch = if (200..300).contains(&code) {
            self.branch('d')
        } else {
            ri.branch.clone()
        };
        if resp.is_some() {
            let via = self.via_to(leg.dest, &ack_branch);
            let ack = self.leg_request(leg, "ACK", ri.cseq, None, &via);
            let dest = leg.dest;
            if (200..300).contains(&code) {
                // Its retransmissions reach on_dial_response, which ACKs again.
                self.dials.index_branch(ri.branch.clone(), no, ri.to);
                if let Some(d) = self.dials.get_mut(no) {
                    d.branches.push(ri.branch.clone());
                }
                if let Some(leg) = self.dial_leg(no, ri.to) {
                    leg.ack = Some(ack.clone());
                }
            }
            self.send(dest, ack);
        }
        let host = self.via_host(ri.replier.dest.ip());
        let contact = format!("<sip:system@{host}>");
        let content_type = resp
            .and_then(|r| Fields::of(&r.headers).content_type.map(str::to_string))
            .unwrap_or_else(|| "application/sdp".to_string());
        let body = resp
            .filter(|r| !r.body.is_empty())
            .map(|r| (content_type.as_str(), &r.body[..]));
        let bytes = ri
            .replier
            .build_body(code, None, &[("Contact", &contact)], body);
        self.server_tx.answered(
            ri.replier.key.clone(),
            ri.replier.dest,
            bytes.clone(),
            now_ms,
        );
        self.send(ri.replier.dest, bytes);
    }

    /// Timers of click-to-dial calls: INVITE retransmissions, A not answering.
    pub(super) fn dials_tick(&mut self, now_ms: u64) {
        let numbers: Vec<u32> = self.dials.numbers();
        for no in numbers {
            let Some(due) = self.dials.get_mut(no).map(|d| d.tick(now_ms)) else {
                continue;
            };
            for (to, bytes) in due.resend {
                self.send(to, bytes);
            }
            if due.timed_out {
                let Some(d) = self.dials.get(no) else {
                    continue;
                };
                let a = d.a;
                let cancel = (!d.leg_a.answered && d.leg_a.proceeding).then(|| {
                    (
                        self.leg_request(&d.leg_a, "CANCEL", 1, None, &d.leg_a.via),
                        d.leg_a.dest,
                    )
                });
                if let Some((bytes, dest)) = cancel {
                    self.send(dest, bytes);
                }
                self.dial_end(
                    now_ms,
                    no,
                    CallOutcome::NoAnswer,
                    480,
                    format!("{a} did not answer"),
                );
            }
        }
    }
}
