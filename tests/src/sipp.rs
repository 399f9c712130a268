//! Running the stock `sipp` (Debian package `sip-tester`) with the scenarios in
//! `tests/scenarios/`.
//!
//! Every run is bounded: `-m` calls, `-timeout` with `-timeout_error`, and a hard
//! kill a few seconds after that. Each run gets its own directory for sipp's error,
//! message and log files (`-trace_err`, `-trace_msg`, `-trace_logs`), which
//! [`SippRun::report`] prints when a test fails.
//!
//! sipp 3.6 answers only the *first* `WWW-Authenticate`/`Proxy-Authenticate` header
//! and only MD5, so tests driving sipp through digest authentication configure the
//! switch with `algorithm = md5`. It also prefixes `sip:` to `-auth_uri`, so pass
//! the digest URI without it ([`Sipp::auth_uri`] strips it).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The sipp binary: `$SIPP` or `sipp` on `PATH`; panics with install advice.
pub fn sipp_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIPP").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("sipp");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "sipp not found on PATH: install the Debian package `sip-tester` \
         (apt-get install sip-tester; scripts/test does this when it is missing)"
    );
}

/// Path of scenario `name` in `tests/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Whether something is bound to UDP `port` on 127.0.0.1 (from /proc/net/udp).
pub fn udp_port_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    let any = format!("00000000:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a == want || a == any)
            })
        })
        .unwrap_or(false)
}

/// A sipp invocation being assembled.
pub struct Sipp {
    scenario: PathBuf,
    remote: Option<SocketAddr>,
    port: u16,
    calls: u32,
    timeout: Duration,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

/// The outcome of a finished sipp.
#[derive(Debug)]
pub struct SippRun {
    /// Exit status (0: every call succeeded; 1: some failed; 255: fatal).
    pub status: ExitStatus,
    /// The command line, for reports.
    pub command: String,
    /// Standard output (the final statistics screen).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// `-trace_err` file: unexpected messages and errors.
    pub errors: String,
    /// `-trace_msg` file: every message sent and received.
    pub messages: String,
    /// `-trace_logs` file: what the scenario's `<log>` actions wrote.
    pub logs: String,
}

impl SippRun {
    /// Whether sipp exited 0 (all calls successful).
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Everything sipp said, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "sipp {}\n$ {}\n--- stderr ---\n{}\n--- errors ---\n{}\n--- messages ---\n{}\n--- logs ---\n{}\n--- stdout (tail) ---\n{}",
            self.status,
            self.command,
            self.stderr,
            self.errors,
            self.messages,
            self.logs,
            tail(&self.stdout, 40)
        )
    }

    /// Panic with the report unless sipp succeeded.
    pub fn assert_success(&self, what: &str) {
        assert!(self.success(), "sipp {what} failed:\n{}", self.report());
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Sipp {
    /// sipp on scenario `name`, one call, 10 s timeout, a fresh local port.
    pub fn new(name: &str) -> Sipp {
        let dir = match tempfile::Builder::new().prefix("coventry-sipp-").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        Sipp {
            scenario: scenario(name),
            remote: None,
            // Free for TCP too: scenarios towards the upstream bind TCP (-t t1).
            port: crate::free_udp_tcp_port(),
            calls: 1,
            timeout: Duration::from_secs(10),
            args: Vec::new(),
            dir,
        }
    }

    /// The peer (client mode).
    pub fn remote(mut self, a: SocketAddr) -> Sipp {
        self.remote = Some(a);
        self
    }

    /// Bind this local port (`-p`) instead of a fresh one: a phone whose address
    /// a peer was told beforehand.
    pub fn on_port(mut self, port: u16) -> Sipp {
        self.port = port;
        self
    }

    /// Local port sipp binds (`-p`).
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// `sip:USER@127.0.0.1:PORT` for sipp's own socket.
    pub fn contact_uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.port)
    }

    /// `-s SERVICE`.
    pub fn service(self, s: &str) -> Sipp {
        self.arg("-s").arg(s)
    }

    /// `-au USER -ap PASSWORD`.
    pub fn auth(self, user: &str, password: &str) -> Sipp {
        self.arg("-au").arg(user).arg("-ap").arg(password)
    }

    /// `-auth_uri URI` (a leading `sip:` is removed: sipp adds it).
    pub fn auth_uri(self, uri: &str) -> Sipp {
        let u = uri.strip_prefix("sip:").unwrap_or(uri).to_string();
        self.arg("-auth_uri").arg(&u)
    }

    /// `-key NAME VALUE`: `[NAME]` in the scenario.
    pub fn key(self, name: &str, value: &str) -> Sipp {
        self.arg("-key").arg(name).arg(value)
    }

    /// `-set NAME VALUE`: a global variable the scenario declares
    /// (`<Global variables="...">`), e.g. the pause lengths `ring`, `hold`, `linger`.
    pub fn set(self, name: &str, value: &str) -> Sipp {
        self.arg("-set").arg(name).arg(value)
    }

    /// `-lost PERCENT`: drop that share of the messages sipp sends and receives
    /// (sipp seeds its generator from the clock; there is no fixed seed).
    pub fn lost(self, percent: u32) -> Sipp {
        self.arg("-lost").arg(&percent.to_string())
    }

    /// Any other argument.
    pub fn arg(mut self, a: &str) -> Sipp {
        self.args.push(a.to_string());
        self
    }

    /// `-m N`.
    pub fn calls(mut self, n: u32) -> Sipp {
        self.calls = n;
        self
    }

    /// `-timeout` (whole seconds, at least 1).
    pub fn timeout(mut self, d: Duration) -> Sipp {
        self.timeout = d;
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(sipp_bin());
        if let Some(r) = self.remote {
            c.arg(r.to_string());
        }
        let d = self.dir.path();
        c.arg("-sf")
            .arg(&self.scenario)
            .args(["-i", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-m")
            .arg(self.calls.to_string())
            .arg("-timeout")
            .arg(self.timeout.as_secs().max(1).to_string())
            .arg("-timeout_error")
            .arg("-trace_err")
            .arg("-error_file")
            .arg(d.join("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(d.join("messages.log"))
            .arg("-trace_logs")
            .arg("-log_file")
            .arg(d.join("logs.log"))
            .arg("-nostdin")
            .args(&self.args)
            .current_dir(d)
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn command_line(&self) -> String {
        let c = self.command();
        let mut s = c.get_program().to_string_lossy().into_owned();
        for a in c.get_args() {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Run to completion (bounded by the timeout plus 10 s).
    pub fn run(self) -> SippRun {
        self.spawn_unchecked().wait()
    }

    fn spawn_unchecked(self) -> SippChild {
        let command = self.command_line();
        let mut child = match self.command().spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start sipp ({command}): {e}"),
        };
        let out = reader(child.stdout.take());
        let err = reader(child.stderr.take());
        let deadline = Instant::now() + self.timeout + Duration::from_secs(10);
        SippChild {
            child: Some(child),
            sipp: self,
            command,
            out: Some(out),
            err: Some(err),
            deadline,
        }
    }

    /// Start in the background (server mode, e.g. a UAS); returns once sipp has
    /// bound its port (bounded: 5 s).
    pub fn spawn(self) -> SippChild {
        let port = self.port;
        let mut c = self.spawn_unchecked();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !udp_port_bound(port) {
            if let Some(ch) = c.child.as_mut() {
                if let Ok(Some(_)) = ch.try_wait() {
                    let r = c.finish();
                    panic!("sipp exited before binding its port:\n{}", r.report());
                }
            }
            if Instant::now() >= deadline {
                let r = c.finish();
                panic!(
                    "sipp did not bind 127.0.0.1:{port} within 5 s:\n{}",
                    r.report()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        c
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut v);
        }
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// A sipp running in the background.
pub struct SippChild {
    child: Option<Child>,
    sipp: Sipp,
    command: String,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    deadline: Instant,
}

impl SippChild {
    /// The port sipp listens on.
    pub fn port(&self) -> u16 {
        self.sipp.port
    }

    /// `sip:USER@127.0.0.1:PORT`.
    pub fn contact_uri(&self, user: &str) -> String {
        self.sipp.contact_uri(user)
    }

    /// Wait for sipp to finish (it is killed at its timeout plus 10 s).
    pub fn wait(mut self) -> SippRun {
        if let Some(c) = self.child.as_mut() {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < self.deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = c.kill();
                        break;
                    }
                }
            }
        }
        self.finish()
    }

    fn finish(&mut self) -> SippRun {
        let status = match self.child.take() {
            Some(mut c) => {
                if !matches!(c.try_wait(), Ok(Some(_))) {
                    let _ = c.kill();
                }
                match c.wait() {
                    Ok(s) => s,
                    Err(e) => panic!("wait for sipp: {e}"),
                }
            }
            None => panic!("sipp already reaped"),
        };
        let stdout = self
            .out
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let stderr = self
            .err
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let read = |n: &str| {
            std::fs::read(self.sipp.dir.path().join(n))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        SippRun {
            status,
            command: self.command.clone(),
            stdout,
            stderr,
            errors: read("errors.log"),
            messages: read("messages.log"),
            logs: read("logs.log"),
        }
    }
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One message in sipp's `-trace_msg` file.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Sent by sipp (else received).
    pub sent: bool,
    /// The datagram, exactly.
    pub bytes: Vec<u8>,
}

impl Traced {
    /// The first line.
    pub fn start_line(&self) -> String {
        String::from_utf8_lossy(&self.bytes)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// Parsed with the in-test UA's parser.
    pub fn msg(&self) -> crate::ua::Msg {
        let src = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        match crate::ua::Msg::parse(&self.bytes, src) {
            Ok(m) => m,
            Err(e) => panic!(
                "sipp traced an unparseable message ({e}):\n{}",
                String::from_utf8_lossy(&self.bytes)
            ),
        }
    }
}

/// Every message in a `-trace_msg` file, in order: sipp writes
/// `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, a blank
/// line, then exactly N bytes.
pub fn trace_messages(trace: &str) -> Vec<Traced> {
    let b = trace.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let rest = &trace[i..];
        let sent_at = rest.find("message sent (");
        let recv_at = rest.find("message received [");
        let (at, sent) = match (sent_at, recv_at) {
            (Some(a), Some(r)) if a < r => (a, true),
            (Some(a), None) => (a, true),
            (_, Some(r)) => (r, false),
            (None, None) => break,
        };
        let start = i + at;
        let digits_at = start
            + if sent {
                "message sent (".len()
            } else {
                "message received [".len()
            };
        let n: String = trace[digits_at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let Ok(n) = n.parse::<usize>() else {
            i = digits_at;
            continue;
        };
        let Some(nl) = trace[digits_at..].find("\n\n") else {
            break;
        };
        let body = digits_at + nl + 2;
        let end = (body + n).min(b.len());
        out.push(Traced {
            sent,
            bytes: b[body..end].to_vec(),
        });
        i = end;
    }
    out
}

impl SippRun {
    /// Every message sipp sent or received.
    pub fn traced(&self) -> Vec<Traced> {
        trace_messages(&self.messages)
    }

    /// Received messages whose first line starts with `start` (`INVITE `, `SIP/2.0 200`).
    pub fn received(&self, start: &str) -> Vec<crate::ua::Msg> {
        self.traced()
            .into_iter()
            .filter(|t| !t.sent && t.start_line().starts_with(start))
            .map(|t| t.msg())
            .collect()
    }

    /// Sent messages whose first line starts with `start`.
    pub fn sent(&self, start: &str) -> Vec<crate::ua::Msg> {
        self.traced()
            .into_iter()
            .filter(|t| t.sent && t.start_line().starts_with(start))
            .map(|t| t.msg())
            .collect()
    }
}

/// Start a server-mode sipp phone (`uas_message.xml`, one MESSAGE, 15 s) for
/// extension `ext` and register its contact with a sipp REGISTER (sipp answers
/// the first challenge only, and only MD5: the switch's default). Returns the running phone;
/// [`SippChild::wait`] gives its outcome and [`logged`] what it received.
pub fn sipp_phone(sw: &crate::Switch, ext: u16) -> SippChild {
    register_phone(
        sw,
        ext,
        Sipp::new("uas_message.xml").timeout(Duration::from_secs(15)),
    )
}

/// Start the server-mode sipp `uas` (any phone scenario) and register its contact
/// `sip:EXT@127.0.0.1:PORT` for extension `ext` with a sipp REGISTER (MD5, the
/// switch's default offer). Returns the running phone.
pub fn register_phone(sw: &crate::Switch, ext: u16, uas: Sipp) -> SippChild {
    let uas = uas.spawn();
    let contact = uas.contact_uri(&ext.to_string());
    Sipp::new("uac_register.xml")
        .remote(sw.addr())
        .key("ext", &ext.to_string())
        .key("contact", &contact)
        .key("expires", "600")
        .auth(&ext.to_string(), &crate::secret(ext))
        .auth_uri(&sw.host())
        .run()
        .assert_success("REGISTER of the sipp phone's contact");
    sw.wait_state("the sipp phone registered", crate::T, |s| {
        s.is_registered(ext)
    });
    uas
}

/// The value of a `key: value` line that `uas_message.xml` logged (`from`, `type`,
/// `text`), trimmed.
pub fn logged<'a>(logs: &'a str, key: &str) -> Option<&'a str> {
    logs.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}
