//! `trace`: the SIP messages the switch receives and sends, for one extension or
//! address or all, as they go.
//!
//! pbxctl takes a lease (a read lock on one byte of the state block, which the
//! kernel lets go when pbxctl ends however it ends), asks the daemon to trace for
//! it, then follows the trace ring and prints the records carrying its lease's bit.
//! Nothing here reads SIP: the one-line form comes from the record's typed fields.

use crate::commands;
use crate::error::Error;
use crate::output::{clock, Out, Paint};
use crate::watch::nap_unless_output_gone;
use coventry_shared::client::text::{display_safe, display_safe_cut};
use coventry_shared::control::Command;
use coventry_shared::event::ResultCode;
use coventry_shared::runtime::{self, Kind, TrustError};
use coventry_shared::stateblock::trace::{TraceReader, TRACE_FILE};
use coventry_shared::trace::{lease_bit, new_token, Filter, Lease, Record};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the daemon's process and the ring are checked at least.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Records read per poll.
const BATCH: usize = 256;
/// Characters of the Call-ID shown on a line.
const CALL_ID_SHOWN: usize = 12;

/// Options of `trace`.
#[derive(Debug, Clone, Default)]
pub struct TraceOpts {
    /// What to follow: an extension, an address, `all` (`None`: all).
    pub target: Option<String>,
    /// Print each message whole after its line.
    pub verbose: bool,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// The one-line form of a record: time, arrow (`<-` received from the peer, `->`
/// sent to it), peer, transport, method or status, Call-ID (its start), CSeq.
pub fn record_line(out: &Out, r: &Record) -> String {
    let what = display_safe_cut(&r.what(), 48);
    let what = match r.status {
        0 => out.paint(Paint::Bold, &format!("{what:<24}")),
        s if s >= 300 => out.paint(Paint::Red, &format!("{what:<24}")),
        _ => out.paint(Paint::Green, &format!("{what:<24}")),
    };
    format!(
        "{} {} {:<21} {} {} {:<width$} {} {}",
        out.paint(Paint::Dim, &clock(r.time_ms)),
        r.dir.arrow(),
        r.peer.to_string(),
        r.transport.name(),
        what,
        display_safe_cut(&r.call_id, CALL_ID_SHOWN - 1),
        r.cseq,
        display_safe(&r.cseq_method),
        width = CALL_ID_SHOWN,
    )
}

/// The JSON object of a record: its fields and the (masked) message.
pub fn record_json(r: &Record) -> serde_json::Value {
    json!({
        "seq": r.seq,
        "time_ms": r.time_ms,
        "dir": r.dir.name(),
        "transport": r.transport.name(),
        "peer": r.peer.to_string(),
        "method": (r.status == 0).then_some(&r.method),
        "status": (r.status != 0).then_some(r.status),
        "reason": (r.status != 0).then_some(&r.reason),
        "call_id": r.call_id,
        "cseq": r.cseq,
        "cseq_method": r.cseq_method,
        "len": r.len,
        "cut": (r.bytes.len() as u64) < u64::from(r.len),
        "message": String::from_utf8_lossy(&r.bytes),
    })
}

/// The message of a record as lines fit for a terminal, and a note when it was
/// cut.
pub fn message_lines(r: &Record) -> Vec<String> {
    let text = String::from_utf8_lossy(&r.bytes);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| display_safe(l.strip_suffix('\r').unwrap_or(l)))
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let kept = r.bytes.len() as u64;
    if kept < u64::from(r.len) {
        lines.push(format!("[{} more bytes not kept]", u64::from(r.len) - kept));
    }
    lines
}

/// The daemon's state block opened again for the lease, checked like every read.
fn lease_file(dir: &Path) -> Result<std::fs::File, Error> {
    runtime::open_trusted(&runtime::state_path(dir), Kind::Regular, false).map_err(|e| match e {
        TrustError::Missing(p) => Error::not_running(format!(
            "daemon not running: no state block at {}",
            p.display()
        )),
        e => Error::failed(e.to_string()),
    })
}

/// Trace until the count or duration of `opts` is reached, the output goes away, a
/// signal ends pbxctl, or the daemon stops (status 3).
pub fn run(out: &mut Out, dir: &Path, timeout: Duration, opts: TraceOpts) -> Result<(), Error> {
    let filter = match opts.target.as_deref() {
        None => Filter::All,
        Some(t) => Filter::parse(t).ok_or_else(|| {
            Error::usage(format!(
                "`{t}` is not an extension number, an IP address, IP:PORT or `all`"
            ))
        })?,
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    // The lease first: the daemon starts nothing for a lease nobody holds.
    let token = new_token();
    let lease = Lease::take(lease_file(dir)?, token)
        .map_err(|e| Error::failed(format!("cannot take a trace lease: {e}")))?;
    let sent = commands::send(
        dir,
        timeout,
        Command::Trace {
            token: lease.token(),
            filter: Some(filter),
        },
    )?;
    if sent.outcome.code != ResultCode::Ok {
        return Err(Error::failed(format!(
            "{}: {}",
            sent.outcome.code.name(),
            display_safe(&sent.outcome.text)
        )));
    }
    let state = sent.reader;
    let bit = state
        .snapshot()
        .and_then(|s| lease_bit(&s, token))
        .ok_or_else(|| Error::failed("the daemon does not show the trace it started"))?;
    let ring =
        TraceReader::open(&dir.join(TRACE_FILE)).map_err(|e| Error::failed(e.to_string()))?;
    // From the oldest record still there: those from before this lease do not
    // carry its bit, and nothing written since the daemon said yes is missed.
    let mut cursor = ring
        .head()
        .saturating_sub(coventry_shared::stateblock::trace::SLOTS as u64);
    let mut printed = 0u64;
    let mut last_check = Instant::now();
    if !out.json {
        let note = format!("-- tracing {filter}; Ctrl-C ends --");
        eprintln!("{}", out.paint(Paint::Dim, &note));
    }
    loop {
        let polled = ring.poll(&mut cursor, BATCH);
        if polled.lost > 0 {
            if out.json {
                out.json_line(&json!({ "kind": "lost", "count": polled.lost }))?;
            } else {
                let t = format!("-- {} messages lost (pbxctl fell behind) --", polled.lost);
                let t = out.paint(Paint::Yellow, &t);
                out.line(&t)?;
            }
        }
        for r in polled.records.iter().filter(|r| r.leases & (1 << bit) != 0) {
            if opts.count.is_some_and(|n| printed >= n) {
                break;
            }
            if out.json {
                out.json_line(&record_json(r))?;
            } else {
                let line = record_line(out, r);
                out.line(&line)?;
                if opts.verbose {
                    for l in message_lines(r) {
                        out.line(&format!("    {l}"))?;
                    }
                    out.line("")?;
                }
            }
            printed += 1;
        }
        if opts.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        if polled.records.len() == BATCH {
            continue;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(());
        }
        if now.duration_since(last_check) >= CHECK_EVERY {
            last_check = now;
            if !state.daemon_alive() || state.replaced() {
                return Err(Error::not_running("coventryd stopped; the trace ended"));
            }
            let still = state.snapshot().and_then(|s| lease_bit(&s, token)) == Some(bit);
            if !still || ring.replaced() {
                return Err(Error::failed("the daemon ended this trace"));
            }
        }
        let mut nap = CHECK_EVERY;
        if let Some(d) = deadline {
            nap = nap.min(d.saturating_duration_since(now));
        }
        // Asleep until the daemon writes a record (or the nap is over); then a
        // look at whether anyone still reads the output.
        ring.wait(cursor, nap);
        nap_unless_output_gone(Duration::ZERO)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::trace::{Direction, Transport};

    fn rec() -> Record {
        Record {
            seq: 3,
            time_ms: 0,
            dir: Direction::In,
            transport: Transport::Udp,
            peer: "127.0.0.1:5062".parse().expect("addr"),
            leases: 1,
            method: String::new(),
            status: 401,
            reason: "Unauthorized".into(),
            call_id: "0123456789abcdef@h".into(),
            cseq: 1,
            cseq_method: "REGISTER".into(),
            len: 40,
            bytes: b"SIP/2.0 401 Unauthorized\r\nX: \x1b[31m\r\n\r\n".to_vec(),
        }
    }

    #[test]
    fn a_line_has_arrow_peer_status_call_id_and_cseq() {
        let out = Out::stdout(false, false);
        let line = record_line(&out, &rec());
        for part in [
            "<- 127.0.0.1:5062",
            "udp",
            "401 Unauthorized",
            "0123456789a… ",
            "1 REGISTER",
        ] {
            assert!(line.contains(part), "{part:?} in {line:?}");
        }
        assert!(!line.contains("cdef@h"), "{line}");
    }

    #[test]
    fn messages_are_shown_safe_and_cuts_said() {
        let mut r = rec();
        r.len = 100;
        let lines = message_lines(&r);
        assert_eq!(lines[0], "SIP/2.0 401 Unauthorized");
        assert!(!lines[1].contains('\x1b'), "{lines:?}");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("[62 more bytes not kept]")
        );
        let j = record_json(&r);
        assert_eq!(
            (j["status"].as_u64(), j["cut"].as_bool()),
            (Some(401), Some(true))
        );
        assert!(j["method"].is_null());
    }
}
