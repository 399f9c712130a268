//! The upstream side of the core: which route a non-local number takes, whether
//! that route is connected, and the requests that cross between the phones (UDP)
//! and the upstream peers (TCP): Via and Record-Route for each transport, the
//! caller's identity asserted, 503 with Retry-After while a route is down.
//!
//! The connections themselves live in the I/O shell (`crate::shell::links`); it tells
//! the core when a link comes up or goes down ([`Switch::on_link`]).

use super::fork::Shown;
use super::identity::from_as;
use super::message::TextRef;
use super::register::{Auth, Claim};
use super::reply::Replier;
use super::trust::UNTRUSTED_IDENTITY;
use super::Incoming;
use super::{ClientTag, Switch};
use crate::config::{HostPort, Identity, RouteKind, UpstreamConfig};
use crate::sip::dest::Dest;
use crate::sip::forward::{rewrite, status_line, Rewrite};
use crate::sip::headers::Fields;
use crate::sip::{parse::parse_name_addr, parse::parse_uri};
use coventry_shared::event::{CallOutcome, Event};
use std::net::{IpAddr, SocketAddr};

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

    /// Where a request to `uri` goes (a Route entry or a Request-URI): over TCP
    /// to a connected upstream link, or with `transport=tcp` to an upstream peer's
    /// address (their other connections); anything else is a phone, over UDP. IP
    /// literals only, apart from the configured upstream host names.
    pub(super) fn hop_of(&self, uri: &str) -> Option<Dest> {
        let u = parse_uri(uri)?;
        let port = u.port_or_default();
        let tcp = u
            .param("transport")
            .flatten()
            .is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
        let host = u.host.trim_start_matches('[').trim_end_matches(']');
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => {
                // A host name: only an upstream peer's own name means anything.
                return self
                    .upstream
                    .links
                    .iter()
                    .find(|l| l.peer.host.eq_ignore_ascii_case(host) && l.peer.port == port)
                    .and_then(|l| l.connected)
                    .map(Dest::Tcp);
            }
        };
        let link = self
            .upstream
            .links
            .iter()
            .any(|l| l.connected == Some(addr));
        Some(if link || (tcp && self.is_upstream_ip(addr.ip())) {
            Dest::Tcp(addr)
        } else {
            Dest::Udp(addr)
        })
    }

    /// Whether `ip` is an upstream peer's: a link's, or in `trust`.
    fn is_upstream_ip(&self, ip: IpAddr) -> bool {
        self.config.upstream.trust.contains(&ip)
            || self.upstream.links.iter().any(|l| {
                l.connected.is_some_and(|a| a.ip() == ip)
                    || l.peer.host.parse::<IpAddr>().is_ok_and(|h| h == ip)
            })
    }

    /// Where a request inside a dialog goes: the first entry of its route set,
    /// else the remote target.
    pub(super) fn dialog_hop(&self, route: &[String], target: &str) -> Option<Dest> {
        match route.first() {
            Some(r) => parse_name_addr(r).and_then(|n| self.hop_of(&n.uri)),
            None => self.hop_of(target),
        }
    }

    /// The route set toward the answering side, from a 2xx's Record-Route: the
    /// entries above ours (added beyond the switch), nearest first.
    pub(super) fn route_beyond_us(&self, record_routes: &[&str]) -> Vec<String> {
        let token = format!("cv={}", self.instance);
        let mut route: Vec<String> = record_routes
            .iter()
            .take_while(|r| !r.contains(&token))
            .map(|r| r.to_string())
            .collect();
        route.reverse();
        route
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

    /// Our Via for a request to `dest`.
    pub(super) fn via_to(&self, dest: Dest, branch: &str) -> String {
        match dest {
            Dest::Udp(a) => format!(
                "SIP/2.0/UDP {};branch={branch};rport",
                self.via_host(a.ip())
            ),
            Dest::Tcp(a) => format!("SIP/2.0/TCP {};branch={branch}", self.via_host(a.ip())),
        }
    }

    /// Our Record-Route entry facing `side`.
    fn record_route_to(&self, side: Dest) -> String {
        match side {
            Dest::Udp(a) => self.record_route(a.ip()),
            Dest::Tcp(a) => format!(
                "<sip:{};transport=tcp;lr;cv={}>",
                self.via_host(a.ip()),
                self.instance
            ),
        }
    }

    /// The Record-Route value for a request that came from `from` and goes to
    /// `to`: one entry when both are the same transport, else two (RFC 5658):
    /// the first faces where it goes, the second where it came from, so each side
    /// reaches the switch over its own transport.
    pub(super) fn record_route_between(&self, from: Dest, to: Dest) -> String {
        if from.is_tcp() == to.is_tcp() {
            self.record_route_to(to)
        } else {
            format!(
                "{}, {}",
                self.record_route_to(to),
                self.record_route_to(from)
            )
        }
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

    /// The caller as shown in the call table and records: the extension, or for a
    /// call from upstream the user part of its From (marked `outside-` when it
    /// reads like a local number).
    pub(super) fn caller_label(&self, f: &Fields<'_>, caller: Option<u16>) -> String {
        if let Some(ext) = caller {
            return ext.to_string();
        }
        parse_name_addr(f.from)
            .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            .map(|u| {
                let number: String = u.chars().filter(|c| !c.is_control()).take(23).collect();
                self.outside_label(&number)
            })
            .unwrap_or_else(|| "upstream".to_string())
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
