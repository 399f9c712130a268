//! Failures and the exit statuses they map to.

use std::fmt;
use std::io;

/// Exit status of pbxctl (see `cli::EXIT_CODES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: success.
    Ok = 0,
    /// 1: the daemon rejected the command or it failed; or another error.
    Failed = 1,
    /// 2: usage error.
    Usage = 2,
    /// 3: the daemon is not running.
    NotRunning = 3,
    /// 4: timed out waiting for the result.
    Timeout = 4,
    /// 5: a message reached some of its targets, not all.
    Partial = 5,
}

impl Status {
    /// The numeric exit status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure that ends pbxctl: its exit status and the one-line message for stderr
/// (none when there is nothing to say, e.g. the output pipe was closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Exit status.
    pub status: Status,
    /// Message printed as `pbxctl: MESSAGE`, if any.
    pub message: Option<String>,
}

impl Error {
    fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: Some(message.into()),
        }
    }

    /// Status 1: rejected, failed, or an unexpected error.
    pub fn failed(message: impl Into<String>) -> Error {
        Error::new(Status::Failed, message)
    }

    /// Status 2: usage error.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Status::Usage, message)
    }

    /// Status 3: the daemon is not running.
    pub fn not_running(message: impl Into<String>) -> Error {
        Error::new(Status::NotRunning, message)
    }

    /// Status 4: timed out.
    pub fn timeout(message: impl Into<String>) -> Error {
        Error::new(Status::Timeout, message)
    }

    /// Stop quietly with `status` (the reason was already reported or needs none).
    pub fn quiet(status: Status) -> Error {
        Error {
            status,
            message: None,
        }
    }

    /// An error writing our own output. A closed pipe (the reader went away, as with
    /// `pbxctl watch | head`) is a normal way to stop: status 0, no message.
    pub fn output(e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Error::quiet(Status::Ok)
        } else {
            Error::failed(format!("cannot write output: {e}"))
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.status.code()),
        }
    }
}

impl std::error::Error for Error {}

impl From<coventry_shared::client::send::SendError> for Error {
    /// How a command that could not be handed to the daemon ends: a line the daemon
    /// would misread is a usage error (2), no daemon is status 3, a FIFO that stays
    /// full is a timeout (4), anything else a failure (1).
    fn from(e: coventry_shared::client::send::SendError) -> Error {
        use coventry_shared::client::send::SendError;
        match e {
            SendError::Invalid(m) => Error::usage(m),
            SendError::NotRunning(m) => Error::not_running(m),
            SendError::Full(m) => Error::timeout(format!("timed out: {m}")),
            SendError::Refused(m) | SendError::Failed(m) => Error::failed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_documented_codes() {
        let all = [
            Status::Ok,
            Status::Failed,
            Status::Usage,
            Status::NotRunning,
            Status::Timeout,
            Status::Partial,
        ];
        let documented: Vec<u8> = crate::cli::EXIT_CODES.iter().map(|(c, _)| *c).collect();
        let ours: Vec<u8> = all.iter().map(|s| s.code()).collect();
        assert_eq!(ours, documented);
    }

    #[test]
    fn broken_pipe_is_quiet_success() {
        let e = Error::output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(e, Error::quiet(Status::Ok));
        let e = Error::output(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(e.status, Status::Failed);
    }
}
