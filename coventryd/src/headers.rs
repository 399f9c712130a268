//! Field access on parsed requests: the few header values the switch reasons about,
//! read from rsip's (untyped) headers with small, total string functions.

use rsip::prelude::UntypedHeader;
use rsip::Header;

/// The pieces of a request the switch uses, borrowed from it.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// Via values, top first.
    pub vias: Vec<&'a str>,
    /// From value.
    pub from: &'a str,
    /// To value.
    pub to: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq value (`1 REGISTER`).
    pub cseq: &'a str,
    /// Contact values (one each after normalisation).
    pub contacts: Vec<&'a str>,
    /// Expires header, if any.
    pub expires: Option<&'a str>,
    /// Authorization values.
    pub authorization: Vec<&'a str>,
    /// Proxy-Authorization values.
    pub proxy_authorization: Vec<&'a str>,
    /// User-Agent.
    pub user_agent: &'a str,
    /// Content-Type.
    pub content_type: Option<&'a str>,
    /// Max-Forwards.
    pub max_forwards: Option<&'a str>,
    /// Route values, top first.
    pub routes: Vec<&'a str>,
    /// Record-Route entries, top first (comma-separated values split).
    pub record_routes: Vec<&'a str>,
    /// Event (SUBSCRIBE/NOTIFY).
    pub event: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// Collect the fields of `headers`.
    pub fn of(headers: &'a rsip::Headers) -> Fields<'a> {
        let mut f = Fields::default();
        for h in headers.iter() {
            match h {
                Header::Via(v) => f.vias.push(v.value()),
                Header::From(v) => f.from = v.value(),
                Header::To(v) => f.to = v.value(),
                Header::CallId(v) => f.call_id = v.value(),
                Header::CSeq(v) => f.cseq = v.value(),
                Header::Contact(v) => f.contacts.push(v.value()),
                Header::Expires(v) => f.expires = Some(v.value()),
                Header::Authorization(v) => f.authorization.push(v.value()),
                Header::ProxyAuthorization(v) => f.proxy_authorization.push(v.value()),
                Header::UserAgent(v) => f.user_agent = v.value(),
                Header::ContentType(v) => f.content_type = Some(v.value()),
                Header::MaxForwards(v) => f.max_forwards = Some(v.value()),
                Header::Route(v) => f.routes.push(v.value()),
                Header::RecordRoute(v) => crate::sip::wire::split_top_level(v.value(), |r| {
                    let r = r.trim();
                    if !r.is_empty() {
                        f.record_routes.push(r);
                    }
                }),
                Header::Event(v) => f.event = Some(v.value()),
                _ => {}
            }
        }
        f
    }

    /// CSeq number.
    pub fn cseq_number(&self) -> Option<u32> {
        self.cseq.split_whitespace().next()?.parse().ok()
    }
}
