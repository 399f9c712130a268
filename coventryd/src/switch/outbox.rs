//! The outbox: what the I/O shell must do after the core handled an input,
//! with the values it announces copied in when it is taken.

use super::registrar;
use super::settings::{self, Settings};
use super::{system, Switch};
use crate::config::Config;
use crate::sip::dest::Dest;
use coventry_shared::event::Event;
use coventry_shared::stateblock::{CallEntry, Counters};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// What the I/O layer must do after the core handled an input.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Messages to send (datagrams to phones, TCP to upstream peers).
    pub sends: Vec<(Dest, Vec<u8>)>,
    /// Events to append to the ring.
    pub events: Vec<Event>,
    /// Extensions whose contacts changed (republish their table entries).
    pub dirty: BTreeSet<u16>,
    /// Bindings were added or removed: persist soon.
    pub persist_now: bool,
    /// Bindings were refreshed: persist eventually.
    pub persist_later: bool,
    /// A `reload` command asked for the configuration to be re-read (its request id).
    pub reload: Option<Option<u64>>,
    /// The configuration changed (republish names and flags).
    pub config_changed: bool,
    /// Call-table slots to rewrite.
    pub calls: BTreeMap<usize, CallEntry>,
    /// Ringing and busy bits per extension.
    pub bits: BTreeMap<u16, (bool, bool)>,
    /// Extensions whose settings (forwards, DND) changed: republish them.
    pub settings: BTreeSet<u16>,
    /// Settings (incl. speed dials) changed: persist now.
    pub settings_changed: bool,
    /// `/msg NAME TEXT` for chat services (hooks).
    pub chats: Vec<system::Chat>,
    /// Records of calls that ended, to append to their book's file.
    pub records: Vec<(
        coventry_shared::record::Book,
        coventry_shared::record::CallRecord,
    )>,
    /// A call was answered or an answered one ended: keep the answered calls on
    /// disk soon (see [`Switch::kept_calls`]; coalesced).
    pub calls_kept: bool,
    /// Call numbers are used up to here: keep a higher first number for the
    /// next start (see [`Switch::resume_call_numbers`]).
    pub call_numbers_reserved: Option<u32>,
    /// The run state in force changed to this: keep it, publish it.
    pub runstate: Option<String>,
    /// TCP connections (by remote address) that carried what only the real
    /// upstream peer can send: a digest answered as the peer (or, with no
    /// `peer_secret`, a call or text taken from its address), or a response to a
    /// request the switch sent it. The shell stops treating them as strangers.
    pub proven: Vec<SocketAddr>,
    /// `trace` commands, checked, for the shell, which holds the traces (it
    /// answers them: whether a lease is held is for it to see).
    pub trace: Vec<TraceOrder>,
    /// The values the shell publishes and keeps, as they stood when the outbox
    /// was taken ([`Switch::take_out`]): the shell never calls back for them.
    pub values: OutValues,
}

/// The core's state an outbox announces, copied out when it is taken: the
/// contacts of the extensions in `dirty`, the settings of those in
/// `settings`, the settings table to keep when `settings_changed`, the
/// configuration when it changed, and the counters.
#[derive(Debug, Default)]
pub struct OutValues {
    /// Contacts per extension whose contacts changed.
    pub contacts: Vec<(u16, Vec<registrar::Binding>)>,
    /// Forwards and DND per extension whose settings changed.
    pub ext_settings: Vec<(u16, settings::ExtSettings)>,
    /// The whole settings table, to write to disk before what changed it is
    /// announced.
    pub settings_table: Option<Settings>,
    /// The configuration in force, when it changed.
    pub config: Option<Box<Config>>,
    /// The counters.
    pub counters: Counters,
}

/// A `trace` command the core checked: start, change or end the trace of a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceOrder {
    /// The command's request id.
    pub id: Option<u64>,
    /// The lease's token.
    pub token: u32,
    /// What to follow (`None`: end the trace).
    pub filter: Option<coventry_shared::trace::Filter>,
}

impl Outbox {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.events.is_empty()
            && self.dirty.is_empty()
            && !self.persist_now
            && !self.persist_later
            && self.reload.is_none()
            && !self.config_changed
            && self.calls.is_empty()
            && self.bits.is_empty()
            && self.settings.is_empty()
            && !self.settings_changed
            && self.chats.is_empty()
            && self.records.is_empty()
            && !self.calls_kept
            && self.call_numbers_reserved.is_none()
            && self.runstate.is_none()
            && self.proven.is_empty()
            && self.trace.is_empty()
    }

    /// The values of `sw` this outbox announces (see [`OutValues`]).
    pub(super) fn resolve(&mut self, sw: &Switch) {
        let v = &mut self.values;
        v.contacts.extend(
            self.dirty
                .iter()
                .map(|e| (*e, sw.registrar.contacts(*e).to_vec())),
        );
        v.ext_settings
            .extend(self.settings.iter().map(|e| (*e, sw.ext_settings(*e))));
        if self.settings_changed {
            v.settings_table = Some(sw.settings.clone());
        }
        if self.config_changed {
            v.config = Some(Box::new(sw.config.clone()));
        }
        v.counters = *sw.counters();
    }

    /// Append `other`'s work to this one.
    pub fn merge(&mut self, other: Outbox) {
        self.sends.extend(other.sends);
        self.events.extend(other.events);
        self.dirty.extend(other.dirty);
        self.persist_now |= other.persist_now;
        self.persist_later |= other.persist_later;
        self.reload = self.reload.or(other.reload);
        self.config_changed |= other.config_changed;
        self.calls.extend(other.calls);
        self.bits.extend(other.bits);
        self.settings.extend(other.settings);
        self.settings_changed |= other.settings_changed;
        self.chats.extend(other.chats);
        self.records.extend(other.records);
        self.calls_kept |= other.calls_kept;
        self.call_numbers_reserved = other.call_numbers_reserved.or(self.call_numbers_reserved);
        self.runstate = other.runstate.or(self.runstate.take());
        self.proven.extend(other.proven);
        self.trace.extend(other.trace);
        let (v, o) = (&mut self.values, other.values);
        v.contacts.extend(o.contacts);
        v.ext_settings.extend(o.ext_settings);
        v.settings_table = o.settings_table.or(v.settings_table.take());
        v.config = o.config.or(v.config.take());
        v.counters = o.counters;
    }
}
