//! Bounds on what one authenticated party may have in flight (calls at once,
//! texts being delivered): beyond them its request gets a refusal with
//! Retry-After, the `limited` counter counts it, and one log line a minute per
//! party and kind says so.

use super::Switch;
use std::collections::HashMap;

/// Most texts one sender may have being delivered at once.
pub const MAX_PENDING_TEXTS: usize = 16;
/// Most bytes of text one sender may have being delivered at once.
pub const MAX_PENDING_TEXT_BYTES: usize = 16 * 1024;
/// Log lines per party and kind of limit, one per this many ms.
const LOG_EVERY_MS: u64 = 60_000;
/// Parties remembered for the log's rate limit.
const LOG_KEYS: usize = 1024;

/// Texts, and their bytes, one sender has in flight (to phones or to the SMS
/// route): counted as they start and end.
#[derive(Debug, Default)]
pub struct InFlight(HashMap<String, (usize, usize)>);

impl InFlight {
    /// A text of `bytes` from `sender` starts.
    pub fn add(&mut self, sender: &str, bytes: usize) {
        let p = self.0.entry(sender.to_string()).or_default();
        p.0 += 1;
        p.1 += bytes;
    }

    /// A text of `bytes` from `sender` is done.
    pub fn remove(&mut self, sender: &str, bytes: usize) {
        if let Some(p) = self.0.get_mut(sender) {
            p.0 = p.0.saturating_sub(1);
            p.1 = p.1.saturating_sub(bytes);
            if p.0 == 0 {
                self.0.remove(sender);
            }
        }
    }

    /// Texts (and their bytes) `sender` has in flight.
    pub fn of(&self, sender: &str) -> (usize, usize) {
        self.0.get(sender).copied().unwrap_or_default()
    }
}

/// When each (kind, party) was last logged.
#[derive(Debug, Default)]
pub struct LimitLog {
    last: HashMap<(&'static str, String), u64>,
}

impl LimitLog {
    /// Whether to log `kind` for `party` now (at most once a minute each).
    pub fn should_log(&mut self, now_ms: u64, kind: &'static str, party: &str) -> bool {
        if self.last.len() >= LOG_KEYS {
            self.last
                .retain(|_, t| now_ms.saturating_sub(*t) < LOG_EVERY_MS);
        }
        let key = (kind, party.to_string());
        match self.last.get(&key) {
            Some(t) if now_ms.saturating_sub(*t) < LOG_EVERY_MS => false,
            _ => {
                if self.last.len() < LOG_KEYS {
                    self.last.insert(key, now_ms);
                }
                true
            }
        }
    }
}

impl Switch {
    /// Whether `ext` is making as many calls as `[calls] max_per_line` allows;
    /// counted and logged when it is.
    pub(super) fn over_call_limit(&mut self, now_ms: u64, ext: u16) -> bool {
        let max = self.config.calls.max_per_line;
        let live = self.calls.live_from(ext);
        if max == 0 || live < max {
            return false;
        }
        self.refused_over_limit(now_ms, "calls", &ext.to_string(), live);
        true
    }

    /// Whether as many calls go to the upstream's default route as `[upstream]
    /// max_calls` allows (emergency calls never count, nor are they refused);
    /// counted and logged when they do.
    pub(super) fn over_upstream_limit(&mut self, now_ms: u64) -> bool {
        let max = self.config.upstream.max_calls;
        let live = self.calls.upstream_live();
        if max == 0 || live < max {
            return false;
        }
        self.refused_over_limit(now_ms, "calls outside", "the switch", live);
        true
    }

    /// Whether `sender` has as many texts (or bytes) in flight as it may, to
    /// phones and to the SMS route together, with `text` more.
    pub(super) fn over_text_limit(&mut self, now_ms: u64, sender: &str, text: &str) -> bool {
        let (n, bytes) = self.texts_in_flight.of(sender);
        if n < MAX_PENDING_TEXTS && bytes + text.len() <= MAX_PENDING_TEXT_BYTES {
            return false;
        }
        self.refused_over_limit(now_ms, "texts", sender, n as u32);
        true
    }

    fn refused_over_limit(&mut self, now_ms: u64, kind: &'static str, party: &str, live: u32) {
        self.counters.limited += 1;
        if self.limit_log.should_log(now_ms, kind, party) {
            log::warn!(
                "{} has {live} {kind} in flight, its limit: refused with 503 \
                 (more such refusals within a minute are counted, not logged)",
                crate::logfmt::quoted(party)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LimitLog;

    #[test]
    fn one_line_a_minute_per_party_and_kind() {
        let mut l = LimitLog::default();
        assert!(l.should_log(0, "calls", "21"));
        assert!(!l.should_log(59_999, "calls", "21"));
        assert!(l.should_log(0, "texts", "21"));
        assert!(l.should_log(0, "calls", "22"));
        assert!(l.should_log(60_000, "calls", "21"));
        for n in 0..5000 {
            l.should_log(120_000, "calls", &n.to_string());
        }
        assert!(l.last.len() <= super::LOG_KEYS);
    }
}
