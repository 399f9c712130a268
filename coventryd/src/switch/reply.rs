//! Responses to requests the switch answers itself.

use crate::sip::dest::Dest;
use crate::sip::headers::Fields;
use crate::sip::{error::ReplyContext, parse::ViaInfo, reason::reason_phrase};
use std::fmt::Write;

/// Everything needed to answer one request, captured when it arrived.
#[derive(Debug, Clone)]
pub struct Replier {
    /// Server-transaction key.
    pub key: String,
    /// Where responses go (RFC 3261 18.2.2 / RFC 3581): over TCP the connection
    /// the request came on, over UDP the top Via's received/rport.
    pub dest: Dest,
    /// The request's headers to echo (top Via already carries received/rport).
    pub ctx: ReplyContext,
    /// Our To tag for this transaction.
    pub to_tag: String,
}

impl Replier {
    /// Capture the reply context of a request from `src`, with its method and its
    /// top Via as parsed by the caller.
    pub fn new(
        key: String,
        src: Dest,
        (method, top_via): (&str, Option<ViaInfo>),
        f: &Fields<'_>,
        to_tag: String,
    ) -> Replier {
        let mut vias: Vec<String> = f.vias.iter().map(|v| v.to_string()).collect();
        let mut dest = src;
        if let Some(top) = vias.first_mut() {
            // Stamped with received/rport, and where responses go.
            if let Some(mut v) = top_via {
                if v.stamp_received_rport(src.addr()) {
                    *top = v.to_string();
                }
                if let Dest::Udp(a) = src {
                    dest = Dest::Udp(v.response_addr(5060).unwrap_or(a));
                }
            }
        }
        Replier {
            key,
            dest,
            ctx: ReplyContext {
                method: method.to_string(),
                vias,
                from: f.from.to_string(),
                to: f.to.to_string(),
                call_id: f.call_id.to_string(),
                cseq: f.cseq.to_string(),
                status: 0,
            },
            to_tag,
        }
    }

    /// The bytes of a response with `extra` headers and an optional text body.
    pub fn build(
        &self,
        code: u16,
        reason: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<&str>,
    ) -> Vec<u8> {
        let body = body.map(|b| ("text/plain;charset=UTF-8", b.as_bytes()));
        self.build_body(code, reason, extra, body)
    }

    /// The bytes of a response with `extra` headers and an optional body of the
    /// given content type, copied byte for byte (an SDP answer).
    pub fn build_body(
        &self,
        code: u16,
        reason: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        let c = &self.ctx;
        let mut out = String::with_capacity(320 + c.vias.iter().map(String::len).sum::<usize>());
        let reason = reason.unwrap_or_else(|| reason_phrase(code));
        let _ = write!(out, "SIP/2.0 {code} {}\r\n", clean(reason));
        for v in &c.vias {
            let _ = write!(out, "Via: {}\r\n", clean(v));
        }
        let _ = write!(out, "From: {}\r\n", clean(&c.from));
        if code > 100 && !has_tag(&c.to) {
            let _ = write!(out, "To: {};tag={}\r\n", clean(&c.to), self.to_tag);
        } else {
            let _ = write!(out, "To: {}\r\n", clean(&c.to));
        }
        let _ = write!(
            out,
            "Call-ID: {}\r\nCSeq: {}\r\n",
            clean(&c.call_id),
            clean(&c.cseq)
        );
        for (name, value) in extra {
            let _ = write!(out, "{name}: {}\r\n", clean(value));
        }
        out.push_str("Server: Coventry\r\n");
        match body {
            Some((content_type, b)) => {
                let _ = write!(
                    out,
                    "Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
                    clean(content_type),
                    b.len()
                );
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(b);
                bytes
            }
            None => {
                out.push_str("Content-Length: 0\r\n\r\n");
                out.into_bytes()
            }
        }
    }
}

fn has_tag(to: &str) -> bool {
    crate::sip::parse::parse_name_addr(to).is_some_and(|n| n.tag().is_some())
}

fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b < 0x20 && b != b'\t') {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_response_with_received_and_tag() {
        let src = Dest::Udp("127.0.0.1:6000".parse().expect("addr"));
        let f = Fields {
            vias: vec![
                "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx;rport",
                "SIP/2.0/UDP 10.0.0.2",
            ],
            from: "<sip:21@h>;tag=a",
            to: "<sip:21@h>",
            call_id: "cid",
            cseq: "1 REGISTER",
            ..Fields::default()
        };
        let top = crate::sip::parse::parse_via(f.vias[0]);
        let r = Replier::new("k".into(), src, ("REGISTER", top), &f, "t1".into());
        assert_eq!(r.dest, src);
        let text = String::from_utf8(r.build(401, None, &[("WWW-Authenticate", "Digest x")], None))
            .expect("utf8");
        assert!(text.starts_with("SIP/2.0 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx;rport=6000;received=127.0.0.1\r\nVia: SIP/2.0/UDP 10.0.0.2\r\n"), "{text}");
        assert!(text.contains("To: <sip:21@h>;tag=t1\r\n"));
        assert!(text.contains("WWW-Authenticate: Digest x\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        let t = String::from_utf8(r.build(200, Some("OK"), &[], Some("hé"))).expect("utf8");
        assert!(t.ends_with("Content-Length: 3\r\n\r\nhé"));
    }
}
