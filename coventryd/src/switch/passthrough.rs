//! Out-of-dialog SUBSCRIBE, NOTIFY and PUBLISH between extensions: authenticated
//! like every request that claims an extension, then relayed to the target's most
//! recent registration (Record-Routed, so the subscription's NOTIFYs come back
//! through the switch like any in-dialog request).

use super::invite::{stable_hash, STATELESS_BRANCH};
use super::register::{Auth, Claim};
use super::reply::Replier;
use super::Switch;
use crate::headers::Fields;
use crate::sip::forward::{rewrite, Rewrite};
use crate::sip::wire::{self, parse_name_addr, parse_via};
use coventry_shared::dialplan::{classify, Target};
use std::net::SocketAddr;

impl Switch {
    pub(super) fn on_passthrough(
        &mut self,
        now_ms: u64,
        src: SocketAddr,
        req: &rsip::Request,
        f: &Fields<'_>,
        r: Replier,
    ) {
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
        let Auth::Ok(_) = self.authenticate(now_ms, src, req, claim, &r) else {
            return;
        };
        let user = req
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let cfg = &self.config;
        let Target::Extension(ext) = classify(
            cfg.server.plan,
            &cfg.groups,
            |n| cfg.is_configured(n),
            &user,
        ) else {
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
        let incoming = parse_via(f.vias[0])
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let branch = format!("{STATELESS_BRANCH}{:016x}", stable_hash(&incoming, &method));
        let via = format!(
            "SIP/2.0/UDP {};branch={branch};rport",
            self.via_host(dest.ip())
        );
        let rr = self.record_route(dest.ip());
        let top = wire::via_with_received_rport(f.vias[0], src);
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
                drop_proxy_auth: true,
                decrement_max_forwards: true,
                ..Rewrite::default()
            },
        );
        self.send(dest, bytes);
    }
}
