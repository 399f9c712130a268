//! The accept loop for connections from upstream peers: trusted addresses only, at
//! most [`MAX_INBOUND`] at a time, each run like a link's connection but without
//! pings of our own. Aborting the task closes every connection it accepted.
//!
//! A slow writer cannot hold the slots: a connection must deliver its first
//! message within [`MESSAGE_DEADLINE`] and every message within that time of its
//! first byte, and while all slots are taken a new connection evicts the oldest
//! one that has not yet delivered a message.

use super::conn::{self, ConnParams, Probation};
use super::{TcpEvent, Timings};
use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Most inbound connections open at once.
pub const MAX_INBOUND: usize = 64;

/// How long an inbound connection may take to deliver its first message, and
/// any message after its first byte.
pub const MESSAGE_DEADLINE: Duration = Duration::from_secs(10);

/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

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

impl Acceptor {
    /// Accept until aborted (or until the switch stops listening).
    pub(crate) async fn run(self) {
        let mut conns: JoinSet<()> = JoinSet::new();
        // Connections in the order they came, with their probation (the ended
        // ones are dropped as the list is searched).
        let mut order: VecDeque<Arc<Probation>> = VecDeque::new();
        loop {
            tokio::select! {
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                r = self.listener.accept() => {
                    let (stream, peer) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            log::warn!("tcp accept: {e}");
                            tokio::time::sleep(ACCEPT_PAUSE).await;
                            continue;
                        }
                    };
                    let trusted = self.trust.borrow().contains(&peer.ip().to_canonical());
                    if !trusted {
                        log::warn!("tcp connection from untrusted {peer} closed");
                        drop(stream);
                        continue;
                    }
                    if conns.len() >= MAX_INBOUND {
                        // Only a connection that has not proven itself gives way.
                        order.retain(|p| Arc::strong_count(p) > 1);
                        match order.iter().position(|p| !p.proven()) {
                            Some(i) => {
                                if let Some(p) = order.remove(i) {
                                    p.evict();
                                }
                                log::warn!(
                                    "tcp: {MAX_INBOUND} inbound connections; the oldest that \
                                     sent no message yet is closed for {peer}"
                                );
                            }
                            None => {
                                log::warn!(
                                    "tcp connection from {peer} closed: already {MAX_INBOUND} inbound connections"
                                );
                                drop(stream);
                                continue;
                            }
                        }
                    }
                    if let Err(e) = stream.set_nodelay(true) {
                        log::debug!("tcp {peer}: TCP_NODELAY: {e}");
                    }
                    let (handle, ctl) = conn::pair(self.ids.fetch_add(1, Ordering::Relaxed));
                    let id = handle.id();
                    if self.tx.send(TcpEvent::InboundOpened { peer, conn: handle }).await.is_err() {
                        return;
                    }
                    log::info!("tcp connection from upstream peer {peer}");
                    let tx = self.tx.clone();
                    let probation = Arc::new(Probation::default());
                    order.push_back(probation.clone());
                    let params = ConnParams {
                        max_message: self.max_message,
                        keepalive: None,
                        idle: Some(self.timings.inbound_idle),
                        flush_timeout: self.timings.flush_timeout,
                        message_deadline: Some(MESSAGE_DEADLINE),
                        probation: Some(probation),
                    };
                    conns.spawn(async move {
                        let error = conn::run(stream, peer, ctl, params, &tx).await;
                        let _ = tx.send(TcpEvent::InboundClosed { peer, conn: id, error }).await;
                    });
                }
            }
        }
    }
}
