//! Requests the switch writes itself rather than relays: CANCEL and ACK of its
//! branches, BYE of calls it ends, NOTIFY of its subscriptions, MESSAGE of its
//! deliveries, the click-to-dial legs. One layout for all of them: start line,
//! Via, the route set, Max-Forwards, From, To, Call-ID, CSeq, further headers,
//! the body's type and length, the body.

/// A request of the switch's own, ready to be written with [`Own::to_bytes`].
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    /// Method.
    pub method: &'a str,
    /// Request-URI.
    pub uri: &'a str,
    /// Our Via value.
    pub via: &'a str,
    /// Route set, one Route header each, in order.
    pub route: &'a [String],
    /// From value (with our tag).
    pub from: &'a str,
    /// To value.
    pub to: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number (the method follows it).
    pub cseq: u32,
    /// Further headers after CSeq (Contact, Event, Reason...), in order.
    pub headers: &'a [(&'a str, &'a str)],
    /// Content type and body; none: an empty body.
    pub body: Option<(&'a str, &'a [u8])>,
}

impl<'a> Own<'a> {
    /// A request without route set, further headers or body.
    pub fn new(method: &'a str, uri: &'a str, via: &'a str, call_id: &'a str) -> Own<'a> {
        Own {
            method,
            uri,
            via,
            route: &[],
            from: "",
            to: "",
            call_id,
            cseq: 1,
            headers: &[],
            body: None,
        }
    }

    /// The request as bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        use std::fmt::Write;
        let body = self.body.map_or(&[][..], |(_, b)| b);
        let mut head = String::with_capacity(320 + 64 * self.route.len());
        let Own {
            method,
            uri,
            via,
            from,
            to,
            call_id,
            cseq,
            ..
        } = self;
        let _ = write!(head, "{method} {uri} SIP/2.0\r\nVia: {via}\r\n");
        for r in self.route {
            let _ = write!(head, "Route: {r}\r\n");
        }
        let _ = write!(
            head,
            "Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n"
        );
        for (name, value) in self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if let Some((ctype, _)) = self.body {
            let _ = write!(head, "Content-Type: {ctype}\r\n");
        }
        let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bye_in_a_dialog_with_a_route_set() {
        let route = vec![
            "<sip:10.0.0.1;lr>".to_string(),
            "<sip:10.0.0.2;lr>".to_string(),
        ];
        let bye = Own {
            route: &route,
            from: "<sip:21@h>;tag=a",
            to: "<sip:22@h>;tag=b",
            cseq: 3,
            ..Own::new(
                "BYE",
                "sip:22@10.0.0.9",
                "SIP/2.0/UDP h;branch=z9hG4bKx",
                "c1",
            )
        };
        assert_eq!(
            String::from_utf8(bye.to_bytes()).expect("utf-8"),
            "BYE sip:22@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\
             Route: <sip:10.0.0.1;lr>\r\nRoute: <sip:10.0.0.2;lr>\r\nMax-Forwards: 70\r\n\
             From: <sip:21@h>;tag=a\r\nTo: <sip:22@h>;tag=b\r\nCall-ID: c1\r\nCSeq: 3 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn headers_then_the_body_with_its_type_and_length() {
        let notify = Own {
            from: "f",
            to: "t",
            headers: &[("Event", "dialog"), ("Subscription-State", "active")],
            body: Some(("text/plain", "é".as_bytes())),
            ..Own::new("NOTIFY", "sip:x@h", "v", "c")
        };
        let text = String::from_utf8(notify.to_bytes()).expect("utf-8");
        assert!(text.ends_with(
            "CSeq: 1 NOTIFY\r\nEvent: dialog\r\nSubscription-State: active\r\n\
             Content-Type: text/plain\r\nContent-Length: 2\r\n\r\né"
        ));
    }
}
