//! Call records: what the switch writes down at the end of every call, whatever
//! its outcome, one JSON object per line in the records file of its state
//! directory (`records.jsonl`, rotated to `records.jsonl.1`...; attempts that
//! reached no one in `attempts.jsonl`), which `pbxctl records` reads. Pure data
//! and the files' names.

use crate::event::{CallOutcome, Event};
use serde::{Deserialize, Serialize};

/// The records file in the state directory.
pub const RECORDS_FILE: &str = "records.jsonl";

/// The attempts file in the state directory.
pub const ATTEMPTS_FILE: &str = "attempts.jsonl";

/// The file in the state directory that holds the first call number of the
/// next start.
pub const NEXT_CALL_FILE: &str = "next-call";

/// Rotated attempts files kept (`attempts.jsonl.1`).
pub const ATTEMPTS_KEPT: u32 = 1;

/// The two books of records, kept in files apart so that one cannot rotate the
/// other away: calls that reached someone (a phone rang, the upstream was
/// tried, a feature code was served), and attempts that reached no one (an
/// unknown or incomplete number, a busy or unregistered line, a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Book {
    /// `records.jsonl`, rotated per `[records]`.
    Calls,
    /// `attempts.jsonl`, rotated at the same size, [`ATTEMPTS_KEPT`] kept.
    Attempts,
}

impl Book {
    /// The book's current file.
    pub fn file(self) -> &'static str {
        match self {
            Book::Calls => RECORDS_FILE,
            Book::Attempts => ATTEMPTS_FILE,
        }
    }

    /// The `n`th rotated file of the book (1 is the newest).
    pub fn rotated(self, n: u32) -> String {
        format!("{}.{n}", self.file())
    }

    /// Names of the book's files, oldest first: the rotated ones (`.100` down to
    /// `.1`; those that do not exist are simply not there) and the current one.
    pub fn files_oldest_first(self) -> Vec<String> {
        let mut v: Vec<String> = (1..=100).rev().map(|n| self.rotated(n)).collect();
        v.push(self.file().to_string());
        v
    }
}

/// The records in a records file's text, and how many lines were unreadable (a
/// line cut by a crash mid-write, say: skipped, never fatal).
pub fn parse_lines(text: &str) -> (Vec<CallRecord>, usize) {
    let mut bad = 0;
    let records = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(r) => Some(r),
            Err(_) => {
                bad += 1;
                None
            }
        })
        .collect();
    (records, bad)
}

/// Where a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// To extensions of this switch.
    Local,
    /// In from the upstream, to extensions of this switch (the caller is the
    /// outside number, marked `outside-` when it reads like a local one).
    Inbound,
    /// Out through the upstream's default route.
    Upstream,
    /// Out through the emergency route.
    Emergency,
    /// A keypad feature code, answered by the switch itself.
    Feature,
    /// Click-to-dial: the switch rang A, then connected B.
    ClickToDial,
}

/// Why a call moved on from one extension to another number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopReason {
    /// Forward always.
    Always,
    /// Forward on busy (in a call, or do not disturb).
    Busy,
    /// Forward on no answer, after the rings.
    NoAnswer,
    /// Not registered: its no-answer (or busy) forward.
    Unregistered,
}

/// A forward the call followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// The extension that forwarded.
    pub from: u16,
    /// Where to.
    pub to: String,
    /// Why.
    pub why: HopReason,
}

/// One call, at its end. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call's number (unique for good: numbering survives restarts).
    pub call: u32,
    /// How it ended.
    pub outcome: CallOutcome,
    /// The SIP status behind the outcome (200 for a completed call).
    pub status: u16,
    /// The caller: an extension, or the upstream caller's number.
    pub caller: String,
    /// What was dialled.
    pub dialled: String,
    /// Who answered (an extension, or the number outside), if anyone.
    pub answered_by: Option<String>,
    /// Start.
    pub start_ms: u64,
    /// Answer, if answered.
    pub answer_ms: Option<u64>,
    /// End.
    pub end_ms: u64,
    /// Ringing (or trying) time until the answer or the end.
    pub ring_ms: u64,
    /// Talk time (0 when unanswered).
    pub talk_ms: u64,
    /// Where it went.
    pub route: Route,
    /// The forwards it followed, in order.
    pub forwards: Vec<Hop>,
    /// Restarts of the switch the call lived through (answered calls go on
    /// across a restart); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl CallRecord {
    /// Ring and talk times from the start, answer and end.
    pub fn times(start_ms: u64, answer_ms: Option<u64>, end_ms: u64) -> (u64, u64) {
        match answer_ms {
            Some(a) => (a.saturating_sub(start_ms), end_ms.saturating_sub(a)),
            None => (end_ms.saturating_sub(start_ms), 0),
        }
    }

    /// The record as announced on the event ring.
    pub fn event(&self) -> Event {
        Event::CallRecord {
            call: self.call,
            from: self.caller.clone(),
            to: self.dialled.clone(),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms.unwrap_or(0),
            end_ms: self.end_ms,
            outcome: self.outcome,
            status: self.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let r = CallRecord {
            call: 1007,
            outcome: CallOutcome::Completed,
            status: 200,
            caller: "21".into(),
            dialled: "35".into(),
            answered_by: Some("36".into()),
            start_ms: 1_000,
            answer_ms: Some(3_000),
            end_ms: 9_000,
            ring_ms: 2_000,
            talk_ms: 6_000,
            route: Route::Local,
            forwards: vec![Hop {
                from: 35,
                to: "36".into(),
                why: HopReason::Busy,
            }],
            restarts: 0,
        };
        let line = serde_json::to_string(&r).expect("json");
        assert!(!line.contains("restarts"), "none: left out ({line})");
        assert!(line.contains(r#""outcome":"completed""#), "{line}");
        assert!(line.contains(r#""why":"busy""#), "{line}");
        assert!(line.contains(r#""route":"local""#), "{line}");
        assert_eq!(serde_json::from_str::<CallRecord>(&line).expect("back"), r);
        assert_eq!(CallRecord::times(1_000, None, 4_000), (3_000, 0));
        let (got, bad) = parse_lines(&format!("{line}\n{{\"call\": 12\n\n{line}\n"));
        assert_eq!((got.len(), bad), (2, 1));
    }
}
