//! `calls`: the call table — live calls and those that ended moments ago.

use crate::daemon;
use crate::error::Error;
use crate::output::{human_secs, sanitize, start_time, Out, Paint};
use crate::watch::talk_secs;
use coventry_shared::event::{CallOutcome, CallPhase};
use coventry_shared::stateblock::{get_str, CallEntry, Snapshot};
use serde_json::{json, Value};
use std::path::Path;

/// One call as `calls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Switch-local call number.
    pub call: u32,
    /// Caller.
    pub from: String,
    /// Callee as dialled.
    pub to: String,
    /// SIP Call-ID (as far as the table keeps it).
    pub call_id: String,
    /// Where it is.
    pub phase: CallPhase,
    /// Rings so far.
    pub rings: u8,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Answer, ms since the epoch (0: not answered).
    pub answer_ms: u64,
    /// End, ms since the epoch (0: not ended).
    pub end_ms: u64,
    /// How it ended and the SIP status behind it (ended calls only).
    pub outcome: Option<(CallOutcome, u16)>,
}

impl Call {
    /// The call in table slot `e` (which must be in use).
    pub fn from_entry(e: &CallEntry) -> Call {
        let phase = CallPhase::from_u16(u16::from(e.state));
        let outcome =
            (phase == CallPhase::Ended).then(|| (CallOutcome::from_u16(e.outcome), e.cause));
        Call {
            call: e.id,
            from: get_str(&e.from),
            to: get_str(&e.to),
            call_id: get_str(&e.call_id),
            phase,
            rings: e.ring_count,
            start_ms: e.start_ms,
            answer_ms: e.answer_ms,
            end_ms: e.end_ms,
            outcome,
        }
    }

    /// Whether it is over.
    pub fn ended(&self) -> bool {
        self.phase == CallPhase::Ended
    }

    /// Until when it counts: its end, or `now_ms` while it lasts.
    fn until(&self, now_ms: u64) -> u64 {
        if self.ended() && self.end_ms != 0 {
            self.end_ms
        } else {
            now_ms
        }
    }

    /// Whole seconds since it started (up to its end).
    pub fn duration_s(&self, now_ms: u64) -> u64 {
        self.until(now_ms).saturating_sub(self.start_ms) / 1000
    }

    /// Whole seconds talked (since the answer, up to the end; 0 if never answered).
    pub fn talk_s(&self, now_ms: u64) -> u64 {
        talk_secs(self.answer_ms, self.until(now_ms))
    }

    /// What the DURATION column shows: the talk time of an answered call, else the
    /// time since it started.
    pub fn shown_s(&self, now_ms: u64) -> u64 {
        if self.answer_ms != 0 {
            self.talk_s(now_ms)
        } else {
            self.duration_s(now_ms)
        }
    }

    /// Whether it involves extension `ext` (as caller or as dialled).
    pub fn involves(&self, ext: u16) -> bool {
        let n = ext.to_string();
        self.from == n || self.to == n
    }

    /// The JSON object for `--json`.
    pub fn to_json(&self, now_ms: u64) -> Value {
        json!({
            "call": self.call,
            "from": self.from,
            "to": self.to,
            "state": self.phase.name(),
            "ended": self.ended(),
            "rings": self.rings,
            "start_ms": self.start_ms,
            "answer_ms": self.answer_ms,
            "end_ms": self.end_ms,
            "duration_s": self.duration_s(now_ms),
            "talk_s": self.talk_s(now_ms),
            "outcome": self.outcome.map(|(o, _)| o.name()),
            "status": self.outcome.map(|(_, s)| s),
            "call_id": self.call_id,
        })
    }
}

/// Every call in `snap` (live ones first, each group in order of start), optionally
/// only those involving extension `only`.
pub fn collect(snap: &Snapshot, only: Option<u16>) -> Vec<Call> {
    let mut calls: Vec<Call> = snap
        .body
        .calls
        .iter()
        .filter(|e| e.id != 0)
        .map(Call::from_entry)
        .filter(|c| only.is_none_or(|n| c.involves(n)))
        .collect();
    calls.sort_by_key(|c| (c.ended(), c.start_ms, c.call));
    calls
}

/// List the calls of the daemon in `dir`, or those involving extension `only`.
pub fn run(out: &mut Out, dir: &Path, only: Option<u16>) -> Result<(), Error> {
    let snap = daemon::live_snapshot(dir)?;
    let plan = snap.header.plan;
    if let Some(n) = only {
        if !plan.contains(n) {
            return Err(Error::usage(format!(
                "{n} is not an extension of the {plan} dial plan"
            )));
        }
    }
    let calls = collect(&snap, only);
    let now = coventry_shared::now_ms();
    if out.json {
        let list: Vec<Value> = calls.iter().map(|c| c.to_json(now)).collect();
        return out.json_doc(&Value::Array(list));
    }
    if calls.is_empty() {
        return out.line(&match only {
            Some(n) => format!("no calls for {n}"),
            None => "no calls".to_string(),
        });
    }
    let mut table = out.table(&[
        "CALL", "FROM", "TO", "STATE", "RINGS", "STARTED", "DURATION", "OUTCOME",
    ]);
    let mut paints = Vec::with_capacity(calls.len());
    for c in &calls {
        let outcome = match c.outcome {
            Some((o, status)) => format!("{} ({status})", o.name()),
            None => "-".to_string(),
        };
        table.add_row(vec![
            c.call.to_string(),
            sanitize(&c.from),
            sanitize(&c.to),
            c.phase.name().to_string(),
            c.rings.to_string(),
            start_time(c.start_ms, now),
            human_secs(c.shown_s(now)),
            outcome,
        ]);
        // Ringing calls want attention; ended ones are only there for a moment.
        paints.push(match c.phase {
            CallPhase::Ended => Some(Paint::Dim),
            CallPhase::Ringing => Some(Paint::Yellow),
            CallPhase::Dialing | CallPhase::Answered => None,
        });
    }
    out.print_table_painted(&table, &paints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::stateblock::call_state::{ANSWERED, ENDED, RINGING};

    fn entry(id: u32, state: u8, rings: u8, cause: u16) -> CallEntry {
        let mut e = CallEntry {
            id,
            state,
            ring_count: rings,
            cause,
            outcome: 0,
            from: [0; 24],
            to: [0; 24],
            call_id: [0; 62],
            start_ms: 1_000_000,
            answer_ms: 0,
            end_ms: 0,
        };
        coventry_shared::stateblock::put_str(&mut e.from, "21");
        coventry_shared::stateblock::put_str(&mut e.to, "35");
        e
    }

    #[test]
    fn an_ended_call_has_the_outcome_and_cause_of_its_entry() {
        // The same cause reads differently depending on the outcome the switch stored.
        let mut e = entry(1007, ENDED, 0, 480);
        e.outcome = CallOutcome::Unavailable as u16;
        assert_eq!(
            Call::from_entry(&e).outcome,
            Some((CallOutcome::Unavailable, 480))
        );
        e.outcome = CallOutcome::NoAnswer as u16;
        assert_eq!(
            Call::from_entry(&e).outcome,
            Some((CallOutcome::NoAnswer, 480))
        );
        e.outcome = CallOutcome::Busy as u16;
        e.cause = 486;
        assert_eq!(Call::from_entry(&e).outcome, Some((CallOutcome::Busy, 486)));
        // Live calls have no outcome yet, whatever the fields hold.
        e.state = RINGING;
        assert_eq!(Call::from_entry(&e).outcome, None);
        e.state = ANSWERED;
        assert_eq!(Call::from_entry(&e).outcome, None);
    }

    #[test]
    fn durations() {
        let now = 1_000_000 + 95_500;
        let mut e = entry(1000, RINGING, 3, 0);
        let c = Call::from_entry(&e);
        assert_eq!(
            (c.duration_s(now), c.talk_s(now), c.shown_s(now)),
            (95, 0, 95)
        );
        e.state = ANSWERED;
        e.answer_ms = 1_000_000 + 10_000;
        let c = Call::from_entry(&e);
        assert_eq!(
            (c.duration_s(now), c.talk_s(now), c.shown_s(now)),
            (95, 85, 85)
        );
        e.state = ENDED;
        e.end_ms = 1_000_000 + 70_000;
        let c = Call::from_entry(&e);
        assert_eq!(
            (c.duration_s(now), c.talk_s(now), c.shown_s(now)),
            (70, 60, 60)
        );
        e.answer_ms = 0;
        let c = Call::from_entry(&e);
        assert_eq!(
            (c.duration_s(now), c.talk_s(now), c.shown_s(now)),
            (70, 0, 70)
        );
    }
}
