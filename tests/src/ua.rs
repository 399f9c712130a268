//! An in-test SIP user agent for what sipp cannot express: SHA-256 digest (sipp 3.6
//! only answers MD5 and only the first challenge), replayed nonces, raw bytes,
//! several contacts per extension, phones that answer with a chosen status.
//!
//! It runs on a blocking `std::net::UdpSocket`. A background thread reads every
//! datagram and runs the phone's retransmissions as RFC 3261 asks ([`timers`]:
//! requests until answered, the ACK of a retransmitted 2xx, an INVITE's final
//! response until its ACK), whatever the test is doing meanwhile. Responses go to
//! the foreground (the transaction in progress), requests
//! (MESSAGE, BYE, INFO... from the switch) are answered at once with the status set
//! by [`Ua::set_answer`] and queued for the test to inspect; INVITEs are queued
//! unanswered for the test to answer ([`Ua::respond`]), a CANCEL gets 200 and its
//! INVITE 487 (calls: [`dialog`]). Incoming messages are
//! normalised (compact header names expanded, folded lines unfolded, the body cut to
//! Content-Length) and then parsed with `rsip`.

pub mod dialog;
pub mod timers;

use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default bound for one client transaction (final response).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(8);

/// A digest algorithm (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// SHA-256.
    Sha256,
    /// MD5.
    Md5,
}

impl Algo {
    /// The `algorithm=` token.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha256 => "SHA-256",
            Algo::Md5 => "MD5",
        }
    }

    /// Parse an `algorithm=` token (absent means MD5, RFC 2617).
    pub fn from_name(s: &str) -> Option<Algo> {
        match s.to_ascii_uppercase().as_str() {
            "SHA-256" => Some(Algo::Sha256),
            "MD5" | "" => Some(Algo::Md5),
            _ => None,
        }
    }

    /// Lowercase hex hash of `data`.
    pub fn hex(self, data: &str) -> String {
        match self {
            Algo::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
            Algo::Md5 => hex::encode(Md5::digest(data.as_bytes())),
        }
    }
}

/// The digest `response` (RFC 7616 / RFC 8760). `qop` is `Some((qop, nc, cnonce))`
/// for `qop=auth`, `None` for the RFC 2069 form.
#[allow(clippy::too_many_arguments)]
pub fn digest_response(
    algo: Algo,
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha1 = algo.hex(&format!("{user}:{realm}:{password}"));
    let ha2 = algo.hex(&format!("{method}:{uri}"));
    match qop {
        Some((qop, nc, cnonce)) => algo.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")),
        None => algo.hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Split `k=v, k="v, with commas"` parameter lists (auth headers).
pub fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        let mut val = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut bytes = Vec::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    bytes.push(b[i]);
                    i += 1;
                }
                i += 1;
                val = String::from_utf8_lossy(&bytes).into_owned();
            } else {
                let vs = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                val = s[vs..i].trim().to_string();
            }
        }
        if !key.is_empty() {
            out.push((key, val));
        }
    }
    out
}

/// A digest challenge (`WWW-Authenticate` / `Proxy-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Realm.
    pub realm: String,
    /// Nonce.
    pub nonce: String,
    /// Algorithm (MD5 when absent).
    pub algorithm: Algo,
    /// The raw `algorithm=` token.
    pub algorithm_token: String,
    /// Offered qop values.
    pub qop: Vec<String>,
    /// Opaque, echoed back.
    pub opaque: Option<String>,
    /// `stale=true`.
    pub stale: bool,
}

/// Source of unique cnonces, branches, tags and Call-IDs.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{:x}{:x}{n:x}", std::process::id(), t)
}

impl Challenge {
    /// Parse a header value `Digest realm="..", nonce="..", ...`.
    pub fn parse(value: &str) -> Option<Challenge> {
        let v = value.trim();
        let (scheme, rest) = v.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let params = parse_params(rest);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let algorithm_token = get("algorithm").unwrap_or_default();
        Some(Challenge {
            realm: get("realm")?,
            nonce: get("nonce")?,
            algorithm: Algo::from_name(&algorithm_token)?,
            algorithm_token,
            qop: get("qop")
                .map(|q| q.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            opaque: get("opaque"),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value answering this challenge.
    pub fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let nc = format!("{nc:08x}");
        let auth_qop = self.qop.iter().any(|q| q.eq_ignore_ascii_case("auth"));
        let response = digest_response(
            self.algorithm,
            user,
            &self.realm,
            password,
            method,
            uri,
            &self.nonce,
            auth_qop.then_some(("auth", nc.as_str(), cnonce)),
        );
        let mut s = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.name()
        );
        if auth_qop {
            let _ = write!(s, ", qop=auth, nc={nc}, cnonce=\"{cnonce}\"");
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque=\"{o}\"");
        }
        s
    }
}

const COMPACT: &[(&str, &str)] = &[
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
    ("o", "Event"),
    ("u", "Allow-Events"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
];

/// A normalised message: start line, headers (full names, in order), body.
pub type Normalised = (String, Vec<(String, String)>, Vec<u8>);

/// Normalise a datagram: expand compact header names, unfold folded lines, cut the
/// body to Content-Length. Returns the start line, the headers and the body.
pub fn normalise(raw: &[u8]) -> Result<Normalised, String> {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match find(raw, b"\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => return Err("no end of headers (blank line)".into()),
        },
    };
    let head = std::str::from_utf8(head).map_err(|_| "headers are not UTF-8".to_string())?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("").trim().to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => return Err("continuation line before any header".into()),
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line without colon: {line:?}"))?;
        let name = name.trim();
        let name = COMPACT
            .iter()
            .find(|(c, _)| name.eq_ignore_ascii_case(c))
            .map(|(_, full)| (*full).to_string())
            .unwrap_or_else(|| name.to_string());
        headers.push((name, value.trim().to_string()));
    }
    let clen = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .map(|(_, v)| {
            v.parse::<usize>()
                .map_err(|_| format!("bad Content-Length {v:?}"))
        })
        .transpose()?;
    let body = match clen {
        Some(n) if n <= body.len() => body[..n].to_vec(),
        Some(n) => return Err(format!("Content-Length {n} but {} body bytes", body.len())),
        None => body.to_vec(),
    };
    Ok((start, headers, body))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Split a comma-joined header value at commas outside quotes and angle brackets.
pub fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut angle) = (false, false);
    for ch in v.chars() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A received SIP message.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The datagram as received.
    pub raw: Vec<u8>,
    /// Where it came from.
    pub src: SocketAddr,
    /// The rsip parse of the normalised message.
    pub sip: rsip::SipMessage,
    /// Headers in order, compact names expanded.
    pub headers: Vec<(String, String)>,
    /// The body (cut to Content-Length).
    pub body: Vec<u8>,
}

impl Msg {
    /// Parse a datagram.
    pub fn parse(raw: &[u8], src: SocketAddr) -> Result<Msg, String> {
        let (start, headers, body) = normalise(raw)?;
        let mut text = start.clone().into_bytes();
        text.extend_from_slice(b"\r\n");
        for (n, v) in &headers {
            text.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        text.extend_from_slice(b"\r\n");
        text.extend_from_slice(&body);
        let sip = rsip::SipMessage::try_from(text.as_slice())
            .map_err(|e| format!("rsip cannot parse {start:?}: {e}"))?;
        Ok(Msg {
            raw: raw.to_vec(),
            src,
            sip,
            headers,
            body,
        })
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.sip {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            rsip::SipMessage::Request(_) => None,
        }
    }

    /// Method of a request.
    pub fn method(&self) -> Option<String> {
        match &self.sip {
            rsip::SipMessage::Request(r) => Some(r.method.to_string()),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// Request-URI of a request.
    pub fn uri(&self) -> Option<String> {
        match &self.sip {
            rsip::SipMessage::Request(r) => Some(r.uri.to_string()),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every value of a list header (`Contact`, `Via`), comma-joined ones split.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.header_all(name)
            .into_iter()
            .flat_map(split_list)
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("CSeq")?;
        let (n, m) = v.trim().split_once(char::is_whitespace)?;
        Some((n.parse().ok()?, m.trim().to_string()))
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// Branch of the top Via.
    pub fn branch(&self) -> Option<String> {
        let via = self.list("Via").into_iter().next()?;
        via.split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
            .map(|(_, v)| v.trim().to_string())
    }

    /// Digest challenges in `WWW-Authenticate` (401) or `Proxy-Authenticate` (407).
    pub fn challenges(&self) -> Vec<Challenge> {
        let name = if self.status() == Some(407) {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        self.header_all(name)
            .into_iter()
            .filter_map(Challenge::parse)
            .collect()
    }

    /// `expires=` of the Contact whose URI contains `needle`.
    pub fn contact_expires(&self, needle: &str) -> Option<u32> {
        self.list("Contact")
            .into_iter()
            .find(|c| c.contains(needle))
            .and_then(|c| {
                let params = match c.rfind('>') {
                    Some(i) => c[i + 1..].to_string(),
                    None => c
                        .split_once(';')
                        .map(|(_, p)| format!(";{p}"))
                        .unwrap_or_default(),
                };
                params
                    .split(';')
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("expires"))
                    .and_then(|(_, v)| v.trim().parse().ok())
            })
    }

    /// A one-line summary for failure messages.
    pub fn summary(&self) -> String {
        let first = String::from_utf8_lossy(&self.raw)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        format!("{first} (from {})", self.src)
    }

    /// The whole message as text, for failure messages.
    pub fn dump(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// Reason phrase for a status the UA answers with.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Status",
    }
}

/// The To tag this UA puts on its responses to `req` (derived from the top Via
/// branch, so every response of one transaction carries the same tag).
pub fn uas_tag(req: &Msg) -> String {
    let h = req
        .branch()
        .unwrap_or_default()
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("uas{h:x}")
}

/// The response a UAS sends to `req`: Via, From, To (tagged), Call-ID and CSeq
/// copied; no body.
pub fn response_to(req: &Msg, status: u16) -> Vec<u8> {
    response_with(req, status, &[], None)
}

/// A response to `req` with `extra` header lines (without CRLF) and an optional
/// body `(content type, bytes)`. Via, From, To (tagged unless 100), Call-ID and
/// CSeq are copied, and Record-Route too for responses to INVITE (a UAS copies it
/// into its 18x/2xx, RFC 3261 12.1.1).
pub fn response_with(
    req: &Msg,
    status: u16,
    extra: &[String],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {status} {}\r\n", reason(status));
    let invite = req.method().as_deref() == Some("INVITE");
    for (n, v) in &req.headers {
        if n.eq_ignore_ascii_case("Via")
            || n.eq_ignore_ascii_case("From")
            || n.eq_ignore_ascii_case("Call-ID")
            || n.eq_ignore_ascii_case("CSeq")
            || (invite && status > 100 && n.eq_ignore_ascii_case("Record-Route"))
        {
            let _ = write!(s, "{n}: {v}\r\n");
        } else if n.eq_ignore_ascii_case("To") {
            if v.to_ascii_lowercase().contains(";tag=") || status == 100 {
                let _ = write!(s, "To: {v}\r\n");
            } else {
                let _ = write!(s, "To: {v};tag={}\r\n", uas_tag(req));
            }
        }
    }
    for l in extra {
        let _ = write!(s, "{l}\r\n");
    }
    s.push_str("Server: coventry-tests-ua\r\n");
    match body {
        Some((ctype, b)) => {
            let _ = write!(
                s,
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            );
            let mut v = s.into_bytes();
            v.extend_from_slice(b);
            v
        }
        None => {
            s.push_str("Content-Length: 0\r\n\r\n");
            s.into_bytes()
        }
    }
}

/// An INVITE server transaction of this UA (the callee side of a call).
#[derive(Debug, Clone)]
pub struct InviteTxn {
    /// The INVITE as received (first copy).
    pub invite: Msg,
    /// The last response sent (repeated when the INVITE is retransmitted).
    pub last: Option<Vec<u8>>,
    /// Status of the final response, once sent.
    pub final_status: Option<u16>,
}

/// INVITE server transactions by `branch|Call-ID`, shared with the reader thread.
pub type InviteTxns = Arc<Mutex<HashMap<String, InviteTxn>>>;

/// The key of a request's transaction in [`InviteTxns`].
pub fn txn_key(m: &Msg) -> String {
    format!(
        "{}|{}",
        m.branch().unwrap_or_default(),
        m.call_id().unwrap_or("")
    )
}

/// Datagrams the UA's reader could not parse.
pub type Unparsed = Arc<Mutex<Vec<(Vec<u8>, String)>>>;

/// A SIP phone for extension `user` on the switch at `server`.
pub struct Ua {
    sock: UdpSocket,
    local: SocketAddr,
    /// The switch.
    pub server: SocketAddr,
    /// Extension number (digest user name).
    pub user: String,
    /// Digest secret.
    pub password: String,
    /// Domain used in URIs (default: the switch's address).
    pub domain: String,
    /// Preferred digest algorithm.
    pub algo: Algo,
    /// User-Agent header.
    pub user_agent: String,
    /// Bound for one client transaction.
    pub timeout: Duration,
    reg_call_id: String,
    cseq: u32,
    tag: String,
    responses: Receiver<Msg>,
    requests: Receiver<Msg>,
    answer: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    unparsed: Unparsed,
    invites: InviteTxns,
    counts: Counts,
    timers: Arc<Mutex<timers::Timers>>,
    req_stash: Mutex<VecDeque<Msg>>,
    resp_stash: Mutex<VecDeque<Msg>>,
    /// Authorization header (name, value) sent last.
    pub last_auth: Option<(String, String)>,
}

/// What a REGISTER or MESSAGE exchange looked like.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The challenge (401/407), if one came.
    pub challenge: Option<Msg>,
    /// The final response to the last request sent (the authenticated one after a
    /// challenge). `None`: no final response in time.
    pub response: Option<Msg>,
    /// The last request sent, as bytes.
    pub request: Vec<u8>,
}

impl Exchange {
    /// Status of the final response (0 when none came).
    pub fn status(&self) -> u16 {
        self.response.as_ref().and_then(Msg::status).unwrap_or(0)
    }

    /// The final response; panics with the request when none came.
    pub fn response(&self) -> &Msg {
        match &self.response {
            Some(r) => r,
            None => panic!(
                "no final response to:\n{}",
                String::from_utf8_lossy(&self.request)
            ),
        }
    }
}

impl Ua {
    /// A phone for extension `user` with `password`, bound to 127.0.0.1 on a port
    /// the kernel picks. It answers requests with 200 until told otherwise.
    pub fn new(server: SocketAddr, user: &str, password: &str) -> Ua {
        let sock = match UdpSocket::bind("127.0.0.1:0") {
            Ok(s) => s,
            Err(e) => panic!("UA bind: {e}"),
        };
        Ua::with_socket(sock, server, user, password)
    }

    /// A phone on the given socket.
    pub fn with_socket(sock: UdpSocket, server: SocketAddr, user: &str, password: &str) -> Ua {
        let local = match sock.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("UA local_addr: {e}"),
        };
        let (resp_tx, responses) = mpsc::channel();
        let (req_tx, requests) = mpsc::channel();
        let answer = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let unparsed: Unparsed = Arc::default();
        let invites: InviteTxns = Arc::default();
        let counts: Counts = Arc::default();
        let timers: Arc<Mutex<timers::Timers>> = Arc::default();
        let reader = match sock.try_clone() {
            Ok(s) => s,
            Err(e) => panic!("UA socket clone: {e}"),
        };
        let thread = {
            let ctx = ReaderCtx {
                responses: resp_tx,
                requests: req_tx,
                answer: answer.clone(),
                stop: stop.clone(),
                unparsed: unparsed.clone(),
                invites: invites.clone(),
                counts: counts.clone(),
                timers: timers.clone(),
            };
            std::thread::spawn(move || reader_loop(reader, ctx))
        };
        Ua {
            sock,
            local,
            server,
            user: user.to_string(),
            password: password.to_string(),
            domain: server.to_string(),
            algo: Algo::Sha256,
            user_agent: format!("coventry-tests/{user}"),
            timeout: TRANSACTION_TIMEOUT,
            reg_call_id: unique("reg-"),
            cseq: 0,
            tag: unique("t"),
            responses,
            requests,
            answer,
            stop,
            thread: Some(thread),
            unparsed,
            invites,
            counts,
            timers,
            req_stash: Mutex::new(VecDeque::new()),
            resp_stash: Mutex::new(VecDeque::new()),
            last_auth: None,
        }
    }

    /// A phone for extension `ext` with the harness's secret for it.
    pub fn ext(server: SocketAddr, ext: u16) -> Ua {
        Ua::new(server, &ext.to_string(), &crate::secret(ext))
    }

    /// Use `algo` for digest answers.
    pub fn with_algo(mut self, algo: Algo) -> Ua {
        self.algo = algo;
        self
    }

    /// The UA's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `sip:USER@127.0.0.1:PORT`.
    pub fn contact_uri(&self) -> String {
        format!("sip:{}@{}", self.user, self.local)
    }

    /// `sip:USER@DOMAIN`.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    /// Status to answer incoming requests with (0: do not answer at all).
    pub fn set_answer(&self, status: u16) {
        self.answer.store(status, Ordering::Relaxed);
    }

    /// Datagrams the UA received but could not parse.
    pub fn unparsed(&self) -> Vec<(Vec<u8>, String)> {
        self.unparsed.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// How many times the request `m` (same method, branch and Call-ID) arrived,
    /// retransmissions included (the queue holds each request once).
    pub fn times_received(&self, m: &Msg) -> u32 {
        lock(&self.counts).get(&count_key(m)).copied().unwrap_or(0)
    }

    /// Wait until the request `m` arrived at least `n` times; whether it did.
    pub fn wait_received(&self, m: &Msg, n: u32, timeout: Duration) -> bool {
        crate::poll_until(timeout, || (self.times_received(m) >= n).then_some(())).is_some()
    }

    /// Send raw bytes to the switch.
    pub fn send_raw(&self, bytes: &[u8]) {
        if let Err(e) = self.sock.send_to(bytes, self.server) {
            panic!("UA send ({} bytes): {e}", bytes.len());
        }
    }

    /// The next response (any) within `timeout`.
    pub fn recv_response(&self, timeout: Duration) -> Option<Msg> {
        if let Some(m) = lock(&self.resp_stash).pop_front() {
            return Some(m);
        }
        self.responses.recv_timeout(timeout).ok()
    }

    /// Discard queued responses.
    pub fn drain_responses(&self) {
        lock(&self.resp_stash).clear();
        while self.responses.try_recv().is_ok() {}
    }

    /// The next request the switch sent (already answered), within `timeout`.
    pub fn recv_request(&self, timeout: Duration) -> Option<Msg> {
        if let Some(m) = lock(&self.req_stash).pop_front() {
            return Some(m);
        }
        self.requests.recv_timeout(timeout).ok()
    }

    /// The next request, or panic naming `what`.
    pub fn expect_request(&self, what: &str, timeout: Duration) -> Msg {
        match self.recv_request(timeout) {
            Some(m) => m,
            None => panic!(
                "{} ({}): no request within {timeout:?} ({what}); unparsed datagrams: {:?}",
                self.user,
                self.local,
                self.unparsed()
            ),
        }
    }

    /// Next CSeq number.
    pub fn next_cseq(&mut self) -> u32 {
        self.cseq += 1;
        self.cseq
    }

    /// Build a request as bytes. `extra` are whole header lines without CRLF. The
    /// body is sent as given (it may be invalid UTF-8).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &self,
        method: &str,
        ruri: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
        extra: &[String],
        body: &[u8],
    ) -> Vec<u8> {
        use rsip::headers::UntypedHeader;
        let mut headers: Vec<rsip::Header> = vec![
            rsip::headers::Via::new(format!(
                "SIP/2.0/UDP {};branch={};rport",
                self.local,
                unique("z9hG4bK")
            ))
            .into(),
            rsip::headers::MaxForwards::new("70").into(),
            rsip::headers::From::new(format!("<{}>;tag={}", self.aor(), self.tag)).into(),
            rsip::headers::To::new(format!("<{to}>")).into(),
            rsip::headers::CallId::new(call_id).into(),
            rsip::headers::CSeq::new(format!("{cseq} {method}")).into(),
            rsip::headers::UserAgent::new(self.user_agent.clone()).into(),
        ];
        for line in extra {
            if let Some((n, v)) = line.split_once(':') {
                headers.push(rsip::Header::Other(n.trim().into(), v.trim().into()));
            }
        }
        headers.push(rsip::headers::ContentLength::new(body.len().to_string()).into());
        let headers: rsip::Headers = headers.into();
        let mut out = format!("{method} {ruri} SIP/2.0\r\n{headers}\r\n").into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// Send `req` and wait for its final response (same CSeq and Call-ID); the
    /// reader thread retransmits it (Timer E) until one comes or `self.timeout`.
    pub fn transact(&self, req: &[u8]) -> Option<Msg> {
        let key = Msg::parse(req, self.local)
            .ok()
            .and_then(|m| Some((m.cseq()?, m.call_id()?.to_string())));
        self.drain_responses();
        self.send_raw(req);
        let txn = self.retransmit(req);
        let deadline = Instant::now() + self.timeout;
        let mut got = None;
        // Other responses that come meanwhile are dropped, as they always were.
        while let Ok(m) = self
            .responses
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let matches = match &key {
                Some((cseq, cid)) => {
                    m.cseq().as_ref() == Some(cseq) && m.call_id() == Some(cid.as_str())
                }
                None => true,
            };
            if matches && m.status().is_some_and(|s| s >= 200) {
                got = Some(m);
                break;
            }
        }
        self.stop_retransmitting(txn);
        got
    }

    /// Have the reader thread retransmit the request `req` (already sent once)
    /// until its transaction ends; the key to stop it early with.
    pub fn retransmit(&self, req: &[u8]) -> Option<timers::TxnKey> {
        let m = Msg::parse(req, self.local).ok()?;
        let (cseq, method) = m.cseq()?;
        let key = (m.call_id()?.to_string(), cseq, method);
        lock(&self.timers).client(key.clone(), req.to_vec(), self.server, Instant::now());
        Some(key)
    }

    /// Stop retransmitting a request (the test stopped waiting for its answer).
    pub fn stop_retransmitting(&self, key: Option<timers::TxnKey>) {
        if let Some(k) = key {
            lock(&self.timers).forget_client(&k);
        }
    }

    /// The Request-URI for REGISTER: `sip:DOMAIN`.
    pub fn registrar_uri(&self) -> String {
        format!("sip:{}", self.domain)
    }

    /// A REGISTER request (bytes, CSeq). `contact`: a whole Contact value (`None`:
    /// this UA's own `<sip:USER@addr>`); `expires`: the Expires header, if any;
    /// `auth`: an `(header name, value)` credential.
    pub fn register_request(
        &mut self,
        expires: Option<u32>,
        contact: Option<&str>,
        auth: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let cseq = self.next_cseq();
        let mut extra = vec![format!(
            "Contact: {}",
            contact
                .map(str::to_string)
                .unwrap_or_else(|| format!("<{}>", self.contact_uri()))
        )];
        if let Some(e) = expires {
            extra.push(format!("Expires: {e}"));
        }
        if let Some((n, v)) = auth {
            extra.push(format!("{n}: {v}"));
        }
        let (ruri, to, cid) = (self.registrar_uri(), self.aor(), self.reg_call_id.clone());
        self.build("REGISTER", &ruri, &to, &cid, cseq, &extra, &[])
    }

    /// Pick the challenge for our preferred algorithm (else the first one).
    pub fn pick_challenge(&self, m: &Msg) -> Option<Challenge> {
        let chs = m.challenges();
        chs.iter()
            .find(|c| c.algorithm == self.algo)
            .or_else(|| chs.first())
            .cloned()
    }

    /// Credentials answering `challenge_resp` (401 → Authorization, 407 →
    /// Proxy-Authorization) for `method` on `uri`.
    pub fn credentials(
        &self,
        challenge_resp: &Msg,
        method: &str,
        uri: &str,
    ) -> Option<(String, String)> {
        let ch = self.pick_challenge(challenge_resp)?;
        let name = if challenge_resp.status() == Some(407) {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        let value = ch.authorization(&self.user, &self.password, method, uri, 1, &unique("cn"));
        Some((name.to_string(), value))
    }

    /// REGISTER with `expires` (None: no Expires header) and `contact`, answering
    /// one challenge.
    pub fn register_exchange(&mut self, expires: Option<u32>, contact: Option<&str>) -> Exchange {
        let req = self.register_request(expires, contact, None);
        let first = self.transact(&req);
        let Some(first) = first else {
            return Exchange {
                challenge: None,
                response: None,
                request: req,
            };
        };
        if first.status() != Some(401) && first.status() != Some(407) {
            return Exchange {
                challenge: None,
                response: Some(first),
                request: req,
            };
        }
        let uri = self.registrar_uri();
        let Some((n, v)) = self.credentials(&first, "REGISTER", &uri) else {
            return Exchange {
                challenge: None,
                response: Some(first),
                request: req,
            };
        };
        let req2 = self.register_request(expires, contact, Some((&n, &v)));
        self.last_auth = Some((n, v));
        let resp = self.transact(&req2);
        Exchange {
            challenge: Some(first),
            response: resp,
            request: req2,
        }
    }

    /// REGISTER this UA's contact for `expires` seconds; panics unless the switch
    /// answers 200.
    pub fn register(&mut self, expires: u32) -> Msg {
        let ex = self.register_exchange(Some(expires), None);
        let r = ex.response().clone();
        assert_eq!(
            r.status(),
            Some(200),
            "REGISTER of {} failed:\n{}\nrequest was:\n{}",
            self.user,
            r.dump(),
            String::from_utf8_lossy(&ex.request)
        );
        r
    }

    /// A MESSAGE request to `target` (extension, group, `all`).
    pub fn message_request(
        &mut self,
        target: &str,
        content_type: &str,
        body: &[u8],
        call_id: &str,
        auth: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let cseq = self.next_cseq();
        let mut extra = vec![format!("Content-Type: {content_type}")];
        if let Some((n, v)) = auth {
            extra.push(format!("{n}: {v}"));
        }
        let uri = self.target_uri(target);
        self.build("MESSAGE", &uri, &uri, call_id, cseq, &extra, body)
    }

    /// `sip:TARGET@DOMAIN`.
    pub fn target_uri(&self, target: &str) -> String {
        format!("sip:{target}@{}", self.domain)
    }

    /// Send a MESSAGE, answering one 407 challenge.
    pub fn message_exchange(&mut self, target: &str, content_type: &str, body: &[u8]) -> Exchange {
        let call_id = unique("msg-");
        let req = self.message_request(target, content_type, body, &call_id, None);
        let Some(first) = self.transact(&req) else {
            return Exchange {
                challenge: None,
                response: None,
                request: req,
            };
        };
        if first.status() != Some(407) && first.status() != Some(401) {
            return Exchange {
                challenge: None,
                response: Some(first),
                request: req,
            };
        }
        let uri = self.target_uri(target);
        let Some((n, v)) = self.credentials(&first, "MESSAGE", &uri) else {
            return Exchange {
                challenge: None,
                response: Some(first),
                request: req,
            };
        };
        let req2 = self.message_request(target, content_type, body, &call_id, Some((&n, &v)));
        self.last_auth = Some((n, v));
        let resp = self.transact(&req2);
        Exchange {
            challenge: Some(first),
            response: resp,
            request: req2,
        }
    }

    /// Send `text` as text/plain to `target`; returns the final status (0: none).
    pub fn message(&mut self, target: &str, text: &str) -> u16 {
        self.message_exchange(target, "text/plain", text.as_bytes())
            .status()
    }

    /// OPTIONS to the switch; the final response.
    pub fn options(&mut self) -> Option<Msg> {
        let cseq = self.next_cseq();
        let uri = format!("sip:{}", self.domain);
        let req = self.build("OPTIONS", &uri, &uri, &unique("opt-"), cseq, &[], &[]);
        self.transact(&req)
    }
}

impl Drop for Ua {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Lock a mutex, ignoring poisoning (a panicking test already reports).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct ReaderCtx {
    responses: Sender<Msg>,
    requests: Sender<Msg>,
    answer: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    unparsed: Unparsed,
    invites: InviteTxns,
    counts: Counts,
    timers: Arc<Mutex<timers::Timers>>,
}

/// How often each request (`METHOD|branch|Call-ID`) arrived, retransmissions
/// included.
pub type Counts = Arc<Mutex<HashMap<String, u32>>>;

/// The key of a request in [`Counts`].
pub fn count_key(m: &Msg) -> String {
    format!("{}|{}", m.method().unwrap_or_default(), txn_key(m))
}

/// The reader thread. Responses go to the foreground. Requests are queued once
/// (retransmissions are not queued again) and answered:
/// - INVITE: not answered here (the test answers with [`Ua::respond`]); a
///   retransmitted INVITE gets the last response sent again;
/// - CANCEL: `200`, and `487` for its INVITE unless that already has a final
///   response (`481` when there is no such INVITE);
/// - ACK: never answered;
/// - anything else: the status set by [`Ua::set_answer`] (0: no answer).
fn reader_loop(sock: UdpSocket, ctx: ReaderCtx) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = vec![0u8; 65_536];
    let mut seen: HashSet<String> = HashSet::new();
    while !ctx.stop.load(Ordering::Relaxed) {
        for (bytes, to) in lock(&ctx.timers).due(Instant::now()) {
            let _ = sock.send_to(&bytes, to);
        }
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let m = match Msg::parse(&buf[..n], src) {
            Ok(m) => m,
            Err(e) => {
                lock(&ctx.unparsed).push((buf[..n].to_vec(), e));
                continue;
            }
        };
        if let Some(status) = m.status() {
            if let (Some(cid), Some((cseq, method))) = (m.call_id(), m.cseq()) {
                let again = lock(&ctx.timers).response(&(cid.to_string(), cseq, method), status);
                if let Some((ack, to)) = again {
                    let _ = sock.send_to(&ack, to);
                }
            }
            let _ = ctx.responses.send(m);
            continue;
        }
        let method = m.method().unwrap_or_default();
        let key = txn_key(&m);
        *lock(&ctx.counts).entry(count_key(&m)).or_insert(0) += 1;
        match method.as_str() {
            "ACK" => {
                if let (Some(cid), Some((cseq, _))) = (m.call_id(), m.cseq()) {
                    lock(&ctx.timers).ack_received(cid, cseq);
                }
            }
            "INVITE" => {
                let mut inv = lock(&ctx.invites);
                if let Some(t) = inv.get(&key) {
                    if let Some(last) = &t.last {
                        let _ = sock.send_to(last, src);
                    }
                } else {
                    inv.insert(
                        key.clone(),
                        InviteTxn {
                            invite: m.clone(),
                            last: None,
                            final_status: None,
                        },
                    );
                }
            }
            "CANCEL" => {
                let mut inv = lock(&ctx.invites);
                match inv.get_mut(&key) {
                    Some(t) => {
                        let _ = sock.send_to(&response_to(&m, 200), src);
                        if t.final_status.is_none() {
                            let r = response_to(&t.invite, 487);
                            let _ = sock.send_to(&r, t.invite.src);
                            if let (Some(cid), Some((cseq, _))) =
                                (t.invite.call_id(), t.invite.cseq())
                            {
                                lock(&ctx.timers).final_sent(cid, cseq, r.clone(), t.invite.src);
                            }
                            t.last = Some(r);
                            t.final_status = Some(487);
                        }
                    }
                    None => {
                        let _ = sock.send_to(&response_to(&m, 481), src);
                    }
                }
            }
            _ => {
                let status = ctx.answer.load(Ordering::Relaxed);
                if status != 0 {
                    let _ = sock.send_to(&response_to(&m, status), src);
                }
            }
        }
        if seen.insert(format!("{method}|{key}")) {
            let _ = ctx.requests.send(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_md5_vector() {
        // RFC 2617 section 3.5.
        let r = digest_response(
            Algo::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("auth", "00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_vectors() {
        // RFC 7616 section 3.9.1 (MD5 and SHA-256, qop=auth).
        let args = (
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some((
                "auth",
                "00000001",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )),
        );
        let md5 = digest_response(
            Algo::Md5,
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            args.6,
        );
        assert_eq!(md5, "8ca523f5e9506fed4657c9700eebdbec");
        let sha = digest_response(
            Algo::Sha256,
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            args.6,
        );
        assert_eq!(
            sha,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2069_form_without_qop() {
        let ha1 = Algo::Md5.hex("u:r:p");
        let ha2 = Algo::Md5.hex("REGISTER:sip:x");
        assert_eq!(
            digest_response(Algo::Md5, "u", "r", "p", "REGISTER", "sip:x", "n", None),
            Algo::Md5.hex(&format!("{ha1}:n:{ha2}"))
        );
    }

    #[test]
    fn challenge_parsing_and_answer() {
        let c = Challenge::parse(
            "Digest realm=\"test\", nonce=\"a,b=c\", algorithm=SHA-256, qop=\"auth,auth-int\", \
             opaque=\"xyz\", stale=TRUE",
        )
        .expect("parse");
        assert_eq!(c.realm, "test");
        assert_eq!(c.nonce, "a,b=c");
        assert_eq!(c.algorithm, Algo::Sha256);
        assert_eq!(c.qop, vec!["auth", "auth-int"]);
        assert_eq!(c.opaque.as_deref(), Some("xyz"));
        assert!(c.stale);
        let a = c.authorization("21", "pw21", "REGISTER", "sip:test", 1, "cn1");
        let p = parse_params(a.strip_prefix("Digest ").expect("scheme"));
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("nc"), Some("00000001"));
        assert_eq!(get("qop"), Some("auth"));
        assert_eq!(get("algorithm"), Some("SHA-256"));
        assert_eq!(get("opaque"), Some("xyz"));
        let expect = digest_response(
            Algo::Sha256,
            "21",
            "test",
            "pw21",
            "REGISTER",
            "sip:test",
            "a,b=c",
            Some(("auth", "00000001", "cn1")),
        );
        assert_eq!(get("response"), Some(expect.as_str()));
        let md5 = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").expect("md5");
        assert_eq!(md5.algorithm, Algo::Md5);
        assert!(md5.qop.is_empty() && !md5.stale);
        assert!(Challenge::parse("Basic realm=\"r\"").is_none());
        assert!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256").is_none()
        );
    }

    #[test]
    fn normalises_compact_and_folded() {
        let raw = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 1.2.3.4:5;branch=z9hG4bKa, SIP/2.0/UDP 5.6.7.8\r\n\
f: <sip:21@x>;tag=1\r\nt: <sip:22@x>\r\ni: abc\r\nCSeq: 7\r\n  MESSAGE\r\nm: <sip:21@1.2.3.4:5>;expires=60, <sip:21@9.9.9.9>;expires=30\r\n\
WWW-Authenticate: Digest realm=\"t\", nonce=\"n\"\r\nl: 3\r\n\r\nabcdef";
        let m = Msg::parse(raw, "127.0.0.1:1".parse().expect("addr")).expect("parse");
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.call_id(), Some("abc"));
        assert_eq!(m.cseq(), Some((7, "MESSAGE".to_string())));
        assert_eq!(m.list("Via").len(), 2);
        assert_eq!(m.branch().as_deref(), Some("z9hG4bKa"));
        assert_eq!(m.body, b"abc");
        assert_eq!(m.contact_expires("1.2.3.4:5"), Some(60));
        assert_eq!(m.contact_expires("9.9.9.9"), Some(30));
        assert_eq!(m.challenges().len(), 1);
        assert!(Msg::parse(b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nabc", m.src).is_err());
        assert!(Msg::parse(b"garbage", m.src).is_err());
    }

    #[test]
    fn builds_parseable_requests_and_answers() {
        let server: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let mut ua = Ua::new(server, "21", "pw21");
        let req = ua.message_request("22", "text/plain", "héllo".as_bytes(), "cid", None);
        let m = Msg::parse(&req, server).expect("parse own request");
        assert_eq!(m.method().as_deref(), Some("MESSAGE"));
        assert_eq!(m.uri().as_deref(), Some("sip:22@127.0.0.1:9"));
        assert_eq!(m.text(), "héllo");
        assert_eq!(m.header("Content-Length"), Some("6"));
        let resp = Msg::parse(&response_to(&m, 486), server).expect("parse response");
        assert_eq!(resp.status(), Some(486));
        assert_eq!(resp.cseq(), m.cseq());
        assert!(resp.header("To").is_some_and(|t| t.contains(";tag=")));
        let reg = ua.register_request(Some(60), None, Some(("Authorization", "Digest x=1")));
        let r = Msg::parse(&reg, server).expect("parse register");
        assert_eq!(r.header("Expires"), Some("60"));
        assert_eq!(r.header("Authorization"), Some("Digest x=1"));
        assert_eq!(r.cseq().map(|c| c.0), Some(2));
    }

    #[test]
    fn ua_answers_requests_over_udp() {
        // Two UAs: one plays the switch sending a MESSAGE to the other.
        let phone = Ua::new("127.0.0.1:9".parse().expect("addr"), "22", "pw22");
        phone.set_answer(486);
        let mut switch = Ua::new(phone.local_addr(), "system", "x");
        switch.domain = phone.local_addr().to_string();
        let st = switch
            .message_exchange("22", "text/plain", b"ping")
            .status();
        assert_eq!(st, 486);
        let got = phone.expect_request("MESSAGE", Duration::from_secs(2));
        assert_eq!(got.text(), "ping");
        assert!(phone.recv_request(Duration::from_millis(50)).is_none());
    }
}
