//! Runtime- and state-directory discovery, the same for every program.
//!
//! Order for the runtime directory: an explicit `--runtime-dir` flag (clap also fills
//! it from `COVENTRY_RUNTIME_DIR`), then `/run/coventry` for root,
//! `$XDG_RUNTIME_DIR/coventry`, and finally `/tmp/coventry-$UID`.

use std::path::{Path, PathBuf};

/// Environment variable naming the runtime directory.
pub const RUNTIME_DIR_ENV: &str = "COVENTRY_RUNTIME_DIR";
/// Environment variable naming the persistent state directory.
pub const STATE_DIR_ENV: &str = "COVENTRY_STATE_DIR";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "COVENTRY_CONFIG";
/// Configuration file read when none is named.
pub const DEFAULT_CONFIG: &str = "/etc/coventry.conf";
/// File name of the state block inside the runtime directory.
pub const STATE_FILE: &str = "state";
/// File name of the control FIFO inside the runtime directory.
pub const CONTROL_FILE: &str = "control";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The runtime directory: `explicit` (flag or `COVENTRY_RUNTIME_DIR`) or the default.
pub fn runtime_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(RUNTIME_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() {
        return PathBuf::from("/run/coventry");
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("coventry");
    }
    PathBuf::from(format!("/tmp/coventry-{}", nix::unistd::getuid()))
}

/// The persistent state directory: `explicit` (flag or `COVENTRY_STATE_DIR`), then
/// `/var/lib/coventry` for root, `$XDG_STATE_HOME/coventry`, `~/.local/state/coventry`.
pub fn state_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(STATE_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() {
        return PathBuf::from("/var/lib/coventry");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("coventry");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/state/coventry");
    }
    PathBuf::from(format!("/tmp/coventry-state-{}", nix::unistd::getuid()))
}

/// Path of the state block in `runtime_dir`.
pub fn state_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(STATE_FILE)
}

/// Path of the control FIFO in `runtime_dir`.
pub fn control_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(CONTROL_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_wins() {
        assert_eq!(runtime_dir(Some(Path::new("/x/y"))), PathBuf::from("/x/y"));
        assert_eq!(state_dir(Some(Path::new("/s"))), PathBuf::from("/s"));
        assert_eq!(state_path(Path::new("/r")), PathBuf::from("/r/state"));
        assert_eq!(control_path(Path::new("/r")), PathBuf::from("/r/control"));
    }
}
