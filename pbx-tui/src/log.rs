//! The message and event log: the newest lines of the event ring (and the console's
//! own notes), with a filter and a scroll position.

use crate::sanitize::clean;
use coventry_shared::event::{Event, EventRecord};
use std::collections::VecDeque;

/// Lines kept; older ones are dropped.
pub const CAPACITY: usize = 2000;

/// What a log line is about (its label in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// Registered, unregistered, expired, released.
    Registration,
    /// Call state changes and call records.
    Call,
    /// Text messages.
    Message,
    /// Results of control commands.
    Result,
    /// A failed command result.
    Failure,
    /// Failed authentication.
    Auth,
    /// Warnings from the daemon.
    Warning,
    /// Notices from the daemon (start, reload, stop).
    Notice,
    /// The console's own notes (daemon down, restarted, events lost).
    Console,
}

impl LogKind {
    /// The label shown before the text (four characters).
    pub fn label(self) -> &'static str {
        match self {
            LogKind::Registration => "reg ",
            LogKind::Call => "call",
            LogKind::Message => "msg ",
            LogKind::Result => "cmd ",
            LogKind::Failure => "cmd!",
            LogKind::Auth => "auth",
            LogKind::Warning => "warn",
            LogKind::Notice => "info",
            LogKind::Console => "tui ",
        }
    }

    /// The kind of an event.
    pub fn of(e: &Event) -> LogKind {
        match e {
            Event::Registered { .. } | Event::Unregistered { .. } => LogKind::Registration,
            Event::CallState { .. } | Event::CallRecord { .. } | Event::Dialing { .. } => {
                LogKind::Call
            }
            Event::Message { .. } | Event::Delivering { .. } => LogKind::Message,
            Event::WhyStep { .. } | Event::SpeedDial { .. } => LogKind::Result,
            Event::CommandResult { code, .. } => {
                if *code == coventry_shared::event::ResultCode::Ok {
                    LogKind::Result
                } else {
                    LogKind::Failure
                }
            }
            Event::AuthFailed { .. } => LogKind::Auth,
            Event::Warning { .. } => LogKind::Warning,
            Event::Notice { .. } => LogKind::Notice,
            Event::Upstream { state, .. } => {
                if *state == coventry_shared::event::RouteState::Connected {
                    LogKind::Notice
                } else {
                    LogKind::Warning
                }
            }
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When, ms since the epoch.
    pub time_ms: u64,
    /// What about.
    pub kind: LogKind,
    /// The text, safe to draw.
    pub text: String,
}

impl LogLine {
    /// A line for a console note.
    pub fn note(time_ms: u64, text: &str) -> LogLine {
        LogLine {
            time_ms,
            kind: LogKind::Console,
            text: clean(text),
        }
    }

    /// The line for an event from the ring.
    pub fn of(rec: &EventRecord) -> LogLine {
        LogLine {
            time_ms: rec.time_ms,
            kind: LogKind::of(&rec.event),
            text: clean(&rec.event.to_string()),
        }
    }

    fn matches(&self, filter: &str) -> bool {
        filter.is_empty()
            || self.text.to_lowercase().contains(filter)
            || self.kind.label().trim() == filter
    }
}

/// The log with its filter and scroll position.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    lines: VecDeque<LogLine>,
    filter: String,
    /// Matching lines hidden below the view (0: following the newest).
    scroll: usize,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> EventLog {
        EventLog::default()
    }

    /// Add a line, in time order (a line older than the newest, such as the ring's
    /// history read after the console's own note, goes before the newer ones). A
    /// reader who scrolled back keeps seeing the same lines.
    pub fn push(&mut self, line: LogLine) {
        if self.scroll > 0 && line.matches(&self.filter) {
            self.scroll += 1;
        }
        if self.lines.len() == CAPACITY {
            self.lines.pop_front();
        }
        let at = self.lines.partition_point(|l| l.time_ms <= line.time_ms);
        self.lines.insert(at, line);
        self.scroll = self.scroll.min(self.matching().saturating_sub(1));
    }

    /// Every line kept, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &LogLine> {
        self.lines.iter()
    }

    /// The filter (lowercase; empty: none).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Show only lines containing `text` (case-insensitive) or of that kind
    /// (`reg`, `call`, `msg`, `cmd`, ...); the view goes back to the newest line.
    pub fn set_filter(&mut self, text: &str) {
        self.filter = text.trim().to_lowercase();
        self.scroll = 0;
    }

    /// How many lines match the filter.
    pub fn matching(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.matches(&self.filter))
            .count()
    }

    /// Matching lines hidden below the view (0: following).
    pub fn scroll(&self) -> usize {
        self.scroll
    }

    /// Scroll towards older lines by `n`.
    pub fn scroll_back(&mut self, n: usize) {
        self.scroll = (self.scroll + n).min(self.matching().saturating_sub(1));
    }

    /// Scroll towards newer lines by `n`.
    pub fn scroll_forward(&mut self, n: usize) {
        self.scroll = self.scroll.saturating_sub(n);
    }

    /// Go to the oldest line.
    pub fn scroll_to_oldest(&mut self) {
        self.scroll = self.matching().saturating_sub(1);
    }

    /// Follow the newest line again.
    pub fn follow(&mut self) {
        self.scroll = 0;
    }

    /// The matching lines that fit in `height` rows at the current scroll position,
    /// oldest first.
    pub fn window(&self, height: usize) -> Vec<&LogLine> {
        let mut out: Vec<&LogLine> = self
            .lines
            .iter()
            .rev()
            .filter(|l| l.matches(&self.filter))
            .skip(self.scroll)
            .take(height)
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u64, text: &str) -> LogLine {
        LogLine {
            time_ms: i,
            kind: LogKind::Notice,
            text: text.into(),
        }
    }

    #[test]
    fn window_scroll_and_filter() {
        let mut log = EventLog::new();
        for i in 0..10 {
            log.push(line(i, &format!("line {i}")));
        }
        let texts = |log: &EventLog, h| {
            log.window(h)
                .iter()
                .map(|l| l.text.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&log, 2), vec!["line 8", "line 9"]);
        log.scroll_back(3);
        assert_eq!(texts(&log, 2), vec!["line 5", "line 6"]);
        log.push(line(10, "line 10"));
        assert_eq!(texts(&log, 2), vec!["line 5", "line 6"], "stays put");
        log.follow();
        assert_eq!(texts(&log, 1), vec!["line 10"]);
        log.set_filter("LINE 1");
        assert_eq!(texts(&log, 5), vec!["line 1", "line 10"]);
        log.set_filter("info");
        assert_eq!(log.matching(), 11, "kind labels match too");
        log.scroll_to_oldest();
        assert_eq!(texts(&log, 1), vec!["line 0"]);
        log.scroll_back(100);
        assert_eq!(log.scroll(), 10);
    }

    #[test]
    fn lines_stay_in_time_order() {
        let mut log = EventLog::new();
        log.push(line(50, "note"));
        log.push(line(10, "old a"));
        log.push(line(20, "old b"));
        log.push(line(50, "same time, later"));
        let texts: Vec<&str> = log.lines().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, vec!["old a", "old b", "note", "same time, later"]);
    }

    #[test]
    fn capacity_is_bounded() {
        let mut log = EventLog::new();
        for i in 0..(CAPACITY as u64 + 5) {
            log.push(line(i, "x"));
        }
        assert_eq!(log.lines().count(), CAPACITY);
        assert_eq!(log.lines().next().map(|l| l.time_ms), Some(5));
    }
}
