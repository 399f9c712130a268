//! Busy lamp fields: the switch answers SUBSCRIBEs to an extension's `dialog`
//! event itself, with RFC 4235 dialog-info NOTIFYs built from what it already
//! knows (early, confirmed, terminated; DND shows as a confirmed pseudo-dialog
//! `dnd`), and SUBSCRIBEs to `system` with a compact extension-state package:
//! the state bitmaps as hex.

use super::auth::{Auth, Claim};
use super::reply::Replier;
use super::Incoming;
use super::{ClientTag, Switch};
use crate::sip::headers::Fields;
use crate::sip::parse::parse_name_addr;
use crate::sip::request::Own;
use coventry_shared::event::CallPhase;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;

/// Event package of the compact extension-state NOTIFYs from `system`.
pub const EXT_STATE_EVENT: &str = "x-coventry-exts";
/// Their content type.
pub const EXT_STATE_TYPE: &str = "application/x-coventry-exts";
/// Longest subscription granted, seconds.
const MAX_EXPIRES: u32 = 3600;
/// Shortest subscription granted, seconds.
const MIN_EXPIRES: u32 = 60;
/// Most subscriptions served to one extension (a phone with expansion modules
/// watches a hundred lamps or so).
pub const MAX_SUBSCRIPTIONS_PER_LINE: usize = 200;
/// Most subscriptions served in all.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Why a SUBSCRIBE is refused: status, reason, extra headers.
type Refusal = (u16, &'static str, &'static [(&'static str, &'static str)]);

/// What a subscription watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// One extension's dialogs.
    Dialog(u16),
    /// Every extension's state bits.
    System,
}

/// One subscription the switch serves.
#[derive(Debug)]
pub struct Subscription {
    /// What.
    pub watch: Watch,
    /// The extension that subscribed (only it may refresh or end it).
    pub subscriber: u16,
    /// Where NOTIFYs go.
    pub dest: SocketAddr,
    /// Request-URI of NOTIFYs (the subscriber's Contact).
    pub contact: String,
    /// From of NOTIFYs (our side, with our tag).
    pub from: String,
    /// To of NOTIFYs (the subscriber, with its tag).
    pub to: String,
    /// Our CSeq.
    pub cseq: u32,
    /// dialog-info version.
    pub version: u32,
    /// Ends then, ms since the epoch.
    pub expires_ms: u64,
    /// Dialog states last sent (id → state), to send `terminated` once.
    pub last: BTreeMap<String, &'static str>,
    /// Body last sent (no NOTIFY when nothing changed; None: send one).
    pub last_body: Option<String>,
    /// Its number (the tag of its NOTIFYs' transactions).
    pub no: u64,
}

impl Switch {
    /// Whether a SUBSCRIBE is for the switch itself (BLF or system state).
    pub(super) fn is_local_subscribe(&self, req: &rsip::Request, f: &Fields<'_>) -> bool {
        if self.subscriptions.served(f.call_id).is_some() {
            return true;
        }
        let user = req.uri.auth.as_ref().map(|a| a.user.as_str()).unwrap_or("");
        let package = f.event.unwrap_or("").split(';').next().unwrap_or("").trim();
        user.eq_ignore_ascii_case("system") || package.eq_ignore_ascii_case("dialog")
    }

    /// A SUBSCRIBE (new or refresh) the switch serves.
    /// A SUBSCRIBE the switch serves itself: its subscriber authenticated, then
    /// a new subscription (bounded per line and in all), or a refresh or end
    /// of one of its own; a NOTIFY follows at once.
    pub(super) fn on_subscribe(&mut self, inc: &Incoming<'_>, r: Replier) {
        let Incoming { now_ms, f, .. } = *inc;
        let user = parse_name_addr(f.from)
            .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            .unwrap_or_default();
        let claim = Claim {
            user: &user,
            credentials: &f.proxy_authorization,
            challenge_code: 407,
            peer: false,
        };
        let Auth::Ok(user) = self.authenticate(inc, claim, &r) else {
            return;
        };
        let Ok(subscriber) = user.parse::<u16>() else {
            return self.answer(now_ms, r, 403, None, &[]);
        };
        let expires = granted_expires(f);
        let expires_ms = now_ms + u64::from(expires) * 1000;
        match self.subscriptions.served_mut(f.call_id) {
            Some(sub) if sub.subscriber != subscriber => {
                let reason = Some("Forbidden (not your subscription)");
                return self.answer(now_ms, r, 403, reason, &[]);
            }
            Some(sub) => {
                sub.expires_ms = expires_ms;
                sub.last_body = None; // a refresh gets a full NOTIFY
            }
            None => match self.new_subscription(inc, &r, subscriber, expires_ms) {
                Ok(mut sub) => {
                    sub.no = self.ids.number();
                    self.subscriptions.serve(f.call_id.to_string(), sub);
                }
                Err((code, reason, extra)) => {
                    return self.answer(now_ms, r, code, Some(reason), extra)
                }
            },
        }
        let dest = self.subscriptions.served(f.call_id).map(|s| s.dest);
        let host = dest.map(|d| self.via_host(d.ip())).unwrap_or_default();
        let ours = format!("<sip:system@{host}>");
        let exp = expires.to_string();
        self.answer(
            now_ms,
            r,
            200,
            None,
            &[("Expires", &exp), ("Contact", &ours)],
        );
        self.notify(now_ms, f.call_id, expires == 0);
        if expires == 0 {
            self.subscriptions.end(f.call_id);
        }
    }

    /// The final answer to a NOTIFY of subscription `no` (408: none came). A
    /// subscriber that refuses or ignores its NOTIFYs is not sent more: the
    /// subscription ends (RFC 6665 §4.1.3), so nobody can point a stream of
    /// NOTIFYs at an address that never asked for them.
    pub(super) fn notify_answered(&mut self, no: u64, status: u16) {
        if status < 300 {
            return;
        }
        if let Some(id) = self.subscriptions.served_call_id(no) {
            log::info!(
                "subscription {} ended: its NOTIFY got {status}",
                crate::logfmt::quoted(&id)
            );
            self.subscriptions.end(&id);
        }
    }

    /// A new subscription of `subscriber` as the SUBSCRIBE asks (its target:
    /// an extension's `dialog` or `system`'s state package), or why not.
    fn new_subscription(
        &self,
        inc: &Incoming<'_>,
        r: &Replier,
        subscriber: u16,
        expires_ms: u64,
    ) -> Result<Subscription, Refusal> {
        let f = inc.f;
        if !self.subscriptions.room_to_serve(subscriber) {
            let why = "Service Unavailable (too many subscriptions)";
            return Err((503, why, &[("Retry-After", "60")]));
        }
        let target = inc
            .req
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.as_str())
            .unwrap_or_default();
        let package = f
            .event
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let watch = if target.eq_ignore_ascii_case("system") {
            if package != EXT_STATE_EVENT {
                let allow: &[(&str, &str)] = &[("Allow-Events", EXT_STATE_EVENT)];
                return Err((489, "Bad Event", allow));
            }
            Watch::System
        } else {
            match target
                .parse::<u16>()
                .ok()
                .filter(|n| self.config.is_configured(*n))
            {
                Some(n) => Watch::Dialog(n),
                None => return Err((404, "Not Found", &[])),
            }
        };
        let contact = f.contact_uri();
        // NOTIFYs go where the authenticated SUBSCRIBE came from, or to a
        // contact the subscriber registered: never to an address a Contact
        // merely names (that would reflect NOTIFYs at a third party).
        let named = super::invite::uri_addr(&contact);
        let registered = |a: SocketAddr| {
            self.registrar
                .contacts(subscriber)
                .iter()
                .any(|b| b.dest() == Some(a))
        };
        let dest = named
            .filter(|a| *a == inc.from.addr() || registered(*a))
            .unwrap_or(inc.from.addr());
        Ok(Subscription {
            watch,
            subscriber,
            dest,
            contact,
            from: format!("{};tag={}", f.to, r.to_tag),
            to: f.from.to_string(),
            cseq: 0,
            version: 0,
            expires_ms,
            last: BTreeMap::new(),
            last_body: None,
            no: 0,
        })
    }

    /// The dialog states of extension `ext` now: (id, state, direction, peer).
    fn dialogs_of(&self, ext: u16) -> Vec<(String, &'static str, &'static str, String)> {
        let mut out = Vec::new();
        for c in self.calls.live() {
            let (state, direction, peer) = if c.caller.is(ext) {
                let s = if c.phase == CallPhase::Answered {
                    "confirmed"
                } else {
                    "early"
                };
                (s, "initiator", c.dialled.clone())
            } else if c.callee.is(ext) && c.phase == CallPhase::Answered {
                ("confirmed", "recipient", c.caller_label.clone())
            } else if c
                .branches
                .iter()
                .any(|b| b.ext == Some(ext) && b.status.is_none())
            {
                ("early", "recipient", c.caller_label.clone())
            } else {
                continue;
            };
            out.push((c.no.to_string(), state, direction, peer));
        }
        out.extend(self.dial_dialogs_of(ext));
        if self.ext_settings(ext).dnd {
            out.push(("dnd".into(), "confirmed", "recipient", "dnd".into()));
        }
        out
    }

    /// Send a NOTIFY on subscription `id` when its content changed (or `last`).
    fn notify(&mut self, now_ms: u64, id: &str, terminated: bool) {
        let Some((watch, dest)) = self.subscriptions.served(id).map(|s| (s.watch, s.dest)) else {
            return;
        };
        // Our address as the subscriber reaches it (never 0.0.0.0).
        let host = self.via_host(dest.ip());
        let (body, ctype, event, states) = match watch {
            Watch::Dialog(ext) => {
                let now = self.dialogs_of(ext);
                let Some(sub) = self.subscriptions.served(id) else {
                    return;
                };
                let mut dialogs = String::new();
                let mut states = BTreeMap::new();
                for (did, state, dir, peer) in &now {
                    let _ = write!(
                        dialogs,
                        "<dialog id=\"{did}\" direction=\"{dir}\"><state>{state}</state>\
                         <remote><identity>sip:{peer}@{host}</identity></remote></dialog>"
                    );
                    states.insert(did.clone(), *state);
                }
                for did in sub.last.keys().filter(|d| !states.contains_key(*d)) {
                    let _ = write!(
                        dialogs,
                        "<dialog id=\"{did}\"><state>terminated</state></dialog>"
                    );
                }
                (dialogs, "application/dialog-info+xml", "dialog", states)
            }
            Watch::System => {
                let mut b = format!("plan={}\n", self.config.server.plan.digits());
                for (name, bits) in self.state_bits() {
                    let _ = writeln!(b, "{name}={}", bits);
                }
                (b, EXT_STATE_TYPE, EXT_STATE_EVENT, BTreeMap::new())
            }
        };
        let Some(sub) = self.subscriptions.served_mut(id) else {
            return;
        };
        if sub.last_body.as_deref() == Some(body.as_str()) && !terminated {
            return;
        }
        sub.last_body = Some(body.clone());
        sub.last = states;
        sub.version += 1;
        sub.cseq += 1;
        let body = match watch {
            Watch::Dialog(ext) => format!(
                "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" \
                 version=\"{}\" state=\"full\" entity=\"sip:{ext}@{host}\">{body}</dialog-info>\r\n",
                sub.version - 1
            ),
            Watch::System => body,
        };
        let remaining = sub.expires_ms.saturating_sub(now_ms) / 1000;
        let state = if terminated {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={remaining}")
        };
        let branch = super::new_branch(&self.instance, 'n');
        let via = format!("SIP/2.0/UDP {host};branch={branch};rport");
        let contact = format!("<sip:system@{host}>");
        let bytes = Own {
            from: &sub.from,
            to: &sub.to,
            cseq: sub.cseq,
            headers: &[
                ("Contact", &contact),
                ("Event", event),
                ("Subscription-State", &state),
            ],
            body: Some((ctype, body.as_bytes())),
            ..Own::new("NOTIFY", &sub.contact, &via, id)
        }
        .to_bytes();
        let (dest, tag) = (sub.dest, ClientTag::Notify(sub.no));
        self.client_tx
            .start(branch, dest.into(), bytes.clone(), tag, now_ms);
        self.send(dest, bytes);
    }

    /// The five state bitmaps as hex, one bit per extension in plan order.
    fn state_bits(&self) -> Vec<(&'static str, String)> {
        let plan = self.config.server.plan;
        let bit = |f: &dyn Fn(u16) -> bool| {
            let bits: Vec<bool> = plan.numbers().map(f).collect();
            bits.chunks(4)
                .map(|c| {
                    let v = c
                        .iter()
                        .enumerate()
                        .fold(0u8, |acc, (i, b)| acc | (u8::from(*b) << i));
                    char::from_digit(u32::from(v), 16).unwrap_or('0')
                })
                .collect::<String>()
        };
        let ringing = |e: u16| {
            self.dialogs_of(e)
                .iter()
                .any(|d| d.1 == "early" && d.2 == "recipient")
        };
        let busy = |e: u16| self.in_call(e);
        vec![
            (
                "registered",
                bit(&|e| !self.registrar.contacts(e).is_empty()),
            ),
            ("ringing", bit(&ringing)),
            ("busy", bit(&busy)),
            ("dnd", bit(&|e| self.ext_settings(e).dnd)),
            ("forwarded", bit(&|e| self.ext_settings(e).forwarded())),
        ]
    }

    /// After every input: NOTIFY subscribers whose view changed; end expired ones.
    pub(super) fn blf_update(&mut self, now_ms: u64) {
        if !self.subscriptions.serves_any() {
            return;
        }
        for id in self.subscriptions.served_call_ids() {
            let expired = self
                .subscriptions
                .served(&id)
                .is_some_and(|s| s.expires_ms <= now_ms);
            self.notify(now_ms, &id, expired);
            if expired {
                self.subscriptions.end(&id);
            }
        }
    }
}

/// The lifetime granted to a SUBSCRIBE: its Expires (else the longest),
/// clamped; 0 ends the subscription.
fn granted_expires(f: &Fields<'_>) -> u32 {
    match f
        .expires
        .and_then(|e| e.trim().parse::<u32>().ok())
        .unwrap_or(MAX_EXPIRES)
    {
        0 => 0,
        asked => asked.clamp(MIN_EXPIRES, MAX_EXPIRES),
    }
}
