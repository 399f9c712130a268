//! MESSAGE from a phone: authenticate the sender, check the text, deliver.

use super::delivery::{Origin, Relayed, Request};
use super::register::{Auth, Claim};
use super::reply::Replier;
use super::Incoming;
use super::Switch;
use crate::sip::parse::parse_name_addr;
use coventry_shared::dialplan::{classify, Target};
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

impl Switch {
    pub(super) fn on_message(&mut self, inc: &Incoming<'_>, r: Replier) {
        let Incoming { now_ms, req, f, .. } = *inc;
        let sender = parse_name_addr(f.from)
            .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            .unwrap_or_default();
        // Over TCP only the upstream peer reaches the switch: its senders are not
        // extensions and need no digest.
        let from_upstream = r.dest.is_tcp();
        let sender = if from_upstream {
            if !self.upstream_peer_allowed(inc, &r) {
                return;
            }
            let s: String = sender
                .chars()
                .filter(|c| !c.is_control())
                .take(32)
                .collect();
            if s.is_empty() {
                "upstream".to_string()
            } else {
                s
            }
        } else {
            let claim = Claim {
                user: &sender,
                credentials: &f.proxy_authorization,
                challenge_code: 407,
                peer: false,
            };
            let Auth::Ok(sender) = self.authenticate(inc, claim, &r) else {
                return;
            };
            sender
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
        let from_ext: u16 = if from_upstream {
            0
        } else {
            sender.parse().unwrap_or(0)
        };
        let from_display = self
            .config
            .lines
            .get(&from_ext)
            .map(|l| l.display.clone())
            .unwrap_or_default();
        let cfg = &self.config;
        let target = classify(
            cfg.server.plan,
            &cfg.groups,
            |n| cfg.is_configured(n),
            &to_user,
        );
        let (targets, offline, single) = match target {
            // Upstream senders reach extensions only (no broadcasts, no commands).
            Target::Group(_) | Target::All | Target::System if from_upstream => {
                self.reject_message(now_ms, r, &sender, &to_user, &text, 403, "Forbidden");
                return;
            }
            Target::External(n) if !from_upstream => {
                self.message_upstream(now_ms, req, r, &sender, &n, &text);
                return;
            }
            Target::Extension(n) => (vec![n], vec![], true),
            Target::Group(g) => {
                let members = self.members_of(g);
                let (on, off): (Vec<u16>, Vec<u16>) = members
                    .into_iter()
                    .filter(|m| *m != from_ext)
                    .partition(|m| !self.registrar.contacts(*m).is_empty());
                (on, off, false)
            }
            Target::All => {
                let on: Vec<u16> = self
                    .registrar
                    .iter()
                    .map(|(e, _)| e)
                    .filter(|e| *e != from_ext)
                    .collect();
                (on, vec![], false)
            }
            Target::System => {
                self.answer(now_ms, r, 200, None, &[]);
                let reply = self.system_command(now_ms, from_ext, &text);
                self.out.events.push(Event::Message {
                    id: None,
                    from: sender.clone(),
                    to: "system".into(),
                    status: 200,
                    text: text.clone(),
                });
                self.system_reply(now_ms, from_ext, &reply);
                return;
            }
            Target::Unknown(_) | Target::External(_) => {
                self.reject_message(now_ms, r, &sender, &to_user, &text, 404, "Not Found");
                return;
            }
        };
        if single && self.registrar.contacts(targets[0]).is_empty() {
            self.reject_message(
                now_ms,
                r,
                &sender,
                &to_user,
                &text,
                480,
                "Temporarily Unavailable (offline)",
            );
            return;
        }
        if !single && targets.is_empty() {
            self.reject_message(
                now_ms,
                r,
                &sender,
                &to_user,
                &text,
                480,
                "Temporarily Unavailable (nobody online)",
            );
            return;
        }
        let origin = if single {
            self.server_tx.pending(r.key.clone(), now_ms);
            Origin::Sip(Box::new(r))
        } else {
            self.answer(now_ms, r, 202, None, &[]);
            Origin::Broadcast
        };
        self.deliver(
            now_ms,
            Request {
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
                    from_upstream,
                }),
            },
        );
    }

    /// Refuse a text: the event, the counter, the answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reject_message(
        &mut self,
        now_ms: u64,
        r: Replier,
        from: &str,
        to: &str,
        text: &str,
        code: u16,
        reason: &str,
    ) {
        self.counters.messages_failed += 1;
        self.out.events.push(Event::Message {
            id: None,
            from: from.to_string(),
            to: to.to_string(),
            status: code,
            text: text.to_string(),
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
