//! Reading the terminal: one `poll(2)` on the terminal and the signal wake-up
//! socket with a timeout, then at most one `read(2)` of the terminal.
//!
//! End-of-file, and the errors a terminal gives once it is gone (EIO after a
//! hang-up, ENXIO, EBADF), end the input for good: the console must not outlive
//! its terminal. A read never returns more than [`READ_SIZE`] bytes, so a flood of
//! input is handled a slice per turn of the loop and never keeps it from the
//! signals and the state block.

use crate::keys::KeyDecoder;
use crossterm::event::KeyEvent;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

/// Bytes read from the terminal per turn at most.
pub const READ_SIZE: usize = 1024;

/// What a wait brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Keys were typed (possibly none: part of a sequence, or bytes that are no key).
    Keys(Vec<KeyEvent>),
    /// The terminal is gone: end-of-file or an error reading it, said in words.
    Ended(String),
    /// The other descriptor (the signal wake-up) became readable.
    Woken,
    /// Nothing happened within the timeout.
    Timeout,
}

/// The terminal's input, decoded into keys.
pub struct Input<F: AsFd> {
    tty: F,
    decoder: KeyDecoder,
    ended: Option<String>,
}

fn poll_timeout(d: Duration) -> PollTimeout {
    // Rounded up, so a wait of 0.3 ms does not become a busy poll of 0 ms.
    let ms = d.as_micros().div_ceil(1000).min(60_000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

impl<F: AsFd> Input<F> {
    /// Read keys from `tty` (the console's standard input).
    pub fn new(tty: F) -> Input<F> {
        Input {
            tty,
            decoder: KeyDecoder::new(),
            ended: None,
        }
    }

    /// Wait up to `timeout` for the terminal or `wake`, whichever comes first.
    /// Once the terminal has ended, every call says so at once.
    pub fn wait(&mut self, wake: BorrowedFd<'_>, timeout: Duration) -> Wake {
        if let Some(why) = &self.ended {
            return Wake::Ended(why.clone());
        }
        let mut fds = [
            PollFd::new(self.tty.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake, PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, poll_timeout(timeout)) {
            Ok(0) => return Wake::Timeout,
            Ok(_) => {}
            Err(Errno::EINTR | Errno::EAGAIN) => return Wake::Woken,
            Err(e) => return self.end(format!("cannot wait for the terminal: {}", e.desc())),
        }
        // Any event on the terminal (data, hang-up, error) is looked at by reading
        // it: a read tells data from end-of-file from an error.
        let tty_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if !tty_ready {
            return Wake::Woken;
        }
        let mut buf = [0u8; READ_SIZE];
        match nix::unistd::read(self.tty.as_fd().as_raw_fd(), &mut buf) {
            Ok(0) => self.end("the terminal hung up (end of input)".into()),
            Ok(n) => Wake::Keys(self.decoder.push(&buf[..n])),
            Err(Errno::EINTR | Errno::EAGAIN) => Wake::Keys(Vec::new()),
            Err(e) => self.end(format!("the terminal is gone ({})", e.desc())),
        }
    }

    fn end(&mut self, why: String) -> Wake {
        self.ended = Some(why.clone());
        Wake::Ended(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyCode;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    const LONG: Duration = Duration::from_secs(5);

    #[test]
    fn keys_then_the_end() {
        let (tty, mut typist) = UnixStream::pair().expect("pair");
        let (wake, _waker) = UnixStream::pair().expect("pair");
        let mut input = Input::new(tty);
        assert_eq!(
            input.wait(wake.as_fd(), Duration::from_millis(10)),
            Wake::Timeout
        );
        typist.write_all(b"q\x1b[A").expect("write");
        match input.wait(wake.as_fd(), LONG) {
            Wake::Keys(k) => assert_eq!(
                k.iter().map(|k| k.code).collect::<Vec<_>>(),
                vec![KeyCode::Char('q'), KeyCode::Up]
            ),
            other => panic!("{other:?}"),
        }
        drop(typist);
        let t = std::time::Instant::now();
        assert!(
            matches!(input.wait(wake.as_fd(), LONG), Wake::Ended(w) if w.contains("end of input"))
        );
        assert!(matches!(input.wait(wake.as_fd(), LONG), Wake::Ended(_)));
        assert!(
            t.elapsed() < LONG,
            "the end is seen at once, not after the timeout"
        );
    }

    #[test]
    fn the_wake_up_interrupts_the_wait() {
        let (tty, _typist) = UnixStream::pair().expect("pair");
        let (wake, mut waker) = UnixStream::pair().expect("pair");
        let mut input = Input::new(tty);
        waker.write_all(&[0]).expect("write");
        assert_eq!(input.wait(wake.as_fd(), LONG), Wake::Woken);
    }

    #[test]
    fn a_read_error_ends_the_input() {
        // A descriptor open for writing only: poll says ready, read fails (EBADF).
        let dir = tempfile::tempdir().expect("tmp");
        let file = std::fs::File::create(dir.path().join("x")).expect("file");
        let (wake, _waker) = UnixStream::pair().expect("pair");
        let mut input = Input::new(file);
        assert!(matches!(input.wait(wake.as_fd(), LONG), Wake::Ended(w) if w.contains("gone")));
    }

    #[test]
    fn timeouts_round_up() {
        assert_eq!(i32::from(poll_timeout(Duration::from_micros(300))), 1);
        assert_eq!(i32::from(poll_timeout(Duration::ZERO)), 0);
        assert_eq!(i32::from(poll_timeout(Duration::from_secs(1))), 1000);
    }
}
