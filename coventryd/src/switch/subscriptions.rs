//! The subscriptions the switch knows, by Call-ID: those it serves itself
//! (BLF, `system`'s state; `blf.rs` answers and NOTIFYs them) and those it
//! passed between phones (`passthrough.rs`), with their limits. Its tables are
//! its own: the indexes and the bounds are kept here and nowhere else.

use super::blf::{Subscription, MAX_SUBSCRIPTIONS, MAX_SUBSCRIPTIONS_PER_LINE};
use super::passthrough::{
    RelayedSubscription, MAX_RELAYED_PER_EXTENSION, MAX_RELAYED_SUBSCRIPTIONS,
};
use std::collections::HashMap;

/// Served and relayed subscriptions.
#[derive(Default)]
pub(super) struct Subscriptions {
    /// Those it serves itself (BLF, system state).
    served: HashMap<String, Subscription>,
    /// The Call-IDs of served subscriptions by their number (NOTIFY outcomes).
    served_by_no: HashMap<u64, String>,
    /// Those it passed between phones (their dialogs, to relay in them).
    relayed: HashMap<String, RelayedSubscription>,
}

impl Subscriptions {
    /// The served subscription with this Call-ID.
    pub fn served(&self, call_id: &str) -> Option<&Subscription> {
        self.served.get(call_id)
    }

    /// The served subscription with this Call-ID, to change.
    pub fn served_mut(&mut self, call_id: &str) -> Option<&mut Subscription> {
        self.served.get_mut(call_id)
    }

    /// Whether extension `subscriber` may have one more served subscription,
    /// and the switch one more in all.
    pub fn room_to_serve(&self, subscriber: u16) -> bool {
        let mine = self
            .served
            .values()
            .filter(|s| s.subscriber == subscriber)
            .count();
        mine < MAX_SUBSCRIPTIONS_PER_LINE && self.served.len() < MAX_SUBSCRIPTIONS
    }

    /// Serve `sub` under Call-ID `call_id`, found by its number too.
    pub fn serve(&mut self, call_id: String, sub: Subscription) {
        self.served_by_no.insert(sub.no, call_id.clone());
        self.served.insert(call_id, sub);
    }

    /// Forget the served subscription `call_id`.
    pub fn end(&mut self, call_id: &str) {
        if let Some(sub) = self.served.remove(call_id) {
            self.served_by_no.remove(&sub.no);
        }
    }

    /// The Call-ID of served subscription number `no`.
    pub fn served_call_id(&self, no: u64) -> Option<String> {
        self.served_by_no.get(&no).cloned()
    }

    /// The Call-IDs of every served subscription.
    pub fn served_call_ids(&self) -> Vec<String> {
        self.served.keys().cloned().collect()
    }

    /// Whether the switch serves any subscription.
    pub fn serves_any(&self) -> bool {
        !self.served.is_empty()
    }

    /// The relayed subscription with this Call-ID.
    pub fn relayed(&self, call_id: &str) -> Option<&RelayedSubscription> {
        self.relayed.get(call_id)
    }

    /// Remember `sub`, relayed under `call_id`. The same subscriber again (a
    /// retransmission, a new SUBSCRIBE on the Call-ID) refreshes it; another
    /// party on that Call-ID, a full table (after forgetting the expired) or
    /// an extension at its limit: false.
    pub fn relay(&mut self, call_id: &str, sub: RelayedSubscription, now_ms: u64) -> bool {
        if let Some(s) = self.relayed.get_mut(call_id) {
            if !s.subscriber.same_party(sub.subscriber) {
                return false;
            }
            s.expires_ms = sub.expires_ms;
            s.notifier = sub.notifier;
            s.notifier_ext = sub.notifier_ext;
            return true;
        }
        if self.relayed.len() >= MAX_RELAYED_SUBSCRIPTIONS {
            self.forget_expired(now_ms);
        }
        let held = self
            .relayed
            .values()
            .filter(|s| s.subscriber_ext == sub.subscriber_ext)
            .count();
        if self.relayed.len() >= MAX_RELAYED_SUBSCRIPTIONS || held >= MAX_RELAYED_PER_EXTENSION {
            return false;
        }
        self.relayed.insert(call_id.to_string(), sub);
        true
    }

    /// The relayed subscription `call_id` lives until `expires_ms` now.
    pub fn refresh_relayed(&mut self, call_id: &str, expires_ms: u64) {
        if let Some(s) = self.relayed.get_mut(call_id) {
            s.expires_ms = expires_ms;
        }
    }

    /// Forget relayed subscriptions past their expiry.
    pub fn forget_expired(&mut self, now_ms: u64) {
        self.relayed.retain(|_, s| s.expires_ms > now_ms);
    }
}
