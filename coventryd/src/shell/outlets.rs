//! Carrying out the core's outbox: the state block, the disk, the records,
//! the hooks, the trace, then the datagrams and TCP messages.

use crate::shell::durable::{self, Durable};
use crate::shell::hooks::Hooks;
use crate::shell::links::Upstream;
use crate::shell::persist;
use crate::shell::persister::{Persister, PERSIST_CALLS_MS, PERSIST_LATER_MS, PERSIST_SOON_MS};
use crate::shell::publish::Publisher;
use crate::shell::records::Records;
use crate::shell::reload::reload;
use crate::shell::sockets::send_udp;
use crate::shell::trace::Tracer;
use crate::sip::dest::Dest;
use crate::switch::{Outbox, Switch};
use coventry_shared::now_ms;
use coventry_shared::record::Book;
use coventry_shared::trace::{Direction, Transport};
use std::collections::VecDeque;
use std::net::UdpSocket;
use std::path::PathBuf;

/// The shell's outlets for the core's outbox, borrowed afresh each time.
pub(super) struct Outlets<'a> {
    pub(super) sock: &'a UdpSocket,
    pub(super) up: &'a mut Upstream,
    pub(super) publisher: &'a mut Publisher,
    pub(super) persister: &'a mut Persister,
    pub(super) hooks: &'a mut Hooks,
    pub(super) records: &'a mut Records,
    pub(super) durable: &'a mut Durable,
    pub(super) tracer: &'a mut Tracer,
}

/// Carry out the core's outbox: the state block's registrations and calls at
/// once; what announces a change of settings or run state (answers, events,
/// hooks, sends) once that change is on disk, written in the background, and
/// every outbox after it in its turn.
pub(super) fn flush(
    o: &mut Outlets,
    sw: &mut Switch,
    config_path: Option<&PathBuf>,
    mut out: Outbox,
) {
    if let Some(id) = out.reload.take() {
        let udp_local = o.sock.local_addr().unwrap_or(sw.config().server.listen);
        reload(
            sw,
            o.up,
            (config_path, &o.persister.state_dir, udp_local),
            Some(id),
        );
        out.merge(sw.take_out());
    }
    let now = now_ms();
    // Traces start and end at once (nothing of theirs waits for the disk).
    for order in std::mem::take(&mut out.trace) {
        out.events.extend(o.tracer.order(&order));
    }
    if let Some(p) = o.tracer.take_changed() {
        o.publisher.set_traces(&p);
    }
    if let Some(config) = out.values.config.take() {
        o.publisher.set_config(&config);
        o.tracer.set_config(&config);
        o.hooks.reconfigure(&config.hooks);
        o.records.configure(&config.records);
    }
    for (ext, contacts) in &out.values.contacts {
        o.publisher.set_contacts(*ext, contacts);
    }
    for (slot, entry) in &out.calls {
        o.publisher.set_call(*slot, entry);
    }
    for (ext, (ringing, busy)) in &out.bits {
        o.publisher.set_call_bits(*ext, *ringing, *busy);
    }
    if let Some(n) = out.call_numbers_reserved {
        o.records.reserve_call_numbers(n);
    }
    if out.calls_kept {
        o.persister.want_calls(now + PERSIST_CALLS_MS);
    }
    if out.persist_now {
        o.persister.want(now + PERSIST_SOON_MS);
    } else if out.persist_later {
        o.persister.want(now + PERSIST_LATER_MS);
    }
    o.persister.poll(now, sw);
    if o.durable.busy() {
        o.durable.hold(out);
    } else if Durable::needs_write(&out) {
        o.durable.start(durable_write(&out));
        o.durable.hold(out);
    } else {
        deliver(o, sw, out);
    }
}

/// What of `out` must be on disk before it is announced.
fn durable_write(out: &Outbox) -> durable::Write {
    durable::Write {
        settings: out
            .values
            .settings_table
            .as_ref()
            .map(persist::encode_settings)
            .and_then(|r| {
                r.map_err(|e| log::error!("cannot encode settings: {e}"))
                    .ok()
            }),
        runstate: out.runstate.clone(),
    }
}

/// The outboxes a finished write held back: the first one's change is on disk
/// now; the next one that changes something again waits for its own write.
pub(super) fn release(o: &mut Outlets, sw: &mut Switch, held: VecDeque<Outbox>) {
    let mut held = held.into_iter();
    if let Some(first) = held.next() {
        deliver(o, sw, first);
    }
    while let Some(out) = held.next() {
        if Durable::needs_write(&out) {
            o.durable.start(durable_write(&out));
            o.durable.hold(out);
            for rest in held {
                o.durable.hold(rest);
            }
            return;
        }
        deliver(o, sw, out);
    }
}

/// Announce an outbox: settings and run state in the state block, records,
/// events, hooks, then the datagrams and TCP messages.
fn deliver(o: &mut Outlets, sw: &mut Switch, mut out: Outbox) {
    let now = now_ms();
    for (ext, settings) in &out.values.ext_settings {
        o.publisher.set_settings(*ext, settings);
    }
    if let Some(name) = &out.runstate {
        o.publisher.set_runstate(name);
    }
    // Records are handed to their writer before the events that announce them.
    o.records.append(&out.records);
    for e in &out.events {
        o.publisher.event(now, e);
    }
    o.hooks.on_events(&out.events, now);
    // The `call` hook runs for calls; attempts that reached no one are not its.
    let calls = out.records.iter().filter(|(b, _)| *b == Book::Calls);
    o.hooks.on_records(calls.map(|(_, r)| r), now);
    for c in out.chats.drain(..) {
        if let Some(text) = o.hooks.chat(&c.name, c.from, &c.text, now) {
            // Answered on the next turn of the loop.
            sw.send_system_text(now, c.from, &text);
        }
    }
    o.publisher.set_counters(&out.values.counters);
    // Proven connections first: the answers below may be what they waited for.
    for peer in out.proven.drain(..) {
        o.up.prove(peer);
    }
    // Published first: a phone's 200 never arrives before the state block shows it.
    for (dest, bytes) in out.sends.drain(..) {
        if o.tracer.active() {
            let how = match dest {
                Dest::Udp(a) => (Direction::Out, Transport::Udp, a),
                Dest::Tcp(a) => (Direction::Out, Transport::Tcp, a),
            };
            o.tracer.record(now, how, &bytes, sw.registrar());
        }
        let to = match dest {
            Dest::Udp(a) => a,
            Dest::Tcp(a) => {
                // A drop is counted and logged, rate-limited, by the TCP side.
                let _ = o.up.send(a, bytes);
                continue;
            }
        };
        send_udp(o.sock, &bytes, to);
    }
}
