//! SIP messages as the live trace shows them (pure, on raw bytes, never failing):
//! [`glance`] reads the few facts a trace line and its filter need, [`mask`]
//! makes the copy that leaves the switch — credentials masked, texts' words
//! hidden unless `[security] show_texts` says otherwise ([`Texts`]).

use super::parse::{parse_name_addr, parse_uri};

/// What a trace needs to know of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Glance {
    /// A request's method (empty for a response).
    pub method: String,
    /// A response's status (0 for a request).
    pub status: u16,
    /// A response's reason phrase.
    pub reason: String,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: String,
    /// The users of the Request-URI, From and To (those that have one).
    pub users: Vec<String>,
}

/// Longest text kept of a field (method, reason, Call-ID) in a glance.
const FIELD: usize = 128;

fn cut(s: &str) -> String {
    let mut n = s.len().min(FIELD);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    s[..n].to_string()
}

/// The head's lines (without line ends) and where the body starts.
fn head_lines(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |p| start + p);
        let line = &bytes[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let next = (end + 1).min(bytes.len());
        if line.is_empty() && !lines.is_empty() {
            return (lines, next);
        }
        if !line.is_empty() {
            lines.push(line);
        }
        start = next;
    }
    (lines, bytes.len())
}

/// The user of a URI or name-addr, when it has one.
fn user_of(value: &str) -> Option<String> {
    let na = parse_name_addr(value)?;
    let user = na.parsed_uri()?.user?;
    Some(cut(user))
}

/// The facts of `bytes` a trace shows and filters on; what cannot be read stays
/// empty.
pub fn glance(bytes: &[u8]) -> Glance {
    let mut g = Glance::default();
    let (lines, _) = head_lines(bytes);
    let Some(first) = lines.first() else {
        return g;
    };
    let first = String::from_utf8_lossy(first);
    let mut words = first.splitn(3, ' ');
    let (a, b, c) = (words.next(), words.next(), words.next());
    if a.is_some_and(|a| a.starts_with("SIP/")) {
        g.status = b.and_then(|s| s.parse().ok()).unwrap_or(0);
        g.reason = cut(c.unwrap_or("").trim());
    } else {
        g.method = cut(a.unwrap_or(""));
        if let Some(u) = b.and_then(parse_uri).and_then(|u| u.user) {
            g.users.push(cut(u));
        }
    }
    let (mut call_id, mut cseq, mut from, mut to) = (false, false, false, false);
    for line in &lines[1..] {
        let line = String::from_utf8_lossy(line);
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" if !call_id => {
                call_id = true;
                g.call_id = cut(value);
            }
            "cseq" if !cseq => {
                cseq = true;
                let mut w = value.split_whitespace();
                g.cseq = w.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                g.cseq_method = cut(w.next().unwrap_or(""));
            }
            "from" | "f" if !from => {
                from = true;
                g.users.extend(user_of(value));
            }
            "to" | "t" if !to => {
                to = true;
                g.users.extend(user_of(value));
            }
            _ => {}
        }
    }
    g
}

/// Headers that carry credentials.
const AUTH_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "authentication-info",
    "proxy-authentication-info",
];

/// Parameters of those headers computed from a secret.
const SECRET_PARAMS: &[&str] = &["response", "rspauth"];

/// What stands in for a masked value.
pub const MASKED: &str = "\"***\"";

/// Whether a text's words (the body of a MESSAGE) may be in a trace: as
/// `[security] show_texts` says for the event ring, so a trace shows no more and
/// no less of a text than `pbxctl watch` does. Credentials are masked either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Texts {
    /// Replaced by their length (the default, `show_texts = no`).
    #[default]
    Hidden,
    /// Shown as received and sent (`show_texts = yes`).
    Shown,
}

/// A copy of `bytes` fit to leave the switch: in `Authorization`,
/// `Proxy-Authorization`, `Authentication-Info` and `Proxy-Authentication-Info`
/// the `response` and `rspauth` values of a digest become `"***"` and the
/// credentials of any other scheme are masked whole (folded lines are unfolded
/// first); the body of a MESSAGE (a resident's text) is replaced by its length
/// unless `texts` is [`Texts::Shown`]. Everything else is left byte for byte.
pub fn mask(bytes: &[u8], texts: Texts) -> Vec<u8> {
    let (lines, body_at) = head_lines(bytes);
    let is_message = lines
        .first()
        .is_some_and(|l| l.starts_with(b"MESSAGE ") || l.starts_with(b"message "));
    let body = &bytes[body_at.min(bytes.len())..];
    let auth = |line: &[u8]| {
        line.iter().position(|b| *b == b':').is_some_and(|p| {
            let name = String::from_utf8_lossy(&line[..p])
                .trim()
                .to_ascii_lowercase();
            AUTH_HEADERS.contains(&name.as_str())
        })
    };
    let hide_text = texts == Texts::Hidden && is_message && !body.is_empty();
    if !hide_text && !lines.iter().any(|l| auth(l)) {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if !auth(line) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            continue;
        }
        // The header with its continuation lines, unfolded.
        let mut whole = String::from_utf8_lossy(line).into_owned();
        while i < lines.len() && lines[i].first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            whole.push(' ');
            whole.push_str(String::from_utf8_lossy(lines[i]).trim());
            i += 1;
        }
        out.extend_from_slice(mask_auth_line(&whole).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if hide_text {
        out.extend_from_slice(format!("[text of {} bytes not shown]", body.len()).as_bytes());
    } else {
        out.extend_from_slice(body);
    }
    out
}

/// One credentials header, `Name: value`, masked.
fn mask_auth_line(line: &str) -> String {
    let Some((name, value)) = line.split_once(':') else {
        return line.to_string();
    };
    let header = name.trim().to_ascii_lowercase();
    let value = value.trim_start();
    // Authentication-Info has no scheme: its value is the parameter list.
    let (scheme, params) = if header.ends_with("authentication-info") {
        ("", value)
    } else {
        match value.split_once(char::is_whitespace) {
            Some((s, p)) => (s, p),
            None => (value, ""),
        }
    };
    if !scheme.is_empty() && !scheme.eq_ignore_ascii_case("digest") {
        return if params.trim().is_empty() {
            format!("{name}: {scheme}")
        } else {
            format!("{name}: {scheme} {MASKED}")
        };
    }
    let mut masked = Vec::new();
    for piece in split_outside_quotes(params) {
        let Some((pname, _)) = piece.split_once('=') else {
            masked.push(piece.to_string());
            continue;
        };
        let pname_t = pname.trim();
        if SECRET_PARAMS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(pname_t))
        {
            masked.push(format!("{pname}={MASKED}"));
        } else {
            masked.push(piece.to_string());
        }
    }
    let joined = masked.join(",");
    if scheme.is_empty() {
        format!("{name}: {joined}")
    } else {
        format!("{name}: {scheme} {joined}")
    }
}

/// `s` split at the commas outside quoted strings (a backslash escapes inside).
fn split_outside_quotes(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
        From: <sip:21@127.0.0.1>;tag=a\r\n\
        To: <sip:21@127.0.0.1>\r\n\
        Call-ID: reg-1@h\r\n\
        CSeq: 2 REGISTER\r\n\
        Authorization: Digest username=\"21\", realm=\"coventry\", nonce=\"n1\",\r\n \
         uri=\"sip:127.0.0.1\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5,\r\n \
         cnonce=\"response=x\", qop=auth, nc=00000001\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn digest_responses_are_masked_and_nothing_else() {
        let m = String::from_utf8(mask(REGISTER.as_bytes(), Texts::Hidden)).expect("utf8");
        assert!(!m.contains("0123456789abcdef"), "{m}");
        assert!(m.contains("response=\"***\""), "{m}");
        // A quoted value that reads like the parameter is left alone.
        assert!(m.contains("cnonce=\"response=x\""), "{m}");
        assert!(
            m.contains("username=\"21\"") && m.contains("nonce=\"n1\""),
            "{m}"
        );
        assert!(m.contains("Call-ID: reg-1@h\r\n") && m.ends_with("Content-Length: 0\r\n\r\n"));
        // Any case, Proxy-Authorization, Authentication-Info, other schemes.
        for (raw, secret) in [
            (
                "Proxy-Authorization: digest RESPONSE=abc123,username=x",
                "abc123",
            ),
            (
                "authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                "QWxhZGRp",
            ),
            ("Authentication-Info: rspauth=\"feed\", qop=auth", "feed"),
            ("Authorization: Bearer tok.en.value", "tok.en"),
        ] {
            let msg = format!("INVITE sip:35@h SIP/2.0\r\n{raw}\r\nContent-Length: 0\r\n\r\n");
            let m = String::from_utf8(mask(msg.as_bytes(), Texts::Shown)).expect("utf8");
            assert!(!m.contains(secret), "{m}");
            assert!(m.contains(MASKED), "{m}");
        }
        // Nothing to mask: the very bytes.
        let plain = b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\nbody";
        assert_eq!(mask(plain, Texts::Hidden), plain.to_vec());
    }

    #[test]
    fn texts_words_are_hidden() {
        let msg = "MESSAGE sip:35@h SIP/2.0\r\nCall-ID: m\r\nContent-Type: text/plain\r\n\
                   Content-Length: 11\r\n\r\nhello there";
        let m = String::from_utf8(mask(msg.as_bytes(), Texts::Hidden)).expect("utf8");
        assert!(!m.contains("hello"), "{m}");
        assert!(m.ends_with("\r\n\r\n[text of 11 bytes not shown]"), "{m}");
        // An INVITE's SDP is shown.
        let inv = "INVITE sip:35@h SIP/2.0\r\nContent-Length: 5\r\n\r\nv=0\r\n";
        assert_eq!(mask(inv.as_bytes(), Texts::Hidden), inv.as_bytes().to_vec());
    }

    #[test]
    fn texts_words_are_shown_when_allowed_and_credentials_never() {
        let msg = "MESSAGE sip:35@h SIP/2.0\r\nCall-ID: m\r\n\
                   Authorization: Digest username=\"21\", response=\"feedbeef\"\r\n\
                   Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello there";
        let m = String::from_utf8(mask(msg.as_bytes(), Texts::Shown)).expect("utf8");
        assert!(m.ends_with("\r\n\r\nhello there"), "{m}");
        assert!(!m.contains("feedbeef") && m.contains(MASKED), "{m}");
        // Nothing to mask: the very bytes, words and all.
        let plain = "MESSAGE sip:35@h SIP/2.0\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(
            mask(plain.as_bytes(), Texts::Shown),
            plain.as_bytes().to_vec()
        );
    }

    #[test]
    fn glance_reads_summary_and_users() {
        let g = glance(REGISTER.as_bytes());
        assert_eq!(g.method, "REGISTER");
        assert_eq!((g.call_id.as_str(), g.cseq), ("reg-1@h", 2));
        assert_eq!(g.users, ["21", "21"]);
        let r = "SIP/2.0 401 Unauthorized\r\nf: \"A\" <sip:21@h>;tag=1\r\nt: sip:35@h\r\n\
                 i: c1\r\nCSeq: 1 INVITE\r\n\r\n";
        let g = glance(r.as_bytes());
        assert_eq!((g.status, g.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(
            (g.call_id.as_str(), g.cseq_method.as_str()),
            ("c1", "INVITE")
        );
        assert_eq!(g.users, ["21", "35"]);
        let inv = glance(b"INVITE sip:35@10.0.0.1:5060 SIP/2.0\r\n\r\n");
        assert_eq!(inv.users, ["35"]);
        // Garbage reads as nothing, never a panic.
        for junk in [
            &b""[..],
            b"\r\n\r\n",
            b"\xff\xfe",
            b"SIP/2.0",
            b"A B C\r\nCSeq",
        ] {
            let _ = glance(junk);
            let _ = mask(junk, Texts::Hidden);
            let _ = mask(junk, Texts::Shown);
        }
    }
}
