//! The call book: every call the switch proxies by number, with its indexes
//! (Call-ID, our INVITE branches, live calls, calls per caller, calls to the
//! upstream) and the call table's slots. Its fields are its own: the indexes
//! are kept up here and nowhere else.

use super::call::{Call, FIRST_CALL_NUMBER, LINGER_MS};
use coventry_shared::record::Route;
use coventry_shared::stateblock::MAX_CALLS;
use std::collections::HashMap;

/// Which call-table slots are in use.
#[derive(Debug)]
struct Slots {
    /// Per slot: the call and, once ended, when.
    used: Vec<Option<(u32, u64)>>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            used: vec![None; MAX_CALLS],
        }
    }
}

impl Slots {
    /// Take a free slot, else the one whose call ended longest ago.
    fn take(&mut self, call: u32) -> Option<usize> {
        let free = self.used.iter().position(Option::is_none).or_else(|| {
            self.used
                .iter()
                .enumerate()
                .filter_map(|(i, u)| u.filter(|(_, ended)| *ended > 0).map(|(_, e)| (i, e)))
                .min_by_key(|(_, e)| *e)
                .map(|(i, _)| i)
        })?;
        self.used[free] = Some((call, 0));
        Some(free)
    }

    /// The call in `slot` ended at `now_ms`.
    fn ended(&mut self, slot: usize, now_ms: u64) {
        if let Some(Some((_, e))) = self.used.get_mut(slot) {
            *e = now_ms.max(1);
        }
    }

    /// Free slots whose call ended more than [`LINGER_MS`] ago; returns them.
    fn expire(&mut self, now_ms: u64) -> Vec<usize> {
        let mut freed = Vec::new();
        for (i, u) in self.used.iter_mut().enumerate() {
            if let Some((_, e)) = u {
                if *e > 0 && *e + LINGER_MS <= now_ms {
                    *u = None;
                    freed.push(i);
                }
            }
        }
        freed
    }
}

/// Active calls by number, with indexes by Call-ID and by our branch.
#[derive(Debug, Default)]
pub struct CallBook {
    /// Calls by number.
    calls: HashMap<u32, Call>,
    /// Call-ID → number.
    by_call_id: HashMap<String, u32>,
    /// Our INVITE branch → (number, branch index).
    by_branch: HashMap<String, (u32, usize)>,
    /// Last call number handed out.
    next: u32,
    /// Call-table slots (proxied calls and click-to-dial calls alike).
    slots: Slots,
    /// Numbers of the calls not ended yet: ended calls linger for Timer D, and
    /// under load they far outnumber the live ones, so scans go over this.
    active: std::collections::BTreeSet<u32>,
    /// Clock ticks seen (for the slower scan of ended calls).
    ticks: u64,
    /// Live calls by calling extension (`[calls] max_per_line`).
    by_caller: HashMap<u16, u32>,
    /// Live calls that went to the upstream's default route (`[upstream]
    /// max_calls`; emergency calls are not counted, nor ever refused).
    upstream_live: u32,
}

impl CallBook {
    /// The next number handed out is `first` (or the first call number).
    pub fn resume_at(&mut self, first: u32) {
        self.next = first.saturating_sub(1);
    }

    /// The number the next call will get.
    pub fn next_number(&self) -> u32 {
        self.next.wrapping_add(1).max(FIRST_CALL_NUMBER)
    }

    /// A new call number: from 1000 on, so a call number never reads as an
    /// extension number (`hangup 42` can only mean extension 42).
    pub fn number(&mut self) -> u32 {
        self.next = self.next.wrapping_add(1).max(FIRST_CALL_NUMBER);
        self.next
    }

    /// Call `no`.
    pub fn get(&self, no: u32) -> Option<&Call> {
        self.calls.get(&no)
    }

    /// Call `no`, to change.
    pub fn get_mut(&mut self, no: u32) -> Option<&mut Call> {
        self.calls.get_mut(&no)
    }

    /// Whether call `no` is known (live or lingering).
    pub fn contains(&self, no: u32) -> bool {
        self.calls.contains_key(&no)
    }

    /// The number of the call with this Call-ID.
    pub fn by_call_id(&self, call_id: &str) -> Option<u32> {
        self.by_call_id.get(call_id).copied()
    }

    /// The call and branch index our INVITE with this branch belongs to.
    pub fn by_branch(&self, branch: &str) -> Option<(u32, usize)> {
        self.by_branch.get(branch).copied()
    }

    /// Branch `idx` of call `no` went out with branch id `id`.
    pub fn index_branch(&mut self, id: String, no: u32, idx: usize) {
        self.by_branch.insert(id, (no, idx));
    }

    /// The calls a clock tick looks at: the live ones, and every fifth tick
    /// all of them (ended ones linger for their timers).
    pub fn due_for_tick(&mut self) -> Vec<u32> {
        self.ticks = (self.ticks + 1) % 5;
        if self.ticks == 0 {
            self.calls.keys().copied().collect()
        } else {
            self.active.iter().copied().collect()
        }
    }

    /// A call-table slot for call `no`: a free one, else the one whose call
    /// ended longest ago.
    pub fn take_slot(&mut self, no: u32) -> Option<usize> {
        self.slots.take(no)
    }

    /// The call in `slot` ended at `now_ms`.
    pub fn slot_ended(&mut self, slot: usize, now_ms: u64) {
        self.slots.ended(slot, now_ms);
    }

    /// Free the slots whose call ended more than [`LINGER_MS`] ago; returns
    /// them.
    pub fn expire_slots(&mut self, now_ms: u64) -> Vec<usize> {
        self.slots.expire(now_ms)
    }

    /// Live calls to the upstream's default route.
    pub fn upstream_live(&self) -> u32 {
        self.upstream_live
    }

    /// Add a new call, found by its number and its Call-ID from now on.
    pub fn insert(&mut self, call: Call) {
        self.by_call_id.insert(call.call_id.clone(), call.no);
        if !call.ended() {
            self.active.insert(call.no);
            if let Some(ext) = call.caller.ext {
                *self.by_caller.entry(ext).or_default() += 1;
            }
            if call.route == Route::Upstream {
                self.upstream_live += 1;
            }
        }
        self.calls.insert(call.no, call);
    }

    /// Call `no` goes to the upstream's default route now (a forward on no
    /// answer that leads outside).
    pub fn route_upstream(&mut self, no: u32) {
        let live = self.active.contains(&no);
        if let Some(c) = self.calls.get_mut(&no) {
            if c.route != Route::Upstream && live {
                self.upstream_live += 1;
            }
            c.route = Route::Upstream;
        }
    }

    /// Call `no` is not live any more: out of the active set, and off its
    /// caller's count.
    pub fn deactivate(&mut self, no: u32) {
        if !self.active.remove(&no) {
            return;
        }
        if self
            .calls
            .get(&no)
            .is_some_and(|c| c.route == Route::Upstream)
        {
            self.upstream_live = self.upstream_live.saturating_sub(1);
        }
        let Some(ext) = self.calls.get(&no).and_then(|c| c.caller.ext) else {
            return;
        };
        if let Some(n) = self.by_caller.get_mut(&ext) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_caller.remove(&ext);
            }
        }
    }

    /// Live calls `ext` is making.
    pub fn live_from(&self, ext: u16) -> u32 {
        self.by_caller.get(&ext).copied().unwrap_or(0)
    }

    /// The calls not ended yet.
    pub fn live(&self) -> impl Iterator<Item = &Call> {
        self.active.iter().filter_map(|n| self.calls.get(n))
    }

    /// Forget a finished call.
    pub fn remove(&mut self, no: u32) -> Option<Call> {
        self.deactivate(no);
        let call = self.calls.remove(&no)?;
        if self.by_call_id.get(&call.call_id) == Some(&no) {
            self.by_call_id.remove(&call.call_id);
        }
        for b in &call.branches {
            self.by_branch.remove(&b.id);
        }
        Some(call)
    }

    /// Calls in progress (not ended) that involve `ext`.
    pub fn active_for(&self, ext: u16) -> impl Iterator<Item = &Call> {
        self.live()
            .filter(move |c| !c.ended() && (c.caller.is(ext) || c.callee.is(ext)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_reuse_the_longest_ended() {
        let mut s = Slots::default();
        for c in 0..MAX_CALLS as u32 {
            assert!(s.take(c + 1).is_some());
        }
        assert_eq!(s.take(999), None, "all live: no slot");
        s.ended(5, 100);
        s.ended(7, 50);
        assert_eq!(s.take(1000), Some(7));
        assert_eq!(s.take(1001), Some(5));
        s.ended(9, 10);
        assert!(s.expire(10 + LINGER_MS - 1).is_empty());
        assert_eq!(s.expire(10 + LINGER_MS), vec![9]);
    }
}
