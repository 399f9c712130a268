//! The upstream adapter's I/O: TCP connections to the `[upstream]` routes and from
//! trusted upstream peers. No SIP logic: bytes in, framed messages out.
//!
//! - `status.rs` (pure): the back-off schedule and a link's state machine and
//!   counters; `framing.rs` (pure): the read buffer into messages, pongs and error
//!   replies, and the keep-alive clock; `backlog.rs` (pure): the write queue's
//!   byte budget, the clock that tells a peer not reading from a burst of ours,
//!   and counted, rate-limited log lines; `slots.rs` (pure): who gets an inbound
//!   slot (probation until proven, a per-source cap, eviction order).
//! - `conn.rs`: one connection's read/write loop; `link.rs`: the persistent
//!   outbound task per link; `inbound.rs`: the accept loop.
//!
//! Tasks report through one bounded channel of [`TcpEvent`]s (a peer sending faster
//! than the switch handles waits: its reader stops reading, TCP pushes back); the
//! main loop hands
//! [`TcpEvent::Message`] to the core and everything else to [`Upstream::apply`],
//! which keeps the picture the core and the state block see. Everything runs on the
//! caller's tokio runtime; dropping the [`Upstream`] ends every task and connection.

mod backlog;
mod conn;
mod framing;
mod inbound;
mod link;
mod slots;
mod status;

pub use backlog::{INBOUND_BACKLOG, LINK_BACKLOG, WRITE_STALL};
pub use conn::{Conn, ConnId};
pub use inbound::{MAX_INBOUND, UNPROVEN_DEADLINE};
pub use slots::PER_SOURCE;
pub use status::DOWN_AFTER;

use crate::config::{HostPort, RouteKind, UpstreamConfig};
use backlog::Tally;
use conn::PushError;
use coventry_shared::event::{Event, RouteState};
use coventry_shared::stateblock::{put_str, RouteEntry, MAX_ROUTES};
use status::{LinkStatus, Transition};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Events queued for the main loop before the connections' readers wait.
pub const EVENTS: usize = 4096;

/// Identifies one outbound link task (stable across reloads that keep the link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(u64);

/// What the TCP side reports to the main loop.
#[derive(Debug)]
pub enum TcpEvent {
    /// A SIP message framed from a TCP connection whose remote address is `peer`
    /// (outbound link or accepted inbound connection). Goes to the core.
    Message {
        /// The connection's remote address (what [`Upstream::send`] takes).
        peer: SocketAddr,
        /// The message.
        msg: rsip::SipMessage,
        /// Its bytes as they came on the wire (what the live trace shows).
        wire: bytes::Bytes,
    },
    /// An outbound link connected to `peer`.
    LinkUp {
        /// Which link.
        link: LinkId,
        /// The address it connected to.
        peer: SocketAddr,
        /// The connection's write end.
        conn: Conn,
    },
    /// An outbound link's attempt failed or its connection ended; the next attempt
    /// comes in `retry_in`.
    LinkDown {
        /// Which link.
        link: LinkId,
        /// Why.
        error: String,
        /// Back-off before the next attempt.
        retry_in: Duration,
    },
    /// A link's host name resolved to these addresses (trusted from now on).
    Resolved {
        /// Which link.
        link: LinkId,
        /// The addresses.
        ips: Vec<IpAddr>,
    },
    /// A trusted peer connected to us from `peer`.
    InboundOpened {
        /// The connection's remote address.
        peer: SocketAddr,
        /// The connection's write end.
        conn: Conn,
    },
    /// An inbound connection ended.
    InboundClosed {
        /// The connection's remote address.
        peer: SocketAddr,
        /// Which connection.
        conn: ConnId,
        /// Why.
        error: String,
        /// Whether the core had proven it to be the upstream peer.
        proven: bool,
    },
}

/// A change the core and the state block must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Index of the link (order of `UpstreamConfig::links()`).
    pub link: usize,
    /// The route kinds it serves.
    pub kinds: Vec<RouteKind>,
    /// `Some(remote address)` when it is now connected, `None` when not.
    pub peer: Option<SocketAddr>,
    /// The ring event to publish ([`Event::Upstream`]).
    pub event: Event,
}

/// The adapter's clocks. [`Timings::from_config`] gives the production values;
/// tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Limit on resolving a name and on each connect (5 s).
    pub connect_timeout: Duration,
    /// Ping an outbound link after this long without writing (`[upstream] keepalive`).
    pub keepalive: Duration,
    /// A ping unanswered this long means the connection is dead (10 s).
    pub pong_timeout: Duration,
    /// First back-off step (1 s), doubled per consecutive failure...
    pub backoff_first: Duration,
    /// ... up to this (10 s).
    pub backoff_max: Duration,
    /// How long the error reply to a broken stream may take to go out before the
    /// connection is closed anyway (1 s).
    pub flush_timeout: Duration,
    /// An inbound connection silent both ways this long is closed (10 min).
    pub inbound_idle: Duration,
    /// An inbound connection not proven to be the upstream peer this long after
    /// it opened is closed ([`UNPROVEN_DEADLINE`]).
    pub unproven: Duration,
    /// A peer that takes no byte this long while output waits for it is cut
    /// off ([`WRITE_STALL`]).
    pub write_stall: Duration,
}

impl Timings {
    /// The production timings for `cfg`.
    pub fn from_config(cfg: &UpstreamConfig) -> Timings {
        Timings {
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(u64::from(cfg.keepalive.max(1))),
            pong_timeout: Duration::from_secs(10),
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(1),
            inbound_idle: Duration::from_secs(600),
            unproven: UNPROVEN_DEADLINE,
            write_stall: WRITE_STALL,
        }
    }
}

/// One outbound link as the switch sees it.
struct Link {
    id: LinkId,
    target: HostPort,
    kinds: Vec<RouteKind>,
    /// What the routes it serves are called (`default+sms`, `building`).
    name: String,
    status: LinkStatus,
    conn: Option<Conn>,
    ips: Vec<IpAddr>,
    task: JoinHandle<()>,
}

impl Link {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn serves(&self, kind: RouteKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// The upstream adapter's connections: one persistent outbound link per distinct
/// `[upstream]` peer, and the inbound connections of trusted peers.
pub struct Upstream {
    links: Vec<Link>,
    inbound: HashMap<SocketAddr, Conn>,
    tx: mpsc::Sender<TcpEvent>,
    acceptor: Option<JoinHandle<()>>,
    trust_cfg: Vec<IpAddr>,
    trust: watch::Sender<HashSet<IpAddr>>,
    keepalive: watch::Sender<Duration>,
    cfg_keepalive: u32,
    timings: Timings,
    max_message: usize,
    next_link: u64,
    conn_ids: Arc<AtomicU64>,
    /// Messages dropped (no connection, or over its backlog), and the latest why.
    drops: Tally,
    drop_reason: String,
    /// Inbound connections that ended without being proven, and the latest.
    strangers: Tally,
    stranger_end: String,
}

impl Upstream {
    /// Start one persistent outbound connection task per `cfg.links()` entry, and
    /// accept inbound connections on `listener` (None = no listener) from trusted
    /// peers only: the IPs in `cfg.trust` plus the IPs the route hosts resolve to.
    /// Others are closed at once. Must be called within a tokio runtime.
    pub fn start(
        cfg: &UpstreamConfig,
        listener: Option<TcpListener>,
        max_message: usize,
        now_ms: u64,
    ) -> (Upstream, mpsc::Receiver<TcpEvent>) {
        Upstream::start_with(
            cfg,
            listener,
            max_message,
            now_ms,
            Timings::from_config(cfg),
        )
    }

    /// [`Upstream::start`] with explicit timings (tests).
    pub fn start_with(
        cfg: &UpstreamConfig,
        listener: Option<TcpListener>,
        max_message: usize,
        now_ms: u64,
        timings: Timings,
    ) -> (Upstream, mpsc::Receiver<TcpEvent>) {
        let (tx, rx) = mpsc::channel(EVENTS);
        let (trust, _) = watch::channel(HashSet::new());
        let (keepalive, _) = watch::channel(timings.keepalive);
        let mut up = Upstream {
            links: Vec::new(),
            inbound: HashMap::new(),
            tx,
            acceptor: None,
            trust_cfg: cfg.trust.clone(),
            trust,
            keepalive,
            cfg_keepalive: cfg.keepalive,
            timings,
            max_message,
            next_link: 0,
            conn_ids: Arc::new(AtomicU64::new(0)),
            drops: Tally::new(inbound::LOG_EVERY),
            drop_reason: String::new(),
            strangers: Tally::new(inbound::LOG_EVERY),
            stranger_end: String::new(),
        };
        for (target, kinds) in cfg.links() {
            let name = cfg.link_name(&kinds);
            let link = up.spawn_link(target, kinds, name, now_ms);
            up.links.push(link);
        }
        up.refresh_trust();
        if let Some(listener) = listener {
            up.listen(listener);
        }
        (up, rx)
    }

    fn spawn_link(
        &mut self,
        target: HostPort,
        kinds: Vec<RouteKind>,
        name: String,
        now_ms: u64,
    ) -> Link {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let task = link::LinkTask {
            id,
            target: target.clone(),
            timings: self.timings,
            keepalive: self.keepalive.subscribe(),
            max_message: self.max_message,
            ids: Arc::clone(&self.conn_ids),
            tx: self.tx.clone(),
        };
        log::info!("upstream {target}: connecting");
        Link {
            id,
            ips: literal_ip(&target).into_iter().collect(),
            target,
            kinds,
            name,
            status: LinkStatus::new(now_ms),
            conn: None,
            task: tokio::spawn(task.run()),
        }
    }

    fn refresh_trust(&mut self) {
        let set: HashSet<IpAddr> = self
            .trust_cfg
            .iter()
            .chain(self.links.iter().flat_map(|l| l.ips.iter()))
            .map(|ip| ip.to_canonical())
            .collect();
        self.trust.send_if_modified(|cur| {
            if *cur == set {
                false
            } else {
                *cur = set;
                true
            }
        });
    }

    /// Send bytes (one whole SIP message) on the connection whose remote address is
    /// `peer` (outbound link first, then inbound connection); false when there is
    /// none, or when more than its backlog ([`LINK_BACKLOG`], [`INBOUND_BACKLOG`])
    /// already waits for the peer: the message is dropped, counted
    /// ([`Upstream::dropped`]) and logged at most once a minute, and the
    /// connection stays (only a peer that stops reading is cut off, by its
    /// connection task). Counts `sent` for links.
    pub fn send(&mut self, peer: SocketAddr, bytes: Vec<u8>) -> bool {
        let len = bytes.len();
        let link = self
            .links
            .iter()
            .position(|l| l.conn.is_some() && l.status.peer == Some(peer));
        if let Some(i) = link {
            let Some(link) = self.links.get_mut(i) else {
                return false;
            };
            let Some(conn) = link.conn.as_ref() else {
                return false;
            };
            let why = match conn.push(bytes) {
                Ok(()) => {
                    link.status.sent += 1;
                    return true;
                }
                Err(PushError::Full) => format!(
                    "upstream {}: {} bytes already wait for {peer} (backlog {} MiB); \
                     a message of {len} bytes dropped",
                    link.target,
                    conn.held(),
                    LINK_BACKLOG >> 20
                ),
                Err(PushError::Closed) => {
                    link.conn = None;
                    format!(
                        "upstream {}: the connection to {peer} has ended",
                        link.target
                    )
                }
            };
            self.dropped_one(why);
            return false;
        }
        let why = match self.inbound.get(&peer).map(|c| (c.push(bytes), c.held())) {
            Some((Ok(()), _)) => return true,
            Some((Err(PushError::Full), held)) => format!(
                "tcp {peer}: {held} bytes already wait (backlog {} MiB); a message of \
                 {len} bytes dropped",
                INBOUND_BACKLOG >> 20
            ),
            Some((Err(PushError::Closed), _)) => {
                self.inbound.remove(&peer);
                format!("tcp {peer}: the connection has ended")
            }
            None => format!("no TCP connection to {peer}"),
        };
        self.dropped_one(why);
        false
    }

    /// Count a message that could not be sent; log it if a line is due.
    fn dropped_one(&mut self, why: String) {
        self.drop_reason = why;
        if let Some(n) = self.drops.note(Instant::now()) {
            log_drops(n, &self.drop_reason);
        }
    }

    /// SIP messages for TCP peers dropped so far (no connection, or over its
    /// backlog).
    pub fn dropped(&self) -> u64 {
        self.drops.total()
    }

    /// The core proved the inbound connection from `peer` to be the upstream
    /// peer (`Outbox::proven`): it keeps its slot and has no deadline.
    pub fn prove(&mut self, peer: SocketAddr) {
        if self.inbound.get(&peer).is_some_and(Conn::prove) {
            log::info!("tcp connection from {peer}: proven to be the upstream peer");
        }
    }

    /// Write the rate-limited lines that are due (call it from a clock).
    pub fn tick(&mut self, now: Instant) {
        if let Some(n) = self.drops.due(now) {
            log_drops(n, &self.drop_reason);
        }
        if let Some(n) = self.strangers.due(now) {
            log_strangers(n, &self.stranger_end);
        }
    }

    /// Count a SIP message received from `peer` (call it as each
    /// [`TcpEvent::Message`] passes by; counts only for outbound links).
    pub fn note_received(&mut self, peer: SocketAddr) {
        if let Some(link) = self
            .links
            .iter_mut()
            .find(|l| l.conn.is_some() && l.status.peer == Some(peer))
        {
            link.status.received += 1;
        }
    }

    /// The remote address of the connected link serving `kind`, if any.
    pub fn peer_for(&self, kind: RouteKind) -> Option<SocketAddr> {
        self.links
            .iter()
            .find(|l| l.serves(kind))
            .filter(|l| l.status.is_connected())
            .and_then(|l| l.status.peer)
    }

    /// Feed a non-Message event back in (the main loop receives everything from the
    /// channel; Message goes to the core, the rest here). Updates the link status and
    /// returns a Change when a link's state changed. A `Message` given here is
    /// dropped (logged).
    pub fn apply(&mut self, now_ms: u64, ev: TcpEvent) -> Option<Change> {
        match ev {
            TcpEvent::Message { peer, .. } => {
                log::debug!("upstream: a message from {peer} was not handed to the core");
                None
            }
            TcpEvent::LinkUp { link, peer, conn } => {
                let i = self.index(link)?;
                let l = self.links.get_mut(i)?;
                l.conn = Some(conn);
                let t = l.status.connected(now_ms, peer)?;
                log::info!("upstream {} ({}): {}", l.target, l.name(), t.detail);
                Some(self.change(i, t))
            }
            TcpEvent::LinkDown {
                link,
                error,
                retry_in,
            } => {
                let i = self.index(link)?;
                let l = self.links.get_mut(i)?;
                l.conn = None;
                log::debug!("upstream {}: {error}; retry in {retry_in:?}", l.target);
                let t = l.status.failed(now_ms, &error, retry_in)?;
                log::warn!(
                    "upstream {} ({}) {}: {}",
                    l.target,
                    l.name(),
                    t.state.name(),
                    t.detail
                );
                Some(self.change(i, t))
            }
            TcpEvent::Resolved { link, ips } => {
                let i = self.index(link)?;
                let l = self.links.get_mut(i)?;
                l.ips = ips;
                self.refresh_trust();
                None
            }
            TcpEvent::InboundOpened { peer, conn } => {
                self.inbound.insert(peer, conn);
                None
            }
            TcpEvent::InboundClosed {
                peer,
                conn,
                error,
                proven,
            } => {
                if self.inbound.get(&peer).is_some_and(|c| c.id() == conn) {
                    self.inbound.remove(&peer);
                }
                if proven {
                    log::info!("tcp connection from {peer} ended: {error}");
                } else {
                    log::debug!("tcp connection from {peer} (not proven) ended: {error}");
                    self.stranger_end = format!("{peer}: {error}");
                    if let Some(n) = self.strangers.note(Instant::now()) {
                        log_strangers(n, &self.stranger_end);
                    }
                }
                None
            }
        }
    }

    fn index(&self, id: LinkId) -> Option<usize> {
        self.links.iter().position(|l| l.id == id)
    }

    fn change(&self, i: usize, t: Transition) -> Change {
        let (kinds, peer, route, addr) = match self.links.get(i) {
            Some(l) => (
                l.kinds.clone(),
                l.status.peer,
                l.name(),
                l.target.to_string(),
            ),
            None => (Vec::new(), None, String::new(), String::new()),
        };
        Change {
            link: i,
            kinds,
            peer: if t.state == RouteState::Connected {
                peer
            } else {
                None
            },
            event: Event::Upstream {
                route,
                addr,
                state: t.state,
                detail: t.detail,
            },
        }
    }

    /// The full picture: a Change per link, in link order, describing its current
    /// state (e.g. to publish after [`Upstream::start`]).
    pub fn snapshot(&self) -> Vec<Change> {
        (0..self.links.len())
            .filter_map(|i| {
                let l = self.links.get(i)?;
                let detail = match (l.status.state, l.status.peer) {
                    (RouteState::Connected, Some(p)) => format!("connected to {p}"),
                    (RouteState::Connecting, _) => format!("connecting to {}", l.target),
                    _ => l.status.last_error.clone(),
                };
                Some(self.change(
                    i,
                    Transition {
                        state: l.status.state,
                        detail,
                    },
                ))
            })
            .collect()
    }

    /// The state-block entries (at most `stateblock::MAX_ROUTES`), in link order.
    /// `refused` is the core's to fill in: it is the one that answers 503.
    pub fn entries(&self) -> Vec<RouteEntry> {
        self.links
            .iter()
            .take(MAX_ROUTES)
            .map(|l| {
                let s = &l.status;
                let mut e = RouteEntry {
                    name: [0; 32],
                    addr: [0; 64],
                    state: s.state as u8,
                    _pad: [0; 7],
                    since_ms: s.since_ms,
                    retry_ms: if s.is_connected() { 0 } else { s.retry_ms },
                    connects: s.connects,
                    failures: s.failures,
                    sent: s.sent,
                    received: s.received,
                    refused: 0,
                    last_error: [0; 64],
                };
                put_str(&mut e.name, &l.name());
                put_str(&mut e.addr, &l.target.to_string());
                put_str(&mut e.last_error, &s.last_error);
                e
            })
            .collect()
    }

    /// The config changed (SIGHUP reload): keep links whose HostPort stays (with
    /// their connection and counters), stop the others, start new ones, take the
    /// new trust list and keep-alive interval. Returns the full picture
    /// ([`Upstream::snapshot`]): a Change per link of the new configuration.
    pub fn reconfigure(&mut self, cfg: &UpstreamConfig, now_ms: u64) -> Vec<Change> {
        if cfg.keepalive != self.cfg_keepalive {
            self.cfg_keepalive = cfg.keepalive;
            let interval = Duration::from_secs(u64::from(cfg.keepalive.max(1)));
            self.timings.keepalive = interval;
            self.keepalive.send_replace(interval);
        }
        self.trust_cfg.clone_from(&cfg.trust);
        let mut old: Vec<Option<Link>> = std::mem::take(&mut self.links)
            .into_iter()
            .map(Some)
            .collect();
        let mut links = Vec::new();
        for (target, kinds) in cfg.links() {
            let name = cfg.link_name(&kinds);
            let kept = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|l| l.target == target))
                .and_then(Option::take);
            match kept {
                Some(mut l) => {
                    l.kinds = kinds;
                    l.name = name;
                    links.push(l);
                }
                None => links.push(self.spawn_link(target, kinds, name, now_ms)),
            }
        }
        for l in old.into_iter().flatten() {
            log::info!("upstream {}: removed from the configuration", l.target);
            l.task.abort();
        }
        self.links = links;
        self.refresh_trust();
        self.snapshot()
    }

    /// Whether `ip` is a trusted upstream peer address.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trust.borrow().contains(&ip.to_canonical())
    }

    /// Stop every task and close every connection (also done on drop).
    pub fn stop(&mut self) {
        for l in self.links.drain(..) {
            l.task.abort();
        }
        self.inbound.clear();
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
    }
}

impl Upstream {
    /// Whether inbound connections are being accepted.
    pub fn is_listening(&self) -> bool {
        self.acceptor.is_some()
    }

    /// Accept inbound connections from trusted peers on `listener` (at start, or
    /// when a reload adds `[upstream]`); a listener already running is replaced.
    pub fn listen(&mut self, listener: TcpListener) {
        self.stop_listening();
        let acceptor = inbound::Acceptor {
            listener,
            trust: self.trust.subscribe(),
            timings: self.timings,
            max_message: self.max_message,
            ids: Arc::clone(&self.conn_ids),
            tx: self.tx.clone(),
        };
        self.acceptor = Some(tokio::spawn(acceptor.run()));
    }

    /// Stop accepting, and close every inbound connection (a reload that removes
    /// `[upstream]`).
    pub fn stop_listening(&mut self) {
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        self.inbound.clear();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The rate-limited line for `n` dropped messages.
fn log_drops(n: u64, latest: &str) {
    log::warn!(
        "tcp: {n} SIP message(s) dropped (the latest: {latest}); more within a minute \
         are counted, not logged"
    );
}

/// The rate-limited line for `n` inbound connections that ended unproven.
fn log_strangers(n: u64, latest: &str) {
    log::info!(
        "tcp: {n} inbound connection(s) closed before proving to be the upstream peer \
         (the latest, {latest}); more within a minute are counted, not logged"
    );
}

/// The host of `target` when it is an IP literal.
fn literal_ip(target: &HostPort) -> Option<IpAddr> {
    target
        .host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}
