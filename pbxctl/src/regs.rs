//! `regs`: registered contacts.

use crate::daemon;
use crate::error::Error;
use crate::output::{sanitize, Out};
use coventry_shared::stateblock::{get_str, Snapshot};
use serde_json::{json, Value};
use std::path::Path;

/// One registered contact, as listed by `regs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reg {
    /// Extension number.
    pub ext: u16,
    /// Display name of the extension.
    pub name: String,
    /// Contact URI.
    pub contact: String,
    /// Source address:port of the REGISTER.
    pub source: String,
    /// User-Agent of the phone.
    pub user_agent: String,
    /// When it registered, ms since the epoch.
    pub registered_ms: u64,
    /// When it expires, ms since the epoch.
    pub expires_ms: u64,
}

impl Reg {
    /// Whole seconds until it expires (0 when overdue).
    pub fn expires_in(&self, now_ms: u64) -> u64 {
        self.expires_ms.saturating_sub(now_ms) / 1000
    }

    /// The JSON object for `--json`.
    pub fn to_json(&self, now_ms: u64) -> Value {
        json!({
            "ext": self.ext,
            "name": self.name,
            "contact": self.contact,
            "source": self.source,
            "user_agent": self.user_agent,
            "registered_ms": self.registered_ms,
            "expires_ms": self.expires_ms,
            "expires_in": self.expires_in(now_ms),
        })
    }
}

/// Every registered contact in `snap`, in extension order, optionally of `only` one.
pub fn collect(snap: &Snapshot, only: Option<u16>) -> Vec<Reg> {
    let mut regs = Vec::new();
    for e in snap.exts() {
        if only.is_some_and(|n| n != e.number) {
            continue;
        }
        for c in e.active_contacts() {
            if c.expires_ms == 0 {
                continue;
            }
            regs.push(Reg {
                ext: e.number,
                name: e.name(),
                contact: get_str(&c.uri),
                source: get_str(&c.source),
                user_agent: get_str(&c.user_agent),
                registered_ms: c.registered_ms,
                expires_ms: c.expires_ms,
            });
        }
    }
    regs
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
    let mut table = out.table(&["EXT", "NAME", "CONTACT", "SOURCE", "USER AGENT", "EXPIRES"]);
    for r in &regs {
        table.add_row(vec![
            r.ext.to_string(),
            sanitize(&r.name),
            sanitize(&r.contact),
            sanitize(&r.source),
            sanitize(&r.user_agent),
            format!("{}s", r.expires_in(now)),
        ]);
    }
    out.print_table(&table)
}
