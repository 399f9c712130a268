//! Normalisation in front of rsip 0.4.
//!
//! rsip 0.4 only understands one narrow spelling of SIP: CRLF line endings, long
//! header names, one value per Via/Contact/Route header, no folding, no
//! whitespace before a colon, `SIP/2.0` in upper case, and it ignores
//! `Content-Length` altogether. This module rewrites a message into that canonical
//! spelling (without changing its meaning) and enforces the daemon's limits on
//! its head. Pure: no I/O, no clock, no randomness.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::{error::*, framing::*, parse::*};

/// An internal parse failure: the status to suggest and why.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) status: u16,
    pub(super) reason: Cow<'static, str>,
}

pub(super) fn bad(reason: &'static str) -> Fail {
    Fail {
        status: 400,
        reason: Cow::Borrowed(reason),
    }
}

/// Methods rsip 0.4 knows, spelled as RFC 3261 requires (method names are
/// case-sensitive; rsip compares them case-insensitively).
pub(super) const KNOWN_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

pub(super) fn strip_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

pub(super) const WS: [char; 2] = [' ', '\t'];

/// What the normaliser needs to remember about a message.
#[derive(Default)]
pub(super) struct Seen {
    via: usize,
    from: usize,
    to: usize,
    call_id: usize,
    cseq: usize,
    cseq_method: Option<String>,
    content_length: Option<usize>,
    logical: usize,
}

/// Kinds of header the normaliser treats specially.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Via,
    Route,
    RecordRoute,
    Contact,
    From,
    To,
    CallId,
    CSeq,
    ContentLength,
    MaxForwards,
    Other,
}

/// Long forms this layer canonicalises (compact forms expand to these).
pub(super) const CANONICAL_NAMES: [(&str, Kind); 23] = [
    ("Via", Kind::Via),
    ("From", Kind::From),
    ("To", Kind::To),
    ("Call-ID", Kind::CallId),
    ("CSeq", Kind::CSeq),
    ("Contact", Kind::Contact),
    ("Route", Kind::Route),
    ("Record-Route", Kind::RecordRoute),
    ("Content-Length", Kind::ContentLength),
    ("Max-Forwards", Kind::MaxForwards),
    ("Content-Type", Kind::Other),
    ("Content-Encoding", Kind::Other),
    ("Subject", Kind::Other),
    ("Supported", Kind::Other),
    ("Event", Kind::Other),
    ("Refer-To", Kind::Other),
    ("Allow-Events", Kind::Other),
    ("Session-Expires", Kind::Other),
    ("Referred-By", Kind::Other),
    ("Identity", Kind::Other),
    ("Reject-Contact", Kind::Other),
    ("Request-Disposition", Kind::Other),
    ("Accept-Contact", Kind::Other),
];

/// The long form of a compact header name (RFC 3261 7.3.3 and extensions).
pub fn expand_compact(name: &str) -> Option<&'static str> {
    let [c] = name.as_bytes() else {
        return None;
    };
    Some(match c.to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        b'b' => "Referred-By",
        b'y' => "Identity",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'a' => "Accept-Contact",
        _ => return None,
    })
}

/// Canonical spelling and kind of a header name.
pub(super) fn canonical_name(name: &str) -> (&str, Kind) {
    let name = expand_compact(name).unwrap_or(name);
    for (canon, kind) in CANONICAL_NAMES {
        if canon.eq_ignore_ascii_case(name) {
            return (canon, kind);
        }
    }
    (name, Kind::Other)
}

pub(super) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Rewrite `msg` (leading CRLFs already skipped) into the canonical form rsip
/// accepts. With `stream`, Content-Length is mandatory (not used for UDP).
pub(super) fn normalise(msg: &[u8], stream: bool) -> Result<Vec<u8>, Fail> {
    let (head_end, body_start) = find_head_end(msg);
    let head = std::str::from_utf8(msg.get(..head_end).unwrap_or_default())
        .map_err(|_| bad("non-UTF-8 in message head"))?;
    let (start_line, rest) = match head.split_once('\n') {
        Some((s, r)) => (strip_cr(s), Some(r)),
        None => (strip_cr(head), None),
    };
    check_line(start_line)?;

    let mut out = String::with_capacity(head.len() + 64);
    let request_method = write_start_line(start_line, &mut out)?;

    let mut seen = Seen::default();
    if let Some(rest) = rest {
        for_each_header(rest, true, |name, value| {
            write_header(name, &value, &mut out, &mut seen)
        })?;
    }

    // Written back, a message always carries Content-Length: it must fit too.
    if seen.content_length.is_none() && seen.logical >= MAX_HEADER_LINES {
        return Err(bad("too many headers"));
    }

    // Mandatory headers (RFC 3261 8.1.1 / 8.2.2 / 20).
    if seen.via == 0 {
        return Err(bad("missing Via"));
    }
    for (count, what) in [
        (seen.from, "From"),
        (seen.to, "To"),
        (seen.call_id, "Call-ID"),
        (seen.cseq, "CSeq"),
    ] {
        if count == 0 {
            return Err(Fail {
                status: 400,
                reason: Cow::Owned(format!("missing {what}")),
            });
        }
        if count > 1 {
            return Err(Fail {
                status: 400,
                reason: Cow::Owned(format!("duplicate {what}")),
            });
        }
    }
    if let Some(method) = &request_method {
        if seen.cseq_method.as_deref() != Some(method.as_str()) {
            return Err(bad("CSeq method does not match request method"));
        }
    }

    let avail = msg.len().saturating_sub(body_start);
    let body = match seen.content_length {
        Some(cl) if cl > avail => return Err(bad("body shorter than Content-Length")),
        Some(cl) => msg.get(body_start..body_start + cl).unwrap_or_default(),
        None if stream => return Err(bad("missing Content-Length on a stream")),
        None => msg.get(body_start..).unwrap_or_default(),
    };

    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Ok(bytes)
}

/// Reject overlong lines and control characters in the head.
pub(super) fn check_line(line: &str) -> Result<(), Fail> {
    if line.len() > MAX_LINE_LEN {
        return Err(bad("header line too long"));
    }
    if line.bytes().any(is_ctl) {
        return Err(bad("control character in message head"));
    }
    Ok(())
}

/// Write the canonical start line; returns the method for a request.
pub(super) fn write_start_line(line: &str, out: &mut String) -> Result<Option<String>, Fail> {
    let line = line.trim_matches(WS);
    if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (version, rest) = line.split_once(WS).ok_or(bad("bad status line"))?;
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(bad("unsupported SIP version in response"));
        }
        let rest = rest.trim_start_matches(WS);
        let (code, reason) = rest.split_once(WS).unwrap_or((rest, ""));
        let code_ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
        let code_num: u16 = code.parse().unwrap_or(0);
        if !code_ok || !(100..=699).contains(&code_num) {
            return Err(bad("bad status code"));
        }
        out.push_str("SIP/2.0 ");
        out.push_str(code);
        out.push(' ');
        out.push_str(reason.trim_matches(WS));
        out.push_str("\r\n");
        return Ok(None);
    }

    // Request-Line = Method SP Request-URI SP SIP-Version
    let mut parts = line.split(WS).filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    if !is_token(method) {
        return Err(bad("bad method"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        let looks_sip = version.len() >= 4
            && version
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
        return Err(Fail {
            status: if looks_sip { 505 } else { 400 },
            reason: Cow::Borrowed("unsupported SIP version"),
        });
    }
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return Err(Fail {
            status: if is_scheme(scheme) { 416 } else { 400 },
            reason: Cow::Borrowed("unsupported Request-URI scheme"),
        });
    }
    if !KNOWN_METHODS.contains(&method) {
        return Err(Fail {
            status: 501,
            reason: Cow::Owned(format!("unsupported method {method}")),
        });
    }
    out.push_str(method);
    out.push(' ');
    out.push_str(uri);
    out.push_str(" SIP/2.0\r\n");
    Ok(Some(method.to_owned()))
}

pub(super) fn is_scheme(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Walk the header lines of a head (start line excluded), unfolding continuation
/// lines, and call `f` with each logical header's raw name and trimmed value.
/// In strict mode, limits are enforced and oddities are errors; otherwise bad
/// lines are skipped.
pub(super) fn for_each_header<'a>(
    head: &'a str,
    strict: bool,
    mut f: impl FnMut(&'a str, Cow<'a, str>) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let mut current: Option<(&'a str, Cow<'a, str>)> = None;
    for (count, raw) in head.split('\n').enumerate() {
        let line = strip_cr(raw);
        if strict {
            if count >= MAX_HEADER_LINES {
                return Err(bad("too many header lines"));
            }
            check_line(line)?;
        } else if count >= 4 * MAX_HEADER_LINES {
            break;
        }
        if line.starts_with(WS) {
            match current.as_mut() {
                Some((_, value)) => {
                    let piece = line.trim_matches(WS);
                    if !piece.is_empty() {
                        let v = value.to_mut();
                        if !v.is_empty() {
                            v.push(' ');
                        }
                        v.push_str(piece);
                    }
                }
                None if strict => return Err(bad("continuation line before any header")),
                None => {}
            }
            continue;
        }
        if let Some((name, value)) = current.take() {
            f(name, value)?;
        }
        match line.split_once(':') {
            Some((name, value)) => {
                current = Some((
                    name.trim_end_matches(WS),
                    Cow::Borrowed(value.trim_matches(WS)),
                ))
            }
            None if strict => return Err(bad("header line without colon")),
            None => {}
        }
    }
    if let Some((name, value)) = current.take() {
        f(name, value)?;
    }
    Ok(())
}

/// Validate, canonicalise and write one logical header.
pub(super) fn write_header(
    name: &str,
    value: &str,
    out: &mut String,
    seen: &mut Seen,
) -> Result<(), Fail> {
    if !is_token(name) {
        return Err(bad("invalid header name"));
    }
    let (name, kind) = canonical_name(name);
    // Start one output header line; the caller writes the value and CRLF.
    let open = |out: &mut String, seen: &mut Seen| -> Result<(), Fail> {
        seen.logical += 1;
        if seen.logical > MAX_HEADER_LINES {
            return Err(bad("too many headers"));
        }
        out.push_str(name);
        out.push_str(": ");
        Ok(())
    };
    match kind {
        Kind::Via | Kind::Route | Kind::RecordRoute | Kind::Contact => {
            if kind == Kind::Contact && value == "*" {
                open(out, seen)?;
                out.push_str("*\r\n");
                return Ok(());
            }
            let mut result = Ok(());
            split_top_level(value, |elem| {
                if result.is_err() {
                    return;
                }
                result = open(out, seen).and_then(|()| {
                    if kind == Kind::Via {
                        seen.via += 1;
                        canon_via(elem, out).map_err(bad)
                    } else {
                        canon_addr(elem, out).map_err(bad)
                    }
                });
                out.push_str("\r\n");
            });
            result
        }
        Kind::From | Kind::To => {
            if kind == Kind::From {
                seen.from += 1;
            } else {
                seen.to += 1;
            }
            open(out, seen)?;
            canon_addr(value, out).map_err(bad)?;
            out.push_str("\r\n");
            Ok(())
        }
        Kind::CallId => {
            seen.call_id += 1;
            if value.is_empty() || value.contains(WS) {
                return Err(bad("bad Call-ID"));
            }
            open(out, seen)?;
            out.push_str(value);
            out.push_str("\r\n");
            Ok(())
        }
        Kind::CSeq => {
            seen.cseq += 1;
            let mut parts = value.split(WS).filter(|p| !p.is_empty());
            let (Some(num), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("bad CSeq"));
            };
            let n: u32 = parse_digits(num).ok_or(bad("bad CSeq number"))?;
            if n > 0x7fff_ffff || !is_token(method) {
                return Err(bad("bad CSeq"));
            }
            seen.cseq_method = Some(method.to_owned());
            open(out, seen)?;
            let _ = write!(out, "{n} {method}\r\n");
            Ok(())
        }
        Kind::ContentLength => {
            let n: usize = parse_digits(value).ok_or(bad("bad Content-Length"))?;
            match seen.content_length {
                Some(prev) if prev != n => return Err(bad("conflicting Content-Length")),
                Some(_) => return Ok(()),
                None => seen.content_length = Some(n),
            }
            open(out, seen)?;
            let _ = write!(out, "{n}\r\n");
            Ok(())
        }
        Kind::MaxForwards => {
            let n: u32 = parse_digits(value).ok_or(bad("bad Max-Forwards"))?;
            if n > 255 {
                return Err(bad("bad Max-Forwards"));
            }
            open(out, seen)?;
            let _ = write!(out, "{n}\r\n");
            Ok(())
        }
        Kind::Other => {
            open(out, seen)?;
            out.push_str(value);
            out.push_str("\r\n");
            Ok(())
        }
    }
}

/// Parse a non-empty all-digit string (at most 10 digits).
pub(super) fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Call `f` with each element of a comma-separated header value, splitting only
/// at top-level commas (not inside quotes, not inside `<...>`). Elements are
/// trimmed; empty elements are skipped.
pub fn split_top_level<'a>(value: &'a str, mut f: impl FnMut(&'a str)) {
    let bytes = value.as_bytes();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = false;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' if !angle => in_quotes = true,
            b'<' => angle = true,
            b'>' => angle = false,
            b',' if !angle => {
                let elem = value.get(start..i).unwrap_or_default().trim_matches(WS);
                if !elem.is_empty() {
                    f(elem);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let elem = value.get(start..).unwrap_or_default().trim_matches(WS);
    if !elem.is_empty() {
        f(elem);
    }
}

/// Append `s` to `out`, dropping whitespace outside quoted strings where it
/// touches a separator (`;`, `=`, `:`, `@`, `<`, `>`), as RFC 3261's SEMI, EQUAL,
/// COLON, ... allow. Other whitespace runs collapse to one space (which the
/// callers' parsers then reject where it is not allowed).
pub(super) fn push_without_ws(s: &str, out: &mut String) {
    const SEPS: &str = ";=:@<>";
    let mut in_quotes = false;
    let mut escaped = false;
    let mut pending_ws = false;
    for c in s.chars() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            out.push(c);
            continue;
        }
        if c == ' ' || c == '\t' {
            pending_ws = true;
            continue;
        }
        if pending_ws {
            pending_ws = false;
            let prev_sep = !matches!(out.chars().next_back(), Some(p) if !SEPS.contains(p));
            if !prev_sep && !SEPS.contains(c) {
                out.push(' ');
            }
        }
        if c == '"' {
            in_quotes = true;
        }
        out.push(c);
    }
}

/// Canonical Via element: `SIP/2.0/TRANSPORT sent-by;params` with no stray LWS.
pub(super) fn canon_via(elem: &str, out: &mut String) -> Result<(), &'static str> {
    let (proto, rest) = elem.split_once('/').ok_or("bad Via")?;
    let (version, rest) = rest.split_once('/').ok_or("bad Via")?;
    let rest = rest.trim_start_matches(WS);
    let tend = rest.find(WS).ok_or("Via without sent-by")?;
    let transport = rest.get(..tend).unwrap_or_default();
    let sent_by = rest.get(tend..).unwrap_or_default().trim_matches(WS);
    if !proto.trim_matches(WS).eq_ignore_ascii_case("SIP")
        || version.trim_matches(WS) != "2.0"
        || !is_token(transport)
        || sent_by.is_empty()
    {
        return Err("bad Via");
    }
    let begin = out.len();
    out.push_str("SIP/2.0/");
    out.extend(transport.chars().map(|c| c.to_ascii_uppercase()));
    out.push(' ');
    push_without_ws(sent_by, out);
    let canon = out.get(begin..).unwrap_or_default();
    let ok = canon
        .split_once(' ')
        .and_then(|(_, sent_by)| split_hostport(sent_by))
        .is_some_and(|(_, _, rest)| params_ok(rest));
    if !ok {
        return Err("bad Via sent-by");
    }
    Ok(())
}

/// Canonical name-addr / addr-spec element: no LWS inside `<...>` or around the
/// parameter separators; the display name is kept as written.
pub(super) fn canon_addr(elem: &str, out: &mut String) -> Result<(), &'static str> {
    match find_unquoted(elem, b'<') {
        Some(lt) => {
            let display = elem.get(..lt).unwrap_or_default().trim_matches(WS);
            let after = elem.get(lt + 1..).unwrap_or_default();
            let gt = after.find('>').ok_or("unterminated <")?;
            let uri = after.get(..gt).unwrap_or_default().trim_matches(WS);
            let params = after.get(gt + 1..).unwrap_or_default();
            if uri.is_empty() {
                return Err("empty URI");
            }
            if !display.is_empty() {
                out.push_str(display);
                out.push(' ');
            }
            out.push('<');
            out.push_str(uri);
            out.push('>');
            push_without_ws(params, out);
        }
        None => {
            if elem.is_empty() {
                return Err("empty address");
            }
            push_without_ws(elem, out);
        }
    }
    Ok(())
}

/// Index of the first `needle` byte outside double quotes.
pub(super) fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
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
        } else if b == needle {
            return Some(i);
        }
    }
    None
}

/// Leniently read a reply context from a (possibly broken) message.
pub(super) fn extract_context(buf: &[u8], status: u16) -> Option<ReplyContext> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let buf = buf.get(start..)?;
    // Look at a bounded prefix only: the head of any sane message fits.
    let limit = buf.len().min(MAX_HEADER_LINES * MAX_LINE_LEN);
    let (head_end, _) = find_head_end(buf.get(..limit)?);
    let head = String::from_utf8_lossy(buf.get(..head_end)?);
    let (start_line, rest) = head.split_once('\n')?;
    let start_line = strip_cr(start_line).trim_matches(WS);
    let method = start_line.split(WS).next()?;
    if !is_token(method) || method == "ACK" || method.contains('/') {
        return None; // responses and ACKs are never answered
    }
    // Keep only values that our own strict parser would accept, in canonical
    // form and short enough to echo in a header line (with room for
    // received/rport), so the stateless answer is itself a well-formed response.
    const ROOM: usize = MAX_LINE_LEN - 64;
    let mut vias = Vec::new();
    let mut bad_via = false;
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    let _ = for_each_header(rest, false, |name, value| {
        if value.is_empty() || value.bytes().any(is_ctl) || value.contains('\u{FFFD}') {
            return Ok(());
        }
        let (_, kind) = canonical_name(name.trim_matches(WS));
        match kind {
            Kind::Via => split_top_level(&value, |v| {
                let mut canon = String::with_capacity(v.len());
                if vias.len() >= MAX_HEADER_LINES
                    || canon_via(v, &mut canon).is_err()
                    || canon.len() > ROOM
                {
                    bad_via = true;
                } else {
                    vias.push(canon);
                }
            }),
            Kind::From | Kind::To => {
                let mut canon = String::with_capacity(value.len());
                let slot = if kind == Kind::From {
                    &mut from
                } else {
                    &mut to
                };
                if slot.is_none()
                    && canon_addr(&value, &mut canon).is_ok()
                    && canon.len() <= ROOM
                    && parse_name_addr(&canon).is_some()
                {
                    *slot = Some(canon);
                }
            }
            Kind::CallId if call_id.is_none() && !value.contains(WS) && value.len() <= ROOM => {
                call_id = Some(value.into_owned())
            }
            Kind::CSeq if cseq.is_none() => {
                let mut parts = value.split(WS).filter(|p| !p.is_empty());
                if let (Some(n), Some(m), None) = (parts.next(), parts.next(), parts.next()) {
                    if parse_digits::<u32>(n).is_some_and(|n| n <= 0x7fff_ffff) && is_token(m) {
                        cseq = Some(format!("{n} {m}"));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    });
    if bad_via {
        return None;
    }
    if vias.is_empty() {
        return None;
    }
    Some(ReplyContext {
        method: method.to_owned(),
        vias,
        from: from?,
        to: to?,
        call_id: call_id?,
        cseq: cseq?,
        status,
    })
}

// ---------------------------------------------------------------------------
// Stream (TCP) framing
