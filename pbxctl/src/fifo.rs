//! Writing one command line to the control FIFO without ever hanging.

use crate::error::Error;
use coventry_shared::control::{self, Request, MAX_LINE};
use coventry_shared::runtime::{self, Kind, TrustError};
use nix::errno::Errno;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait before retrying a write to a full FIFO.
const RETRY: Duration = Duration::from_millis(20);

/// The line for `request`, checked locally before anything is sent: it must fit in
/// [`MAX_LINE`] bytes (so the write is atomic), be a single line, and parse back to
/// the same request with the daemon's own parser. Failures are usage errors.
pub fn checked_line(request: &Request) -> Result<String, Error> {
    let line = request.to_line();
    if line.len() > MAX_LINE {
        return Err(Error::usage(format!(
            "command is {} bytes, longer than the control FIFO's limit of {MAX_LINE} \
             (newline included)",
            line.len()
        )));
    }
    if line.trim_end_matches('\n').contains(['\n', '\r']) {
        return Err(Error::usage(
            "command arguments must not contain line breaks",
        ));
    }
    match Request::parse(line.as_bytes()) {
        Ok(parsed) if parsed == *request => Ok(line),
        Ok(parsed) => Err(Error::usage(format!(
            "the daemon would read `{}` instead of `{}`",
            parsed.command, request.command
        ))),
        Err((_, e)) => Err(Error::usage(e.to_string())),
    }
}

/// Write `line` (already checked) to the FIFO at `path`, framed
/// ([`control::frame`]: a newline first, so a partial line another writer left
/// cannot join it) with a single `write`.
///
/// The FIFO is opened only when it and its directory may be trusted (a FIFO of the
/// directory's owner, not a link; see `coventry_shared::runtime`), with
/// `O_WRONLY | O_NONBLOCK`, so this never blocks: no FIFO or nobody reading it
/// (`ENXIO`) means the daemon is not running (status 3); a FIFO that stays full
/// until `deadline` is a timeout (status 4).
pub fn send_line(path: &Path, line: &str, deadline: Instant) -> Result<(), Error> {
    let not_running =
        |why: &str| Error::not_running(format!("daemon not running: {why} ({})", path.display()));
    let mut file = match runtime::open_trusted(path, Kind::Fifo, true) {
        Ok(f) => f,
        Err(TrustError::Missing(_)) => return Err(not_running("no control FIFO")),
        Err(TrustError::Io(_, e)) if e.raw_os_error() == Some(Errno::ENXIO as i32) => {
            return Err(not_running("nobody reads the control FIFO"))
        }
        Err(TrustError::Io(p, e)) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(Error::failed(format!(
                "{}: permission denied (pbxctl needs to be in the daemon's group)",
                p.display()
            )))
        }
        Err(e) => return Err(Error::failed(e.to_string())),
    };
    let bytes = control::frame(line);
    loop {
        match file.write(&bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => {
                return Err(Error::failed(format!(
                    "{}: short write ({n} of {} bytes)",
                    path.display(),
                    bytes.len()
                )))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(Error::timeout(format!(
                        "timed out: the control FIFO stays full ({})",
                        path.display()
                    )));
                }
                std::thread::sleep(RETRY);
            }
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                return Err(not_running("the daemon closed the control FIFO"))
            }
            Err(e) => return Err(Error::failed(format!("{}: {e}", path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::control::Command;

    fn req(command: Command) -> Request {
        Request {
            id: Some(77),
            command,
        }
    }

    #[test]
    fn good_lines_pass() {
        let line = checked_line(&req(Command::Message {
            target: "21".into(),
            text: "hello there".into(),
        }))
        .expect("valid");
        assert_eq!(line, "#77 message 21 hello there\n");
        assert_eq!(
            checked_line(&req(Command::Reload)).expect("valid"),
            "#77 reload\n"
        );
    }

    #[test]
    fn bad_lines_are_usage_errors() {
        let msg = |target: &str, text: &str| {
            checked_line(&req(Command::Message {
                target: target.into(),
                text: text.into(),
            }))
        };
        let e = msg("21", &"x".repeat(MAX_LINE)).expect_err("too long");
        assert_eq!(e.status, crate::error::Status::Usage);
        assert!(e.to_string().contains("longer than"), "{e}");
        // Exactly at the limit is fine: "#77 message 21 " is 15 bytes, plus newline.
        assert!(msg("21", &"x".repeat(MAX_LINE - 16)).is_ok());
        assert!(msg("21", &"x".repeat(MAX_LINE - 15)).is_err());
        assert!(msg("21", "two\nlines").is_err());
        assert!(msg("21", "cr\rhere").is_err());
        assert!(msg("2 1", "hi").is_err());
        assert!(msg("21", " padded ").is_err());
        assert!(msg("", "hi").is_err());
    }

    #[test]
    fn missing_fifo_is_not_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = send_line(&dir.path().join("control"), "reload\n", Instant::now())
            .expect_err("no fifo");
        assert_eq!(e.status, crate::error::Status::NotRunning);
        std::fs::write(dir.path().join("plain"), "").expect("write");
        let e = send_line(&dir.path().join("plain"), "reload\n", Instant::now())
            .expect_err("not a fifo");
        assert_eq!(e.status, crate::error::Status::Failed);
    }

    #[test]
    fn fifo_without_reader_is_not_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("control");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let e = send_line(&p, "reload\n", Instant::now()).expect_err("no reader");
        assert_eq!(e.status, crate::error::Status::NotRunning);
        assert!(e.to_string().contains("nobody reads"), "{e}");
    }
}
