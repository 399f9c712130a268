//! Framing and normalisation of SIP messages in front of rsip 0.4.
//!
//! rsip 0.4 only understands one narrow spelling of SIP: CRLF line endings, long
//! header names, one value per Via/Contact/Route header, no folding, no
//! whitespace before a colon, `SIP/2.0` in upper case, and it ignores
//! `Content-Length` altogether. This module rewrites a raw datagram into that
//! canonical spelling (without changing its meaning) before handing it to rsip,
//! enforces the daemon's defensive limits, and serialises rsip messages back to
//! bytes without rsip's lossy `Display` (which mangles non-UTF-8 bodies, writes
//! `486 BusyHere`, never fixes `Content-Length` and drops IPv6 brackets).
//!
//! It also offers small robust accessors (Via, name-addr, URI parsing) for the
//! places where rsip's typed parsers are too fragile (IPv6 hosts, quoted
//! parameters such as `+sip.instance="<urn:...>"`, users containing dots).
//!
//! Everything here is pure: no I/O, no clock, no randomness.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::Header;

/// Default upper bound for one SIP message (bytes) on UDP.
pub const DEFAULT_MAX_MESSAGE: usize = 8192;
/// Most header lines (physical, and logical after splitting) a message may carry.
pub const MAX_HEADER_LINES: usize = 100;
/// Longest physical line (start line or header line) accepted, in bytes.
pub const MAX_LINE_LEN: usize = 2048;
/// Longest failure reason kept in [`WireError::Malformed`].
const MAX_REASON_LEN: usize = 160;

/// Why a datagram did not yield a SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A CRLF keep-alive or an otherwise blank datagram: ignore silently.
    Empty,
    /// The datagram exceeds the size limit; answer `513` if `reply` is present.
    TooLarge {
        /// Enough of the request to answer it statelessly, if it could be read.
        reply: Option<ReplyContext>,
    },
    /// The datagram is not an acceptable SIP message.
    Malformed {
        /// Human-readable cause, short and free of control characters.
        reason: String,
        /// Enough of the request to answer it statelessly (see
        /// [`ReplyContext::status`] for the suggested code), if it could be read.
        reply: Option<ReplyContext>,
    },
}

impl WireError {
    /// The reply context carried by this error, if any.
    pub fn reply_context(&self) -> Option<&ReplyContext> {
        match self {
            WireError::Empty => None,
            WireError::TooLarge { reply } | WireError::Malformed { reply, .. } => reply.as_ref(),
        }
    }

    /// The bytes of the suggested stateless answer (400, 416, 501, 505 or 513), if
    /// the broken message was a request (never an ACK) that can be answered.
    pub fn response_bytes(&self) -> Option<Vec<u8>> {
        self.reply_context()
            .map(|ctx| error_response(ctx, ctx.status, reason_phrase(ctx.status)))
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Empty => f.write_str("empty datagram"),
            WireError::TooLarge { .. } => f.write_str("message too large"),
            WireError::Malformed { reason, .. } => write!(f, "malformed message: {reason}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Enough of a broken request (Via lines, From, To, Call-ID, CSeq) to answer it
/// statelessly with [`error_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyContext {
    /// The request method as written on the start line.
    pub method: String,
    /// Every Via value, top first, one element per entry.
    pub vias: Vec<String>,
    /// The From header value.
    pub from: String,
    /// The To header value.
    pub to: String,
    /// The Call-ID header value.
    pub call_id: String,
    /// The CSeq header value.
    pub cseq: String,
    /// Suggested status code for the answer (400, 416, 501, 505 or 513).
    pub status: u16,
}

impl ReplyContext {
    /// Apply RFC 3261 18.2.1 / RFC 3581 `received`/`rport` to the top Via, as the
    /// server transport would have done for a parsed request.
    pub fn apply_received_rport(&mut self, src: SocketAddr) {
        if let Some(top) = self.vias.first_mut() {
            if let Some(v) = via_with_received_rport(top, src) {
                *top = v;
            }
        }
    }
}

/// Build the bytes of a stateless error response (e.g. 400, 513) for a request that
/// could not be parsed. A To tag is added (derived from the request, so that
/// retransmissions get the same tag) when the request had none and `code > 100`.
pub fn error_response(ctx: &ReplyContext, code: u16, reason: &str) -> Vec<u8> {
    let mut out = String::with_capacity(256 + ctx.vias.iter().map(String::len).sum::<usize>());
    let code = if (100..=699).contains(&code) {
        code
    } else {
        500
    };
    out.push_str("SIP/2.0 ");
    let _ = write!(out, "{code} ");
    push_sanitised(&mut out, reason);
    out.push_str("\r\n");
    for via in &ctx.vias {
        push_header(&mut out, "Via", via);
    }
    push_header(&mut out, "From", &ctx.from);
    let to_has_tag = parse_name_addr(&ctx.to).is_some_and(|na| na.tag().is_some());
    if code > 100 && !to_has_tag {
        let tag = stateless_tag(ctx);
        let mut to = String::with_capacity(ctx.to.len() + 24);
        push_sanitised(&mut to, &ctx.to);
        to.push_str(";tag=");
        to.push_str(&tag);
        push_header(&mut out, "To", &to);
    } else {
        push_header(&mut out, "To", &ctx.to);
    }
    push_header(&mut out, "Call-ID", &ctx.call_id);
    push_header(&mut out, "CSeq", &ctx.cseq);
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// A deterministic To tag for stateless answers: hash of the dialog-identifying parts.
fn stateless_tag(ctx: &ReplyContext) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(ctx.call_id.as_bytes());
    h.update(b"\0");
    h.update(ctx.from.as_bytes());
    h.update(b"\0");
    h.update(ctx.cseq.as_bytes());
    let d = h.finalize();
    hex::encode(d.get(..6).unwrap_or_default())
}

fn push_header(out: &mut String, name: &str, value: &str) {
    if is_token(name) {
        out.push_str(name);
    } else {
        // Only reachable for hand-built `Header::Other` names: keep the line sane.
        let before = out.len();
        out.extend(
            name.chars()
                .filter(|c| c.is_ascii() && is_token_char(*c as u8)),
        );
        if out.len() == before {
            out.push_str("X-Invalid");
        }
    }
    out.push_str(": ");
    push_sanitised(out, value);
    out.push_str("\r\n");
}

/// Append `s` with control characters (CR, LF, NUL, ...) replaced by spaces, so a
/// header value can never inject lines.
fn push_sanitised(out: &mut String, s: &str) {
    if s.bytes().any(is_ctl) {
        out.extend(s.chars().map(|c| if c.is_control() { ' ' } else { c }));
    } else {
        out.push_str(s);
    }
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// The standard reason phrase for a status code (RFC 3261 and friends).
pub fn reason_phrase(code: u16) -> &'static str {
    known_reason_phrase(code).unwrap_or(match code {
        100..=199 => "Session Progress",
        200..=299 => "OK",
        300..=399 => "Redirection",
        400..=499 => "Request Failure",
        500..=599 => "Server Failure",
        _ => "Global Failure",
    })
}

fn known_reason_phrase(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        430 => "Flow Failed",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity Info",
        437 => "Unsupported Credential",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        555 => "Push Notification Service Not Supported",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        608 => "Rejected",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// An internal parse failure: the status to suggest and why.
#[derive(Debug)]
struct Fail {
    status: u16,
    reason: Cow<'static, str>,
}

fn bad(reason: &'static str) -> Fail {
    Fail {
        status: 400,
        reason: Cow::Borrowed(reason),
    }
}

/// Methods rsip 0.4 knows, spelled as RFC 3261 requires (method names are
/// case-sensitive; rsip compares them case-insensitively).
const KNOWN_METHODS: [&str; 14] = [
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

/// Parse one UDP datagram into an rsip message after normalising it.
///
/// See the module documentation for the rewrites applied. On failure the error
/// carries a [`ReplyContext`] whenever the message was a request (not ACK) whose
/// Via, From, To, Call-ID and CSeq could still be read.
// The error is large only on the (rare) failure path; boxing it would change the
// agreed API for no measurable gain.
#[allow(clippy::result_large_err)]
pub fn parse_datagram(buf: &[u8], max_len: usize) -> Result<rsip::SipMessage, WireError> {
    if buf.len() > max_len {
        return Err(WireError::TooLarge {
            reply: extract_context(buf, 513),
        });
    }
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return Err(WireError::Empty);
    };
    let msg = buf.get(start..).unwrap_or_default();
    if msg
        .iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Err(WireError::Empty);
    }
    let malformed = |fail: Fail| WireError::Malformed {
        reason: truncate_reason(&fail.reason),
        reply: extract_context(msg, fail.status),
    };
    let canon = normalise(msg, false).map_err(malformed)?;
    parse_canonical(&canon).map_err(malformed)
}

/// Hand canonical bytes to rsip, never letting a panic inside rsip escape.
fn parse_canonical(canon: &[u8]) -> Result<rsip::SipMessage, Fail> {
    // Straight to the request or response parser: rsip's `SipMessage` tries the
    // response grammar first, and its failure on a request formats the whole
    // message into an error string (about a tenth of a REGISTER's handling).
    let parsed = std::panic::catch_unwind(|| {
        if canon.starts_with(b"SIP/") {
            rsip::Response::try_from(canon).map(rsip::SipMessage::Response)
        } else {
            rsip::Request::try_from(canon).map(rsip::SipMessage::Request)
        }
    });
    match parsed {
        Ok(Ok(msg)) => Ok(msg),
        Ok(Err(e)) => Err(Fail {
            status: 400,
            reason: Cow::Owned(format!("rsip: {e}")),
        }),
        Err(_) => Err(bad("rsip panicked")),
    }
}

fn truncate_reason(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len().min(MAX_REASON_LEN + 3));
    for c in reason.chars() {
        if out.len() >= MAX_REASON_LEN {
            out.push_str("...");
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Where the head ends: `(head_end, body_start)`. `head_end` excludes the line
/// terminator of the last header line; `body_start` is past the empty line.
fn find_head_end(buf: &[u8]) -> (usize, usize) {
    if let Some(found) = find_blank_line(buf) {
        return found;
    }
    // No empty line: everything is head (tolerated on UDP), the body is empty.
    let mut end = buf.len();
    while end > 0 && matches!(buf.get(end - 1), Some(b'\r' | b'\n')) {
        end -= 1;
    }
    (end, buf.len())
}

/// The empty line ending the head (CRLF or bare LF), if present.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(off) = buf
        .get(i..)
        .and_then(|s| s.iter().position(|&b| b == b'\n'))
    {
        let lf = i + off;
        match buf.get(lf + 1..) {
            Some([b'\n', ..]) => return Some((line_end(buf, lf), lf + 2)),
            Some([b'\r', b'\n', ..]) => return Some((line_end(buf, lf), lf + 3)),
            _ => i = lf + 1,
        }
    }
    None
}

/// Index of the end of the line whose LF is at `lf` (dropping a CR before it).
fn line_end(buf: &[u8], lf: usize) -> usize {
    if lf > 0 && buf.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    }
}

fn strip_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

const WS: [char; 2] = [' ', '\t'];

/// What the normaliser needs to remember about a message.
#[derive(Default)]
struct Seen {
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
enum Kind {
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
const CANONICAL_NAMES: [(&str, Kind); 23] = [
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
fn canonical_name(name: &str) -> (&str, Kind) {
    let name = expand_compact(name).unwrap_or(name);
    for (canon, kind) in CANONICAL_NAMES {
        if canon.eq_ignore_ascii_case(name) {
            return (canon, kind);
        }
    }
    (name, Kind::Other)
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Rewrite `msg` (leading CRLFs already skipped) into the canonical form rsip
/// accepts. With `stream`, Content-Length is mandatory (not used for UDP).
fn normalise(msg: &[u8], stream: bool) -> Result<Vec<u8>, Fail> {
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
fn check_line(line: &str) -> Result<(), Fail> {
    if line.len() > MAX_LINE_LEN {
        return Err(bad("header line too long"));
    }
    if line.bytes().any(is_ctl) {
        return Err(bad("control character in message head"));
    }
    Ok(())
}

/// Write the canonical start line; returns the method for a request.
fn write_start_line(line: &str, out: &mut String) -> Result<Option<String>, Fail> {
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

fn is_scheme(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Walk the header lines of a head (start line excluded), unfolding continuation
/// lines, and call `f` with each logical header's raw name and trimmed value.
/// In strict mode, limits are enforced and oddities are errors; otherwise bad
/// lines are skipped.
fn for_each_header<'a>(
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
fn write_header(name: &str, value: &str, out: &mut String, seen: &mut Seen) -> Result<(), Fail> {
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
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
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
fn push_without_ws(s: &str, out: &mut String) {
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
fn canon_via(elem: &str, out: &mut String) -> Result<(), &'static str> {
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
fn canon_addr(elem: &str, out: &mut String) -> Result<(), &'static str> {
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
fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
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
fn extract_context(buf: &[u8], status: u16) -> Option<ReplyContext> {
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
    // form, so the stateless answer is itself a well-formed response.
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
                if vias.len() >= MAX_HEADER_LINES || canon_via(v, &mut canon).is_err() {
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
                    && parse_name_addr(&canon).is_some()
                {
                    *slot = Some(canon);
                }
            }
            Kind::CallId if call_id.is_none() && !value.contains(WS) => {
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
// ---------------------------------------------------------------------------

/// What [`parse_stream`] found at the front of a stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    /// Not a whole message yet: read more and call again.
    Incomplete,
    /// CRLF keep-alive bytes (RFC 5626 ping `CRLFCRLF` or pong `CRLF`); drop
    /// `consumed` bytes. A ping (`consumed >= 4`) deserves a `CRLF` pong.
    KeepAlive {
        /// Bytes to drop from the front of the buffer.
        consumed: usize,
    },
    /// One message; drop `consumed` bytes.
    Message {
        /// Bytes to drop from the front of the buffer.
        consumed: usize,
        /// The parsed message.
        msg: rsip::SipMessage,
    },
    /// A correctly framed but unacceptable message; drop `consumed` bytes and
    /// answer it from `error` if it offers a reply. The stream stays usable.
    Invalid {
        /// Bytes to drop from the front of the buffer.
        consumed: usize,
        /// Why it was refused.
        error: WireError,
    },
}

/// Frame and parse one message from the front of a stream (TCP) buffer, where
/// Content-Length is mandatory (RFC 3261 18.3). An `Err` means the stream can no
/// longer be framed (no Content-Length, head or message over `max_len`): answer
/// from the error's reply context if any, then close the connection.
#[allow(clippy::result_large_err)]
pub fn parse_stream(buf: &[u8], max_len: usize) -> Result<StreamFrame, WireError> {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > 0 {
        return Ok(StreamFrame::KeepAlive { consumed: skip });
    }
    if buf.is_empty() {
        return Ok(StreamFrame::Incomplete);
    }
    let fatal = |reason: &'static str, status: u16| WireError::Malformed {
        reason: reason.to_owned(),
        reply: extract_context(buf, status),
    };
    let Some((head_end, body_start)) = find_blank_line(buf) else {
        if buf.len() > max_len {
            return Err(WireError::TooLarge {
                reply: extract_context(buf, 513),
            });
        }
        return Ok(StreamFrame::Incomplete);
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default());
    let mut content_length: Option<usize> = None;
    let mut conflict = false;
    if let Some((_, rest)) = head.split_once('\n') {
        let _ = for_each_header(rest, false, |name, value| {
            if canonical_name(name).1 == Kind::ContentLength {
                match (parse_digits::<usize>(&value), content_length) {
                    (Some(n), None) => content_length = Some(n),
                    (Some(n), Some(prev)) if n == prev => {}
                    _ => conflict = true,
                }
            }
            Ok(())
        });
    }
    if conflict {
        return Err(fatal("bad Content-Length on a stream", 400));
    }
    let Some(cl) = content_length else {
        return Err(fatal("missing Content-Length on a stream", 400));
    };
    let total = body_start.saturating_add(cl);
    if total > max_len {
        return Err(WireError::TooLarge {
            reply: extract_context(buf, 513),
        });
    }
    let Some(frame) = buf.get(..total) else {
        return Ok(StreamFrame::Incomplete);
    };
    let invalid = |fail: Fail| StreamFrame::Invalid {
        consumed: total,
        error: WireError::Malformed {
            reason: truncate_reason(&fail.reason),
            reply: extract_context(frame, fail.status),
        },
    };
    let parsed = normalise(frame, true).and_then(|canon| parse_canonical(&canon));
    Ok(match parsed {
        Ok(msg) => StreamFrame::Message {
            consumed: total,
            msg,
        },
        Err(fail) => invalid(fail),
    })
}

// ---------------------------------------------------------------------------
// Accessors that do not depend on rsip's fragile typed parsers
// ---------------------------------------------------------------------------

/// Call `f` with each piece of `s` between `sep` bytes outside double quotes.
fn split_unquoted<'a>(s: &'a str, sep: u8, mut f: impl FnMut(&'a str)) {
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
fn parse_params(s: &str) -> Option<Vec<(String, Option<String>)>> {
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
fn params_ok(s: &str) -> bool {
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

fn find_param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

fn write_params(
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

fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Split `host[:port]` (IPv6 in brackets) off the front of `s`.
/// Returns `(host without brackets, port, rest)`.
fn split_hostport(s: &str) -> Option<(&str, Option<u16>, &str)> {
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

fn fmt_host(f: &mut impl std::fmt::Write, host: &str, port: Option<u16>) -> std::fmt::Result {
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

fn unquote_display(d: &str) -> Option<String> {
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

/// The name (canonical spelling for headers rsip knows) and raw value of a header.
pub fn header_name_value(h: &Header) -> (&str, &str) {
    macro_rules! nv {
        ($($var:ident => $name:literal),* $(,)?) => {
            match h {
                $(Header::$var(x) => ($name, x.value()),)*
                Header::Other(n, v) => (n.as_str(), v.as_str()),
            }
        };
    }
    nv! {
        Accept => "Accept",
        AcceptEncoding => "Accept-Encoding",
        AcceptLanguage => "Accept-Language",
        AlertInfo => "Alert-Info",
        Allow => "Allow",
        AuthenticationInfo => "Authentication-Info",
        Authorization => "Authorization",
        CSeq => "CSeq",
        CallId => "Call-ID",
        CallInfo => "Call-Info",
        Contact => "Contact",
        ContentDisposition => "Content-Disposition",
        ContentEncoding => "Content-Encoding",
        ContentLanguage => "Content-Language",
        ContentLength => "Content-Length",
        ContentType => "Content-Type",
        Date => "Date",
        ErrorInfo => "Error-Info",
        Event => "Event",
        Expires => "Expires",
        From => "From",
        InReplyTo => "In-Reply-To",
        MaxForwards => "Max-Forwards",
        MimeVersion => "MIME-Version",
        MinExpires => "Min-Expires",
        Organization => "Organization",
        Priority => "Priority",
        ProxyAuthenticate => "Proxy-Authenticate",
        ProxyAuthorization => "Proxy-Authorization",
        ProxyRequire => "Proxy-Require",
        RecordRoute => "Record-Route",
        ReplyTo => "Reply-To",
        Require => "Require",
        RetryAfter => "Retry-After",
        Route => "Route",
        Server => "Server",
        Subject => "Subject",
        SubscriptionState => "Subscription-State",
        Supported => "Supported",
        Timestamp => "Timestamp",
        To => "To",
        Unsupported => "Unsupported",
        UserAgent => "User-Agent",
        Via => "Via",
        Warning => "Warning",
        WwwAuthenticate => "WWW-Authenticate",
    }
}

/// Whether two header names denote the same header (case-insensitive, compact
/// forms expanded).
pub fn same_header_name(a: &str, b: &str) -> bool {
    let a = expand_compact(a).unwrap_or(a);
    let b = expand_compact(b).unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// All values of the header `name` (any spelling), in message order. Works for
/// headers rsip types (`Via`) and those it keeps as `Other` (`Refer-To`).
pub fn header_values<'a>(
    msg: &'a impl HasHeaders,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    msg.headers().iter().filter_map(move |h| {
        let (n, v) = header_name_value(h);
        same_header_name(n, name).then_some(v)
    })
}

/// The first value of the header `name` (any spelling).
pub fn header_value<'a>(msg: &'a impl HasHeaders, name: &'a str) -> Option<&'a str> {
    header_values(msg, name).next()
}

// ---------------------------------------------------------------------------
// Serialisation
// ---------------------------------------------------------------------------

/// Format an rsip URI, bracketing IPv6 hosts (rsip's `Display` does not).
pub fn format_uri(uri: &rsip::Uri) -> String {
    let mut out = String::with_capacity(64);
    match &uri.scheme {
        Some(rsip::Scheme::Sip) => out.push_str("sip:"),
        Some(rsip::Scheme::Sips) => out.push_str("sips:"),
        Some(rsip::Scheme::Other(s)) => {
            out.push_str(s);
            out.push(':');
        }
        None => {}
    }
    if let Some(auth) = &uri.auth {
        let _ = write!(out, "{auth}@");
    }
    let port = uri.host_with_port.port.map(|p| *p.value());
    match &uri.host_with_port.host {
        rsip::Host::IpAddr(IpAddr::V6(ip)) => {
            let _ = fmt_host(&mut out, &ip.to_string(), port);
        }
        host => {
            let _ = write!(out, "{host}");
            if let Some(p) = port {
                let _ = write!(out, ":{p}");
            }
        }
    }
    for p in &uri.params {
        let _ = write!(out, "{p}");
    }
    out
}

/// Serialise a message to wire bytes: the body byte for byte (rsip's `Display`
/// would pass it through `from_utf8_lossy`), exactly one `Content-Length`
/// matching the body, standard reason phrases, and no header value able to
/// inject a line break.
pub fn to_bytes(msg: &rsip::SipMessage) -> Vec<u8> {
    let (headers, body) = match msg {
        rsip::SipMessage::Request(r) => (&r.headers, &r.body),
        rsip::SipMessage::Response(r) => (&r.headers, &r.body),
    };
    let mut out = String::with_capacity(512);
    match msg {
        rsip::SipMessage::Request(r) => {
            let _ = write!(out, "{} ", r.method);
            push_sanitised(&mut out, &format_uri(&r.uri));
            out.push_str(" SIP/2.0\r\n");
        }
        rsip::SipMessage::Response(r) => {
            let code = r.status_code.code();
            let reason = match &r.status_code {
                rsip::StatusCode::Other(_, reason) if !reason.is_empty() && reason != "Other" => {
                    reason.as_str()
                }
                _ => reason_phrase(code),
            };
            let _ = write!(out, "SIP/2.0 {code} ");
            push_sanitised(&mut out, reason);
            out.push_str("\r\n");
        }
    }
    let mut cl_written = false;
    for h in headers.iter() {
        if let Header::ContentLength(_) = h {
            if !cl_written {
                let _ = write!(out, "Content-Length: {}\r\n", body.len());
                cl_written = true;
            }
            continue;
        }
        let (name, value) = header_name_value(h);
        push_header(&mut out, name, value);
    }
    if !cl_written {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
