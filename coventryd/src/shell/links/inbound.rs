//! The accept loop for connections from upstream peers: trusted addresses only, at
//! most [`MAX_INBOUND`] at a time, each run like a link's connection but without
//! pings of our own. Aborting the task closes every connection it accepted.
//!
//! A trusted address is not enough to hold a slot (`slots`): a connection is on
//! probation until the core proves it, with [`UNPROVEN_DEADLINE`] to do so, at
//! most `PER_SOURCE` unproven ones per address, and unproven ones give way to a
//! newcomer, oldest first. A slow writer cannot hold a slot either: every message
//! must be complete within [`MESSAGE_DEADLINE`] of its first byte.

use super::backlog::{Tally, INBOUND_BACKLOG};
use super::conn::{self, ConnParams, Probation};
use super::slots::{self, Admit, Held, Pressure};
use super::{TcpEvent, Timings};
use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use super::slots::{MAX_INBOUND, UNPROVEN_DEADLINE};

/// How long an inbound connection may take to deliver its first message, and
/// any message after its first byte.
pub const MESSAGE_DEADLINE: Duration = Duration::from_secs(10);

/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Connections closed at accept (untrusted, no slot) are logged at most once
/// per this, with a count.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// What the accept loop needs.
pub(crate) struct Acceptor {
    /// The listening socket.
    pub listener: TcpListener,
    /// The trusted peer addresses (canonical form).
    pub trust: watch::Receiver<HashSet<IpAddr>>,
    /// Timings.
    pub timings: Timings,
    /// Largest message accepted.
    pub max_message: usize,
    /// Source of connection ids.
    pub ids: Arc<AtomicU64>,
    /// Where events go.
    pub tx: mpsc::Sender<TcpEvent>,
}

/// The accept loop's rate-limited log lines.
struct Lines {
    untrusted: Tally,
    refused: Tally,
    evicted: Tally,
}

impl Lines {
    fn next_due(&self) -> Option<Instant> {
        [
            self.untrusted.next_due(),
            self.refused.next_due(),
            self.evicted.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn flush(&mut self, now: Instant) {
        if let Some(n) = self.untrusted.due(now) {
            log_untrusted(n, None);
        }
        if let Some(n) = self.refused.due(now) {
            log_refused(n, None);
        }
        if let Some(n) = self.evicted.due(now) {
            log_evicted(n, None);
        }
    }
}

fn log_untrusted(n: u64, latest: Option<std::net::SocketAddr>) {
    let latest = latest
        .map(|p| format!(", latest from {p}"))
        .unwrap_or_default();
    log::warn!("tcp: {n} connection(s) from untrusted addresses closed{latest}");
}

fn log_refused(n: u64, latest: Option<std::net::SocketAddr>) {
    let latest = latest
        .map(|p| format!(", latest from {p}"))
        .unwrap_or_default();
    log::warn!(
        "tcp: {n} connection(s) closed at once: all {MAX_INBOUND} inbound slots hold \
         proven upstream connections{latest}"
    );
}

fn log_evicted(n: u64, why: Option<(Pressure, std::net::SocketAddr)>) {
    let why = match why {
        Some((Pressure::Source, p)) => format!(
            " (latest: {} already had {} unproven connections)",
            p.ip(),
            slots::PER_SOURCE
        ),
        Some((Pressure::Slots, _)) => format!(" (latest: all {MAX_INBOUND} slots taken)"),
        None => String::new(),
    };
    log::warn!(
        "tcp: {n} inbound connection(s) that had not proven to be the upstream peer \
         evicted for newer ones{why}"
    );
}

impl Acceptor {
    /// Accept until aborted (or until the switch stops listening).
    pub(crate) async fn run(self) {
        let mut conns: JoinSet<()> = JoinSet::new();
        // Open connections, oldest first (ended ones are dropped as it is read).
        let mut open: VecDeque<Arc<Probation>> = VecDeque::new();
        let mut lines = Lines {
            untrusted: Tally::new(LOG_EVERY),
            refused: Tally::new(LOG_EVERY),
            evicted: Tally::new(LOG_EVERY),
        };
        loop {
            let due = lines.next_due();
            let wake = tokio::time::Instant::from_std(due.unwrap_or_else(Instant::now));
            tokio::select! {
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                () = tokio::time::sleep_until(wake), if due.is_some() => {
                    lines.flush(Instant::now());
                }
                r = self.listener.accept() => {
                    let (stream, peer) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            log::warn!("tcp accept: {e}");
                            tokio::time::sleep(ACCEPT_PAUSE).await;
                            continue;
                        }
                    };
                    let now = Instant::now();
                    let trusted = self.trust.borrow().contains(&peer.ip().to_canonical());
                    if !trusted {
                        drop(stream);
                        if let Some(n) = lines.untrusted.note(now) {
                            log_untrusted(n, Some(peer));
                        }
                        continue;
                    }
                    open.retain(|p| !p.ended());
                    let held: Vec<Held> = open
                        .iter()
                        .map(|p| Held { ip: p.ip, proven: p.proven() })
                        .collect();
                    match slots::admit(&held, peer.ip()) {
                        Admit::Open => {}
                        Admit::Evict(i, why) => {
                            if let Some(p) = open.remove(i) {
                                p.evict();
                            }
                            if let Some(n) = lines.evicted.note(now) {
                                log_evicted(n, Some((why, peer)));
                            }
                        }
                        Admit::Refuse => {
                            drop(stream);
                            if let Some(n) = lines.refused.note(now) {
                                log_refused(n, Some(peer));
                            }
                            continue;
                        }
                    }
                    if let Err(e) = stream.set_nodelay(true) {
                        log::debug!("tcp {peer}: TCP_NODELAY: {e}");
                    }
                    let probation = Arc::new(Probation::new(peer.ip()));
                    let id = self.ids.fetch_add(1, Ordering::Relaxed);
                    let (mut handle, ctl) = conn::pair(id, INBOUND_BACKLOG);
                    handle.on_probation(Arc::clone(&probation));
                    let id = handle.id();
                    if self.tx.send(TcpEvent::InboundOpened { peer, conn: handle }).await.is_err() {
                        return;
                    }
                    log::debug!("tcp connection from {peer} (a trusted address), on probation");
                    let tx = self.tx.clone();
                    open.push_back(Arc::clone(&probation));
                    let params = ConnParams {
                        max_message: self.max_message,
                        keepalive: None,
                        idle: Some(self.timings.inbound_idle),
                        flush_timeout: self.timings.flush_timeout,
                        message_deadline: Some(MESSAGE_DEADLINE),
                        probation: Some((Arc::clone(&probation), self.timings.unproven)),
                        write_stall: self.timings.write_stall,
                    };
                    conns.spawn(async move {
                        let error = conn::run(stream, peer, ctl, params, &tx).await;
                        probation.end();
                        let proven = probation.proven();
                        let _ = tx
                            .send(TcpEvent::InboundClosed { peer, conn: id, error, proven })
                            .await;
                    });
                }
            }
        }
    }
}
