//! Signals: SIGTERM, SIGHUP, SIGINT and SIGQUIT end the console, SIGWINCH redraws
//! it.
//!
//! A thread of its own receives them (signal-hook's iterator), notes them and
//! wakes the event loop through a socket pair that the loop waits on together with
//! the terminal, so a signal is acted on at once in every state. Should the loop
//! not have ended [`GRACE`] after an ending signal (it is stuck writing to a
//! terminal that stopped reading: a stalled SSH link), the thread puts the
//! terminal modes back and ends the process itself, with the same status.

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH};
use signal_hook::iterator::{Handle, Signals};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The signals that end the console.
pub const ENDING: [i32; 4] = [SIGTERM, SIGHUP, SIGINT, SIGQUIT];

/// How long the event loop gets to end by itself after an ending signal.
pub const GRACE: Duration = Duration::from_millis(500);

/// The exit status after signal `sig`: 128 + its number, as shells report it.
pub fn exit_status(sig: i32) -> u8 {
    u8::try_from(128 + sig.clamp(0, 127)).unwrap_or(u8::MAX)
}

/// What arrived since the last [`SignalWatch::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caught {
    /// The first ending signal, if one came.
    pub ending: Option<i32>,
    /// The terminal changed size.
    pub resized: bool,
}

/// The signal thread and what it noted.
pub struct SignalWatch {
    wake: UnixStream,
    /// A writing end of the wake-up socket for others who wake the loop.
    waker: UnixStream,
    ending: Arc<AtomicI32>,
    resized: Arc<AtomicBool>,
    handle: Handle,
}

impl SignalWatch {
    /// Catch the ending signals and SIGWINCH from now on.
    pub fn start() -> io::Result<SignalWatch> {
        let (wake, waker) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        waker.set_nonblocking(true)?;
        let mut signals = Signals::new(ENDING.iter().chain(&[SIGWINCH]))?;
        let handle = signals.handle();
        let ending = Arc::new(AtomicI32::new(0));
        let resized = Arc::new(AtomicBool::new(false));
        let (noted, winched) = (Arc::clone(&ending), Arc::clone(&resized));
        let spare = waker.try_clone()?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut waker = waker;
                for sig in signals.forever() {
                    if sig == SIGWINCH {
                        winched.store(true, Ordering::SeqCst);
                        let _ = waker.write(&[0]);
                        continue;
                    }
                    let _ = noted.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                    let _ = waker.write(&[0]);
                    std::thread::sleep(GRACE);
                    // Still here: the loop is stuck. Cooked mode back (no output,
                    // which may be what blocks), then out without running anything
                    // that could block too.
                    let _ = crossterm::terminal::disable_raw_mode();
                    let first = noted.load(Ordering::SeqCst);
                    signal_hook::low_level::exit(i32::from(exit_status(first)));
                }
            })?;
        Ok(SignalWatch {
            wake,
            waker: spare,
            ending,
            resized,
            handle,
        })
    }

    /// What the event loop waits on (readable when a signal came).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Another writing end of the wake-up socket: a byte written to it wakes the
    /// loop like a signal does (see `ring_wake`).
    pub fn waker(&self) -> io::Result<UnixStream> {
        self.waker.try_clone()
    }

    /// The first ending signal, if one came (without emptying anything): for
    /// loops over many keys to stop early.
    pub fn ending(&self) -> Option<i32> {
        let sig = self.ending.load(Ordering::SeqCst);
        (sig != 0).then_some(sig)
    }

    /// What came since the last call; empties the wake-up socket.
    pub fn take(&self) -> Caught {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        Caught {
            ending: self.ending(),
            resized: self.resized.swap(false, Ordering::SeqCst),
        }
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.handle.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_128_plus_the_number() {
        assert_eq!(exit_status(SIGHUP), 129);
        assert_eq!(exit_status(SIGINT), 130);
        assert_eq!(exit_status(SIGQUIT), 131);
        assert_eq!(exit_status(SIGTERM), 143);
    }
}
