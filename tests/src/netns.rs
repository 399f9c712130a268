//! A network namespace joined to the host by a veth pair, made for one test and
//! removed when dropped (also when the test panics): phones on a non-loopback
//! address, as on a LAN. Needs root and `ip` (iproute2).

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Namespaces made by this process so far (names and subnets stay apart).
static MADE: AtomicU32 = AtomicU32::new(0);

/// The namespace and its veth pair.
pub struct Netns {
    /// The namespace's name (`ip netns`).
    pub name: String,
    host_if: String,
    /// The host end's address.
    pub host_ip: Ipv4Addr,
    /// The namespace end's address.
    pub ns_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e} (iproute2 is needed)", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// A fresh namespace with a /30 to the host (10.199.N.1 here, .2 there).
    pub fn new() -> Result<Netns, String> {
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{:x}{n}", pid % 0x10000);
        let third = ((pid.wrapping_mul(7) + n) % 250) as u8;
        let ns = Netns {
            name: format!("cvt{tag}"),
            host_if: format!("cvh{tag}"),
            host_ip: Ipv4Addr::new(10, 199, third, 1),
            ns_ip: Ipv4Addr::new(10, 199, third, 2),
        };
        let peer = format!("cvn{tag}");
        ip(&["netns", "add", &ns.name])?;
        // From here on, dropping `ns` removes what was made.
        let host = format!("{}/30", ns.host_ip);
        let there = format!("{}/30", ns.ns_ip);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &ns.name])?;
        ip(&["addr", "add", &host, "dev", &ns.host_if])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &there, "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A UDP socket bound in the namespace to its address and `port` (0: any):
    /// a thread joins the namespace and binds it; the socket stays there.
    pub fn udp_socket(&self, port: u16) -> Result<UdpSocket, String> {
        let path = format!("/run/netns/{}", self.name);
        let at = (self.ns_ip, port);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {path}: {e}"))?;
            UdpSocket::bind(at).map_err(|e| format!("bind {at:?}: {e}"))
        })
        .join()
        .map_err(|_| "the namespace thread panicked".to_string())?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Removing the namespace removes its end of the pair, and so the pair.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
