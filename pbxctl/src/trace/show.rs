//! How a traced message is shown: one line of its typed fields, the JSON object,
//! and the whole message as lines fit for a terminal. Nothing here reads SIP.

use crate::output::{clock, Out, Paint};
use coventry_shared::client::text::{display_safe, display_safe_cut};
use coventry_shared::trace::Record;
use serde_json::json;

/// Characters of the Call-ID shown on a line.
const CALL_ID_SHOWN: usize = 12;

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
