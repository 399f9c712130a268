//! Where a SIP message goes: a datagram to a phone, or a TCP connection to an
//! upstream peer. The core says which; the I/O shell owns the sockets.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Where the switch sends a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

    /// Whether a message from `src` comes from the party known here: over UDP
    /// the same address and port; over TCP the same peer host, since an upstream
    /// peer reaches the switch on its own connections as well as on the switch's
    /// (the TCP listener admits upstream peers only).
    pub fn same_party(self, src: Dest) -> bool {
        match (self, src) {
            (Dest::Udp(a), Dest::Udp(b)) => a == b,
            (Dest::Tcp(a), Dest::Tcp(b)) => a.ip() == b.ip(),
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::Dest;

    #[test]
    fn parties_are_transport_addresses() {
        let udp = |s: &str| Dest::Udp(s.parse().expect("addr"));
        let tcp = |s: &str| Dest::Tcp(s.parse().expect("addr"));
        assert!(udp("127.0.0.1:5080").same_party(udp("127.0.0.1:5080")));
        assert!(!udp("127.0.0.1:5080").same_party(udp("127.0.0.1:5081")));
        assert!(!udp("127.0.0.1:5080").same_party(udp("127.0.0.2:5080")));
        assert!(tcp("127.0.0.1:5070").same_party(tcp("127.0.0.1:40000")));
        assert!(!tcp("127.0.0.1:5070").same_party(udp("127.0.0.1:5070")));
    }
}
