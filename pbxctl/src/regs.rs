//! `regs`: registered contacts.

use crate::daemon;
use crate::error::Error;
use crate::output::Out;
use coventry_shared::client::text::display_safe;
use coventry_shared::client::view::{self, ContactView};
use coventry_shared::stateblock::Snapshot;
use serde_json::{json, Value};
use std::path::Path;

/// One registered contact with its extension, as listed by `regs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reg {
    /// Extension number.
    pub ext: u16,
    /// Display name of the extension.
    pub name: String,
    /// The contact.
    pub contact: ContactView,
    /// The extension's lines in use (its registered contacts).
    pub in_use: usize,
    /// The extension's lines (`lines`: contacts it may have at once).
    pub lines: u8,
}

impl Reg {
    /// Whole seconds until it expires (0 when overdue).
    pub fn expires_in(&self, now_ms: u64) -> u64 {
        self.contact.expires_ms.saturating_sub(now_ms) / 1000
    }

    /// The JSON object for `--json`.
    pub fn to_json(&self, now_ms: u64) -> Value {
        json!({
            "ext": self.ext,
            "name": self.name,
            "contact": self.contact.uri,
            "source": self.contact.source,
            "user_agent": self.contact.user_agent,
            "algorithm": self.contact.algorithm.map(|a| a.key()),
            "registered_ms": self.contact.registered_ms,
            "expires_ms": self.contact.expires_ms,
            "expires_in": self.expires_in(now_ms),
            "lines_in_use": self.in_use,
            "lines": self.lines,
        })
    }
}

/// Every registered contact in `snap`, in extension order, optionally of `only` one.
pub fn collect(snap: &Snapshot, only: Option<u16>) -> Vec<Reg> {
    view::extensions(snap)
        .into_iter()
        .filter(|e| only.is_none_or(|n| n == e.number))
        .flat_map(|e| {
            let (ext, name, lines, in_use) = (e.number, e.name, e.lines, e.contacts.len());
            e.contacts.into_iter().map(move |contact| Reg {
                ext,
                name: name.clone(),
                contact,
                in_use,
                lines,
            })
        })
        .collect()
}

/// List registered contacts of the daemon in `dir`, or of extension `only`.
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
    let now = coventry_shared::now_ms();
    let regs = collect(&snap, only);
    if out.json {
        let list: Vec<Value> = regs.iter().map(|r| r.to_json(now)).collect();
        return out.json_doc(&Value::Array(list));
    }
    if regs.is_empty() {
        return out.line(&match only {
            Some(n) => format!("{n} has no registered contact"),
            None => "no registered contacts".to_string(),
        });
    }
    let mut table = out.table(&[
        "EXT",
        "NAME",
        "LINES",
        "CONTACT",
        "SOURCE",
        "USER AGENT",
        "AUTH",
        "EXPIRES",
    ]);
    for r in &regs {
        table.add_row(vec![
            r.ext.to_string(),
            display_safe(&r.name),
            format!("{}/{}", r.in_use, r.lines),
            display_safe(&r.contact.uri),
            display_safe(&r.contact.source),
            display_safe(&r.contact.user_agent),
            r.contact.algorithm.map_or("-", |a| a.as_str()).to_string(),
            format!("{}s", r.expires_in(now)),
        ]);
    }
    out.print_table(&table)
}
