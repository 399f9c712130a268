//! Publishing the switch's state into the shared-memory state block.

use crate::config::Config;
use crate::switch::registrar::Binding;
use crate::switch::settings::{ExtSettings, Forward};
use coventry_shared::event::Event;
use coventry_shared::stateblock::{
    put_str, set_bit, BlockInit, CallEntry, ContactEntry, Counters, RouteEntry, StateWriter,
    EXT_CONFIGURED, MAX_CONTACTS, MAX_ROUTES,
};
use std::io;
use std::path::Path;

/// The daemon's view of the state block.
pub struct Publisher {
    writer: StateWriter,
    /// Events were appended since readers were last woken.
    unannounced: bool,
    /// `[security] show_texts`: texts' words go into the ring.
    show_texts: bool,
}

impl Publisher {
    /// Create (or replace) the state block at `path`.
    pub fn create(path: &Path, init: &BlockInit) -> io::Result<Publisher> {
        Ok(Publisher {
            writer: StateWriter::create(path, init)?,
            unannounced: false,
            show_texts: false,
        })
    }

    /// Write names, flags and line counts of every extension from `config`.
    pub fn set_config(&mut self, config: &Config) {
        self.show_texts = config.security.show_texts;
        let plan = self.writer.plan();
        let mut body = self.writer.body_mut();
        let day = coventry_shared::runstate::DEFAULT_RUNSTATE;
        let mut names = vec![day.to_string()];
        names.extend(
            config
                .runstates
                .keys()
                .filter(|n| n.as_str() != day)
                .cloned(),
        );
        put_words(&mut body.site.runstate_names, &names);
        let groups: Vec<String> = config.groups.keys().map(u16::to_string).collect();
        put_words(&mut body.site.group_numbers, &groups);
        for (i, e) in body.exts.iter_mut().enumerate().take(plan.count()) {
            match plan.number_at(i).and_then(|n| config.lines.get(&n)) {
                Some(line) => {
                    e.flags |= EXT_CONFIGURED;
                    e.lines = line.lines;
                    put_str(&mut e.name, &line.display);
                }
                None => {
                    e.flags &= !EXT_CONFIGURED;
                    e.lines = 0;
                    put_str(&mut e.name, "");
                }
            }
        }
    }

    /// Write the contacts of `ext` and its registered bit.
    pub fn set_contacts(&mut self, ext: u16, bindings: &[Binding]) {
        let Some(i) = self.writer.plan().index_of(ext) else {
            return;
        };
        let mut body = self.writer.body_mut();
        let e = &mut body.exts[i];
        let n = bindings.len().min(MAX_CONTACTS);
        for (slot, b) in e.contacts.iter_mut().zip(bindings.iter()) {
            put_str(&mut slot.uri, &b.uri);
            put_str(&mut slot.source, &b.source);
            put_str(&mut slot.user_agent, &b.user_agent);
            slot.algorithm = b.algorithm.map_or(0, |a| a.code());
            slot.registered_ms = b.registered_ms;
            slot.expires_ms = b.expires_ms;
        }
        for slot in e.contacts.iter_mut().skip(n) {
            *slot = ContactEntry {
                uri: [0; 128],
                source: [0; 48],
                user_agent: [0; 56],
                algorithm: 0,
                _pad: [0; 7],
                registered_ms: 0,
                expires_ms: 0,
            };
        }
        e.contact_count = n as u8;
        set_bit(&mut body.bitmaps.registered, i, n > 0);
    }

    /// Write call-table slot `slot`.
    pub fn set_call(&mut self, slot: usize, entry: &CallEntry) {
        if let Some(e) = self.writer.body_mut().calls.get_mut(slot) {
            *e = *entry;
        }
    }

    /// Set the ringing and busy bits of `ext`.
    pub fn set_call_bits(&mut self, ext: u16, ringing: bool, busy: bool) {
        let Some(i) = self.writer.plan().index_of(ext) else {
            return;
        };
        let mut body = self.writer.body_mut();
        set_bit(&mut body.bitmaps.ringing, i, ringing);
        set_bit(&mut body.bitmaps.busy, i, busy);
    }

    /// Write the forward and DND settings of `ext` and its dnd/forwarded bits.
    pub fn set_settings(&mut self, ext: u16, s: &ExtSettings) {
        let Some(i) = self.writer.plan().index_of(ext) else {
            return;
        };
        let mut body = self.writer.body_mut();
        let e = &mut body.exts[i];
        let target = |f: &Option<Forward>| f.as_ref().map(|f| f.target.clone()).unwrap_or_default();
        put_str(&mut e.forward_always, &target(&s.always));
        put_str(&mut e.forward_busy, &target(&s.busy));
        put_str(&mut e.forward_noanswer, &target(&s.noanswer));
        e.dnd_until_ms = s.dnd_until_ms.unwrap_or(0);
        e.forward_until_ms = [&s.always, &s.busy, &s.noanswer]
            .into_iter()
            .flatten()
            .filter_map(|f| f.until_ms)
            .min()
            .unwrap_or(0);
        set_bit(&mut body.bitmaps.dnd, i, s.dnd);
        set_bit(&mut body.bitmaps.forwarded, i, s.forwarded());
    }

    /// Copy the switch's counters (the shell's own, such as `shed` and
    /// `tcp_dropped`, are kept).
    pub fn set_counters(&mut self, c: &Counters) {
        let mut body = self.writer.body_mut();
        let (shed, kernel_drops) = (body.counters.shed, body.counters.kernel_drops);
        let tcp_dropped = body.counters.tcp_dropped;
        body.counters = *c;
        body.counters.shed = shed;
        body.counters.kernel_drops = kernel_drops;
        body.counters.tcp_dropped = tcp_dropped;
    }

    /// Write the TCP side's figure: SIP messages for upstream peers dropped.
    pub fn set_tcp_dropped(&mut self, n: u64) {
        self.writer.body_mut().counters.tcp_dropped = n;
    }

    /// Write the intake's figures: datagrams it shed, and those the kernel
    /// dropped before the switch could read them.
    pub fn set_intake(&mut self, shed: u64, kernel_drops: u64) {
        let mut body = self.writer.body_mut();
        body.counters.shed = shed;
        body.counters.kernel_drops = kernel_drops;
    }

    /// Write the run state in force.
    pub fn set_runstate(&mut self, name: &str) {
        put_str(&mut self.writer.body_mut().site.runstate, name);
    }

    /// Publish the traces running: how many, and what they follow.
    pub fn set_traces(&mut self, t: &crate::shell::trace::Published) {
        let mut body = self.writer.body_mut();
        body.site.traces = u8::try_from(t.count).unwrap_or(u8::MAX);
        body.site.trace_tokens = t.tokens;
        put_str(&mut body.site.trace_filters, &t.filters);
    }

    /// Write the upstream connections (unused entries cleared).
    pub fn set_routes(&mut self, routes: &[RouteEntry]) {
        let mut body = self.writer.body_mut();
        for (i, slot) in body.routes.iter_mut().enumerate().take(MAX_ROUTES) {
            *slot = routes.get(i).copied().unwrap_or(RouteEntry::UNUSED);
        }
    }

    /// Append an event to the ring; a text's words only with `[security]
    /// show_texts` (everyone in the daemon's group reads the ring).
    pub fn event(&mut self, now_ms: u64, e: &Event) {
        match e {
            Event::Message { text, .. } if !self.show_texts && !text.is_empty() => {
                let mut hidden = e.clone();
                if let Event::Message { text, .. } = &mut hidden {
                    *text = coventry_shared::event::hidden_text(text);
                }
                self.writer.push_event(now_ms, &hidden);
            }
            _ => {
                self.writer.push_event(now_ms, e);
            }
        }
        self.unannounced = true;
    }

    /// Wake the readers sleeping on the event ring if events were appended since
    /// the last call: once per turn of the daemon's loop, not once per event.
    pub fn wake_readers(&mut self) {
        if std::mem::take(&mut self.unannounced) {
            self.writer.wake_readers();
        }
    }

    /// Record the heartbeat.
    pub fn heartbeat(&self, now_ms: u64) {
        self.writer.heartbeat(now_ms);
    }
}

/// Write `words` space-separated into a NUL-padded field, as many whole words
/// as fit.
fn put_words(field: &mut [u8], words: &[String]) {
    let mut text = String::new();
    for w in words {
        let extra = usize::from(!text.is_empty()) + w.len();
        if text.len() + extra > field.len() {
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(w);
    }
    put_str(field, &text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::stateblock::SiteEntry;

    /// A building's worth of groups (50 four-digit numbers) and run states
    /// (twenty names of up to eleven letters) are all published; what does
    /// not fit is left out whole, never cut mid-word.
    #[test]
    fn site_words_fit_a_building_and_are_never_cut() {
        let mut site = SiteEntry {
            runstate: [0; 32],
            traces: 0,
            _pad: [0; 3],
            trace_tokens: [0; coventry_shared::trace::MAX_LEASES],
            trace_filters: [0; 96],
            runstate_names: [0; 256],
            group_numbers: [0; 256],
            _reserved: [0; 92],
        };
        let groups: Vec<String> = (1000..1050).map(|n: u16| n.to_string()).collect();
        put_words(&mut site.group_numbers, &groups);
        let names: Vec<String> = (0..20).map(|i| format!("holiday{i:04}")).collect();
        put_words(&mut site.runstate_names, &names);
        let read = |f: &[u8]| {
            String::from_utf8_lossy(f)
                .trim_end_matches('\0')
                .to_string()
        };
        assert_eq!(read(&site.group_numbers), groups.join(" "));
        assert_eq!(read(&site.runstate_names), names.join(" "));

        let many: Vec<String> = (1000..1100).map(|n: u16| n.to_string()).collect();
        put_words(&mut site.group_numbers, &many);
        let published = read(&site.group_numbers);
        assert!(published.split(' ').all(|w| w.len() == 4), "{published}");
        assert!(published.split(' ').count() < 100);
    }
}
