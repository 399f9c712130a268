//! One client's live SIP trace on one daemon, for pbxctl and the console alike:
//! the lease taken on the very state block read, the request that asks for the
//! trace, the records of the trace ring that carry the lease's bit, and whether
//! that daemon is still the one running.
//!
//! A lease lives in the daemon that was asked: a daemon that stops or restarts
//! takes it along (a new daemon makes a new state block and a new ring, and knows
//! no lease of the old one). The session says so ([`Health::DaemonGone`]); the
//! client reads what the old ring still holds, and begins a new session once a
//! new daemon runs ([`TraceSession::begin`] fails with an error for which
//! [`BeginError::not_running`] holds until then).

use crate::control::{Command, Request};
use crate::runtime;
use crate::stateblock::trace::{TraceReader, SLOTS};
use crate::stateblock::{OpenError, StateReader};
use crate::trace::{lease_bit, new_token, Filter, Lease, Record, TRACE_FILE};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a session could not begin.
#[derive(Debug)]
pub enum BeginError {
    /// The state block cannot be opened (missing, cut, untrusted, unreadable).
    Open(OpenError),
    /// The block was left by a daemon whose process (this pid) is gone.
    Gone(u32),
    /// The lease could not be taken.
    Lease(std::io::Error),
}

impl BeginError {
    /// Whether no daemon runs (yet): worth waiting for one.
    pub fn not_running(&self) -> bool {
        matches!(
            self,
            BeginError::Open(OpenError::Missing(_) | OpenError::Truncated { .. })
                | BeginError::Gone(_)
        )
    }
}

impl fmt::Display for BeginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BeginError::Open(e) => write!(f, "{e}"),
            BeginError::Gone(pid) => write!(
                f,
                "daemon not running: pid {pid} is gone (the state block is left over)"
            ),
            BeginError::Lease(e) => write!(f, "cannot take a trace lease: {e}"),
        }
    }
}

/// How the daemon of a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It runs, and traces for the session once it has shown the lease.
    Running,
    /// It stopped or was replaced by a new daemon (this was its pid): the session
    /// is over, though what its ring still holds can be read.
    DaemonGone(u32),
    /// It runs but no longer traces for the session (it dropped the lease).
    Ended,
}

/// Records read for a session by one [`TraceSession::poll`].
#[derive(Debug, Default)]
pub struct Batch {
    /// The records carrying the session's bit, oldest first.
    pub records: Vec<Record>,
    /// Records overwritten before they could be read (whoever they were for:
    /// the ring cannot tell).
    pub lost: u64,
    /// The read stopped at its limit: more may be waiting.
    pub more: bool,
}

/// A lease on one daemon's state block and, once the daemon shows it, the trace
/// ring read for it. Dropping it lets go of the lease: the daemon ends the trace
/// within a tick.
pub struct TraceSession {
    dir: PathBuf,
    filter: Filter,
    reader: StateReader,
    lease: Lease,
    /// The lease's bit in records, once the daemon shows it.
    bit: Option<u8>,
    ring: Option<TraceReader>,
    cursor: u64,
}

impl TraceSession {
    /// Open the state block of the daemon in `dir` and take a lease on that very
    /// file for a trace of `filter`; then send [`TraceSession::request`].
    pub fn begin(dir: &Path, filter: Filter) -> Result<TraceSession, BeginError> {
        let (reader, file) =
            StateReader::open_with_file(&runtime::state_path(dir)).map_err(BeginError::Open)?;
        if !reader.daemon_alive() {
            return Err(BeginError::Gone(reader.header().pid));
        }
        let lease = Lease::take(file, new_token()).map_err(BeginError::Lease)?;
        Ok(TraceSession {
            dir: dir.to_path_buf(),
            filter,
            reader,
            lease,
            bit: None,
            ring: None,
            cursor: 0,
        })
    }

    /// The request that asks the daemon to trace for this lease.
    pub fn request(&self, id: Option<u64>) -> Request {
        Request {
            id,
            command: Command::Trace {
                token: self.lease.token(),
                filter: Some(self.filter),
            },
        }
    }

    /// What it follows.
    pub fn filter(&self) -> Filter {
        self.filter
    }

    /// The state block of its daemon.
    pub fn reader(&self) -> &StateReader {
        &self.reader
    }

    /// Its daemon's process id.
    pub fn pid(&self) -> u32 {
        self.reader.header().pid
    }

    fn published_bit(&self) -> Option<u8> {
        self.reader
            .snapshot()
            .and_then(|s| lease_bit(&s, self.lease.token()))
    }

    /// Whether the daemon shows the lease (it traces for it); the first time it
    /// does, the ring is opened and read from its oldest record (those from
    /// before the lease do not carry its bit, and nothing since is missed).
    pub fn attach(&mut self) -> Result<bool, OpenError> {
        if self.ring.is_some() {
            return Ok(true);
        }
        let Some(bit) = self.published_bit() else {
            return Ok(false);
        };
        let ring = TraceReader::open(&self.dir.join(TRACE_FILE))?;
        self.cursor = ring.head().saturating_sub(SLOTS as u64);
        self.bit = Some(bit);
        self.ring = Some(ring);
        Ok(true)
    }

    /// Up to `max` records of the ring read since the last call, those of this
    /// session kept (nothing before [`TraceSession::attach`] said yes).
    pub fn poll(&mut self, max: usize) -> Batch {
        let (Some(ring), Some(bit)) = (&self.ring, self.bit) else {
            return Batch::default();
        };
        let polled = ring.poll(&mut self.cursor, max);
        Batch {
            more: polled.records.len() >= max,
            lost: polled.lost,
            records: polled
                .records
                .into_iter()
                .filter(|r| r.leases & (1 << bit) != 0)
                .collect(),
        }
    }

    /// How its daemon is. A stopping daemon removes its ring before its block,
    /// so only the published lease says the trace ended while the block stays.
    pub fn health(&self) -> Health {
        if !self.reader.daemon_alive() || self.reader.replaced() {
            return Health::DaemonGone(self.pid());
        }
        match self.bit {
            Some(bit) if self.published_bit() != Some(bit) => Health::Ended,
            _ => Health::Running,
        }
    }

    /// Sleep until the daemon writes a record past what was read (once
    /// attached; before, an event), `timeout` passes or a signal comes: a futex
    /// wait, at once when something is there already.
    pub fn wait(&self, timeout: Duration) {
        match &self.ring {
            Some(r) => r.wait(self.cursor, timeout),
            None => self
                .reader
                .wait_for_events(&self.reader.cursor_at_end(), timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stateblock::{BlockInit, StateWriter};
    use crate::trace::lease_held;

    #[test]
    fn the_lease_is_on_the_block_read_and_a_replaced_block_ends_the_session() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = runtime::state_path(dir.path());
        let e = TraceSession::begin(dir.path(), Filter::All).err();
        assert!(e.is_some_and(|e| e.not_running()), "no block: not running");
        let _w = StateWriter::create(&path, &BlockInit::for_tests()).expect("create");
        let s = TraceSession::begin(dir.path(), Filter::Ext(21)).expect("begin");
        let daemon = std::fs::File::open(&path).expect("open");
        let token = match s.request(Some(7)).command {
            Command::Trace { token, filter } => {
                assert_eq!(filter, Some(Filter::Ext(21)));
                token
            }
            c => panic!("{c:?}"),
        };
        assert!(lease_held(&daemon, token).expect("getlk"));
        assert_eq!(s.health(), Health::Running);
        // A new daemon's block in its place: this session's daemon is gone.
        std::fs::remove_file(&path).expect("rm");
        let _w2 = StateWriter::create(&path, &BlockInit::for_tests()).expect("create again");
        assert_eq!(s.health(), Health::DaemonGone(std::process::id()));
        let fresh = std::fs::File::open(&path).expect("open");
        assert!(
            !lease_held(&fresh, token).expect("getlk"),
            "not on the new block"
        );
        drop(s);
        assert!(
            !lease_held(&daemon, token).expect("getlk"),
            "let go with it"
        );
    }
}
