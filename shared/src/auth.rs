//! Digest algorithms: one definition for the daemon's configuration, its digest
//! code, the state block (which algorithm each registration used) and the
//! clients that show it.

use serde::{Deserialize, Serialize};

/// A digest algorithm (RFC 7616 §3.3, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// `SHA-256`: stronger, but some phones fail when it is offered at all.
    Sha256,
    /// `MD5`: what every phone answers (and what an absent `algorithm`
    /// parameter means).
    Md5,
}

impl DigestAlgorithm {
    /// The token on the wire: `SHA-256` or `MD5`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Md5 => "MD5",
        }
    }

    /// Parse a wire token, `SHA-256` / `MD5` (any case). `-sess` variants are not
    /// supported.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("SHA-256") {
            Some(DigestAlgorithm::Sha256)
        } else if s.eq_ignore_ascii_case("MD5") {
            Some(DigestAlgorithm::Md5)
        } else {
            None
        }
    }

    /// Its name in the configuration: `sha256` or `md5`.
    pub fn key(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Md5 => "md5",
        }
    }

    /// Parse a configuration name: `sha256` (also `sha-256`) or `md5`, any case.
    pub fn parse_key(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Some(DigestAlgorithm::Sha256),
            "md5" => Some(DigestAlgorithm::Md5),
            _ => None,
        }
    }

    /// Its code in a state block contact entry (0 means none recorded).
    pub fn code(self) -> u8 {
        match self {
            DigestAlgorithm::Md5 => 1,
            DigestAlgorithm::Sha256 => 2,
        }
    }

    /// The algorithm of a state block code; `None` for 0 or an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(DigestAlgorithm::Md5),
            2 => Some(DigestAlgorithm::Sha256),
            _ => None,
        }
    }
}

impl std::fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for a in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
            assert_eq!(DigestAlgorithm::parse(a.as_str()), Some(a));
            assert_eq!(DigestAlgorithm::parse_key(a.key()), Some(a));
            assert_eq!(DigestAlgorithm::from_code(a.code()), Some(a));
        }
        assert_eq!(
            DigestAlgorithm::parse("sha-256"),
            Some(DigestAlgorithm::Sha256)
        );
        assert_eq!(DigestAlgorithm::parse("MD5-sess"), None);
        assert_eq!(DigestAlgorithm::from_code(0), None);
        assert_eq!(
            serde_json::to_string(&DigestAlgorithm::Sha256)
                .ok()
                .as_deref(),
            Some("\"sha256\"")
        );
    }
}
