//! The kernel's routing table, asked for the switch's route cache
//! (`switch::routes`): which local address a datagram to a destination would
//! leave from. Connecting a UDP socket selects a route without sending anything.

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// The local address the kernel would use to reach `dest`, if it has a route.
pub fn kernel_route(dest: IpAddr) -> Option<IpAddr> {
    let any: SocketAddr = if dest.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = UdpSocket::bind(any).ok()?;
    sock.connect(SocketAddr::new(dest, 5060)).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::kernel_route;

    #[test]
    fn loopback_is_reached_from_loopback() {
        let ip = kernel_route("127.0.0.5".parse().expect("ip")).expect("route");
        assert!(ip.is_loopback(), "{ip}");
    }
}
