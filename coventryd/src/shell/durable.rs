//! Settings and the run state reach the disk before anything announces them,
//! without the loop waiting for the disk: the files are written (with fsync) on
//! a blocking thread, and the outbox that changed them, with every outbox after
//! it, is held until the write is done. The state block's registrations and
//! calls are published at once; answers, events, hooks and sends wait their
//! turn, in order.

use crate::shell::persist;
use crate::switch::Outbox;
use std::collections::VecDeque;
use std::path::PathBuf;
use tokio::task::JoinHandle;

/// What one background write carries.
#[derive(Debug, Default)]
pub struct Write {
    /// The settings file's new content.
    pub settings: Option<Vec<u8>>,
    /// The run state to keep.
    pub runstate: Option<String>,
}

/// The write under way, if any, and the outboxes waiting for it.
pub struct Durable {
    state_dir: PathBuf,
    writing: Option<JoinHandle<Vec<String>>>,
    held: VecDeque<Outbox>,
}

impl Durable {
    /// Nothing written yet, files in `state_dir`.
    pub fn new(state_dir: PathBuf) -> Durable {
        Durable {
            state_dir,
            writing: None,
            held: VecDeque::new(),
        }
    }

    /// Whether a write is under way (outboxes must then wait).
    pub fn busy(&self) -> bool {
        self.writing.is_some()
    }

    /// Whether `out` changes something that must be on disk before it is told.
    pub fn needs_write(out: &Outbox) -> bool {
        out.settings_changed || out.runstate.is_some()
    }

    /// Start writing `w` in the background.
    pub fn start(&mut self, w: Write) {
        let dir = self.state_dir.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let mut errors = Vec::new();
            if let Some(bytes) = w.settings {
                if let Err(e) = persist::write_settings(&dir, &bytes) {
                    errors.push(format!("cannot save settings: {e}"));
                }
            }
            if let Some(name) = w.runstate {
                if let Err(e) = persist::save_runstate(&dir, &name) {
                    errors.push(format!("cannot keep the run state: {e}"));
                }
            }
            errors
        }));
    }

    /// Hold `out` until the write under way is done.
    pub fn hold(&mut self, out: Outbox) {
        self.held.push_back(out);
    }

    /// Wait for the write under way (pending forever when there is none); its
    /// errors are logged; the outboxes that waited for it, in order.
    pub async fn finished(&mut self) -> VecDeque<Outbox> {
        let Some(w) = self.writing.as_mut() else {
            return std::future::pending().await;
        };
        let errors = match w.await {
            Ok(e) => e,
            Err(e) => vec![format!("the settings writer failed: {e}")],
        };
        self.writing = None;
        for e in errors {
            log::error!("{e}");
        }
        std::mem::take(&mut self.held)
    }
}
