//! The state one grid cell shows: the shared contract's lamp (the same letters
//! as `pbxctl exts`), made from what the console knows of an extension.

use crate::site::Ext;
pub use coventry_shared::stateblock::Lamp as ExtState;
use coventry_shared::stateblock::LampBits;

/// The lamp of `e`.
pub fn of(e: &Ext) -> ExtState {
    ExtState::of(LampBits {
        configured: e.configured,
        registered: e.registered,
        ringing: e.ringing,
        busy: e.busy,
        dnd: e.dnd,
        forwarded: e.forwarded,
    })
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
