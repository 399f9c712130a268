//! Persistence in the state directory: files written atomically (temporary file,
//! fsync, rename, fsync of the directory), so a `kill -9` at any moment leaves
//! either the old or the new file, never a torn one. Files are created and read only
//! through the daemon's own directory ([`SafeDir`]), never through a link.

use crate::switch::kept_calls::{self, KeptCalls};
use crate::switch::registrar::Registrar;
use crate::switch::settings::Settings;
use coventry_shared::runstate::{valid_name, DEFAULT_RUNSTATE, RUNSTATE_FILE};
use coventry_shared::runtime::SafeDir;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// File holding the registrations.
pub const REGISTRATIONS_FILE: &str = "registrations.json";

/// Format version of the registrations file.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct RegistrationsFile {
    version: u32,
    saved_ms: u64,
    registrar: Registrar,
}

/// Write `bytes` to `path` atomically with mode `mode`: a temporary file created
/// exclusively under an unpredictable name in the daemon's own directory (never
/// through a link), fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = SafeDir::of_own_file(path)?;
    dir.write_atomic(&name, bytes, mode)
}

/// The content of the daemon's own file at `path` (never read through a link).
pub fn read_own(path: &Path) -> io::Result<Vec<u8>> {
    let (dir, name) = SafeDir::of_own_file(path)?;
    dir.read_own(&name).map(|(bytes, _)| bytes)
}

/// Serialise the registrar for [`save_registrations`] (cheap enough for the event loop).
pub fn encode_registrations(reg: &Registrar, now_ms: u64) -> Vec<u8> {
    serde_json::to_vec(&RegistrationsFile {
        version: VERSION,
        saved_ms: now_ms,
        registrar: reg.clone(),
    })
    .unwrap_or_default()
}

/// Keep `name` as the run state in force (see `shared::runstate`).
pub fn save_runstate(state_dir: &Path, name: &str) -> io::Result<()> {
    write_atomic(
        &state_dir.join(RUNSTATE_FILE),
        format!("{name}\n").as_bytes(),
        0o640,
    )
}

/// The run state kept in `state_dir` (by the daemon, or by `pbxctl runstate`
/// while it was down); the default when there is none or it is unreadable.
pub fn load_runstate(state_dir: &Path) -> String {
    read_own(&state_dir.join(RUNSTATE_FILE))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| valid_name(s))
        .unwrap_or_else(|| DEFAULT_RUNSTATE.to_string())
}

/// File holding the operator settings (forwards, DND, speed dials).
pub const SETTINGS_FILE: &str = "settings.json";

#[derive(Serialize, Deserialize)]
struct SettingsFile {
    version: u32,
    settings: Settings,
}

/// Write the settings atomically to `state_dir`.
pub fn save_settings(state_dir: &Path, s: &Settings) -> io::Result<()> {
    write_settings(state_dir, &encode_settings(s)?)
}

/// Serialise the settings for [`write_settings`] (cheap enough for the event loop).
pub fn encode_settings(s: &Settings) -> io::Result<Vec<u8>> {
    serde_json::to_vec_pretty(&SettingsFile {
        version: VERSION,
        settings: s.clone(),
    })
    .map_err(io::Error::other)
}

/// Write settings serialised by [`encode_settings`] atomically to `state_dir`.
pub fn write_settings(state_dir: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(&state_dir.join(SETTINGS_FILE), bytes, 0o600)
}

/// Load the settings; a corrupt file is moved aside and reported.
pub fn load_settings(state_dir: &Path) -> Result<Option<Settings>, (String, PathBuf)> {
    let path = state_dir.join(SETTINGS_FILE);
    let bytes = match read_own(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err((e.to_string(), path)),
    };
    match serde_json::from_slice::<SettingsFile>(&bytes) {
        Ok(f) if f.version == VERSION => Ok(Some(f.settings)),
        Ok(f) => match aside(&path, format!("unknown version {}", f.version)) {
            Loaded::Corrupt(w, p) => Err((w, p)),
            _ => Ok(None),
        },
        Err(e) => match aside(&path, e.to_string()) {
            Loaded::Corrupt(w, p) => Err((w, p)),
            _ => Ok(None),
        },
    }
}

/// File holding the answered calls (they go on across a restart).
pub const CALLS_FILE: &str = "calls.json";

/// Serialise the answered calls (cheap enough for the event loop: a few per
/// phone at most).
pub fn encode_calls(calls: &KeptCalls) -> Vec<u8> {
    serde_json::to_vec(calls).unwrap_or_default()
}

/// Load the answered calls a previous run kept; a corrupt file is moved aside
/// and reported (its calls can no longer be relayed).
pub fn load_calls(state_dir: &Path) -> Result<KeptCalls, (String, PathBuf)> {
    let path = state_dir.join(CALLS_FILE);
    let bytes = match read_own(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(KeptCalls::default()),
        Err(e) => return Err((e.to_string(), path)),
    };
    let why = match serde_json::from_slice::<KeptCalls>(&bytes) {
        Ok(k) if k.version == kept_calls::VERSION => return Ok(k),
        Ok(k) => format!("unknown version {}", k.version),
        Err(e) => e.to_string(),
    };
    match aside(&path, why) {
        Loaded::Corrupt(w, p) => Err((w, p)),
        _ => Ok(KeptCalls::default()),
    }
}

/// Path of the registrations file in `state_dir`.
pub fn registrations_path(state_dir: &Path) -> PathBuf {
    state_dir.join(REGISTRATIONS_FILE)
}

/// Outcome of loading the registrations file.
#[derive(Debug)]
pub enum Loaded {
    /// No file yet.
    None,
    /// Loaded.
    Ok(Registrar),
    /// The file was unreadable or corrupt; it was moved aside to the given path.
    Corrupt(String, PathBuf),
}

/// Load registrations; a corrupt file is moved aside (never deleted) and reported.
pub fn load_registrations(state_dir: &Path) -> Loaded {
    let path = registrations_path(state_dir);
    let bytes = match read_own(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::None,
        Err(e) => return Loaded::Corrupt(e.to_string(), path),
    };
    match serde_json::from_slice::<RegistrationsFile>(&bytes) {
        Ok(f) if f.version == VERSION => Loaded::Ok(f.registrar),
        Ok(f) => aside(&path, format!("unknown version {}", f.version)),
        Err(e) => aside(&path, e.to_string()),
    }
}

fn aside(path: &Path, why: String) -> Loaded {
    let bad = path.with_extension(format!("corrupt-{}", coventry_shared::now_ms()));
    let moved = SafeDir::of_own_file(path).and_then(|(dir, name)| {
        let bad_name = bad
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        dir.rename(&name, &bad_name)
    });
    match moved {
        Ok(()) => Loaded::Corrupt(why, bad),
        Err(_) => Loaded::Corrupt(why, path.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::registrar::{ContactRequest, RegisterMeta};

    #[test]
    fn round_trip_and_corrupt() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(matches!(load_registrations(dir.path()), Loaded::None));
        let mut r = Registrar::new();
        let meta = RegisterMeta {
            source: "s",
            user_agent: "u",
            call_id: "c",
            cseq: 1,
            now_ms: 5,
            algorithm: None,
        };
        r.register(
            21,
            2,
            &[ContactRequest {
                uri: "sip:21@h".into(),
                expires: 60,
            }],
            &meta,
        )
        .expect("ok");
        let path = registrations_path(dir.path());
        write_atomic(&path, &encode_registrations(&r, 5), 0o600).expect("write");
        match load_registrations(dir.path()) {
            Loaded::Ok(back) => assert_eq!(back, r),
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, b"{\"version\":1,\"saved_ms\":").expect("write");
        match load_registrations(dir.path()) {
            Loaded::Corrupt(_, moved) => {
                assert!(moved.exists());
                assert!(!path.exists());
            }
            other => panic!("{other:?}"),
        }
    }
}
