//! The console's side of a live SIP trace (I/O, used by the event loop only):
//! the lease taken on the state block, the `trace` line for the control FIFO,
//! and the records of the trace ring turned into screen lines. Letting go of the
//! [`TraceLink`] lets go of the lease, and the switch ends the trace by itself.

use crate::clock;
use coventry_shared::client::send::checked_line;
use coventry_shared::control::{Command, Request};
use coventry_shared::runtime::{self, Kind};
use coventry_shared::stateblock::trace::{TraceReader, SLOTS};
use coventry_shared::stateblock::StateReader;
use coventry_shared::trace::{lease_bit, new_token, Filter, Lease, Record, TRACE_FILE};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the switch gets to show the trace it was asked for.
const START_PATIENCE: Duration = Duration::from_secs(5);
/// Most records read in one turn of the loop.
const BATCH: usize = 256;

/// One open trace.
pub struct TraceLink {
    lease: Lease,
    dir: PathBuf,
    bit: Option<u8>,
    ring: Option<TraceReader>,
    cursor: u64,
    asked: Instant,
}

/// One screen line for a traced message: time, arrow, peer, transport, what,
/// Call-ID and CSeq.
pub fn line_of(r: &Record, utc_offset_s: i32) -> String {
    let call_id: String = r.call_id.chars().take(16).collect();
    let mut line = format!(
        "{} {} {} {} {} {} {} {}",
        clock::time_of_day(r.time_ms, utc_offset_s),
        r.dir.arrow(),
        r.peer,
        r.transport.name(),
        r.what(),
        call_id,
        r.cseq,
        r.cseq_method
    );
    line.retain(|c| !c.is_control());
    line
}

impl TraceLink {
    /// Take a lease and make the control line that asks the switch in `dir` to
    /// trace extension `ext` for as long as it is held.
    pub fn start(dir: &Path, ext: u16) -> Result<(TraceLink, String), String> {
        let state = runtime::state_path(dir);
        let file =
            runtime::open_trusted(&state, Kind::Regular, false).map_err(|e| e.to_string())?;
        let token = new_token();
        let lease =
            Lease::take(file, token).map_err(|e| format!("cannot take a trace lease: {e}"))?;
        let request = Request {
            id: None,
            command: Command::Trace {
                token,
                filter: Some(Filter::Ext(ext)),
            },
        };
        let line = checked_line(&request).map_err(|e| e.to_string())?;
        let link = TraceLink {
            lease,
            dir: dir.to_path_buf(),
            bit: None,
            ring: None,
            cursor: 0,
            asked: Instant::now(),
        };
        Ok((link, line))
    }

    /// The lines traced since the last call and the messages missed; `Err` with
    /// the reason when the trace ended (or never started).
    pub fn poll(&mut self, utc_offset_s: i32) -> Result<(Vec<String>, u64), String> {
        let snapshot = StateReader::open(&runtime::state_path(&self.dir))
            .ok()
            .and_then(|r| r.snapshot());
        let bit = snapshot.and_then(|s| lease_bit(&s, self.lease.token()));
        match (self.bit, bit) {
            (None, None) if self.asked.elapsed() < START_PATIENCE => return Ok((Vec::new(), 0)),
            (None, None) => return Err("the switch did not start the trace".into()),
            (Some(_), None) => return Err("the switch ended the trace".into()),
            (_, Some(b)) => self.bit = Some(b),
        }
        if self.ring.is_none() {
            let ring = TraceReader::open(&self.dir.join(TRACE_FILE)).map_err(|e| e.to_string())?;
            // From the oldest record still there: those before the lease do not
            // carry its bit.
            self.cursor = ring.head().saturating_sub(SLOTS as u64);
            self.ring = Some(ring);
        }
        let (Some(ring), Some(bit)) = (self.ring.as_ref(), self.bit) else {
            return Ok((Vec::new(), 0));
        };
        if ring.replaced() {
            return Err("the trace ring was replaced (the switch restarted)".into());
        }
        let polled = ring.poll(&mut self.cursor, BATCH);
        let lines = polled
            .records
            .iter()
            .filter(|r| r.leases & (1 << bit) != 0)
            .map(|r| line_of(r, utc_offset_s))
            .collect();
        Ok((lines, polled.lost))
    }
}
