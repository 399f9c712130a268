//! `[upstream]`: where anything that is not local goes, over TCP.

use super::values::{is_dial_code, num};
use super::Fault;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A host (name or IP literal) and port, reached over TCP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (5060 when the text gave none).
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// `host`, `host:port`, `[v6]:port` or `v6`.
    fn from_str(s: &str) -> Result<HostPort, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not host[:port] (e.g. 127.0.0.1:5070 or sip.example.net)");
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(HostPort {
                host: a.ip().to_string(),
                port: a.port(),
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostPort {
                host: ip.to_string(),
                port: 5060,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (s, 5060),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !name_ok || port == 0 {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// How the switch tells the upstream who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A `P-Asserted-Identity` header (RFC 3325) naming the extension.
    Pai,
    /// Only the From header, rewritten to the extension at the switch.
    From,
}

/// Which upstream route a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// Calls to non-local numbers.
    Default,
    /// Calls to the emergency numbers.
    Emergency,
    /// Text messages to non-local numbers.
    Sms,
}

impl RouteKind {
    /// Every kind, in display order.
    pub const ALL: [RouteKind; 3] = [RouteKind::Default, RouteKind::Emergency, RouteKind::Sms];

    /// Lowercase name (`default`, `emergency`, `sms`).
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Default => "default",
            RouteKind::Emergency => "emergency",
            RouteKind::Sms => "sms",
        }
    }
}

/// `[upstream]`: where anything that is not local goes, over TCP.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The default route (`route`); none: non-local numbers get 404.
    pub route: Option<HostPort>,
    /// Numbers that are emergency calls (`emergency`), checked before anything else.
    pub emergency: Vec<String>,
    /// Calls at once to the default route (`max_calls`; 0: no limit); emergency
    /// calls are never counted nor refused.
    pub max_calls: u32,
    /// Prefixes of outside numbers an extension may be forwarded to
    /// (`forward_prefixes`); none: forwards stay inside.
    pub forward_prefixes: Vec<String>,
    /// Own route for emergency calls (`emergency_route`; default: `route`).
    pub emergency_route: Option<HostPort>,
    /// Extension or group that rings when no emergency route is reachable
    /// (`emergency_local`).
    pub emergency_local: Option<String>,
    /// Own route for text messages (`sms_route`; default: `route`).
    pub sms_route: Option<HostPort>,
    /// How the caller is asserted (`identity`).
    pub identity: Identity,
    /// Host part of the Request-URIs sent upstream (`domain`; default: the
    /// route's host:port).
    pub domain: Option<String>,
    /// Addresses accepted as the upstream peer besides the routes' own (`trust`).
    pub trust: Vec<IpAddr>,
    /// Digest user the upstream peer authenticates as (`peer_user`).
    pub peer_user: String,
    /// With a secret (`peer_secret`) the peer's calls and texts must also answer a
    /// digest challenge (407) as `peer_user`; without, its address is enough.
    pub peer_secret: Option<String>,
    /// Seconds between CRLF keep-alive pings on an idle connection (`keepalive`).
    pub keepalive: u32,
    /// Seconds in the Retry-After of the 503 a caller gets while a route is down
    /// (`retry_after`).
    pub retry_after: u32,
    /// This switch's prefix in a building of switches (`site_prefix`): its
    /// callers are presented upstream as PREFIX+EXT, and PREFIX+local number
    /// dialled here is local. None: a switch on its own.
    pub site_prefix: Option<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            route: None,
            emergency: vec!["112".into(), "911".into()],
            forward_prefixes: Vec::new(),
            max_calls: DEFAULT_MAX_UPSTREAM_CALLS,
            emergency_route: None,
            emergency_local: None,
            sms_route: None,
            identity: Identity::Pai,
            domain: None,
            trust: Vec::new(),
            peer_user: "upstream".into(),
            peer_secret: None,
            keepalive: 30,
            retry_after: 30,
            site_prefix: None,
        }
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("route", &self.route)
            .field("emergency", &self.emergency)
            .field("emergency_route", &self.emergency_route)
            .field("emergency_local", &self.emergency_local)
            .field("sms_route", &self.sms_route)
            .field("identity", &self.identity)
            .field("domain", &self.domain)
            .field("trust", &self.trust)
            .field("peer_user", &self.peer_user)
            .field(
                "peer_secret",
                &self.peer_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("keepalive", &self.keepalive)
            .field("retry_after", &self.retry_after)
            .field("site_prefix", &self.site_prefix)
            .finish()
    }
}

impl UpstreamConfig {
    /// Where requests of `kind` go, if anywhere.
    pub fn route_for(&self, kind: RouteKind) -> Option<&HostPort> {
        match kind {
            RouteKind::Default => self.route.as_ref(),
            RouteKind::Emergency => self.emergency_route.as_ref().or(self.route.as_ref()),
            RouteKind::Sms => self.sms_route.as_ref().or(self.route.as_ref()),
        }
    }

    /// The name of a route of `kind`: `building` for the default route of a
    /// site in a building of switches (`site_prefix`), else the kind's name.
    pub fn route_name(&self, kind: RouteKind) -> &'static str {
        match kind {
            RouteKind::Default if self.site_prefix.is_some() => "building",
            k => k.name(),
        }
    }

    /// The name of a link serving `kinds`, `+`-joined (`building+sms`).
    pub fn link_name(&self, kinds: &[RouteKind]) -> String {
        kinds
            .iter()
            .map(|k| self.route_name(*k))
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The distinct peers to keep a connection to, each with the kinds it serves
    /// (`route`, then `emergency_route`, then `sms_route`).
    pub fn links(&self) -> Vec<(HostPort, Vec<RouteKind>)> {
        let mut out: Vec<(HostPort, Vec<RouteKind>)> = Vec::new();
        for kind in RouteKind::ALL {
            let Some(hp) = self.route_for(kind) else {
                continue;
            };
            match out.iter_mut().find(|(h, _)| h == hp) {
                Some((_, kinds)) => kinds.push(kind),
                None => out.push((hp.clone(), vec![kind])),
            }
        }
        out
    }

    /// Upstream peers on this host (loopback routes or trusted addresses) that
    /// are trusted by address alone, with no `peer_secret`: any local user can
    /// connect from that address and send calls and texts as the peer.
    pub fn local_peers_without_secret(&self) -> Vec<String> {
        if self.peer_secret.is_some() {
            return Vec::new();
        }
        let local = |host: &str| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.to_canonical().is_loopback())
        };
        let mut out: Vec<String> = self
            .links()
            .into_iter()
            .filter(|(hp, _)| local(&hp.host))
            .map(|(hp, _)| hp.to_string())
            .collect();
        out.extend(
            self.trust
                .iter()
                .filter(|ip| ip.to_canonical().is_loopback())
                .map(IpAddr::to_string),
        );
        out
    }

    /// The warning for [`UpstreamConfig::local_peers_without_secret`], if any.
    pub fn local_trust_warning(&self) -> Option<String> {
        let peers = self.local_peers_without_secret();
        (!peers.is_empty()).then(|| {
            format!(
                "upstream peer {} on this host is trusted by address alone: any local user \
                 can connect from it and call or text as the upstream; set [upstream] \
                 peer_secret (and peer_user) so that it must answer a digest challenge",
                peers.join(", ")
            )
        })
    }

    /// Whether `number` is an emergency number.
    pub fn is_emergency(&self, number: &str) -> bool {
        self.emergency.iter().any(|e| e == number)
    }

    /// Whether an extension may be forwarded to the outside `number`.
    pub fn may_forward_to(&self, number: &str) -> bool {
        !self.is_emergency(number)
            && self
                .forward_prefixes
                .iter()
                .any(|p| number.starts_with(p.as_str()))
    }
}

/// `[upstream] max_calls` by default: an office's lines to the outside.
pub const DEFAULT_MAX_UPSTREAM_CALLS: u32 = 32;

/// Set `[upstream]` key `k` to `v`.
pub(super) fn set_key(u: &mut UpstreamConfig, k: &str, v: &str) -> Result<(), String> {
    let host = |v: &str| -> Result<Option<HostPort>, String> {
        if v.is_empty() || v.eq_ignore_ascii_case("none") {
            Ok(None)
        } else {
            v.parse().map(Some)
        }
    };
    match k {
        "route" => u.route = host(v)?,
        "emergency_route" => u.emergency_route = host(v)?,
        "sms_route" => u.sms_route = host(v)?,
        "emergency" => {
            let mut list = Vec::new();
            for n in v.split(|c: char| c == ',' || c.is_whitespace()) {
                if n.is_empty() {
                    continue;
                }
                if !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 15 {
                    return Err(format!("`{n}` is not an emergency number (digits only)"));
                }
                if !list.iter().any(|e| e == n) {
                    list.push(n.to_string());
                }
            }
            u.emergency = list;
        }
        "forward_prefixes" => {
            let mut list = Vec::new();
            for p in v.split(|c: char| c == ',' || c.is_whitespace()) {
                if p.is_empty() {
                    continue;
                }
                let digits = p.strip_prefix('+').unwrap_or(p);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || p.len() > 16
                {
                    return Err(format!("`{p}` is not a number prefix (digits, + first)"));
                }
                list.push(p.to_string());
            }
            u.forward_prefixes = list;
        }
        "emergency_local" => {
            if !is_dial_code(v) {
                return Err(format!("`{v}` is not an extension or group number"));
            }
            u.emergency_local = Some(v.to_string());
        }
        "identity" => {
            u.identity = match v.to_ascii_lowercase().as_str() {
                "pai" | "p-asserted-identity" => Identity::Pai,
                "from" => Identity::From,
                _ => return Err(format!("`{v}`: identity is pai or from")),
            }
        }
        "domain" => {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            {
                return Err(format!("`{v}` is not a domain"));
            }
            u.domain = Some(v.to_string());
        }
        "trust" => {
            let mut list = Vec::new();
            for a in v.split(|c: char| c == ',' || c.is_whitespace()) {
                if a.is_empty() {
                    continue;
                }
                list.push(
                    a.parse::<IpAddr>()
                        .map_err(|_| format!("`{a}` is not an IP address"))?,
                );
            }
            u.trust = list;
        }
        "peer_user" => {
            if v.is_empty()
                || v.len() > 64
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                return Err(format!("`{v}`: letters, digits, - . _ (at most 64)"));
            }
            u.peer_user = v.to_string();
        }
        "peer_secret" => {
            if v.is_empty() {
                return Err("peer_secret must not be empty".into());
            }
            u.peer_secret = Some(v.to_string());
        }
        "keepalive" => u.keepalive = num(v, 5, 3600)?,
        "retry_after" => u.retry_after = num(v, 1, 3600)?,
        "site_prefix" => {
            if v.is_empty() || v.len() > 4 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{v}`: a site prefix is 1 to 4 digits"));
            }
            u.site_prefix = Some(v.to_string());
        }
        "max_calls" => u.max_calls = num(v, 0, 1_000_000)?,
        _ => return Err("unknown key".into()),
    }
    Ok(())
}

/// The keys whose line the checks at the end name.
pub(super) const KEYS_CHECKED_LATER: [&str; 3] = ["emergency", "emergency_local", "site_prefix"];

/// `u` checked against the rest of the file (`known` extensions, `groups`,
/// `speed` codes), with the default emergency list made to yield to the
/// site's own numbers. `lines` holds the line of each key of
/// [`KEYS_CHECKED_LATER`] the file sets.
pub(super) fn finish(
    mut u: UpstreamConfig,
    lines: &BTreeMap<&'static str, usize>,
    known: &BTreeSet<u16>,
    groups: &BTreeMap<u16, Vec<u16>>,
    speed: &BTreeMap<String, String>,
) -> Result<UpstreamConfig, Fault> {
    let local = |n: &str| {
        n.parse::<u16>()
            .is_ok_and(|n| known.contains(&n) || groups.contains_key(&n))
    };
    let line = |key: &str| lines.get(key).copied().unwrap_or(0);
    if !lines.contains_key("emergency") {
        // The default list yields to the site's own numbering: a 3-digit plan
        // may well have an extension 112.
        u.emergency.retain(|e| !local(e) && !speed.contains_key(e));
    }
    for e in &u.emergency {
        if local(e) {
            return Err(Fault::new(
                line("emergency"),
                "[upstream] emergency",
                format!("{e} is an emergency number and also an extension or group"),
            ));
        }
        if speed.contains_key(e) {
            return Err(Fault::new(
                line("emergency"),
                "[upstream] emergency",
                format!("{e} is an emergency number and also a speed dial"),
            ));
        }
    }
    if u.site_prefix.is_some() && u.route.is_none() {
        return Err(Fault::new(
            line("site_prefix"),
            "[upstream] site_prefix",
            "a site prefix needs the building's route (`route = HOST[:PORT]`)",
        ));
    }
    if let Some(t) = &u.emergency_local {
        if !local(t) {
            return Err(Fault::new(
                line("emergency_local"),
                "[upstream] emergency_local",
                format!("{t} is not a configured extension or group"),
            ));
        }
    }
    Ok(u)
}
