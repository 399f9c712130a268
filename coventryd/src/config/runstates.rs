//! `[runstate NAME]`: sets of settings switched together (`night`, `holiday`).

use super::Fault;
use coventry_shared::runstate::RunState;
use std::collections::{BTreeMap, BTreeSet};

/// The `[runstate NAME]` sections (line, name, settings) as a table, each
/// naming only `known` extensions and configured `groups`.
pub(super) fn table(
    known: &BTreeSet<u16>,
    groups: &BTreeMap<u16, Vec<u16>>,
    entries: &[(usize, String, RunState)],
) -> Result<BTreeMap<String, RunState>, Fault> {
    let mut runstates = BTreeMap::new();
    for (lineno, name, state) in entries {
        if let Some(why) = fault_of(known, groups, state) {
            return Err(Fault::new(*lineno, format!("[runstate {name}]"), why));
        }
        runstates.insert(name.clone(), state.clone());
    }
    Ok(runstates)
}

/// What is wrong with `state`, if anything.
fn fault_of(
    known: &BTreeSet<u16>,
    groups: &BTreeMap<u16, Vec<u16>>,
    state: &RunState,
) -> Option<String> {
    state
        .numbers()
        .find(|n| !known.contains(n))
        .map(|n| format!("{n} is not a configured extension"))
        .or_else(|| {
            state.groups.iter().find_map(|(g, members)| {
                if !groups.contains_key(g) {
                    Some(format!("{g} is not a group of [groups]"))
                } else {
                    members
                        .iter()
                        .find(|m| !known.contains(m))
                        .map(|m| format!("group {g}: member {m} has no [{m}] section"))
                }
            })
        })
        .or_else(|| {
            state.coverage.iter().find_map(|(n, list)| {
                list.iter()
                    .find(|m| **m == *n || !known.contains(m))
                    .map(|m| format!("coverage of {n}: {m} must be another configured extension"))
            })
        })
        .or_else(|| {
            state.forwards.iter().find_map(|((n, _), t)| {
                (t.as_deref() == Some(n.to_string().as_str()))
                    .then(|| format!("{n} cannot forward to itself"))
            })
        })
}
