//! The state one grid cell shows: a letter that reads without colour, the same
//! letters as `pbxctl exts`.

use crate::site::Ext;

/// What an extension is doing, in order of priority (the first that applies wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtState {
    /// `r`: a call to it is ringing.
    Ringing,
    /// `B`: in a call.
    Busy,
    /// `D`: do not disturb.
    Dnd,
    /// `F`: forwarded.
    Forwarded,
    /// `R`: registered and idle.
    Registered,
    /// `-`: configured but not registered.
    Offline,
    /// `.`: not configured.
    Unconfigured,
}

impl ExtState {
    /// Every state, in the order of the legend (the order of priority).
    pub const ALL: [ExtState; 7] = [
        ExtState::Ringing,
        ExtState::Busy,
        ExtState::Dnd,
        ExtState::Forwarded,
        ExtState::Registered,
        ExtState::Offline,
        ExtState::Unconfigured,
    ];

    /// The state of `e`.
    pub fn of(e: &Ext) -> ExtState {
        if e.ringing {
            ExtState::Ringing
        } else if e.busy {
            ExtState::Busy
        } else if e.dnd {
            ExtState::Dnd
        } else if e.forwarded {
            ExtState::Forwarded
        } else if e.registered {
            ExtState::Registered
        } else if e.configured {
            ExtState::Offline
        } else {
            ExtState::Unconfigured
        }
    }

    /// The letter in the grid.
    pub fn letter(self) -> char {
        match self {
            ExtState::Ringing => 'r',
            ExtState::Busy => 'B',
            ExtState::Dnd => 'D',
            ExtState::Forwarded => 'F',
            ExtState::Registered => 'R',
            ExtState::Offline => '-',
            ExtState::Unconfigured => '.',
        }
    }

    /// A word for it (legend, detail panel).
    pub fn name(self) -> &'static str {
        match self {
            ExtState::Ringing => "ringing",
            ExtState::Busy => "busy",
            ExtState::Dnd => "dnd",
            ExtState::Forwarded => "forwarded",
            ExtState::Registered => "idle",
            ExtState::Offline => "offline",
            ExtState::Unconfigured => "unused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_and_letters() {
        let mut e = Ext::empty(21);
        assert_eq!(e.state(), ExtState::Unconfigured);
        e.configured = true;
        assert_eq!(e.state(), ExtState::Offline);
        e.registered = true;
        assert_eq!(e.state(), ExtState::Registered);
        e.forwarded = true;
        assert_eq!(e.state(), ExtState::Forwarded);
        e.dnd = true;
        assert_eq!(e.state(), ExtState::Dnd);
        e.busy = true;
        assert_eq!(e.state(), ExtState::Busy);
        e.ringing = true;
        assert_eq!(e.state(), ExtState::Ringing);
        let letters: String = ExtState::ALL.iter().map(|s| s.letter()).collect();
        assert_eq!(letters, "rBDFR-.");
    }
}
