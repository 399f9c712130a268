//! The UDP reader: a thread of its own that drains the switch's socket until it
//! would block, whatever the core is doing, and offers each datagram to the
//! [`Intake`] (per-source buckets and queues, before any parsing). Reading never
//! waits on handling, so when a flood outruns the core it is the intake that
//! chooses what to drop (the flooder's datagrams), not the kernel (everyone's).
//! The kernel's own drops on the socket (SO_RXQ_OVFL) are counted for the state
//! block.
//!
//! The core's loop waits on [`Reader::readable`] and takes datagrams in batches.

use crate::shell::intake::{Datagram, Intake};
use crate::switch::guard::Held;
use coventry_shared::now_ms;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrStorage};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::Notify;

/// How long the reader waits for a datagram before it looks at its stop flag.
const POLL_MS: u8 = 100;
/// Datagrams read before the core is woken even if more are waiting.
const WAKE_EVERY: usize = 64;

/// What the reader thread and the core share.
struct Shared {
    intake: Mutex<Intake>,
    readable: Notify,
    stop: AtomicBool,
    kernel_drops: AtomicU64,
}

/// The reader thread and its intake.
pub struct Reader {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    /// Start reading `sock` (non-blocking; the switch sends on a clone of it),
    /// allowing each source `rate` datagrams a second (0: no limit).
    pub fn start(sock: UdpSocket, rate: u32) -> io::Result<Reader> {
        if let Err(e) = socket::setsockopt(&sock.as_fd(), socket::sockopt::RxqOvfl, &1) {
            log::debug!("SO_RXQ_OVFL: {e} (kernel drops not counted)");
        }
        sock.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            intake: Mutex::new(Intake::new(rate)),
            readable: Notify::new(),
            stop: AtomicBool::new(false),
            kernel_drops: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("udp-reader".into())
            .spawn(move || read_loop(&sock, &s))?;
        Ok(Reader {
            shared,
            thread: Some(thread),
        })
    }

    fn intake(&self) -> MutexGuard<'_, Intake> {
        lock(&self.shared.intake)
    }

    /// Wait until the reader has queued something since the last take.
    pub async fn readable(&self) {
        self.shared.readable.notified().await;
    }

    /// Move up to `max` datagrams, one per waiting source in turn, into `out`.
    /// Returns whether more are waiting.
    pub fn take(&self, max: usize, out: &mut Vec<Datagram>) -> bool {
        let mut intake = self.intake();
        for _ in 0..max {
            match intake.pop() {
                Some(d) => out.push(d),
                None => break,
            }
        }
        !intake.is_empty()
    }

    /// Give handled datagrams' buffers back for the next reads.
    pub fn recycle(&self, done: &mut Vec<Datagram>) {
        let mut intake = self.intake();
        for d in done.drain(..) {
            intake.recycle(d.data);
        }
    }

    /// The sources the auth guard holds back now.
    pub fn set_held(&self, now_ms: u64, held: Vec<Held>) {
        self.intake().set_held(now_ms, held);
    }

    /// A new `[security] source_rate` (reload).
    pub fn set_rate(&self, rate: u32) {
        self.intake().set_rate(rate);
    }

    /// Datagrams dropped unread by the intake.
    pub fn shed(&self) -> u64 {
        self.intake().shed()
    }

    /// Datagrams the kernel dropped on the socket (as last reported with a read).
    pub fn kernel_drops(&self) -> u64 {
        self.shared.kernel_drops.load(Ordering::Relaxed)
    }

    /// Whether the reader thread is still running (it only ends when stopped).
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop the thread and wait for it (at most one poll interval).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock(m: &Mutex<Intake>) -> MutexGuard<'_, Intake> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait for the socket, drain it until it would block, offer every datagram to
/// the intake and wake the core; until stopped.
fn read_loop(sock: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; 65_536];
    let mut cmsg = nix::cmsg_space!(u32);
    while !shared.stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(POLL_MS)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                log::error!("udp reader: poll: {e}");
                std::thread::sleep(std::time::Duration::from_millis(u64::from(POLL_MS)));
                continue;
            }
        }
        let mut read = 0usize;
        loop {
            match recv(sock, &mut buf, &mut cmsg) {
                Ok(Some((n, src, drops))) => {
                    if let Some(d) = drops {
                        shared.kernel_drops.fetch_max(d, Ordering::Relaxed);
                    }
                    lock(&shared.intake).offer(now_ms(), src, &buf[..n]);
                    read += 1;
                    if read.is_multiple_of(WAKE_EVERY) {
                        shared.readable.notify_one();
                    }
                }
                // A datagram from something that is not an IP address: ignored.
                Ok(None) => {}
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    log::debug!("udp reader: recv: {e}");
                    break;
                }
            }
        }
        if !read.is_multiple_of(WAKE_EVERY) {
            shared.readable.notify_one();
        }
    }
}

/// One datagram: its length, source and the kernel's drop count if reported.
fn recv(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> Result<Option<(usize, SocketAddr, Option<u64>)>, Errno> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let mut drops = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::RxqOvfl(n) = c {
                drops = Some(u64::from(n));
            }
        }
    }
    let src = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| SocketAddr::V4((*v4).into()))
            .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
    });
    let n = msg.bytes;
    Ok(src.map(|s| (n, s, drops)))
}
