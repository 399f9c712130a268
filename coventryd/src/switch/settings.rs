//! Operator settings per extension — forwards (always, busy, no answer), do not
//! disturb, their expiries — and speed dials set at run time. Pure state; the
//! daemon persists it atomically (`settings.json`) on every change.

use coventry_shared::control::ForwardKind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Longest forward chain a call may follow.
pub const MAX_HOPS: usize = 5;

/// One forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// Where calls go.
    pub target: String,
    /// When the switch clears it by itself, ms since the epoch.
    pub until_ms: Option<u64>,
}

/// The settings of one extension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtSettings {
    /// Forward every call.
    pub always: Option<Forward>,
    /// Forward when busy or on DND.
    pub busy: Option<Forward>,
    /// Forward when unanswered (or not registered).
    pub noanswer: Option<Forward>,
    /// Do not disturb.
    pub dnd: bool,
    /// When DND ends by itself, ms since the epoch.
    pub dnd_until_ms: Option<u64>,
}

impl ExtSettings {
    /// The forward of `kind`.
    pub fn forward(&self, kind: ForwardKind) -> Option<&Forward> {
        match kind {
            ForwardKind::Always => self.always.as_ref(),
            ForwardKind::Busy => self.busy.as_ref(),
            ForwardKind::NoAnswer => self.noanswer.as_ref(),
        }
    }

    fn slot(&mut self, kind: ForwardKind) -> &mut Option<Forward> {
        match kind {
            ForwardKind::Always => &mut self.always,
            ForwardKind::Busy => &mut self.busy,
            ForwardKind::NoAnswer => &mut self.noanswer,
        }
    }

    /// Whether any forward is set.
    pub fn forwarded(&self) -> bool {
        self.always.is_some() || self.busy.is_some() || self.noanswer.is_some()
    }

    fn is_default(&self) -> bool {
        *self == ExtSettings::default()
    }
}

/// Why a forward was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// An extension forwarded to itself.
    #[error("{0} cannot forward to itself")]
    ToItself(u16),
    /// Calls would go round in a circle: `path` leads from the target back to `ext`.
    #[error("forward {ext} -> {target} would loop: {ext} -> {}", join_path(path))]
    Loop {
        /// The extension forwarded.
        ext: u16,
        /// The forward's target as given.
        target: String,
        /// The extensions from the target back to `ext`.
        path: Vec<u16>,
    },
    /// The chain of forwards would be longer than [`MAX_HOPS`].
    #[error("forward {ext} -> {target}: the chain would be longer than {MAX_HOPS} hops")]
    ChainTooLong {
        /// The extension forwarded.
        ext: u16,
        /// The forward's target as given.
        target: String,
    },
}

fn join_path(path: &[u16]) -> String {
    path.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// A setting that reverted by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Extension.
    pub ext: u16,
    /// What ended (`forward always to 35`, `do not disturb`).
    pub what: String,
}

/// Every extension's settings and the run-time speed dials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    exts: BTreeMap<u16, ExtSettings>,
    /// Speed dials set (Some) or removed (None) at run time, over the config's.
    pub speed: BTreeMap<String, Option<String>>,
}

impl Settings {
    /// The settings of `ext` (defaults when none).
    pub fn get(&self, ext: u16) -> ExtSettings {
        self.exts.get(&ext).cloned().unwrap_or_default()
    }

    /// Extensions with any setting.
    pub fn extensions(&self) -> impl Iterator<Item = u16> + '_ {
        self.exts.keys().copied()
    }

    /// Set or clear a forward. `as_ext` says which extension a target names (for
    /// targets that are extensions); a forward that would make calls go round in a
    /// circle, or a chain longer than [`MAX_HOPS`], is refused with the reason.
    pub fn set_forward(
        &mut self,
        ext: u16,
        kind: ForwardKind,
        target: Option<&str>,
        until_ms: Option<u64>,
        as_ext: impl Fn(&str) -> Option<u16>,
    ) -> Result<String, ForwardError> {
        let Some(target) = target else {
            let e = self.exts.entry(ext).or_default();
            let had = e.slot(kind).take();
            self.tidy(ext);
            return Ok(match had {
                Some(f) => format!("{ext}: forward {} to {} cleared", kind.name(), f.target),
                None => format!("{ext}: no forward {} was set", kind.name()),
            });
        };
        if let Some(t) = as_ext(target) {
            if t == ext {
                return Err(ForwardError::ToItself(ext));
            }
            if let Some(path) = self.path_back(t, ext, kind, &as_ext) {
                return Err(ForwardError::Loop {
                    ext,
                    target: target.to_string(),
                    path,
                });
            }
            if self.chain_len(t, &as_ext) + 1 > MAX_HOPS {
                return Err(ForwardError::ChainTooLong {
                    ext,
                    target: target.to_string(),
                });
            }
        }
        *self.exts.entry(ext).or_default().slot(kind) = Some(Forward {
            target: target.to_string(),
            until_ms,
        });
        Ok(format!("{ext}: forward {} to {target}", kind.name()))
    }

    /// A path of forwards from `from` back to `ext` (as if `ext` forwarded with
    /// `kind` to `from`), if there is one.
    fn path_back(
        &self,
        from: u16,
        ext: u16,
        _kind: ForwardKind,
        as_ext: &impl Fn(&str) -> Option<u16>,
    ) -> Option<Vec<u16>> {
        // Depth-first over every forward edge: any cycle through `ext` loops for
        // some combination of busy, unanswered and DND, so all kinds count.
        let mut stack = vec![vec![from]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let at = *path.last()?;
            if at == ext {
                return Some(path);
            }
            if !seen.insert(at) || path.len() > 16 {
                continue;
            }
            let s = self.get(at);
            for f in [&s.always, &s.busy, &s.noanswer].into_iter().flatten() {
                if let Some(next) = as_ext(&f.target) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push(p);
                }
            }
        }
        None
    }

    /// Hops an unconditional forward chain takes from `from`.
    fn chain_len(&self, from: u16, as_ext: &impl Fn(&str) -> Option<u16>) -> usize {
        let mut at = from;
        let mut n = 0;
        while let Some(next) = self.get(at).always.as_ref().and_then(|f| as_ext(&f.target)) {
            n += 1;
            at = next;
            if n > MAX_HOPS {
                break;
            }
        }
        n
    }

    /// Switch do not disturb on or off.
    pub fn set_dnd(&mut self, ext: u16, on: bool, until_ms: Option<u64>) -> String {
        let e = self.exts.entry(ext).or_default();
        e.dnd = on;
        e.dnd_until_ms = if on { until_ms } else { None };
        self.tidy(ext);
        format!("{ext}: do not disturb {}", if on { "on" } else { "off" })
    }

    fn tidy(&mut self, ext: u16) {
        if self.exts.get(&ext).is_some_and(ExtSettings::is_default) {
            self.exts.remove(&ext);
        }
    }

    /// Clear what expired at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Expired> {
        let mut gone = Vec::new();
        let exts: Vec<u16> = self.exts.keys().copied().collect();
        for ext in exts {
            let Some(e) = self.exts.get_mut(&ext) else {
                continue;
            };
            for kind in [
                ForwardKind::Always,
                ForwardKind::Busy,
                ForwardKind::NoAnswer,
            ] {
                let slot = e.slot(kind);
                if slot
                    .as_ref()
                    .and_then(|f| f.until_ms)
                    .is_some_and(|u| u <= now_ms)
                {
                    if let Some(f) = slot.take() {
                        gone.push(Expired {
                            ext,
                            what: format!("forward {} to {}", kind.name(), f.target),
                        });
                    }
                }
            }
            if e.dnd && e.dnd_until_ms.is_some_and(|u| u <= now_ms) {
                e.dnd = false;
                e.dnd_until_ms = None;
                gone.push(Expired {
                    ext,
                    what: "do not disturb".into(),
                });
            }
            self.tidy(ext);
        }
        gone
    }

    /// The next time something expires.
    pub fn next_expiry(&self) -> Option<u64> {
        self.exts
            .values()
            .flat_map(|e| {
                [&e.always, &e.busy, &e.noanswer]
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.until_ms)
                    .chain(e.dnd_until_ms)
            })
            .min()
    }

    /// Drop settings of extensions `keep` rejects (removed from the config).
    pub fn retain_extensions(&mut self, keep: impl Fn(u16) -> bool) {
        self.exts.retain(|e, _| keep(*e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(s: &str) -> Option<u16> {
        s.parse().ok().filter(|n| (10..=89).contains(n))
    }

    #[test]
    fn forwards_refuse_loops_and_long_chains() {
        let mut s = Settings::default();
        assert!(s
            .set_forward(21, ForwardKind::Always, Some("35"), None, ext)
            .is_ok());
        let e = s
            .set_forward(35, ForwardKind::Busy, Some("21"), None, ext)
            .expect_err("loop");
        assert_eq!(e.to_string(), "forward 35 -> 21 would loop: 35 -> 21 -> 35");
        assert!(s
            .set_forward(21, ForwardKind::Always, Some("21"), None, ext)
            .is_err());
        // 40 -> 41 -> ... -> 45 is five hops; one more is refused.
        for n in 40..45 {
            s.set_forward(
                n,
                ForwardKind::Always,
                Some(&(n + 1).to_string()),
                None,
                ext,
            )
            .expect("chain");
        }
        assert!(s
            .set_forward(39, ForwardKind::Always, Some("40"), None, ext)
            .is_err());
        // External numbers are not extensions: no loop possible.
        assert!(s
            .set_forward(22, ForwardKind::NoAnswer, Some("0044123"), None, ext)
            .is_ok());
        assert!(s.get(22).forwarded());
        s.set_forward(22, ForwardKind::NoAnswer, None, None, ext)
            .expect("off");
        assert!(!s.get(22).forwarded());
    }

    #[test]
    fn expiry_reverts_by_itself() {
        let mut s = Settings::default();
        s.set_forward(21, ForwardKind::Always, Some("35"), Some(5_000), ext)
            .expect("ok");
        s.set_dnd(22, true, Some(3_000));
        assert_eq!(s.next_expiry(), Some(3_000));
        assert!(s.expire(2_999).is_empty());
        assert_eq!(s.expire(3_000)[0].what, "do not disturb");
        assert!(!s.get(22).dnd);
        assert_eq!(s.expire(5_000)[0].what, "forward always to 35");
        assert_eq!(s, Settings::default(), "nothing left behind");
    }
}
