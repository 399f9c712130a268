//! Dial plan: extension numbers of the 2- and 3-digit plans, groups, `all`, `system`.

use std::collections::BTreeMap;
use std::fmt;

/// Largest number of extensions any plan has (the 3-digit plan: 100–699).
pub const MAX_EXTENSIONS: usize = 600;

/// A site's numbering plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    /// Extensions 10–89; groups from 100.
    TwoDigit,
    /// Extensions 100–699; groups outside that range.
    ThreeDigit,
}

impl Plan {
    /// The plan for a digit count (2 or 3).
    pub fn from_digits(d: u8) -> Option<Plan> {
        match d {
            2 => Some(Plan::TwoDigit),
            3 => Some(Plan::ThreeDigit),
            _ => None,
        }
    }

    /// Digits per extension number.
    pub fn digits(self) -> u8 {
        match self {
            Plan::TwoDigit => 2,
            Plan::ThreeDigit => 3,
        }
    }

    /// Lowest extension number.
    pub fn first(self) -> u16 {
        match self {
            Plan::TwoDigit => 10,
            Plan::ThreeDigit => 100,
        }
    }

    /// Highest extension number.
    pub fn last(self) -> u16 {
        match self {
            Plan::TwoDigit => 89,
            Plan::ThreeDigit => 699,
        }
    }

    /// Number of extensions in the plan (80 or 600).
    pub fn count(self) -> usize {
        usize::from(self.last() - self.first()) + 1
    }

    /// Whether `n` is an extension number of this plan.
    pub fn contains(self, n: u16) -> bool {
        (self.first()..=self.last()).contains(&n)
    }

    /// Index of extension `n` in the extension table and bitmaps.
    pub fn index_of(self, n: u16) -> Option<usize> {
        self.contains(n).then(|| usize::from(n - self.first()))
    }

    /// Extension number at table index `i`.
    pub fn number_at(self, i: usize) -> Option<u16> {
        (i < self.count()).then(|| self.first() + i as u16)
    }

    /// Every extension number of the plan, in order.
    pub fn numbers(self) -> impl Iterator<Item = u16> {
        self.first()..=self.last()
    }

    /// Whether `n` may be used as a group number in this plan.
    pub fn is_group_number(self, n: u16) -> bool {
        match self {
            Plan::TwoDigit => n >= 100,
            Plan::ThreeDigit => n != 0 && !self.contains(n),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::TwoDigit => f.write_str("2-digit (10-89)"),
            Plan::ThreeDigit => f.write_str("3-digit (100-699)"),
        }
    }
}

/// What a dialled string or message target means to the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A configured or plan extension.
    Extension(u16),
    /// A configured group.
    Group(u16),
    /// Every currently registered extension.
    All,
    /// The switch itself.
    System,
    /// A number of the plan's shape that is not configured.
    Unknown(String),
    /// Anything else: goes upstream when there is one.
    External(String),
}

/// Classify `s` (a user part or CLI argument) under `plan` with `groups`.
///
/// `configured` says whether an extension number has a line in the config.
pub fn classify(
    plan: Plan,
    groups: &BTreeMap<u16, Vec<u16>>,
    configured: impl Fn(u16) -> bool,
    s: &str,
) -> Target {
    let t = s.trim();
    if t.eq_ignore_ascii_case("all") {
        return Target::All;
    }
    if t.eq_ignore_ascii_case("system") {
        return Target::System;
    }
    if !t.is_empty() && t.len() <= 5 && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = t.parse::<u16>() {
            if groups.contains_key(&n) && !t.starts_with('0') {
                return Target::Group(n);
            }
            if usize::from(plan.digits()) == t.len() && plan.contains(n) {
                return if configured(n) {
                    Target::Extension(n)
                } else {
                    Target::Unknown(t.to_string())
                };
            }
        }
    }
    Target::External(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_bounds() {
        assert_eq!(Plan::TwoDigit.count(), 80);
        assert_eq!(Plan::ThreeDigit.count(), 600);
        assert_eq!(Plan::TwoDigit.index_of(10), Some(0));
        assert_eq!(Plan::TwoDigit.index_of(89), Some(79));
        assert_eq!(Plan::TwoDigit.index_of(90), None);
        assert_eq!(Plan::ThreeDigit.number_at(599), Some(699));
        assert_eq!(Plan::ThreeDigit.number_at(600), None);
        assert!(Plan::TwoDigit.is_group_number(100));
        assert!(!Plan::ThreeDigit.is_group_number(150));
        assert!(Plan::ThreeDigit.is_group_number(700));
    }

    #[test]
    fn classify_targets() {
        let mut g = BTreeMap::new();
        g.insert(100, vec![21, 22]);
        let conf = |n: u16| n == 21;
        let p = Plan::TwoDigit;
        assert_eq!(classify(p, &g, conf, "21"), Target::Extension(21));
        assert_eq!(classify(p, &g, conf, "22"), Target::Unknown("22".into()));
        assert_eq!(classify(p, &g, conf, "100"), Target::Group(100));
        assert_eq!(classify(p, &g, conf, "ALL"), Target::All);
        assert_eq!(classify(p, &g, conf, "system"), Target::System);
        assert_eq!(
            classify(p, &g, conf, "0044123"),
            Target::External("0044123".into())
        );
        assert_eq!(classify(p, &g, conf, "9"), Target::External("9".into()));
    }
}
