//! Running a real baresip (Debian package `baresip-core`) as a phone under test.
//!
//! Each [`Baresip`] gets a private configuration directory in a temporary directory
//! (modules g711, ausine, aufile, account, menu, ctrl_tcp, contact), listens for SIP
//! on a free port of 127.0.0.1 (or on an address in a network namespace,
//! [`Baresip::start_in_netns`]) and is driven through its `ctrl_tcp` module: netstring
//! JSON commands on a free TCP port, with responses and events read by a thread.
//! Every wait is bounded; the process is killed on drop (also on panic), and
//! failure messages carry baresip's output.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{free_udp_port, poll_until};

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free TCP port: {e}"))
}

/// The baresip binary: `$BARESIP` or `baresip`; panics with install advice.
pub fn baresip_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BARESIP").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = PathBuf::from(dir).join("baresip");
        if p.is_file() {
            return p;
        }
    }
    panic!("baresip not found: install the Debian package `baresip-core` (scripts/test does)");
}

/// The `config` file of a baresip listening for SIP on `sip_port` and for control
/// on `ctrl_port`, playing a sine and recording what it hears to `wav`.
pub fn config_text(sip_port: u16, ctrl_port: u16, wav: &str) -> String {
    config_text_at(IpAddr::from([127, 0, 0, 1]), sip_port, ctrl_port, wav)
}

/// [`config_text`] listening (SIP and control) on `ip`.
pub fn config_text_at(ip: IpAddr, sip_port: u16, ctrl_port: u16, wav: &str) -> String {
    format!(
        "module_path /usr/lib/baresip/modules\n\
         sip_listen {ip}:{sip_port}\n\
         audio_source ausine,440\n\
         ausrc_srate 48000\n\
         auplay_srate 48000\n\
         ausrc_channels 2\n\
         auplay_channels 2\n\
         audio_player aufile,{wav}\n\
         audio_alert aufile,{wav}.alert\n\
         module stdio.so\n\
         module g711.so\n\
         module ausine.so\n\
         module aufile.so\n\
         module_app account.so\n\
         module_app contact.so\n\
         module_app menu.so\n\
         module_app ctrl_tcp.so\n\
         ctrl_tcp_listen {ip}:{ctrl_port}\n"
    )
}

/// A running baresip with its private configuration directory.
pub struct Baresip {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ctrl: Option<TcpStream>,
    events: Arc<Mutex<Vec<Value>>>,
    /// The SIP port it listens on.
    pub sip_port: u16,
    ip: IpAddr,
}

/// Where a baresip runs: on 127.0.0.1 here, or in a network namespace.
struct Place {
    /// `ip netns` name, when in a namespace.
    ns: Option<String>,
    ip: IpAddr,
    sip_port: u16,
    ctrl_port: u16,
}

/// Baresips started in namespaces by this process (their ports stay apart).
static IN_NETNS: AtomicU16 = AtomicU16::new(0);

impl Baresip {
    /// Start baresip with `accounts` as its accounts file (one line per account,
    /// e.g. `<sip:10@127.0.0.1:5060>;auth_pass=SECRET`).
    pub fn start(accounts: &str) -> Baresip {
        Baresip::start_with_contacts(accounts, "")
    }

    /// Like [`Baresip::start`], with `contacts` as its contacts file (one
    /// `"Name" <sip:...>` per line; the first is the current contact, the one
    /// `message` texts).
    pub fn start_with_contacts(accounts: &str, contacts: &str) -> Baresip {
        let sip_port = free_udp_port();
        // baresip also listens for SIP over TLS on the SIP port + 1.
        let ctrl_port = std::iter::repeat_with(free_tcp_port)
            .take(100)
            .find(|&p| p != sip_port.wrapping_add(1))
            .unwrap_or_else(|| panic!("no free TCP port for ctrl_tcp"));
        let place = Place {
            ns: None,
            ip: IpAddr::from([127, 0, 0, 1]),
            sip_port,
            ctrl_port,
        };
        Baresip::launch(accounts, contacts, place)
    }

    /// Start baresip inside the network namespace `ns` (`ip netns` name),
    /// listening on `ip` there (SIP and control, on ports of its own in that
    /// namespace), with `accounts` as its accounts file. Its control connection
    /// is made from inside the namespace.
    pub fn start_in_netns(ns: &str, ip: IpAddr, accounts: &str) -> Baresip {
        let n = IN_NETNS.fetch_add(1, Ordering::Relaxed) % 1000;
        let place = Place {
            ns: Some(ns.to_string()),
            ip,
            sip_port: 20_000 + n * 4,
            ctrl_port: 20_002 + n * 4,
        };
        Baresip::launch(accounts, "", place)
    }

    fn launch(accounts: &str, contacts: &str, place: Place) -> Baresip {
        let Place {
            ns,
            ip,
            sip_port,
            ctrl_port,
        } = place;
        let dir = tempfile::Builder::new()
            .prefix("coventry-baresip-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let wav = dir.path().join("heard.wav");
        let conf = config_text_at(ip, sip_port, ctrl_port, &wav.display().to_string());
        std::fs::write(dir.path().join("config"), conf).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("accounts"), accounts).unwrap_or_else(|e| panic!("{e}"));
        if !contacts.is_empty() {
            std::fs::write(dir.path().join("contacts"), contacts).unwrap_or_else(|e| panic!("{e}"));
        }
        let log = std::fs::File::create(dir.path().join("log")).unwrap_or_else(|e| panic!("{e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = match &ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(baresip_bin());
                c
            }
            None => Command::new(baresip_bin()),
        };
        let child = cmd
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("baresip: {e}"));
        let mut b = Baresip {
            child: Some(child),
            ctrl: None,
            dir,
            events: Arc::new(Mutex::new(Vec::new())),
            sip_port,
            ip,
        };
        let connect = || match &ns {
            Some(ns) => {
                crate::building::in_netns(ns, move || TcpStream::connect((ip, ctrl_port))).ok()
            }
            None => TcpStream::connect((ip, ctrl_port)).ok(),
        };
        match poll_until(Duration::from_secs(10), connect) {
            Some(c) => b.ctrl = Some(c),
            None => panic!(
                "baresip's ctrl_tcp never listened on {ip}:{ctrl_port}\nlog:\n{}",
                b.log()
            ),
        }
        b.spawn_reader();
        b
    }

    fn spawn_reader(&mut self) {
        let mut s = match self.ctrl.as_ref().map(TcpStream::try_clone) {
            Some(Ok(s)) => s,
            Some(Err(e)) => panic!("{e}"),
            None => panic!("baresip: no control connection"),
        };
        let events = Arc::clone(&self.events);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                // netstrings: LEN ':' DATA ','
                while let Some(colon) = buf.iter().position(|&c| c == b':') {
                    let Some(len) = std::str::from_utf8(&buf[..colon])
                        .ok()
                        .and_then(|t| t.parse::<usize>().ok())
                    else {
                        buf.clear();
                        break;
                    };
                    if buf.len() < colon + 1 + len + 1 {
                        break;
                    }
                    let data = buf[colon + 1..colon + 1 + len].to_vec();
                    buf.drain(..colon + 1 + len + 1);
                    if let Ok(v) = serde_json::from_slice::<Value>(&data) {
                        if let Ok(mut e) = events.lock() {
                            e.push(v);
                        }
                    }
                }
            }
        });
    }

    /// Send a command (a menu long command such as `dial`, `accept`, `hangup`).
    pub fn command(&mut self, command: &str, params: &str) {
        let body =
            serde_json::json!({"command": command, "params": params, "token": command}).to_string();
        let frame = format!("{}:{},", body.len(), body);
        let sent = match self.ctrl.as_mut() {
            Some(c) => c.write_all(frame.as_bytes()),
            None => Err(std::io::Error::other("no control connection")),
        };
        sent.unwrap_or_else(|e| panic!("ctrl_tcp write: {e}\n{}", self.log()));
    }

    /// Wait up to `timeout` for an event of `kind` (e.g. `REGISTER_OK`,
    /// `CALL_ESTABLISHED`, `CALL_CLOSED`, `CALL_INCOMING`); panics with the log.
    pub fn wait_event(&self, kind: &str, timeout: Duration) -> Value {
        poll_until(timeout, || {
            self.events.lock().ok().and_then(|e| {
                e.iter()
                    .find(|v| v.get("type").and_then(Value::as_str) == Some(kind))
                    .cloned()
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "baresip: no {kind} event within {timeout:?}\nevents: {:?}\nlog:\n{}",
                self.events.lock().map(|e| e.clone()).unwrap_or_default(),
                self.log()
            )
        })
    }

    /// Send `command` and wait for its response's `data` text; panics with the log.
    pub fn request(&mut self, command: &str, params: &str) -> String {
        self.clear_events();
        self.command(command, params);
        let v = poll_until(Duration::from_secs(5), || {
            self.events.lock().ok().and_then(|e| {
                e.iter()
                    .find(|v| v.get("token").and_then(Value::as_str) == Some(command))
                    .cloned()
            })
        })
        .unwrap_or_else(|| panic!("baresip: no response to {command}\nlog:\n{}", self.log()));
        v.get("data")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// Wait up to `timeout` until `reginfo` reports the account registered (`OK`);
    /// events sent before the control connection opened are lost, so this asks.
    pub fn wait_registered(&mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let info = self.request("reginfo", "");
            if info.contains("OK ") {
                return;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "baresip did not register within {timeout:?}: {info}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The events seen so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Forget the events seen so far.
    pub fn clear_events(&self) {
        if let Ok(mut e) = self.events.lock() {
            e.clear();
        }
    }

    /// Everything baresip printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Its private configuration directory (config, accounts, log, recordings).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The address it listens on for SIP.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.sip_port)
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
