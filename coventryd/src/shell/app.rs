//! The loop around the switch core: it waits for an input (datagrams, the
//! upstream links, the control FIFO, the clock, a finished write or hook, a
//! signal), hands it to the core, and carries out the core's outbox
//! (`outlets.rs`).

use crate::config::Config;
use crate::shell::durable::Durable;
use crate::shell::fifo::{self, ControlFifo};
use crate::shell::hooks::{self, Hooks};
use crate::shell::intake::Datagram;
use crate::shell::links::{Change, TcpEvent, Upstream};
use crate::shell::outlets::{flush, release, Outlets};
use crate::shell::persist::{self, Loaded};
use crate::shell::persister::Persister;
use crate::shell::publish::Publisher;
use crate::shell::reader::Reader;
use crate::shell::records::{self, Records};
use crate::shell::reload::reload;
use crate::shell::service::ServiceManager;
use crate::shell::sockets;
use crate::shell::trace::Tracer;
use crate::switch::registrar::Registrar;
use crate::switch::{Line, Outbox, Switch};
use coventry_shared::event::Event;
use coventry_shared::now_ms;
use coventry_shared::runtime::{control_path, state_path};
use coventry_shared::stateblock::BlockInit;
use coventry_shared::trace::{Direction, Transport};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

/// How often the clock ticks (retransmissions, expiries, heartbeat).
pub const TICK: Duration = Duration::from_millis(100);
/// Datagrams handled per wake-up before other work gets a turn.
const BATCH: usize = 64;

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

/// Run the switch until SIGTERM or SIGINT: start, serve inputs one at a time
/// and carry out what each produced, stop.
pub async fn run(setup: Setup) -> io::Result<()> {
    // Before anything a client can see (the state block): a SIGTERM that comes as
    // soon as the switch looks ready must stop it cleanly, not kill it.
    let mut signals = Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        hup: signal(SignalKind::hangup())?,
    };
    let (mut d, mut streams) = Daemon::start(setup)?;
    loop {
        let input = d.next_input(&mut streams, &mut signals).await;
        let served = matches!(input, Input::Datagrams);
        if !d.handle(input)? {
            break;
        }
        d.carry_out();
        if served {
            // After a batch the runtime gets its turn (timers, the FIFO, TCP,
            // signals): the loop never stays ready, so a flood starves nothing.
            tokio::task::yield_now().await;
        }
    }
    d.stop().await
}

/// The signals the switch answers.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

/// What the switch hears from, besides its own parts: the upstream links'
/// events and the hooks that finished.
struct Streams {
    tcp: mpsc::Receiver<TcpEvent>,
    hooks_done: mpsc::Receiver<hooks::Done>,
    tick: tokio::time::Interval,
}

/// One thing that woke the loop.
// One value at a time, moved once from the wait to its handler: a TCP
// message's size costs nothing there, and boxing it would allocate per message.
#[allow(clippy::large_enum_variant)]
enum Input {
    /// Datagrams are waiting (or a batch left some).
    Datagrams,
    /// An upstream link's message or change.
    Tcp(Option<TcpEvent>),
    /// Lines on the control FIFO, or its failure.
    Control(io::Result<Vec<Line>>),
    /// The clock.
    Tick,
    /// A background write finished: the outboxes it held may go.
    Written(VecDeque<Outbox>),
    /// A hook finished.
    HookDone(hooks::Done),
    /// SIGHUP.
    Reload,
    /// SIGTERM or SIGINT.
    Stop,
}

/// The running switch: the core and everything the shell holds for it.
struct Daemon {
    sw: Switch,
    sock: UdpSocket,
    reader: Reader,
    /// Datagrams taken from the reader, handed to the core in turn.
    batch: Vec<Datagram>,
    /// The last batch left datagrams waiting.
    more: bool,
    /// The UDP reader thread stopped: the switch stops with an error.
    reader_died: bool,
    up: Upstream,
    control: ControlFifo,
    fifo_path: PathBuf,
    runtime_dir: PathBuf,
    config_path: Option<PathBuf>,
    publisher: Publisher,
    persister: Persister,
    hooks: Hooks,
    records: Records,
    /// Settings and run state written in the background; what announces them
    /// waits.
    durable: Durable,
    /// What a finished write released, carried out after the input.
    released: Option<VecDeque<Outbox>>,
    /// The live SIP trace: nothing is copied while nobody traces.
    tracer: Tracer,
    service: ServiceManager,
}

/// The shell's outlets for the core's outbox, borrowed from the daemon's
/// fields (apart from the core, which is borrowed beside them).
macro_rules! outlets {
    ($d:expr) => {
        Outlets {
            sock: &$d.sock,
            up: &mut $d.up,
            publisher: &mut $d.publisher,
            persister: &mut $d.persister,
            hooks: &mut $d.hooks,
            records: &mut $d.records,
            durable: &mut $d.durable,
            tracer: &mut $d.tracer,
        }
    };
}

impl Daemon {
    /// Bind, restore what the state directory kept, publish the state block and
    /// tell systemd the switch is ready.
    fn start(setup: Setup) -> io::Result<(Daemon, Streams)> {
        let Setup {
            config,
            config_path,
            listen,
            runtime_dir,
            state_dir,
        } = setup;
        let addr = listen.unwrap_or(config.server.listen);
        let (sock, listener) = sockets::bind_sockets(addr, !config.upstream.links().is_empty())?;
        let local = sock.local_addr()?;
        let records = Records::start(&state_dir, &config.records);
        let mut sw = restore_switch(config, local, &state_dir);
        sw.on_tick(now_ms());

        let fifo_path = control_path(&runtime_dir);
        fifo::create(&fifo_path)?;
        let control = ControlFifo::open(&fifo_path)?;
        let start = now_ms();
        let mut publisher = open_publisher(&sw, &runtime_dir, &state_dir, local, start)?;
        log::info!(
            "listening on udp {local}{}; runtime dir {}",
            if listener.is_some() { " and tcp" } else { "" },
            runtime_dir.display()
        );
        let service = ServiceManager::from_env();
        if let Some(w) = sw.config().upstream.local_trust_warning() {
            log::warn!("{w}");
        }
        let (up, tcp) = Upstream::start(
            &sw.config().upstream,
            listener,
            sw.config().server.max_message,
            start,
        );
        for ch in up.snapshot() {
            link_changed(&mut sw, &mut publisher, start, ch);
        }
        publish_routes(&up, &sw, &mut publisher);
        let (hooks, hooks_done) = Hooks::new(&sw.config().hooks, &runtime_dir);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The reader drains the socket on its own thread; the switch sends on it.
        let reader = Reader::start(sock.try_clone()?, sw.config().security.source_rate)?;
        let mut tracer = Tracer::new(runtime_dir.clone());
        tracer.set_config(sw.config());
        let mut d = Daemon {
            sw,
            sock,
            reader,
            batch: Vec::with_capacity(BATCH),
            more: false,
            reader_died: false,
            up,
            control,
            fifo_path,
            runtime_dir,
            config_path,
            publisher,
            persister: Persister::new(state_dir.clone()),
            hooks,
            records,
            durable: Durable::new(state_dir),
            released: None,
            tracer,
            service,
        };
        // Everything is in place: a client (or systemd) may rely on the switch now.
        d.service.ready(&format!("listening on {local}"), now_ms());
        Ok((
            d,
            Streams {
                tcp,
                hooks_done,
                tick,
            },
        ))
    }

    /// Wait for the next input.
    async fn next_input(&mut self, s: &mut Streams, sig: &mut Signals) -> Input {
        tokio::select! {
            () = self.reader.readable() => Input::Datagrams,
            _ = std::future::ready(()), if self.more => Input::Datagrams,
            ev = s.tcp.recv() => Input::Tcp(ev),
            lines = self.control.read_lines() => Input::Control(lines),
            _ = s.tick.tick() => Input::Tick,
            held = self.durable.finished() => Input::Written(held),
            Some(done) = s.hooks_done.recv() => Input::HookDone(done),
            _ = sig.hup.recv() => Input::Reload,
            _ = sig.term.recv() => Input::Stop,
            _ = sig.int.recv() => Input::Stop,
        }
    }

    /// Hand `input` to the core (or the shell part it is for); whether the
    /// switch goes on.
    fn handle(&mut self, input: Input) -> io::Result<bool> {
        match input {
            Input::Datagrams => self.serve(),
            Input::Tcp(ev) => self.on_tcp(ev),
            Input::Control(Ok(lines)) => {
                let now = now_ms();
                for l in lines {
                    guarded("control line", || self.sw.on_control(now, l));
                }
            }
            Input::Control(Err(e)) => {
                log::error!("control FIFO: {e}; reopening");
                self.control = ControlFifo::open(&self.fifo_path)?;
            }
            Input::Tick => return Ok(self.on_tick()),
            Input::Written(held) => self.released = Some(held),
            Input::HookDone(done) => {
                self.hooks.finished();
                if let Some(ext) = done.reply_to {
                    let now = now_ms();
                    for line in &done.lines {
                        self.sw.send_system_text(now, ext, line);
                    }
                }
            }
            Input::Reload => {
                self.service.reloading();
                let udp_local = self
                    .sock
                    .local_addr()
                    .unwrap_or(self.sw.config().server.listen);
                let paths = (
                    self.config_path.as_ref(),
                    self.persister.state_dir.as_path(),
                    udp_local,
                );
                reload(&mut self.sw, &mut self.up, paths, None);
                self.service.reloaded("running");
            }
            Input::Stop => return Ok(false),
        }
        Ok(true)
    }

    /// Hand the core up to [`BATCH`] datagrams, one per waiting source in turn.
    fn serve(&mut self) {
        self.more = self.reader.take(BATCH, &mut self.batch);
        let now = now_ms();
        for d in self.batch.iter() {
            if self.tracer.active() {
                let how = (Direction::In, Transport::Udp, d.src);
                self.tracer.record(now, how, &d.data, self.sw.registrar());
            }
            guarded("datagram", || self.sw.on_datagram(now, d.src, &d.data));
        }
        self.reader.recycle(&mut self.batch);
    }

    /// An upstream link's message (to the core) or change (to the core and
    /// the state block).
    fn on_tcp(&mut self, ev: Option<TcpEvent>) {
        let now = now_ms();
        match ev {
            Some(TcpEvent::Message { peer, msg, wire }) => {
                self.up.note_received(peer);
                if self.tracer.active() {
                    // As it came on the wire, like a datagram.
                    let how = (Direction::In, Transport::Tcp, peer);
                    self.tracer.record(now, how, &wire, self.sw.registrar());
                }
                guarded("TCP message", || self.sw.on_stream(now, peer, msg));
            }
            Some(ev) => {
                if let Some(ch) = self.up.apply(now, ev) {
                    link_changed(&mut self.sw, &mut self.publisher, now, ch);
                }
            }
            None => {}
        }
    }

    /// The clock: timers of the core, the heartbeat and figures of the state
    /// block, the reader's limits, the links, the disk, the traces. False when
    /// the UDP reader died.
    fn on_tick(&mut self) -> bool {
        let now = now_ms();
        if let Some(a) = self.control.expire(now) {
            // A writer left a line without newline: drop it, answer it.
            self.sw.on_control_unfinished(a.id, a.text());
        }
        self.sw.on_tick(now);
        if !self.reader.is_alive() {
            self.reader_died = true;
            return false;
        }
        let sw = &self.sw;
        self.reader.set_held(now, sw.held_sources(now));
        self.reader.set_rate(sw.config().security.source_rate);
        self.service.alive(now);
        self.publisher.heartbeat(now);
        // Inputs that produce no output (garbage, retransmissions) still count.
        self.publisher.set_counters(sw.counters());
        self.publisher
            .set_intake(self.reader.shed(), self.reader.kernel_drops());
        self.up.tick(std::time::Instant::now());
        self.publisher.set_tcp_dropped(self.up.dropped());
        // Like the counters: the routes' figures move without a state change.
        publish_routes(&self.up, sw, &mut self.publisher);
        self.persister.poll(now, sw);
        // Traces whose client is gone end here, within a tick.
        for e in self.tracer.check() {
            self.publisher.event(now, &e);
        }
        if let Some(p) = self.tracer.take_changed() {
            self.publisher.set_traces(&p);
        }
        true
    }

    /// Carry out what the input produced (and what a finished write
    /// released), then wake the state block's and the trace's readers.
    fn carry_out(&mut self) {
        let out = self.sw.take_out();
        let mut o = outlets!(self);
        if let Some(held) = self.released.take() {
            release(&mut o, &mut self.sw, held);
        }
        if !out.is_empty() {
            flush(&mut o, &mut self.sw, self.config_path.as_ref(), out);
        }
        self.publisher.wake_readers();
        self.tracer.wake_readers();
    }

    /// Stop: what waits for the disk goes out, the core ends its calls'
    /// timers, the state is written, hooks are killed, the FIFO and the state
    /// block removed.
    async fn stop(mut self) -> io::Result<()> {
        self.reader.stop();
        // What waited for the disk goes out before the stop.
        while self.durable.busy() {
            let held = self.durable.finished().await;
            release(&mut outlets!(self), &mut self.sw, held);
        }
        self.sw.on_stop();
        // The exact next call number, for the records writer to keep.
        let out = self.sw.take_out();
        flush(
            &mut outlets!(self),
            &mut self.sw,
            self.config_path.as_ref(),
            out,
        );
        self.service.stopping();
        log::info!("stopping");
        self.publisher.event(
            now_ms(),
            &Event::Notice {
                text: "coventryd stopping".into(),
            },
        );
        self.publisher.wake_readers();
        self.persister.flush_now(&self.sw).await;
        self.hooks.kill_all();
        self.records.stop();
        self.tracer.stop();
        let _ = std::fs::remove_file(&self.fifo_path);
        let _ = std::fs::remove_file(state_path(&self.runtime_dir));
        if self.reader_died {
            return Err(io::Error::other("the UDP reader stopped"));
        }
        Ok(())
    }
}

/// The core on `config`, with what the state directory kept: registrations,
/// settings, run state, call numbers and answered calls. An unreadable file is
/// moved aside and said so; the switch starts without it.
fn restore_switch(config: Config, local: SocketAddr, state_dir: &Path) -> Switch {
    let registrar = match persist::load_registrations(state_dir) {
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
    let settings = match persist::load_settings(state_dir) {
        Ok(s) => s.unwrap_or_default(),
        Err((why, moved)) => {
            log::warn!(
                "settings file unreadable ({why}); moved to {}; starting without forwards/DND",
                moved.display()
            );
            Default::default()
        }
    };
    let mut sw = Switch::new(config, local, registrar)
        .with_settings(settings)
        .resume_call_numbers(records::first_call_number(state_dir))
        .with_runstate(&persist::load_runstate(state_dir))
        .with_route_lookup(Box::new(crate::shell::routing::kernel_route));
    match persist::load_calls(state_dir) {
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
    sw
}

/// The state block, created and filled with what `sw` knows at the start.
fn open_publisher(
    sw: &Switch,
    runtime_dir: &Path,
    state_dir: &Path,
    local: SocketAddr,
    start: u64,
) -> io::Result<Publisher> {
    let mut publisher = Publisher::create(
        &state_path(runtime_dir),
        &BlockInit {
            plan: sw.config().server.plan,
            bound: local.to_string(),
            realm: sw.config().server.realm.clone(),
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
    Ok(publisher)
}

/// Run one input through the core; a bug that panics on it costs that input, not
/// the switch (the panic is logged with what was being handled). The parsers are
/// fuzzed so this should never fire.
fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        log::error!("internal error while handling a {what}; input dropped");
    }
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
