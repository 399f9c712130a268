//! Writing one command line to the daemon's control FIFO without ever hanging the
//! console (the same approach as pbxctl: a FIFO we may trust, `O_WRONLY |
//! O_NONBLOCK`, one framed `write`).

use coventry_shared::control;
use coventry_shared::runtime::{self, Kind, TrustError};
use nix::errno::Errno;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a full FIFO is retried before giving up (the screen stays frozen that
/// long at most).
pub const FULL_FIFO_PATIENCE: Duration = Duration::from_millis(300);

/// Write `line` (checked, at most 512 bytes) to the FIFO at `path`, framed
/// ([`control::frame`]) in one atomic `write`; the FIFO and its directory must be
/// ones we may trust (see `coventry_shared::runtime`). Errors are one line for the
/// status line.
pub fn send_line(path: &Path, line: &str) -> Result<(), String> {
    let deadline = Instant::now() + FULL_FIFO_PATIENCE;
    let mut file = match runtime::open_trusted(path, Kind::Fifo, true) {
        Ok(f) => f,
        Err(TrustError::Missing(_)) => return Err("daemon not running: no control FIFO".into()),
        Err(TrustError::Io(_, e)) if e.raw_os_error() == Some(Errno::ENXIO as i32) => {
            return Err("daemon not running: nobody reads the control FIFO".into())
        }
        Err(TrustError::Io(p, e)) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(format!(
                "{}: permission denied (join the daemon's group)",
                p.display()
            ))
        }
        Err(e) => return Err(e.to_string()),
    };
    let bytes = control::frame(line);
    loop {
        match file.write(&bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => {
                return Err(format!(
                    "short write to the control FIFO ({n} of {})",
                    bytes.len()
                ))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return Err("the control FIFO stays full (daemon busy?)".into())
            }
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                return Err("daemon not running: it closed the control FIFO".into())
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use std::fs::OpenOptions;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn no_fifo_or_no_reader_is_reported_at_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("control");
        assert!(send_line(&p, "reload\n")
            .expect_err("none")
            .contains("no control FIFO"));
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let t = Instant::now();
        assert!(send_line(&p, "reload\n")
            .expect_err("no reader")
            .contains("nobody reads"));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn writes_one_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("control");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&p)
            .expect("reader");
        send_line(&p, "#7 reload\n").expect("sent");
        let mut got = String::new();
        reader.read_to_string(&mut got).ok();
        assert_eq!(got, "\n#7 reload\n", "framed by a leading newline");
    }
}
