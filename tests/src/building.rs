//! A building of switches (issue 22): a real Kamailio running the shipped
//! `contrib/kamailio/building.cfg`, and several real `coventryd` sites behind
//! it, each in its own network namespace.
//!
//! The network, made by [`BuildingNet::new`] and removed when dropped (also when
//! the test panics):
//!
//! ```text
//!   namespace "building" (Kamailio)          namespace "site 1" (coventryd 71)
//!     br0 10.201.N.1/24 ── veth ─────────────── eth0 10.201.N.11/24
//!         │            ── veth ─────────────── eth0 10.201.N.12/24  "site 2"
//!         │            ── veth ─────────────── eth0 10.201.N.13/24  "site 3"
//! ```
//!
//! One private /24 on a bridge inside the building's namespace: nothing is made in
//! the host's namespace, so the host forwards nothing, and phones of different
//! sites reach each other directly (for media) across the bridge. Every switch
//! listens on its default `0.0.0.0:5060`, the same port at every site; Kamailio
//! on 5060 in the building's namespace.
//!
//! Processes are started inside a namespace with `ip netns exec NS PROGRAM`
//! (which execs the program: the pid is the program's own). Sockets are made in
//! a namespace by a thread that joined it ([`in_netns`]); they stay there,
//! whichever thread uses them later. The daemons' state blocks, control FIFOs and
//! Kamailio's control socket are files, so `pbxctl` and `kamcmd` run from the
//! host as usual.
//!
//! Every wait is bounded. [`Building`] drops its sites (the daemons stop), then
//! Kamailio, then the namespaces.

use crate::kamailio::{
    kamailio_bin, kamailio_modules_dir, lines_with, ping_tcp, ping_udp, read_log, stop_group,
};
use crate::ua::Ua;
use crate::{poll_until, Conf, Switch};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The port every switch and Kamailio listen on, each in its own namespace.
pub const SIP_PORT: u16 = 5060;
/// How long Kamailio gets to answer its probes after it was started.
pub const BUILDING_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Kamailio gets to exit after SIGTERM before its process group is killed.
pub const BUILDING_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a site's link to the building gets to come up (the daemon's back-off
/// is 1, 2, 4, 8, then 10 s: this covers a few tries after the longest).
pub const LINK_TIMEOUT: Duration = Duration::from_secs(30);

/// Buildings made by this process so far (names and subnets stay apart).
static MADE: AtomicU32 = AtomicU32::new(0);

/// Why a building cannot be made here (not root, no `ip`, no Kamailio), or
/// `None` when it can. Tests print it and skip.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("network namespaces need root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("`ip` (iproute2) is not installed".into()),
    }
    match std::panic::catch_unwind(|| (kamailio_bin(), kamailio_modules_dir())) {
        Ok((bin, _)) if bin.is_file() => {}
        _ => return Some("Kamailio is not installed (apt-get install kamailio)".into()),
    }
    let probe = format!("cvbprobe{}", std::process::id());
    let made = ip(&["netns", "add", &probe]);
    let _ = ip(&["netns", "del", &probe]);
    made.err()
        .map(|e| format!("cannot make a network namespace: {e}"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
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

/// Run `f` on a thread that joined the network namespace `ns` (`ip netns`
/// name) and return what it returns: sockets it makes stay in that namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {path}: {e}"))?;
        f().map_err(|e| format!("in {path}: {e}"))
    })
    .join()
    .map_err(|_| "the namespace thread panicked".to_string())?
}

/// The namespaces and links of a building; see the module docs.
pub struct BuildingNet {
    /// The building's namespace (the bridge and Kamailio).
    pub building_ns: String,
    /// The sites' namespaces, in order.
    pub site_ns: Vec<String>,
    /// The third octet of the building's /24 (10.201.N.0/24).
    pub subnet: u8,
}

impl BuildingNet {
    /// Make the building's namespace with its bridge and `sites` site
    /// namespaces, each joined to the bridge by a veth pair.
    pub fn new(sites: usize) -> Result<BuildingNet, String> {
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{:x}{n}", pid % 0x10000);
        let net = BuildingNet {
            building_ns: format!("cvb{tag}"),
            site_ns: Vec::new(),
            subnet: ((pid.wrapping_mul(13) + n) % 250) as u8,
        };
        ip(&["netns", "add", &net.building_ns])?;
        // From here on, dropping `net` removes what was made.
        let mut net = net;
        let b = net.building_ns.clone();
        let bridge_ip = format!("{}/24", net.building_ip());
        ip(&["-n", &b, "link", "set", "lo", "up"])?;
        ip(&["-n", &b, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &b, "addr", "add", &bridge_ip, "dev", "br0"])?;
        ip(&["-n", &b, "link", "set", "br0", "up"])?;
        for i in 0..sites {
            let s = format!("{b}s{}", i + 1);
            ip(&["netns", "add", &s])?;
            net.site_ns.push(s.clone());
            let port = format!("site{}", i + 1);
            let addr = format!("{}/24", net.site_ip(i));
            ip(&[
                "-n", &b, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &s,
            ])?;
            ip(&["-n", &b, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &b, "link", "set", &port, "up"])?;
            ip(&["-n", &s, "link", "set", "lo", "up"])?;
            ip(&["-n", &s, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &s, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    /// Kamailio's address: 10.201.N.1.
    pub fn building_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, self.subnet, 1)
    }

    /// Site `i`'s address (from 0): 10.201.N.(11 + i).
    pub fn site_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, self.subnet, 11 + i as u8)
    }

    /// The command prefix that runs a program in namespace `ns`.
    pub fn wrapper(ns: &str) -> Vec<String> {
        ["ip", "netns", "exec", ns]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

impl Drop for BuildingNet {
    fn drop(&mut self) {
        // Removing a namespace removes its end of each veth pair, and so the pair.
        for s in self.site_ns.iter().rev() {
            let _ = ip(&["netns", "del", s]);
        }
        let _ = ip(&["netns", "del", &self.building_ns]);
    }
}

/// A Kamailio running `contrib/kamailio/building.cfg` (the shipped file itself)
/// in the building's namespace, its settings given as `-A` defines, its sites
/// list, pid file, control socket and log in a temporary directory.
pub struct BuildingKamailio {
    ns: String,
    ip: Ipv4Addr,
    defines: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
    list_path: PathBuf,
    log_path: PathBuf,
    ctl_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

/// The shipped building configuration, `contrib/kamailio/building.cfg`.
pub fn building_cfg() -> PathBuf {
    crate::workspace_dir()
        .join("contrib")
        .join("kamailio")
        .join("building.cfg")
}

impl BuildingKamailio {
    /// Start Kamailio in namespace `ns` (reached at `ip`) with the sites list
    /// `sites` (the file's text) and more `-A` defines (`NAME`, value: passed as a
    /// string unless all digits); returns once it answers OPTIONS on UDP and TCP.
    pub fn start(
        ns: &str,
        ip: Ipv4Addr,
        sites: &str,
        defines: &[(&str, &str)],
    ) -> Result<BuildingKamailio, String> {
        let dir = tempfile::Builder::new()
            .prefix("coventry-building-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let root = dir.path().to_path_buf();
        let mut k = BuildingKamailio {
            ns: ns.to_string(),
            ip,
            defines: defines
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            list_path: root.join("sites.list"),
            log_path: root.join("kamailio.log"),
            ctl_path: root.join("kamailio_ctl"),
            dir: Some(dir),
            child: None,
            starts: 0,
        };
        k.write_sites(sites)?;
        k.spawn()?;
        Ok(k)
    }

    /// Replace the sites list file (takes effect at the next start or
    /// [`BuildingKamailio::reload`]).
    pub fn write_sites(&self, text: &str) -> Result<(), String> {
        std::fs::write(&self.list_path, text)
            .map_err(|e| format!("{}: {e}", self.list_path.display()))
    }

    /// The sites list file's text.
    pub fn sites_list(&self) -> String {
        std::fs::read_to_string(&self.list_path).unwrap_or_default()
    }

    /// `kamcmd dispatcher.reload` on its control socket; the error carries what
    /// kamcmd said (building.cfg allows one reload per `RELOAD_DELTA` seconds).
    pub fn reload(&self) -> Result<(), String> {
        let mut cmd = Command::new("kamcmd");
        cmd.arg("-s")
            .arg(format!("unix:{}", self.ctl_path.display()))
            .arg("dispatcher.reload");
        let out =
            crate::run_bounded(cmd, Duration::from_secs(10)).map_err(|e| format!("kamcmd: {e}"))?;
        // kamcmd exits 0 also when the command failed ("error: 500 - ...").
        let said = String::from_utf8_lossy(&out.stdout).to_lowercase();
        if out.status.success() && !said.contains("error") {
            Ok(())
        } else {
            Err(format!(
                "kamcmd dispatcher.reload: {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn root(&self) -> &Path {
        self.log_path.parent().unwrap_or_else(|| Path::new("/tmp"))
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("{}: {e}", self.log_path.display()))?;
        {
            let mut l = &log;
            let _ = writeln!(l, "===== harness: kamailio start #{} =====", self.starts);
        }
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let run = self.root().join("run");
        std::fs::create_dir_all(&run).map_err(|e| format!("{}: {e}", run.display()))?;
        let pidfile = self.root().join("kamailio.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(kamailio_bin())
            .arg("-f")
            .arg(building_cfg())
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-L"])
            .arg(kamailio_modules_dir())
            .arg("-Y")
            .arg(&run)
            .arg("-P")
            .arg(&pidfile)
            .arg("-A")
            .arg(format!("SITES_LIST=\"{}\"", self.list_path.display()))
            .arg("-A")
            .arg(format!("CTL_SOCKET=\"unix:{}\"", self.ctl_path.display()));
        for (name, value) in &self.defines {
            if !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit()) {
                cmd.arg("-A").arg(format!("{name}={value}"));
            } else {
                cmd.arg("-A").arg(format!("{name}=\"{value}\""));
            }
        }
        cmd.current_dir(self.root())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run kamailio in {}: {e}", self.ns))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("kamailio exited at start: {st}\n{}", self.report()));
            }
            if self.ping(Duration::from_millis(300)).is_ok() {
                self.note(&format!(
                    "kamailio start #{} ready after {} ms",
                    self.starts,
                    started.elapsed().as_millis()
                ));
                return Ok(());
            }
            if started.elapsed() >= BUILDING_READY_TIMEOUT {
                let why = self.ping(Duration::from_secs(1)).err().unwrap_or_default();
                self.stop();
                return Err(format!(
                    "kamailio not ready within {BUILDING_READY_TIMEOUT:?}: {why}\n{}",
                    self.report()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An OPTIONS to Kamailio itself over UDP and over TCP, from inside the
    /// building's namespace: `Ok` when both got 200, each within `patience`.
    pub fn ping(&self, patience: Duration) -> Result<(), String> {
        let to = SocketAddr::from((self.ip, SIP_PORT));
        let udp = in_netns(&self.ns, move || ping_udp(to, patience));
        udp.map_err(|e| format!("udp {to}: {e}"))?;
        let tcp = in_netns(&self.ns, move || ping_tcp(to, patience));
        tcp.map_err(|e| format!("tcp {to}: {e}"))
    }

    /// Stop Kamailio: SIGTERM, then SIGKILL to its process group after
    /// [`BUILDING_STOP_TIMEOUT`]. Returns its exit status, `None` when it was not
    /// running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let status = stop_group(&mut child, BUILDING_STOP_TIMEOUT);
        self.note(&format!("kamailio stopped: {status:?}"));
        status
    }

    /// Stop Kamailio and start it again with the same settings and sites list
    /// (re-read); retries for a while when its port is still taken.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if e.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the main process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn note(&self, what: &str) {
        if let Ok(mut l) = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(l, "===== harness: {what} =====");
        }
    }

    /// Everything Kamailio wrote so far, across restarts.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The log's `building:` lines: what the configuration did with each request.
    pub fn routing_log(&self) -> String {
        lines_with(&self.log(), "building: ")
    }

    /// The sites list and the whole log, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "----- building kamailio (namespace {}, {}:{SIP_PORT}; sites list:\n{}) -----\n{}----- end of kamailio log -----",
            self.ns,
            self.ip,
            std::fs::read_to_string(&self.list_path).unwrap_or_default(),
            self.log()
        )
    }
}

impl Drop for BuildingKamailio {
    fn drop(&mut self) {
        let status = self.stop();
        if std::thread::panicking() {
            eprintln!("building kamailio exit status: {status:?}");
            eprintln!("{}", self.report());
        }
        if std::env::var_os("COVENTRY_KEEP_TMP").is_some_and(|v| !v.is_empty()) {
            if let Some(d) = self.dir.take() {
                eprintln!("kept {}", d.keep().display());
            }
        }
    }
}

/// One site to build: its prefix, its configuration (without `[server]
/// listen` and `[upstream] route`/`site_prefix`: [`Building::start`] adds
/// them), and the `peer_secret` it sets, if any (written into the site's
/// configuration and into the sites list).
pub struct SiteSpec {
    /// The site's prefix, e.g. `"71"`.
    pub prefix: String,
    /// Its configuration.
    pub conf: Conf,
    /// Its `[upstream] peer_secret`.
    pub peer_secret: Option<String>,
}

/// A running site.
pub struct Site {
    /// The site's prefix.
    pub prefix: String,
    /// Its namespace.
    pub ns: String,
    /// Its address (the switch listens on 0.0.0.0:5060 there).
    pub ip: Ipv4Addr,
    /// The daemon.
    pub sw: Switch,
}

impl Site {
    /// A UDP socket in the site's namespace, on its address and a port the
    /// kernel picks.
    pub fn socket(&self) -> UdpSocket {
        let at = (self.ip, 0);
        in_netns(&self.ns, move || UdpSocket::bind(at))
            .unwrap_or_else(|e| panic!("a socket at site {}: {e}", self.prefix))
    }

    /// A registered in-test phone for extension `ext` of this site (its secret
    /// from [`crate::secret`]), on the site's address.
    pub fn phone(&self, ext: u16) -> Ua {
        let mut p = Ua::with_socket(
            self.socket(),
            self.sw.addr(),
            &ext.to_string(),
            &crate::secret(ext),
        );
        p.register(300);
        p
    }

    /// The state of this site's link(s) to the building, from `pbxctl status
    /// --json` (`upstream[].state`).
    pub fn link_states(&self) -> Vec<String> {
        let out = self.sw.pbxctl(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["upstream"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|u| u["state"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait (bounded by [`LINK_TIMEOUT`]) until every link to the building is
    /// `connected`; panics with the daemon's log when it is not.
    pub fn wait_linked(&self) {
        let ok = poll_until(LINK_TIMEOUT, || {
            let s = self.link_states();
            (!s.is_empty() && s.iter().all(|x| x == "connected")).then_some(())
        });
        if ok.is_none() {
            panic!(
                "site {}: the link to the building is {:?} after {LINK_TIMEOUT:?}\n{}",
                self.prefix,
                self.link_states(),
                self.sw.log()
            );
        }
    }

    /// Start the daemon again after [`Switch::stop`] (same directories, port 5060).
    pub fn restart(&mut self) {
        self.sw.restart();
    }
}

/// Kamailio and the sites on their network; see the module docs. Dropped in
/// that order: the daemons stop, Kamailio stops, the namespaces go.
pub struct Building {
    /// The sites, in the order given.
    pub sites: Vec<Site>,
    /// The building server.
    pub kamailio: BuildingKamailio,
    /// The network.
    pub net: BuildingNet,
}

impl Building {
    /// Make the network, start Kamailio with the sites list for `specs` and the
    /// `-A` defines `defines` (`{BUILDING}` in a value stands for Kamailio's
    /// address), then a coventryd per site (its configuration plus
    /// `listen = 0.0.0.0:5060`, `route` = Kamailio, `site_prefix`), and wait until
    /// every site's link to the building is up. Panics with the logs on failure.
    pub fn start(specs: Vec<SiteSpec>, defines: &[(&str, &str)]) -> Building {
        let net = BuildingNet::new(specs.len())
            .unwrap_or_else(|e| panic!("the building's network namespaces: {e}"));
        let mut list = String::from("# setid(prefix) destination flags priority attrs\n");
        for (i, s) in specs.iter().enumerate() {
            let _ = write!(
                list,
                "{} sip:{}:{SIP_PORT};transport=tcp",
                s.prefix,
                net.site_ip(i)
            );
            if let Some(secret) = &s.peer_secret {
                let _ = write!(list, " 0 0 secret={secret}");
            }
            list.push('\n');
        }
        let here = net.building_ip().to_string();
        let defines: Vec<(&str, String)> = defines
            .iter()
            .map(|(n, v)| (*n, v.replace("{BUILDING}", &here)))
            .collect();
        let defines: Vec<(&str, &str)> = defines.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let kamailio =
            BuildingKamailio::start(&net.building_ns, net.building_ip(), &list, &defines)
                .unwrap_or_else(|e| panic!("the building's Kamailio: {e}"));
        let mut b = Building {
            sites: Vec::new(),
            kamailio,
            net,
        };
        for (i, s) in specs.into_iter().enumerate() {
            let mut conf = s
                .conf
                .section(
                    "upstream",
                    &format!("route = {}:{SIP_PORT}", b.net.building_ip()),
                )
                .section("upstream", &format!("site_prefix = {}", s.prefix));
            if let Some(secret) = &s.peer_secret {
                conf = conf.section("upstream", &format!("peer_secret = {secret}"));
            }
            let text = conf.build().replace(
                "listen = 127.0.0.1:0",
                &format!("listen = 0.0.0.0:{SIP_PORT}"),
            );
            let ns = b.net.site_ns[i].clone();
            let ip = b.net.site_ip(i);
            let sw = Switch::try_start_wrapped(&text, &BuildingNet::wrapper(&ns), Some(ip.into()))
                .unwrap_or_else(|e| panic!("site {}: {e}", s.prefix));
            b.sites.push(Site {
                prefix: s.prefix,
                ns,
                ip,
                sw,
            });
        }
        for s in &b.sites {
            s.wait_linked();
        }
        b
    }

    /// The site with prefix `prefix`.
    pub fn site(&self, prefix: &str) -> &Site {
        match self.sites.iter().find(|s| s.prefix == prefix) {
            Some(s) => s,
            None => panic!("no site {prefix}"),
        }
    }

    /// The site with prefix `prefix`, mutable.
    pub fn site_mut(&mut self, prefix: &str) -> &mut Site {
        match self.sites.iter_mut().find(|s| s.prefix == prefix) {
            Some(s) => s,
            None => panic!("no site {prefix}"),
        }
    }

    /// A UDP socket in the building's namespace on its address and `port` (0:
    /// any), e.g. for the building's emergency route.
    pub fn building_socket(&self, port: u16) -> UdpSocket {
        let at = (self.net.building_ip(), port);
        in_netns(&self.net.building_ns, move || UdpSocket::bind(at))
            .unwrap_or_else(|e| panic!("a socket in the building: {e}"))
    }
}
