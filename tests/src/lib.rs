//! End-to-end test harness for Coventry.
//!
//! Every test starts its own `coventryd` ([`Switch::start`]) in its own temporary
//! directory, listening on a port the kernel picks on 127.0.0.1, so tests run in
//! parallel. It talks to the switch the way real peers do: SIP over UDP ([`ua`]: an
//! in-test user agent; [`sipp`]: the stock sipp tool with the scenarios under
//! `tests/scenarios/`), the state block (read-only, like pbxctl), the control FIFO and
//! the real `pbxctl` binary.
//!
//! ## Where the binaries come from
//!
//! The test executables live in `<target>/<profile>/deps/`; the daemon and the CLI are
//! taken from `<target>/<profile>/coventryd` and `<target>/<profile>/pbxctl`. Before the
//! first daemon starts, each test process runs `cargo build -p coventryd -p pbxctl`
//! (same target dir and profile) once, so a plain `cargo test -p coventry-tests`
//! never tests stale binaries. `scripts/test` builds the whole workspace first and
//! sets `COVENTRY_TEST_NO_BUILD=1` to skip that step. `COVENTRYD_BIN` and
//! `PBXCTL_BIN` name other binaries explicitly.
//!
//! Every wait is bounded; when a test fails, the daemon's log (stderr) is printed.
//! `COVENTRY_KEEP_TMP=1` keeps the temporary directories for inspection.

pub mod baresip;
pub mod building;
pub mod fail2ban;
pub mod kamailio;
pub mod linphone;
pub mod netns;
pub mod pty;
pub mod sipp;
pub mod ua;

use coventry_shared::event::{Event, EventRecord};
use coventry_shared::stateblock::{get_str, EventCursor, Snapshot, StateReader};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a daemon gets to become ready (state block published with its port).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon gets to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound for one pbxctl invocation.
pub const PBXCTL_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `<target>/<profile>`: where cargo put this test executable's sibling binaries.
pub fn bin_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(deps) = exe.parent() {
            if deps.file_name().is_some_and(|n| n == "deps") {
                if let Some(profile) = deps.parent() {
                    return profile.to_path_buf();
                }
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"));
    target.join("debug")
}

fn build_once() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("COVENTRY_TEST_NO_BUILD").is_some_and(|v| !v.is_empty()) {
            return Ok(());
        }
        let dir = bin_dir();
        let profile = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "debug".into());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_dir()).args([
            "build",
            "--quiet",
            "-p",
            "coventryd",
            "-p",
            "pbxctl",
        ]);
        if let Some(target) = dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = run_bounded(cmd, Duration::from_secs(600))
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`cargo build -p coventryd -p pbxctl` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
}

fn binary(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Err(e) = build_once() {
        panic!("{e}");
    }
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} does not exist: build it with `cargo build -p {name}` (or set {env})",
        p.display()
    );
    p
}

/// Path of the `coventryd` binary (built on first use, see the crate docs).
pub fn coventryd_bin() -> PathBuf {
    binary("coventryd", "COVENTRYD_BIN")
}

/// Path of the `pbxctl` binary (built on first use, see the crate docs).
pub fn pbxctl_bin() -> PathBuf {
    binary("pbxctl", "PBXCTL_BIN")
}

/// A port on 127.0.0.1 free for UDP and TCP a moment ago (for a peer that may
/// listen on either, as sipp does with `-t t1`), not handed out before in this
/// process.
pub fn free_udp_tcp_port() -> u16 {
    for _ in 0..1000 {
        let p = free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// A UDP port on 127.0.0.1 that was free a moment ago and has not been handed out
/// before in this process.
pub fn free_udp_port() -> u16 {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let used = USED.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..1000 {
        let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = sock.local_addr() else {
            continue;
        };
        let mut used = used.lock().unwrap_or_else(|e| e.into_inner());
        if used.insert(addr.port()) {
            return addr.port();
        }
    }
    panic!("no free UDP port on 127.0.0.1");
}

/// Poll `f` every 10 ms until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run `cmd` with stdin closed and stdout/stderr captured, killing it when it runs
/// longer than `timeout` (the returned status then shows the signal).
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The secret the config helpers give extension `n`.
pub fn secret(n: u16) -> String {
    format!("pw{n}")
}

/// Builder for test configurations: `[server]` on 127.0.0.1 port 0, realm `test`,
/// the 2-digit plan unless told otherwise, and extensions whose secret is
/// [`secret`]`(n)`.
#[derive(Debug, Clone)]
pub struct Conf {
    digits: u8,
    server: Vec<String>,
    exts: Vec<(u16, Vec<String>)>,
    groups: Vec<(u16, Vec<u16>)>,
    calls: Vec<String>,
    sections: Vec<(String, Vec<String>)>,
}

impl Conf {
    /// A 2-digit plan with extensions `exts`.
    pub fn new(exts: &[u16]) -> Conf {
        Conf {
            digits: 2,
            server: Vec::new(),
            exts: exts.iter().map(|n| (*n, Vec::new())).collect(),
            groups: Vec::new(),
            calls: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// Use the 3-digit plan.
    pub fn digits(mut self, d: u8) -> Conf {
        self.digits = d;
        self
    }

    /// Add a `[server]` line (`key = value`).
    pub fn server(mut self, line: &str) -> Conf {
        self.server.push(line.to_string());
        self
    }

    /// Add a line to extension `n`'s section (adding the extension when new).
    pub fn ext_line(mut self, n: u16, line: &str) -> Conf {
        if let Some((_, lines)) = self.exts.iter_mut().find(|(e, _)| *e == n) {
            lines.push(line.to_string());
        } else {
            self.exts.push((n, vec![line.to_string()]));
        }
        self
    }

    /// `[calls] ring = RING` and `noanswer = NOANSWER` (seconds per ring, rings
    /// before the switch gives up).
    pub fn calls(mut self, ring: u32, noanswer: u32) -> Conf {
        self.calls = vec![format!("ring = {ring}"), format!("noanswer = {noanswer}")];
        self
    }

    /// Add a group.
    pub fn group(mut self, n: u16, members: &[u16]) -> Conf {
        self.groups.push((n, members.to_vec()));
        self
    }

    /// Add a line to section `[name]` (`speed`, `features`...), written after the
    /// groups.
    pub fn section(mut self, name: &str, line: &str) -> Conf {
        if let Some((_, lines)) = self.sections.iter_mut().find(|(n, _)| n == name) {
            lines.push(line.to_string());
        } else {
            self.sections
                .push((name.to_string(), vec![line.to_string()]));
        }
        self
    }

    /// The INI text.
    pub fn build(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[server]\nlisten = 127.0.0.1:0\ndigits = {}\nrealm = test",
            self.digits
        );
        for l in &self.server {
            let _ = writeln!(s, "{l}");
        }
        if !self.calls.is_empty() {
            let _ = writeln!(s, "\n[calls]");
            for l in &self.calls {
                let _ = writeln!(s, "{l}");
            }
        }
        if !self.groups.is_empty() {
            let _ = writeln!(s, "\n[groups]");
            for (g, members) in &self.groups {
                let m: Vec<String> = members.iter().map(u16::to_string).collect();
                let _ = writeln!(s, "{g} = {}", m.join(" "));
            }
        }
        for (name, lines) in &self.sections {
            let _ = writeln!(s, "\n[{name}]");
            for l in lines {
                let _ = writeln!(s, "{l}");
            }
        }
        for (n, lines) in &self.exts {
            let _ = writeln!(s, "\n[{n}]\nsecret = {}", secret(*n));
            for l in lines {
                let _ = writeln!(s, "{l}");
            }
        }
        s
    }
}

/// The events read from the ring so far (across restarts).
struct EventLog {
    cursor: EventCursor,
    events: Vec<EventRecord>,
    lost: u64,
}

/// A running `coventryd` with its own temporary directories.
pub struct Switch {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    config_path: PathBuf,
    runtime_dir: PathBuf,
    state_dir: PathBuf,
    log_path: PathBuf,
    config: String,
    child: Option<Child>,
    addr: SocketAddr,
    reader: Option<StateReader>,
    log: Mutex<EventLog>,
    starts: u32,
    wrapper: Vec<String>,
    reach: Option<std::net::IpAddr>,
}

impl Switch {
    /// Start a daemon on `config` (INI text) and wait until it is ready; panics with
    /// the daemon's log when it does not come up.
    pub fn start(config: &str) -> Switch {
        match Switch::try_start(config) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Start a daemon on `config`; an error carries the daemon's log.
    pub fn try_start(config: &str) -> Result<Switch, String> {
        Switch::try_start_wrapped(config, &[], None)
    }

    /// Start a daemon on `config` under a command prefix (`wrapper`, e.g.
    /// `["ip", "netns", "exec", "NS"]`: it must exec the daemon, so that the pid it
    /// started is the daemon's), and wait until it is ready. `reach` is the address
    /// the tests reach it at when it listens on an unspecified address (default
    /// 127.0.0.1); the port is the one it bound. An error carries the daemon's log.
    pub fn try_start_wrapped(
        config: &str,
        wrapper: &[String],
        reach: Option<std::net::IpAddr>,
    ) -> Result<Switch, String> {
        let bin = coventryd_bin();
        let dir = tempfile::Builder::new()
            .prefix("coventry-test-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let root = dir.path().to_path_buf();
        let runtime_dir = root.join("run");
        let state_dir = root.join("state");
        for d in [&runtime_dir, &state_dir] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(d)
                .map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut sw = Switch {
            config_path: root.join("coventry.conf"),
            log_path: root.join("coventryd.log"),
            dir: Some(dir),
            root,
            runtime_dir,
            state_dir,
            config: config.to_string(),
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            reader: None,
            log: Mutex::new(EventLog {
                cursor: EventCursor { next: 0 },
                events: Vec::new(),
                lost: 0,
            }),
            starts: 0,
            wrapper: wrapper.to_vec(),
            reach,
        };
        sw.spawn(&bin)?;
        Ok(sw)
    }

    fn spawn(&mut self, bin: &Path) -> Result<(), String> {
        std::fs::write(&self.config_path, &self.config)
            .map_err(|e| format!("{}: {e}", self.config_path.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("{}: {e}", self.log_path.display()))?;
        self.starts += 1;
        {
            let mut l = &log;
            let _ = writeln!(
                l,
                "===== harness: start #{} of {} =====",
                self.starts,
                bin.display()
            );
        }
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("--runtime-dir")
            .arg(&self.runtime_dir)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env_remove("COVENTRY_LISTEN")
            .env_remove("COVENTRY_CONFIG")
            .env_remove("COVENTRY_RUNTIME_DIR")
            .env_remove("COVENTRY_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        self.child = Some(child);
        let state = coventry_shared::runtime::state_path(&self.runtime_dir);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "coventryd exited ({st}) before it was ready\n{}",
                        self.log_dump()
                    ));
                }
            }
            if let Ok(r) = StateReader::open(&state) {
                let h = r.header();
                if h.pid == pid {
                    if let Ok(a) = h.bound.parse::<SocketAddr>() {
                        if a.port() != 0 {
                            self.addr = if a.ip().is_unspecified() {
                                let ip = self.reach.unwrap_or([127, 0, 0, 1].into());
                                SocketAddr::new(ip, a.port())
                            } else {
                                a
                            };
                            self.reader = Some(r);
                            let mut l = self.lock_log();
                            l.cursor = EventCursor { next: 0 };
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "coventryd (pid {pid}) not ready within {READY_TIMEOUT:?}: no state block at {} \
                     with its pid and a bound port\n{}",
                    state.display(),
                    self.log_dump()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, EventLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The UDP address the switch listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` of the switch, for URIs.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The read-only state-block mapping of the running daemon.
    pub fn reader(&self) -> &StateReader {
        match &self.reader {
            Some(r) => r,
            None => panic!("the switch is not running"),
        }
    }

    /// A consistent snapshot of the state block.
    pub fn snapshot(&self) -> Snapshot {
        match self.reader().snapshot() {
            Some(s) => s,
            None => panic!("no consistent snapshot after 10,000 tries: the seqlock stays odd"),
        }
    }

    /// Poll the snapshot until `f` holds; returns that snapshot, or panics with
    /// `what` after `timeout`.
    pub fn wait_state(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Snapshot) -> bool,
    ) -> Snapshot {
        match poll_until(timeout, || Some(self.snapshot()).filter(|s| f(s))) {
            Some(s) => s,
            None => panic!("state block: timed out after {timeout:?} waiting for {what}"),
        }
    }

    /// Contact URIs currently registered for `ext`.
    pub fn contacts(&self, ext: u16) -> Vec<String> {
        let snap = self.snapshot();
        snap.ext(ext)
            .map(|e| {
                e.active_contacts()
                    .iter()
                    .map(|c| get_str(&c.uri))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait (bounded by [`T`]) until the extension table lists exactly `want` as
    /// the contacts of `ext` (in any order) and the registered bit agrees.
    ///
    /// The daemon answers a REGISTER before it updates the state block, so a test
    /// that just got its 200 waits here instead of reading the block at once.
    pub fn wait_contacts(&self, ext: u16, want: &[String]) -> Snapshot {
        let mut want: Vec<String> = want.to_vec();
        want.sort();
        let ok = poll_until(T, || {
            let s = self.snapshot();
            let mut have: Vec<String> = s
                .ext(ext)
                .map(|e| {
                    e.active_contacts()
                        .iter()
                        .map(|c| get_str(&c.uri))
                        .collect()
                })
                .unwrap_or_default();
            have.sort();
            (have == want && s.is_registered(ext) != want.is_empty()).then_some(s)
        });
        match ok {
            Some(s) => s,
            None => {
                let s = self.snapshot();
                panic!(
                    "state block: contacts of {ext} are {:?} (registered bit {}), expected {want:?}",
                    self.contacts(ext),
                    s.is_registered(ext)
                )
            }
        }
    }

    /// Wait (bounded by [`T`]) until the counters satisfy `f` (they are published
    /// on the daemon's 100 ms tick); returns them.
    pub fn wait_counters(
        &self,
        what: &str,
        f: impl Fn(&coventry_shared::stateblock::Counters) -> bool,
    ) -> coventry_shared::stateblock::Counters {
        match poll_until(T, || {
            let c = self.snapshot().body.counters;
            f(&c).then_some(c)
        }) {
            Some(c) => c,
            None => panic!(
                "counters: {what} not reached within {T:?}: {:?}",
                self.snapshot().body.counters
            ),
        }
    }

    /// Root of this switch's temporary directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The runtime directory (state block, control FIFO).
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// The persistent state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn poll_events(&self) {
        let Some(r) = self.reader.as_ref() else {
            return;
        };
        let mut l = self.lock_log();
        loop {
            let mut cur = l.cursor;
            let p = r.poll_events(&mut cur, 512);
            l.cursor = cur;
            l.lost += p.lost;
            let n = p.events.len();
            l.events.extend(p.events);
            if n == 0 {
                break;
            }
        }
    }

    /// Every event read since the first start (across restarts), in order.
    pub fn events(&self) -> Vec<EventRecord> {
        self.poll_events();
        self.lock_log().events.clone()
    }

    /// Events this harness missed because the ring overwrote them.
    pub fn events_lost(&self) -> u64 {
        self.poll_events();
        self.lock_log().lost
    }

    /// A position in the event history: [`Switch::wait_event_after`] looks only at
    /// events after it.
    pub fn mark(&self) -> usize {
        self.poll_events();
        self.lock_log().events.len()
    }

    /// The first event since start that satisfies `pred`, waiting up to `timeout`.
    pub fn wait_event(
        &self,
        pred: impl Fn(&Event) -> bool,
        timeout: Duration,
    ) -> Option<EventRecord> {
        self.wait_event_after(0, pred, timeout)
    }

    /// The first event after `mark` that satisfies `pred`, waiting up to `timeout`.
    pub fn wait_event_after(
        &self,
        mark: usize,
        pred: impl Fn(&Event) -> bool,
        timeout: Duration,
    ) -> Option<EventRecord> {
        poll_until(timeout, || {
            self.poll_events();
            let l = self.lock_log();
            l.events.iter().skip(mark).find(|r| pred(&r.event)).cloned()
        })
    }

    /// Like [`Switch::wait_event_after`], but panics naming `what` and listing the
    /// events seen when none matches in time.
    pub fn expect_event_after(
        &self,
        mark: usize,
        what: &str,
        pred: impl Fn(&Event) -> bool,
        timeout: Duration,
    ) -> Event {
        match self.wait_event_after(mark, pred, timeout) {
            Some(r) => r.event,
            None => panic!(
                "no event {what} within {timeout:?}; events after mark {mark}:\n{}",
                self.events_text(mark)
            ),
        }
    }

    /// The events after `mark`, one per line, for failure messages.
    pub fn events_text(&self, mark: usize) -> String {
        let mut s = String::new();
        for r in self.events().iter().skip(mark) {
            let _ = writeln!(s, "  #{} {:?}", r.seq, r.event);
        }
        s
    }

    /// Write `line` (give it its newline) to the control FIFO in one `write(2)` (a
    /// line up to `PIPE_BUF` bytes arrives whole even with concurrent writers). The
    /// FIFO is opened non-blocking, so this never hangs on a daemon that does not
    /// read; it waits at most 5 s for a reader and for room in the pipe.
    pub fn fifo_write(&self, line: &[u8]) -> io::Result<()> {
        let path = coventry_shared::runtime::control_path(&self.runtime_dir);
        fifo_write_path(&path, line, Duration::from_secs(5))
    }

    /// A fence on the control FIFO: a read-only command (`#ID runstate`, framed)
    /// written after whatever went into the FIFO before, and its result awaited
    /// (bounded by [`LONG`]). The FIFO is read in order, so once this returns every
    /// line written before it has been carried out and its events are in the ring:
    /// an absence can be asserted. Returns the fence's request id (its result is one
    /// more `CommandResult` after the mark).
    pub fn control_fence(&self) -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = FENCE_IDS + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mark = self.mark();
        let line = coventry_shared::control::frame(&format!("#{id} runstate\n"));
        if let Err(e) = self.fifo_write(&line) {
            panic!("control fence #{id}: cannot write the FIFO: {e}");
        }
        self.expect_event_after(
            mark,
            &format!("the result of control fence #{id}"),
            |e| matches!(e, Event::CommandResult { id: Some(i), .. } if *i == id),
            LONG,
        );
        id
    }

    /// Run `pbxctl --runtime-dir RDIR ARGS...`, bounded by [`PBXCTL_TIMEOUT`].
    pub fn pbxctl(&self, args: &[&str]) -> Output {
        self.pbxctl_bounded(args, PBXCTL_TIMEOUT)
    }

    /// Run `pbxctl --runtime-dir RDIR ARGS...`, bounded by `timeout`.
    pub fn pbxctl_bounded(&self, args: &[&str], timeout: Duration) -> Output {
        pbxctl_in(&self.runtime_dir, args, timeout)
    }

    /// Send a signal to the daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    /// Stop the daemon with SIGTERM and return its exit status; SIGKILL after
    /// [`STOP_TIMEOUT`] (the status then shows the kill).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }

    /// Kill the daemon with SIGKILL (a crash) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the daemon (SIGTERM; nothing to do after [`Switch::kill9`]) and start it
    /// again on the same directories and the same UDP port, as an operator's restart
    /// would; waits until it is ready. Panics with the log when it fails.
    pub fn restart(&mut self) {
        if let Some(st) = self.stop() {
            let mut l = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.log_path)
                .ok();
            if let Some(l) = l.as_mut() {
                let _ = writeln!(l, "===== harness: daemon exited: {st} =====");
            }
        }
        // Read what the old block still holds before it goes away.
        self.poll_events();
        self.reader = None;
        self.config = pin_listen_port(&self.config, self.addr.port());
        let bin = coventryd_bin();
        if let Err(e) = self.spawn(&bin) {
            panic!("restart failed: {e}");
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_dump(&self) -> String {
        format!(
            "----- coventryd log ({}) -----\n{}----- end of coventryd log -----",
            self.log_path.display(),
            self.log()
        )
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let status = self.stop();
        if std::thread::panicking() {
            eprintln!("coventryd exit status: {status:?}");
            eprintln!("events:\n{}", self.events_text(0));
            eprintln!("{}", self.log_dump());
        }
        if std::env::var_os("COVENTRY_KEEP_TMP").is_some_and(|v| !v.is_empty()) {
            if let Some(d) = self.dir.take() {
                eprintln!("kept {}", d.keep().display());
            }
        }
    }
}

/// One slot of the call table with its raw fields, for tests that check what the
/// daemon wrote (clients read `coventry_shared::client::view::CallView` instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// Switch-local call number.
    pub id: u32,
    /// `call_state::*`.
    pub state: u8,
    /// Rings so far.
    pub ring_count: u8,
    /// Final SIP status once ended.
    pub cause: u16,
    /// How it ended (meaningful once ended).
    pub outcome: coventry_shared::event::CallOutcome,
    /// Caller.
    pub from: String,
    /// Callee as dialled.
    pub to: String,
    /// SIP Call-ID (the caller's, cut to fit).
    pub call_id: String,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Answer, ms since the epoch (0: not answered).
    pub answer_ms: u64,
    /// End, ms since the epoch (0: not ended).
    pub end_ms: u64,
}

impl CallRow {
    /// Decode a call-table slot.
    pub fn of(e: &coventry_shared::stateblock::CallEntry) -> CallRow {
        CallRow {
            id: e.id,
            state: e.state,
            ring_count: e.ring_count,
            cause: e.cause,
            outcome: coventry_shared::event::CallOutcome::from_u16(e.outcome),
            from: get_str(&e.from),
            to: get_str(&e.to),
            call_id: get_str(&e.call_id),
            start_ms: e.start_ms,
            answer_ms: e.answer_ms,
            end_ms: e.end_ms,
        }
    }

    /// The state's name (`dialing`, `ringing`, `answered`, `ended`).
    pub fn state_name(&self) -> &'static str {
        coventry_shared::event::CallPhase::from_u16(u16::from(self.state)).name()
    }
}

/// Call-table and bitmap reads on a [`Snapshot`].
pub trait SnapshotExt {
    /// Every slot of the call table that holds a call, by the clients' one rule
    /// (`coventry_shared::client::view::slot_in_use`).
    fn calls(&self) -> Vec<CallRow>;
    /// The slot whose SIP Call-ID is `call_id` (or a prefix of it, the field is cut).
    fn call_by_sip_id(&self, call_id: &str) -> Option<CallRow>;
    /// The ringing bit of `ext`.
    fn is_ringing(&self, ext: u16) -> bool;
    /// The busy bit of `ext`.
    fn is_busy(&self, ext: u16) -> bool;
    /// Calls and the ringing/busy bits of the configured extensions, for failure
    /// messages.
    fn calls_text(&self) -> String;
    /// The forward / DND settings of `ext` as published (entry and bits).
    fn settings_of(&self, ext: u16) -> ExtSettingsRow;
}

/// The forward and DND settings of one extension as the state block shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtSettingsRow {
    /// The dnd bit.
    pub dnd: bool,
    /// The forwarded bit.
    pub forwarded: bool,
    /// `ExtEntry::forward_always` (empty: none).
    pub always: String,
    /// `ExtEntry::forward_busy`.
    pub busy: String,
    /// `ExtEntry::forward_noanswer`.
    pub noanswer: String,
    /// `ExtEntry::dnd_until_ms` (0: never).
    pub dnd_until_ms: u64,
    /// `ExtEntry::forward_until_ms` (0: never).
    pub forward_until_ms: u64,
}

impl SnapshotExt for Snapshot {
    fn calls(&self) -> Vec<CallRow> {
        self.body
            .calls
            .iter()
            .filter(|c| coventry_shared::client::view::slot_in_use(c))
            .map(CallRow::of)
            .collect()
    }

    fn call_by_sip_id(&self, call_id: &str) -> Option<CallRow> {
        self.calls()
            .into_iter()
            .find(|c| !c.call_id.is_empty() && call_id.starts_with(&c.call_id))
    }

    fn is_ringing(&self, ext: u16) -> bool {
        self.header
            .plan
            .index_of(ext)
            .is_some_and(|i| coventry_shared::stateblock::get_bit(&self.body.bitmaps.ringing, i))
    }

    fn is_busy(&self, ext: u16) -> bool {
        self.header
            .plan
            .index_of(ext)
            .is_some_and(|i| coventry_shared::stateblock::get_bit(&self.body.bitmaps.busy, i))
    }

    fn calls_text(&self) -> String {
        let mut s = String::from("call table:\n");
        for c in self.calls() {
            let _ = writeln!(s, "  {c:?} ({})", c.state_name());
        }
        let mut ringing = Vec::new();
        let mut busy = Vec::new();
        for n in self.header.plan.numbers() {
            if self.is_ringing(n) {
                ringing.push(n);
            }
            if self.is_busy(n) {
                busy.push(n);
            }
        }
        let _ = writeln!(s, "ringing bits: {ringing:?}; busy bits: {busy:?}");
        s
    }

    fn settings_of(&self, ext: u16) -> ExtSettingsRow {
        let Some(i) = self.header.plan.index_of(ext) else {
            return ExtSettingsRow::default();
        };
        let b = &self.body.bitmaps;
        let mut row = ExtSettingsRow {
            dnd: coventry_shared::stateblock::get_bit(&b.dnd, i),
            forwarded: coventry_shared::stateblock::get_bit(&b.forwarded, i),
            ..ExtSettingsRow::default()
        };
        if let Some(e) = self.ext(ext) {
            row.always = get_str(&e.forward_always);
            row.busy = get_str(&e.forward_busy);
            row.noanswer = get_str(&e.forward_noanswer);
            row.dnd_until_ms = e.dnd_until_ms;
            row.forward_until_ms = e.forward_until_ms;
        }
        row
    }
}

/// A `CallRecord` event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Switch-local call number.
    pub call: u32,
    /// Caller.
    pub from: String,
    /// Callee as dialled.
    pub to: String,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Answer (0: never answered).
    pub answer_ms: u64,
    /// End.
    pub end_ms: u64,
    /// Outcome.
    pub outcome: coventry_shared::event::CallOutcome,
    /// SIP status behind it.
    pub status: u16,
}

impl Record {
    /// The record in `e`, if it is one.
    pub fn of(e: &Event) -> Option<Record> {
        match e {
            Event::CallRecord {
                call,
                from,
                to,
                start_ms,
                answer_ms,
                end_ms,
                outcome,
                status,
            } => Some(Record {
                call: *call,
                from: from.clone(),
                to: to.clone(),
                start_ms: *start_ms,
                answer_ms: *answer_ms,
                end_ms: *end_ms,
                outcome: *outcome,
                status: *status,
            }),
            _ => None,
        }
    }
}

impl Switch {
    /// Poll the call table until a row satisfies `f` (bounded by `timeout`);
    /// panics naming `what` with the table and the events.
    pub fn wait_call_for(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&CallRow) -> bool,
    ) -> CallRow {
        match poll_until(timeout, || self.snapshot().calls().into_iter().find(&f)) {
            Some(c) => c,
            None => panic!(
                "call table: no call {what} within {timeout:?}\n{}events:\n{}",
                self.snapshot().calls_text(),
                self.events_text(0)
            ),
        }
    }

    /// [`Switch::wait_call_for`] bounded by [`T`].
    pub fn wait_call(&self, what: &str, f: impl Fn(&CallRow) -> bool) -> CallRow {
        self.wait_call_for(what, T, f)
    }

    /// Wait (bounded by [`T`]) until the call with SIP Call-ID `call_id` is in
    /// `state` (`call_state::*`).
    pub fn wait_call_state(&self, call_id: &str, state: u8) -> CallRow {
        let name = coventry_shared::event::CallPhase::from_u16(u16::from(state)).name();
        self.wait_call(&format!("with Call-ID {call_id} in state {name}"), |c| {
            !c.call_id.is_empty() && call_id.starts_with(&c.call_id) && c.state == state
        })
    }

    /// Wait (bounded by [`T`]) until the ringing and busy bits of `ext` are as
    /// given; panics with the table.
    pub fn wait_bits(&self, ext: u16, ringing: bool, busy: bool) -> Snapshot {
        match poll_until(T, || {
            let s = self.snapshot();
            (s.is_ringing(ext) == ringing && s.is_busy(ext) == busy).then_some(s)
        }) {
            Some(s) => s,
            None => panic!(
                "bitmaps: expected {ext} ringing={ringing} busy={busy}\n{}",
                self.snapshot().calls_text()
            ),
        }
    }

    /// Wait (bounded by [`T`]) until the published settings of `ext` satisfy `f`
    /// (the daemon publishes after it answered); panics with `what` and the row.
    pub fn wait_settings(
        &self,
        ext: u16,
        what: &str,
        f: impl Fn(&ExtSettingsRow) -> bool,
    ) -> ExtSettingsRow {
        match poll_until(T, || {
            let r = self.snapshot().settings_of(ext);
            f(&r).then_some(r)
        }) {
            Some(r) => r,
            None => panic!(
                "state block: settings of {ext} never became {what}: {:?}",
                self.snapshot().settings_of(ext)
            ),
        }
    }

    /// The first call record after `mark` for a call from `from` to `to`, waiting
    /// up to `timeout`; panics with the events.
    pub fn expect_record(&self, mark: usize, from: &str, to: &str, timeout: Duration) -> Record {
        let e = self.expect_event_after(
            mark,
            &format!("CallRecord {from} -> {to}"),
            |e| matches!(e, Event::CallRecord { from: f, to: t, .. } if f == from && t == to),
            timeout,
        );
        match Record::of(&e) {
            Some(r) => r,
            None => panic!("not a record: {e:?}"),
        }
    }

    /// Every `CallState` event after `mark` for call number `call`: (phase, rings).
    pub fn call_states(
        &self,
        mark: usize,
        call: u32,
    ) -> Vec<(coventry_shared::event::CallPhase, u8)> {
        self.events()
            .iter()
            .skip(mark)
            .filter_map(|r| match &r.event {
                Event::CallState {
                    call: c,
                    phase,
                    rings,
                    ..
                } if *c == call => Some((*phase, *rings)),
                _ => None,
            })
            .collect()
    }
}

/// The standard wait for something the switch should do at once.
pub const T: Duration = Duration::from_secs(5);

/// A bound that only stops a hung test: for waits whose length depends on the
/// machine (many transactions, a slow tool), never a claim about speed.
pub const LONG: Duration = Duration::from_secs(60);

/// Request ids of [`Switch::control_fence`] (far from any a test writes).
pub const FENCE_IDS: u64 = 9_000_000_000;

/// Call-IDs of the fences' OPTIONS start with this.
const FENCE_CALL_ID: &str = "fence-";

/// A fence through the switch for a socket: an OPTIONS to `server` from `sock`
/// (resent like Timer E until answered, bounded by [`LONG`]), and every datagram
/// that `sock` received before the fence's final answer, as text.
///
/// The switch serves one source's datagrams in order, and what it sends to an
/// address it sends in order: once the answer is here, everything the switch did
/// for that socket's earlier datagrams has happened and everything it sent to the
/// socket before has arrived. The read timeout of `sock` is changed.
pub fn raw_fence(sock: &UdpSocket, server: SocketAddr) -> Vec<String> {
    let me = match sock.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("fence: local_addr: {e}"),
    };
    let call_id = ua::unique(FENCE_CALL_ID);
    let req = format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:fence@{me}>;tag={}\r\nTo: <sip:{server}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ua::unique("z9hG4bKfence"),
        ua::unique("f")
    );
    let deadline = Instant::now() + LONG;
    let mut interval = Duration::from_millis(500);
    let mut resend = Instant::now();
    let mut before = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        if now >= deadline {
            panic!("fence from {me}: no answer to its OPTIONS within {LONG:?}");
        }
        if now >= resend {
            if let Err(e) = sock.send_to(req.as_bytes(), server) {
                panic!("fence from {me}: send: {e}");
            }
            resend = now + interval;
            interval = (interval * 2).min(Duration::from_secs(4));
        }
        let wait = resend
            .min(deadline)
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if let Err(e) = sock.set_read_timeout(Some(wait)) {
            panic!("fence from {me}: set_read_timeout: {e}");
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.contains(&call_id) && text.starts_with("SIP/2.0 ") {
                    if !text.starts_with("SIP/2.0 1") {
                        return before;
                    }
                } else if !is_fence_answer(&text) {
                    before.push(text);
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(e) => panic!("fence from {me}: recv: {e}"),
        }
    }
}

/// Whether `text` answers an earlier fence (a late copy, when a fence's OPTIONS
/// was resent and both were answered).
fn is_fence_answer(text: &str) -> bool {
    text.starts_with("SIP/2.0 ")
        && text.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            (l.starts_with("call-id:") || l.starts_with("i:")) && l.contains(FENCE_CALL_ID)
        })
}

/// [`raw_fence`] for an in-test phone: an OPTIONS from its socket, answered, so
/// every request and response the switch sent the phone before is in its queues.
/// Returns the responses that came before the fence's answer (taken out of the
/// phone's queue; earlier fences' late copies are dropped). Requests stay queued
/// for [`ua::Ua::recv_request`] and `recv_method`.
pub fn sip_fence(phone: &ua::Ua) -> Vec<ua::Msg> {
    let call_id = ua::unique(FENCE_CALL_ID);
    let uri = format!("sip:{}", phone.server);
    let req = phone.build("OPTIONS", &uri, &uri, &call_id, 1, &[], &[]);
    // The phone's own reader resends it (Timer E) until it is answered.
    phone.send_raw(&req);
    let txn = phone.retransmit(&req);
    let deadline = Instant::now() + LONG;
    let mut before = Vec::new();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Some(m) = phone.recv_response(wait) else {
            panic!(
                "fence from {} ({}): no answer to its OPTIONS within {LONG:?}",
                phone.user,
                phone.local_addr()
            );
        };
        match m.call_id() {
            Some(c) if c == call_id => {
                if m.status().unwrap_or(0) >= 200 {
                    phone.stop_retransmitting(txn);
                    return before;
                }
            }
            Some(c) if c.starts_with(FENCE_CALL_ID) => {}
            _ => before.push(m),
        }
    }
}

/// After a [`sip_fence`] on `phone`: the `method` request the switch sent it
/// before the fence, if any (other requests stay queued). For proving that
/// something did not reach a phone: call it once whatever might have sent the
/// request has been answered. Responses that come before the fence's answer are
/// dropped (as the phone's next transaction would drop them): do not use it while
/// the phone waits for a response.
pub fn fenced_request(phone: &ua::Ua, method: &str) -> Option<ua::Msg> {
    sip_fence(phone);
    // Everything is queued by now: this only takes it off the queue.
    phone.recv_method(method, Duration::from_millis(50))
}

/// Assert that the switch still works: a fresh phone registers extension `to`
/// (SHA-256), extension `from` sends it a text, the switch answers 200 and the phone
/// receives exactly that text. Both must be configured (secrets from [`secret`]).
pub fn check_registers_and_delivers(sw: &Switch, from: u16, to: u16) {
    let mut phone = ua::Ua::ext(sw.addr(), to);
    phone.register(300);
    let mut sender = ua::Ua::ext(sw.addr(), from);
    let text = format!("still alive {}", ua::unique(""));
    let ex = sender.message_exchange(&to.to_string(), "text/plain", text.as_bytes());
    assert_eq!(
        ex.status(),
        200,
        "the switch no longer delivers {from} -> {to}: {:?}",
        ex.response.as_ref().map(ua::Msg::dump)
    );
    let got = phone.expect_request("MESSAGE after bad input", T);
    assert_eq!(got.method().as_deref(), Some("MESSAGE"));
    assert_eq!(got.text(), text);
}

/// Run `pbxctl --runtime-dir DIR ARGS...` (no `COVENTRY_RUNTIME_DIR` from the
/// environment), bounded by `timeout`.
pub fn pbxctl_in(dir: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(pbxctl_bin());
    cmd.arg("--runtime-dir").arg(dir).args(args);
    cmd.env_remove("COVENTRY_RUNTIME_DIR");
    match run_bounded(cmd, timeout) {
        Ok(o) => o,
        Err(e) => panic!("cannot run pbxctl: {e}"),
    }
}

/// Replace the port of `[server] listen` in `config` with `port`.
pub fn pin_listen_port(config: &str, port: u16) -> String {
    let mut out = String::new();
    let mut in_server = false;
    for line in config.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_server = t.eq_ignore_ascii_case("[server]");
        }
        let key = t.split('=').next().unwrap_or("").trim();
        if in_server && key.eq_ignore_ascii_case("listen") {
            let val = t.split_once('=').map(|(_, v)| v.trim()).unwrap_or("");
            let host = val.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
            let _ = writeln!(out, "listen = {host}:{port}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Write `line` to the FIFO at `path` in one `write(2)` (see [`Switch::fifo_write`]).
pub fn fifo_write_path(path: &Path, line: &[u8], timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut file = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(path)
        {
            Ok(f) => break f,
            // ENXIO: no reader yet; NotFound: not created yet.
            Err(e)
                if (e.raw_os_error() == Some(nix::libc::ENXIO)
                    || e.kind() == io::ErrorKind::NotFound)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(e),
        }
    };
    let mut rest = line;
    while !rest.is_empty() {
        match file.write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_builds_valid_config() {
        let text = Conf::new(&[21, 22])
            .ext_line(22, "lines = 2")
            .group(100, &[21, 22])
            .section("speed", "9 = 22")
            .section("features", "dnd_on = *55")
            .section("speed", "8 = 21")
            .build();
        let c = coventryd::config::Config::parse(Path::new("t.conf"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.server.realm, "test");
        assert_eq!(c.server.listen.port(), 0);
        assert_eq!(c.lines[&22].lines, 2);
        assert_eq!(c.lines[&21].secret.as_deref(), Some("pw21"));
        assert_eq!(c.groups[&100], vec![21, 22]);
        assert_eq!(c.speed["9"], "22");
        assert_eq!(c.speed["8"], "21");
        assert_eq!(c.features.dnd_on, "*55");
        let text3 = Conf::new(&[210]).digits(3).build();
        let c = coventryd::config::Config::parse(Path::new("t.conf"), &text3)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.plan.digits(), 3);
    }

    #[test]
    fn pins_port() {
        let c = "[server]\nlisten = 127.0.0.1:0\n[21]\nlisten = x\n";
        assert_eq!(
            pin_listen_port(c, 5071),
            "[server]\nlisten = 127.0.0.1:5071\n[21]\nlisten = x\n"
        );
    }

    #[test]
    fn free_ports_are_distinct() {
        let a = free_udp_port();
        let b = free_udp_port();
        assert_ne!(a, b);
        UdpSocket::bind(("127.0.0.1", a)).expect("free");
    }

    #[test]
    fn bounded_run_kills() {
        let mut c = Command::new("sleep");
        c.arg("3600");
        let out = run_bounded(c, Duration::from_millis(200)).expect("run");
        // Killed at its bound (an hour's sleep cannot have ended by itself).
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(nix::libc::SIGKILL),
            "{:?}",
            out.status
        );
    }

    #[test]
    fn fifo_write_does_not_hang_without_reader() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        // It returns (a write that blocked on a FIFO without reader never would):
        // with ENXIO once its own bound is over.
        let e =
            fifo_write_path(&p, b"reload\n", Duration::from_millis(100)).expect_err("no reader");
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENXIO));
    }

    #[test]
    fn bin_dir_is_profile_dir() {
        let d = bin_dir();
        assert!(d.join("deps").is_dir(), "{}", d.display());
    }
}
