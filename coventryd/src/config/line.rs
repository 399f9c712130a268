//! One extension: a `[NN]` section, and the built-in extensions.

use super::values::{algorithm_list, ext_list, is_hex, num, yes_no};
use super::{DigestAlgorithm, Fault};
use coventry_shared::dialplan::Plan;
use std::collections::BTreeMap;
use std::fmt;

/// Most contacts one extension may register (`lines`).
pub const MAX_LINES: u8 = 4;

/// One extension (a `[NN]` section).
#[derive(Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// Extension number.
    pub number: u16,
    /// Display name (`display`; "Extension N" when not set).
    pub display: String,
    /// Whether `display` was set: then the switch shows it to the phones its
    /// calls reach, whatever the phone put in its From.
    pub display_set: bool,
    /// Plain secret, if given.
    pub secret: Option<String>,
    /// HA1 = SHA-256(user:realm:secret) in hex, if given.
    pub sha256: Option<String>,
    /// HA1 = MD5(user:realm:secret) in hex, if given.
    pub md5: Option<String>,
    /// Contacts that may register at once (1..=4).
    pub lines: u8,
    /// Extensions that ring together with this one at once (`coverage`).
    pub coverage: Vec<u16>,
    /// Extensions that join after `delay` rings (`delayed`).
    pub delayed: Vec<u16>,
    /// Rings before the delayed coverage joins (`delay`, default 2).
    pub delay: u8,
    /// A second call rings while the extension is in a call (`call_waiting`,
    /// default no: an extension in a call is busy).
    pub call_waiting: bool,
    /// Digest algorithms offered when a phone claims this extension
    /// (`algorithm`); none: the `[server]` offer.
    pub algorithms: Option<Vec<DigestAlgorithm>>,
}

impl LineConfig {
    /// Extension `number` with every default: no secret yet, 2 contacts, no
    /// coverage, no call waiting.
    pub fn new(number: u16) -> LineConfig {
        LineConfig {
            number,
            display: String::new(),
            display_set: false,
            secret: None,
            sha256: None,
            md5: None,
            lines: 2,
            coverage: Vec::new(),
            delayed: Vec::new(),
            delay: 2,
            call_waiting: false,
            algorithms: None,
        }
    }

    /// What a phone claiming this extension is offered: its own `algorithm`,
    /// else `server`'s.
    pub fn offer<'a>(&'a self, server: &'a [DigestAlgorithm]) -> &'a [DigestAlgorithm] {
        self.algorithms.as_deref().unwrap_or(server)
    }
}

impl fmt::Debug for LineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineConfig")
            .field("number", &self.number)
            .field("display", &self.display)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("lines", &self.lines)
            .field("coverage", &self.coverage)
            .field("delayed", &self.delayed)
            .field("delay", &self.delay)
            .field("call_waiting", &self.call_waiting)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// The extensions of the built-in default (and of a file without extension
/// sections).
pub const BUILTIN_EXTENSIONS: std::ops::RangeInclusive<u16> = 10..=19;

/// The built-in extensions, their secrets from `secret_for`.
pub(super) fn builtin_lines(secret_for: &impl Fn(u16) -> String) -> BTreeMap<u16, LineConfig> {
    BUILTIN_EXTENSIONS
        .map(|n| {
            (
                n,
                LineConfig {
                    display: format!("Extension {n}"),
                    secret: Some(secret_for(n)),
                    ..LineConfig::new(n)
                },
            )
        })
        .collect()
}

/// Set key `k` of an extension section to `v`.
pub(super) fn set_key(l: &mut LineConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "secret" => {
            if v.is_empty() {
                return Err("secret must not be empty".into());
            }
            l.secret = Some(v.to_string())
        }
        "sha256" => {
            if !is_hex(v, 64) {
                return Err("sha256 must be 64 hex digits: SHA-256 of user:realm:secret".into());
            }
            l.sha256 = Some(v.to_ascii_lowercase())
        }
        "md5" => {
            if !is_hex(v, 32) {
                return Err("md5 must be 32 hex digits: MD5 of user:realm:secret".into());
            }
            l.md5 = Some(v.to_ascii_lowercase())
        }
        "display" | "name" => {
            if v.chars().count() > 31 || v.contains(['"', '\\']) || v.chars().any(char::is_control)
            {
                return Err("display must be at most 31 characters, without quotes".into());
            }
            l.display = v.to_string();
            l.display_set = true;
        }
        "lines" => l.lines = num(v, 1, u32::from(MAX_LINES))? as u8,
        "coverage" => l.coverage = ext_list(v)?,
        "delayed" => l.delayed = ext_list(v)?,
        "delay" => l.delay = num(v, 1, 20)? as u8,
        "call_waiting" => l.call_waiting = yes_no(v)?,
        "algorithm" | "algorithms" => l.algorithms = Some(algorithm_list(v)?),
        _ => return Err("unknown key".into()),
    }
    Ok(())
}

/// Section `l` (on line `lineno`) checked as a whole under `plan` and the
/// `[server]` algorithm `offer`, with its display name filled in.
pub(super) fn finish(
    lineno: usize,
    l: &LineConfig,
    plan: Plan,
    offer: &[DigestAlgorithm],
) -> Result<LineConfig, Fault> {
    let key = format!("[{}]", l.number);
    if !plan.contains(l.number) {
        return Err(Fault::new(
            lineno,
            key,
            format!(
                "{} is not an extension of the {} plan (set [server] digits)",
                l.number, plan
            ),
        ));
    }
    if l.secret.is_none() && l.sha256.is_none() && l.md5.is_none() {
        return Err(Fault::new(
            lineno,
            key,
            "no secret, sha256 or md5: nobody could register this extension",
        ));
    }
    // A phone claiming this line is offered its algorithms (the [server]
    // offer unless the line has its own), so the line must be able to answer
    // each of them.
    if l.secret.is_none() {
        let missing = l.offer(offer).iter().find(|a| match a {
            DigestAlgorithm::Sha256 => l.sha256.is_none(),
            DigestAlgorithm::Md5 => l.md5.is_none(),
        });
        if let Some(a) = missing {
            let name = a.key();
            let whose = if l.algorithms.is_some() {
                "its algorithm key offers"
            } else {
                "[server] algorithm offers"
            };
            return Err(Fault::new(
                lineno,
                key,
                format!(
                    "no secret and no {name} hash, but {whose} {name} to a phone \
                     claiming it: add {name} = HEX (or a secret), or leave {name} out \
                     of the offer"
                ),
            ));
        }
    }
    let mut l = l.clone();
    if l.display.is_empty() {
        l.display = format!("Extension {}", l.number);
    }
    Ok(l)
}

/// Each `coverage`/`delayed` key (line, extension, key) names other
/// configured extensions only.
pub(super) fn check_coverage(
    keys: &[(usize, u16, String)],
    lines: &BTreeMap<u16, LineConfig>,
) -> Result<(), Fault> {
    for (lineno, n, key) in keys {
        let Some(l) = lines.get(n) else { continue };
        let list = if key == "coverage" {
            &l.coverage
        } else {
            &l.delayed
        };
        if let Some(m) = list.iter().find(|m| !lines.contains_key(m) || *m == n) {
            return Err(Fault::new(
                *lineno,
                format!("[{n}] {key}"),
                format!("{m} must be another configured extension"),
            ));
        }
    }
    Ok(())
}
