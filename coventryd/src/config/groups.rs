//! `[groups]`: numbers that ring several extensions.

use super::Fault;
use coventry_shared::dialplan::Plan;
use std::collections::{BTreeMap, BTreeSet};

/// A `[groups]` line: `NUMBER = MEMBER MEMBER...`.
pub(super) fn parse_group(key: &str, v: &str) -> Result<(u16, Vec<u16>), String> {
    let n: u16 = key
        .parse()
        .map_err(|_| format!("`{key}` is not a group number"))?;
    let mut members = Vec::new();
    for m in v.split(|c: char| c == ',' || c.is_whitespace()) {
        if m.is_empty() {
            continue;
        }
        let e: u16 = m
            .parse()
            .map_err(|_| format!("member `{m}` is not an extension number"))?;
        if !members.contains(&e) {
            members.push(e);
        }
    }
    if members.is_empty() {
        return Err("a group needs at least one member".into());
    }
    Ok((n, members))
}

/// The `[groups]` lines (line, number, members) as a table: numbers the plan
/// allows, each once, members among the `known` extensions.
pub(super) fn table(
    plan: Plan,
    known: &BTreeSet<u16>,
    entries: &[(usize, u16, Vec<u16>)],
) -> Result<BTreeMap<u16, Vec<u16>>, Fault> {
    let mut groups = BTreeMap::new();
    for (lineno, n, members) in entries {
        let key = format!("[groups] {n}");
        if !plan.is_group_number(*n) {
            return Err(Fault::new(
                *lineno,
                key,
                format!("{n} cannot be a group number in the {plan} plan"),
            ));
        }
        if let Some(m) = members.iter().find(|m| !known.contains(m)) {
            return Err(Fault::new(
                *lineno,
                key,
                format!("member {m} has no [{m}] section"),
            ));
        }
        if groups.insert(*n, members.clone()).is_some() {
            return Err(Fault::new(*lineno, key, "group defined twice"));
        }
    }
    Ok(groups)
}
