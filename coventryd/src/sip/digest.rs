//! Server-side HTTP digest authentication for SIP (RFC 3261 22, RFC 7616,
//! RFC 8760: SHA-256 and MD5, `qop=auth`).
//!
//! Nonces are self-validating: `hex(issued_secs || random || HMAC-SHA-256(key,
//! issued_secs || random)[..16])`, so accepting one needs no per-nonce storage.
//! A bounded map remembers, for nonces that have been used successfully, the
//! highest nonce-count seen (replay protection), and the nonces that got a wrong
//! answer: those are dead, and their next use gets a fresh challenge without any
//! digest being computed, so one nonce cannot serve a string of guesses. Entries
//! are pruned once their nonce expires; when the map is full, the oldest go and
//! every nonce issued up to them counts as stale from then on (the floor).
//!
//! The work done for a user name that has no credentials is the same as for one
//! that has (a digest is computed over a stand-in secret), so the time to answer
//! does not tell which extensions exist.
//!
//! Pure code: the caller supplies the time; the only side effect is drawing
//! random bytes for the key and the nonces.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// At most this many used nonces are remembered for replay protection.
pub const MAX_TRACKED_NONCES: usize = 10_000;
/// A nonce issued this far (seconds) in the future is still honoured (clock steps).
const FUTURE_SKEW_SECS: u64 = 60;
/// Bytes of nonce payload: 8 of issue time, 8 random.
const PAYLOAD_LEN: usize = 16;
/// Bytes of truncated HMAC appended to the payload.
const MAC_LEN: usize = 16;

pub use coventry_shared::auth::DigestAlgorithm as Algorithm;

/// Length of a hex digest of `algorithm`.
fn hex_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Sha256 => 64,
        Algorithm::Md5 => 32,
    }
}

/// Lower-case hex of H(parts joined by ':') with `algorithm`.
fn hash_hex(algorithm: Algorithm, parts: &[&[u8]]) -> String {
    match algorithm {
        Algorithm::Sha256 => hex::encode(hash_joined::<Sha256>(parts)),
        Algorithm::Md5 => hex::encode(hash_joined::<Md5>(parts)),
    }
}

fn hash_joined<D: Digest>(parts: &[&[u8]]) -> sha2::digest::Output<D> {
    let mut h = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    h.finalize()
}

/// HA1 = H(username ":" realm ":" password), lower-case hex.
pub fn compute_ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    hash_hex(
        algorithm,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    )
}

/// The request-digest (RFC 7616 3.4.1) for `qop=auth` (when `qop_nc_cnonce` is
/// `Some((qop, nc, cnonce))`) or the RFC 2069 form without qop. `ha1` is hex.
pub fn compute_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop_nc_cnonce: Option<(&str, &str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = hash_hex(algorithm, &[method.as_bytes(), uri.as_bytes()]);
    match qop_nc_cnonce {
        Some((qop, nc, cnonce)) => hash_hex(
            algorithm,
            &[
                ha1.as_bytes(),
                nonce.as_bytes(),
                nc.as_bytes(),
                cnonce.as_bytes(),
                qop.as_bytes(),
                ha2.as_bytes(),
            ],
        ),
        None => hash_hex(
            algorithm,
            &[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()],
        ),
    }
}

/// What the switch knows about one user's secret. HA1 values are
/// H(user:realm:password) in hex, for this authority's realm.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The plain secret, if stored.
    pub password: Option<String>,
    /// SHA-256 HA1, if stored instead of (or as well as) the password.
    pub ha1_sha256: Option<String>,
    /// MD5 HA1, if stored instead of (or as well as) the password.
    pub ha1_md5: Option<String>,
}

impl Credentials {
    /// Credentials from a plain password.
    pub fn from_password(password: impl Into<String>) -> Self {
        Credentials {
            password: Some(password.into()),
            ..Credentials::default()
        }
    }

    /// The HA1 for `algorithm`: the stored one if well-formed, else computed from
    /// the password; `None` if neither is available.
    pub fn ha1(&self, algorithm: Algorithm, username: &str, realm: &str) -> Option<String> {
        let stored = match algorithm {
            Algorithm::Sha256 => self.ha1_sha256.as_deref(),
            Algorithm::Md5 => self.ha1_md5.as_deref(),
        };
        if let Some(h) = stored {
            let h = h.trim();
            if h.len() == hex_len(algorithm) && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(h.to_ascii_lowercase());
            }
        }
        self.password
            .as_deref()
            .map(|p| compute_ha1(algorithm, username, realm, p))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("password", &redact(&self.password))
            .field("ha1_sha256", &redact(&self.ha1_sha256))
            .field("ha1_md5", &redact(&self.ha1_md5))
            .finish()
    }
}

/// The outcome of [`DigestAuthority::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as `username`.
    Ok {
        /// The authenticated user name.
        username: String,
    },
    /// The response was right but the nonce has expired, or the nonce is not one
    /// of ours (issued before a restart, or forged; nothing was checked then):
    /// re-challenge with `stale=true`.
    Stale,
    /// Authentication failed; `reason` is short and suitable for a log line.
    Rejected {
        /// Why, e.g. "wrong response", "replayed nonce", "unknown user".
        reason: &'static str,
    },
    /// The nonce already got a wrong answer: nothing was checked; challenge afresh.
    Dead,
}

/// Replay-protection state of one nonce that has been used, successfully or not.
#[derive(Debug, Clone, Copy)]
struct NonceUse {
    issued: u64,
    highest_nc: Option<u32>,
    used_without_qop: bool,
    /// It got a wrong answer: refuse any further use.
    dead: bool,
}

/// Issues challenges and verifies digest responses for one realm.
pub struct DigestAuthority {
    realm: String,
    algorithms: Vec<Algorithm>,
    nonce_ttl: Duration,
    key: [u8; 32],
    used: HashMap<[u8; PAYLOAD_LEN], NonceUse>,
    /// Nonces issued at or before this time that are not in `used` were evicted
    /// under pressure: treat them as stale rather than risk a replay.
    floor: Option<u64>,
    last_prune: u64,
    /// Responses compared with a computed digest so far.
    checked: u64,
}

impl std::fmt::Debug for DigestAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAuthority")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("nonce_ttl", &self.nonce_ttl)
            .field("tracked_nonces", &self.used.len())
            .finish_non_exhaustive()
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl DigestAuthority {
    /// A new authority for `realm`, offering `algorithms` in order of preference
    /// (an empty list means SHA-256 then MD5), with nonces valid for `nonce_ttl`
    /// and a fresh random key.
    pub fn new(realm: String, algorithms: Vec<Algorithm>, nonce_ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::with_key(realm, algorithms, nonce_ttl, key)
    }

    /// Like [`DigestAuthority::new`] with a given key (nonces survive a restart if
    /// the key does).
    pub fn with_key(
        realm: String,
        algorithms: Vec<Algorithm>,
        nonce_ttl: Duration,
        key: [u8; 32],
    ) -> Self {
        let mut algs: Vec<Algorithm> = Vec::with_capacity(2);
        for a in algorithms {
            if !algs.contains(&a) {
                algs.push(a);
            }
        }
        if algs.is_empty() {
            algs = vec![Algorithm::Sha256, Algorithm::Md5];
        }
        DigestAuthority {
            realm,
            algorithms: algs,
            nonce_ttl,
            key,
            used: HashMap::new(),
            floor: None,
            last_prune: 0,
            checked: 0,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The offered algorithms, most preferred first.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// How many used nonces are currently remembered.
    pub fn tracked_nonces(&self) -> usize {
        self.used.len()
    }

    /// How many responses have been compared with a computed digest (right or
    /// wrong, known user or not): the work a guesser got out of the switch.
    pub fn digests_checked(&self) -> u64 {
        self.checked
    }

    /// One header value per offered algorithm, for WWW-Authenticate (401) or
    /// Proxy-Authenticate (407). All share one fresh nonce.
    pub fn challenges(&mut self, now: SystemTime, stale: bool) -> Vec<String> {
        let offer = self.algorithms.clone();
        self.challenges_for(now, stale, &offer)
    }

    /// Like [`DigestAuthority::challenges`], offering `offer` (in that order; each
    /// should be one this authority accepts).
    pub fn challenges_for(
        &mut self,
        now: SystemTime,
        stale: bool,
        offer: &[Algorithm],
    ) -> Vec<String> {
        self.challenges_to(now, stale, offer, None)
    }

    /// Like [`DigestAuthority::challenges_for`], with a nonce bound to the
    /// address `to` it is sent to: only an answer from that address can use it
    /// ([`DigestAuthority::verify_from`]), so answers spoofed from another
    /// address with nonces fetched elsewhere check nothing and count as nothing.
    pub fn challenges_to(
        &mut self,
        now: SystemTime,
        stale: bool,
        offer: &[Algorithm],
        to: Option<IpAddr>,
    ) -> Vec<String> {
        let now_s = unix_secs(now);
        self.maybe_prune(now_s);
        let nonce = self.make_nonce(now_s, to);
        let mut realm = String::with_capacity(self.realm.len() + 2);
        push_quoted(&mut realm, &self.realm);
        offer
            .iter()
            .map(|a| {
                let mut c = format!(
                    "Digest realm={realm}, nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    a.as_str()
                );
                if stale {
                    c.push_str(", stale=true");
                }
                c
            })
            .collect()
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        self.mac_to(payload, None)
    }

    /// The MAC of `payload`, bound to the address `to` when given.
    fn mac_to(&self, payload: &[u8], to: Option<IpAddr>) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        // HMAC accepts keys of any length, so this cannot fail.
        if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.key) {
            m.update(payload);
            match to.map(|ip| ip.to_canonical()) {
                Some(IpAddr::V4(v4)) => m.update(&v4.octets()),
                Some(IpAddr::V6(v6)) => m.update(&v6.octets()),
                None => {}
            }
            let tag = m.finalize().into_bytes();
            out.copy_from_slice(tag.get(..MAC_LEN).unwrap_or(&[0u8; MAC_LEN]));
        }
        out
    }

    fn make_nonce(&self, now_s: u64, to: Option<IpAddr>) -> String {
        let mut raw = [0u8; PAYLOAD_LEN + MAC_LEN];
        let (payload, mac) = raw.split_at_mut(PAYLOAD_LEN);
        let (ts, rnd) = payload.split_at_mut(8);
        ts.copy_from_slice(&now_s.to_be_bytes());
        rand::thread_rng().fill_bytes(rnd);
        let tag = self.mac_to(payload, to);
        mac.copy_from_slice(&tag);
        hex::encode(raw)
    }

    /// Check a nonce's MAC; returns its payload and issue time.
    fn open_nonce(&self, nonce: &str, to: Option<IpAddr>) -> Option<([u8; PAYLOAD_LEN], u64)> {
        let mut raw = [0u8; PAYLOAD_LEN + MAC_LEN];
        hex::decode_to_slice(nonce, &mut raw).ok()?;
        let (payload, mac) = raw.split_at(PAYLOAD_LEN);
        let expected = self.mac_to(payload, to);
        if !bool::from(expected.ct_eq(mac)) {
            return None;
        }
        let mut p = [0u8; PAYLOAD_LEN];
        p.copy_from_slice(payload);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(p.get(..8)?);
        Some((p, u64::from_be_bytes(ts)))
    }

    fn is_expired(&self, issued: u64, now_s: u64) -> bool {
        let ttl = self.nonce_ttl.as_secs();
        issued.saturating_add(ttl) < now_s || issued > now_s.saturating_add(FUTURE_SKEW_SECS)
    }

    fn maybe_prune(&mut self, now_s: u64) {
        let ttl = self.nonce_ttl.as_secs().max(1);
        if self.used.is_empty() || now_s.saturating_sub(self.last_prune) < ttl {
            return;
        }
        self.last_prune = now_s;
        self.prune_expired(now_s);
    }

    fn prune_expired(&mut self, now_s: u64) {
        let ttl = self.nonce_ttl.as_secs();
        self.used.retain(|_, u| {
            u.issued.saturating_add(ttl) >= now_s
                && u.issued <= now_s.saturating_add(FUTURE_SKEW_SECS)
        });
    }

    /// Make room for one more entry, never forgetting a nonce silently: what is
    /// evicted while still valid moves the floor up.
    fn make_room(&mut self, now_s: u64) {
        if self.used.len() < MAX_TRACKED_NONCES {
            return;
        }
        self.prune_expired(now_s);
        while self.used.len() >= MAX_TRACKED_NONCES {
            let Some(oldest) = self.used.values().map(|u| u.issued).min() else {
                break;
            };
            self.used.retain(|_, u| u.issued > oldest);
            self.floor = Some(self.floor.map_or(oldest, |f| f.max(oldest)));
        }
    }

    /// Verify an Authorization/Proxy-Authorization header value for `method` and
    /// `request_uri`. `lookup` maps the claimed user name to its credentials.
    pub fn verify(
        &mut self,
        now: SystemTime,
        method: &str,
        request_uri: &str,
        header_value: &str,
        lookup: impl FnOnce(&str) -> Option<Credentials>,
    ) -> Verdict {
        self.verify_from(now, (method, request_uri), header_value, None, lookup)
    }

    /// Like [`DigestAuthority::verify`] for an answer from the address `from`:
    /// a nonce issued to another address ([`DigestAuthority::challenges_to`]) is
    /// not ours for it (stale: nothing checked, nothing counted).
    pub fn verify_from(
        &mut self,
        now: SystemTime,
        (method, request_uri): (&str, &str),
        header_value: &str,
        from: Option<IpAddr>,
        lookup: impl FnOnce(&str) -> Option<Credentials>,
    ) -> Verdict {
        let reject = |reason| Verdict::Rejected { reason };
        let now_s = unix_secs(now);
        self.maybe_prune(now_s);

        let p = match parse_credentials(header_value) {
            Ok(p) => p,
            Err(reason) => return reject(reason),
        };
        let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) =
            (&p.username, &p.realm, &p.nonce, &p.uri, &p.response)
        else {
            return reject("missing digest parameter");
        };
        if p.userhash
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case("true"))
        {
            return reject("userhash not supported");
        }
        if realm.as_ref() != self.realm {
            return reject("wrong realm");
        }
        let algorithm = match p.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::parse(a) {
                Some(a) => a,
                None => return reject("unsupported algorithm"),
            },
        };
        if !self.algorithms.contains(&algorithm) {
            return reject("algorithm not offered");
        }
        if !uri_matches(uri, request_uri) {
            return reject("uri mismatch");
        }
        let Some((payload, issued)) = self.open_nonce(nonce, from) else {
            // Not one of ours: most likely issued before a restart (a new key),
            // or to another address. Nothing was checked; the phone starts over
            // with a fresh nonce, and no failure is counted against it.
            return Verdict::Stale;
        };
        if self.used.get(&payload).is_some_and(|u| u.dead) {
            return Verdict::Dead;
        }
        let qop = match p.qop.as_deref() {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (&p.nc, &p.cnonce) else {
                    return reject("qop without nc or cnonce");
                };
                let Some(nc_val) = parse_nc(nc) else {
                    return reject("bad nonce count");
                };
                Some((q, nc.as_ref(), cnonce.as_ref(), nc_val))
            }
            Some(_) => return reject("unsupported qop"),
        };
        let Some(given) = decode_digest(response, algorithm) else {
            return reject("malformed response");
        };

        // Without credentials, the same work over a stand-in secret (never right:
        // `known` is false), then the same outcome as a wrong password.
        let creds = lookup(username);
        let missing = if creds.is_some() {
            "no credentials for algorithm"
        } else {
            "unknown user"
        };
        let ha1 = creds.and_then(|c| c.ha1(algorithm, username, &self.realm));
        let known = ha1.is_some();
        let ha1 = ha1.unwrap_or_else(|| self.stand_in_ha1(algorithm, username));
        self.checked += 1;
        let expected = compute_response(
            algorithm,
            &ha1,
            nonce,
            qop.map(|(q, nc, cnonce, _)| (q, nc, cnonce)),
            method,
            uri,
        );
        let Some(want) = decode_digest(&expected, algorithm) else {
            return reject("internal digest error");
        };
        if !known || !bool::from(want.ct_eq(&given)) {
            self.kill(payload, issued, now_s);
            return reject(if known { "wrong response" } else { missing });
        }

        if self.is_expired(issued, now_s) {
            return Verdict::Stale;
        }
        match self.used.get_mut(&payload) {
            Some(u) => match qop {
                Some((.., nc)) => {
                    if u.highest_nc.is_some_and(|h| nc <= h) {
                        return reject("replayed nonce");
                    }
                    u.highest_nc = Some(nc);
                }
                None => {
                    if u.used_without_qop {
                        return reject("replayed nonce");
                    }
                    u.used_without_qop = true;
                }
            },
            None => {
                if self.floor.is_some_and(|f| issued <= f) {
                    // We may have forgotten this nonce's history: make the client
                    // start over with a fresh one.
                    return Verdict::Stale;
                }
                self.make_room(now_s);
                self.used.insert(
                    payload,
                    NonceUse {
                        issued,
                        highest_nc: qop.map(|(.., nc)| nc),
                        used_without_qop: qop.is_none(),
                        dead: false,
                    },
                );
            }
        }
        Verdict::Ok {
            username: username.to_string(),
        }
    }
}

impl DigestAuthority {
    /// Mark a nonce that got a wrong answer dead (bounded like the replay map; one
    /// that already expired or lies below the floor is refused anyway).
    fn kill(&mut self, payload: [u8; PAYLOAD_LEN], issued: u64, now_s: u64) {
        if let Some(u) = self.used.get_mut(&payload) {
            u.dead = true;
            return;
        }
        if self.is_expired(issued, now_s) || self.floor.is_some_and(|f| issued <= f) {
            return;
        }
        self.make_room(now_s);
        self.used.insert(
            payload,
            NonceUse {
                issued,
                highest_nc: None,
                used_without_qop: false,
                dead: true,
            },
        );
    }

    /// An HA1 for a user without credentials: keyed by the secret key, so it is
    /// as costly as a real one and matches no password anyone knows.
    fn stand_in_ha1(&self, algorithm: Algorithm, username: &str) -> String {
        let tag = self.mac(username.as_bytes());
        hash_hex(algorithm, &[&tag, self.realm.as_bytes()])
    }
}

/// Decode a hex digest of the right length for `algorithm` (either case).
fn decode_digest(hex_str: &str, algorithm: Algorithm) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let n = hex_len(algorithm) / 2;
    hex::decode_to_slice(hex_str.as_bytes(), out.get_mut(..n)?).ok()?;
    Some(out)
}

/// nc: 1 to 8 hex digits (RFC 7616 says exactly 8; be lenient about leading zeros).
fn parse_nc(nc: &str) -> Option<u32> {
    if nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(nc, 16).ok()
}

/// Whether the credentials' `uri` designates the Request-URI: exactly equal, or
/// equal scheme, user, host (case-insensitive) and port (default port implied).
fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (
        super::parse::parse_uri(digest_uri),
        super::parse::parse_uri(request_uri),
    ) {
        (Some(a), Some(b)) => a.same_target(&b),
        _ => false,
    }
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
}

/// The parameters of a `Digest` credentials (or challenge) header value.
/// Unknown parameters are ignored; values are unquoted and unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestParams<'a> {
    /// `username`.
    pub username: Option<Cow<'a, str>>,
    /// `realm`.
    pub realm: Option<Cow<'a, str>>,
    /// `nonce`.
    pub nonce: Option<Cow<'a, str>>,
    /// `uri`.
    pub uri: Option<Cow<'a, str>>,
    /// `response`.
    pub response: Option<Cow<'a, str>>,
    /// `algorithm`.
    pub algorithm: Option<Cow<'a, str>>,
    /// `cnonce`.
    pub cnonce: Option<Cow<'a, str>>,
    /// `opaque`.
    pub opaque: Option<Cow<'a, str>>,
    /// `qop` (a single value in credentials, a list in challenges).
    pub qop: Option<Cow<'a, str>>,
    /// `nc`.
    pub nc: Option<Cow<'a, str>>,
    /// `userhash`.
    pub userhash: Option<Cow<'a, str>>,
    /// `stale` (challenges).
    pub stale: Option<Cow<'a, str>>,
}

/// Parameter names [`parse_credentials`] keeps, in [`DigestParams`] field order.
const PARAM_NAMES: [&str; 12] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
    "userhash",
    "stale",
];

/// Parse a `Digest k=v, k="quoted \"x\"", ...` header value. Tolerates spaces
/// around `=` and commas, empty list elements and unknown parameters; rejects
/// other schemes, unterminated quotes, garbage between parameters and duplicate
/// known parameters. Never panics.
pub fn parse_credentials(value: &str) -> Result<DigestParams<'_>, &'static str> {
    const WS: &[char] = &[' ', '\t', '\r', '\n'];
    let value = value.trim_matches(WS);
    let (scheme, mut rest) = value.split_once(WS).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err("not a Digest credential");
    }
    let mut p = DigestParams::default();
    loop {
        rest = rest.trim_start_matches(|c: char| WS.contains(&c) || c == ',');
        if rest.is_empty() {
            break;
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.!%*+`'~".contains(c)))
            .unwrap_or(rest.len());
        let name = rest.get(..name_end).unwrap_or_default();
        if name.is_empty() {
            return Err("malformed digest parameter");
        }
        rest = rest
            .get(name_end..)
            .unwrap_or_default()
            .trim_start_matches(WS);
        rest = rest.strip_prefix('=').ok_or("malformed digest parameter")?;
        rest = rest.trim_start_matches(WS);
        let val: Cow<'_, str>;
        if let Some(q) = rest.strip_prefix('"') {
            let (v, after) = read_quoted(q).ok_or("unterminated quoted string")?;
            val = v;
            rest = after;
        } else {
            let end = rest
                .find(|c: char| c == ',' || WS.contains(&c))
                .unwrap_or(rest.len());
            val = Cow::Borrowed(rest.get(..end).unwrap_or_default());
            rest = rest.get(end..).unwrap_or_default();
        }
        rest = rest.trim_start_matches(WS);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err("malformed digest parameter list");
        }
        let slot = match PARAM_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
        {
            Some(0) => &mut p.username,
            Some(1) => &mut p.realm,
            Some(2) => &mut p.nonce,
            Some(3) => &mut p.uri,
            Some(4) => &mut p.response,
            Some(5) => &mut p.algorithm,
            Some(6) => &mut p.cnonce,
            Some(7) => &mut p.opaque,
            Some(8) => &mut p.qop,
            Some(9) => &mut p.nc,
            Some(10) => &mut p.userhash,
            Some(11) => &mut p.stale,
            _ => continue,
        };
        if slot.is_some() {
            return Err("duplicate digest parameter");
        }
        *slot = Some(val);
    }
    Ok(p)
}

/// Read a quoted string body (after the opening quote): returns the unescaped
/// value and the text after the closing quote.
fn read_quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut has_escape = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => {
                has_escape = true;
                i += 2;
            }
            b'"' => {
                let raw = s.get(..i)?;
                let after = s.get(i + 1..)?;
                if !has_escape {
                    return Some((Cow::Borrowed(raw), after));
                }
                let mut out = String::with_capacity(raw.len());
                let mut esc = false;
                for c in raw.chars() {
                    if esc {
                        out.push(c);
                        esc = false;
                    } else if c == '\\' {
                        esc = true;
                    } else {
                        out.push(c);
                    }
                }
                return Some((Cow::Owned(out), after));
            }
            _ => i += 1,
        }
    }
    None
}

/// The user name a credentials header claims, for logging failed attempts.
pub fn claimed_username(header_value: &str) -> Option<String> {
    parse_credentials(header_value)
        .ok()?
        .username
        .map(|u| u.chars().filter(|c| !c.is_control()).take(64).collect())
}

/// Client side (for registering upstream): answer a `Digest` challenge with an
/// Authorization header value. Returns `None` for unsupported challenges.
/// `cnonce` should be fresh random text; `nc` counts uses of this nonce from 1.
pub fn answer_challenge(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    let c = parse_credentials(challenge).ok()?;
    let realm = c.realm.as_deref()?;
    let nonce = c.nonce.as_deref()?;
    let algorithm = match c.algorithm.as_deref() {
        None => Algorithm::Md5,
        Some(a) => Algorithm::parse(a)?,
    };
    let offers_auth = c
        .qop
        .as_deref()
        .map(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
    let ha1 = compute_ha1(algorithm, username, realm, password);
    let nc_s = format!("{nc:08x}");
    let mut out = String::with_capacity(256);
    out.push_str("Digest username=");
    push_quoted(&mut out, username);
    out.push_str(", realm=");
    push_quoted(&mut out, realm);
    out.push_str(", nonce=");
    push_quoted(&mut out, nonce);
    out.push_str(", uri=");
    push_quoted(&mut out, uri);
    let response = match offers_auth {
        Some(true) => compute_response(
            algorithm,
            &ha1,
            nonce,
            Some(("auth", &nc_s, cnonce)),
            method,
            uri,
        ),
        Some(false) => return None, // only auth-int offered
        None => compute_response(algorithm, &ha1, nonce, None, method, uri),
    };
    out.push_str(", response=\"");
    out.push_str(&response);
    out.push_str("\", algorithm=");
    out.push_str(algorithm.as_str());
    if offers_auth == Some(true) {
        out.push_str(", cnonce=");
        push_quoted(&mut out, cnonce);
        out.push_str(", qop=auth, nc=");
        out.push_str(&nc_s);
    }
    if let Some(opaque) = c.opaque.as_deref() {
        out.push_str(", opaque=");
        push_quoted(&mut out, opaque);
    }
    Some(out)
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
