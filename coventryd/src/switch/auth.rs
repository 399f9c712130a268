//! Authentication of every request that needs it (REGISTER, and INVITE,
//! MESSAGE, SUBSCRIBE... from phones and the upstream peer): the auth guard
//! first, then the digest challenge or its check, and what a failure costs
//! (RFC 3261 §22, RFC 7616/8760).

use super::auth_log::{self, Origin};
use super::guard::{self, Admission, Bound, SourceKey};
use super::reply::Replier;
use super::Incoming;
use super::{to_system_time, Switch};
use crate::config::Config;
use crate::logfmt::quoted;
use crate::sip::digest::{claimed_username, parse_credentials};
use crate::sip::digest::{Algorithm, Credentials, DigestAuthority, Verdict};
use crate::sip::{parse::parse_uri, serialize};
use coventry_shared::event::Event;
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

/// Who is who: the digest authority, the guard against guessing and the rate
/// limit of the failure log.
pub(super) struct Authentication {
    pub(super) digest: DigestAuthority,
    /// Failed authentications per source and user name, and who has to wait.
    pub(super) guard: guard::AuthGuard,
    /// When the guard last dropped what it had forgotten.
    pub(super) guard_expired_ms: u64,
    /// Rate limit of the failed-authentication log lines.
    pub(super) auth_log: auth_log::AuthLog,
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

    /// Credentials of extension `user`, if configured.
    pub(super) fn credentials(config: &Config, user: &str) -> Option<Credentials> {
        let n: u16 = user.parse().ok()?;
        let line = config.lines.get(&n)?;
        if user.len() != usize::from(config.server.plan.digits()) {
            return None;
        }
        Some(Credentials {
            password: line.secret.clone(),
            ha1_sha256: line.sha256.clone(),
            ha1_md5: line.md5.clone(),
        })
    }

    /// Credentials of the upstream peer, when `user` is its `peer_user` and it has a
    /// `peer_secret`.
    pub(super) fn peer_credentials(config: &Config, user: &str) -> Option<Credentials> {
        let u = &config.upstream;
        let secret = u.peer_secret.as_ref().filter(|_| user == u.peer_user)?;
        Some(Credentials {
            password: Some(secret.clone()),
            ha1_sha256: None,
            ha1_md5: None,
        })
    }
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
}
