//! `[hooks]`: the executables the switch runs on its activity.

use super::values::num;
use std::path::PathBuf;

/// `[hooks]`: the executables the switch runs on its activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// Where the hooks are (`dir`, default `/usr/libexec/coventry`).
    pub dir: PathBuf,
    /// A hook still running after this many seconds is killed (`timeout`, 10).
    pub timeout: u32,
    /// Hooks running at once (`max_running`, 4).
    pub max_running: usize,
    /// Runs waiting for a slot; beyond it they are dropped and counted (`queue`, 256).
    pub queue: usize,
    /// Bytes of output kept per stream (`max_output`, 65536).
    pub max_output: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            dir: PathBuf::from("/usr/libexec/coventry"),
            timeout: 10,
            max_running: 4,
            queue: 256,
            max_output: 65_536,
        }
    }
}

/// Set `[hooks]` key `k` to `v`.
pub(super) fn set_key(h: &mut HooksConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "dir" => {
            if !v.starts_with('/') {
                return Err("dir must be an absolute path".into());
            }
            h.dir = PathBuf::from(v);
        }
        "timeout" => h.timeout = num(v, 1, 3600)?,
        "max_running" => h.max_running = num(v, 1, 64)? as usize,
        "queue" => h.queue = num(v, 0, 100_000)? as usize,
        "max_output" => h.max_output = num(v, 0, 16 << 20)? as usize,
        _ => return Err("unknown key".into()),
    }
    Ok(())
}
