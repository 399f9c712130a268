//! MESSAGE from a phone: authenticate the sender, check the text, deliver.

use super::auth::{Auth, Claim};
use super::delivery::{Origin, Relayed, Request};
use super::reply::Replier;
use super::Incoming;
use super::Switch;
use crate::sip::parse::parse_name_addr;
use coventry_shared::dialplan::Target;
use coventry_shared::event::Event;

pub use coventry_shared::control::MAX_TEXT_CHARS;

/// Why a text cannot be sent, as a SIP status and reason.
pub(super) fn check_text(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<String, (u16, &'static str)> {
    if let Some(ct) = content_type {
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("text/plain") {
            return Err((415, "Unsupported Media Type (text/plain only)"));
        }
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                let v = v.trim().trim_matches('"');
                if k.trim().eq_ignore_ascii_case("charset")
                    && !v.eq_ignore_ascii_case("utf-8")
                    && !v.eq_ignore_ascii_case("us-ascii")
                {
                    return Err((415, "Unsupported Media Type (UTF-8 only)"));
                }
            }
        }
    }
    let text = std::str::from_utf8(body).map_err(|_| (400, "Bad Request (text is not UTF-8)"))?;
    if text.trim().is_empty() {
        return Err((400, "Bad Request (empty message)"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err((413, "Request Entity Too Large (more than 160 characters)"));
    }
    Ok(text.to_string())
}

/// A text as it came in, for the events and answers about it.
#[derive(Debug, Clone, Copy)]
pub(super) struct TextRef<'a> {
    /// Its sender: an extension, or a name from the upstream.
    pub from: &'a str,
    /// To whom, as addressed.
    pub to: &'a str,
    /// The text.
    pub text: &'a str,
}

/// Where a text goes.
#[derive(Debug, PartialEq, Eq)]
enum Recipients {
    /// To these phones now; `offline`: members not registered; `single`: one
    /// extension addressed by number (its phone's answer is the sender's).
    Phones {
        targets: Vec<u16>,
        offline: Vec<u16>,
        single: bool,
    },
    /// To a number outside, through the upstream's SMS route.
    Upstream(String),
    /// A command for the switch (`system`).
    System,
    /// Nowhere: refused with this status.
    Refused(u16, &'static str),
}

impl Switch {
    /// A MESSAGE: its sender authenticated (a phone's digest, or the upstream
    /// peer), its text checked, then delivered, relayed out, run as a command or
    /// refused.
    pub(super) fn on_message(&mut self, inc: &Incoming<'_>, r: Replier) {
        let Incoming { now_ms, req, f, .. } = *inc;
        let Some((sender, from_ext)) = self.text_sender(inc, &r) else {
            return;
        };
        let text = match check_text(f.content_type, &req.body) {
            Ok(t) => t,
            Err((code, reason)) => {
                self.answer(now_ms, r, code, Some(reason), &[("Accept", "text/plain")]);
                return;
            }
        };
        let to_user = req
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .or_else(|| {
                parse_name_addr(f.to)
                    .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            })
            .unwrap_or_default();
        if from_ext.is_some() && self.over_text_limit(now_ms, &sender, &text) {
            let reason = Some("Service Unavailable (too many texts in flight)");
            return self.answer(now_ms, r, 503, reason, &[("Retry-After", "5")]);
        }
        let msg = TextRef {
            from: &sender,
            to: &to_user,
            text: &text,
        };
        match self.recipients(&to_user, from_ext) {
            Recipients::Refused(code, reason) => self.reject_message(now_ms, r, msg, code, reason),
            Recipients::Upstream(n) => self.message_upstream(now_ms, req, r, &sender, &n, &text),
            Recipients::System => {
                if let Some(ext) = from_ext {
                    self.text_to_system(now_ms, r, ext, msg);
                }
            }
            Recipients::Phones {
                targets,
                offline,
                single,
            } => {
                let from_display = from_ext
                    .and_then(|e| self.config.lines.get(&e))
                    .map(|l| l.display.clone())
                    .unwrap_or_default();
                let origin = if single {
                    self.server_tx.pending(r.key.clone(), now_ms);
                    Origin::Sip(Box::new(r))
                } else {
                    self.answer(now_ms, r, 202, None, &[]);
                    Origin::Broadcast
                };
                let request = Request {
                    origin,
                    from: sender.clone(),
                    from_user: sender,
                    from_display,
                    to: to_user,
                    text,
                    targets,
                    offline,
                    relayed: Some(Relayed {
                        req: Box::new(req.clone()),
                        from_upstream: from_ext.is_none(),
                    }),
                };
                self.deliver(now_ms, request);
            }
        }
    }

    /// Who sends a text: an extension that answered its digest, or (over TCP,
    /// where only the upstream peer reaches the switch) a caller outside, named
    /// as its From says (no extension). `None`: the request was answered.
    fn text_sender(&mut self, inc: &Incoming<'_>, r: &Replier) -> Option<(String, Option<u16>)> {
        let sender = parse_name_addr(inc.f.from)
            .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            .unwrap_or_default();
        if r.dest.is_tcp() {
            if !self.upstream_peer_allowed(inc, r) {
                return None;
            }
            let name: String = sender
                .chars()
                .filter(|c| !c.is_control())
                .take(32)
                .collect();
            let name = if name.is_empty() {
                "upstream".to_string()
            } else {
                name
            };
            return Some((name, None));
        }
        let claim = Claim {
            user: &sender,
            credentials: &inc.f.proxy_authorization,
            challenge_code: 407,
            peer: false,
        };
        let Auth::Ok(sender) = self.authenticate(inc, claim, r) else {
            return None;
        };
        let ext = sender.parse().ok();
        Some((sender, ext))
    }

    /// Where a text to `to` from extension `from` (none: from the upstream)
    /// goes. Senders outside reach single extensions only (no groups, no
    /// broadcasts, no commands, no transit).
    fn recipients(&self, to: &str, from: Option<u16>) -> Recipients {
        let cfg = &self.config;
        let target = cfg.target_of(to);
        let online = |e: &u16| !self.registrar.contacts(*e).is_empty();
        let (targets, offline, single) = match target {
            Target::Group(_) | Target::All | Target::System if from.is_none() => {
                return Recipients::Refused(403, "Forbidden")
            }
            Target::External(n) if from.is_some() => return Recipients::Upstream(n),
            Target::System => return Recipients::System,
            Target::Unknown(_) | Target::External(_) => {
                return Recipients::Refused(404, "Not Found")
            }
            Target::Extension(n) if !online(&n) => {
                return Recipients::Refused(480, "Temporarily Unavailable (offline)")
            }
            Target::Extension(n) => (vec![n], vec![], true),
            Target::Group(g) => {
                let (on, off): (Vec<u16>, Vec<u16>) = self
                    .members_of(g)
                    .into_iter()
                    .filter(|m| Some(*m) != from)
                    .partition(online);
                (on, off, false)
            }
            Target::All => {
                let on: Vec<u16> = self
                    .registrar
                    .iter()
                    .map(|(e, _)| e)
                    .filter(|e| Some(*e) != from)
                    .collect();
                (on, vec![], false)
            }
        };
        if targets.is_empty() {
            return Recipients::Refused(480, "Temporarily Unavailable (nobody online)");
        }
        Recipients::Phones {
            targets,
            offline,
            single,
        }
    }

    /// A text to `system` from extension `ext`: accepted, run as a command, and
    /// the reply sent back as a text.
    fn text_to_system(&mut self, now_ms: u64, r: Replier, ext: u16, msg: TextRef<'_>) {
        self.answer(now_ms, r, 200, None, &[]);
        let reply = self.system_command(now_ms, ext, msg.text);
        self.out.events.push(Event::Message {
            id: None,
            from: msg.from.to_string(),
            to: "system".into(),
            status: 200,
            text: msg.text.to_string(),
        });
        self.system_reply(now_ms, ext, &reply);
    }

    /// Refuse a text: the event, the counter, the answer.
    pub(super) fn reject_message(
        &mut self,
        now_ms: u64,
        r: Replier,
        msg: TextRef<'_>,
        code: u16,
        reason: &str,
    ) {
        self.counters.messages_failed += 1;
        self.out.events.push(Event::Message {
            id: None,
            from: msg.from.to_string(),
            to: msg.to.to_string(),
            status: code,
            text: msg.text.to_string(),
        });
        self.answer(now_ms, r, code, Some(reason), &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(check_text(None, b"hi"), Ok("hi".into()));
        assert_eq!(
            check_text(Some("text/plain; charset=\"UTF-8\""), b"hi"),
            Ok("hi".into())
        );
        assert_eq!(
            check_text(Some("text/html"), b"hi").map_err(|e| e.0),
            Err(415)
        );
        assert_eq!(
            check_text(Some("text/plain;charset=latin1"), b"hi").map_err(|e| e.0),
            Err(415)
        );
        assert_eq!(check_text(None, b"\xff\xfe").map_err(|e| e.0), Err(400));
        assert_eq!(check_text(None, b"  ").map_err(|e| e.0), Err(400));
        let ok = "é".repeat(160);
        assert!(check_text(None, ok.as_bytes()).is_ok());
        let long = "é".repeat(161);
        assert_eq!(check_text(None, long.as_bytes()).map_err(|e| e.0), Err(413));
    }
}
