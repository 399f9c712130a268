//! Run states: named sets of settings (day, night, holiday, any name) that
//! overlay the configuration and the operator's settings while the state is in
//! force — forwards, do not disturb, coverage, the members of groups. Written as
//! `[runstate NAME]` sections of coventry.conf; chosen with `pbxctl runstate NAME`
//! (kept in the state directory, so a choice made while the switch is down applies
//! when it starts).

use crate::control::ForwardKind;
use std::collections::BTreeMap;

/// The run state in force when none was chosen, or the chosen one is gone.
pub const DEFAULT_RUNSTATE: &str = "day";

/// The file in the state directory naming the run state in force.
pub const RUNSTATE_FILE: &str = "runstate";

/// Whether `name` may name a run state: 1 to 31 lower-case letters, digits, `-`
/// and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 31
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// What one run state changes. Only what it names; everything else stays as the
/// configuration and the operator's settings say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunState {
    /// Forwards set (`Some(target)`) or cleared (`None`) per extension and kind.
    pub forwards: BTreeMap<(u16, ForwardKind), Option<String>>,
    /// Do not disturb on or off per extension.
    pub dnd: BTreeMap<u16, bool>,
    /// Coverage per extension (empty: none).
    pub coverage: BTreeMap<u16, Vec<u16>>,
    /// Members per group.
    pub groups: BTreeMap<u16, Vec<u16>>,
}

/// `KIND.NUMBER`: `forward.21`, `dnd.21`, `group.700`...
fn split_key(key: &str) -> Result<(&str, u16), String> {
    let (kind, n) = key
        .split_once('.')
        .ok_or_else(|| format!("`{key}`: expected KIND.EXTENSION, e.g. forward.21"))?;
    let n = n
        .parse::<u16>()
        .map_err(|_| format!("`{n}` is not an extension or group number"))?;
    Ok((kind, n))
}

fn number_list(v: &str) -> Result<Vec<u16>, String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .map(|m| {
            m.parse::<u16>()
                .map_err(|_| format!("`{m}` is not an extension number"))
        })
        .collect()
}

impl RunState {
    /// Take one `key = value` line of a `[runstate NAME]` section.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let (kind, n) = split_key(key)?;
        let v = value.trim();
        let forward = |k| -> Result<(u16, ForwardKind), String> { Ok((n, k)) };
        match kind {
            "forward" | "forward_always" => {
                self.forwards
                    .insert(forward(ForwardKind::Always)?, target(v)?);
            }
            "forward_busy" => {
                self.forwards
                    .insert(forward(ForwardKind::Busy)?, target(v)?);
            }
            "forward_noanswer" | "forward_no_answer" => {
                self.forwards
                    .insert(forward(ForwardKind::NoAnswer)?, target(v)?);
            }
            "dnd" => {
                let on = match v.to_ascii_lowercase().as_str() {
                    "on" | "yes" | "true" | "1" => true,
                    "off" | "no" | "false" | "0" => false,
                    _ => return Err(format!("`{v}` must be on or off")),
                };
                self.dnd.insert(n, on);
            }
            "coverage" => {
                self.coverage.insert(n, number_list(v)?);
            }
            "group" => {
                self.groups.insert(n, number_list(v)?);
            }
            _ => {
                return Err(format!(
                    "`{kind}`: expected forward, forward_busy, forward_noanswer, dnd, \
                     coverage or group"
                ))
            }
        }
        Ok(())
    }

    /// Every extension or group whose settings this state changes.
    pub fn numbers(&self) -> impl Iterator<Item = u16> + '_ {
        self.forwards
            .keys()
            .map(|(n, _)| *n)
            .chain(self.dnd.keys().copied())
            .chain(self.coverage.keys().copied())
    }
}

/// A forward target, or `off`.
fn target(v: &str) -> Result<Option<String>, String> {
    if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+*#-._".contains(&b));
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(format!("`{v}` is not a number to forward to (or off)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        let mut r = RunState::default();
        r.set("forward.10", "20").expect("fwd");
        r.set("forward_busy.11", "off").expect("off");
        r.set("dnd.12", "on").expect("dnd");
        r.set("coverage.10", "13, 14").expect("cov");
        r.set("group.700", "10 11").expect("group");
        assert_eq!(
            r.forwards.get(&(10, ForwardKind::Always)),
            Some(&Some("20".into()))
        );
        assert_eq!(r.forwards.get(&(11, ForwardKind::Busy)), Some(&None));
        assert_eq!(r.dnd.get(&12), Some(&true));
        assert_eq!(r.coverage.get(&10), Some(&vec![13, 14]));
        assert_eq!(r.groups.get(&700), Some(&vec![10, 11]));
        for (k, v) in [
            ("forward", "20"),
            ("forward.x", "20"),
            ("ring.10", "20"),
            ("dnd.10", "maybe"),
            ("forward.10", "sip:x"),
            ("coverage.10", "ab"),
        ] {
            assert!(r.set(k, v).is_err(), "{k} = {v}");
        }
        assert!(valid_name("night") && valid_name("x-mas_2"));
        assert!(!valid_name("") && !valid_name("Night") && !valid_name("a b"));
    }
}
