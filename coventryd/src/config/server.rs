//! `[server]`: where and how the switch listens.

use super::values::{algorithm_list, num};
use super::{DigestAlgorithm, Fault};
use coventry_shared::dialplan::Plan;
use std::net::SocketAddr;

/// `[server]`: where and how the switch listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// UDP address:port to bind (port 0 picks one; the bound one is published).
    pub listen: SocketAddr,
    /// The numbering plan.
    pub plan: Plan,
    /// Digest realm.
    pub realm: String,
    /// Offered digest algorithms in order of preference.
    pub algorithms: Vec<DigestAlgorithm>,
    /// Shortest registration the switch grants, seconds.
    pub min_expires: u32,
    /// Longest registration the switch grants, seconds.
    pub max_expires: u32,
    /// Registration length when a phone asks for none, seconds.
    pub default_expires: u32,
    /// How long a digest nonce stays valid, seconds.
    pub nonce_lifetime: u32,
    /// Largest SIP message accepted, bytes (bigger requests get 513).
    pub max_message: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            plan: Plan::TwoDigit,
            realm: "coventry".into(),
            algorithms: vec![DigestAlgorithm::Md5],
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: 300,
            max_message: 8192,
        }
    }
}

/// Set `[server]` key `k` to `v`.
pub(super) fn set_key(s: &mut ServerConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "listen" => {
            s.listen = v
                .parse()
                .map_err(|_| format!("`{v}` is not an address:port (e.g. 0.0.0.0:5060)"))?
        }
        "digits" => {
            s.plan = v
                .parse::<u8>()
                .ok()
                .and_then(Plan::from_digits)
                .ok_or_else(|| format!("`{v}`: digits must be 2 or 3"))?
        }
        "realm" => {
            if v.is_empty() || v.contains('"') || v.contains(char::is_whitespace) {
                return Err("realm must be non-empty, without quotes or spaces".into());
            }
            s.realm = v.to_string()
        }
        "algorithm" | "algorithms" => {
            s.algorithms = algorithm_list(v)?;
        }
        "min_expires" => s.min_expires = num(v, 1, 86_400)?,
        "max_expires" => s.max_expires = num(v, 1, 86_400)?,
        "default_expires" => s.default_expires = num(v, 1, 86_400)?,
        "nonce_lifetime" => s.nonce_lifetime = num(v, 5, 86_400)?,
        "max_message" => s.max_message = num(v, 1024, 65_535)? as usize,
        _ => return Err("unknown key".into()),
    }
    Ok(())
}

/// What no single key can say wrong.
pub(super) fn check(s: &ServerConfig) -> Result<(), Fault> {
    if s.min_expires > s.max_expires {
        return Err(Fault::new(
            0,
            "[server] min_expires",
            "min_expires is larger than max_expires",
        ));
    }
    Ok(())
}
