//! The live SIP trace: what a trace follows ([`Filter`]), one traced message as a
//! typed record ([`Record`]), and the lease that keeps a trace going ([`Lease`]).
//!
//! A client (pbxctl, the console) holds a lease — a read lock on one byte of the
//! state block file, chosen by a token — and sends `trace TOKEN FILTER` on the
//! control FIFO. While any lease is held the daemon copies the SIP messages it
//! receives and sends that match a lease's filter, credentials masked, into the
//! trace ring ([`crate::stateblock::trace`], the file [`TRACE_FILE`] in the runtime
//! directory, mode 0640 like the state block). The kernel drops a lock when its
//! holder exits however it exits, and the daemon checks the locks every tick: a
//! killed client stops the trace without anything to expire, and with no lease
//! left the daemon copies nothing and removes the ring.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// The trace ring's file name in the runtime directory (present only while a
/// trace is running).
pub const TRACE_FILE: &str = "trace";

/// Most leases (traces at once) the daemon holds.
pub const MAX_LEASES: usize = 8;

/// Lease locks sit this far into the state block file — beyond its end, where
/// nothing is read or written: a lock there is a mark, never in anyone's way.
const LOCK_BASE: i64 = 1 << 40;

/// What a trace follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Every message.
    All,
    /// Messages to or from the address (source address:port) of one of the
    /// extension's registered contacts, and messages whose From, To or
    /// Request-URI user is the extension's number.
    Ext(u16),
    /// Messages to or from this IP address (any port, or only this one).
    Addr(IpAddr, Option<u16>),
}

impl Filter {
    /// Parse `all`, an extension number (digits), an IP address, `IPv4:PORT` or
    /// `[IPv6]:PORT`.
    pub fn parse(s: &str) -> Option<Filter> {
        if s.eq_ignore_ascii_case("all") {
            return Some(Filter::All);
        }
        if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().map(Filter::Ext);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Filter::Addr(ip, None));
        }
        let sa = s.parse::<SocketAddr>().ok()?;
        Some(Filter::Addr(sa.ip(), Some(sa.port())))
    }

    /// Whether a message to or from `peer` matches on the address alone (an
    /// address filter; `All` always; an extension filter needs more: see
    /// [`Filter::Ext`]).
    pub fn matches_addr(&self, peer: SocketAddr) -> bool {
        match *self {
            Filter::All => true,
            Filter::Ext(_) => false,
            Filter::Addr(ip, port) => {
                same_ip(ip, peer.ip()) && port.is_none_or(|p| p == peer.port())
            }
        }
    }
}

/// Whether two addresses are the same host (an IPv4-mapped IPv6 address is its
/// IPv4 address).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => f.write_str("all"),
            Filter::Ext(n) => write!(f, "{n}"),
            Filter::Addr(ip, None) => write!(f, "{ip}"),
            Filter::Addr(ip, Some(p)) => write!(f, "{}", SocketAddr::new(*ip, *p)),
        }
    }
}

/// Which way a message went, seen from the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the peer.
    In,
    /// Sent to the peer.
    Out,
}

impl Direction {
    /// The arrow shown before the peer: `<-` received from it, `->` sent to it.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::In => "<-",
            Direction::Out => "->",
        }
    }

    /// `in` or `out`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// The transport a message went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A datagram (phones).
    Udp,
    /// A message on a TCP connection (the upstream).
    Tcp,
}

impl Transport {
    /// `udp` or `tcp`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One traced message, as the daemon wrote it: the facts as typed fields (the
/// summary read by the daemon, which parses SIP, so no client has to), and the
/// message's bytes with credentials masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its number in the ring (the count of records written before it).
    pub seq: u64,
    /// When the switch received or sent it, ms since the epoch.
    pub time_ms: u64,
    /// Received or sent.
    pub dir: Direction,
    /// UDP or TCP.
    pub transport: Transport,
    /// Where it came from or went to.
    pub peer: SocketAddr,
    /// Which leases it was copied for (bit `i`: the lease in slot `i`).
    pub leases: u8,
    /// A request's method; empty for a response.
    pub method: String,
    /// A response's status code; 0 for a request.
    pub status: u16,
    /// A response's reason phrase.
    pub reason: String,
    /// Call-ID (cut to fit).
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: String,
    /// The message's length in bytes (after masking).
    pub len: u32,
    /// The message's bytes, masked, the first [`crate::stateblock::trace::DATA_SIZE`]
    /// of them (`bytes.len() < len`: cut).
    pub bytes: Vec<u8>,
}

impl Record {
    /// The start of its one-line summary: the method, or status and reason.
    pub fn what(&self) -> String {
        if self.status == 0 {
            self.method.clone()
        } else if self.reason.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {}", self.status, self.reason)
        }
    }
}

/// A client's hold on a trace: a read lock (open file description lock, released
/// when the last descriptor of the open file is closed, so also when the process
/// dies) on the byte of the state block file that the token names. Taken before
/// `trace TOKEN FILTER` is sent; the daemon drops the lease when it finds the
/// lock gone.
pub struct Lease {
    file: File,
    token: u32,
}

impl Lease {
    /// Take the lease `token` on the state block opened as `file` (read-only).
    pub fn take(file: File, token: u32) -> io::Result<Lease> {
        let fl = flock(nix::libc::F_RDLCK, token);
        nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_SETLK(&fl))?;
        Ok(Lease { file, token })
    }

    /// Its token.
    pub fn token(&self) -> u32 {
        self.token
    }

    /// The state block file it is held on.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// The bit of the lease `token` in the records' `leases`, as the daemon of `snap`
/// publishes it; `None` while it holds no such lease.
pub fn lease_bit(snap: &crate::stateblock::Snapshot, token: u32) -> Option<u8> {
    let site = &snap.body.site;
    if site.traces == 0 || token == 0 {
        return None;
    }
    (0..MAX_LEASES)
        .find(|i| site.trace_tokens[*i] == token)
        .map(|i| i as u8)
}

/// A token for a new lease: different for clients running at the same time.
pub fn new_token() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let pid = std::process::id();
    // Mixed so that two clients started in the same instant still differ by pid.
    ((pid.wrapping_mul(0x9e37_79b1) ^ nanos.rotate_left(13)) & 0x7fff_ffff).max(1)
}

/// For the daemon: whether someone holds the lease `token` on the state block
/// file open as `file`.
pub fn lease_held(file: &File, token: u32) -> io::Result<bool> {
    let mut fl = flock(nix::libc::F_WRLCK, token);
    nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_GETLK(&mut fl))?;
    Ok(i32::from(fl.l_type) != nix::libc::F_UNLCK)
}

fn flock(kind: i32, token: u32) -> nix::libc::flock {
    nix::libc::flock {
        l_type: kind as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: LOCK_BASE + i64::from(token),
        l_len: 1,
        // 0 for open file description locks.
        l_pid: 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_print() {
        for (s, f) in [
            ("all", Filter::All),
            ("21", Filter::Ext(21)),
            ("103", Filter::Ext(103)),
            ("10.0.0.5", Filter::Addr("10.0.0.5".parse().unwrap(), None)),
            (
                "10.0.0.5:5060",
                Filter::Addr("10.0.0.5".parse().unwrap(), Some(5060)),
            ),
            ("::1", Filter::Addr("::1".parse().unwrap(), None)),
            (
                "[::1]:5062",
                Filter::Addr("::1".parse().unwrap(), Some(5062)),
            ),
        ] {
            assert_eq!(Filter::parse(s), Some(f), "{s}");
            assert_eq!(Filter::parse(&f.to_string()), Some(f));
        }
        for bad in ["", "sip:21@h", "10.0.0", "21x", "999999", "h:1"] {
            assert_eq!(Filter::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn address_filters_match_host_and_port() {
        let peer: SocketAddr = "10.0.0.5:5062".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:5062".parse().unwrap();
        let f = Filter::parse("10.0.0.5").unwrap();
        assert!(f.matches_addr(peer) && f.matches_addr(mapped));
        assert!(!f.matches_addr("10.0.0.6:5062".parse().unwrap()));
        let fp = Filter::parse("10.0.0.5:5062").unwrap();
        assert!(fp.matches_addr(peer));
        assert!(!fp.matches_addr("10.0.0.5:5063".parse().unwrap()));
        assert!(Filter::All.matches_addr(peer));
        assert!(!Filter::Ext(21).matches_addr(peer));
    }

    #[test]
    fn a_lease_is_seen_while_its_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        std::fs::write(&p, b"x").unwrap();
        let daemon = File::open(&p).unwrap();
        let token = new_token();
        assert!(!lease_held(&daemon, token).unwrap());
        let lease = Lease::take(File::open(&p).unwrap(), token).unwrap();
        assert!(lease_held(&daemon, token).unwrap());
        assert!(!lease_held(&daemon, token ^ 1).unwrap());
        drop(lease);
        assert!(!lease_held(&daemon, token).unwrap());
    }
}
