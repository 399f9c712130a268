//! The task behind one outbound link: resolve, connect (with a time limit), run the
//! connection, and after a failure or a loss wait out the back-off and try again,
//! for as long as the link exists (the task is aborted when it is removed).

use super::backlog::LINK_BACKLOG;
use super::conn::{self, ConnParams};
use super::status::backoff_delay;
use super::{LinkId, TcpEvent, Timings};
use crate::config::HostPort;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Addresses of a name tried per attempt.
const MAX_ADDRS: usize = 4;

/// What a link task needs.
pub(crate) struct LinkTask {
    /// The link's id in the events.
    pub id: LinkId,
    /// Where to connect.
    pub target: HostPort,
    /// Timings (the keep-alive interval comes from `keepalive`).
    pub timings: Timings,
    /// The current keep-alive interval.
    pub keepalive: watch::Receiver<Duration>,
    /// Largest message accepted.
    pub max_message: usize,
    /// Source of connection ids.
    pub ids: Arc<AtomicU64>,
    /// Where events go.
    pub tx: mpsc::Sender<TcpEvent>,
}

impl LinkTask {
    /// Keep the link up until aborted (or until the switch stops listening).
    pub(crate) async fn run(self) {
        let mut consecutive = 0u32;
        let mut known_ips: Vec<IpAddr> = Vec::new();
        loop {
            let (result, ips) = connect(&self.target, self.timings.connect_timeout).await;
            if let Some(ips) = ips {
                if ips != known_ips {
                    known_ips.clone_from(&ips);
                    let ev = TcpEvent::Resolved { link: self.id, ips };
                    if self.tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            let error = match result {
                Ok((stream, peer)) => {
                    consecutive = 0;
                    let (handle, ctl) =
                        conn::pair(self.ids.fetch_add(1, Ordering::Relaxed), LINK_BACKLOG);
                    let up = TcpEvent::LinkUp {
                        link: self.id,
                        peer,
                        conn: handle,
                    };
                    if self.tx.send(up).await.is_err() {
                        return;
                    }
                    let params = ConnParams {
                        max_message: self.max_message,
                        keepalive: Some((self.keepalive.clone(), self.timings.pong_timeout)),
                        idle: None,
                        flush_timeout: self.timings.flush_timeout,
                        message_deadline: None,
                        probation: None,
                        write_stall: self.timings.write_stall,
                    };
                    conn::run(stream, peer, ctl, params, &self.tx).await
                }
                Err(e) => e,
            };
            consecutive = consecutive.saturating_add(1);
            let retry_in = backoff_delay(
                self.timings.backoff_first,
                self.timings.backoff_max,
                consecutive,
            );
            let down = TcpEvent::LinkDown {
                link: self.id,
                error,
                retry_in,
            };
            if self.tx.send(down).await.is_err() {
                return;
            }
            tokio::time::sleep(retry_in).await;
        }
    }
}

/// One attempt: resolve `target` and connect to the first address that answers.
/// Also returns the addresses the name resolved to, when it did.
async fn connect(
    target: &HostPort,
    limit: Duration,
) -> (Result<(TcpStream, SocketAddr), String>, Option<Vec<IpAddr>>) {
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(limit, lookup).await {
        Ok(Ok(found)) => found.take(MAX_ADDRS).collect(),
        Ok(Err(e)) => return (Err(format!("cannot resolve {target}: {e}")), None),
        Err(_) => return (Err(format!("cannot resolve {target}: timed out")), None),
    };
    if addrs.is_empty() {
        return (Err(format!("cannot resolve {target}: no address")), None);
    }
    let ips = addrs.iter().map(|a| a.ip().to_canonical()).collect();
    let mut error = String::new();
    for addr in &addrs {
        match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    log::debug!("tcp {addr}: TCP_NODELAY: {e}");
                }
                return (Ok((stream, *addr)), Some(ips));
            }
            Ok(Err(e)) => error = format!("connect to {addr}: {e}"),
            Err(_) => {
                error = format!(
                    "connect to {addr}: timed out after {} s",
                    limit.as_secs_f32()
                )
            }
        }
    }
    (Err(error), Some(ips))
}
