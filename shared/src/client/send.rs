//! Sending commands to the daemon: one request-id scheme, one check of a line
//! before it is sent, one way of writing the control FIFO that never hangs.

use crate::control::{self, Command, Request, MAX_LINE, MAX_TEXT_CHARS};
use crate::runtime::{self, Kind, TrustError};
use nix::errno::Errno;
use std::fmt;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait before retrying a write to a full FIFO.
const RETRY: Duration = Duration::from_millis(10);

/// The first request id of a client process: its pid above a counter that starts
/// at the current second, so ids of one process are consecutive, ids of processes
/// running at the same time differ, and every id stays below 2^53 (exact in JSON
/// readers that use doubles). A client numbers its requests from here on.
pub fn first_request_id(now_ms: u64) -> u64 {
    let pid = u64::from(std::process::id()) & ((1 << 22) - 1);
    (pid << 30) | ((now_ms / 1000) & ((1 << 30) - 1)).max(1)
}

/// Why a command could not be handed to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The line is not one the daemon would read as this request.
    Invalid(String),
    /// No daemon: no FIFO, nobody reading it, or it closed it.
    NotRunning(String),
    /// The FIFO may not be opened (permissions) or may not be trusted.
    Refused(String),
    /// The FIFO stayed full until the deadline.
    Full(String),
    /// Anything else.
    Failed(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Invalid(m)
            | SendError::NotRunning(m)
            | SendError::Refused(m)
            | SendError::Full(m)
            | SendError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SendError {}

/// The line for `request`, checked before anything is sent: it must fit in
/// [`MAX_LINE`] bytes (so the write is atomic), be a single line, and parse back to
/// the same request with the daemon's own parser.
pub fn checked_line(request: &Request) -> Result<String, SendError> {
    if let Command::Message { text, .. } = &request.command {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(SendError::Invalid(format!(
                "text is {chars} characters, longer than {MAX_TEXT_CHARS}"
            )));
        }
    }
    let line = request.to_line();
    if line.len() > MAX_LINE {
        return Err(SendError::Invalid(format!(
            "command is {} bytes, longer than the control FIFO's limit of {MAX_LINE} \
             (newline included)",
            line.len()
        )));
    }
    if line.trim_end_matches('\n').contains(['\n', '\r']) {
        return Err(SendError::Invalid(
            "command arguments must not contain line breaks".into(),
        ));
    }
    match Request::parse(line.as_bytes()) {
        Ok(parsed) if parsed == *request => Ok(line),
        Ok(parsed) => Err(SendError::Invalid(format!(
            "the daemon would read `{}` instead of `{}`",
            parsed.command, request.command
        ))),
        Err((_, e)) => Err(SendError::Invalid(e.to_string())),
    }
}

/// Write `line` (already checked) to the FIFO at `path`, framed
/// ([`control::frame`]: a newline first, so a partial line another writer left
/// cannot join it) with a single `write`.
///
/// The FIFO is opened only when it and its directory may be trusted (see
/// [`crate::runtime`]), with `O_WRONLY | O_NONBLOCK`, so this never blocks: no FIFO
/// or nobody reading it (`ENXIO`) means the daemon is not running; a FIFO that
/// stays full is retried until `deadline`.
pub fn send_line(path: &Path, line: &str, deadline: Instant) -> Result<(), SendError> {
    let not_running = |why: &str| {
        SendError::NotRunning(format!("daemon not running: {why} ({})", path.display()))
    };
    let mut file = match runtime::open_trusted(path, Kind::Fifo, true) {
        Ok(f) => f,
        Err(TrustError::Missing(_)) => return Err(not_running("no control FIFO")),
        Err(TrustError::Io(_, e)) if e.raw_os_error() == Some(Errno::ENXIO as i32) => {
            return Err(not_running("nobody reads the control FIFO"))
        }
        Err(TrustError::Io(p, e)) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(SendError::Refused(format!(
                "{}: permission denied (join the daemon's group)",
                p.display()
            )))
        }
        Err(e @ TrustError::Untrusted(..)) => return Err(SendError::Refused(e.to_string())),
        Err(e) => return Err(SendError::Failed(e.to_string())),
    };
    let bytes = control::frame(line);
    loop {
        match file.write(&bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => {
                return Err(SendError::Failed(format!(
                    "{}: short write ({n} of {} bytes)",
                    path.display(),
                    bytes.len()
                )))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(SendError::Full(format!(
                        "the control FIFO stays full (daemon busy?) ({})",
                        path.display()
                    )));
                }
                std::thread::sleep(RETRY);
            }
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                return Err(not_running("the daemon closed the control FIFO"))
            }
            Err(e) => return Err(SendError::Failed(format!("{}: {e}", path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Command;
    use std::fs::OpenOptions;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    fn req(command: Command) -> Request {
        Request {
            id: Some(77),
            command,
        }
    }

    #[test]
    fn request_ids_fit_in_a_double_and_carry_the_pid() {
        let id = first_request_id(crate::now_ms());
        assert!(id > 0 && id < 1 << 53);
        assert_eq!(id >> 30, u64::from(std::process::id()) & ((1 << 22) - 1));
    }

    #[test]
    fn lines_are_checked() {
        let line = checked_line(&req(Command::Message {
            target: "21".into(),
            text: "hello there".into(),
        }))
        .expect("valid");
        assert_eq!(line, "#77 message 21 hello there\n");
        assert_eq!(
            checked_line(&req(Command::Reload)),
            Ok("#77 reload\n".into())
        );
        for (target, text) in [
            ("21", "x".repeat(600)),
            ("21", " x ".into()),
            ("21", "a\nb".into()),
        ] {
            let r = checked_line(&req(Command::Message {
                target: target.into(),
                text,
            }));
            assert!(matches!(r, Err(SendError::Invalid(_))), "{r:?}");
        }
    }

    #[test]
    fn no_fifo_or_no_reader_is_reported_at_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("control");
        let later = Instant::now() + Duration::from_secs(5);
        assert!(matches!(
            send_line(&p, "reload\n", later),
            Err(SendError::NotRunning(_))
        ));
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let r = send_line(&p, "reload\n", later);
        assert!(
            matches!(&r, Err(SendError::NotRunning(m)) if m.contains("nobody reads")),
            "{r:?}"
        );
    }

    #[test]
    fn writes_one_framed_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("control");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&p)
            .expect("reader");
        send_line(&p, "#7 reload\n", Instant::now()).expect("sent");
        let mut got = String::new();
        reader.read_to_string(&mut got).ok();
        assert_eq!(got, "\n#7 reload\n", "framed by a leading newline");
    }
}
