//! Registrations and answered calls written to the state directory, each
//! when it is due, one write at a time, off the loop.

use crate::shell::persist;
use crate::switch::Switch;
use coventry_shared::now_ms;
use std::path::PathBuf;
use tokio::task::JoinHandle;

/// New or removed bindings are written at once (one write at a time; changes that
/// arrive during a write go into the next one).
pub(super) const PERSIST_SOON_MS: u64 = 0;
/// Refreshed bindings reach the disk within this delay.
pub(super) const PERSIST_LATER_MS: u64 = 5_000;
/// Answered calls reach the disk within this delay of an answer or an end
/// (coalesced: a burst of calls is one write). A crash sooner than this after an
/// answer loses that call's dialog (never the call itself, whose media is the
/// phones'); a call that ended just before a crash comes back, and the probe at
/// the start (`kept_calls.rs`) ends it.
pub(super) const PERSIST_CALLS_MS: u64 = 1_000;

/// Writes the registrations and the answered calls to the state directory, each
/// when it is due, one write at a time, off the loop.
pub(super) struct Persister {
    /// The state directory.
    pub(super) state_dir: PathBuf,
    /// When the registrations are due.
    due_ms: Option<u64>,
    /// When the answered calls are due.
    calls_due_ms: Option<u64>,
    writing: Option<JoinHandle<()>>,
}

/// Write each file atomically; failures are logged.
fn write_all(files: &[(PathBuf, Vec<u8>)]) {
    for (path, bytes) in files {
        if let Err(e) = persist::write_atomic(path, bytes, 0o600) {
            log::error!("cannot save {}: {e}", path.display());
        }
    }
}

/// The earlier of a due time and `at_ms`.
fn earlier(due: Option<u64>, at_ms: u64) -> Option<u64> {
    Some(due.map_or(at_ms, |d| d.min(at_ms)))
}

impl Persister {
    /// Nothing due yet, writing into `state_dir`.
    pub(super) fn new(state_dir: PathBuf) -> Persister {
        Persister {
            state_dir,
            due_ms: None,
            calls_due_ms: None,
            writing: None,
        }
    }

    /// The registrations are due by `at_ms`.
    pub(super) fn want(&mut self, at_ms: u64) {
        self.due_ms = earlier(self.due_ms, at_ms);
    }

    /// The answered calls are due by `at_ms`.
    pub(super) fn want_calls(&mut self, at_ms: u64) {
        self.calls_due_ms = earlier(self.calls_due_ms, at_ms);
    }

    /// Start the writes that are due, unless one is under way.
    pub(super) fn poll(&mut self, now: u64, sw: &Switch) {
        if self.writing.as_ref().is_some_and(|h| !h.is_finished()) {
            return; // one write at a time; the next one picks up all changes
        }
        let mut files = Vec::new();
        if self.due_ms.is_some_and(|d| d <= now) {
            self.due_ms = None;
            files.push(self.registrations(now, sw));
        }
        if self.calls_due_ms.is_some_and(|d| d <= now) {
            self.calls_due_ms = None;
            files.push(self.calls(sw));
        }
        if !files.is_empty() {
            self.writing = Some(tokio::task::spawn_blocking(move || write_all(&files)));
        }
    }

    fn registrations(&self, now: u64, sw: &Switch) -> (PathBuf, Vec<u8>) {
        (
            persist::registrations_path(&self.state_dir),
            persist::encode_registrations(sw.registrar(), now),
        )
    }

    fn calls(&self, sw: &Switch) -> (PathBuf, Vec<u8>) {
        (
            self.state_dir.join(persist::CALLS_FILE),
            persist::encode_calls(&sw.kept_calls()),
        )
    }

    /// Write the registrations and calls now, after any write still under way:
    /// that one holds older state and must not land on top of this.
    pub(super) async fn flush_now(&mut self, sw: &Switch) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
        write_all(&[self.registrations(now_ms(), sw), self.calls(sw)]);
    }
}
