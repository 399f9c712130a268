//! `[calls]`: call timing and limits.

use super::values::num;

/// `[calls]`: call timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallsConfig {
    /// Seconds per ring (the ring count advances this often).
    pub ring: u32,
    /// Rings before an unanswered call ends as "no answer".
    pub noanswer: u32,
    /// Longest an answered call lasts, seconds (0: no limit): the switch then hangs
    /// up both sides, so a call whose BYE was lost does not stay forever.
    pub max_duration: u32,
    /// Calls one extension may be making at once (0: no limit); beyond, its
    /// INVITE gets 503 with Retry-After.
    pub max_per_line: u32,
}

/// `[calls] max_per_line` by default: more than any desk phone's line keys.
pub const DEFAULT_MAX_CALLS_PER_LINE: u32 = 8;

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring: 5,
            noanswer: 6,
            max_duration: 43_200,
            max_per_line: DEFAULT_MAX_CALLS_PER_LINE,
        }
    }
}

/// Set `[calls]` key `k` to `v`.
pub(super) fn set_key(c: &mut CallsConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "ring" => c.ring = num(v, 1, 60)?,
        "noanswer" | "no_answer" => c.noanswer = num(v, 1, 100)?,
        "max_per_line" => c.max_per_line = num(v, 0, 1_000_000)?,
        "max_duration" => {
            let n = num(v, 0, 604_800)?;
            if n > 0 && n < 60 {
                return Err("max_duration is 0 (no limit) or at least 60 seconds".into());
            }
            c.max_duration = n;
        }
        _ => return Err("unknown key".into()),
    }
    Ok(())
}
