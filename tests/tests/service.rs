//! coventryd under a service manager: with `NOTIFY_SOCKET` (a datagram socket of
//! the test, as systemd gives one) it says READY=1 once it listens, WATCHDOG=1
//! at half of `WATCHDOG_USEC`, RELOADING=1 then READY=1 around a SIGHUP reload,
//! and STOPPING=1 on SIGTERM.
#![allow(clippy::unwrap_used)]

use coventry_tests::{coventryd_bin, poll_until, Conf, T};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon, stopped with SIGKILL if the test ends before it does.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Notifications received within `wait`, until one contains `want`.
fn until(sock: &UnixDatagram, want: &str, wait: Duration) -> Vec<String> {
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = m.contains(want);
                got.push(m);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    got
}

#[test]
fn the_switch_tells_systemd_ready_alive_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let conf = dir.path().join("coventry.conf");
    std::fs::write(&conf, Conf::new(&[21]).build()).unwrap();
    // systemd names the watched process in WATCHDOG_PID: the shell's own pid,
    // which exec hands on to coventryd.
    let child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(coventryd_bin())
        .arg("--config")
        .arg(&conf)
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut d = Daemon(child);
    let pid = Pid::from_raw(d.0.id() as i32);

    let got = until(&sock, "READY=1", T);
    assert!(
        got.iter()
            .any(|m| m.contains("READY=1") && m.contains("STATUS=listening on")),
        "{got:?}"
    );
    // Every 200 ms (half of WATCHDOG_USEC); the bound only stops a hung test.
    let got = until(&sock, "WATCHDOG=1", T);
    assert!(
        got.iter().any(|m| m.contains("WATCHDOG=1")),
        "watchdog pets: {got:?}"
    );

    kill(pid, Signal::SIGHUP).unwrap();
    let got = until(&sock, "READY=1", T);
    let reloading = got.iter().position(|m| m.contains("RELOADING=1"));
    let ready = got.iter().rposition(|m| m.contains("READY=1"));
    assert!(reloading.is_some() && ready > reloading, "{got:?}");

    kill(pid, Signal::SIGTERM).unwrap();
    let got = until(&sock, "STOPPING=1", T);
    assert!(got.iter().any(|m| m.contains("STOPPING=1")), "{got:?}");
    let st = poll_until(T, || d.0.try_wait().unwrap()).expect("it stops");
    assert!(st.success());
}

#[test]
fn with_syslog_the_lines_go_to_the_syslog_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let conf = dir.path().join("coventry.conf");
    std::fs::write(&conf, Conf::new(&[21]).build()).unwrap();
    let child = Command::new(coventryd_bin())
        .arg("--config")
        .arg(&conf)
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--syslog")
        .arg(&sock_path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon(child);
    // RFC 3164: <PRI>TIMESTAMP coventryd[PID]: TEXT, facility daemon (3).
    let got = until(&sock, "listening on", T);
    let line = got
        .iter()
        .find(|m| m.contains("listening on"))
        .unwrap_or_else(|| panic!("{got:?}"));
    assert!(line.starts_with("<30>"), "daemon.info: {line}");
    assert!(
        line.contains(&format!("coventryd[{}]: ", d.0.id())),
        "{line}"
    );
}
