//! Programs on a real pseudo-terminal, for the tests of how they end with it.
//!
//! [`PtyChild`] opens a pty of a given size, starts a program with the pty's slave
//! side as its standard input and output (and, with [`PtyOpts::ctty`], as its
//! controlling terminal, through util-linux `setsid --ctty`: then closing the pty
//! sends it SIGHUP like an SSH drop does), and keeps reading what it draws on the
//! master side. A test can then type, hang up (close the master), stop the
//! terminal's output (XOFF, so the program blocks writing), signal the program, and
//! wait — bounded — for it to be gone. Dropping a `PtyChild` kills what is still
//! running and closes everything, also when the test failed.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{tcgetattr, tcsetattr, InputFlags, SetArg};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much of what the program drew is kept (the newest bytes).
const KEEP_OUTPUT: usize = 256 * 1024;

/// How a program is started on its pty.
#[derive(Debug, Clone, Copy)]
pub struct PtyOpts {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// Make the pty the program's controlling terminal (in a session of its own).
    pub ctty: bool,
    /// Send its stderr to a pipe the test reads ([`PtyChild::stderr_text`]) instead
    /// of the pty.
    pub stderr_pipe: bool,
}

impl Default for PtyOpts {
    fn default() -> PtyOpts {
        PtyOpts {
            cols: 80,
            rows: 24,
            ctty: true,
            stderr_pipe: false,
        }
    }
}

type Master = Arc<Mutex<Option<PtyMaster>>>;

/// A program running on a pty (see the module documentation).
pub struct PtyChild {
    child: Child,
    master: Master,
    slave: File,
    output: Arc<Mutex<Vec<u8>>>,
    reading: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<ChildStderr>,
    status: Option<ExitStatus>,
}

fn read_master(master: Master, output: Arc<Mutex<Vec<u8>>>, reading: Arc<AtomicBool>) {
    let mut buf = [0u8; 4096];
    loop {
        if !reading.load(Ordering::SeqCst) {
            // Output stopped on purpose: keep the master open, read nothing.
            std::thread::sleep(Duration::from_millis(20));
            if master.lock().map(|m| m.is_none()).unwrap_or(true) {
                return;
            }
            continue;
        }
        let guard = match master.lock() {
            Ok(g) => g,
            Err(_) => return,
        };
        let Some(fd) = guard.as_ref() else {
            return;
        };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(20u8)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Ok(mut out) = output.lock() {
                    out.extend_from_slice(&buf[..n]);
                    let extra = out.len().saturating_sub(KEEP_OUTPUT);
                    out.drain(..extra);
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            // EIO: every slave is closed (the program is gone); nothing more comes.
            Err(_) => {
                drop(guard);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl PtyChild {
    /// Start `program` with `args` on a new pty.
    pub fn spawn(program: &std::path::Path, args: &[&str], opts: PtyOpts) -> PtyChild {
        // Both ends close-on-exec, so no other program (another test's daemon
        // started meanwhile) keeps the pty open; the program gets its own copies.
        let master =
            posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("posix_openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let path = ptsname_r(&master).expect("ptsname");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut stty = Command::new("stty");
        stty.args(["-F", &path, "cols", &opts.cols.to_string()])
            .args(["rows", &opts.rows.to_string()]);
        let out = crate::run_bounded(stty, Duration::from_secs(10)).expect("run stty");
        assert!(
            out.status.success(),
            "stty: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdio = || Stdio::from(slave.try_clone().expect("dup the pty slave"));
        // Started as from a login shell: default signal dispositions, whatever
        // the test runner inherited (under nohup, or as a shell's background
        // job, SIGHUP or SIGINT are ignored, and would stay so in the program).
        let mut cmd = Command::new("env");
        cmd.arg("--default-signal=HUP,INT,QUIT,TERM");
        if opts.ctty {
            cmd.arg("setsid").arg("--ctty");
        }
        cmd.arg(program);
        cmd.args(args)
            .env("TERM", "xterm-256color")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(if opts.stderr_pipe {
                Stdio::piped()
            } else {
                stdio()
            });
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} on a pty: {e} (setsid is in util-linux)",
                program.display()
            )
        });
        let stderr = child.stderr.take();
        let master = Arc::new(Mutex::new(Some(master)));
        let output = Arc::new(Mutex::new(Vec::new()));
        let reading = Arc::new(AtomicBool::new(true));
        let reader = {
            let (m, o, r) = (
                Arc::clone(&master),
                Arc::clone(&output),
                Arc::clone(&reading),
            );
            std::thread::spawn(move || read_master(m, o, r))
        };
        PtyChild {
            child,
            master,
            slave,
            output,
            reading,
            reader: Some(reader),
            stderr,
            status: None,
        }
    }

    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything drawn so far (the newest 256 KiB), as text.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .unwrap_or_default()
    }

    /// Wait until the output contains `needle`; panics after `timeout`.
    pub fn wait_output(&self, needle: &str, timeout: Duration) {
        if crate::poll_until(timeout, || self.output().contains(needle).then_some(())).is_none() {
            panic!(
                "{needle:?} never appeared on the pty; it shows:\n{}",
                self.output()
            );
        }
    }

    /// Type `bytes` on the terminal.
    pub fn type_bytes(&self, bytes: &[u8]) {
        let guard = self.master.lock().expect("master lock");
        let fd = guard.as_ref().expect("the pty is still open");
        let mut at = 0;
        while at < bytes.len() {
            match nix::unistd::write(fd, &bytes[at..]) {
                Ok(n) => at += n,
                Err(Errno::EINTR) => {}
                Err(e) => panic!("typing on the pty: {e}"),
            }
        }
    }

    /// Hang up: close the master side, as sshd or tmux do when the link or the
    /// session goes.
    pub fn hang_up(&self) {
        if let Ok(mut m) = self.master.lock() {
            m.take();
        }
    }

    /// Stop the terminal's output the way XOFF (Ctrl-S) does: from now on the
    /// program blocks in its next write to the terminal, like one behind a stalled
    /// SSH link. (Flow control is turned on for this; the program's raw mode had
    /// turned it off.)
    pub fn stop_output(&self) {
        self.reading.store(false, Ordering::SeqCst);
        let mut t = tcgetattr(&self.slave).expect("tcgetattr");
        t.input_flags.insert(InputFlags::IXON);
        tcsetattr(&self.slave, SetArg::TCSANOW, &t).expect("tcsetattr");
        self.type_bytes(b"\x13");
    }

    /// Send `sig` to the program.
    pub fn signal(&self, sig: Signal) {
        let pid = i32::try_from(self.pid()).expect("pid");
        kill(Pid::from_raw(pid), sig).expect("kill");
    }

    /// Wait up to `timeout` for the program to end: its exit status and how long
    /// it took, or `None` if it is still running.
    pub fn wait_gone(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let t0 = Instant::now();
        let status = crate::poll_until(timeout, || self.child.try_wait().ok().flatten())?;
        self.status = Some(status);
        Some((status, t0.elapsed()))
    }

    /// What the program wrote on stderr (with [`PtyOpts::stderr_pipe`], once it
    /// has ended).
    pub fn stderr_text(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.hang_up();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Whether process `pid` is gone: no longer in the process table, or a zombie
/// (it has exited and only waits for its parent to collect the status).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            matches!(state, Some("Z" | "X"))
        }
    }
}

/// Wait up to `timeout` for process `pid` to be gone; how long it took.
pub fn wait_process_gone(pid: u32, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    crate::poll_until(timeout, || process_gone(pid).then(|| t0.elapsed()))
}

/// The kernel function process `pid`'s main thread sleeps in (`/proc/PID/wchan`).
pub fn sleeping_in(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

/// Whether process `pid`'s main thread is blocked in `futex(2)` now
/// (`/proc/PID/syscall`): a reader of the state block asleep on the event ring,
/// with nothing left to do until an event comes.
pub fn in_futex_wait(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
        == Some(nix::libc::SYS_futex)
}
