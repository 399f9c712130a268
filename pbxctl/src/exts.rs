//! `exts`: the extension grid, one cell per extension of the plan, like a
//! busy-lamp field.

use crate::daemon;
use crate::error::Error;
use crate::output::{Out, Paint};
use coventry_shared::stateblock::{get_bit, get_str, Snapshot, EXT_CONFIGURED};
use serde_json::{json, Value};
use std::path::Path;

/// Cells per row of the grid: one decade (10–19, 20–29, ...).
pub const PER_ROW: usize = 10;

pub use coventry_shared::stateblock::Lamp;
use coventry_shared::stateblock::LampBits;

/// How pbxctl shows a lamp: the legend's words and the colour.
pub trait LampLook {
    /// What the letter means (for the legend).
    fn meaning(self) -> &'static str;
    /// Its colour on a terminal.
    fn paint(self) -> Option<Paint>;
}

impl LampLook for Lamp {
    fn meaning(self) -> &'static str {
        match self {
            Lamp::Ringing => "ringing",
            Lamp::Busy => "busy",
            Lamp::Dnd => "dnd",
            Lamp::Forwarded => "forwarded",
            Lamp::Registered => "registered",
            Lamp::Offline => "offline",
            Lamp::Unconfigured => "not configured",
        }
    }

    fn paint(self) -> Option<Paint> {
        match self {
            Lamp::Ringing => Some(Paint::Yellow),
            Lamp::Busy => Some(Paint::Red),
            Lamp::Dnd => Some(Paint::Magenta),
            Lamp::Forwarded => Some(Paint::Cyan),
            Lamp::Registered => Some(Paint::Green),
            Lamp::Offline => None,
            Lamp::Unconfigured => Some(Paint::Dim),
        }
    }
}

/// One extension of the plan with its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtState {
    /// Extension number.
    pub ext: u16,
    /// Display name.
    pub name: String,
    /// It has a section in the configuration.
    pub configured: bool,
    /// At least one contact registered.
    pub registered: bool,
    /// A call to it rings.
    pub ringing: bool,
    /// In a call.
    pub busy: bool,
    /// Do not disturb.
    pub dnd: bool,
    /// Forwarded.
    pub forwarded: bool,
    /// Registered contacts.
    pub contacts: usize,
    /// Forward-always target.
    pub forward_always: Option<String>,
    /// Forward-on-busy target.
    pub forward_busy: Option<String>,
    /// Forward-on-no-answer target.
    pub forward_noanswer: Option<String>,
    /// When DND reverts by itself, ms since the epoch.
    pub dnd_until_ms: Option<u64>,
    /// When the first of its forwards reverts by itself, ms since the epoch.
    pub forward_until_ms: Option<u64>,
}

impl ExtState {
    /// The lamp: the first that applies of ringing, busy, DND, forwarded,
    /// registered; else `-` when configured and `.` when not.
    pub fn lamp(&self) -> Lamp {
        Lamp::of(LampBits {
            configured: self.configured,
            registered: self.registered,
            ringing: self.ringing,
            busy: self.busy,
            dnd: self.dnd,
            forwarded: self.forwarded,
        })
    }

    /// The JSON object for `--json`.
    pub fn to_json(&self) -> Value {
        json!({
            "ext": self.ext,
            "name": self.name,
            "state": self.lamp().letter().to_string(),
            "configured": self.configured,
            "registered": self.registered,
            "ringing": self.ringing,
            "busy": self.busy,
            "dnd": self.dnd,
            "forwarded": self.forwarded,
            "contacts": self.contacts,
            "forward_always": self.forward_always,
            "forward_busy": self.forward_busy,
            "forward_noanswer": self.forward_noanswer,
            "dnd_until_ms": self.dnd_until_ms,
            "forward_until_ms": self.forward_until_ms,
        })
    }

    /// The forwards set, as `(kind, target)` with kind `always`, `busy` or
    /// `no-answer`.
    pub fn forwards(&self) -> Vec<(&'static str, &str)> {
        [
            ("always", &self.forward_always),
            ("busy", &self.forward_busy),
            ("no-answer", &self.forward_noanswer),
        ]
        .into_iter()
        .filter_map(|(k, t)| t.as_deref().map(|t| (k, t)))
        .collect()
    }

    /// Whether it has DND on or any forward set.
    pub fn has_settings(&self) -> bool {
        self.dnd || !self.forwards().is_empty()
    }
}

/// A NUL-padded target field: `None` when empty.
fn target(field: &[u8]) -> Option<String> {
    Some(get_str(field)).filter(|s| !s.is_empty())
}

/// A time field: `None` when 0 (never).
fn time(ms: u64) -> Option<u64> {
    (ms != 0).then_some(ms)
}

/// Every extension of the plan of `snap`, in order.
pub fn collect(snap: &Snapshot) -> Vec<ExtState> {
    let b = &snap.body.bitmaps;
    snap.exts()
        .iter()
        .enumerate()
        .map(|(i, e)| ExtState {
            ext: snap.header.plan.number_at(i).unwrap_or(e.number),
            name: e.name(),
            configured: e.flags & EXT_CONFIGURED != 0,
            registered: get_bit(&b.registered, i),
            ringing: get_bit(&b.ringing, i),
            busy: get_bit(&b.busy, i),
            dnd: get_bit(&b.dnd, i),
            forwarded: get_bit(&b.forwarded, i),
            contacts: e
                .active_contacts()
                .iter()
                .filter(|c| c.expires_ms != 0)
                .count(),
            forward_always: target(&e.forward_always),
            forward_busy: target(&e.forward_busy),
            forward_noanswer: target(&e.forward_noanswer),
            dnd_until_ms: time(e.dnd_until_ms),
            forward_until_ms: time(e.forward_until_ms),
        })
        .collect()
}

/// The grid: rows of [`PER_ROW`] cells `NN L`, a blank line, how many extensions
/// are configured (of the plan's), registered, ringing, busy, in DND and forwarded,
/// and the legend.
pub fn grid(out: &Out, exts: &[ExtState]) -> Vec<String> {
    let lit = |lamp: Lamp, text: String| match lamp.paint() {
        Some(p) => out.paint(p, &text),
        None => text,
    };
    let mut lines: Vec<String> = exts
        .chunks(PER_ROW)
        .map(|row| {
            row.iter()
                .map(|e| lit(e.lamp(), format!("{} {}", e.ext, e.lamp().letter())))
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect();
    let count = |f: fn(&ExtState) -> bool| exts.iter().filter(|e| f(e)).count();
    lines.push(String::new());
    lines.push(format!(
        "configured {}/{}, registered {}, ringing {}, busy {}, dnd {}, forwarded {}",
        count(|e| e.configured),
        exts.len(),
        count(|e| e.registered),
        count(|e| e.ringing),
        count(|e| e.busy),
        count(|e| e.dnd),
        count(|e| e.forwarded),
    ));
    let legend: Vec<String> = Lamp::ALL
        .iter()
        .map(|lamp| {
            format!(
                "{} {}",
                lit(*lamp, lamp.letter().to_string()),
                lamp.meaning()
            )
        })
        .collect();
    lines.push(legend.join("  "));
    lines
}

/// Show the extension grid of the daemon in `dir`.
pub fn run(out: &mut Out, dir: &Path) -> Result<(), Error> {
    let snap = daemon::live_snapshot(dir)?;
    let exts = collect(&snap);
    if out.json {
        let list: Vec<Value> = exts.iter().map(ExtState::to_json).collect();
        return out.json_doc(&Value::Array(list));
    }
    let lines = grid(out, &exts);
    out.line(&lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(bits: &str) -> ExtState {
        ExtState {
            ext: 21,
            name: String::new(),
            configured: bits.contains('c'),
            registered: bits.contains('R'),
            ringing: bits.contains('r'),
            busy: bits.contains('B'),
            dnd: bits.contains('D'),
            forwarded: bits.contains('F'),
            ..ExtState::default()
        }
    }

    #[test]
    fn lamp_priority() {
        for (bits, want) in [
            ("", '.'),
            ("c", '-'),
            ("cR", 'R'),
            ("cRF", 'F'),
            ("cRFD", 'D'),
            ("cRFDB", 'B'),
            ("cRFDBr", 'r'),
            ("crB", 'r'),
            ("cD", 'D'),
            ("cF", 'F'),
        ] {
            assert_eq!(ext(bits).lamp().letter(), want, "{bits:?}");
        }
    }

    #[test]
    fn letters_are_distinct() {
        let mut letters: Vec<char> = Lamp::ALL.iter().map(|l| l.letter()).collect();
        letters.sort_unstable();
        letters.dedup();
        assert_eq!(letters.len(), Lamp::ALL.len());
    }
}
