//! `[features]` and `[speed]`: what a keypad dials.

use super::values::is_dial_code;
use super::Fault;
use coventry_shared::control::ForwardKind;
use coventry_shared::dialplan::{classify, Plan, Target};
use std::collections::BTreeMap;

/// `[features]`: the keypad codes (each dialled alone, or followed by a target for
/// the forward codes: `*72 35` is dialled as `*7235`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    /// Set forward always (followed by the target).
    pub forward_always: String,
    /// Clear forward always.
    pub forward_always_off: String,
    /// Set forward on busy (followed by the target).
    pub forward_busy: String,
    /// Clear forward on busy.
    pub forward_busy_off: String,
    /// Set forward on no answer (followed by the target).
    pub forward_noanswer: String,
    /// Clear forward on no answer.
    pub forward_noanswer_off: String,
    /// Do not disturb on.
    pub dnd_on: String,
    /// Do not disturb off.
    pub dnd_off: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            forward_always: "*72".into(),
            forward_always_off: "*73".into(),
            forward_busy: "*90".into(),
            forward_busy_off: "*91".into(),
            forward_noanswer: "*92".into(),
            forward_noanswer_off: "*93".into(),
            dnd_on: "*78".into(),
            dnd_off: "*79".into(),
        }
    }
}

/// What a number dialled from a keypad means to the feature codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureUse<'a> {
    /// Do not disturb on (`true`) or off.
    Dnd(bool),
    /// Clear a forward.
    ForwardOff(ForwardKind),
    /// Set a forward to the target that follows the code.
    Forward(ForwardKind, &'a str),
}

impl FeatureCodes {
    /// The feature `dialled` asks for, if any: one of the codes alone, or a
    /// forward code followed by its target. The switch reads a number this way
    /// before anything else, so nothing else may be dialled like it.
    pub fn read<'a>(&self, dialled: &'a str) -> Option<FeatureUse<'a>> {
        let fwd = |code: &str| dialled.strip_prefix(code).filter(|rest| !rest.is_empty());
        let kinds = [
            (
                &self.forward_always,
                &self.forward_always_off,
                ForwardKind::Always,
            ),
            (
                &self.forward_busy,
                &self.forward_busy_off,
                ForwardKind::Busy,
            ),
            (
                &self.forward_noanswer,
                &self.forward_noanswer_off,
                ForwardKind::NoAnswer,
            ),
        ];
        if dialled == self.dnd_on {
            return Some(FeatureUse::Dnd(true));
        }
        if dialled == self.dnd_off {
            return Some(FeatureUse::Dnd(false));
        }
        if let Some((_, _, k)) = kinds.iter().find(|(_, off, _)| dialled == off.as_str()) {
            return Some(FeatureUse::ForwardOff(*k));
        }
        kinds
            .iter()
            .find_map(|(set, _, k)| fwd(set).map(|t| FeatureUse::Forward(*k, t)))
    }

    /// Every code with its key name.
    pub fn all(&self) -> [(&'static str, &str); 8] {
        [
            ("forward_always", &self.forward_always),
            ("forward_always_off", &self.forward_always_off),
            ("forward_busy", &self.forward_busy),
            ("forward_busy_off", &self.forward_busy_off),
            ("forward_noanswer", &self.forward_noanswer),
            ("forward_noanswer_off", &self.forward_noanswer_off),
            ("dnd_on", &self.dnd_on),
            ("dnd_off", &self.dnd_off),
        ]
    }
}

/// Set `[features]` key `k` to `v`.
pub(super) fn set_key(f: &mut FeatureCodes, k: &str, v: &str) -> Result<(), String> {
    if !v.starts_with(['*', '#']) || !is_dial_code(v) {
        return Err(format!(
            "`{v}`: a feature code starts with * or # (e.g. *72)"
        ));
    }
    let slot = match k {
        "forward_always" => &mut f.forward_always,
        "forward_always_off" => &mut f.forward_always_off,
        "forward_busy" => &mut f.forward_busy,
        "forward_busy_off" => &mut f.forward_busy_off,
        "forward_noanswer" => &mut f.forward_noanswer,
        "forward_noanswer_off" => &mut f.forward_noanswer_off,
        "dnd_on" => &mut f.dnd_on,
        "dnd_off" => &mut f.dnd_off,
        _ => return Err("unknown key".into()),
    };
    *slot = v.to_string();
    Ok(())
}

/// Why `code` cannot be a speed dial, if it cannot: it would shadow what the
/// switch reads first — a number of the plan's extension range (configured or
/// not), a group, `all` or `system`, or a keypad feature code (alone, or a
/// forward code with a target after it).
pub fn speed_code_clash(
    plan: Plan,
    groups: &BTreeMap<u16, Vec<u16>>,
    features: &FeatureCodes,
    code: &str,
) -> Option<String> {
    if features.read(code).is_some() {
        return Some(format!(
            "{code} is read as a keypad feature code ([features])"
        ));
    }
    match classify(plan, groups, |_| true, code) {
        Target::Extension(_) => Some(format!(
            "{code} is an extension number of the {}-digit plan",
            plan.digits()
        )),
        Target::Group(g) => Some(format!("{code} is group {g}")),
        Target::All | Target::System => Some(format!("{code} is a name of the switch")),
        Target::Unknown(_) | Target::External(_) => None,
    }
}

/// The `[speed]` entries (line, code, target) as a table, each code checked
/// against everything it could shadow.
pub(super) fn speed_table(
    plan: Plan,
    groups: &BTreeMap<u16, Vec<u16>>,
    features: &FeatureCodes,
    entries: &[(usize, String, String)],
) -> Result<BTreeMap<String, String>, Fault> {
    let mut speed = BTreeMap::new();
    for (lineno, code, target) in entries {
        let key = format!("[speed] {code}");
        if speed.insert(code.clone(), target.clone()).is_some() {
            return Err(Fault::new(*lineno, key, "code defined twice"));
        }
        if let Some(why) = speed_code_clash(plan, groups, features, code) {
            return Err(Fault::new(*lineno, key, why));
        }
    }
    Ok(speed)
}

/// No two feature codes the same.
pub(super) fn check(features: &FeatureCodes) -> Result<(), Fault> {
    let codes = features.all();
    for (i, (name, code)) in codes.iter().enumerate() {
        if let Some((other, _)) = codes[i + 1..].iter().find(|(_, c)| c == code) {
            return Err(Fault::new(
                0,
                format!("[features] {name}"),
                format!("{code} is also {other}"),
            ));
        }
    }
    Ok(())
}
