//! The pure side of a connection: framing the read buffer into SIP messages,
//! keep-alive pongs and error replies, and the keep-alive clock of an outbound
//! link. No sockets: the connection loop in `conn.rs` feeds bytes and times in.

use crate::sip::{error, error::WireError, framing, framing::StreamFrame, reason};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The RFC 5626 §4.4.1 keep-alive ping.
pub const PING: &[u8] = b"\r\n\r\n";
/// The answer to a ping.
pub const PONG: &[u8] = b"\r\n";

/// One message framed from the stream: as the switch reads it, and its bytes as
/// they came on the wire (a slice of the read buffer, not a copy), which is what
/// the live trace shows.
#[derive(Debug)]
pub struct Received {
    /// The message, parsed from its canonical spelling.
    pub msg: rsip::SipMessage,
    /// Its frame: the bytes of this one message as received.
    pub wire: Bytes,
}

/// What one pass over the read buffer produced.
#[derive(Debug, Default)]
pub struct Framed {
    /// Whole SIP messages, in stream order.
    pub messages: Vec<Received>,
    /// Bytes to write back: pongs and error replies, in stream order.
    pub replies: Vec<u8>,
    /// Correctly framed but unacceptable messages that were dropped.
    pub rejected: Vec<WireError>,
    /// The stream cannot be framed any more: close the connection (after writing
    /// `replies`, which then holds the error reply if there is one).
    pub fatal: Option<WireError>,
}

/// The bytes of the stateless answer to a broken request, sent back on the
/// connection it came from (`513` when too large, else the suggested status).
pub fn error_reply(error: &WireError, peer: SocketAddr) -> Option<Vec<u8>> {
    let mut ctx = error.reply_context()?.clone();
    ctx.apply_received_rport(peer);
    let code = if matches!(error, WireError::TooLarge { .. }) {
        513
    } else {
        ctx.status
    };
    Some(error::error_response(
        &ctx,
        code,
        reason::reason_phrase(code),
    ))
}

/// Take every complete frame off the front of `buf` (messages at most `max_len`
/// bytes), leaving an incomplete tail. After a fatal error the buffer is left as
/// it is: the connection is to be closed and nothing more read from it.
/// `awaiting_pong`: we pinged, so a lone CRLF is its pong; otherwise a CRLF at the
/// very end waits for the next bytes, in case it is the first half of a ping.
pub fn drain(buf: &mut BytesMut, max_len: usize, peer: SocketAddr, awaiting_pong: bool) -> Framed {
    let mut out = Framed::default();
    // Each message with where its frame lies in `buf`: cut out once the pass is
    // over (the buffer cannot be split while it is read).
    let mut messages = Vec::new();
    let mut at = 0usize;
    // Every frame consumes at least one byte, so this bounds the loop.
    for _ in 0..=buf.len() {
        let rest = buf.get(at..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        match framing::parse_stream(rest, max_len) {
            Ok(StreamFrame::Incomplete) => break,
            Ok(StreamFrame::KeepAlive { consumed })
                if !awaiting_pong && consumed < PING.len() && consumed >= rest.len() =>
            {
                // Fewer CR/LF than a ping at the end of what arrived: the rest of a
                // ping may still come (a pong just waits for the next bytes).
                break;
            }
            Ok(StreamFrame::KeepAlive { consumed }) => {
                if consumed >= PING.len() {
                    out.replies.extend_from_slice(PONG);
                }
                at = at.saturating_add(consumed.max(1));
            }
            Ok(StreamFrame::Message { consumed, msg }) => {
                let end = at.saturating_add(consumed.max(1));
                messages.push((msg, at..end));
                at = end;
            }
            Ok(StreamFrame::Invalid { consumed, error }) => {
                if let Some(reply) = error_reply(&error, peer) {
                    out.replies.extend_from_slice(&reply);
                }
                out.rejected.push(error);
                at = at.saturating_add(consumed.max(1));
            }
            Err(error) => {
                if let Some(reply) = error_reply(&error, peer) {
                    out.replies.extend_from_slice(&reply);
                }
                out.fatal = Some(error);
                // What was framed before still goes on (copied: the buffer is
                // left as it is).
                let done = Bytes::copy_from_slice(buf.get(..at).unwrap_or_default());
                out.messages = cut_out(&done, messages);
                return out;
            }
        }
    }
    let done = buf.split_to(at.min(buf.len())).freeze();
    out.messages = cut_out(&done, messages);
    out
}

/// The messages with their frames, sliced out of the bytes taken off the buffer.
fn cut_out(
    done: &Bytes,
    messages: Vec<(rsip::SipMessage, std::ops::Range<usize>)>,
) -> Vec<Received> {
    messages
        .into_iter()
        .map(|(msg, r)| {
            let end = r.end.min(done.len());
            Received {
                msg,
                wire: done.slice(r.start.min(end)..end),
            }
        })
        .collect()
}

/// `t + d`, without the panic of `Instant + Duration` on overflow (a year at most
/// when `d` is absurd).
pub fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(t)
}

/// What the keep-alive clock asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveAction {
    /// Nothing to do yet.
    Wait,
    /// Send a ping now.
    Ping,
    /// A ping went unanswered: the connection is dead.
    Dead,
}

/// The keep-alive clock of an outbound link: ping when nothing was written for
/// `interval`; dead when nothing at all arrived within `timeout` of a ping.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    /// Idle time before a ping.
    pub interval: Duration,
    /// How long a ping may go unanswered.
    pub timeout: Duration,
    last_write: Instant,
    ping_at: Option<Instant>,
}

impl KeepAlive {
    /// A clock for a connection established at `now`.
    pub fn new(now: Instant, interval: Duration, timeout: Duration) -> KeepAlive {
        KeepAlive {
            interval,
            timeout,
            last_write: now,
            ping_at: None,
        }
    }

    /// Bytes were written at `now`.
    pub fn wrote(&mut self, now: Instant) {
        self.last_write = now;
    }

    /// Whether a ping went out and nothing has arrived since.
    pub fn awaiting_pong(&self) -> bool {
        self.ping_at.is_some()
    }

    /// Bytes (anything) arrived: any outstanding ping is answered.
    pub fn read(&mut self) {
        self.ping_at = None;
    }

    /// When [`KeepAlive::poll`] next has something to say.
    pub fn deadline(&self) -> Instant {
        match self.ping_at {
            Some(at) => later(at, self.timeout),
            None => later(self.last_write, self.interval),
        }
    }

    /// What to do at `now`. `Ping` records the ping as sent (and as a write).
    pub fn poll(&mut self, now: Instant) -> KeepAliveAction {
        match self.ping_at {
            Some(at) if now >= later(at, self.timeout) => KeepAliveAction::Dead,
            Some(_) => KeepAliveAction::Wait,
            None if now >= later(self.last_write, self.interval) => {
                self.ping_at = Some(now);
                self.last_write = now;
                KeepAliveAction::Ping
            }
            None => KeepAliveAction::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5070))
    }

    fn options(body: &str) -> String {
        format!(
            "OPTIONS sip:x@example.net SIP/2.0\r\n\
             Via: SIP/2.0/TCP 10.0.0.9:5060;branch=z9hG4bKabc\r\n\
             From: <sip:a@example.net>;tag=1\r\nTo: <sip:x@example.net>\r\n\
             Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_ping_split_across_reads_is_answered() {
        let mut buf = BytesMut::from(&b"\r\n"[..]);
        let f = drain(&mut buf, 4096, peer(), false);
        assert!(
            f.replies.is_empty(),
            "not yet known: a pong, or half a ping"
        );
        assert_eq!(&buf[..], b"\r\n");
        buf.extend_from_slice(b"\r\n");
        let f = drain(&mut buf, 4096, peer(), false);
        assert_eq!(f.replies, PONG);
        assert!(buf.is_empty());
        // After our own ping a lone CRLF is its pong: taken at once, not answered.
        let mut buf = BytesMut::from(&b"\r\n"[..]);
        let f = drain(&mut buf, 4096, peer(), true);
        assert!(f.replies.is_empty() && buf.is_empty());
    }

    #[test]
    fn messages_pings_and_tail() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(PING);
        buf.extend_from_slice(options("").as_bytes());
        buf.extend_from_slice(PONG);
        buf.extend_from_slice(options("hello").as_bytes());
        let whole = options("").into_bytes();
        buf.extend_from_slice(&whole[..whole.len() - 10]);
        let f = drain(&mut buf, 4096, peer(), false);
        assert_eq!(f.messages.len(), 2);
        // Each message comes with its own frame, byte for byte.
        assert_eq!(&f.messages[0].wire[..], options("").as_bytes());
        assert_eq!(&f.messages[1].wire[..], options("hello").as_bytes());
        assert_eq!(f.replies, PONG, "one pong for the ping, none for the pong");
        assert!(f.fatal.is_none() && f.rejected.is_empty());
        assert_eq!(buf, &whole[..whole.len() - 10]);
        buf.extend_from_slice(&whole[whole.len() - 10..]);
        let f = drain(&mut buf, 4096, peer(), false);
        assert_eq!(f.messages.len(), 1);
        assert!(buf.is_empty());
        let f = drain(&mut buf, 4096, peer(), false);
        assert!(f.messages.is_empty() && f.replies.is_empty() && f.fatal.is_none());
    }

    #[test]
    fn missing_content_length_is_fatal_with_a_400() {
        let text = options("").replace("Content-Length: 0\r\n", "");
        let mut buf = BytesMut::from(text.as_bytes());
        buf.extend_from_slice(b"more bytes that are never looked at");
        let before = buf.clone();
        let f = drain(&mut buf, 4096, peer(), false);
        assert!(matches!(f.fatal, Some(WireError::Malformed { .. })));
        let reply = String::from_utf8_lossy(&f.replies).into_owned();
        assert!(reply.starts_with("SIP/2.0 400 "), "{reply}");
        assert!(reply.contains("received=127.0.0.1"), "{reply}");
        assert_eq!(buf, before);
    }

    #[test]
    fn oversized_is_fatal_with_a_513() {
        let text = options(&"x".repeat(3000));
        let mut buf = BytesMut::from(text.as_bytes());
        buf.truncate(600);
        let f = drain(&mut buf, 1024, peer(), false);
        assert!(matches!(f.fatal, Some(WireError::TooLarge { .. })));
        assert!(f.replies.starts_with(b"SIP/2.0 513 "));
    }

    #[test]
    fn garbage_without_blank_line_is_fatal_once_over_the_limit() {
        let mut buf = BytesMut::from(&[b'x'; 100][..]);
        let f = drain(&mut buf, 1024, peer(), false);
        assert!(f.fatal.is_none() && f.messages.is_empty());
        assert_eq!(buf.len(), 100);
        buf.extend_from_slice(&[b'y'; 1000]);
        let f = drain(&mut buf, 1024, peer(), false);
        assert!(f.fatal.is_some());
        assert!(f.replies.is_empty(), "nothing to answer");
    }

    #[test]
    fn invalid_but_framed_is_answered_and_skipped() {
        let bad = options("").replace("SIP/2.0\r\n", "SIP/3.0\r\n");
        let mut buf = BytesMut::from(bad.as_bytes());
        buf.extend_from_slice(options("").as_bytes());
        let f = drain(&mut buf, 4096, peer(), false);
        assert_eq!(f.rejected.len(), 1);
        assert_eq!(f.messages.len(), 1);
        assert!(f.fatal.is_none());
        assert!(f.replies.starts_with(b"SIP/2.0 505 "), "{:?}", f.replies);
        assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_u32;
        for round in 0..300 {
            let mut buf = BytesMut::new();
            for _ in 0..(round * 7 % 700) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let alphabet = b"\r\n :;INVITE SIP/2.0Content-Length0123456789xyz";
                buf.extend_from_slice(&[alphabet[seed as usize % alphabet.len()]]);
            }
            let len = buf.len();
            let f = drain(&mut buf, 512, peer(), false);
            assert!(buf.len() <= len);
            let _ = f;
        }
    }

    #[test]
    fn keepalive_pings_when_idle_and_dies_without_answer() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = KeepAlive::new(t0, 5 * s, 10 * s);
        assert_eq!(k.deadline(), t0 + 5 * s);
        assert_eq!(k.poll(t0 + 4 * s), KeepAliveAction::Wait);
        k.wrote(t0 + 4 * s);
        assert_eq!(k.poll(t0 + 8 * s), KeepAliveAction::Wait);
        assert_eq!(k.poll(t0 + 9 * s), KeepAliveAction::Ping);
        assert_eq!(k.deadline(), t0 + 19 * s);
        // Writes do not count as an answer, and no second ping is sent.
        k.wrote(t0 + 15 * s);
        assert_eq!(k.poll(t0 + 18 * s), KeepAliveAction::Wait);
        assert_eq!(k.poll(t0 + 19 * s), KeepAliveAction::Dead);
    }

    #[test]
    fn keepalive_answered_by_anything() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = KeepAlive::new(t0, 5 * s, 10 * s);
        assert_eq!(k.poll(t0 + 5 * s), KeepAliveAction::Ping);
        k.read();
        assert_eq!(k.deadline(), t0 + 10 * s);
        assert_eq!(k.poll(t0 + 9 * s), KeepAliveAction::Wait);
        assert_eq!(k.poll(t0 + 10 * s), KeepAliveAction::Ping);
    }

    #[test]
    fn absurd_durations_do_not_panic() {
        let t0 = Instant::now();
        let mut k = KeepAlive::new(t0, Duration::MAX, Duration::MAX);
        assert!(k.deadline() > t0);
        assert_eq!(k.poll(t0), KeepAliveAction::Wait);
        assert_eq!(
            later(t0, Duration::from_secs(1)),
            t0 + Duration::from_secs(1)
        );
    }

    proptest! {
        /// However the stream is cut into reads, the same messages come out, and
        /// the buffer never holds more than a message plus one read.
        #[test]
        fn chunking_does_not_matter(
            bodies in proptest::collection::vec("[a-z ]{0,40}", 1..6),
            cuts in proptest::collection::vec(1usize..200, 1..40),
        ) {
            let mut stream = Vec::new();
            for b in &bodies {
                stream.extend_from_slice(PING);
                stream.extend_from_slice(options(b).as_bytes());
            }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut at = 0;
            let mut cut = cuts.iter().cycle();
            while at < stream.len() {
                let n = (*cut.next().unwrap_or(&1)).min(stream.len() - at);
                buf.extend_from_slice(&stream[at..at + n]);
                at += n;
                let f = drain(&mut buf, 1024, peer(), false);
                prop_assert!(f.fatal.is_none());
                got.extend(f.messages);
                prop_assert!(buf.len() <= 1024 + 200);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got.len(), bodies.len());
            for (m, b) in got.iter().zip(&bodies) {
                // However it was cut, each frame is the message as sent.
                let sent = options(b);
                prop_assert_eq!(&m.wire[..], sent.as_bytes());
                match &m.msg {
                    rsip::SipMessage::Request(r) => prop_assert_eq!(&r.body, b.as_bytes()),
                    rsip::SipMessage::Response(_) => prop_assert!(false, "a response"),
                }
            }
        }
    }
}
