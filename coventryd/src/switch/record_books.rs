//! Which book a call's record goes to (pure rules; time passed in), so that
//! refused attempts cannot rotate the history of real calls away:
//! - a call that reached someone (a phone rang, the upstream was tried, a
//!   feature code was served, click-to-dial) goes to the calls book, always;
//! - a call that reached no one counts against its caller's budget of
//!   [`NO_ONE_PER_MINUTE`] records a minute: within it, a missed call (busy, do
//!   not disturb, not registered) is still a call, and a refusal (unknown or
//!   incomplete number, a limit, a policy, a route down) goes to the attempts
//!   book; beyond it nothing is written, the number left out is logged once a
//!   minute per caller.
//!
//! Unauthenticated requests never make a record at all (they are challenged
//! before a call exists).

use super::auth_log::{Summary, WindowLog};
use coventry_shared::event::CallOutcome;
use coventry_shared::record::{Book, CallRecord};

/// Records of calls that reached no one, per caller and minute.
pub const NO_ONE_PER_MINUTE: u32 = 20;

/// Where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filing {
    /// Written to this book (and announced).
    Book(Book),
    /// Over the caller's budget: counted, not written.
    LeftOut,
}

/// The budget of records of calls that reached no one, per caller.
#[derive(Debug)]
pub struct RecordBooks {
    no_one: WindowLog<String>,
}

impl Default for RecordBooks {
    fn default() -> Self {
        RecordBooks {
            no_one: WindowLog::new(NO_ONE_PER_MINUTE),
        }
    }
}

/// Whether a call that reached no one was still a call its callee missed.
fn missed(outcome: CallOutcome) -> bool {
    matches!(outcome, CallOutcome::Busy | CallOutcome::Unavailable)
}

impl RecordBooks {
    /// Where `record` goes; `reached`: a phone rang, the upstream was tried or
    /// the switch served the call itself.
    pub fn file(&mut self, now_ms: u64, record: &CallRecord, reached: bool) -> Filing {
        if reached {
            return Filing::Book(Book::Calls);
        }
        if !self.no_one.note(now_ms, record.caller.clone()).write {
            return Filing::LeftOut;
        }
        if missed(record.outcome) {
            Filing::Book(Book::Calls)
        } else {
            Filing::Book(Book::Attempts)
        }
    }

    /// Callers with records left out in windows that have ended.
    pub fn take_summaries(&mut self, now_ms: u64) -> Vec<Summary<String>> {
        self.no_one.take_summaries(now_ms)
    }

    /// Every count still open (at stop).
    pub fn take_all(&mut self) -> Vec<Summary<String>> {
        self.no_one.take_all()
    }
}

/// Log the counts of records left out.
pub fn log_left_out(summaries: &[Summary<String>]) {
    for s in summaries {
        log::warn!(
            "call records: caller={} left_out={} (more calls that reached no one within a minute)",
            crate::logfmt::quoted(&s.source),
            s.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::record::Route;

    fn record(caller: &str, outcome: CallOutcome) -> CallRecord {
        CallRecord {
            call: 1,
            outcome,
            status: 404,
            caller: caller.into(),
            dialled: "99".into(),
            answered_by: None,
            start_ms: 0,
            answer_ms: None,
            end_ms: 0,
            ring_ms: 0,
            talk_ms: 0,
            route: Route::Local,
            forwards: Vec::new(),
            restarts: 0,
        }
    }

    #[test]
    fn calls_that_reached_someone_are_always_written_to_the_calls() {
        let mut b = RecordBooks::default();
        for _ in 0..1000 {
            let r = record("21", CallOutcome::NoAnswer);
            assert_eq!(b.file(0, &r, true), Filing::Book(Book::Calls));
        }
    }

    #[test]
    fn a_caller_reaching_no_one_has_a_budget_a_minute_kept_apart() {
        let mut b = RecordBooks::default();
        let refused = record("21", CallOutcome::Unknown);
        let filed: Vec<Filing> = (0..25).map(|_| b.file(0, &refused, false)).collect();
        assert!(filed[..20]
            .iter()
            .all(|f| *f == Filing::Book(Book::Attempts)));
        assert!(filed[20..].iter().all(|f| *f == Filing::LeftOut));
        // A missed call within the budget is a call; another caller has its own.
        let mut b = RecordBooks::default();
        let busy = record("21", CallOutcome::Busy);
        assert_eq!(b.file(0, &busy, false), Filing::Book(Book::Calls));
        let other = record("35", CallOutcome::Unknown);
        assert_eq!(b.file(0, &other, false), Filing::Book(Book::Attempts));
        // The next minute, a fresh budget; what was left out is reported once.
        for _ in 0..30 {
            b.file(0, &refused, false);
        }
        let s = b.take_summaries(60_000);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].source.as_str(), s[0].count), ("21", 11));
        assert_eq!(
            b.file(60_000, &refused, false),
            Filing::Book(Book::Attempts)
        );
    }
}
