//! Field access on parsed messages: header names and values read from rsip's
//! (untyped) headers, and the few request fields the switch reasons about, with
//! small, total string functions.

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::Header;

use super::normalize::expand_compact;

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
                Header::RecordRoute(v) => super::normalize::split_top_level(v.value(), |r| {
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

    /// The URI of the first Contact (empty without a readable one).
    pub fn contact_uri(&self) -> String {
        self.contacts
            .first()
            .and_then(|c| super::parse::parse_name_addr(c))
            .map(|n| n.uri)
            .unwrap_or_default()
    }
}
