//! Framing: one UDP datagram, or one message from the front of a TCP stream
//! (Content-Length mandatory), normalised and handed to rsip without letting a
//! panic inside rsip escape.

use std::borrow::Cow;

use super::{error::*, normalize::*};

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

/// The two stages of [`parse_datagram`] apart, for the hot-path benchmark
/// (`coventryd/benches/hot_paths.rs`): the rewrite into rsip's dialect, and
/// rsip's parse of what it wrote.
pub mod stages {
    /// Stage 1: `msg` in rsip's dialect (None when it is malformed).
    pub fn normalise(msg: &[u8]) -> Option<Vec<u8>> {
        super::normalise(msg, false).ok()
    }

    /// Stage 2: rsip's parse of canonical bytes (None when it fails).
    pub fn rsip(canon: &[u8]) -> Option<rsip::SipMessage> {
        super::parse_canonical(canon).ok()
    }
}

/// Hand canonical bytes to rsip, never letting a panic inside rsip escape.
pub(super) fn parse_canonical(canon: &[u8]) -> Result<rsip::SipMessage, Fail> {
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

pub(super) fn truncate_reason(reason: &str) -> String {
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
pub(super) fn find_head_end(buf: &[u8]) -> (usize, usize) {
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
pub(super) fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
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
pub(super) fn line_end(buf: &[u8], lf: usize) -> usize {
    if lf > 0 && buf.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    }
}

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
