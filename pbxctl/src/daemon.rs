//! Finding the daemon: the runtime directory, its state block and its liveness.

use crate::error::Error;
use crate::output::warn;
use coventry_shared::client::{heartbeat_age_ms, liveness, Liveness};
use coventry_shared::runtime;
use coventry_shared::stateblock::{OpenError, Snapshot, StateReader};
use std::path::{Path, PathBuf};

/// The runtime directory from `--runtime-dir`/`COVENTRY_RUNTIME_DIR` or the default.
pub fn runtime_dir(explicit: Option<&Path>) -> PathBuf {
    runtime::runtime_dir(explicit.filter(|p| !p.as_os_str().is_empty()))
}

/// The state directory: `explicit` (`--state-dir`/`COVENTRY_STATE_DIR`), else the
/// one the daemon whose runtime directory is `runtime_dir` publishes in its state
/// block, else the default.
pub fn state_dir(explicit: Option<&Path>, runtime_dir: &Path) -> PathBuf {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return p.to_path_buf();
    }
    open_state(runtime_dir)
        .ok()
        .map(|r| r.header().state_dir)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| runtime::state_dir(None))
}

/// Open the state block in `dir` — the directory and the file checked the way
/// every reader must (owned by us, root, or a service account; see
/// `coventry_shared::runtime`): a missing or truncated block means the daemon is not
/// running (status 3); an unreadable, untrusted or foreign file is another error
/// (status 1).
pub fn open_state(dir: &Path) -> Result<StateReader, Error> {
    StateReader::open(&runtime::state_path(dir)).map_err(open_error)
}

/// The failure of an opening of the state block, as [`open_state`] reports it.
pub fn open_error(e: OpenError) -> Error {
    match e {
        OpenError::Missing(p) => Error::not_running(format!(
            "daemon not running: no state block at {}",
            p.display()
        )),
        e @ OpenError::Truncated { .. } => Error::not_running(format!("daemon not running: {e}")),
        OpenError::Io(p, e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Error::failed(format!(
                "{}: permission denied (pbxctl needs to be in the daemon's group)",
                p.display()
            ))
        }
        other => Error::failed(other.to_string()),
    }
}

/// Fail with status 3 unless the daemon's process exists.
pub fn require_alive(reader: &StateReader) -> Result<(), Error> {
    if reader.daemon_alive() {
        Ok(())
    } else {
        Err(Error::not_running(format!(
            "daemon not running: pid {} is gone (the state block is left over)",
            reader.header().pid
        )))
    }
}

/// Open the state block of the running daemon in `dir` and take a consistent
/// snapshot of it (status 3 when the daemon is gone). A stale heartbeat only earns a
/// warning on stderr: what the block says is still the best there is.
pub fn live_snapshot(dir: &Path) -> Result<Snapshot, Error> {
    let reader = open_state(dir)?;
    require_alive(&reader)?;
    let snap = snapshot(&reader)?;
    let now = coventry_shared::now_ms();
    if liveness(&reader, &snap.header, now) == Liveness::StaleHeartbeat {
        warn(&format!(
            "warning: the daemon's heartbeat is {:.1}s old; this may be out of date",
            heartbeat_age_ms(&snap.header, now) as f64 / 1000.0
        ));
    }
    Ok(snap)
}

/// A consistent snapshot of `reader`'s block: a block cut or replaced while being
/// read means the daemon is restarting (status 3); one that stays busy is status 1.
pub fn snapshot(reader: &StateReader) -> Result<Snapshot, Error> {
    reader.snapshot().ok_or_else(|| {
        if reader.replaced() {
            Error::not_running(
                "daemon not running: its state block was truncated or replaced while being \
                 read (restarting?)",
            )
        } else {
            Error::failed("could not read a consistent state block (daemon busy?)")
        }
    })
}
