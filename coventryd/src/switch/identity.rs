//! Identity is the switch's to assert (pure rules): the From a callee is shown,
//! and the Diversion the switch writes for the forwards a call followed.
//!
//! - A call from an extension names the extension its caller authenticated as,
//!   with the line's configured display name when `display` is set (the
//!   caller's tag and host kept, so the dialog is unchanged).
//! - A call from the upstream whose number reads like a local one (an
//!   extension, a group, `all`, `system`, anything of the plan's shape) is
//!   marked: its From becomes `"21 (outside)" <sip:outside-21@host>` and the
//!   identity headers the peer sent are left out, so no phone shows it as
//!   extension 21 and no call-back from a phone's list rings 21.
//! - Every forward becomes a Diversion (RFC 5806), the latest first, naming the
//!   extension that forwarded and why.

use super::Switch;
use crate::sip::headers::Fields;
use crate::sip::parse::parse_name_addr;
use crate::sip::parse::NameAddr;
use coventry_shared::dialplan::Target;
use coventry_shared::record::{Hop, HopReason};

/// What marks an outside caller whose number reads like a local one.
pub const OUTSIDE_MARK: &str = "outside-";

/// `original` (a From value) naming `user` with `display`, its tag, other
/// parameters and host kept; none when it cannot be read.
pub fn from_as(original: &str, display: Option<&str>, user: &str) -> Option<String> {
    let n = parse_name_addr(original)?;
    let uri = n.parsed_uri()?;
    let host = if uri.host.contains(':') {
        format!("[{}]", uri.host)
    } else {
        uri.host.to_string()
    };
    let port = uri.port.map(|p| format!(":{p}")).unwrap_or_default();
    let shown = NameAddr {
        display_name: display.map(str::to_string).or(n.display_name.clone()),
        uri: format!("{}:{user}@{host}{port}", uri.scheme),
        params: n.params.clone(),
    };
    Some(shown.to_string())
}

/// The user part of a From value.
fn user_of(from: &str) -> Option<String> {
    parse_name_addr(from).and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
}

/// The RFC 5806 reason of a forward.
fn diversion_reason(why: HopReason) -> &'static str {
    match why {
        HopReason::Always => "unconditional",
        HopReason::Busy => "user-busy",
        HopReason::NoAnswer => "no-answer",
        HopReason::Unregistered => "unavailable",
    }
}

/// The Diversion header values for `hops` (in the order followed), the latest
/// first, naming each forwarding extension at `host` after `prefix` (each
/// diverted once: `counter=1`, RFC 5806 §3).
pub fn diversions(hops: &[Hop], host: &str, prefix: &str) -> Vec<String> {
    hops.iter()
        .rev()
        .map(|h| {
            format!(
                "<sip:{prefix}{}@{host}>;reason={};counter=1",
                h.from,
                diversion_reason(h.why)
            )
        })
        .collect()
}

/// How a call's caller is shown to the party it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The From to write instead of the caller's (none: the caller's own).
    pub from: Option<String>,
    /// Leave out the identity headers that came with the INVITE.
    pub drop_identity: bool,
}

impl Switch {
    /// Whether `number` from outside reads like a number of this switch.
    pub(super) fn looks_local(&self, number: &str) -> bool {
        let cfg = &self.config;
        !matches!(cfg.target_of(number), Target::External(_))
    }

    /// How the caller of an INVITE whose From is `from` is shown: `caller` is the
    /// extension it authenticated as, none for the upstream peer's callers.
    pub(super) fn presented(&self, from: &str, caller: Option<u16>) -> Presented {
        match caller {
            Some(ext) => {
                let display = self
                    .config
                    .lines
                    .get(&ext)
                    .filter(|l| l.display_set)
                    .map(|l| l.display.as_str());
                let user = ext.to_string();
                // Left as the phone wrote it when there is nothing to assert.
                let as_written = display.is_none() && user_of(from).as_deref() == Some(&user);
                Presented {
                    from: if as_written {
                        None
                    } else {
                        from_as(from, display, &user)
                    },
                    drop_identity: true,
                }
            }
            None => {
                let user = user_of(from).unwrap_or_default();
                if !self.looks_local(&user) {
                    return Presented {
                        from: None,
                        drop_identity: false,
                    };
                }
                let shown: String = user
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(23)
                    .collect();
                Presented {
                    from: from_as(
                        from,
                        Some(&format!("{shown} (outside)")),
                        &format!("{OUTSIDE_MARK}{shown}"),
                    ),
                    drop_identity: true,
                }
            }
        }
    }

    /// How the caller is shown to a party that knows this switch's numbers
    /// after `prefix` (the building, with `[upstream] site_prefix`): an
    /// extension by its building number, with its configured display.
    pub(super) fn presented_as(&self, from: &str, caller: Option<u16>, prefix: &str) -> Presented {
        match caller {
            Some(ext) if !prefix.is_empty() => {
                let display = self
                    .config
                    .lines
                    .get(&ext)
                    .filter(|l| l.display_set)
                    .map(|l| l.display.as_str());
                Presented {
                    from: from_as(from, display, &format!("{prefix}{ext}")),
                    drop_identity: true,
                }
            }
            _ => self.presented(from, caller),
        }
    }

    /// The caller's label in records and events: the extension, or the upstream
    /// caller's number (marked when it reads like a local one).
    pub(super) fn outside_label(&self, number: &str) -> String {
        if self.looks_local(number) {
            format!("{OUTSIDE_MARK}{number}")
        } else {
            number.to_string()
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_keeps_tag_and_host_and_takes_the_switchs_name() {
        let f = from_as(
            "\"Boss\" <sip:35@pbx.test:5060;transport=udp>;tag=abc",
            Some("Reception"),
            "21",
        );
        assert_eq!(
            f.as_deref(),
            Some("\"Reception\" <sip:21@pbx.test:5060>;tag=abc")
        );
        let f = from_as("<sip:21@[::1]>;tag=x", None, "21");
        assert_eq!(f.as_deref(), Some("<sip:21@[::1]>;tag=x"));
        assert_eq!(from_as("garbage <", None, "21"), None);
    }

    #[test]
    fn diversions_name_the_latest_forward_first() {
        let hops = [
            Hop {
                from: 21,
                to: "35".into(),
                why: HopReason::Busy,
            },
            Hop {
                from: 35,
                to: "0044123".into(),
                why: HopReason::Always,
            },
        ];
        assert_eq!(
            diversions(&hops, "pbx", ""),
            [
                "<sip:35@pbx>;reason=unconditional;counter=1",
                "<sip:21@pbx>;reason=user-busy;counter=1"
            ]
        );
        assert!(diversions(&[], "pbx", "").is_empty());
    }
}
