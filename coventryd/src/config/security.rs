//! `[security]`: how the switch slows down password guessing.

use super::values::{num, yes_no};
use super::Fault;

/// `[security]`: how the switch slows down password guessing and keeps its log
/// readable under a guessing flood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Failed authentications from one address (IPv4, or IPv6 /64) before it has
    /// to wait (`source_failures`).
    pub source_failures: u32,
    /// Failed authentications for one extension, from addresses it is not known
    /// at, before such addresses have to wait (`extension_failures`).
    pub extension_failures: u32,
    /// The first wait, seconds (`backoff`); it doubles with every further failure.
    pub backoff: u32,
    /// The longest wait, seconds (`max_backoff`).
    pub max_backoff: u32,
    /// Failures are forgotten this long after the last one, seconds (`forget_after`).
    pub forget_after: u32,
    /// Failed-authentication log lines per address per minute (`log_failures`);
    /// the rest are counted in one summary line.
    pub log_failures: u32,
    /// Datagrams a second the switch reads from one source address before it
    /// drops the rest unparsed (`source_rate`; 0: no limit).
    pub source_rate: u32,
    /// Whether the words of residents' texts are published in the event ring
    /// (`show_texts`; default no: sender, recipient, length and result only).
    pub show_texts: bool,
}

/// `[security] source_rate` by default: far above what a household of phones
/// behind one address sends, far below a flood.
pub const DEFAULT_SOURCE_RATE: u32 = 2000;

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            source_failures: 5,
            extension_failures: 10,
            backoff: 10,
            max_backoff: 600,
            forget_after: 3600,
            log_failures: 10,
            source_rate: DEFAULT_SOURCE_RATE,
            show_texts: false,
        }
    }
}

/// Set `[security]` key `k` to `v`.
pub(super) fn set_key(s: &mut SecurityConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "source_failures" => s.source_failures = num(v, 1, 1000)?,
        "extension_failures" => s.extension_failures = num(v, 1, 1000)?,
        "backoff" => s.backoff = num(v, 1, 3600)?,
        "max_backoff" => s.max_backoff = num(v, 1, 86_400)?,
        "forget_after" => s.forget_after = num(v, 60, 604_800)?,
        "log_failures" => s.log_failures = num(v, 1, 1000)?,
        "source_rate" => s.source_rate = num(v, 0, 10_000_000)?,
        "show_texts" => s.show_texts = yes_no(v)?,
        _ => return Err("unknown key".into()),
    }
    Ok(())
}

/// What no single key can say wrong.
pub(super) fn check(sec: &SecurityConfig) -> Result<(), Fault> {
    if sec.backoff > sec.max_backoff {
        return Err(Fault::new(
            0,
            "[security] max_backoff",
            "max_backoff is smaller than backoff",
        ));
    }
    if sec.forget_after < sec.max_backoff {
        return Err(Fault::new(
            0,
            "[security] forget_after",
            "forget_after is smaller than max_backoff (failures would be forgotten \
             before the longest wait is over)",
        ));
    }
    Ok(())
}
