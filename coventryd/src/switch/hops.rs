//! The switch on a message's path: the address it puts in its Via and
//! Record-Route for a destination, whether an address is itself, where a
//! request inside a dialog goes next, and which of a message's Routes name it.

use super::invite::uri_addr;
use super::{routes, Switch};
use crate::sip::dest::Dest;
use crate::sip::headers::Fields;
use crate::sip::parse::{parse_name_addr, parse_uri};
use std::net::{IpAddr, SocketAddr};

impl Switch {
    /// Whether `addr` is the switch itself: its listening address, or with an
    /// unspecified one (0.0.0.0) its port on any address of this host (a
    /// loopback address, or one the kernel would send from to reach itself).
    pub(super) fn is_own_addr(&self, addr: SocketAddr) -> bool {
        if addr == self.local {
            return true;
        }
        let ip = addr.ip();
        addr.port() == self.local.port()
            && (ip == self.local.ip()
                || (self.local.ip().is_unspecified()
                    && (ip.is_loopback() || ip.is_unspecified() || self.route_ip(ip) == ip)))
    }

    /// The local address that reaches `dest` (the shell's routing lookup,
    /// cached per destination), else the listening address.
    pub(super) fn route_ip(&self, dest: std::net::IpAddr) -> std::net::IpAddr {
        self.routes
            .borrow_mut()
            .local_for(dest)
            .unwrap_or(self.local.ip())
    }

    /// Use `lookup` to learn which local address reaches a destination (the
    /// shell gives the kernel's routing table).
    pub fn with_route_lookup(self, lookup: routes::RouteLookup) -> Switch {
        *self.routes.borrow_mut() = routes::RouteCache::new(lookup);
        self
    }

    /// The address to put in our Via for a request to `dest`.
    pub(super) fn via_host(&self, dest: IpAddr) -> String {
        if self.local.ip().is_unspecified() {
            let ip: IpAddr = if dest.is_loopback() {
                dest
            } else {
                self.route_ip(dest)
            };
            SocketAddr::new(ip, self.local.port()).to_string()
        } else {
            self.local.to_string()
        }
    }

    /// Our Via for a request to `dest`.
    pub(super) fn via_to(&self, dest: Dest, branch: &str) -> String {
        match dest {
            Dest::Udp(a) => format!(
                "SIP/2.0/UDP {};branch={branch};rport",
                self.via_host(a.ip())
            ),
            Dest::Tcp(a) => format!("SIP/2.0/TCP {};branch={branch}", self.via_host(a.ip())),
        }
    }

    /// Our Record-Route entry facing `side`.
    pub(super) fn record_route_to(&self, side: Dest) -> String {
        match side {
            Dest::Udp(a) => self.record_route(a.ip()),
            Dest::Tcp(a) => format!(
                "<sip:{};transport=tcp;lr;cv={}>",
                self.via_host(a.ip()),
                self.instance
            ),
        }
    }

    /// The Record-Route value for a request that came from `from` and goes to
    /// `to`: one entry when both are the same transport, else two (RFC 5658):
    /// the first faces where it goes, the second where it came from, so each side
    /// reaches the switch over its own transport.
    pub(super) fn record_route_between(&self, from: Dest, to: Dest) -> String {
        if from.is_tcp() == to.is_tcp() {
            self.record_route_to(to)
        } else {
            format!(
                "{}, {}",
                self.record_route_to(to),
                self.record_route_to(from)
            )
        }
    }

    /// Where a request inside a dialog goes: the first entry of its route set,
    /// else the remote target.
    pub(super) fn dialog_hop(&self, route: &[String], target: &str) -> Option<Dest> {
        match route.first() {
            Some(r) => parse_name_addr(r).and_then(|n| self.hop_of(&n.uri)),
            None => self.hop_of(target),
        }
    }

    /// The route set toward the answering side, from a 2xx's Record-Route: the
    /// entries above ours (added beyond the switch), nearest first.
    pub(super) fn route_beyond_us(&self, record_routes: &[&str]) -> Vec<String> {
        let token = format!("cv={}", self.instance);
        let mut route: Vec<String> = record_routes
            .iter()
            .take_while(|r| !r.contains(&token))
            .map(|r| r.to_string())
            .collect();
        route.reverse();
        route
    }

    /// Where a request to `uri` goes (a Route entry or a Request-URI): over TCP
    /// to a connected upstream link, or with `transport=tcp` to an upstream peer's
    /// address (their other connections); anything else is a phone, over UDP. IP
    /// literals only, apart from the configured upstream host names.
    pub(super) fn hop_of(&self, uri: &str) -> Option<Dest> {
        let u = parse_uri(uri)?;
        let port = u.port_or_default();
        let tcp = u
            .param("transport")
            .flatten()
            .is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
        let host = u.host.trim_start_matches('[').trim_end_matches(']');
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => {
                // A host name: only an upstream peer's own name means anything.
                return self
                    .upstream
                    .links
                    .iter()
                    .find(|l| l.peer.host.eq_ignore_ascii_case(host) && l.peer.port == port)
                    .and_then(|l| l.connected)
                    .map(Dest::Tcp);
            }
        };
        let link = self
            .upstream
            .links
            .iter()
            .any(|l| l.connected == Some(addr));
        Some(if link || (tcp && self.is_upstream_ip(addr.ip())) {
            Dest::Tcp(addr)
        } else {
            Dest::Udp(addr)
        })
    }

    /// Whether `ip` is an upstream peer's: a link's, or in `trust`.
    pub(super) fn is_upstream_ip(&self, ip: IpAddr) -> bool {
        self.config.upstream.trust.contains(&ip)
            || self.upstream.links.iter().any(|l| {
                l.connected.is_some_and(|a| a.ip() == ip)
                    || l.peer.host.parse::<IpAddr>().is_ok_and(|h| h == ip)
            })
    }

    /// Our Record-Route / Route URI: marked with this switch's instance token so
    /// that a Route naming us is recognised whatever address the phone used.
    pub(super) fn record_route(&self, toward: IpAddr) -> String {
        format!("<sip:{};lr;cv={}>", self.via_host(toward), self.instance)
    }

    /// How many Route headers at the top name this switch.
    pub(super) fn our_routes(&self, f: &Fields<'_>) -> usize {
        let token = format!("cv={}", self.instance);
        f.routes
            .iter()
            .take_while(|r| {
                parse_name_addr(r).is_some_and(|n| {
                    n.uri.split(';').any(|p| p == token)
                        || uri_addr(&n.uri).is_some_and(|a| a == self.local)
                })
            })
            .count()
    }
}
