//! Why a datagram did not yield a SIP message, the daemon's defensive limits, and
//! the stateless error response for a request that could not be parsed.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::{normalize::*, parse::*, reason::*};

/// Default upper bound for one SIP message (bytes) on UDP.
pub const DEFAULT_MAX_MESSAGE: usize = 8192;
/// Most header lines (physical, and logical after splitting) a message may carry.
pub const MAX_HEADER_LINES: usize = 100;
/// Longest physical line (start line or header line) accepted, in bytes.
pub const MAX_LINE_LEN: usize = 2048;
/// Longest failure reason kept in [`WireError::Malformed`].
pub(super) const MAX_REASON_LEN: usize = 160;

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
pub(super) fn stateless_tag(ctx: &ReplyContext) -> String {
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

pub(super) fn push_header(out: &mut String, name: &str, value: &str) {
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
pub(super) fn push_sanitised(out: &mut String, s: &str) {
    if s.bytes().any(is_ctl) {
        out.extend(s.chars().map(|c| if c.is_control() { ' ' } else { c }));
    } else {
        out.push_str(s);
    }
}

pub(super) fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}
