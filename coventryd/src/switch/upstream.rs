//! The upstream side of the core: which route a non-local number takes, whether
//! that route is connected, and the requests that cross between the phones (UDP)
//! and the upstream peers (TCP): Via and Record-Route for each transport, the
//! caller's identity asserted, 503 with Retry-After while a route is down.
//!
//! The connections themselves live in the I/O shell (`crate::shell::links`); it tells
//! the core when a link comes up or goes down ([`Switch::on_link`]).

use super::auth::{Auth, Claim};
use super::fork::Shown;
use super::identity::from_as;
use super::message::TextRef;
use super::reply::Replier;
use super::trust::UNTRUSTED_IDENTITY;
use super::Incoming;
use super::{ClientTag, Switch};
use crate::config::{HostPort, Identity, RouteKind, UpstreamConfig};
use crate::sip::dest::Dest;
use crate::sip::forward::{rewrite, status_line, Rewrite};
use crate::sip::headers::Fields;

use coventry_shared::event::{CallOutcome, Event};
use std::net::SocketAddr;

/// What the core knows of one upstream link (a distinct peer of `[upstream]`).
#[derive(Debug, Clone)]
pub struct Link {
    /// The peer as configured.
    pub peer: HostPort,
    /// The routes it serves.
    pub kinds: Vec<RouteKind>,
    /// The remote address while connected.
    pub connected: Option<SocketAddr>,
    /// Calls and messages refused with 503 because it was not connected.
    pub refused: u64,
}

/// Links as configured, none connected yet.
pub fn links_of(cfg: &UpstreamConfig) -> Vec<Link> {
    cfg.links()
        .into_iter()
        .map(|(peer, kinds)| Link {
            peer,
            kinds,
            connected: None,
            refused: 0,
        })
        .collect()
}

/// Whether a route can take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteStatus {
    /// No such route is configured.
    None,
    /// Configured but not connected (link index).
    Down(usize),
    /// Connected to this address (link index, address).
    Up(usize, SocketAddr),
}

impl Switch {
    /// A link came up (`Some(remote address)`) or went down (`None`).
    pub fn on_link(&mut self, link: usize, connected: Option<SocketAddr>) {
        if let Some(l) = self.upstream.links.get_mut(link) {
            l.connected = connected;
        }
    }

    /// The links (state-block figures the core keeps: `refused`).
    pub fn links(&self) -> &[Link] {
        &self.upstream.links
    }

    /// Where requests of `kind` can go now.
    pub(super) fn route_status(&self, kind: RouteKind) -> RouteStatus {
        match self
            .upstream
            .links
            .iter()
            .position(|l| l.kinds.contains(&kind))
        {
            None => RouteStatus::None,
            Some(i) => match self.upstream.links[i].connected {
                Some(a) => RouteStatus::Up(i, a),
                None => RouteStatus::Down(i),
            },
        }
    }

    /// Whether a call or text from the upstream peer may go on: always when no
    /// `peer_secret` is set (its address was enough), else once it answered the
    /// digest challenge as `peer_user` (until then it got 407, or 403). When it
    /// may, the connection it came on is proven ([`super::Outbox::proven`]).
    pub(super) fn upstream_peer_allowed(&mut self, inc: &Incoming<'_>, r: &Replier) -> bool {
        let allowed = match self.config.upstream.peer_secret {
            None => true,
            Some(_) => {
                let user = self.config.upstream.peer_user.clone();
                let claim = Claim {
                    user: &user,
                    credentials: &inc.f.proxy_authorization,
                    challenge_code: 407,
                    peer: true,
                };
                matches!(self.authenticate(inc, claim, r), Auth::Ok(_))
            }
        };
        if allowed {
            self.peer_proven(inc.from);
        }
        allowed
    }

    /// The Request-URI for `number` on the link at `peer`.
    pub(super) fn upstream_uri(&self, number: &str, link: usize) -> String {
        let domain = self
            .config
            .upstream
            .domain
            .clone()
            .or_else(|| self.upstream.links.get(link).map(|l| l.peer.to_string()))
            .unwrap_or_default();
        format!("sip:{number}@{domain}")
    }

    /// The P-Asserted-Identity for requests from extension `ext` (none for calls
    /// from upstream, `ext` 0, or with `identity = from`).
    fn asserted_identity(&self, ext: Option<u16>) -> Option<String> {
        let ext = ext?;
        if self.config.upstream.identity != Identity::Pai {
            return None;
        }
        let display = self
            .config
            .lines
            .get(&ext)
            .map(|l| l.display.replace(['"', '\\'], ""))
            .unwrap_or_default();
        let host = self.identity_host();
        let user = self.config.building_number(&ext.to_string());
        Some(format!("\"{display}\" <sip:{user}@{host}>"))
    }

    /// The host of the identities the switch asserts upstream: `[upstream]
    /// domain`, else the realm.
    fn identity_host(&self) -> String {
        self.config
            .upstream
            .domain
            .clone()
            .unwrap_or_else(|| self.config.server.realm.clone())
    }

    /// Refuse a request because its route is down: 503 with Retry-After.
    pub(super) fn route_down(&mut self, link: usize) -> (u16, String) {
        if let Some(l) = self.upstream.links.get_mut(link) {
            l.refused += 1;
        }
        (503, self.config.upstream.retry_after.to_string())
    }

    /// Send call `no`'s INVITE to `number` on the upstream link `link` at `peer`.
    pub(super) fn fork_upstream(
        &mut self,
        now_ms: u64,
        no: u32,
        number: &str,
        link: usize,
        peer: SocketAddr,
    ) {
        let Some(call) = self.calls.get(no) else {
            return;
        };
        let Some(req) = call.invite.request.clone() else {
            return;
        };
        let from = call.invite.replier.dest;
        let caller = call.caller.ext;
        let hops = call.hops.clone();
        let dest = Dest::Tcp(peer);
        let id = self.branch('x');
        let via = self.via_to(dest, &id);
        let rr = self.record_route_between(from, dest);
        let uri = self.upstream_uri(number, link);
        let pai = self.asserted_identity(caller);
        let mut prepend = vec![("Via", via.as_str()), ("Record-Route", rr.as_str())];
        if let Some(p) = &pai {
            prepend.push(("P-Asserted-Identity", p));
        }
        let host = self.identity_host();
        let prefix = self.config.upstream.site_prefix.clone().unwrap_or_default();
        let shown = Shown {
            caller,
            hops: &hops,
            host: &host,
            prefix: &prefix,
        };
        let bytes = self.forked_invite(&req, &uri, &prepend, &shown);
        self.start_branch(now_ms, no, (id, via), (uri, dest), bytes, None);
    }

    /// A phone's MESSAGE to a non-local number: relayed to the SMS route, whose
    /// final answer goes back to the phone (503 at once while the route is down).
    pub(super) fn message_upstream(
        &mut self,
        now_ms: u64,
        req: &rsip::Request,
        r: Replier,
        sender: &str,
        number: &str,
        text: &str,
    ) {
        let (link, peer) = match self.route_status(RouteKind::Sms) {
            RouteStatus::None => {
                return self.reject_message(
                    now_ms,
                    r,
                    TextRef {
                        from: sender,
                        to: number,
                        text,
                    },
                    404,
                    "Not Found",
                )
            }
            RouteStatus::Down(link) => {
                let (code, retry) = self.route_down(link);
                self.counters.messages_failed += 1;
                self.out.events.push(Event::Message {
                    id: None,
                    from: sender.to_string(),
                    to: number.to_string(),
                    status: code,
                    text: text.to_string(),
                });
                return self.answer(
                    now_ms,
                    r,
                    code,
                    Some("Service Unavailable (upstream down)"),
                    &[("Retry-After", &retry)],
                );
            }
            RouteStatus::Up(link, peer) => (link, peer),
        };
        let dest = Dest::Tcp(peer);
        let branch = self.branch('m');
        let via = self.via_to(dest, &branch);
        let uri = self.upstream_uri(number, link);
        let pai = self.asserted_identity(sender.parse().ok());
        let mut prepend = vec![("Via", via.as_str())];
        if let Some(p) = &pai {
            prepend.push(("P-Asserted-Identity", p));
        }
        // In a building the far sites know the sender by its building number.
        let from = (self.config.upstream.site_prefix.is_some())
            .then(|| {
                let fields = Fields::of(&req.headers);
                from_as(fields.from, None, &self.config.building_number(sender))
            })
            .flatten();
        let bytes = rewrite(
            &req.headers,
            &req.body,
            &Rewrite {
                start_line: format!("MESSAGE {uri} SIP/2.0"),
                prepend: &prepend,
                drop_routes: self.our_routes(&Fields::of(&req.headers)),
                drop_proxy_auth: true,
                decrement_max_forwards: true,
                drop_named: UNTRUSTED_IDENTITY,
                replace_from: from.as_deref(),
                ..Rewrite::default()
            },
        );
        self.server_tx.pending(r.key.clone(), now_ms);
        let id = self.ids.number();
        self.texts_in_flight.add(sender, text.len());
        self.upstream.messages.insert(
            id,
            UpstreamMessage {
                replier: r,
                from: sender.to_string(),
                to: number.to_string(),
                text: text.to_string(),
            },
        );
        self.client_tx
            .start(branch, dest, bytes.clone(), ClientTag::Upstream(id), now_ms);
        self.send(dest, bytes);
    }

    /// The final answer (`resp`; `None`: Timer F) for the MESSAGE relayed upstream
    /// as `id`.
    pub(super) fn upstream_message_done(
        &mut self,
        now_ms: u64,
        id: u64,
        status: u16,
        resp: Option<&rsip::Response>,
    ) {
        let Some(m) = self.upstream.messages.remove(&id) else {
            return;
        };
        self.texts_in_flight.remove(&m.from, m.text.len());
        if (200..300).contains(&status) {
            self.counters.messages_delivered += 1;
        } else {
            self.counters.messages_failed += 1;
        }
        self.out.events.push(Event::Message {
            id: None,
            from: m.from,
            to: m.to,
            status,
            text: m.text,
        });
        let code = match status {
            401 | 407 => 403,
            s => s,
        };
        let reason = resp
            .filter(|_| code == status)
            .and_then(|r| status_line(r).splitn(3, ' ').nth(2).map(str::to_string));
        self.answer(now_ms, m.replier, code, reason.as_deref(), &[]);
    }

    /// Fail call `no` because its route is down: 503 with Retry-After.
    pub(super) fn fail_route_down(&mut self, now_ms: u64, no: u32, link: usize) {
        let (code, retry) = self.route_down(link);
        self.fail_call_with(
            now_ms,
            no,
            code,
            Some("Service Unavailable (upstream down)"),
            CallOutcome::Failed,
            &[("Retry-After", &retry)],
        );
    }
}

/// A MESSAGE relayed upstream, waiting for its answer.
#[derive(Debug)]
pub struct UpstreamMessage {
    /// Answers the phone.
    pub replier: Replier,
    /// Sender label.
    pub from: String,
    /// Number as addressed.
    pub to: String,
    /// The text.
    pub text: String,
}
