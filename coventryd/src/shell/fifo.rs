//! The control FIFO: created owner/group-only in the daemon's own runtime directory
//! (never through a link), opened read-write so that writers closing it never
//! produce end-of-file, and split into bounded lines. Empty lines (the framing
//! newline writers put first, see [`coventry_shared::control::frame`]) are skipped;
//! a partial line that waits too long for its newline is dropped and answered.

pub use crate::switch::Line;
use coventry_shared::control::{self, MAX_LINE, PARTIAL_LINE_TIMEOUT_MS};
use coventry_shared::runtime::SafeDir;
use std::io;
use std::path::Path;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// Mode of the control FIFO: the daemon's user and group may write.
pub const FIFO_MODE: u32 = 0o660;

/// A partial line dropped because its newline did not come in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    /// The request id it started with, if any.
    pub id: Option<u64>,
    /// Its length in bytes.
    pub len: usize,
}

impl Abandoned {
    /// The text of its error result.
    pub fn text(&self) -> String {
        format!(
            "incomplete line dropped: no newline within {} s ({} bytes)",
            PARTIAL_LINE_TIMEOUT_MS / 1000,
            self.len
        )
    }
}

/// Splits a byte stream into lines of at most `MAX_LINE` bytes (newline included).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    discarding: bool,
    /// When the pending partial line (or the discarded rest of a long one) began.
    since_ms: Option<u64>,
}

impl LineSplitter {
    /// Feed bytes received at `now_ms`; complete, non-blank lines are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], now_ms: u64, out: &mut Vec<Line>) {
        while !data.is_empty() {
            let nl = data.iter().position(|b| *b == b'\n');
            let (chunk, rest, complete) = match nl {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            data = rest;
            if complete {
                self.since_ms = None;
            }
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
                let line = std::mem::take(&mut self.buf);
                if !control::is_blank(&line) {
                    out.push(Line::Complete(line));
                }
            }
        }
        if self.buf.is_empty() && !self.discarding {
            self.since_ms = None;
        } else if self.since_ms.is_none() {
            self.since_ms = Some(now_ms);
        }
    }

    /// At `now_ms`, drop a partial line that has waited
    /// [`PARTIAL_LINE_TIMEOUT_MS`] for its newline, so it cannot join whatever comes
    /// next; returns what to answer (nothing for blanks, or for the rest of a
    /// too-long line, which was answered already).
    pub fn expire(&mut self, now_ms: u64) -> Option<Abandoned> {
        let since = self.since_ms?;
        if now_ms.saturating_sub(since) < PARTIAL_LINE_TIMEOUT_MS {
            return None;
        }
        self.since_ms = None;
        if std::mem::take(&mut self.discarding) {
            return None;
        }
        let line = std::mem::take(&mut self.buf);
        (!control::is_blank(&line)).then(|| Abandoned {
            id: control::peek_id(&line),
            len: line.len(),
        })
    }
}

/// Create the FIFO at `path` (mode 0660) in the daemon's own directory, replacing a
/// stale FIFO; refuses to replace anything that is not a FIFO.
pub fn create(path: &Path) -> io::Result<()> {
    let (dir, name) = SafeDir::of_own_file(path)?;
    dir.create_fifo(&name, FIFO_MODE).map(drop)
}

/// The reading end of the control FIFO.
pub struct ControlFifo {
    rx: pipe::Receiver,
    splitter: LineSplitter,
    buf: Vec<u8>,
}

impl ControlFifo {
    /// Open `path` read-write (so there is always a writer and never EOF),
    /// non-blocking; it must be a FIFO of the daemon's own, not a link.
    pub fn open(path: &Path) -> io::Result<ControlFifo> {
        let (dir, name) = SafeDir::of_own_file(path)?;
        let rx = pipe::Receiver::from_file(dir.open_fifo(&name)?)?;
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
        self.splitter
            .push(&self.buf[..n], coventry_shared::now_ms(), &mut out);
        Ok(out)
    }

    /// Drop a partial line that waited too long (see [`LineSplitter::expire`]).
    pub fn expire(&mut self, now_ms: u64) -> Option<Abandoned> {
        self.splitter.expire(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_bounds_lines() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"#1 reload\n#2 rel", 0, &mut out);
        s.push(b"ease 21\n", 0, &mut out);
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
        s.push(&long[..700], 0, &mut out);
        s.push(&long[700..], 0, &mut out);
        s.push(b"\nreload\n", 0, &mut out);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Line::TooLong(h) if h.starts_with(b"#9 ")));
        assert_eq!(out[1], Line::Complete(b"reload".to_vec()));
        out.clear();
        let exact = vec![b'a'; MAX_LINE - 1];
        s.push(&exact, 0, &mut out);
        s.push(b"\n", 0, &mut out);
        assert_eq!(out, vec![Line::Complete(exact)]);
    }

    #[test]
    fn framing_newlines_are_silent_and_end_stray_partial_lines() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        // Junk without newline from one writer, then a framed command from another.
        s.push(b"\x01\xffgarbage", 0, &mut out);
        assert!(out.is_empty());
        s.push(b"\n#5 reload\n", 10, &mut out);
        assert_eq!(
            out,
            vec![
                Line::Complete(b"\x01\xffgarbage".to_vec()),
                Line::Complete(b"#5 reload".to_vec())
            ]
        );
        out.clear();
        // Framed commands alone: the leading newlines yield nothing.
        s.push(b"\n#6 reload\n\n#7 why 21\n\r\n", 20, &mut out);
        assert_eq!(
            out,
            vec![
                Line::Complete(b"#6 reload".to_vec()),
                Line::Complete(b"#7 why 21".to_vec())
            ]
        );
        assert_eq!(s.expire(1_000_000), None, "nothing pending");
    }

    #[test]
    fn a_partial_line_is_dropped_after_the_timeout() {
        let t = PARTIAL_LINE_TIMEOUT_MS;
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"#9 rel", 1_000, &mut out);
        s.push(b"oa", 1_000 + t - 1, &mut out);
        assert_eq!(s.expire(1_000 + t - 1), None, "not yet");
        assert_eq!(
            s.expire(1_000 + t),
            Some(Abandoned {
                id: Some(9),
                len: 8
            })
        );
        // What follows is a line of its own.
        s.push(b"d\n", 1_000 + t + 5, &mut out);
        assert_eq!(out, vec![Line::Complete(b"d".to_vec())]);
        out.clear();
        // A line completed in time, and a new partial timed from its own start.
        s.push(b"reload\n#10 wh", 50_000, &mut out);
        assert_eq!(s.expire(50_000 + t - 1), None);
        assert_eq!(s.expire(50_000 + t).map(|a| a.id), Some(Some(10)));
        // The rest of a too-long line is answered once, not again at the timeout.
        let long = vec![b'x'; MAX_LINE + 10];
        s.push(&long, 90_000, &mut out);
        assert!(matches!(out.last(), Some(Line::TooLong(_))));
        assert_eq!(s.expire(90_000 + t), None);
        // Blanks without newline are nothing to answer.
        s.push(b"  ", 100_000, &mut out);
        assert_eq!(s.expire(100_000 + t), None);
    }
}
