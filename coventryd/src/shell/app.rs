//! The I/O shell around the switch core: the UDP socket, the control FIFO, the
//! clock, signals, the state block and persistence.

use crate::config::Config;
use crate::shell::durable::{self, Durable};
use crate::shell::fifo::{self, ControlFifo};
use crate::shell::hooks::Hooks;
use crate::shell::intake::Datagram;
use crate::shell::links::{Change, TcpEvent, Upstream};
use crate::shell::persist::{self, Loaded};
use crate::shell::publish::Publisher;
use crate::shell::reader::Reader;
use crate::shell::records::{self, Records};
use crate::shell::secrets;
use crate::shell::service::ServiceManager;
use crate::shell::trace::Tracer;
use crate::sip::dest::Dest;
use crate::switch::registrar::Registrar;
use crate::switch::{Outbox, Switch};
use coventry_shared::event::{Event, ResultCode};
use coventry_shared::now_ms;
use coventry_shared::record::Book;
use coventry_shared::runtime::{control_path, state_path};
use coventry_shared::stateblock::BlockInit;
use coventry_shared::trace::{Direction, Transport};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

/// How often the clock ticks (retransmissions, expiries, heartbeat).
const TICK: Duration = Duration::from_millis(100);
/// New or removed bindings are written at once (one write at a time; changes that
/// arrive during a write go into the next one).
const PERSIST_SOON_MS: u64 = 0;
/// Refreshed bindings reach the disk within this delay.
const PERSIST_LATER_MS: u64 = 5_000;
/// Datagrams handled per wake-up before other work gets a turn.
const BATCH: usize = 64;
/// Longest the switch waits for room in the socket's send buffer, ms.
const SEND_WAIT_MS: u8 = 50;
/// Receive buffer asked of the kernel, bytes.
const RCVBUF: usize = 4 << 20;

/// Where things live and where the configuration came from.
pub struct Setup {
    /// The configuration to start with.
    pub config: Config,
    /// File to re-read on reload (`None`: built-in configuration).
    pub config_path: Option<PathBuf>,
    /// Override of `[server] listen`.
    pub listen: Option<SocketAddr>,
    /// Runtime directory (state block, FIFO).
    pub runtime_dir: PathBuf,
    /// State directory (registrations).
    pub state_dir: PathBuf,
}

/// Answered calls reach the disk within this delay of an answer or an end
/// (coalesced: a burst of calls is one write). A crash sooner than this after an
/// answer loses that call's dialog (never the call itself, whose media is the
/// phones'); a call that ended just before a crash comes back, and the probe at
/// the start (`kept_calls.rs`) ends it.
const PERSIST_CALLS_MS: u64 = 1_000;

/// Writes the registrations and the answered calls to the state directory, each
/// when it is due, one write at a time, off the loop.
struct Persister {
    state_dir: PathBuf,
    /// When the registrations are due.
    due_ms: Option<u64>,
    /// When the answered calls are due.
    calls_due_ms: Option<u64>,
    writing: Option<JoinHandle<()>>,
}

/// Write each file atomically; failures are logged.
fn write_all(files: &[(PathBuf, Vec<u8>)]) {
    for (path, bytes) in files {
        if let Err(e) = persist::write_atomic(path, bytes, 0o600) {
            log::error!("cannot save {}: {e}", path.display());
        }
    }
}

/// The earlier of a due time and `at_ms`.
fn earlier(due: Option<u64>, at_ms: u64) -> Option<u64> {
    Some(due.map_or(at_ms, |d| d.min(at_ms)))
}

impl Persister {
    fn want(&mut self, at_ms: u64) {
        self.due_ms = earlier(self.due_ms, at_ms);
    }

    fn want_calls(&mut self, at_ms: u64) {
        self.calls_due_ms = earlier(self.calls_due_ms, at_ms);
    }

    fn poll(&mut self, now: u64, sw: &Switch) {
        if self.writing.as_ref().is_some_and(|h| !h.is_finished()) {
            return; // one write at a time; the next one picks up all changes
        }
        let mut files = Vec::new();
        if self.due_ms.is_some_and(|d| d <= now) {
            self.due_ms = None;
            files.push(self.registrations(now, sw));
        }
        if self.calls_due_ms.is_some_and(|d| d <= now) {
            self.calls_due_ms = None;
            files.push(self.calls(sw));
        }
        if !files.is_empty() {
            self.writing = Some(tokio::task::spawn_blocking(move || write_all(&files)));
        }
    }

    fn registrations(&self, now: u64, sw: &Switch) -> (PathBuf, Vec<u8>) {
        (
            persist::registrations_path(&self.state_dir),
            persist::encode_registrations(sw.registrar(), now),
        )
    }

    fn calls(&self, sw: &Switch) -> (PathBuf, Vec<u8>) {
        (
            self.state_dir.join(persist::CALLS_FILE),
            persist::encode_calls(&sw.kept_calls()),
        )
    }

    /// Write the registrations and calls now, after any write still under way:
    /// that one holds older state and must not land on top of this.
    async fn flush_now(&mut self, sw: &Switch) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
        write_all(&[self.registrations(now_ms(), sw), self.calls(sw)]);
    }
}

/// Run one input through the core; a bug that panics on it costs that input, not
/// the switch (the panic is logged with what was being handled). The parsers are
/// fuzzed so this should never fire.
/// Hand the switch up to [`BATCH`] datagrams, one per waiting source in turn;
/// whether more are waiting.
fn serve(sw: &mut Switch, reader: &Reader, batch: &mut Vec<Datagram>, tracer: &mut Tracer) -> bool {
    let more = reader.take(BATCH, batch);
    let now = now_ms();
    for d in batch.iter() {
        if tracer.active() {
            let how = (Direction::In, Transport::Udp, d.src);
            tracer.record(now, how, &d.data, sw.registrar());
        }
        guarded("datagram", || sw.on_datagram(now, d.src, &d.data));
    }
    reader.recycle(batch);
    more
}

fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        log::error!("internal error while handling a {what}; input dropped");
    }
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = std::net::UdpSocket::bind(addr)?;
    let fd = std::os::fd::AsFd::as_fd(&sock);
    // Past the system's rmem_max when allowed to (root, CAP_NET_ADMIN): the
    // buffer is what absorbs a burst while the reader thread waits for a CPU.
    let forced = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF);
    if forced.is_err() {
        if let Err(e) =
            nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBuf, &RCVBUF)
        {
            log::debug!("SO_RCVBUF: {e}");
        }
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Send one datagram on the non-blocking socket, waiting a little for room in
/// its send buffer when it is full.
fn send_udp(sock: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    match sock.send_to(bytes, to) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let fd = std::os::fd::AsFd::as_fd(sock);
            let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(SEND_WAIT_MS));
            if let Err(e) = sock.send_to(bytes, to) {
                log::debug!("send to {to}: {e}");
            }
        }
        Err(e) => log::debug!("send to {to}: {e}"),
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// Bind the UDP socket, and with an upstream configured a TCP listener on the same
/// address and port (upstream peers send their calls there). Port 0: the kernel
/// picks a UDP port; a few tries find one that is free on TCP too.
fn bind_sockets(
    addr: SocketAddr,
    with_tcp: bool,
) -> io::Result<(UdpSocket, Option<tokio::net::TcpListener>)> {
    let tries = if addr.port() == 0 && with_tcp { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let sock = bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on udp {addr}: {e}")))?;
        if !with_tcp {
            return Ok((sock, None));
        }
        let local = sock.local_addr()?;
        match bind_tcp(local) {
            Ok(l) => return Ok((sock, Some(l))),
            Err(e) => {
                last = Some(io::Error::new(
                    e.kind(),
                    format!("cannot listen on tcp {local}: {e}"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot bind")))
}

/// A link changed: tell the core, log the event.
fn link_changed(sw: &mut Switch, publisher: &mut Publisher, now: u64, ch: Change) {
    sw.on_link(ch.link, ch.peer);
    publisher.event(now, &ch.event);
}

/// Publish the upstream entries; the core counts the 503s.
fn publish_routes(up: &Upstream, sw: &Switch, publisher: &mut Publisher) {
    let mut entries = up.entries();
    for (e, l) in entries.iter_mut().zip(sw.links()) {
        e.refused = l.refused;
    }
    publisher.set_routes(&entries);
}

/// Run the switch until SIGTERM or SIGINT.
pub async fn run(setup: Setup) -> io::Result<()> {
    let Setup {
        config,
        config_path,
        listen,
        runtime_dir,
        state_dir,
    } = setup;
    // Before anything a client can see (the state block): a SIGTERM that comes as
    // soon as the switch looks ready must stop it cleanly, not kill it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let addr = listen.unwrap_or(config.server.listen);
    let (sock, listener) = bind_sockets(addr, !config.upstream.links().is_empty())?;
    let local = sock.local_addr()?;

    let registrar = match persist::load_registrations(&state_dir) {
        Loaded::None => Registrar::new(),
        Loaded::Ok(r) => {
            log::info!("restored {} registrations", r.binding_count());
            r
        }
        Loaded::Corrupt(why, moved) => {
            log::warn!(
                "registrations file unreadable ({why}); moved to {}; starting empty",
                moved.display()
            );
            Registrar::new()
        }
    };
    let settings = match persist::load_settings(&state_dir) {
        Ok(s) => s.unwrap_or_default(),
        Err((why, moved)) => {
            log::warn!(
                "settings file unreadable ({why}); moved to {}; starting without forwards/DND",
                moved.display()
            );
            Default::default()
        }
    };
    let plan = config.server.plan;
    let realm = config.server.realm.clone();
    let mut records = Records::start(&state_dir, &config.records);
    let mut sw = Switch::new(config, local, registrar)
        .with_settings(settings)
        .resume_call_numbers(records::first_call_number(&state_dir))
        .with_runstate(&persist::load_runstate(&state_dir))
        .with_route_lookup(Box::new(crate::shell::routing::kernel_route));
    match persist::load_calls(&state_dir) {
        Ok(kept) => {
            let n = sw.restore_calls(now_ms(), kept);
            if n > 0 {
                log::info!("restored {n} answered calls: their dialogs go on through this switch");
            }
        }
        Err((why, moved)) => log::warn!(
            "calls file unreadable ({why}); moved to {}; the calls in it can no longer be relayed",
            moved.display()
        ),
    }
    sw.on_tick(now_ms());

    let fifo_path = control_path(&runtime_dir);
    fifo::create(&fifo_path)?;
    let mut control = ControlFifo::open(&fifo_path)?;
    let start = now_ms();
    let mut publisher = Publisher::create(
        &state_path(&runtime_dir),
        &BlockInit {
            plan,
            bound: local.to_string(),
            realm,
            // A path that is not UTF-8 is not published (clients keep their default).
            state_dir: state_dir.to_str().unwrap_or_default().to_string(),
            start_ms: start,
        },
    )?;
    publisher.set_config(sw.config());
    publisher.set_runstate(sw.runstate().0);
    for (ext, b) in sw.registrar().iter() {
        publisher.set_contacts(ext, b);
    }
    for ext in sw.settings().extensions().collect::<Vec<_>>() {
        publisher.set_settings(ext, &sw.ext_settings(ext));
    }
    publisher.event(
        start,
        &Event::Notice {
            text: format!("coventryd {} started on {local}", env!("CARGO_PKG_VERSION")),
        },
    );
    log::info!(
        "listening on udp {local}{}; runtime dir {}",
        if listener.is_some() { " and tcp" } else { "" },
        runtime_dir.display()
    );
    let mut service = ServiceManager::from_env();
    if let Some(w) = sw.config().upstream.local_trust_warning() {
        log::warn!("{w}");
    }
    let (mut up, mut tcp_events) = Upstream::start(
        &sw.config().upstream,
        listener,
        sw.config().server.max_message,
        start,
    );
    for ch in up.snapshot() {
        link_changed(&mut sw, &mut publisher, start, ch);
    }
    publish_routes(&up, &sw, &mut publisher);

    let (mut hooks, mut hooks_done) = Hooks::new(&sw.config().hooks, &runtime_dir);
    let mut persister = Persister {
        state_dir,
        due_ms: None,
        calls_due_ms: None,
        writing: None,
    };
    // Everything is in place: a client (or systemd) may rely on the switch now.
    service.ready(&format!("listening on {local}"), now_ms());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The reader drains the socket on its own thread; the switch sends on it.
    let mut reader = Reader::start(sock.try_clone()?, sw.config().security.source_rate)?;
    let mut batch: Vec<Datagram> = Vec::with_capacity(BATCH);
    let mut more = false;
    let mut reader_died = false;
    // Settings and run state written in the background; what announces them waits.
    let mut durable = Durable::new(persister.state_dir.clone());
    let mut released: Option<VecDeque<Outbox>> = None;
    // The live SIP trace: nothing is copied while nobody traces.
    let mut tracer = Tracer::new(runtime_dir.clone());
    tracer.set_config(sw.config());
    // The shell's outlets for the core's outbox, borrowed afresh each time.
    macro_rules! outlets {
        () => {
            Outlets {
                sock: &sock,
                up: &mut up,
                publisher: &mut publisher,
                persister: &mut persister,
                hooks: &mut hooks,
                records: &mut records,
                durable: &mut durable,
                tracer: &mut tracer,
            }
        };
    }

    loop {
        let mut served = false;
        tokio::select! {
            () = reader.readable() => {
                more = serve(&mut sw, &reader, &mut batch, &mut tracer);
                served = true;
            }
            _ = std::future::ready(()), if more => {
                more = serve(&mut sw, &reader, &mut batch, &mut tracer);
                served = true;
            }
            ev = tcp_events.recv() => {
                let now = now_ms();
                match ev {
                    Some(TcpEvent::Message { peer, msg, wire }) => {
                        up.note_received(peer);
                        if tracer.active() {
                            // As it came on the wire, like a datagram.
                            let how = (Direction::In, Transport::Tcp, peer);
                            tracer.record(now, how, &wire, sw.registrar());
                        }
                        guarded("TCP message", || sw.on_stream(now, peer, msg));
                    }
                    Some(ev) => {
                        if let Some(ch) = up.apply(now, ev) {
                            link_changed(&mut sw, &mut publisher, now, ch);
                        }
                    }
                    None => {}
                }
            }
            lines = control.read_lines() => {
                match lines {
                    Ok(lines) => {
                        let now = now_ms();
                        for l in lines {
                            guarded("control line", || sw.on_control(now, l));
                        }
                    }
                    Err(e) => {
                        log::error!("control FIFO: {e}; reopening");
                        control = ControlFifo::open(&fifo_path)?;
                    }
                }
            }
            _ = tick.tick() => {
                let now = now_ms();
                if let Some(a) = control.expire(now) {
                    // A writer left a line without newline: drop it, answer it.
                    sw.out.events.push(Event::CommandResult {
                        id: a.id,
                        code: ResultCode::BadSyntax,
                        text: a.text(),
                    });
                }
                sw.on_tick(now);
                if !reader.is_alive() {
                    reader_died = true;
                    break;
                }
                reader.set_held(now, sw.held_sources(now));
                reader.set_rate(sw.config().security.source_rate);
                service.alive(now);
                publisher.heartbeat(now);
                // Inputs that produce no output (garbage, retransmissions) still count.
                publisher.set_counters(sw.counters());
                publisher.set_intake(reader.shed(), reader.kernel_drops());
                up.tick(std::time::Instant::now());
                publisher.set_tcp_dropped(up.dropped());
                // Like the counters: the routes' figures move without a state change.
                publish_routes(&up, &sw, &mut publisher);
                persister.poll(now, &sw);
                // Traces whose client is gone end here, within a tick.
                for e in tracer.check() {
                    publisher.event(now, &e);
                }
                if let Some(p) = tracer.take_changed() {
                    publisher.set_traces(&p);
                }
            }
            held = durable.finished() => released = Some(held),
            Some(done) = hooks_done.recv() => {
                hooks.finished();
                if let Some(ext) = done.reply_to {
                    let now = now_ms();
                    for line in &done.lines {
                        sw.send_system_text(now, ext, line);
                    }
                }
            }
            _ = hup.recv() => {
                service.reloading();
                let udp_local = sock.local_addr().unwrap_or(sw.config().server.listen);
                reload(
                    &mut sw,
                    &mut up,
                    (config_path.as_ref(), &persister.state_dir, udp_local),
                    None,
                );
                service.reloaded("running");
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        let out = sw.take_out();
        let mut o = outlets!();
        if let Some(held) = released.take() {
            release(&mut o, &mut sw, held);
        }
        if !out.is_empty() {
            flush(&mut o, &mut sw, config_path.as_ref(), out);
        }
        publisher.wake_readers();
        tracer.wake_readers();
        if served {
            // After a batch the runtime gets its turn (timers, the FIFO, TCP,
            // signals): the loop never stays ready, so a flood starves nothing.
            tokio::task::yield_now().await;
        }
    }

    reader.stop();
    // What waited for the disk goes out before the stop.
    while durable.busy() {
        let held = durable.finished().await;
        release(&mut outlets!(), &mut sw, held);
    }
    sw.on_stop();
    // The exact next call number, for the records writer to keep.
    let out = sw.take_out();
    flush(&mut outlets!(), &mut sw, config_path.as_ref(), out);
    service.stopping();
    log::info!("stopping");
    publisher.event(
        now_ms(),
        &Event::Notice {
            text: "coventryd stopping".into(),
        },
    );
    publisher.wake_readers();
    persister.flush_now(&sw).await;
    hooks.kill_all();
    records.stop();
    tracer.stop();
    let _ = std::fs::remove_file(&fifo_path);
    let _ = std::fs::remove_file(state_path(&runtime_dir));
    if reader_died {
        return Err(io::Error::other("the UDP reader stopped"));
    }
    Ok(())
}

/// The shell's outlets for the core's outbox.
struct Outlets<'a> {
    sock: &'a UdpSocket,
    up: &'a mut Upstream,
    publisher: &'a mut Publisher,
    persister: &'a mut Persister,
    hooks: &'a mut Hooks,
    records: &'a mut Records,
    durable: &'a mut Durable,
    tracer: &'a mut Tracer,
}

/// Carry out the core's outbox: the state block's registrations and calls at
/// once; what announces a change of settings or run state (answers, events,
/// hooks, sends) once that change is on disk, written in the background, and
/// every outbox after it in its turn.
fn flush(o: &mut Outlets, sw: &mut Switch, config_path: Option<&PathBuf>, mut out: Outbox) {
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
    if out.config_changed {
        o.publisher.set_config(sw.config());
        o.tracer.set_config(sw.config());
        o.hooks.reconfigure(&sw.config().hooks);
        o.records.configure(&sw.config().records);
    }
    for ext in &out.dirty {
        o.publisher
            .set_contacts(*ext, sw.registrar().contacts(*ext));
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
        o.durable.start(durable_write(sw, &out));
        o.durable.hold(out);
    } else {
        deliver(o, sw, out);
    }
}

/// What of `out` must be on disk before it is announced.
fn durable_write(sw: &Switch, out: &Outbox) -> durable::Write {
    durable::Write {
        settings: out
            .settings_changed
            .then(|| persist::encode_settings(sw.settings()))
            .and_then(|r| {
                r.map_err(|e| log::error!("cannot encode settings: {e}"))
                    .ok()
            }),
        runstate: out.runstate.clone(),
    }
}

/// The outboxes a finished write held back: the first one's change is on disk
/// now; the next one that changes something again waits for its own write.
fn release(o: &mut Outlets, sw: &mut Switch, held: VecDeque<Outbox>) {
    let mut held = held.into_iter();
    if let Some(first) = held.next() {
        deliver(o, sw, first);
    }
    while let Some(out) = held.next() {
        if Durable::needs_write(&out) {
            o.durable.start(durable_write(sw, &out));
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
    for ext in &out.settings {
        o.publisher.set_settings(*ext, &sw.ext_settings(*ext));
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
    o.publisher.set_counters(sw.counters());
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

/// Re-read the configuration file; the outcome becomes events. A reload applies
/// all of a change or refuses it, saying which: upstream links follow a changed
/// `[upstream]`, and the TCP listener (on `udp_local`, the UDP socket's address)
/// opens when `[upstream]` appears and closes when it goes; what only a restart
/// can change is refused by the core.
fn reload(
    sw: &mut Switch,
    up: &mut Upstream,
    (path, state_dir, udp_local): (Option<&PathBuf>, &Path, SocketAddr),
    id: Option<Option<u64>>,
) {
    let before = sw.config().upstream.clone();
    let outcome = match path {
        None => Ok("built-in configuration: nothing to reload".to_string()),
        Some(p) => Config::load(p)
            .map_err(|e| e.to_string())
            .and_then(|c| secrets::complete(c, p, state_dir, false))
            .and_then(|(c, note)| {
                if let Some(n) = note {
                    log::warn!("{n}");
                }
                // A new upstream needs the TCP listener before anything applies.
                let wants_tcp = !c.upstream.links().is_empty();
                let listener = match (wants_tcp, up.is_listening()) {
                    (true, false) => Some(bind_tcp(udp_local).map_err(|e| {
                        format!("[upstream] needs tcp {udp_local} and it cannot be opened: {e}")
                    })?),
                    _ => None,
                };
                let text = sw.apply_config(c)?;
                match (listener, wants_tcp) {
                    (Some(l), _) => {
                        up.listen(l);
                        log::info!("listening on tcp {udp_local} for the upstream");
                        Ok(format!("{text}; listening on tcp {udp_local}"))
                    }
                    (None, false) if up.is_listening() => {
                        up.stop_listening();
                        log::info!("no [upstream] any more: tcp closed");
                        Ok(format!("{text}; tcp closed (no upstream)"))
                    }
                    _ => Ok(text),
                }
            }),
    };
    if outcome.is_ok() && sw.config().upstream != before {
        let cfg = sw.config().upstream.clone();
        for ch in up.reconfigure(&cfg, now_ms()) {
            sw.on_link(ch.link, ch.peer);
            sw.out.events.push(ch.event);
        }
    }
    match &outcome {
        Ok(text) => {
            log::info!("{text}");
            sw.out.events.push(Event::Notice { text: text.clone() });
        }
        Err(e) => {
            log::warn!("reload refused: {e}");
            sw.out.events.push(Event::Warning {
                text: format!("reload refused: {e}"),
            });
        }
    }
    if let Some(id) = id {
        let (code, text) = match outcome {
            Ok(t) => (ResultCode::Ok, t),
            Err(e) => (ResultCode::Failed, e),
        };
        sw.out.events.push(Event::CommandResult { id, code, text });
    }
}
