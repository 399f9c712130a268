//! The registrar's bindings: which contacts each extension has, until when.
//!
//! Pure state: no I/O, no clock of its own (times are passed in, ms since the epoch).

use coventry_shared::auth::DigestAlgorithm;
use coventry_shared::event::Unregistration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One registered contact of an extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Contact URI without angle brackets or header parameters.
    pub uri: String,
    /// Address:port the REGISTER came from.
    pub source: String,
    /// The phone's User-Agent.
    pub user_agent: String,
    /// Call-ID of the registering dialog (refreshes share it).
    pub call_id: String,
    /// CSeq of the last REGISTER accepted for this binding.
    pub cseq: u32,
    /// When it first registered, ms since the epoch.
    pub registered_ms: u64,
    /// When it expires, ms since the epoch.
    pub expires_ms: u64,
    /// The digest algorithm its REGISTER authenticated with (none in files of
    /// older versions).
    #[serde(default)]
    pub algorithm: Option<DigestAlgorithm>,
}

impl Binding {
    /// Where requests for this contact go: the contact's IP address and port,
    /// or (for a host name the switch does not resolve) the address the
    /// REGISTER came from.
    pub fn dest(&self) -> Option<std::net::SocketAddr> {
        crate::sip::parse::parse_uri(&self.uri)
            .and_then(|u| {
                let ip: std::net::IpAddr = u.host.parse().ok()?;
                Some(std::net::SocketAddr::new(ip, u.port_or_default()))
            })
            .or_else(|| self.source.parse().ok())
    }
}

/// A change the registrar made, to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new contact.
    Added {
        /// Extension.
        ext: u16,
        /// Contact URI.
        uri: String,
        /// User-Agent.
        user_agent: String,
    },
    /// A known contact was refreshed (expiry moved).
    Refreshed {
        /// Extension.
        ext: u16,
    },
    /// A contact is gone.
    Removed {
        /// Extension.
        ext: u16,
        /// Contact URI.
        uri: String,
        /// Why.
        why: Unregistration,
    },
}

/// What one REGISTER asks for, per contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRequest {
    /// Contact URI.
    pub uri: String,
    /// Granted expiry in seconds (already clamped); 0 removes.
    pub expires: u32,
}

/// Why a REGISTER was refused by the registrar itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An older CSeq for the same Call-ID (out of order).
    OutOfOrder,
    /// Every line of the extension is taken by a phone at another address.
    LinesFull {
        /// The extension's lines.
        lines: usize,
    },
}

/// The IP address of an `address:port` text.
fn ip_of(source: &str) -> Option<std::net::IpAddr> {
    source.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// All bindings, by extension.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registrar {
    bindings: BTreeMap<u16, Vec<Binding>>,
}

/// Facts about the REGISTER request that the registrar records.
#[derive(Debug, Clone)]
pub struct RegisterMeta<'a> {
    /// Source address:port.
    pub source: &'a str,
    /// User-Agent header value.
    pub user_agent: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Now, ms since the epoch.
    pub now_ms: u64,
    /// The digest algorithm it authenticated with.
    pub algorithm: Option<DigestAlgorithm>,
}

impl Registrar {
    /// An empty registrar.
    pub fn new() -> Registrar {
        Registrar::default()
    }

    /// The bindings of `ext` (empty when none).
    pub fn contacts(&self, ext: u16) -> &[Binding] {
        self.bindings.get(&ext).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every extension with at least one binding, with its bindings.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &[Binding])> {
        self.bindings.iter().map(|(e, b)| (*e, b.as_slice()))
    }

    /// Number of bindings in all.
    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// Apply one REGISTER for `ext` with at most `max_contacts` bindings, all
    /// of it or nothing. A new contact beyond the limit takes the line of a
    /// binding registered from the same IP address (the same device back with a
    /// new port or contact, as after a reboot); from anywhere else it is
    /// refused ([`Refusal::LinesFull`]): a third phone never pushes a working
    /// one out.
    pub fn register(
        &mut self,
        ext: u16,
        max_contacts: usize,
        requests: &[ContactRequest],
        meta: &RegisterMeta<'_>,
    ) -> Result<Vec<Change>, Refusal> {
        let mut list = self.bindings.get(&ext).cloned().unwrap_or_default();
        // RFC 3261 10.3 step 7: same Call-ID with a CSeq not higher is out of order.
        for r in requests {
            if let Some(b) = list.iter().find(|b| b.uri == r.uri) {
                if b.call_id == meta.call_id && meta.cseq <= b.cseq {
                    return Err(Refusal::OutOfOrder);
                }
            }
        }
        let lines = max_contacts.max(1);
        let from_ip = ip_of(meta.source);
        let mut changes = Vec::new();
        // Contacts this request set: never the ones a later contact of it replaces.
        let mut touched: Vec<&str> = Vec::new();
        for r in requests {
            let pos = list.iter().position(|b| b.uri == r.uri);
            match (pos, r.expires) {
                (Some(i), 0) => {
                    let b = list.remove(i);
                    changes.push(Change::Removed {
                        ext,
                        uri: b.uri,
                        why: Unregistration::ByPhone,
                    });
                }
                (None, 0) => {}
                (Some(i), secs) => {
                    touched.push(&r.uri);
                    let b = &mut list[i];
                    b.expires_ms = meta.now_ms + u64::from(secs) * 1000;
                    b.call_id = meta.call_id.to_string();
                    b.cseq = meta.cseq;
                    b.source = meta.source.to_string();
                    b.algorithm = meta.algorithm;
                    if b.user_agent != meta.user_agent {
                        b.user_agent = meta.user_agent.to_string();
                    }
                    changes.push(Change::Refreshed { ext });
                }
                (None, secs) => {
                    if list.len() >= lines {
                        let same_device = list
                            .iter()
                            .enumerate()
                            .filter(|(_, b)| {
                                from_ip.is_some()
                                    && ip_of(&b.source) == from_ip
                                    && !touched.contains(&b.uri.as_str())
                            })
                            .min_by_key(|(_, b)| b.expires_ms)
                            .map(|(i, _)| i);
                        let Some(i) = same_device else {
                            return Err(Refusal::LinesFull { lines });
                        };
                        let b = list.remove(i);
                        changes.push(Change::Removed {
                            ext,
                            uri: b.uri,
                            why: Unregistration::Replaced,
                        });
                    }
                    touched.push(&r.uri);
                    list.push(Binding {
                        uri: r.uri.clone(),
                        source: meta.source.to_string(),
                        user_agent: meta.user_agent.to_string(),
                        call_id: meta.call_id.to_string(),
                        cseq: meta.cseq,
                        registered_ms: meta.now_ms,
                        expires_ms: meta.now_ms + u64::from(secs) * 1000,
                        algorithm: meta.algorithm,
                    });
                    changes.push(Change::Added {
                        ext,
                        uri: r.uri.clone(),
                        user_agent: meta.user_agent.to_string(),
                    });
                }
            }
        }
        if list.is_empty() {
            self.bindings.remove(&ext);
        } else {
            self.bindings.insert(ext, list);
        }
        Ok(changes)
    }

    /// Remove every binding of `ext`.
    pub fn remove_all(&mut self, ext: u16, why: Unregistration) -> Vec<Change> {
        self.bindings
            .remove(&ext)
            .unwrap_or_default()
            .into_iter()
            .map(|b| Change::Removed {
                ext,
                uri: b.uri,
                why,
            })
            .collect()
    }

    /// Drop bindings that expired at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        self.bindings.retain(|ext, list| {
            list.retain(|b| {
                let keep = b.expires_ms > now_ms;
                if !keep {
                    changes.push(Change::Removed {
                        ext: *ext,
                        uri: b.uri.clone(),
                        why: Unregistration::Expired,
                    });
                }
                keep
            });
            !list.is_empty()
        });
        changes
    }

    /// Drop bindings of extensions `keep` rejects (e.g. removed from the config).
    pub fn retain_extensions(&mut self, keep: impl Fn(u16) -> bool) -> Vec<Change> {
        let gone: Vec<u16> = self
            .bindings
            .keys()
            .copied()
            .filter(|e| !keep(*e))
            .collect();
        gone.into_iter()
            .flat_map(|e| self.remove_all(e, Unregistration::Removed))
            .collect()
    }

    /// Earliest expiry of any binding, ms since the epoch.
    pub fn next_expiry(&self) -> Option<u64> {
        self.bindings.values().flatten().map(|b| b.expires_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(call_id: &str, cseq: u32, now_ms: u64) -> RegisterMeta<'_> {
        RegisterMeta {
            source: "127.0.0.1:5000",
            user_agent: "ua",
            call_id,
            cseq,
            now_ms,
            algorithm: None,
        }
    }

    fn req(uri: &str, expires: u32) -> ContactRequest {
        ContactRequest {
            uri: uri.into(),
            expires,
        }
    }

    #[test]
    fn add_refresh_remove() {
        let mut r = Registrar::new();
        let c = r
            .register(21, 2, &[req("sip:21@a", 60)], &meta("x", 1, 1000))
            .expect("ok");
        assert!(matches!(&c[..], [Change::Added { ext: 21, .. }]));
        assert_eq!(r.contacts(21)[0].expires_ms, 61_000);
        let c = r
            .register(21, 2, &[req("sip:21@a", 120)], &meta("x", 2, 2000))
            .expect("ok");
        assert_eq!(c, vec![Change::Refreshed { ext: 21 }]);
        assert_eq!(r.contacts(21)[0].expires_ms, 122_000);
        assert_eq!(
            r.register(21, 2, &[req("sip:21@a", 60)], &meta("x", 2, 3000)),
            Err(Refusal::OutOfOrder)
        );
        let c = r
            .register(21, 2, &[req("sip:21@a", 0)], &meta("x", 3, 3000))
            .expect("ok");
        assert!(matches!(
            &c[..],
            [Change::Removed {
                why: Unregistration::ByPhone,
                ..
            }]
        ));
        assert!(r.contacts(21).is_empty());
        assert_eq!(r.binding_count(), 0);
    }

    fn meta_from<'a>(source: &'a str, call_id: &'a str) -> RegisterMeta<'a> {
        RegisterMeta {
            source,
            ..meta(call_id, 1, 0)
        }
    }

    #[test]
    fn a_full_line_is_refused_to_another_address_and_taken_by_the_same_one() {
        let mut r = Registrar::new();
        r.register(21, 2, &[req("sip:a", 10)], &meta_from("10.0.0.1:5060", "1"))
            .expect("ok");
        r.register(21, 2, &[req("sip:b", 20)], &meta_from("10.0.0.2:5060", "2"))
            .expect("ok");
        // A third phone elsewhere: refused, nothing changes.
        assert_eq!(
            r.register(21, 2, &[req("sip:c", 30)], &meta_from("10.0.0.3:5060", "3")),
            Err(Refusal::LinesFull { lines: 2 })
        );
        let uris = |r: &Registrar| -> Vec<String> {
            r.contacts(21).iter().map(|b| b.uri.clone()).collect()
        };
        assert_eq!(uris(&r), vec!["sip:a", "sip:b"]);
        // Phone a rebooted (same address, new port and contact): it takes its
        // own line back.
        let c = r
            .register(
                21,
                2,
                &[req("sip:a2", 30)],
                &meta_from("10.0.0.1:5062", "4"),
            )
            .expect("ok");
        assert!(matches!(
            &c[..],
            [
                Change::Removed {
                    why: Unregistration::Replaced,
                    ..
                },
                Change::Added { .. }
            ]
        ));
        assert_eq!(uris(&r), vec!["sip:b", "sip:a2"]);
        // A REGISTER that cannot fit all its contacts changes nothing (b's
        // removal in it included): h may not take the line g just took.
        assert_eq!(
            r.register(
                21,
                2,
                &[req("sip:b", 0), req("sip:g", 30), req("sip:h", 30)],
                &meta_from("10.0.0.9:5060", "5")
            ),
            Err(Refusal::LinesFull { lines: 2 })
        );
        assert_eq!(uris(&r), vec!["sip:b", "sip:a2"]);
        assert_eq!(r.contacts(21)[0].expires_ms, 20_000);
        assert_eq!(r.next_expiry(), Some(20_000));
        let gone = r.expire(20_000);
        assert_eq!(gone.len(), 1);
        assert_eq!(r.contacts(21).len(), 1);
        assert_eq!(r.retain_extensions(|e| e != 21).len(), 1);
        assert_eq!(r.binding_count(), 0);
    }
}

#[cfg(test)]
mod dest_tests {
    use super::Binding;

    fn b(uri: &str, source: &str) -> Binding {
        Binding {
            uri: uri.into(),
            source: source.into(),
            user_agent: String::new(),
            call_id: String::new(),
            cseq: 1,
            registered_ms: 0,
            expires_ms: 1,
            algorithm: None,
        }
    }

    #[test]
    fn contact_address_or_where_it_registered_from() {
        let d = |u: &str, s: &str| b(u, s).dest().map(|a| a.to_string());
        assert_eq!(
            d("sip:21@127.0.0.1:5070", "127.0.0.1:9").as_deref(),
            Some("127.0.0.1:5070")
        );
        assert_eq!(
            d("sip:21@127.0.0.1", "x").as_deref(),
            Some("127.0.0.1:5060")
        );
        assert_eq!(
            d("sip:21@phone.local:5070", "127.0.0.1:9").as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(d("garbage", "x"), None);
    }
}
