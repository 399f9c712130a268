//! A real linphonec (Debian linphone-cli) driven through its command line: a
//! private home and configuration in a temp dir, `soundcard use files` (no
//! audio device; an ALSA null device makes it grow without bound), commands on
//! its standard input, its output collected for bounded waits, and the process
//! ended on drop (also on panic).

use crate::poll_until;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Path of linphonec (`LINPHONEC` overrides).
pub fn linphonec_bin() -> PathBuf {
    std::env::var_os("LINPHONEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("linphonec"))
}

/// A running linphonec.
pub struct Linphone {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<String>>,
    _home: tempfile::TempDir,
}

impl Linphone {
    /// Start linphonec with a random local SIP port (UDP only) and audio from files.
    pub fn start() -> Linphone {
        let home = tempfile::Builder::new()
            .prefix("coventry-linphone-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let rc = home.path().join("linphonerc");
        std::fs::write(&rc, "[sip]\nsip_port=-1\nsip_tcp_port=0\nsip_tls_port=0\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(home.path().join(".local/share/linphone"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new(linphonec_bin())
            .arg("-c")
            .arg(&rc)
            .env("HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("linphonec: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let out = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut o) = sink.lock() {
                    o.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut l = Linphone {
            child: Some(child),
            stdin,
            out,
            _home: home,
        };
        l.command("soundcard use files");
        l.wait_for("Using wav files", Duration::from_secs(10));
        l
    }

    /// Type one command line.
    pub fn command(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.out.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Wait up to `timeout` for `needle` in its output (counting from the start);
    /// panics with the output.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        self.wait_count(needle, 1, timeout);
    }

    /// Wait until `needle` appeared `n` times.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: Duration) {
        if poll_until(timeout, || {
            (self.output().matches(needle).count() >= n).then_some(())
        })
        .is_none()
        {
            panic!(
                "linphonec: {needle:?} not seen {n} time(s) within {timeout:?}; output:\n{}",
                self.output()
            );
        }
    }

    /// Register as `ext` with `secret` at the switch `addr` (`host:port`).
    pub fn register(&mut self, ext: u16, addr: &str, secret: &str) {
        self.command(&format!("register sip:{ext}@{addr} sip:{addr} {secret}"));
        let until = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            self.command("status register");
            std::thread::sleep(Duration::from_millis(300));
            if self.output().contains("registered, identity=") {
                return;
            }
            if std::time::Instant::now() > until {
                panic!("linphonec did not register:\n{}", self.output());
            }
        }
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        self.command("quit");
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            if poll_until(Duration::from_secs(3), || c.try_wait().ok().flatten()).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
