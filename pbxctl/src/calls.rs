//! `calls`: the call table — live calls and those that ended moments ago.

use crate::daemon;
use crate::error::Error;
use crate::output::{start_time, Out, Paint};
use coventry_shared::client::text::{display_safe, span};
use coventry_shared::client::view::{self, CallView};
use coventry_shared::event::CallPhase;
use coventry_shared::stateblock::Snapshot;
use serde_json::{json, Value};
use std::path::Path;

/// The JSON object of call `c` for `--json` (times as ms since the epoch, 0 when
/// not reached).
pub fn call_json(c: &CallView, now_ms: u64) -> Value {
    json!({
        "call": c.id,
        "from": c.from,
        "to": c.to,
        "state": c.phase.name(),
        "ended": !c.is_live(),
        "rings": c.rings,
        "start_ms": c.start_ms,
        "answer_ms": c.answer_ms.unwrap_or(0),
        "end_ms": c.end_ms.unwrap_or(0),
        "duration_s": c.age_ms(now_ms) / 1000,
        "talk_s": c.talk_ms(now_ms) / 1000,
        "outcome": c.outcome.map(|(o, _)| o.name()),
        "status": c.outcome.map(|(_, s)| s),
        "call_id": c.call_id,
    })
}

/// Every call in `snap` (live ones first), optionally only those involving
/// extension `only`.
pub fn collect(snap: &Snapshot, only: Option<u16>) -> Vec<CallView> {
    view::calls(snap)
        .into_iter()
        .filter(|c| only.is_none_or(|n| c.involves(n)))
        .collect()
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
        let list: Vec<Value> = calls.iter().map(|c| call_json(c, now)).collect();
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
            c.id.to_string(),
            display_safe(&c.from),
            display_safe(&c.to),
            c.phase.name().to_string(),
            c.rings.to_string(),
            start_time(c.start_ms, now),
            span(c.shown_ms(now)),
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
    use coventry_shared::stateblock::call_state::ENDED;
    use coventry_shared::stateblock::CallEntry;

    #[test]
    fn json_keeps_zero_for_times_not_reached() {
        let mut e = CallEntry::FREE;
        e.id = 1007;
        e.state = ENDED;
        e.cause = 486;
        e.outcome = coventry_shared::event::CallOutcome::Busy as u16;
        e.start_ms = 1_000;
        e.end_ms = 71_000;
        let j = call_json(&CallView::of(&e), 100_000);
        assert_eq!(j["answer_ms"], 0);
        assert_eq!(j["duration_s"], 70);
        assert_eq!(j["talk_s"], 0);
        assert_eq!(j["outcome"], "busy");
        assert_eq!(j["status"], 486);
        assert_eq!(j["ended"], true);
    }
}
