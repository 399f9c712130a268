//! Where a SIP message goes: a datagram to a phone, or a TCP connection to an
//! upstream peer. The core says which; the I/O shell owns the sockets.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Where the switch sends a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A UDP datagram to this address (phones).
    Udp(SocketAddr),
    /// The TCP connection whose remote end is this address (upstream peers).
    Tcp(SocketAddr),
}

impl Dest {
    /// The remote address.
    pub fn addr(self) -> SocketAddr {
        match self {
            Dest::Udp(a) | Dest::Tcp(a) => a,
        }
    }

    /// The remote IP address.
    pub fn ip(self) -> IpAddr {
        self.addr().ip()
    }

    /// Whether the transport is reliable (no retransmissions, RFC 3261 §17).
    pub fn is_tcp(self) -> bool {
        matches!(self, Dest::Tcp(_))
    }

    /// The Via transport token (`UDP`, `TCP`).
    pub fn transport(self) -> &'static str {
        match self {
            Dest::Udp(_) => "UDP",
            Dest::Tcp(_) => "TCP",
        }
    }
}

impl From<SocketAddr> for Dest {
    fn from(a: SocketAddr) -> Dest {
        Dest::Udp(a)
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Udp(a) => write!(f, "{a}"),
            Dest::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}
