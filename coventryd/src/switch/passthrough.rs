//! Out-of-dialog SUBSCRIBE, NOTIFY and PUBLISH between extensions: authenticated
//! like every request that claims an extension, then relayed to the target's most
//! recent registration. A SUBSCRIBE is Record-Routed and its dialog remembered
//! (who subscribed, who notifies, until when), so the subscription's NOTIFYs and
//! refreshes come back through the switch from those two parties only.

use super::auth::{Auth, Claim};
use super::indialog::{tag_of, Side};
use super::reply::Replier;
use super::trust::{back_of, UNTRUSTED_IDENTITY};
use super::Incoming;
use super::Switch;
use crate::sip::dest::Dest;
use crate::sip::forward::{rewrite, Rewrite};
use crate::sip::headers::Fields;
use crate::sip::{parse, parse::parse_name_addr, parse::parse_via};
use coventry_shared::dialplan::Target;

/// Most subscriptions passed through at once.
pub const MAX_RELAYED_SUBSCRIPTIONS: usize = 4096;
/// Most subscriptions one extension may hold through the switch.
pub const MAX_RELAYED_PER_EXTENSION: usize = 64;
/// Longest a subscription is remembered without a refresh, seconds.
const MAX_SUBSCRIPTION_SECS: u64 = 86_400;
/// Kept this long past its expiry (the final NOTIFY, crossing refreshes), ms.
const SUBSCRIPTION_GRACE_MS: u64 = 32_000;

/// A subscription the switch passed between two phones.
#[derive(Debug, Clone)]
pub struct RelayedSubscription {
    /// Where the subscriber's SUBSCRIBE came from.
    pub subscriber: Dest,
    /// The subscribing extension (none: its name is not a number).
    pub subscriber_ext: Option<u16>,
    /// The subscriber's From tag.
    pub subscriber_tag: String,
    /// Where the SUBSCRIBE went (the notifier's contact).
    pub notifier: Dest,
    /// The extension subscribed to.
    pub notifier_ext: u16,
    /// Forgotten after this (ms since the epoch) unless refreshed.
    pub expires_ms: u64,
}

fn lifetime_ms(f: &Fields<'_>, now_ms: u64) -> u64 {
    let secs = f
        .expires
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(3600)
        .min(MAX_SUBSCRIPTION_SECS);
    now_ms + secs * 1000 + SUBSCRIPTION_GRACE_MS
}

impl Switch {
    pub(super) fn on_passthrough(&mut self, inc: &Incoming<'_>, r: Replier) {
        let Incoming { now_ms, req, f, .. } = *inc;
        let src = inc.from.addr();
        let method = req.method.to_string();
        let sender = parse_name_addr(f.from)
            .and_then(|n| n.parsed_uri().and_then(|u| u.user.map(str::to_string)))
            .unwrap_or_default();
        let claim = Claim {
            user: &sender,
            credentials: &f.proxy_authorization,
            challenge_code: 407,
            peer: false,
        };
        let Auth::Ok(sender) = self.authenticate(inc, claim, &r) else {
            return;
        };
        let user = req
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let cfg = &self.config;
        let Target::Extension(ext) = cfg.target_of(&user) else {
            return self.answer(now_ms, r, 404, None, &[]);
        };
        let Some((uri, dest)) = self
            .registrar
            .contacts(ext)
            .iter()
            .max_by_key(|b| b.registered_ms)
            .and_then(|b| Some((b.uri.clone(), b.dest()?)))
        else {
            return self.answer(now_ms, r, 480, None, &[]);
        };
        if f.max_forwards.is_some_and(|m| m.trim() == "0") {
            return self.answer(now_ms, r, 483, None, &[]);
        }
        let dest = Dest::Udp(dest);
        if method == "SUBSCRIBE" {
            let subscriber_ext: Option<u16> = sender.parse().ok();
            if !self.remember_subscription(now_ms, Dest::Udp(src), subscriber_ext, (dest, ext), f) {
                return self.answer(
                    now_ms,
                    r,
                    503,
                    Some("Service Unavailable (too many subscriptions)"),
                    &[("Retry-After", "60")],
                );
            }
        }
        let incoming = parse_via(f.vias[0])
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let top = parse::via_with_received_rport(f.vias[0], src);
        let back = back_of(top.as_deref().unwrap_or(f.vias[0])).unwrap_or(Dest::Udp(src));
        let branch = self
            .relay_key
            .stateless_branch(&incoming, &method, back, dest);
        let via = self.via_to(dest, &branch);
        let rr = self.record_route(dest.ip());
        let mut prepend = vec![("Via", via.as_str())];
        if method == "SUBSCRIBE" {
            prepend.push(("Record-Route", rr.as_str()));
        }
        let bytes = rewrite(
            &req.headers,
            &req.body,
            &Rewrite {
                start_line: format!("{method} {uri} SIP/2.0"),
                prepend: &prepend,
                replace_top_via: top.as_deref(),
                drop_routes: self.our_routes(f),
                drop_proxy_auth: true,
                decrement_max_forwards: true,
                drop_named: UNTRUSTED_IDENTITY,
                ..Rewrite::default()
            },
        );
        // Its retransmissions are relayed again, not judged anew: their nonce
        // was used once already.
        self.server_tx
            .relayed(r.key, r.dest, dest, bytes.clone(), now_ms);
        self.send(dest, bytes);
    }

    /// Remember the dialog a SUBSCRIBE from `subscriber` (extension
    /// `subscriber_ext`) to `notifier` is about to make. False when the tables
    /// are full.
    fn remember_subscription(
        &mut self,
        now_ms: u64,
        subscriber: Dest,
        subscriber_ext: Option<u16>,
        (notifier, notifier_ext): (Dest, u16),
        f: &Fields<'_>,
    ) -> bool {
        let sub = RelayedSubscription {
            subscriber,
            subscriber_ext,
            subscriber_tag: tag_of(f.from),
            notifier,
            notifier_ext,
            expires_ms: lifetime_ms(f, now_ms),
        };
        self.subscriptions.relay(f.call_id, sub, now_ms)
    }

    /// A request inside a relayed subscription: a refresh from the subscriber
    /// extends it.
    pub(super) fn track_relayed_subscription(
        &mut self,
        now_ms: u64,
        side: Side,
        method: &str,
        f: &Fields<'_>,
    ) {
        if side != Side::Caller || method != "SUBSCRIBE" {
            return;
        }
        self.subscriptions
            .refresh_relayed(f.call_id, lifetime_ms(f, now_ms));
    }

    /// Forget subscriptions past their expiry.
    pub(super) fn forget_subscriptions(&mut self, now_ms: u64) {
        self.subscriptions.forget_expired(now_ms);
    }
}
