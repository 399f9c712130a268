//! REGISTER: once authenticated (`auth.rs`), the bindings (RFC 3261 §10.3).

use super::auth::{Auth, Claim};
use super::reply::Replier;
use super::Incoming;
use super::{to_system_time, Switch};
use crate::config::ServerConfig;
use crate::logfmt::quoted;
use crate::sip::headers::Fields;
use crate::sip::parse::parse_name_addr;
use crate::switch::registrar::{Change, ContactRequest, Refusal, RegisterMeta};
use coventry_shared::event::Event;
use coventry_shared::stateblock::MAX_CONTACTS;
use std::net::SocketAddr;

impl Switch {
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

    /// Turn registrar changes into events, dirty extensions and persistence flags.
    /// Announce what the registrar changed: the extensions to republish, when to
    /// write the bindings, the events.
    pub(super) fn apply_changes(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Added {
                    ext,
                    uri,
                    user_agent,
                } => {
                    log::info!("{ext} registered {}", quoted(&uri));
                    self.out.dirty.insert(ext);
                    self.out.persist_now = true;
                    self.out.events.push(Event::Registered {
                        ext,
                        contact: uri,
                        user_agent,
                    });
                }
                Change::Refreshed { ext } => {
                    self.out.dirty.insert(ext);
                    self.out.persist_later = true;
                }
                Change::Removed { ext, uri, why } => {
                    log::info!("{ext} {} {}", why.name(), quoted(&uri));
                    self.out.dirty.insert(ext);
                    self.out.persist_now = true;
                    self.out.events.push(Event::Unregistered {
                        ext,
                        contact: uri,
                        why,
                    });
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
