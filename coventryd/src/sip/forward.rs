//! Rewriting a parsed message on its way through the switch: a new start line,
//! headers added on top (our Via, Record-Route), our own Via or Route taken off,
//! Max-Forwards decremented, credentials meant for us removed. The body is copied
//! byte for byte (SDP is never touched) and Content-Length recomputed.

use super::headers::header_name_value;
use rsip::prelude::UntypedHeader;
use rsip::Header;
use std::fmt::Write;

/// What to change.
#[derive(Debug, Default)]
pub struct Rewrite<'a> {
    /// `INVITE sip:21@10.0.0.5:5060 SIP/2.0` or `SIP/2.0 180 Ringing`.
    pub start_line: String,
    /// Headers written first, in order.
    pub prepend: &'a [(&'a str, &'a str)],
    /// Leave out the topmost Via (a response passing back through us).
    pub drop_top_via: bool,
    /// Write this instead of the topmost Via (a request with received/rport added).
    pub replace_top_via: Option<&'a str>,
    /// Leave out this many Route headers from the top (ours).
    pub drop_routes: usize,
    /// Leave out Proxy-Authorization (it was for us).
    pub drop_proxy_auth: bool,
    /// Decrement Max-Forwards (requests).
    pub decrement_max_forwards: bool,
    /// Leave out headers with these names (any case).
    pub drop_named: &'a [&'a str],
    /// Write this instead of the From header (the identity the switch presents).
    pub replace_from: Option<&'a str>,
}

/// The bytes of the rewritten message.
pub fn rewrite(headers: &rsip::Headers, body: &[u8], rw: &Rewrite<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(768);
    out.push_str(&rw.start_line);
    out.push_str("\r\n");
    for (name, value) in rw.prepend {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let mut via_dropped = !rw.drop_top_via && rw.replace_top_via.is_none();
    let mut routes_dropped = 0;
    for h in headers.iter() {
        match h {
            Header::Via(_) if !via_dropped => {
                via_dropped = true;
                if let Some(v) = rw.replace_top_via {
                    let _ = write!(out, "Via: {v}\r\n");
                }
                continue;
            }
            Header::Route(_) if routes_dropped < rw.drop_routes => {
                routes_dropped += 1;
                continue;
            }
            Header::ProxyAuthorization(_) if rw.drop_proxy_auth => continue,
            Header::From(_) if rw.replace_from.is_some() => {
                if let Some(from) = rw.replace_from {
                    let _ = write!(out, "From: {from}\r\n");
                }
                continue;
            }
            Header::ContentLength(_) => continue,
            Header::MaxForwards(v) if rw.decrement_max_forwards => {
                let n = v.value().trim().parse::<u32>().unwrap_or(70);
                let _ = write!(out, "Max-Forwards: {}\r\n", n.saturating_sub(1));
                continue;
            }
            _ => {}
        }
        let (name, value) = header_name_value(h);
        if rw.drop_named.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The start line of a response as received (code and reason kept).
pub fn status_line(resp: &rsip::Response) -> String {
    let code = resp.status_code.code();
    let reason = match &resp.status_code {
        rsip::StatusCode::Other(_, r) if !r.is_empty() && r != "Other" => r.as_str(),
        _ => super::reason::reason_phrase(code),
    };
    let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
    format!("SIP/2.0 {code} {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::framing::parse_datagram;

    #[test]
    fn forwards_body_exactly_and_rewrites_headers() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let raw = format!(
            "INVITE sip:35@sw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n\
             Route: <sip:sw;lr>\r\nRoute: <sip:other;lr>\r\nMax-Forwards: 70\r\n\
             From: <sip:21@sw>;tag=1\r\nTo: <sip:35@sw>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             Proxy-Authorization: Digest x=y\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let rsip::SipMessage::Request(req) = parse_datagram(raw.as_bytes(), 8192).expect("parse")
        else {
            panic!("request")
        };
        let out = rewrite(
            &req.headers,
            &req.body,
            &Rewrite {
                start_line: "INVITE sip:35@127.0.0.1:5080 SIP/2.0".into(),
                prepend: &[
                    ("Via", "SIP/2.0/UDP sw;branch=z9hG4bKb"),
                    ("Record-Route", "<sip:sw;lr>"),
                ],
                drop_routes: 1,
                drop_proxy_auth: true,
                decrement_max_forwards: true,
                ..Rewrite::default()
            },
        );
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with(
                "INVITE sip:35@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP sw;branch=z9hG4bKb\r\n\
             Record-Route: <sip:sw;lr>\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n\
             Route: <sip:other;lr>\r\nMax-Forwards: 69\r\n"
            ),
            "{text}"
        );
        assert!(!text.contains("Proxy-Authorization"));
        assert!(text.ends_with(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len())));
    }
}
