//! One TCP connection, outbound link or accepted inbound: reads framed into
//! messages (`framing::drain`), writes taken from a queue bounded in bytes
//! (`backlog`: a burst of our own is held and fed to the socket as it drains),
//! keep-alive pings on links, pongs to the peer's pings, and the reasons a
//! connection ends.

use super::backlog::{self, Progress};
use super::framing::{self, later, KeepAlive, KeepAliveAction, PING};
use super::TcpEvent;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

/// Unwritten bytes above which the queue is no longer drained into the socket buffer.
const OUT_HIGH: usize = 256 * 1024;
/// Unwritten bytes the peer's own traffic asks for (pongs, error replies) above
/// which it is cut off.
const OUT_MAX: usize = 1024 * 1024;
/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes read and thrown away while closing after a framing error.
const LINGER_BYTES: usize = 256 * 1024;

/// Identifies one connection (unique for the life of the [`super::Upstream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) u64);

/// The switch's end of a connection: its write queue (bounded in bytes).
/// Dropping it closes the connection once what is queued has been written.
#[derive(Debug)]
pub struct Conn {
    id: ConnId,
    queue: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes queued and not yet taken by the connection task.
    held: Arc<AtomicUsize>,
    budget: usize,
    probation: Option<Arc<Probation>>,
}

/// Why bytes could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// More is held for the peer than the connection's budget: this message
    /// is dropped (the connection stays).
    Full,
    /// The connection is gone.
    Closed,
}

impl Conn {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queue one message for writing, if it fits the byte budget.
    pub(crate) fn push(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        let len = bytes.len();
        let budget = self.budget;
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                backlog::fits(held, len, budget).then(|| held.saturating_add(len))
            })
            .map_err(|_| PushError::Full)?;
        self.queue.send(bytes).map_err(|_| {
            self.held.fetch_sub(len, Ordering::AcqRel);
            PushError::Closed
        })
    }

    /// Bytes waiting in the queue.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Put an inbound connection on probation (see [`Probation`]).
    pub(crate) fn on_probation(&mut self, p: Arc<Probation>) {
        self.probation = Some(p);
    }

    /// The core says the connection carried what only the real peer can
    /// send; true when that is news (it was on probation until now).
    pub(crate) fn prove(&self) -> bool {
        self.probation
            .as_ref()
            .is_some_and(|p| !p.proven.swap(true, Ordering::AcqRel))
    }
}

/// The connection task's end of a [`Conn`].
#[derive(Debug)]
pub(crate) struct ConnCtl {
    queue: mpsc::UnboundedReceiver<Vec<u8>>,
    held: Arc<AtomicUsize>,
}

impl ConnCtl {
    /// Take the next queued message off the byte count.
    fn took(&self, bytes: &[u8]) {
        self.held.fetch_sub(bytes.len(), Ordering::AcqRel);
    }
}

/// A new connection's two ends; at most `budget` bytes wait in its queue.
pub(crate) fn pair(id: u64, budget: usize) -> (Conn, ConnCtl) {
    let (qtx, qrx) = mpsc::unbounded_channel();
    let held = Arc::new(AtomicUsize::new(0));
    (
        Conn {
            id: ConnId(id),
            queue: qtx,
            held: Arc::clone(&held),
            budget,
            probation: None,
        },
        ConnCtl { queue: qrx, held },
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
    /// Inbound: on probation until the core proves it; closed if it has not
    /// within the deadline given, or when the accept loop evicts it.
    pub probation: Option<(Arc<Probation>, Duration)>,
    /// A peer that takes no byte this long while output waits is cut off.
    pub write_stall: Duration,
    /// How long the error reply to a broken stream may take to go out.
    pub flush_timeout: Duration,
}

/// An inbound connection on probation until the core says it carried what
/// only the real peer can send (see `super::slots`): until then it has a deadline and
/// the accept loop may evict it to make room for a new one.
#[derive(Debug)]
pub(crate) struct Probation {
    /// Its source address (canonical form).
    pub ip: std::net::IpAddr,
    proven: AtomicBool,
    ended: AtomicBool,
    evict: Notify,
}

impl Probation {
    /// A new connection from `ip`, not proven.
    pub(crate) fn new(ip: std::net::IpAddr) -> Probation {
        Probation {
            ip: ip.to_canonical(),
            proven: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    /// Whether the core has proven the connection.
    pub(crate) fn proven(&self) -> bool {
        self.proven.load(Ordering::Acquire)
    }

    /// Whether the connection has ended.
    pub(crate) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// The connection has ended.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
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
    let mut inbuf = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out: VecDeque<u8> = VecDeque::new();
    let mut last_activity = started;
    // Since when bytes of an unfinished message wait (inbound: from the start).
    let mut partial_since = params.message_deadline.map(|_| started);
    // After a framing error: why, and until when the reply may take to go out.
    let mut closing: Option<(String, Instant)> = None;
    // Whether the peer keeps taking what waits for it.
    let mut progress = Progress::default();
    let probation = params.probation.take();
    let unproven_until = probation.as_ref().map(|(_, limit)| later(started, *limit));

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
        if out.is_empty() && ctl.held.load(Ordering::Acquire) == 0 {
            progress.idle();
        } else {
            progress.waiting(Instant::now());
        }
        let on_probation = probation.as_ref().is_some_and(|(p, _)| !p.proven());
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
        if let Some(t) = progress.deadline(params.write_stall) {
            at(t);
        }
        if let Some(t) = unproven_until.filter(|_| on_probation) {
            at(t);
        }
        let sleep_until = tokio::time::Instant::from_std(deadline.unwrap_or(started));

        tokio::select! {
            () = evicted(probation.as_ref().map(|(p, _)| p.as_ref())) => {
                return "evicted: a new connection needed the slot before this one proved \
                        it is the upstream peer"
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
                for framing::Received { msg, wire } in framed.messages {
                    if tx.send(TcpEvent::Message { peer, msg, wire }).await.is_err() {
                        return "switch stopped".to_owned();
                    }
                }
                if let Some(e) = framed.fatal {
                    log::warn!("tcp {peer}: cannot frame the stream ({e}); closing");
                    closing = Some((
                        format!("garbage from peer: {e}"),
                        later(Instant::now(), params.flush_timeout),
                    ));
                    inbuf = BytesMut::new();
                } else if out.len() > OUT_MAX {
                    return "peer not reading (its own requests' answers pile up)".to_owned();
                }
            }
            r = stream.writable(), if !out.is_empty() => {
                if let Err(e) = r {
                    return format!("write: {e}");
                }
                match write_some(&stream, &mut out) {
                    Ok(0) => {}
                    Ok(_) => {
                        let now = Instant::now();
                        last_activity = now;
                        progress.wrote(now);
                        if let Some(k) = keepalive.as_mut() {
                            k.wrote(now);
                        }
                    }
                    Err(e) => return e,
                }
            }
            m = ctl.queue.recv(), if closing.is_none() && out.len() < OUT_HIGH => {
                match m {
                    Some(bytes) => {
                        ctl.took(&bytes);
                        out.extend(bytes);
                    }
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
                if unproven_until.is_some_and(|t| now >= t)
                    && probation.as_ref().is_some_and(|(p, _)| !p.proven())
                {
                    let limit = probation.as_ref().map_or(Duration::ZERO, |(_, l)| *l);
                    return format!(
                        "not proven to be the upstream peer within {} s",
                        limit.as_secs_f32()
                    );
                }
                if let (Some(limit), Some(since)) = (params.message_deadline, partial_since) {
                    if now >= later(since, limit) {
                        return format!("no complete message within {} s", limit.as_secs());
                    }
                }
                if progress.stalled(now, params.write_stall) {
                    // The loop may have been busy handing messages over: the
                    // socket gets one more chance before the peer is blamed.
                    match write_some(&stream, &mut out) {
                        Ok(n) if n > 0 => progress.wrote(now),
                        Ok(_) => {
                            let waiting = out.len().saturating_add(ctl.held.load(Ordering::Acquire));
                            return format!(
                                "peer not reading: nothing taken for {} s with {waiting} bytes waiting",
                                params.write_stall.as_secs_f32()
                            );
                        }
                        Err(e) => return e,
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

/// Write what the socket takes now from the front of `out`; the bytes written
/// (0 when it would block), or why the connection is broken.
fn write_some(stream: &TcpStream, out: &mut VecDeque<u8>) -> Result<usize, String> {
    let (front, _) = out.as_slices();
    if front.is_empty() {
        return Ok(0);
    }
    match stream.try_write(front) {
        Ok(0) => Err("write: connection closed".to_owned()),
        Ok(n) => {
            out.drain(..n.min(out.len()));
            Ok(n)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(format!("write: {e}")),
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
