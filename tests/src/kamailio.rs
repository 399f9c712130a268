//! A real Kamailio 5.6 (Debian package `kamailio`) playing Coventry's upstream SIP
//! network, on 127.0.0.1, with the configuration template
//! `tests/kamailio/upstream.cfg`.
//!
//! [`Kamailio::start`] picks its own listening ports at run time, renders the
//! template into a temporary directory (the `@NAME@` placeholders become ports) and
//! runs Kamailio in the foreground (`-DD -E`) in its own process group, with its
//! pid file and runtime directory in that temporary directory, so it runs as root
//! (CI) and as an ordinary user alike. It returns once Kamailio answers an OPTIONS
//! probe on every socket. What the configuration routes:
//!
//! | arrives on                     | goes to                                            |
//! |--------------------------------|----------------------------------------------------|
//! | TCP [`Kamailio::main_port`]      | UDP `127.0.0.1:`[`KamailioPorts::uas`] (default route) |
//! | TCP [`Kamailio::emergency_port`] | UDP `127.0.0.1:`[`KamailioPorts::emergency_uas`]       |
//! | TCP [`Kamailio::sms_port`]       | UDP `127.0.0.1:`[`KamailioPorts::sms_uas`] (MESSAGE only; else 405) |
//! | UDP [`Kamailio::main_port`]      | `sip:USER@127.0.0.1:`[`KamailioPorts::coventry`]`;transport=tcp`, sent from the TCP main socket |
//!
//! Initial requests are record-routed (double Record-Route when they change socket
//! or transport) and relayed statefully, keeping the Request-URI user; in-dialog
//! requests follow their Route headers; an OPTIONS to Kamailio itself (no user
//! part) is answered 200 at once. TCP connections live an hour and CRLF pings are
//! answered. Every request, relay, reply and failure is in [`Kamailio::log`]
//! (lines with `rig:`).
//!
//! Every wait is bounded. Dropping a [`Kamailio`] stops it (SIGTERM, then SIGKILL
//! to its process group), printing its log when the test is panicking.
//! `COVENTRY_KEEP_TMP=1` keeps the temporary directory (rendered config, log).
//!
//! Binaries: `$KAMAILIO` or `kamailio` on `PATH` or in `/usr/sbin`/`/usr/local/sbin`;
//! modules from `$KAMAILIO_MODULES` or the usual library directories.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long Kamailio gets to answer on all its sockets after it was started.
pub const KAMAILIO_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Kamailio gets to exit after SIGTERM before its process group is killed.
pub const KAMAILIO_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Kamailio::restart`] keeps trying while a port is still taken: a
/// bound that only stops a hung test.
pub const KAMAILIO_RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times [`Kamailio::start`] tries fresh ports when Kamailio cannot bind.
pub const KAMAILIO_START_ATTEMPTS: u32 = 5;

const INSTALL_HINT: &str = "install the Debian package `kamailio` \
     (apt-get install kamailio; scripts/test does this when it is missing)";

/// The peers Kamailio relays to: everything on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KamailioPorts {
    /// Coventry's port: UDP callers to [`Kamailio::main_port`] are relayed to
    /// `sip:USER@127.0.0.1:PORT;transport=tcp` (Coventry listens on TCP on its UDP
    /// port).
    pub coventry: u16,
    /// UDP: the far end of the default route (e.g. a sipp UAS).
    pub uas: u16,
    /// UDP: the far end of the emergency route.
    pub emergency_uas: u16,
    /// UDP: the far end of the SMS route (MESSAGE).
    pub sms_uas: u16,
}

/// Path of the configuration template, `tests/kamailio/upstream.cfg`.
pub fn config_template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kamailio")
        .join("upstream.cfg")
}

/// The kamailio binary: `$KAMAILIO`, `kamailio` on `PATH`, or in `/usr/sbin` or
/// `/usr/local/sbin`; panics with install advice when there is none.
pub fn kamailio_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KAMAILIO").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(PathBuf::from("/usr/sbin"));
    dirs.push(PathBuf::from("/usr/local/sbin"));
    for d in dirs {
        let p = d.join("kamailio");
        if p.is_file() {
            return p;
        }
    }
    panic!("kamailio not found on PATH, in /usr/sbin or /usr/local/sbin: {INSTALL_HINT}");
}

/// Kamailio's module directory: `$KAMAILIO_MODULES`, or the first of
/// `/usr/lib/<multiarch>/kamailio/modules`, `/usr/lib64/kamailio/modules`,
/// `/usr/lib/kamailio/modules`, `/usr/local/lib64/kamailio/modules`,
/// `/usr/local/lib/kamailio/modules` holding `tm.so`; panics with install advice.
pub fn kamailio_modules_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("KAMAILIO_MODULES").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let mut candidates = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        let mut multiarch: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path().join("kamailio").join("modules"))
            .collect();
        multiarch.sort();
        candidates.extend(multiarch);
    }
    for p in [
        "/usr/lib64/kamailio/modules",
        "/usr/lib/kamailio/modules",
        "/usr/local/lib64/kamailio/modules",
        "/usr/local/lib/kamailio/modules",
    ] {
        candidates.push(PathBuf::from(p));
    }
    match candidates.into_iter().find(|d| d.join("tm.so").is_file()) {
        Some(d) => d,
        None => panic!(
            "no Kamailio module directory (with tm.so) found; set KAMAILIO_MODULES or \
             {INSTALL_HINT}"
        ),
    }
}

fn proc_net_has(file: &str, port: u16, listen_only: bool) -> bool {
    let want = format!("0100007F:{port:04X}");
    let any = format!("00000000:{port:04X}");
    std::fs::read_to_string(file)
        .map(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1).is_some_and(|a| *a == want || *a == any)
                    && (!listen_only || f.get(3) == Some(&"0A"))
            })
        })
        .unwrap_or(false)
}

/// Whether something listens on TCP `port` on 127.0.0.1 (from /proc/net/tcp).
pub fn tcp_port_listening(port: u16) -> bool {
    proc_net_has("/proc/net/tcp", port, true)
}

pub use crate::free_udp_tcp_port;

/// Render the template `text`: every `@NAME@` of `vars` replaced; panics naming
/// any placeholder left over.
pub fn render(text: &str, vars: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("@{name}@"), value);
    }
    for (i, line) in out.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        let mut rest = code;
        while let Some(a) = rest.find('@') {
            let after = &rest[a + 1..];
            match after.find('@') {
                Some(b)
                    if b > 0
                        && after[..b]
                            .bytes()
                            .all(|c| c.is_ascii_uppercase() || c == b'_') =>
                {
                    panic!(
                        "kamailio template: placeholder @{}@ not substituted (line {})",
                        &after[..b],
                        i + 1
                    )
                }
                _ => rest = after,
            }
        }
    }
    out
}

/// A running Kamailio; see the module docs.
pub struct Kamailio {
    peers: KamailioPorts,
    main: u16,
    emergency: u16,
    sms: u16,
    dir: Option<tempfile::TempDir>,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Kamailio {
    /// Start Kamailio relaying to `peers`, on listening ports it picks (retrying
    /// with fresh ports, up to [`KAMAILIO_START_ATTEMPTS`] times, when it cannot
    /// bind them). Returns once it answers OPTIONS on every socket (bounded by
    /// [`KAMAILIO_READY_TIMEOUT`] per attempt); the error carries its log. Panics
    /// with install advice when Kamailio is not installed.
    pub fn start(peers: KamailioPorts) -> Result<Kamailio, String> {
        let bin = kamailio_bin();
        let modules = kamailio_modules_dir();
        let template = std::fs::read_to_string(config_template())
            .map_err(|e| format!("{}: {e}", config_template().display()))?;
        let dir = tempfile::Builder::new()
            .prefix("coventry-kamailio-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let mut k = Kamailio {
            peers,
            main: 0,
            emergency: 0,
            sms: 0,
            config_path: dir.path().join("kamailio.cfg"),
            log_path: dir.path().join("kamailio.log"),
            dir: Some(dir),
            child: None,
            starts: 0,
        };
        let mut errors = String::new();
        for attempt in 1..=KAMAILIO_START_ATTEMPTS {
            k.main = free_udp_tcp_port();
            k.emergency = free_udp_tcp_port();
            k.sms = free_udp_tcp_port();
            let text = render(&template, &k.vars());
            std::fs::write(&k.config_path, text)
                .map_err(|e| format!("{}: {e}", k.config_path.display()))?;
            match k.spawn(&bin, &modules) {
                Ok(()) => return Ok(k),
                Err(e) => {
                    let _ = writeln!(errors, "attempt {attempt}: {e}");
                    if !e.bind_failed {
                        break;
                    }
                }
            }
        }
        Err(format!("kamailio did not start:\n{errors}{}", k.log_dump()))
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MAIN_PORT", self.main.to_string()),
            ("EMERGENCY_PORT", self.emergency.to_string()),
            ("SMS_PORT", self.sms.to_string()),
            ("COVENTRY_PORT", self.peers.coventry.to_string()),
            ("UAS_PORT", self.peers.uas.to_string()),
            ("EMERGENCY_UAS_PORT", self.peers.emergency_uas.to_string()),
            ("SMS_UAS_PORT", self.peers.sms_uas.to_string()),
        ]
    }

    fn tmp(&self) -> &Path {
        self.config_path
            .parent()
            .unwrap_or_else(|| Path::new("/tmp"))
    }

    fn spawn(&mut self, bin: &Path, modules: &Path) -> Result<(), SpawnError> {
        self.starts += 1;
        let log_from = std::fs::metadata(&self.log_path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| SpawnError::other(format!("{}: {e}", self.log_path.display())))?;
        let _ = writeln!(
            log,
            "===== harness: kamailio start #{} (main {}, emergency {}, sms {}) =====",
            self.starts, self.main, self.emergency, self.sms
        );
        let log2 = log
            .try_clone()
            .map_err(|e| SpawnError::other(format!("log: {e}")))?;
        let run = self.tmp().join("run");
        std::fs::create_dir_all(&run).map_err(|e| SpawnError::other(format!("{e}")))?;
        let pidfile = self.tmp().join("kamailio.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(&self.config_path)
            .args(["-DD", "-E", "-m", "32", "-M", "8", "-L"])
            .arg(modules)
            .arg("-Y")
            .arg(&run)
            .arg("-P")
            .arg(&pidfile)
            .current_dir(self.tmp())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = cmd.spawn().map_err(|e| {
            SpawnError::other(format!(
                "cannot run {}: {e} ({INSTALL_HINT})",
                bin.display()
            ))
        })?;
        // process_group(0): the group id is the main process id.
        let pgid = child.id() as i32;
        self.child = Some(child);
        let started = Instant::now();
        let deadline = started + KAMAILIO_READY_TIMEOUT;
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                // The group leader is gone; any of its children still alive are ours.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(-pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                // What this run wrote: e.g. "tcp_init(): bind(...) on 127.0.0.1:N :
                // Address already in use".
                let log = self.log();
                let this_run = log.get(log_from..).unwrap_or(&log);
                let bind_failed =
                    this_run.contains("Address already in use") || this_run.contains("bind(");
                self.note(&format!(
                    "kamailio start #{} exited after {} ms: {st}",
                    self.starts,
                    started.elapsed().as_millis()
                ));
                return Err(SpawnError {
                    message: format!("kamailio exited at start: {st}"),
                    bind_failed,
                });
            }
            if self.ping_within(Duration::from_millis(300)).is_ok() {
                self.note(&format!(
                    "kamailio start #{} ready after {} ms",
                    self.starts,
                    started.elapsed().as_millis()
                ));
                return Ok(());
            }
            if Instant::now() >= deadline {
                let why = self.ping().err().unwrap_or_default();
                self.stop();
                return Err(SpawnError::other(format!(
                    "kamailio not ready within {KAMAILIO_READY_TIMEOUT:?}: {why}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The listening port for UDP and TCP: the default route (Coventry connects here
    /// over TCP) and where outside UDP callers send.
    pub fn main_port(&self) -> u16 {
        self.main
    }

    /// The TCP listening port of the emergency route.
    pub fn emergency_port(&self) -> u16 {
        self.emergency
    }

    /// The TCP listening port of the SMS route.
    pub fn sms_port(&self) -> u16 {
        self.sms
    }

    /// `127.0.0.1:`[`Kamailio::main_port`].
    pub fn main_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.main))
    }

    /// `127.0.0.1:`[`Kamailio::emergency_port`].
    pub fn emergency_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.emergency))
    }

    /// `127.0.0.1:`[`Kamailio::sms_port`].
    pub fn sms_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sms))
    }

    /// The peers it relays to, as given to [`Kamailio::start`].
    pub fn peers(&self) -> KamailioPorts {
        self.peers
    }

    /// The rendered configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The main process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the main process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Send an OPTIONS (no user part: Kamailio answers it itself) over UDP to the
    /// main port and over TCP to each TCP port; `Ok` when all four got 200 (each
    /// bounded by 1 s; a refused one fails at once), else which one did not and why.
    pub fn ping(&self) -> Result<(), String> {
        self.ping_within(Duration::from_secs(1))
    }

    /// [`Kamailio::ping`] with each probe bounded by `patience`; a refused UDP probe
    /// fails at once.
    fn ping_within(&self, patience: Duration) -> Result<(), String> {
        let here = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        ping_udp(here(self.main), patience).map_err(|e| format!("udp {}: {e}", self.main))?;
        for p in [self.main, self.emergency, self.sms] {
            ping_tcp(here(p), patience).map_err(|e| format!("tcp {p}: {e}"))?;
        }
        Ok(())
    }

    /// Stop Kamailio: SIGTERM, then after [`KAMAILIO_STOP_TIMEOUT`] SIGKILL to its
    /// process group; then wait (bounded) until its ports are free. Returns the
    /// exit status, `None` when it was not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let status = stop_group(&mut child, KAMAILIO_STOP_TIMEOUT);
        let ports = [self.main, self.emergency, self.sms];
        crate::poll_until(KAMAILIO_STOP_TIMEOUT, || {
            (!crate::sipp::udp_port_bound(self.main)
                && ports.iter().all(|p| !tcp_port_listening(*p)))
            .then_some(())
        });
        self.note(&format!("kamailio stopped: {status:?}"));
        status
    }

    /// Append `===== harness: WHAT =====` to the log.
    fn note(&self, what: &str) {
        if let Ok(mut l) = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(l, "===== harness: {what} =====");
        }
    }

    /// Start Kamailio again on the same ports with the same configuration (after
    /// [`Kamailio::stop`], or stopping it first), as "the upstream comes back"; retries
    /// while a port is still taken (bounded by [`KAMAILIO_RESTART_TIMEOUT`]). Returns
    /// once it is ready; the error carries its log.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let bin = kamailio_bin();
        let modules = kamailio_modules_dir();
        let deadline = Instant::now() + KAMAILIO_RESTART_TIMEOUT;
        loop {
            match self.spawn(&bin, &modules) {
                Ok(()) => return Ok(()),
                Err(e) if e.bind_failed && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => {
                    return Err(format!(
                        "kamailio did not restart: {}\n{}",
                        e.message,
                        self.log_dump()
                    ))
                }
            }
        }
    }

    /// The log file (stderr of every run, with the harness's notes).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything Kamailio wrote to stdout and stderr so far, across restarts
    /// (with `===== harness: ... =====` lines between runs).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Only the `rig:` lines of the log: what the configuration did with each
    /// request and reply.
    pub fn rig_log(&self) -> String {
        lines_with(&self.log(), "rig: ")
    }

    /// The ports and the whole log, for a failure message.
    pub fn report(&self) -> String {
        self.log_dump()
    }

    fn log_dump(&self) -> String {
        format!(
            "----- kamailio (main {} udp+tcp, emergency {} tcp, sms {} tcp; peers {:?}; config {}) -----\n{}----- end of kamailio log -----",
            self.main,
            self.emergency,
            self.sms,
            self.peers,
            self.config_path.display(),
            self.log()
        )
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let status = self.stop();
        if std::thread::panicking() {
            eprintln!("kamailio exit status: {status:?}");
            eprintln!("{}", self.log_dump());
        }
        if std::env::var_os("COVENTRY_KEEP_TMP").is_some_and(|v| !v.is_empty()) {
            if let Some(d) = self.dir.take() {
                eprintln!("kept {}", d.keep().display());
            }
        }
    }
}

struct SpawnError {
    message: String,
    bind_failed: bool,
}

impl SpawnError {
    fn other(message: String) -> SpawnError {
        SpawnError {
            message,
            bind_failed: false,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Stop a Kamailio run in its own process group: SIGTERM to the main process,
/// SIGKILL to the group after `patience`, and SIGKILL to the group in any case
/// (children that outlived the main process go too). Its exit status.
pub(crate) fn stop_group(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let pid = child.id() as i32;
    let group = nix::unistd::Pid::from_raw(-pid);
    let status = match child.try_wait() {
        Ok(Some(st)) => Some(st),
        _ => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + patience;
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => break Some(st),
                    // A pause between the looks of a bounded wait.
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
                        break child.wait().ok();
                    }
                }
            }
        }
    };
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    status
}

/// A log file's text so far (empty when it cannot be read).
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The lines of `text` that contain `marker`, each with its newline.
pub(crate) fn lines_with(text: &str, marker: &str) -> String {
    let mut s = String::new();
    for l in text.lines().filter(|l| l.contains(marker)) {
        let _ = writeln!(s, "{l}");
    }
    s
}

/// An OPTIONS to `to` itself (no user part), sent from `local`.
fn options_probe(proto: &str, local: SocketAddr, to: SocketAddr) -> String {
    let tag = crate::ua::unique("");
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/{proto} {local};branch=z9hG4bK-probe-{tag};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=p{tag}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: probe-{tag}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn check_200(reply: &[u8]) -> io::Result<()> {
    let text = String::from_utf8_lossy(reply);
    if text.starts_with("SIP/2.0 200") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "unexpected reply: {}",
            text.lines().next().unwrap_or("")
        )))
    }
}

/// An OPTIONS over UDP to `to`, repeated until a reply or `patience`; a refused
/// probe (ICMP port unreachable on the connected socket) fails at once.
pub(crate) fn ping_udp(to: SocketAddr, patience: Duration) -> io::Result<()> {
    let sock = UdpSocket::bind((to.ip(), 0))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    sock.connect(to)?;
    let req = options_probe("UDP", sock.local_addr()?, to);
    let deadline = Instant::now() + patience;
    let mut buf = vec![0u8; 65536];
    loop {
        sock.send(req.as_bytes())?;
        match sock.recv(&mut buf) {
            Ok(n) => return check_200(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(e),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
    }
}

/// An OPTIONS over a fresh TCP connection to `to`, each step bounded by `patience`.
pub(crate) fn ping_tcp(to: SocketAddr, patience: Duration) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&to, patience)?;
    s.set_read_timeout(Some(patience))?;
    s.set_write_timeout(Some(patience))?;
    let req = options_probe("TCP", s.local_addr()?, to);
    s.write_all(req.as_bytes())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a reply",
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    check_200(&got)
}

/// A server-mode sipp listening on TCP (`-t t1`), running in a thread:
/// [`crate::sipp::Sipp::spawn`] waits for a UDP port, which a TCP sipp does not bind.
/// Dropping it does not stop sipp: it ends at its own `-timeout` (the run is bounded
/// as in [`crate::sipp::Sipp::run`]).
pub struct TcpSipp {
    port: u16,
    thread: Option<std::thread::JoinHandle<crate::sipp::SippRun>>,
}

impl TcpSipp {
    /// Start `sipp` (give it no `-t`: this adds `-t t1`) and wait (bounded: 5 s)
    /// until it listens on its TCP port; panics if it does not.
    pub fn spawn(sipp: crate::sipp::Sipp) -> TcpSipp {
        let port = sipp.local_port();
        let sipp = sipp.arg("-t").arg("t1");
        let thread = std::thread::spawn(move || sipp.run());
        let mut t = TcpSipp {
            port,
            thread: Some(thread),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tcp_port_listening(port) {
            if t.thread.as_ref().is_some_and(|h| h.is_finished()) || Instant::now() >= deadline {
                let run = t.wait();
                panic!(
                    "sipp did not listen on TCP 127.0.0.1:{port} within 5 s:\n{}",
                    run.report()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        t
    }

    /// The TCP port sipp listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Wait for sipp to finish (bounded by its timeout plus 10 s, see
    /// [`crate::sipp::Sipp::run`]).
    pub fn wait(&mut self) -> crate::sipp::SippRun {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(run)) => run,
            Some(Err(_)) => panic!("the sipp thread panicked"),
            None => panic!("sipp already waited for"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let t = std::fs::read_to_string(config_template()).expect("template");
        let vars: Vec<(&str, String)> = [
            "MAIN_PORT",
            "EMERGENCY_PORT",
            "SMS_PORT",
            "COVENTRY_PORT",
            "UAS_PORT",
            "EMERGENCY_UAS_PORT",
            "SMS_UAS_PORT",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, (40000 + i).to_string()))
        .collect();
        let r = render(&t, &vars);
        assert!(r.contains("listen=udp:127.0.0.1:40000"));
        assert!(r.contains("127.0.0.1:40003;transport=tcp"));
    }

    #[test]
    #[should_panic(expected = "@SMS_PORT@")]
    fn refuses_leftover_placeholders() {
        render("listen=tcp:127.0.0.1:@SMS_PORT@\n", &[]);
    }
}
