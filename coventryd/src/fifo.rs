//! The control FIFO: created owner/group-only, opened read-write so that writers
//! closing it never produce end-of-file, and split into bounded lines.

use coventry_shared::control::MAX_LINE;
use nix::sys::stat::Mode;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// One line read from the FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without its newline), at most `MAX_LINE` bytes.
    Complete(Vec<u8>),
    /// A line that went over `MAX_LINE`; its first bytes, for the request id.
    TooLong(Vec<u8>),
}

/// Splits a byte stream into lines of at most `MAX_LINE` bytes (newline included).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    discarding: bool,
}

impl LineSplitter {
    /// Feed bytes; complete lines are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Line>) {
        while !data.is_empty() {
            let nl = data.iter().position(|b| *b == b'\n');
            let (chunk, rest, complete) = match nl {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            data = rest;
            if self.discarding {
                if complete {
                    self.discarding = false;
                }
                continue;
            }
            // MAX_LINE counts the newline, so the content may be MAX_LINE - 1 bytes.
            if self.buf.len() + chunk.len() > MAX_LINE - 1 {
                let mut head = std::mem::take(&mut self.buf);
                head.extend_from_slice(&chunk[..chunk.len().min(32)]);
                head.truncate(32);
                out.push(Line::TooLong(head));
                self.discarding = !complete;
                continue;
            }
            self.buf.extend_from_slice(chunk);
            if complete {
                out.push(Line::Complete(std::mem::take(&mut self.buf)));
            }
        }
    }
}

/// Create the FIFO at `path` (mode 0660), replacing a stale FIFO; refuses to
/// replace anything that is not a FIFO.
pub fn create(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a FIFO", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o660)).map_err(io::Error::from)?;
    // mkfifo honours the umask; set the mode we mean.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
}

/// The reading end of the control FIFO.
pub struct ControlFifo {
    rx: pipe::Receiver,
    splitter: LineSplitter,
    buf: Vec<u8>,
}

impl ControlFifo {
    /// Open `path` read-write (so there is always a writer and never EOF), non-blocking.
    pub fn open(path: &Path) -> io::Result<ControlFifo> {
        let rx = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(path)?;
        Ok(ControlFifo {
            rx,
            splitter: LineSplitter::default(),
            buf: vec![0; 8192],
        })
    }

    /// Wait for input and return the lines it completed (possibly none).
    pub async fn read_lines(&mut self) -> io::Result<Vec<Line>> {
        let n = self.rx.read(&mut self.buf).await?;
        let mut out = Vec::new();
        self.splitter.push(&self.buf[..n], &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_bounds_lines() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"#1 reload\n#2 rel", &mut out);
        s.push(b"ease 21\n", &mut out);
        assert_eq!(
            out,
            vec![
                Line::Complete(b"#1 reload".to_vec()),
                Line::Complete(b"#2 release 21".to_vec())
            ]
        );
        out.clear();
        let mut long = b"#9 message 21 ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2 * MAX_LINE));
        s.push(&long[..700], &mut out);
        s.push(&long[700..], &mut out);
        s.push(b"\nreload\n", &mut out);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Line::TooLong(h) if h.starts_with(b"#9 ")));
        assert_eq!(out[1], Line::Complete(b"reload".to_vec()));
        out.clear();
        let exact = vec![b'a'; MAX_LINE - 1];
        s.push(&exact, &mut out);
        s.push(b"\n", &mut out);
        assert_eq!(out, vec![Line::Complete(exact)]);
    }
}
