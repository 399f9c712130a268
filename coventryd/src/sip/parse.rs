//! Robust parsers where rsip's typed ones are too fragile (IPv6 hosts, quoted
//! parameters such as `+sip.instance="<urn:...>"`, users containing dots): Via,
//! name-addr, URIs and their parameters.

use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::Header;

use super::normalize::*;

/// Call `f` with each piece of `s` between `sep` bytes outside double quotes.
pub(super) fn split_unquoted<'a>(s: &'a str, sep: u8, mut f: impl FnMut(&'a str)) {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == sep {
            f(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    f(s.get(start..).unwrap_or_default());
}

/// Parse `;name[=value];...` (leading separator optional) into pairs.
pub(super) fn parse_params(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut params = Vec::new();
    let mut ok = true;
    split_unquoted(s, b';', |piece| {
        let piece = piece.trim_matches(WS);
        if piece.is_empty() {
            return;
        }
        let (name, value) = match piece.split_once('=') {
            Some((n, v)) => (n.trim_matches(WS), Some(v.trim_matches(WS).to_owned())),
            None => (piece, None),
        };
        if !is_token(name) {
            ok = false;
            return;
        }
        params.push((name.to_owned(), value));
    });
    ok.then_some(params)
}

/// Whether `s` is empty or `;`-separated parameters with token names and no
/// top-level comma (checked without allocating).
pub(super) fn params_ok(s: &str) -> bool {
    if !(s.is_empty() || s.starts_with(';')) || find_unquoted(s, b',').is_some() {
        return false;
    }
    let mut ok = true;
    split_unquoted(s, b';', |piece| {
        let piece = piece.trim_matches(WS);
        let name = piece
            .split_once('=')
            .map_or(piece, |(n, _)| n.trim_matches(WS));
        if !piece.is_empty() && !is_token(name) {
            ok = false;
        }
    });
    ok
}

pub(super) fn find_param<'a>(
    params: &'a [(String, Option<String>)],
    name: &str,
) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

pub(super) fn write_params(
    f: &mut std::fmt::Formatter<'_>,
    params: &[(String, Option<String>)],
) -> std::fmt::Result {
    for (name, value) in params {
        match value {
            Some(v) => write!(f, ";{name}={v}")?,
            None => write!(f, ";{name}")?,
        }
    }
    Ok(())
}

pub(super) fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Split `host[:port]` (IPv6 in brackets) off the front of `s`.
/// Returns `(host without brackets, port, rest)`.
pub(super) fn split_hostport(s: &str) -> Option<(&str, Option<u16>, &str)> {
    let (host, rest) = if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']')?;
        let host = inner.get(..close)?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, inner.get(close + 1..)?)
    } else {
        let end = s
            .find(|c: char| !is_host_char(c as u8) || !c.is_ascii())
            .unwrap_or(s.len());
        let host = s.get(..end)?;
        if host.is_empty() {
            return None;
        }
        (host, s.get(end..)?)
    };
    let (port, rest) = match rest.strip_prefix(':') {
        Some(p) => {
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            let port: u16 = parse_digits(p.get(..end)?)?;
            if port == 0 {
                return None;
            }
            (Some(port), p.get(end..)?)
        }
        None => (None, rest),
    };
    Some((host, port, rest))
}

pub(super) fn fmt_host(
    f: &mut impl std::fmt::Write,
    host: &str,
    port: Option<u16>,
) -> std::fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]")?;
    } else {
        f.write_str(host)?;
    }
    match port {
        Some(p) => write!(f, ":{p}"),
        None => Ok(()),
    }
}

/// One Via header element, parsed robustly (IPv6 sent-by, quoted parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// Transport token in upper case (`UDP`, `TCP`, ...).
    pub transport: String,
    /// sent-by host, without IPv6 brackets.
    pub host: String,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// Via parameters in order (`branch`, `rport`, `received`, ...).
    pub params: Vec<(String, Option<String>)>,
}

impl ViaInfo {
    /// A parameter by name (case-insensitive): `Some(None)` for a flag like `rport`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK`.
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// `None`: no rport; `Some(None)`: rport requested; `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The sent-by host as an IP address, if it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Where a response to this Via goes (RFC 3261 18.2.2, RFC 3581 4):
    /// `received` (else sent-by host) and `rport` (else sent-by port, else
    /// `default_port`). `None` when the host is a name that needs DNS.
    pub fn response_addr(&self, default_port: u16) -> Option<SocketAddr> {
        let ip: IpAddr = match self.received() {
            Some(r) => r.trim_matches(['[', ']']).parse().ok()?,
            None => self.host_ip()?,
        };
        let port = match self.rport() {
            Some(Some(p)) => p,
            _ => self.port.unwrap_or(default_port),
        };
        Some(SocketAddr::new(ip, port))
    }

    /// Add `received`/`rport` for a request from `src` (RFC 3261 18.2.1, RFC 3581);
    /// whether anything changed.
    pub fn stamp_received_rport(&mut self, src: SocketAddr) -> bool {
        let ip = src.ip().to_canonical();
        let rport_requested = self.rport().is_some();
        let host_is_src = self.host_ip().map(|h| h.to_canonical()) == Some(ip);
        let mut changed = false;
        if rport_requested {
            self.set_param("rport", Some(src.port().to_string()));
            changed = true;
        }
        if !host_is_src || rport_requested {
            let received = ip.to_string();
            if self.received() != Some(received.as_str()) {
                self.set_param("received", Some(received));
                changed = true;
            }
        }
        changed
    }

    /// Set (or replace) a parameter, keeping its position if present.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }
}

impl std::fmt::Display for ViaInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIP/2.0/{} ", self.transport)?;
        fmt_host(f, &self.host, self.port)?;
        write_params(f, &self.params)
    }
}

/// Parse one Via element (`SIP/2.0/UDP host:port;branch=...`), tolerating LWS
/// where RFC 3261 allows it, IPv6 references and quoted parameter values.
pub fn parse_via(value: &str) -> Option<ViaInfo> {
    let (proto, rest) = value.split_once('/')?;
    let (version, rest) = rest.split_once('/')?;
    if !proto.trim_matches(WS).eq_ignore_ascii_case("SIP") || version.trim_matches(WS) != "2.0" {
        return None;
    }
    let rest = rest.trim_start_matches(WS);
    let tend = rest.find(WS)?;
    let transport = rest.get(..tend)?;
    if !is_token(transport) {
        return None;
    }
    let rest = rest.get(tend..)?.trim_start_matches(WS);
    let mut compact = String::with_capacity(rest.len());
    push_without_ws(rest, &mut compact);
    let (host, port, rest) = split_hostport(&compact)?;
    if !(rest.is_empty() || rest.starts_with(';')) || find_unquoted(rest, b',').is_some() {
        return None;
    }
    Some(ViaInfo {
        transport: transport.to_ascii_uppercase(),
        host: host.to_owned(),
        port,
        params: parse_params(rest)?,
    })
}

/// The parsed top Via of a message.
pub fn top_via(msg: &impl HasHeaders) -> Option<ViaInfo> {
    let value = msg.headers().iter().find_map(|h| match h {
        Header::Via(v) => Some(v.value()),
        _ => None,
    })?;
    let mut first = None;
    split_top_level(value, |e| {
        if first.is_none() {
            first = Some(e);
        }
    });
    parse_via(first?)
}

/// The branch parameter of the top Via.
pub fn top_via_branch(msg: &impl HasHeaders) -> Option<String> {
    top_via(msg).and_then(|v| v.branch().map(str::to_owned))
}

/// Rewrite a Via value with `received`/`rport` per RFC 3261 18.2.1 and RFC 3581.
/// Returns `None` when nothing changes (or the value cannot be parsed).
pub fn via_with_received_rport(value: &str, src: SocketAddr) -> Option<String> {
    let mut via = parse_via(value)?;
    via.stamp_received_rport(src).then(|| via.to_string())
}

/// Rewrite the Via of a request that came over the TCP connection from `src` so
/// that the response finds that connection again (RFC 3261 18.2.2): `received`
/// and `rport` always name the connection's remote end.
pub fn via_with_connection(value: &str, src: SocketAddr) -> Option<String> {
    let mut via = parse_via(value)?;
    via.set_param("rport", Some(src.port().to_string()));
    via.set_param("received", Some(src.ip().to_canonical().to_string()));
    Some(via.to_string())
}

/// Add `received`/`rport` to the top Via of a request received from `src`
/// (RFC 3261 18.2.1, RFC 3581 4).
pub fn apply_received_rport(req: &mut rsip::Request, src: SocketAddr) {
    for h in req.headers.iter_mut() {
        if let Header::Via(v) = h {
            if let Some(new) = via_with_received_rport(v.value(), src) {
                v.replace(new);
            }
            return;
        }
    }
}

/// A name-addr or addr-spec (From, To, Contact, Route, ...), parsed robustly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted and unescaped.
    pub display_name: Option<String>,
    /// The URI as written (inside `<...>` if brackets were used).
    pub uri: String,
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`, ...), in order.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// A header parameter by name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// The `expires` parameter as seconds.
    pub fn expires(&self) -> Option<u32> {
        self.param("expires").flatten().and_then(parse_digits)
    }

    /// The URI, parsed.
    pub fn parsed_uri(&self) -> Option<SipUri<'_>> {
        parse_uri(&self.uri)
    }
}

impl std::fmt::Display for NameAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.display_name {
            f.write_str("\"")?;
            for c in d.chars() {
                match c {
                    '"' | '\\' => write!(f, "\\{c}")?,
                    c if c.is_control() => f.write_str(" ")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// Parse a name-addr (`"Alice" <sip:a@b>;tag=x`) or addr-spec (`sip:a@b;tag=x`).
pub fn parse_name_addr(value: &str) -> Option<NameAddr> {
    let value = value.trim_matches(WS);
    match find_unquoted(value, b'<') {
        Some(lt) => {
            let display = value.get(..lt)?.trim_matches(WS);
            let after = value.get(lt + 1..)?;
            let gt = after.find('>')?;
            let uri = after.get(..gt)?.trim_matches(WS);
            if uri.is_empty() {
                return None;
            }
            let params = after.get(gt + 1..)?.trim_matches(WS);
            if !(params.is_empty() || params.starts_with(';')) {
                return None;
            }
            Some(NameAddr {
                display_name: unquote_display(display),
                uri: uri.to_owned(),
                params: parse_params(params)?,
            })
        }
        None => {
            let (uri, params) = value.split_once(';').unwrap_or((value, ""));
            let uri = uri.trim_matches(WS);
            if uri.is_empty() || uri.contains(WS) || uri.contains('"') {
                return None;
            }
            Some(NameAddr {
                display_name: None,
                uri: uri.to_owned(),
                params: parse_params(params)?,
            })
        }
    }
}

pub(super) fn unquote_display(d: &str) -> Option<String> {
    if d.is_empty() {
        return None;
    }
    let Some(inner) = d.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return Some(d.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A SIP (or other hierarchical) URI split into its parts, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// Scheme as written (`sip`, `sips`, ...).
    pub scheme: &'a str,
    /// User part, still %-escaped.
    pub user: Option<&'a str>,
    /// Host, without IPv6 brackets.
    pub host: &'a str,
    /// Port, if written.
    pub port: Option<u16>,
    /// URI parameters including the leading `;` (may be empty).
    pub params: &'a str,
    /// URI headers after `?` (may be empty).
    pub headers: &'a str,
}

impl SipUri<'_> {
    /// A URI parameter by name (case-insensitive): `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        let mut found = None;
        split_unquoted(self.params, b';', |piece| {
            if found.is_some() {
                return;
            }
            let (n, v) = match piece.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (piece, None),
            };
            if n.eq_ignore_ascii_case(name) {
                found = Some(v);
            }
        });
        found
    }

    /// The port, or the scheme's default (5061 for sips, else 5060).
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme.eq_ignore_ascii_case("sips") {
                5061
            } else {
                5060
            })
    }

    /// Same target: scheme and host case-insensitively, user exactly, ports
    /// equal (an absent port counting as the scheme's default). Parameters and
    /// headers are ignored.
    pub fn same_target(&self, other: &SipUri<'_>) -> bool {
        self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
            && self.user == other.user
            && self.port_or_default() == other.port_or_default()
    }
}

/// Split a URI such as `sip:21@192.168.1.10:5060;transport=udp` or
/// `sip:alice@[2001:db8::1]` into parts. `None` if it is not of that shape.
pub fn parse_uri(s: &str) -> Option<SipUri<'_>> {
    let s = s.trim_matches(WS);
    let (scheme, rest) = s.split_once(':')?;
    if !is_scheme(scheme) {
        return None;
    }
    let (rest, headers) = rest.split_once('?').unwrap_or((rest, ""));
    let (user, hostpart) = match rest.rfind('@') {
        Some(at) => {
            let userinfo = rest.get(..at)?;
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if user.is_empty() {
                return None;
            }
            (Some(user), rest.get(at + 1..)?)
        }
        None => (None, rest),
    };
    let (host, port, params) = split_hostport(hostpart)?;
    if !(params.is_empty() || params.starts_with(';')) {
        return None;
    }
    Some(SipUri {
        scheme,
        user,
        host,
        port,
        params,
        headers,
    })
}
