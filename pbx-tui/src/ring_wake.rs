//! Waking the event loop the moment the daemon writes an event.
//!
//! A thread of its own sleeps on the state block's event ring (a futex the daemon
//! wakes after each batch of events, see `StateReader::wait_for_events`) and, when
//! the ring moves, notes it and writes a byte to the loop's wake-up socket (the one
//! signals use), so an event reaches the screen within one frame instead of at the
//! next periodic look. It reopens the block when the daemon restarts; while there
//! is none it looks again every [`REOPEN_EVERY`]. It never reads events itself:
//! the loop's `DaemonLink` does.

use coventry_shared::stateblock::{EventCursor, StateReader};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep on the ring before the thread checks whether it should stop or
/// the block was replaced.
const NAP: Duration = Duration::from_secs(1);
/// How often a missing state block is looked for again.
const REOPEN_EVERY: Duration = Duration::from_millis(500);

/// The waking thread's handle: whether it woke the loop since the last look.
pub struct RingWake {
    woken: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl RingWake {
    /// Start watching the state block at `state` and wake the loop through `waker`.
    pub fn start(state: PathBuf, waker: UnixStream) -> std::io::Result<RingWake> {
        let woken = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (noted, stopping) = (Arc::clone(&woken), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("ring-wake".into())
            .spawn(move || watch(&state, waker, &noted, &stopping))?;
        Ok(RingWake { woken, stop })
    }

    /// Whether the ring moved since the last call.
    pub fn take(&self) -> bool {
        self.woken.swap(false, Ordering::SeqCst)
    }
}

impl Drop for RingWake {
    fn drop(&mut self) {
        // The thread sees it within one NAP; it holds nothing that needs it sooner.
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn watch(state: &std::path::Path, mut waker: UnixStream, woken: &AtomicBool, stop: &AtomicBool) {
    let mut reader: Option<(StateReader, EventCursor)> = None;
    while !stop.load(Ordering::SeqCst) {
        let Some((r, seen)) = reader.as_mut() else {
            match StateReader::open(state) {
                Ok(r) => {
                    let at = r.cursor_at_end();
                    reader = Some((r, at));
                }
                Err(_) => std::thread::sleep(REOPEN_EVERY),
            }
            continue;
        };
        r.wait_for_events(seen, NAP);
        if r.replaced() {
            reader = None;
            continue;
        }
        let head = r.cursor_at_end();
        if head != *seen {
            *seen = head;
            woken.store(true, Ordering::SeqCst);
            let _ = waker.write(&[0]);
        }
    }
}
