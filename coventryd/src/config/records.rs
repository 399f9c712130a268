//! `[records]`: the call records file.

use super::values::num;

/// `[records]`: the call records file in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsConfig {
    /// Rotate the file when it grows past this many bytes (`max_size`, 10 MiB).
    pub max_size: u64,
    /// Rotated files kept (`keep`, 5); 0 keeps none.
    pub keep: u32,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            max_size: 10 << 20,
            keep: 5,
        }
    }
}

/// Set `[records]` key `k` to `v`.
pub(super) fn set_key(r: &mut RecordsConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "max_size" => r.max_size = u64::from(num(v, 4096, u32::MAX)?),
        "keep" => r.keep = num(v, 0, 100)?,
        _ => return Err("unknown key".into()),
    }
    Ok(())
}
