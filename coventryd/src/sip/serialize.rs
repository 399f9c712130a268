//! Serialising rsip messages back to bytes without rsip's lossy `Display` (which
//! mangles non-UTF-8 bodies, writes `486 BusyHere`, never fixes `Content-Length`
//! and drops IPv6 brackets).

use std::fmt::Write as _;
use std::net::IpAddr;

use rsip::Header;

use super::{error::*, headers::*, parse::*, reason::*};

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
