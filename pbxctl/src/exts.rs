//! `exts`: the extension grid, one cell per extension of the plan, like a
//! busy-lamp field.

use crate::daemon;
use crate::error::Error;
use crate::output::{Out, Paint};
use coventry_shared::client::view::{self, ExtView};
use serde_json::{json, Value};
use std::path::Path;

/// Cells per row of the grid: one decade (10–19, 20–29, ...).
pub const PER_ROW: usize = 10;

pub use coventry_shared::stateblock::Lamp;

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

/// The JSON object of extension `e` for `--json`.
pub fn ext_json(e: &ExtView) -> Value {
    json!({
        "ext": e.number,
        "name": e.name,
        "state": e.lamp().letter().to_string(),
        "configured": e.configured,
        "registered": e.registered,
        "ringing": e.ringing,
        "busy": e.busy,
        "dnd": e.dnd,
        "forwarded": e.forwarded,
        "contacts": e.contacts.len(),
        "forward_always": e.forward_always,
        "forward_busy": e.forward_busy,
        "forward_noanswer": e.forward_noanswer,
        "dnd_until_ms": e.dnd_until_ms,
        "forward_until_ms": e.forward_until_ms,
    })
}

/// The grid: rows of [`PER_ROW`] cells `NN L`, a blank line, how many extensions
/// are configured (of the plan's), registered, ringing, busy, in DND and forwarded,
/// and the legend.
pub fn grid(out: &Out, exts: &[ExtView]) -> Vec<String> {
    let lit = |lamp: Lamp, text: String| match lamp.paint() {
        Some(p) => out.paint(p, &text),
        None => text,
    };
    let mut lines: Vec<String> = exts
        .chunks(PER_ROW)
        .map(|row| {
            row.iter()
                .map(|e| lit(e.lamp(), format!("{} {}", e.number, e.lamp().letter())))
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect();
    let count = |f: fn(&ExtView) -> bool| exts.iter().filter(|e| f(e)).count();
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
    let exts = view::extensions(&snap);
    if out.json {
        let list: Vec<Value> = exts.iter().map(ext_json).collect();
        return out.json_doc(&Value::Array(list));
    }
    let lines = grid(out, &exts);
    out.line(&lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_distinct() {
        let mut letters: Vec<char> = Lamp::ALL.iter().map(|l| l.letter()).collect();
        letters.sort_unstable();
        letters.dedup();
        assert_eq!(letters.len(), Lamp::ALL.len());
    }
}
