//! REGISTER: digest authentication, then bindings (RFC 3261 §10.3).

use super::auth_log::{self, Origin};
use super::guard::{Admission, Bound, SourceKey};
use super::reply::Replier;
use super::Incoming;
use super::{to_system_time, Switch};
use crate::config::ServerConfig;
use crate::logfmt::quoted;
use crate::sip::digest::{claimed_username, parse_credentials};
use crate::sip::digest::{Algorithm, Verdict};
use crate::sip::headers::Fields;
use crate::sip::{parse::parse_name_addr, parse::parse_uri, serialize};
use crate::switch::registrar::{ContactRequest, Refusal, RegisterMeta};
use coventry_shared::event::Event;
use coventry_shared::stateblock::MAX_CONTACTS;
use std::net::SocketAddr;

/// How often the guard's forgotten entries are dropped, ms.
const GUARD_EXPIRY_INTERVAL_MS: u64 = 10_000;

/// Who a request claims to come from and the credentials it carries.
pub(super) struct Claim<'a> {
    /// The extension the request claims (To user for REGISTER, From user otherwise).
    pub user: &'a str,
    /// Authorization (401 challenge) or Proxy-Authorization (407) values.
    pub credentials: &'a [&'a str],
    /// 401 or 407.
    pub challenge_code: u16,
    /// The claim is the upstream peer's (`[upstream] peer_user`), not an extension's.
    pub peer: bool,
}

/// Outcome of checking a request's credentials.
pub(super) enum Auth {
    /// Authenticated as this user.
    Ok(String),
    /// A response has been sent (challenge or refusal).
    Answered,
}

impl Switch {
    /// Authenticate `req` with `values` (Authorization or Proxy-Authorization);
    /// challenge (`challenge_code` 401/407) or refuse (403) when it does not pass.
    /// A source or user name that has to wait after failed authentications (the
    /// auth guard) gets `503` with `Retry-After` and nothing is checked.
    pub(super) fn authenticate(
        &mut self,
        inc: &Incoming<'_>,
        claim: Claim<'_>,
        r: &Replier,
    ) -> Auth {
        let Incoming { now_ms, req, .. } = *inc;
        let src = inc.from.addr();
        let (values, claimed, challenge_code) =
            (claim.credentials, claim.user, claim.challenge_code);
        let now = to_system_time(now_ms);
        let (value, algorithm) = match self.credentials_of(values) {
            Some((v, a)) => (Some(v), Some(a)),
            None => (None, None),
        };
        let method = req.method.to_string();
        // The guard keeps account under the name whose secret would be checked.
        let who = value
            .and_then(claimed_username)
            .unwrap_or_else(|| claimed.to_string());
        let bound = self.is_bound(&who, src);
        if let Admission::Wait { retry_after_s } = self.auth.guard.admit(now_ms, src, &who, bound) {
            self.auth_refused(inc, &who, retry_after_s);
            let retry = retry_after_s.to_string();
            self.answer_ref(
                now_ms,
                r,
                503,
                Some("Service Unavailable (too many failed authentications)"),
                &[("Retry-After", &retry)],
            );
            return Auth::Answered;
        }
        let Some(value) = value else {
            self.challenge(now_ms, now, (challenge_code, false), (r, &who));
            return Auth::Answered;
        };
        let uri = digest_uri_to_check(&serialize::format_uri(&req.uri), value);
        let config = &self.config;
        let peer = claim.peer;
        let checked = self.auth.digest.digests_checked();
        let from = Some(inc.from.addr().ip());
        let verdict = self
            .auth
            .digest
            .verify_from(now, (&method, &uri), value, from, |user| {
                if peer {
                    Switch::peer_credentials(config, user)
                } else {
                    Switch::credentials(config, user)
                }
            });
        self.counters.digests_checked += self.auth.digest.digests_checked().saturating_sub(checked);
        match verdict {
            Verdict::Ok { username } => {
                if username != claimed {
                    let bound = self.is_bound(claimed, src);
                    self.auth.guard.failed(now_ms, src, claimed, bound);
                    let why = "credentials of another extension";
                    self.auth_failed(inc, &username, why);
                    self.answer_ref(now_ms, r, 403, Some("Forbidden (identity mismatch)"), &[]);
                    return Auth::Answered;
                }
                if algorithm.is_some_and(|a| !self.offer_for(&username).contains(&a)) {
                    // Right, but with an algorithm this line is not offered (its
                    // own `algorithm` keeps MD5 out, say).
                    self.auth_failed(inc, &username, "algorithm not offered");
                    self.answer_ref(
                        now_ms,
                        r,
                        403,
                        Some("Forbidden (algorithm not offered)"),
                        &[],
                    );
                    return Auth::Answered;
                }
                self.auth.guard.succeeded(now_ms, src, &username);
                Auth::Ok(username)
            }
            Verdict::Stale => {
                self.challenge(now_ms, now, (challenge_code, true), (r, &who));
                Auth::Answered
            }
            Verdict::Dead => {
                // A guess on a nonce that already failed: counted, never checked.
                self.auth.guard.failed(now_ms, src, &who, bound);
                self.auth_failed(inc, &who, "nonce already failed");
                self.challenge(now_ms, now, (challenge_code, false), (r, &who));
                Auth::Answered
            }
            Verdict::Rejected { reason } => {
                self.auth.guard.failed(now_ms, src, &who, bound);
                self.auth_failed(inc, &who, reason);
                self.answer_ref(now_ms, r, 403, Some("Forbidden"), &[]);
                Auth::Answered
            }
        }
    }

    /// Where extension `user` has a binding, seen from `src`: from exactly there,
    /// or from its host.
    fn is_bound(&self, user: &str, src: SocketAddr) -> Bound {
        let Ok(ext) = user.parse::<u16>() else {
            return Bound::NOWHERE;
        };
        let host = SourceKey::of(src.ip());
        let mut bound = Bound::NOWHERE;
        for b in self.registrar.contacts(ext) {
            let Ok(at) = b.source.parse::<SocketAddr>() else {
                continue;
            };
            if at == src {
                return Bound::EXACT;
            }
            bound.host |= SourceKey::of(at.ip()) == host;
        }
        bound
    }

    /// The credentials among `values` that the switch checks (those for its
    /// realm; a phone may carry several), and the algorithm they use (MD5 when
    /// they name none).
    pub(super) fn credentials_of<'v>(&self, values: &[&'v str]) -> Option<(&'v str, Algorithm)> {
        let realm = format!("realm=\"{}\"", self.config.server.realm);
        let value = values
            .iter()
            .find(|v| v.contains(&realm))
            .or_else(|| values.first())
            .copied()?;
        let algorithm = parse_credentials(value)
            .ok()
            .and_then(|p| p.algorithm.and_then(|a| Algorithm::parse(&a)))
            .unwrap_or(Algorithm::Md5);
        Some((value, algorithm))
    }

    /// What a phone claiming `user` is offered: the line's own `algorithm`, else
    /// the `[server]` offer — the same for every name that is not a line with an
    /// offer of its own, existing or not, so the challenge does not tell which
    /// extensions exist.
    pub(super) fn offer_for(&self, user: &str) -> &[Algorithm] {
        let server = &self.config.server.algorithms;
        user.parse::<u16>()
            .ok()
            .and_then(|n| self.config.lines.get(&n))
            .map_or(server.as_slice(), |l| l.offer(server))
    }

    /// How extension `ext` signs in, for `why`: the digest it is offered and
    /// why that one, and what its registered phones answered with.
    pub(super) fn digest_step(&self, ext: u16) -> String {
        let names = |list: &[Algorithm]| {
            list.iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let own = self
            .config
            .lines
            .get(&ext)
            .is_some_and(|l| l.algorithms.is_some());
        let source = if own {
            "its own algorithm key"
        } else {
            "the [server] offer"
        };
        let mut step = format!(
            "{ext} is challenged with digest {} ({source})",
            names(self.offer_for(&ext.to_string()))
        );
        let mut answered: Vec<Algorithm> = self
            .registrar
            .contacts(ext)
            .iter()
            .filter_map(|b| b.algorithm)
            .collect();
        answered.sort_by_key(|a| a.code());
        answered.dedup();
        if !answered.is_empty() {
            step.push_str(&format!(
                "; its phones registered with {}",
                names(&answered)
            ));
        }
        step
    }

    /// Challenge a phone claiming `user` with its offer ([`Switch::offer_for`]).
    fn challenge(
        &mut self,
        now_ms: u64,
        now: std::time::SystemTime,
        (code, stale): (u16, bool),
        (r, user): (&Replier, &str),
    ) {
        let header = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let offer = self.offer_for(user).to_vec();
        let to = Some(r.dest.addr().ip());
        let values = self.auth.digest.challenges_to(now, stale, &offer, to);
        let extra: Vec<(&str, &str)> = values.iter().map(|v| (header, v.as_str())).collect();
        self.answer_ref(now_ms, r, code, None, &extra);
    }

    /// One failed authentication: counted, logged (rate-limited per address, every
    /// network field quoted) with its event.
    pub(super) fn auth_failed(&mut self, inc: &Incoming<'_>, user: &str, why: &str) {
        let Incoming { now_ms, req, .. } = *inc;
        let src = inc.from.addr();
        self.counters.auth_failures += 1;
        if !self.auth.auth_log.note(now_ms, Origin::of(inc.from)).write {
            return;
        }
        let method = req.method.to_string();
        let (method, why, ua) = (quoted(&method), quoted(why), quoted(user_agent(req)));
        match Origin::of(inc.from) {
            Origin::Phone(_) => log::warn!(
                "auth failed: source={src} user={} method={method} reason={why} ua={ua}",
                quoted(user),
            ),
            Origin::Peer(_) => log::warn!(
                "upstream peer auth failed: peer={src} user={} method={method} reason={why} ua={ua}",
                quoted(user),
            ),
        }
        self.auth_failed_event(user, src);
    }

    /// A request refused unchecked by the guard: counted, logged like a failure.
    fn auth_refused(&mut self, inc: &Incoming<'_>, user: &str, retry_after_s: u64) {
        let Incoming { now_ms, req, .. } = *inc;
        let src = inc.from.addr();
        self.counters.auth_refused += 1;
        if !self.auth.auth_log.note(now_ms, Origin::of(inc.from)).write {
            return;
        }
        let method = req.method.to_string();
        let (method, why, ua) = (
            quoted(&method),
            quoted("waiting after failed authentications"),
            quoted(user_agent(req)),
        );
        match Origin::of(inc.from) {
            Origin::Phone(_) => log::warn!(
                "auth failed: source={src} user={} method={method} reason={why} \
                 retry_after={retry_after_s} ua={ua}",
                quoted(user),
            ),
            Origin::Peer(_) => log::warn!(
                "upstream peer auth failed: peer={src} user={} method={method} reason={why} \
                 retry_after={retry_after_s} ua={ua}",
                quoted(user),
            ),
        }
        self.auth_failed_event(user, src);
    }

    fn auth_failed_event(&mut self, user: &str, src: SocketAddr) {
        let user: String = user.chars().filter(|c| !c.is_control()).take(32).collect();
        self.out.events.push(Event::AuthFailed {
            user,
            source: src.to_string(),
        });
    }

    /// Clock work of authentication: summaries of the failure lines left out, and
    /// forgetting old failures now and then.
    pub(super) fn auth_tick(&mut self, now_ms: u64) {
        let summaries = self.auth.auth_log.take_summaries(now_ms);
        log_summaries(&summaries);
        if now_ms.saturating_sub(self.auth.guard_expired_ms) >= GUARD_EXPIRY_INTERVAL_MS {
            self.auth.guard_expired_ms = now_ms;
            self.auth.guard.expire(now_ms);
        }
    }

    /// A REGISTER: the phone answers its line's digest, then its contacts are
    /// added, refreshed or removed, and the answer lists the line's bindings.
    pub(super) fn on_register(&mut self, inc: &Incoming<'_>, r: Replier) {
        let Incoming { now_ms, f, .. } = *inc;
        let user = parse_name_addr(f.to)
            .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            .unwrap_or_default();
        let claim = Claim {
            user: &user,
            credentials: &f.authorization,
            challenge_code: 401,
            peer: false,
        };
        let Auth::Ok(user) = self.authenticate(inc, claim, &r) else {
            return;
        };
        let Some(line) = user
            .parse::<u16>()
            .ok()
            .and_then(|n| self.config.lines.get(&n))
        else {
            return self.answer(now_ms, r, 404, None, &[]);
        };
        let ext = line.number;
        let max_contacts = usize::from(line.lines).min(MAX_CONTACTS);
        let changes = match contact_asks(f, &self.config.server, max_contacts) {
            Err((code, reason)) => return self.answer(now_ms, r, code, Some(reason), &[]),
            Ok(Ask::RemoveAll) => Ok(self
                .registrar
                .remove_all(ext, coventry_shared::event::Unregistration::ByPhone)),
            Ok(Ask::Set(requests)) => {
                if let Some(why) = requests
                    .iter()
                    .filter(|c| c.expires > 0)
                    .find_map(|c| self.contact_refused(&c.uri))
                {
                    return self.answer(now_ms, r, 403, Some(why), &[]);
                }
                let source = inc.from.addr().to_string();
                let meta = RegisterMeta {
                    source: &source,
                    user_agent: f.user_agent,
                    call_id: f.call_id,
                    cseq: f.cseq_number().unwrap_or(0),
                    now_ms,
                    algorithm: self.credentials_of(&f.authorization).map(|(_, a)| a),
                };
                self.registrar.register(ext, max_contacts, &requests, &meta)
            }
        };
        let changes = match changes {
            Ok(changes) => changes,
            Err(Refusal::OutOfOrder) => {
                let retry: &[(&str, &str)] = &[("Retry-After", "1")];
                let reason = Some("Server Internal Error (out of order)");
                return self.answer(now_ms, r, 500, reason, retry);
            }
            Err(Refusal::LinesFull { lines }) => {
                log::info!(
                    "{ext}: a registration from {} refused: all {lines} line(s) in use by phones \
                     at other addresses ([{ext}] lines)",
                    inc.from.addr()
                );
                self.counters.refused += 1;
                let reason = format!("Forbidden (all {lines} lines of {ext} are in use)");
                return self.answer(now_ms, r, 403, Some(&reason), &[]);
            }
        };
        self.apply_changes(changes);
        self.counters.registers += 1;
        self.answer_bindings(now_ms, r, ext);
    }

    /// Why a contact URI may not be bound, if it may not: an address no phone
    /// has (multicast, broadcast, unspecified) or the switch's own, where a
    /// call would only come back to the switch.
    fn contact_refused(&self, uri: &str) -> Option<&'static str> {
        let u = crate::sip::parse::parse_uri(uri)?;
        let ip: std::net::IpAddr = u.host.trim_matches(['[', ']']).parse().ok()?;
        let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_multicast() || broadcast || ip.is_unspecified() {
            return Some("Forbidden (no phone has that contact address)");
        }
        if self.is_own_addr(SocketAddr::new(ip, u.port_or_default())) {
            return Some("Forbidden (that contact is the switch itself)");
        }
        None
    }

    /// 200 to a REGISTER: every binding of `ext` with the seconds it has left,
    /// and the time.
    fn answer_bindings(&mut self, now_ms: u64, r: Replier, ext: u16) {
        let contacts: Vec<String> = self
            .registrar
            .contacts(ext)
            .iter()
            .map(|b| {
                format!(
                    "<{}>;expires={}",
                    b.uri,
                    b.expires_ms.saturating_sub(now_ms).div_ceil(1000)
                )
            })
            .collect();
        let mut extra: Vec<(&str, &str)> =
            contacts.iter().map(|c| ("Contact", c.as_str())).collect();
        let date = httpdate::fmt_http_date(to_system_time(now_ms));
        extra.push(("Date", &date));
        self.answer(now_ms, r, 200, None, &extra);
    }
}

/// What a REGISTER asks of the registrar.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// `Contact: *` with `Expires: 0`: remove every binding of the line.
    RemoveAll,
    /// Add, refresh (expires > 0) or remove (0) these; none: only list them.
    Set(Vec<ContactRequest>),
}

/// Read a REGISTER's contacts, each with its lifetime (its own `expires`, else
/// the Expires header, else `default_expires`; 0 removes, the rest clamped to
/// `[min_expires, max_expires]`), or the status refusing them: unreadable,
/// `*` without `Expires: 0`, more than `max_contacts` to keep.
fn contact_asks(
    f: &Fields<'_>,
    server: &ServerConfig,
    max_contacts: usize,
) -> Result<Ask, (u16, &'static str)> {
    let header_expires = f.expires.and_then(|e| e.trim().parse::<u32>().ok());
    if f.contacts.len() == 1 && f.contacts[0].trim() == "*" {
        return match header_expires {
            Some(0) => Ok(Ask::RemoveAll),
            _ => Err((400, "Bad Request (Contact * needs Expires: 0)")),
        };
    }
    let mut requests = Vec::with_capacity(f.contacts.len());
    for c in &f.contacts {
        let na = parse_name_addr(c).ok_or((400, "Bad Request (unreadable Contact)"))?;
        if na.uri.trim() == "*" || na.parsed_uri().is_none() {
            return Err((400, "Bad Request (bad Contact URI)"));
        }
        let secs = na
            .expires()
            .or(header_expires)
            .unwrap_or(server.default_expires);
        let expires = match secs {
            0 => 0,
            e => e.clamp(server.min_expires, server.max_expires),
        };
        requests.push(ContactRequest {
            uri: na.uri.clone(),
            expires,
        });
    }
    if requests.iter().filter(|c| c.expires > 0).count() > max_contacts {
        return Err((403, "Forbidden (too many contacts for this line)"));
    }
    Ok(Ask::Set(requests))
}

/// One line per address whose failure lines were left out, with their count.
pub(super) fn log_summaries(summaries: &[auth_log::Summary]) {
    for s in summaries {
        match s.source {
            Origin::Phone(ip) => log::warn!(
                "auth failed: source={ip} suppressed={} (more failed authentications from this \
                 address within a minute)",
                s.count
            ),
            Origin::Peer(ip) => log::warn!(
                "upstream peer auth failed: peer={ip} suppressed={} (more failed \
                 authentications of the upstream peer within a minute)",
                s.count
            ),
        }
    }
}

/// The User-Agent of `req` (empty without one), for failure lines.
fn user_agent(req: &rsip::Request) -> &str {
    use rsip::prelude::UntypedHeader;
    req.headers
        .iter()
        .find_map(|h| match h {
            rsip::Header::UserAgent(v) => Some(v.value()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The URI the digest response must have been computed over: the Request-URI, or
/// the switch's own address when the phone used that (sipp and some phones put
/// `sip:HOST:PORT` there). Anything else must match the Request-URI exactly, so a
/// response cannot be moved to another resource.
fn digest_uri_to_check(request_uri: &str, credentials: &str) -> String {
    let Ok(p) = parse_credentials(credentials) else {
        return request_uri.to_string();
    };
    let (Some(du), Some(ru)) = (p.uri.as_deref().and_then(parse_uri), parse_uri(request_uri))
    else {
        return request_uri.to_string();
    };
    let switch_itself = du.user.is_none()
        && du.host.eq_ignore_ascii_case(ru.host)
        && du.port_or_default() == ru.port_or_default()
        && du.scheme.eq_ignore_ascii_case(ru.scheme);
    if switch_itself {
        p.uri.as_deref().unwrap_or(request_uri).to_string()
    } else {
        request_uri.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_uri_may_name_the_switch_but_nothing_else() {
        let ru = "sip:35@127.0.0.1:5060";
        let cred = |u: &str| {
            format!("Digest username=\"21\", realm=\"r\", nonce=\"n\", uri=\"{u}\", response=\"x\"")
        };
        assert_eq!(
            digest_uri_to_check(ru, &cred("sip:127.0.0.1:5060")),
            "sip:127.0.0.1:5060"
        );
        assert_eq!(
            digest_uri_to_check(ru, &cred("sip:127.0.0.1")),
            "sip:127.0.0.1"
        );
        assert_eq!(digest_uri_to_check(ru, &cred("sip:36@127.0.0.1:5060")), ru);
        assert_eq!(digest_uri_to_check(ru, &cred("sip:127.0.0.2:5060")), ru);
        assert_eq!(digest_uri_to_check(ru, &cred("sip:127.0.0.1:5070")), ru);
        assert_eq!(digest_uri_to_check(ru, "garbage"), ru);
    }

    fn asks(contacts: &[&str], expires: Option<&str>, max: usize) -> Result<Ask, u16> {
        let mut text = String::from(
            "REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKr\r\n\
             From: <sip:21@h>;tag=1\r\nTo: <sip:21@h>\r\nCall-ID: r\r\nCSeq: 1 REGISTER\r\n",
        );
        for c in contacts {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let msg = crate::sip::framing::parse_datagram(text.as_bytes(), 65_535).expect("parses");
        let rsip::SipMessage::Request(req) = msg else {
            panic!("a request");
        };
        let server = ServerConfig::default();
        contact_asks(&Fields::of(&req.headers), &server, max).map_err(|e| e.0)
    }

    fn set(list: &[(&str, u32)]) -> Result<Ask, u16> {
        Ok(Ask::Set(
            list.iter()
                .map(|(uri, expires)| ContactRequest {
                    uri: uri.to_string(),
                    expires: *expires,
                })
                .collect(),
        ))
    }

    #[test]
    fn lifetimes_come_from_the_contact_then_the_header_then_the_default() {
        let server = ServerConfig::default();
        assert_eq!(
            asks(&["<sip:21@127.0.0.1:5062>;expires=120"], Some("600"), 1),
            set(&[("sip:21@127.0.0.1:5062", 120)])
        );
        assert_eq!(
            asks(&["<sip:21@127.0.0.1:5062>"], Some("600"), 1),
            set(&[("sip:21@127.0.0.1:5062", 600)])
        );
        assert_eq!(
            asks(&["<sip:21@127.0.0.1:5062>"], None, 1),
            set(&[("sip:21@127.0.0.1:5062", server.default_expires)])
        );
        assert_eq!(
            asks(&["<sip:21@127.0.0.1:5062>;expires=1"], None, 1),
            set(&[("sip:21@127.0.0.1:5062", server.min_expires)]),
            "clamped"
        );
        assert_eq!(asks(&[], None, 1), set(&[]), "a query");
    }

    #[test]
    fn star_removal_and_refusals() {
        assert_eq!(asks(&["*"], Some("0"), 1), Ok(Ask::RemoveAll));
        assert_eq!(asks(&["*"], None, 1), Err(400));
        assert_eq!(asks(&["<*>"], Some("0"), 1), Err(400));
        assert_eq!(asks(&["<sip:21@a>", "<sip:21@b>"], None, 1), Err(403));
        assert_eq!(
            asks(&["<sip:21@a>", "<sip:21@b>;expires=0"], None, 1),
            set(&[
                ("sip:21@a", ServerConfig::default().default_expires),
                ("sip:21@b", 0)
            ]),
            "a removal does not count against the line's contacts"
        );
    }
}
