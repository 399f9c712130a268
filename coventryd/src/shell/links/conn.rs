//! One TCP connection, outbound link or accepted inbound: reads framed into
//! messages (`framing::drain`), writes taken from a bounded queue, keep-alive pings
//! on links, pongs to the peer's pings, and the reasons a connection ends.

use super::framing::{self, later, KeepAlive, KeepAliveAction, PING};
use super::TcpEvent;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// Messages a connection's write queue holds; a peer that lets it fill up is cut off.
pub const QUEUE: usize = 1024;
/// Unwritten bytes above which the queue is no longer drained into the socket buffer.
const OUT_HIGH: usize = 256 * 1024;
/// Unwritten bytes (pongs, error replies) above which the peer is cut off.
const OUT_MAX: usize = 1024 * 1024;
/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes read and thrown away while closing after a framing error.
const LINGER_BYTES: usize = 256 * 1024;

/// Identifies one connection (unique for the life of the [`super::Upstream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) u64);

/// The switch's end of a connection: its write queue, and the means to cut it.
/// Dropping it closes the connection.
#[derive(Debug)]
pub struct Conn {
    id: ConnId,
    queue: mpsc::Sender<Vec<u8>>,
    cut: Option<oneshot::Sender<String>>,
}

/// Why bytes could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The peer is not reading: the queue is full.
    Full,
    /// The connection is gone.
    Closed,
}

impl Conn {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queue one message for writing.
    pub(crate) fn push(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.queue.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PushError::Full,
            mpsc::error::TrySendError::Closed(_) => PushError::Closed,
        })
    }

    /// Close the connection, giving `reason` as why it ended.
    pub(crate) fn cut(mut self, reason: &str) {
        if let Some(cut) = self.cut.take() {
            let _ = cut.send(reason.to_owned());
        }
    }
}

/// The connection task's end of a [`Conn`].
#[derive(Debug)]
pub(crate) struct ConnCtl {
    queue: mpsc::Receiver<Vec<u8>>,
    cut: oneshot::Receiver<String>,
}

/// A new connection's two ends.
pub(crate) fn pair(id: u64) -> (Conn, ConnCtl) {
    let (qtx, qrx) = mpsc::channel(QUEUE);
    let (ctx, crx) = oneshot::channel();
    (
        Conn {
            id: ConnId(id),
            queue: qtx,
            cut: Some(ctx),
        },
        ConnCtl {
            queue: qrx,
            cut: crx,
        },
    )
}

/// How a connection behaves.
#[derive(Debug, Clone)]
pub(crate) struct ConnParams {
    /// Largest message accepted.
    pub max_message: usize,
    /// Keep-alive ping interval (outbound links only; read at every turn so a
    /// reload applies at once) and how long a ping may go unanswered.
    pub keepalive: Option<(watch::Receiver<Duration>, Duration)>,
    /// Close after this long without a byte in either direction (inbound).
    pub idle: Option<Duration>,
    /// Inbound: a message must be complete this long after its first byte, and
    /// the first one this long after the connection opened (a slow writer
    /// holding a slot is cut off).
    pub message_deadline: Option<Duration>,
    /// Inbound: told when the first message is complete; evicts the connection
    /// while none is.
    pub probation: Option<Arc<Probation>>,
    /// How long the error reply to a broken stream may take to go out.
    pub flush_timeout: Duration,
}

/// An inbound connection on probation until it delivers a complete message:
/// until then the accept loop may evict it to make room for a new one.
#[derive(Debug, Default)]
pub(crate) struct Probation {
    proven: AtomicBool,
    evict: Notify,
}

impl Probation {
    /// Whether the connection delivered a complete message.
    pub(crate) fn proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// Close the connection (it has not proven itself).
    pub(crate) fn evict(&self) {
        self.evict.notify_one();
    }
}

/// Run a connection until it ends; returns why it ended. Framed messages go to
/// `tx` as [`TcpEvent::Message`] from `peer`.
pub(crate) async fn run(
    mut stream: TcpStream,
    peer: SocketAddr,
    mut ctl: ConnCtl,
    mut params: ConnParams,
    tx: &mpsc::Sender<TcpEvent>,
) -> String {
    let started = Instant::now();
    let mut keepalive = params.keepalive.as_ref().map(|(interval, timeout)| {
        let interval = *interval.borrow();
        KeepAlive::new(started, interval, *timeout)
    });
    let mut inbuf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out: VecDeque<u8> = VecDeque::new();
    let mut last_activity = started;
    // Since when bytes of an unfinished message wait (inbound: from the start).
    let mut partial_since = params.message_deadline.map(|_| started);
    // After a framing error: why, and until when the reply may take to go out.
    let mut closing: Option<(String, Instant)> = None;

    loop {
        if let Some((reason, _)) = &closing {
            if out.is_empty() {
                let reason = reason.clone();
                linger(&mut stream, params.flush_timeout).await;
                return reason;
            }
        }
        if let (Some(k), Some((interval, _))) = (keepalive.as_mut(), params.keepalive.as_mut()) {
            k.interval = *interval.borrow_and_update();
        }
        let mut deadline: Option<Instant> = None;
        let mut at = |t: Instant| deadline = Some(deadline.map_or(t, |d| d.min(t)));
        if let Some(k) = &keepalive {
            at(k.deadline());
        }
        if let Some(idle) = params.idle {
            at(later(last_activity, idle));
        }
        if let (Some(limit), Some(since)) = (params.message_deadline, partial_since) {
            at(later(since, limit));
        }
        if let Some((_, until)) = &closing {
            at(*until);
        }
        let sleep_until = tokio::time::Instant::from_std(deadline.unwrap_or(started));

        tokio::select! {
            reason = &mut ctl.cut => {
                return reason.unwrap_or_else(|_| "closed by the switch".to_owned());
            }
            () = evicted(params.probation.as_deref()) => {
                return "evicted: a new connection needed the slot before this one sent a message"
                    .to_owned();
            }
            r = stream.readable(), if closing.is_none() => {
                if let Err(e) = r {
                    return format!("read: {e}");
                }
                let n = match stream.try_read(&mut chunk) {
                    Ok(0) => return "closed by peer".to_owned(),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) => return format!("read: {e}"),
                };
                last_activity = Instant::now();
                let awaiting_pong = keepalive.as_ref().is_some_and(|k| k.awaiting_pong());
                if let Some(k) = keepalive.as_mut() {
                    k.read();
                }
                inbuf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                let framed = framing::drain(&mut inbuf, params.max_message, peer, awaiting_pong);
                for e in &framed.rejected {
                    log::debug!("tcp {peer}: dropped a message: {e}");
                }
                out.extend(framed.replies);
                if params.message_deadline.is_some() {
                    if inbuf.is_empty() {
                        partial_since = None;
                    } else if partial_since.is_none() {
                        partial_since = Some(last_activity);
                    }
                }
                if !framed.messages.is_empty() {
                    if let Some(p) = &params.probation {
                        p.proven.store(true, Ordering::Relaxed);
                    }
                }
                for msg in framed.messages {
                    if tx.send(TcpEvent::Message { peer, msg }).await.is_err() {
                        return "switch stopped".to_owned();
                    }
                }
                if let Some(e) = framed.fatal {
                    log::warn!("tcp {peer}: cannot frame the stream ({e}); closing");
                    closing = Some((
                        format!("garbage from peer: {e}"),
                        later(Instant::now(), params.flush_timeout),
                    ));
                    inbuf = Vec::new();
                } else if out.len() > OUT_MAX {
                    return "peer not reading (write buffer full)".to_owned();
                }
            }
            r = stream.writable(), if !out.is_empty() => {
                if let Err(e) = r {
                    return format!("write: {e}");
                }
                let (front, _) = out.as_slices();
                match stream.try_write(front) {
                    Ok(0) => return "write: connection closed".to_owned(),
                    Ok(n) => {
                        out.drain(..n.min(out.len()));
                        let now = Instant::now();
                        last_activity = now;
                        if let Some(k) = keepalive.as_mut() {
                            k.wrote(now);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return format!("write: {e}"),
                }
            }
            m = ctl.queue.recv(), if closing.is_none() && out.len() < OUT_HIGH => {
                match m {
                    Some(bytes) => out.extend(bytes),
                    None => return "closed by the switch".to_owned(),
                }
            }
            () = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                let now = Instant::now();
                if let Some((reason, until)) = &closing {
                    if now >= *until {
                        return format!("{reason} (reply not taken)");
                    }
                }
                if let Some(idle) = params.idle {
                    if now >= later(last_activity, idle) {
                        return format!("idle for {} s", idle.as_secs());
                    }
                }
                if let (Some(limit), Some(since)) = (params.message_deadline, partial_since) {
                    if now >= later(since, limit) {
                        return format!("no complete message within {} s", limit.as_secs());
                    }
                }
                if let Some(k) = keepalive.as_mut() {
                    match k.poll(now) {
                        KeepAliveAction::Wait => {}
                        KeepAliveAction::Ping => out.extend(PING),
                        KeepAliveAction::Dead => {
                            return format!(
                                "no answer to a keep-alive ping within {} s",
                                k.timeout.as_secs_f32()
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Resolves when `probation` evicts the connection; never without one.
async fn evicted(probation: Option<&Probation>) {
    match probation {
        Some(p) => p.evict.notified().await,
        None => std::future::pending().await,
    }
}

/// Close gracefully after a framing error: our reply goes out with a FIN, and what
/// the peer still sends is read and thrown away (bounded in time and bytes) so the
/// close does not turn into a reset that could destroy the reply.
async fn linger(stream: &mut TcpStream, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        let _ = stream.shutdown().await;
        let mut sink = vec![0u8; 4096];
        let mut total = 0usize;
        while total < LINGER_BYTES {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
