//! The switch's sockets: the UDP socket phones talk to, and the TCP listener
//! on the same address for the upstream.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Longest the switch waits for room in the socket's send buffer, ms.
const SEND_WAIT_MS: u8 = 50;
/// Receive buffer asked of the kernel, bytes.
const RCVBUF: usize = 4 << 20;

/// The UDP socket on `addr`, non-blocking, with a receive buffer for bursts.
pub(super) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
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
pub(super) fn send_udp(sock: &UdpSocket, bytes: &[u8], to: SocketAddr) {
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

pub(super) fn bind_tcp(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// Bind the UDP socket, and with an upstream configured a TCP listener on the same
/// address and port (upstream peers send their calls there). Port 0: the kernel
/// picks a UDP port; a few tries find one that is free on TCP too.
pub(super) fn bind_sockets(
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
