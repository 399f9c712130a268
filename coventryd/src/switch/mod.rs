//! The switch core: every input (datagram, control line, clock tick) becomes state
//! changes plus an [`Outbox`] of datagrams to send and events to publish. No I/O
//! happens here, so the whole core is testable without sockets.

mod auth;
mod auth_log;
mod blf;
mod bounded;
mod call;
mod call_book;
mod call_end;
mod call_publish;
mod call_timers;
mod command;
mod delivery;
mod dial;
mod dial_book;
mod features;
mod fork;
pub mod guard;
mod hops;
mod identity;
mod indialog;
mod invite;
pub mod kept_calls;
mod keypad;
mod limits;
mod message;
mod outbox;
mod passthrough;
mod record_books;
mod refusal;
mod register;
pub mod registrar;
pub mod reply;
pub mod routes;
pub mod settings;
mod subscriptions;
pub mod system;
pub mod transaction;
mod trust;
pub mod upstream;

pub use command::Line;
pub use outbox::{OutValues, Outbox, TraceOrder};

use crate::config::Config;
use crate::logfmt::quoted;
use crate::sip::dest::Dest;
use crate::sip::digest::{Algorithm, DigestAuthority};
use crate::sip::headers::Fields;
use crate::sip::{error, error::WireError, framing, parse, parse::parse_name_addr, reason};
use crate::switch::registrar::Registrar;
use crate::switch::settings::Settings;
use crate::switch::transaction::{sender_key, ClientTransactions, Seen, ServerTransactions};
use auth::Authentication;
use call_book::CallBook;
use coventry_shared::event::Event;
use coventry_shared::stateblock::Counters;
use delivery::{DeliveryRef, Jobs};
use reply::Replier;
use rsip::SipMessage;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subscriptions::Subscriptions;

/// A request as the core's handlers take it: when it came, from where (the
/// transport address), the message and its fields. The handler's `Replier`
/// travels beside it (it is consumed by the answer).
#[derive(Clone, Copy)]
struct Incoming<'a> {
    now_ms: u64,
    from: Dest,
    req: &'a rsip::Request,
    f: &'a Fields<'a>,
}

/// The core's side of the upstream.
#[derive(Default)]
struct UpstreamState {
    /// The links and whether each is connected.
    links: Vec<upstream::Link>,
    /// MESSAGEs relayed upstream awaiting their answer, by client-transaction tag.
    messages: HashMap<u64, upstream::UpstreamMessage>,
}

/// The switch's state.
pub struct Switch {
    config: Config,
    /// Digest, the auth guard and the failure log.
    auth: Authentication,
    registrar: Registrar,
    server_tx: ServerTransactions,
    client_tx: ClientTransactions<ClientTag>,
    calls: CallBook,
    settings: Settings,
    /// Feature-code calls the switch answered itself: Call-ID → how to hang up.
    local_dialogs: HashMap<String, keypad::LocalDialog>,
    /// Click-to-dial calls by number, by our INVITE branches, by leg Call-ID.
    dials: dial_book::DialBook,
    /// Subscriptions the switch serves and those it passed between phones.
    subscriptions: Subscriptions,
    /// The upstream links and the texts waiting on them.
    upstream: UpstreamState,
    /// The time of the latest input.
    last_now: u64,
    /// Which local address reaches a destination (listening on every address).
    routes: std::cell::RefCell<routes::RouteCache>,
    /// Rate limit of the log lines about parties over their limits.
    limit_log: limits::LimitLog,
    /// The daemon is stopping (its CANCELs say so).
    stopping: bool,
    /// Which book each call record goes to, and callers' budgets of records of
    /// calls that reached no one.
    books: record_books::RecordBooks,
    /// Token marking this instance's Record-Route and branches.
    instance: String,
    /// Secret behind the branches of requests relayed statelessly.
    relay_key: trust::RelayKey,
    /// Call numbers below this are reserved on disk.
    call_numbers_until: u32,
    /// The run state in force.
    runstate: String,
    jobs: Jobs,
    /// Texts each sender has in flight, to phones and to the SMS route.
    texts_in_flight: limits::InFlight,
    counters: Counters,
    /// Address written into Via and our URIs.
    local: SocketAddr,
    ids: IdSource,
    /// Pending outputs.
    out: Outbox,
}

/// What a client transaction of the switch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTag {
    /// Delivering a text message.
    Delivery(DeliveryRef),
    /// A CANCEL or BYE the switch sends; only retransmission matters.
    Fire,
    /// A MESSAGE relayed to the SMS route (key of `upstream_messages`).
    Upstream(u64),
    /// A re-INVITE passed between the legs of click-to-dial call N.
    DialReinvite(u32),
    /// A NOTIFY of the served subscription number N: one refused or unanswered
    /// ends the subscription (RFC 6665 §4.1.3).
    Notify(u64),
    /// An in-dialog OPTIONS probing whether kept call N is still up after a
    /// restart: 481 or no answer ends it.
    Probe(u32),
}

/// Unguessable tokens for branches, tags and Call-IDs: 96 bits from the thread's
/// CSPRNG each (never a counter), so nobody can predict the branch a response must
/// carry or the tag of a dialog the switch is part of.
struct IdSource {
    counter: u64,
}

impl IdSource {
    fn new() -> IdSource {
        IdSource { counter: 0 }
    }

    /// A fresh number (keys of internal tables; never sent).
    fn number(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A fresh random token: 24 lower-case hex digits.
    fn next(&self) -> String {
        let mut bytes = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        hex::encode(bytes)
    }
}

/// A branch of this instance (`instance`) for a request of kind `kind`; see
/// [`Switch::branch`].
fn new_branch(instance: &str, kind: char) -> String {
    format!("z9hG4bK{instance}{kind}{}", IdSource::new().next())
}

fn to_system_time(now_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(now_ms)
}

/// The algorithms the digest authority accepts: every one offered to anyone.
/// Which a claimed user is offered is `Switch::offer_for` (the `[server]` offer,
/// or a line's own), and an answer in another is refused after the check.
fn accepted(config: &Config) -> Vec<Algorithm> {
    // The server's offer first, then what lines offer of their own: the
    // authority accepts any of them; who is offered what is the switch's rule.
    let mut all = config.server.algorithms.clone();
    for l in config.lines.values() {
        for a in l.algorithms.iter().flatten() {
            if !all.contains(a) {
                all.push(*a);
            }
        }
    }
    all
}

fn new_digest(config: &Config) -> DigestAuthority {
    DigestAuthority::new(
        config.server.realm.clone(),
        accepted(config),
        Duration::from_secs(u64::from(config.server.nonce_lifetime)),
    )
}

impl Switch {
    /// A switch with `config`, advertising `local` in what it sends, starting with
    /// the bindings in `registrar` (loaded from disk).
    pub fn new(config: Config, local: SocketAddr, registrar: Registrar) -> Switch {
        let mut registrar = registrar;
        let dropped = registrar.retain_extensions(|e| config.is_configured(e));
        let mut sw = Switch {
            auth: Authentication {
                digest: new_digest(&config),
                guard: guard::AuthGuard::new(guard::Rules::of(&config.security)),
                guard_expired_ms: 0,
                auth_log: auth_log::AuthLog::new(config.security.log_failures),
            },
            config,
            registrar,
            server_tx: ServerTransactions::default(),
            client_tx: ClientTransactions::default(),
            calls: CallBook::default(),
            settings: Settings::default(),
            local_dialogs: HashMap::new(),
            dials: dial_book::DialBook::default(),
            subscriptions: Subscriptions::default(),
            upstream: UpstreamState::default(),
            last_now: 0,
            routes: Default::default(),
            limit_log: Default::default(),
            stopping: false,
            books: Default::default(),
            instance: format!("{:06x}", rand::random::<u32>() & 0xff_ffff),
            relay_key: trust::RelayKey::random(),
            call_numbers_until: 0,
            runstate: coventry_shared::runstate::DEFAULT_RUNSTATE.to_string(),
            jobs: Jobs::default(),
            texts_in_flight: Default::default(),
            counters: Counters::default(),
            local,
            ids: IdSource::new(),
            out: Outbox::default(),
        };
        sw.upstream.links = upstream::links_of(&sw.config.upstream);
        sw.apply_changes(dropped);
        sw
    }

    /// Start with these operator settings (loaded from disk).
    pub fn with_settings(mut self, settings: Settings) -> Switch {
        self.settings = settings;
        let cfg = &self.config;
        self.settings.retain_extensions(|e| cfg.is_configured(e));
        self.out.settings.extend(self.settings.extensions());
        self
    }

    /// Start in run state `name` (kept on disk); an unknown one is logged and the
    /// default is used.
    pub fn with_runstate(mut self, name: &str) -> Switch {
        if name == coventry_shared::runstate::DEFAULT_RUNSTATE
            || self.config.runstates.contains_key(name)
        {
            self.runstate = name.to_string();
        } else {
            log::warn!(
                "run state {name:?} is not in the configuration: starting in {}",
                self.runstate
            );
            self.out.runstate = Some(self.runstate.clone());
        }
        self.out.settings.extend(
            self.config
                .runstates
                .get(&self.runstate)
                .map(|s| s.numbers().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        self
    }

    /// Number calls from `first` on (the I/O shell keeps the first number of the
    /// next start on disk, so a call number names one call for good).
    pub fn resume_call_numbers(mut self, first: u32) -> Switch {
        self.calls.resume_at(first);
        self.call_numbers_until = first;
        self
    }

    /// A new call number; when numbers run into what was reserved on disk, asks
    /// the I/O shell to reserve the next block first.
    fn call_number(&mut self) -> u32 {
        let no = self.calls.number();
        if no >= self.call_numbers_until || no < call::FIRST_CALL_NUMBER {
            self.call_numbers_until = no.saturating_add(CALL_NUMBER_BLOCK);
            self.out.call_numbers_reserved = Some(self.call_numbers_until);
        }
        no
    }

    /// The operator settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The bindings.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The sources the auth guard holds back at `now_ms` (for the intake, which
    /// drops most of what they send unparsed).
    pub fn held_sources(&self, now_ms: u64) -> Vec<guard::Held> {
        self.auth.guard.held(now_ms)
    }

    /// Take the pending outputs.
    pub fn take_out(&mut self) -> Outbox {
        self.blf_update(self.last_now);
        let mut out = std::mem::take(&mut self.out);
        out.resolve(self);
        out
    }

    /// A control line that never ended (no newline in time) was dropped by the
    /// shell: answer it as bad syntax.
    pub fn on_control_unfinished(&mut self, id: Option<u64>, text: String) {
        command::result(
            self,
            id,
            coventry_shared::event::ResultCode::BadSyntax,
            text,
        );
    }

    /// Announce `event` (what the shell did on its own: a reload's outcome, a
    /// link's change) with the core's next outbox.
    pub fn announce(&mut self, event: Event) {
        self.out.events.push(event);
    }

    /// Replace the configuration (reload). The dial plan and listen address need a
    /// restart; everything else applies now, and calls/registrations of extensions
    /// still configured are kept.
    pub fn apply_config(&mut self, config: Config) -> Result<String, String> {
        if config.server.plan != self.config.server.plan {
            return Err("the dial plan (digits) changes only with a restart".into());
        }
        let realm_changed = config.server.realm != self.config.server.realm
            || config.server.algorithms != self.config.server.algorithms
            || config.server.nonce_lifetime != self.config.server.nonce_lifetime;
        if config.server.listen != self.config.server.listen {
            return Err("the listen address changes only with a restart".into());
        }
        if config.server.max_message != self.config.server.max_message {
            return Err("max_message changes only with a restart".into());
        }
        if config.upstream.links() != self.config.upstream.links() {
            // The I/O shell reconnects and reports the new links' states.
            self.upstream.links = upstream::links_of(&config.upstream);
        }
        self.auth
            .guard
            .set_rules(guard::Rules::of(&config.security));
        self.auth.auth_log.set_limit(config.security.log_failures);
        self.config = config;
        self.out.config_changed = true;
        if realm_changed {
            self.auth.digest = new_digest(&self.config);
        }
        let cfg = &self.config;
        let dropped = self.registrar.retain_extensions(|e| cfg.is_configured(e));
        let before: Vec<u16> = self.settings.extensions().collect();
        self.settings.retain_extensions(|e| cfg.is_configured(e));
        if self.settings.extensions().count() != before.len() {
            self.out.settings_changed = true;
            self.out.settings.extend(before);
        }
        // Bindings beyond a lowered `lines` limit stay until they expire or refresh.
        self.apply_changes(dropped);
        if self.runstate != coventry_shared::runstate::DEFAULT_RUNSTATE
            && !self.config.runstates.contains_key(&self.runstate)
        {
            log::warn!("run state {} left the configuration", self.runstate);
            let _ = self.set_runstate(Some(coventry_shared::runstate::DEFAULT_RUNSTATE));
        }
        // What a run state changes may have changed with the file.
        self.out.settings.extend(self.config.lines.keys().copied());
        Ok(format!(
            "reloaded: {} extensions, {} groups",
            self.config.lines.len(),
            self.config.groups.len()
        ))
    }

    /// Handle one datagram from `src`.
    pub fn on_datagram(&mut self, now_ms: u64, src: SocketAddr, bytes: &[u8]) {
        self.last_now = now_ms;
        self.counters.sip_in += 1;
        match framing::parse_datagram(bytes, self.config.server.max_message) {
            Ok(SipMessage::Request(req)) => self.on_request(now_ms, Dest::Udp(src), req),
            Ok(SipMessage::Response(resp)) => self.on_response(now_ms, Dest::Udp(src), resp),
            Err(WireError::Empty) => {}
            Err(e) => {
                match &e {
                    WireError::TooLarge { .. } => self.counters.too_large += 1,
                    _ => self.counters.malformed += 1,
                }
                log::debug!("dropped datagram from {src}: {}", quoted(&e.to_string()));
                if let Some(mut ctx) = e.reply_context().cloned() {
                    ctx.apply_received_rport(src);
                    let dest = ctx
                        .vias
                        .first()
                        .and_then(|v| parse::parse_via(v))
                        .and_then(|v| v.response_addr(5060))
                        .unwrap_or(src);
                    let code = if matches!(e, WireError::TooLarge { .. }) {
                        513
                    } else {
                        ctx.status
                    };
                    let bytes = error::error_response(&ctx, code, reason::reason_phrase(code));
                    self.send(dest, bytes);
                }
            }
        }
    }

    /// Handle one message framed from the TCP connection whose remote end is
    /// `peer` (an upstream peer: the I/O shell accepts no one else).
    pub fn on_stream(&mut self, now_ms: u64, peer: SocketAddr, msg: SipMessage) {
        self.last_now = now_ms;
        self.counters.sip_in += 1;
        match msg {
            SipMessage::Request(req) => self.on_request(now_ms, Dest::Tcp(peer), req),
            SipMessage::Response(resp) => self.on_response(now_ms, Dest::Tcp(peer), resp),
        }
    }

    fn send(&mut self, to: impl Into<Dest>, bytes: Vec<u8>) {
        self.counters.sip_out += 1;
        self.out.sends.push((to.into(), bytes));
    }

    fn on_request(&mut self, now_ms: u64, from: Dest, req: rsip::Request) {
        let method = req.method.to_string();
        let f = Fields::of(&req.headers);
        let Some(top) = f.vias.first().copied() else {
            return;
        };
        let dial = self.dials.by_call_id(f.call_id);
        if method == "ACK" {
            if dial.is_some() {
                return; // the ACK of a click-to-dial leg's 2xx to us
            }
            return self.on_ack(&Incoming {
                now_ms,
                from,
                req: &req,
                f: &f,
            });
        }
        let top_via = parse::parse_via(top);
        let key = sender_key(
            top_via
                .as_ref()
                .and_then(|v| v.branch())
                .unwrap_or_default(),
            top,
            &method,
            &from,
        );
        match self.server_tx.check(&key) {
            Some(Seen::Pending) => {
                self.counters.retransmissions += 1;
                return;
            }
            Some(Seen::Answered(to, bytes) | Seen::Relayed(to, bytes)) => {
                self.counters.retransmissions += 1;
                let (to, bytes) = (*to, bytes.clone());
                self.send(to, bytes);
                return;
            }
            None => {}
        }
        let tag = self.ids.next();
        let r = Replier::new(key, from, (&method, top_via), &f, tag);
        let inc = &Incoming {
            now_ms,
            from,
            req: &req,
            f: &f,
        };
        // A request with a To tag belongs to a dialog: only a dialog the switch
        // made, and only from its parties, gets anywhere (see `indialog`).
        let in_dialog = parse_name_addr(f.to).is_some_and(|n| n.tag().is_some());
        if let Some(no) = dial.filter(|_| in_dialog) {
            return self.on_dial_request(now_ms, no, (from, &method, &req.body), &f, r);
        }
        match method.as_str() {
            // Phones register over UDP; the upstream peer speaks for no extension.
            "REGISTER" if from.is_tcp() => self.answer(
                now_ms,
                r,
                403,
                Some("Forbidden (not from the upstream)"),
                &[],
            ),
            "REGISTER" => self.on_register(inc, r),
            "MESSAGE" => self.on_message(inc, r),
            "OPTIONS" => self.answer(
                now_ms,
                r,
                200,
                None,
                &[("Allow", ALLOW), ("Accept", "text/plain")],
            ),
            "INVITE" if in_dialog => self.route_in_dialog(inc, Some(r)),
            "INVITE" => self.on_invite(inc, r),
            "SUBSCRIBE" if self.is_local_subscribe(&req, &f) => self.on_subscribe(inc, r),
            "CANCEL" => self.on_cancel(inc, r),
            "BYE" | "UPDATE" | "INFO" | "PRACK" | "NOTIFY" | "REFER" | "SUBSCRIBE" | "PUBLISH"
                if in_dialog =>
            {
                self.route_in_dialog(inc, Some(r))
            }
            "SUBSCRIBE" | "NOTIFY" | "PUBLISH" => self.on_passthrough(inc, r),
            "BYE" | "UPDATE" | "INFO" | "PRACK" | "REFER" => self.answer(now_ms, r, 481, None, &[]),
            _ => self.answer(now_ms, r, 501, None, &[("Allow", ALLOW)]),
        }
    }

    /// Send a final response and remember it for retransmissions.
    fn answer(
        &mut self,
        now_ms: u64,
        r: Replier,
        code: u16,
        reason: Option<&str>,
        extra: &[(&str, &str)],
    ) {
        let bytes = r.build(code, reason, extra, None);
        self.server_tx
            .answered(r.key, r.dest, bytes.clone(), now_ms);
        self.send(r.dest, bytes);
    }

    /// [`Switch::answer`] for a request whose [`Replier`] the caller keeps.
    fn answer_ref(
        &mut self,
        now_ms: u64,
        r: &Replier,
        code: u16,
        reason: Option<&str>,
        extra: &[(&str, &str)],
    ) {
        let bytes = r.build(code, reason, extra, None);
        self.server_tx
            .answered(r.key.clone(), r.dest, bytes.clone(), now_ms);
        self.send(r.dest, bytes);
    }

    /// A response from `src`. It is matched by its branch (unguessable) and taken
    /// only from where the request went; anything else is dropped.
    fn on_response(&mut self, now_ms: u64, src: Dest, resp: rsip::Response) {
        let code = resp.status_code.code();
        let Some(branch) = parse::top_via_branch(&resp) else {
            return;
        };
        if self
            .client_tx
            .dest_of(&branch)
            .is_some_and(|d| !d.same_party(src))
        {
            return self.foreign_response(src, code);
        }
        if let Some(outcome) = self.client_tx.response(&branch, src, code, now_ms) {
            self.peer_proven(src);
            match outcome.tag {
                ClientTag::Delivery(d) => self.delivery_done(now_ms, d, outcome.status),
                ClientTag::Upstream(id) => {
                    self.upstream_message_done(now_ms, id, outcome.status, Some(&resp))
                }
                ClientTag::DialReinvite(no) => {
                    self.dial_reinvite_answered(now_ms, no, outcome.status, Some(&resp))
                }
                ClientTag::Notify(no) => self.notify_answered(no, outcome.status),
                ClientTag::Probe(no) => self.probe_answered(now_ms, no, outcome.status),
                ClientTag::Fire => {}
            }
            return;
        }
        if let Some((no, side)) = self.dials.by_branch(&branch) {
            if self
                .dial_leg_sent_to(no, side)
                .is_some_and(|d| d.same_party(src))
            {
                self.peer_proven(src);
                return self.on_dial_response(now_ms, &resp, no, side);
            }
            return self.foreign_response(src, code);
        }
        if let Some((no, idx)) = self.calls.by_branch(&branch) {
            let sent_to = self
                .calls
                .get(no)
                .and_then(|c| c.branches.get(idx))
                .map(|b| b.dest);
            if sent_to.is_some_and(|d| d.same_party(src)) {
                self.peer_proven(src);
                return self.on_invite_response(now_ms, &resp, no, idx);
            }
            return self.foreign_response(src, code);
        }
        if branch.starts_with(trust::STATELESS_BRANCH) {
            self.relay_stateless_response(src, &branch, &resp);
        }
    }

    /// `src` sent what only the real upstream peer can: over TCP, its
    /// connection is proven (see [`Outbox::proven`]).
    fn peer_proven(&mut self, src: Dest) {
        if let Dest::Tcp(addr) = src {
            if !self.out.proven.contains(&addr) {
                self.out.proven.push(addr);
            }
        }
    }

    /// A response carrying one of our branches from somewhere the request did not
    /// go: forged or misrouted, dropped and counted.
    fn foreign_response(&mut self, src: Dest, code: u16) {
        self.counters.refused += 1;
        log::debug!("dropped a {code} response from {src}: not where its request went");
    }

    /// The daemon is stopping: calls still ringing end (a CANCEL with a Reason
    /// to the phones ringing, 503 with Retry-After to the caller, a record);
    /// answered calls are left alone, never sent a BYE: the media flows between
    /// the phones and the next start takes them back ([`Switch::kept_calls`]).
    /// What is still pending in the log (the counts of lines left out) is
    /// written, and the exact next call number kept, so numbering goes on.
    pub fn on_stop(&mut self) {
        // Ringing calls end with a reason; answered ones go on (kept on disk).
        self.stopping = true;
        let ringing: Vec<u32> = self
            .calls
            .live()
            .filter(|c| c.phase != coventry_shared::event::CallPhase::Answered)
            .map(|c| c.no)
            .collect();
        for no in ringing {
            self.fail_call_with(
                self.last_now,
                no,
                503,
                Some("Service Unavailable (switch restarting)"),
                coventry_shared::event::CallOutcome::Failed,
                &[("Retry-After", "5")],
            );
        }
        self.out.call_numbers_reserved = Some(self.calls.next_number());
        let summaries = self.auth.auth_log.take_all();
        auth::log_summaries(&summaries);
        record_books::log_left_out(&self.books.take_all());
    }

    /// Handle a control line.
    pub fn on_control(&mut self, now_ms: u64, line: Line) {
        self.last_now = now_ms;
        command::handle(self, now_ms, line);
    }

    /// Clock tick: retransmissions, timeouts, expiries.
    pub fn on_tick(&mut self, now_ms: u64) {
        self.last_now = now_ms;
        self.routes.get_mut().tick(now_ms);
        self.server_tx.expire(now_ms);
        let mut resend = Vec::new();
        let done = self.client_tx.tick(now_ms, &mut resend);
        for (to, bytes) in resend {
            self.send(to, bytes);
        }
        for o in done {
            match o.tag {
                ClientTag::Delivery(d) => self.delivery_done(now_ms, d, o.status),
                ClientTag::Upstream(id) => self.upstream_message_done(now_ms, id, o.status, None),
                ClientTag::DialReinvite(no) => {
                    self.dial_reinvite_answered(now_ms, no, o.status, None)
                }
                ClientTag::Notify(no) => self.notify_answered(no, o.status),
                ClientTag::Probe(no) => self.probe_answered(now_ms, no, o.status),
                ClientTag::Fire => {}
            }
        }
        self.auth_tick(now_ms);
        record_books::log_left_out(&self.books.take_summaries(now_ms));
        self.calls_tick(now_ms);
        self.dials_tick(now_ms);
        self.forget_subscriptions(now_ms);
        self.expire_settings(now_ms);
        self.local_dialogs.retain(|_, d| d.expires_ms > now_ms);
        if self.registrar.next_expiry().is_some_and(|t| t <= now_ms) {
            let changes = self.registrar.expire(now_ms);
            self.apply_changes(changes);
        }
    }

    /// A fresh branch for a request the switch sends: the magic cookie, this
    /// instance's token (loop detection), a letter saying what it is for, and
    /// an unguessable part.
    fn branch(&self, kind: char) -> String {
        new_branch(&self.instance, kind)
    }
}

/// Call numbers reserved on disk at a time: after a crash at most this many go
/// unused (a clean stop keeps the exact next number), and the disk is written
/// once per this many calls.
pub const CALL_NUMBER_BLOCK: u32 = 100;

/// Methods the switch accepts (for `Allow`).
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, UPDATE, INFO, PRACK, REFER, NOTIFY, SUBSCRIBE, PUBLISH";
