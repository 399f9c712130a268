//! A simulated switch for core tests: the real `Switch` with a clock the test
//! moves, phones that are just ports, and every datagram the switch sends.
#![allow(dead_code)]

use coventry_shared::event::{CallOutcome, CallPhase, Event};
use coventryd::config::Config;
use coventryd::sip::digest::answer_challenge;
use coventryd::switch::registrar::Registrar;
use coventryd::switch::Switch;
use std::net::SocketAddr;
use std::path::Path;

pub const SWITCH: &str = "127.0.0.1:5060";
pub const CONF: &str = "[server]\nlisten = 127.0.0.1:5060\nrealm = test\n\
                    [calls]\nring = 2\nnoanswer = 3\n\
                    [21]\nsecret = pw21\n[35]\nsecret = pw35\nlines = 1\n[36]\nsecret = pw36\n";

pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

pub struct Lab {
    pub sw: Switch,
    pub now: u64,
    pub events: Vec<Event>,
    /// Everything sent over TCP (to upstream peers), in order.
    pub tcp: Vec<(SocketAddr, String)>,
    /// Every call record written, with its book, in order.
    pub call_records: Vec<(
        coventry_shared::record::Book,
        coventry_shared::record::CallRecord,
    )>,
    /// TCP connections the core proved to be the upstream peer, in order.
    pub proven: Vec<SocketAddr>,
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

pub fn status(msg: &str) -> u16 {
    msg.strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A response to `req` with `code`, as the phone that received it would send.
pub fn respond(req: &str, code: u16, to_tag: &str, contact_port: u16, body: &str) -> String {
    let mut out = format!("SIP/2.0 {code} X\r\n");
    for l in req.split("\r\n") {
        let name = l.split(':').next().unwrap_or("");
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" | "Record-Route" => {
                out.push_str(&format!("{l}\r\n"))
            }
            "To" if !l.contains("tag=") && code > 100 => {
                out.push_str(&format!("{l};tag={to_tag}\r\n"))
            }
            "To" => out.push_str(&format!("{l}\r\n")),
            _ => {}
        }
    }
    out.push_str(&format!(
        "Contact: <sip:x@127.0.0.1:{contact_port}>\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    out
}

/// An INVITE as the upstream (Kamailio on 127.0.0.1:5070) would send it over TCP
/// from outside caller `from`, to `to`.
pub fn inbound_invite_from(from: &str, to: &str, call_id: &str) -> String {
    format!(
        "INVITE sip:{to}@{SWITCH};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKk{call_id}\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bKo{call_id}\r\n\
         Record-Route: <sip:127.0.0.1:5070;transport=tcp;lr>, <sip:127.0.0.1:5070;lr>\r\n\
         Max-Forwards: 69\r\nFrom: <sip:{from}@provider>;tag=out\r\nTo: <sip:{to}@provider>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from}@127.0.0.1:7000>\r\n\
         P-Asserted-Identity: <sip:{from}@provider>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

impl Lab {
    pub fn new() -> Lab {
        Lab::with_config(CONF)
    }

    pub fn with_config(conf: &str) -> Lab {
        Lab::listening(conf, SWITCH.parse().expect("addr"))
    }

    /// The same lab, its switch asking `lookup` which local address reaches a
    /// destination (the kernel's routing table, simulated).
    pub fn routed(self, lookup: coventryd::switch::routes::RouteLookup) -> Lab {
        Lab {
            sw: self.sw.with_route_lookup(lookup),
            ..self
        }
    }

    /// A lab whose switch listens on `local` (0.0.0.0:5060, say).
    pub fn listening(conf: &str, local: SocketAddr) -> Lab {
        let config = Config::parse(Path::new("t.conf"), conf).expect("config");
        let sw = Switch::new(config, local, Registrar::new());
        Lab {
            sw,
            now: 1_000_000,
            events: Vec::new(),
            tcp: Vec::new(),
            call_records: Vec::new(),
            proven: Vec::new(),
        }
    }

    /// Feed a datagram; return what the switch sent, as (destination, text).
    pub fn feed(&mut self, from: u16, msg: &str) -> Vec<(SocketAddr, String)> {
        self.feed_at(addr(from), msg)
    }

    /// Feed a datagram from any address (a stranger on 127.0.0.2).
    pub fn feed_at(&mut self, from: SocketAddr, msg: &str) -> Vec<(SocketAddr, String)> {
        self.sw.on_datagram(self.now, from, msg.as_bytes());
        self.collect()
    }

    /// Feed a message framed from the TCP connection whose remote end is `peer`.
    pub fn feed_tcp(&mut self, peer: SocketAddr, msg: &str) -> Vec<(SocketAddr, String)> {
        let parsed =
            coventryd::sip::framing::parse_datagram(msg.as_bytes(), 65_535).expect("parse");
        self.sw.on_stream(self.now, peer, parsed);
        self.collect()
    }

    pub fn collect(&mut self) -> Vec<(SocketAddr, String)> {
        let out = self.sw.take_out();
        self.events.extend(out.events);
        self.call_records.extend(out.records);
        self.proven.extend(out.proven);
        let mut sent = Vec::new();
        for (dest, bytes) in out.sends {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if dest.is_tcp() {
                self.tcp.push((dest.addr(), text.clone()));
            }
            sent.push((dest.addr(), text));
        }
        sent
    }

    pub fn advance(&mut self, ms: u64) -> Vec<(SocketAddr, String)> {
        let mut sent = Vec::new();
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 100).min(end);
            self.sw.on_tick(self.now);
            sent.extend(self.collect());
        }
        sent
    }

    /// Send `req` (without credentials); answer the challenge; return the sends
    /// that follow the authenticated request.
    pub fn authed(
        &mut self,
        from: u16,
        user: &str,
        method: &str,
        build: impl Fn(&str, u32) -> String,
    ) -> Vec<(SocketAddr, String)> {
        self.authed_at(addr(from), user, method, build)
    }

    /// [`Lab::authed`] from any address.
    pub fn authed_at(
        &mut self,
        from: SocketAddr,
        user: &str,
        method: &str,
        build: impl Fn(&str, u32) -> String,
    ) -> Vec<(SocketAddr, String)> {
        let first = self.feed_at(from, &build("", 1));
        let challenge = first
            .iter()
            .find_map(|(_, m)| header(m, "Proxy-Authenticate").or(header(m, "WWW-Authenticate")))
            .unwrap_or_else(|| panic!("no challenge in {first:?}"))
            .to_string();
        let hdr = if method == "REGISTER" {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        let value = answer_challenge(
            &challenge,
            method,
            &format!("sip:{SWITCH}"),
            user,
            &format!("pw{user}"),
            "c0ffee",
            1,
        )
        .expect("answer");
        self.feed_at(from, &build(&format!("{hdr}: {value}\r\n"), 2))
    }

    pub fn register(&mut self, user: &str, port: u16) {
        let sent = self.authed(port, user, "REGISTER", |auth, cseq| {
            format!(
                "REGISTER sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKr{cseq}{port}\r\n\
                 From: <sip:{user}@test>;tag=r{port}\r\nTo: <sip:{user}@test>\r\nCall-ID: reg{port}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        });
        assert_eq!(status(&sent[0].1), 200, "{sent:?}");
    }

    /// 21 (port 6021) calls `to`; returns the sends after the authenticated INVITE.
    pub fn invite(&mut self, to: &str, call_id: &str) -> Vec<(SocketAddr, String)> {
        let build = |auth: &str, cseq: u32| {
            format!(
                "INVITE sip:{to}@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6021;branch=z9hG4bKi{cseq}{call_id}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:21@test>;tag=caller\r\nTo: <sip:{to}@test>\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} INVITE\r\nContact: <sip:21@127.0.0.1:6021>\r\n{auth}Content-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{SDP}",
                SDP.len()
            )
        };
        self.authed(6021, "21", "INVITE", build)
    }

    pub fn records(&self) -> Vec<(CallOutcome, u16, u64, u64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::CallRecord {
                    outcome,
                    status,
                    start_ms,
                    answer_ms,
                    ..
                } => Some((*outcome, *status, *start_ms, *answer_ms)),
                _ => None,
            })
            .collect()
    }

    pub fn phases(&self) -> Vec<(CallPhase, u8)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::CallState { phase, rings, .. } => Some((*phase, *rings)),
                _ => None,
            })
            .collect()
    }
}

pub fn to(sent: &[(SocketAddr, String)], port: u16) -> Vec<&str> {
    sent.iter()
        .filter(|(a, _)| a.port() == port)
        .map(|(_, m)| m.as_str())
        .collect()
}

impl Lab {
    /// A control line through the core; returns the sends and the result text.
    pub fn command(
        &mut self,
        line: &str,
    ) -> (Sent, Option<(coventry_shared::event::ResultCode, String)>) {
        let before = self.events.len();
        self.sw.on_control(
            self.now,
            coventryd::switch::Line::Complete(line.as_bytes().to_vec()),
        );
        let sent = self.collect();
        let result = self.events[before..].iter().find_map(|e| match e {
            Event::CommandResult { code, text, .. } => Some((*code, text.clone())),
            _ => None,
        });
        (sent, result)
    }

    /// `from` (registered on port 6000+from) calls `to`; returns the sends after
    /// the authenticated INVITE.
    pub fn call_from(&mut self, from: &str, to: &str, call_id: &str) -> Vec<(SocketAddr, String)> {
        let port: u16 = 6000 + from.parse::<u16>().expect("ext");
        let build = |auth: &str, cseq: u32| {
            format!(
                "INVITE sip:{to}@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKi{cseq}{call_id}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{from}@test>;tag=caller\r\nTo: <sip:{to}@test>\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} INVITE\r\nContact: <sip:{from}@127.0.0.1:{port}>\r\n{auth}Content-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{SDP}",
                SDP.len()
            )
        };
        self.authed(port, from, "INVITE", build)
    }

    /// `from` sends a text to `to`; returns the sends after the authenticated MESSAGE.
    pub fn text(
        &mut self,
        from: &str,
        to: &str,
        text: &str,
        call_id: &str,
    ) -> Vec<(SocketAddr, String)> {
        let port: u16 = 6000 + from.parse::<u16>().expect("ext");
        let build = |auth: &str, cseq: u32| {
            format!(
                "MESSAGE sip:{to}@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKm{cseq}{call_id}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{from}@test>;tag=m\r\nTo: <sip:{to}@test>\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} MESSAGE\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
        };
        self.authed(port, from, "MESSAGE", build)
    }
}

/// What the switch sent: destination and text of each datagram.
pub type Sent = Vec<(SocketAddr, String)>;

/// The text bodies of the MESSAGEs in `sent` to `port`.
pub fn texts(sent: &[(SocketAddr, String)], port: u16) -> Vec<String> {
    to(sent, port)
        .into_iter()
        .filter(|m| m.starts_with("MESSAGE "))
        .map(|m| m.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
        .collect()
}
