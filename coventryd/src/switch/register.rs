//! REGISTER: digest authentication, then bindings (RFC 3261 §10.3).

use super::reply::Replier;
use super::{to_system_time, Switch};
use crate::headers::Fields;
use crate::registrar::{ContactRequest, RegisterMeta};
use crate::sip::digest::parse_credentials;
use crate::sip::digest::Verdict;
use crate::sip::wire::{self, parse_name_addr, parse_uri};
use coventry_shared::stateblock::MAX_CONTACTS;
use std::net::SocketAddr;

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
    pub(super) fn authenticate(
        &mut self,
        now_ms: u64,
        src: SocketAddr,
        req: &rsip::Request,
        claim: Claim<'_>,
        r: &Replier,
    ) -> Auth {
        let (values, claimed, challenge_code) =
            (claim.credentials, claim.user, claim.challenge_code);
        let now = to_system_time(now_ms);
        let realm = self.config.server.realm.clone();
        // Prefer credentials for our realm; a phone may carry several.
        let value = values
            .iter()
            .find(|v| v.contains(&format!("realm=\"{realm}\"")))
            .or_else(|| values.first())
            .copied();
        let method = req.method.to_string();
        let Some(value) = value else {
            self.challenge(now_ms, now, (challenge_code, claimed), false, r);
            return Auth::Answered;
        };
        let uri = digest_uri_to_check(&wire::format_uri(&req.uri), value);
        let config = &self.config;
        let peer = claim.peer;
        let verdict = self.digest.verify(now, &method, &uri, value, |user| {
            if peer {
                Switch::peer_credentials(config, user)
            } else {
                Switch::credentials(config, user)
            }
        });
        match verdict {
            Verdict::Ok { username } => {
                if username != claimed {
                    self.auth_failed(&username, src, &method, "credentials of another extension");
                    self.answer_ref(now_ms, r, 403, Some("Forbidden (identity mismatch)"), &[]);
                    return Auth::Answered;
                }
                Auth::Ok(username)
            }
            Verdict::Stale => {
                self.challenge(now_ms, now, (challenge_code, claimed), true, r);
                Auth::Answered
            }
            Verdict::Rejected { reason } => {
                self.auth_failed(claimed, src, &method, reason);
                self.answer_ref(now_ms, r, 403, Some("Forbidden"), &[]);
                Auth::Answered
            }
        }
    }

    /// Challenge with every configured algorithm the claimed extension can answer:
    /// a line configured with only an MD5 (or only a SHA-256) hash is offered only
    /// that algorithm, so its phone never picks one the switch cannot check.
    fn challenge(
        &mut self,
        now_ms: u64,
        now: std::time::SystemTime,
        (code, claimed): (u16, &str),
        stale: bool,
        r: &Replier,
    ) {
        let header = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let hashes_only = claimed
            .parse::<u16>()
            .ok()
            .and_then(|n| self.config.lines.get(&n))
            .filter(|l| l.secret.is_none())
            .map(|l| (l.sha256.is_some(), l.md5.is_some()));
        let mut values = self.digest.challenges(now, stale);
        if let Some((sha256, md5)) = hashes_only {
            values.retain(|v| {
                let is_md5 = v.contains("algorithm=MD5");
                (is_md5 && md5) || (!is_md5 && sha256)
            });
        }
        let extra: Vec<(&str, &str)> = values.iter().map(|v| (header, v.as_str())).collect();
        self.answer_ref(now_ms, r, code, None, &extra);
    }

    pub(super) fn on_register(
        &mut self,
        now_ms: u64,
        src: SocketAddr,
        req: &rsip::Request,
        f: &Fields<'_>,
        r: Replier,
    ) {
        let to = parse_name_addr(f.to);
        let user = to
            .as_ref()
            .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            .unwrap_or_default();
        let claim = Claim {
            user: &user,
            credentials: &f.authorization,
            challenge_code: 401,
            peer: false,
        };
        let Auth::Ok(user) = self.authenticate(now_ms, src, req, claim, &r) else {
            return;
        };
        let Some(line) = user
            .parse::<u16>()
            .ok()
            .and_then(|n| self.config.lines.get(&n))
        else {
            self.answer(now_ms, r, 404, None, &[]);
            return;
        };
        let ext = line.number;
        let max_contacts = usize::from(line.lines).min(MAX_CONTACTS);
        let s = &self.config.server;
        let header_expires = f.expires.and_then(|e| e.trim().parse::<u32>().ok());
        let clamp = |e: u32| {
            if e == 0 {
                0
            } else {
                e.clamp(s.min_expires, s.max_expires)
            }
        };
        let mut requests = Vec::new();
        if f.contacts.len() == 1 && f.contacts[0].trim() == "*" {
            if header_expires != Some(0) {
                self.answer(
                    now_ms,
                    r,
                    400,
                    Some("Bad Request (Contact * needs Expires: 0)"),
                    &[],
                );
                return;
            }
            let changes = self
                .registrar
                .remove_all(ext, coventry_shared::event::Unregistration::ByPhone);
            self.apply_changes(changes);
        } else {
            for c in &f.contacts {
                let Some(na) = parse_name_addr(c) else {
                    self.answer(
                        now_ms,
                        r,
                        400,
                        Some("Bad Request (unreadable Contact)"),
                        &[],
                    );
                    return;
                };
                if na.uri.trim() == "*" || na.parsed_uri().is_none() {
                    self.answer(now_ms, r, 400, Some("Bad Request (bad Contact URI)"), &[]);
                    return;
                }
                let secs = na.expires().or(header_expires).unwrap_or(s.default_expires);
                requests.push(ContactRequest {
                    uri: na.uri.clone(),
                    expires: clamp(secs),
                });
            }
            if requests.iter().filter(|c| c.expires > 0).count() > max_contacts {
                self.answer(
                    now_ms,
                    r,
                    403,
                    Some("Forbidden (too many contacts for this line)"),
                    &[],
                );
                return;
            }
            let source = src.to_string();
            let meta = RegisterMeta {
                source: &source,
                user_agent: f.user_agent,
                call_id: f.call_id,
                cseq: f.cseq_number().unwrap_or(0),
                now_ms,
            };
            match self.registrar.register(ext, max_contacts, &requests, &meta) {
                Ok(changes) => self.apply_changes(changes),
                Err(_) => {
                    self.answer(
                        now_ms,
                        r,
                        500,
                        Some("Server Internal Error (out of order)"),
                        &[("Retry-After", "1")],
                    );
                    return;
                }
            }
        }
        self.counters.registers += 1;
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
    use super::digest_uri_to_check;

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
