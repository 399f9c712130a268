//! What the switch publishes of a call: its state events, its call-table
//! entry, and the lamp bits (ringing, busy) of the extensions it involves.

use super::call::BranchState;
use super::Switch;
use coventry_shared::event::{CallPhase, Event};

impl Switch {
    /// A call-state event for call `no`.
    pub(super) fn call_event(&mut self, no: u32) {
        if let Some(c) = self.calls.get(no) {
            self.out.events.push(Event::CallState {
                call: no,
                from: c.caller_label.clone(),
                to: c.dialled.clone(),
                phase: c.phase,
                rings: c.rings,
            });
        }
    }

    /// Queue the call-table entry and the ringing/busy bits the call affects.
    pub(super) fn publish_call(&mut self, no: u32) {
        let Some(c) = self.calls.get(no) else {
            return;
        };
        if let Some(slot) = c.slot {
            self.out.calls.insert(slot, c.entry());
        }
        let mut exts: Vec<u16> = c.branches.iter().filter_map(|b| b.ext).collect();
        exts.extend([c.caller.ext, c.callee.ext].into_iter().flatten());
        exts.sort_unstable();
        exts.dedup();
        for ext in exts {
            self.publish_bits(ext);
        }
    }

    /// Queue the lamp bits of `ext`: ringing (one of its phones rings for a
    /// call), busy (in a call: [`Switch::in_call`]).
    pub(super) fn publish_bits(&mut self, ext: u16) {
        if ext == 0 {
            return;
        }
        let ringing = self.calls.live().any(|c| {
            c.phase == CallPhase::Ringing
                && c.branches
                    .iter()
                    .any(|b| b.ext == Some(ext) && b.state != BranchState::Done)
        });
        let busy = self.in_call(ext);
        self.out.bits.insert(ext, (ringing, busy));
    }
}
