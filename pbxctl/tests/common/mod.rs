//! A fake coventryd for pbxctl's tests: a real state block in a temporary runtime
//! directory and, optionally, a control FIFO read by a thread that answers each line
//! with a command-result event, the way the daemon does.
#![allow(dead_code)]

use coventry_shared::control::Request;
use coventry_shared::dialplan::Plan;
use coventry_shared::event::{Event, ResultCode};
use coventry_shared::now_ms;
use coventry_shared::runtime;
use coventry_shared::stateblock::{BlockInit, StateWriter};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the fake answers a parsed request: `Some((code, text, id))` pushes a result
/// with that id, `None` stays silent.
pub type Answer = Box<dyn Fn(&Request) -> Option<(ResultCode, String, Option<u64>)> + Send>;

/// The events the fake sends before a request's result (a message's receipts).
/// The code is the result's, `None` when the fake does not answer.
pub type Receipts = Box<dyn Fn(&Request, Option<ResultCode>) -> Vec<Event> + Send>;

/// Answer every request with `ok` and `text`.
pub fn answer_ok(text: &'static str) -> Answer {
    Box::new(move |r| Some((ResultCode::Ok, text.to_string(), r.id)))
}

/// Answer every request with `code` and `text`.
pub fn answer_with(code: ResultCode, text: &'static str) -> Answer {
    Box::new(move |r| Some((code, text.to_string(), r.id)))
}

/// Never answer.
pub fn answer_never() -> Answer {
    Box::new(|_| None)
}

pub struct Fake {
    pub dir: tempfile::TempDir,
    pub writer: Arc<Mutex<StateWriter>>,
    pub received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    /// A state block for `plan` and nothing else (no FIFO).
    pub fn new(plan: Plan) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = StateWriter::create(&runtime::state_path(dir.path()), &init(plan))
            .expect("state block");
        writer.heartbeat(now_ms());
        Fake {
            dir,
            writer: Arc::new(Mutex::new(writer)),
            received: Arc::default(),
            stop: Arc::default(),
            thread: None,
        }
    }

    /// A block plus a FIFO that nobody reads.
    pub fn with_unread_fifo() -> Fake {
        let f = Fake::new(Plan::TwoDigit);
        f.make_fifo();
        f
    }

    /// A block plus a FIFO read by a thread that answers with `answer` (a
    /// message's receipts as [`default_receipts`] makes them).
    pub fn answering(answer: Answer) -> Fake {
        Fake::answering_with(answer, Box::new(default_receipts))
    }

    /// Like [`Fake::answering`], with the events `receipts` makes before each result.
    pub fn answering_with(answer: Answer, receipts: Receipts) -> Fake {
        let mut f = Fake::new(Plan::TwoDigit);
        f.make_fifo();
        let path = f.fifo_path();
        let (writer, received, stop) = (f.writer.clone(), f.received.clone(), f.stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        f.thread = Some(std::thread::spawn(move || {
            serve(
                &path,
                &writer,
                &received,
                &stop,
                (&answer, &receipts),
                ready_tx,
            )
        }));
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("fake daemon opened its FIFO");
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_path(&self) -> PathBuf {
        runtime::state_path(self.dir.path())
    }

    pub fn fifo_path(&self) -> PathBuf {
        runtime::control_path(self.dir.path())
    }

    fn make_fifo(&self) {
        nix::unistd::mkfifo(
            &self.fifo_path(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
    }

    pub fn w(&self) -> MutexGuard<'_, StateWriter> {
        self.writer.lock().expect("writer lock")
    }

    /// Push one event now.
    pub fn push(&self, event: Event) -> u64 {
        self.w().push_event(now_ms(), &event)
    }

    /// Put `pid` into the block's header (offset 24), e.g. a pid that is gone.
    pub fn set_pid(&self, pid: u32) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.state_path())
            .expect("open block");
        f.write_all_at(&pid.to_le_bytes(), 24).expect("write pid");
    }

    /// Lines the fake daemon read from its FIFO so far.
    pub fn lines(&self) -> Vec<String> {
        self.received.lock().expect("lock").clone()
    }

    /// Run pbxctl on this runtime directory.
    pub fn run(&self, args: &[&str]) -> Output {
        pbxctl_in(self.path(), args)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn init(plan: Plan) -> BlockInit {
    BlockInit {
        plan,
        bound: "127.0.0.1:5060".into(),
        realm: "testrealm".into(),
        state_dir: String::new(),
        start_ms: now_ms() - 3_723_000,
    }
}

fn serve(
    path: &Path,
    writer: &Mutex<StateWriter>,
    received: &Mutex<Vec<String>>,
    stop: &AtomicBool,
    (answer, receipts): (&Answer, &Receipts),
    ready: std::sync::mpsc::Sender<()>,
) {
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .expect("open fifo for reading");
    let _ = ready.send(());
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        writer.lock().expect("lock").heartbeat(now_ms());
        match fifo.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("fifo read: {e}"),
        }
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            if coventry_shared::control::is_blank(&line) {
                continue; // the framing newline, as the daemon skips it
            }
            received
                .lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&line).trim_end().to_string());
            let parsed = Request::parse(&line);
            let result = match &parsed {
                Ok(r) => answer(r),
                Err((id, e)) => Some((ResultCode::BadSyntax, e.to_string(), *id)),
            };
            let mut w = writer.lock().expect("lock");
            if let Ok(r) = &parsed {
                for e in receipts(r, result.as_ref().map(|(c, _, _)| *c)) {
                    w.push_event(now_ms(), &e);
                }
            }
            if let Some((code, text, id)) = result {
                w.push_event(now_ms(), &Event::CommandResult { id, code, text });
            }
        }
    }
}

/// The receipts the daemon sends before a message command's result: `all` goes to
/// 21 and 22, a number to itself; delivered when the result is `ok`, offline (480)
/// when it failed, none when the target was not found.
pub fn default_receipts(r: &Request, code: Option<ResultCode>) -> Vec<Event> {
    let (coventry_shared::control::Command::Message { target, text }, id) = (&r.command, r.id)
    else {
        return Vec::new();
    };
    let targets: Vec<u16> = match target.as_str() {
        "all" => vec![21, 22],
        t => t.parse().into_iter().collect(),
    };
    let (target, text) = (target.clone(), text.clone());
    let status = match code {
        Some(ResultCode::Ok) => 200,
        Some(ResultCode::Failed) => 480,
        _ => return Vec::new(),
    };
    let mut out = vec![Event::Delivering {
        id,
        to: target.clone(),
        targets: targets.clone(),
        offline: Vec::new(),
    }];
    out.extend(targets.into_iter().map(|t| Event::Message {
        id,
        from: "operator".into(),
        to: t.to_string(),
        status,
        text: text.clone(),
    }));
    out
}

/// Longest any single pbxctl run may take in these tests: pbxctl must never hang.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Run pbxctl with `--runtime-dir dir` and `args`, stdout and stderr captured; fail
/// the test (killing pbxctl) if it runs longer than [`RUN_LIMIT`].
pub fn pbxctl_in(dir: &Path, args: &[&str]) -> Output {
    let mut child = pbxctl_cmd(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pbxctl");
    let collect = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("stdout")));
    let err = collect(Box::new(child.stderr.take().expect("stderr")));
    let end = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pbxctl {args:?} hung for more than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A pbxctl command with `--runtime-dir dir` and a clean environment.
pub fn pbxctl_cmd(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pbxctl"));
    c.arg("--runtime-dir")
        .arg(dir)
        .env_remove("COVENTRY_RUNTIME_DIR")
        .env_remove("NO_COLOR");
    c
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// The request id at the start of a control line (`#42 reload` → 42).
pub fn id_of(line: &str) -> u64 {
    line.strip_prefix('#')
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request id in {line:?}"))
}

/// A pid that certainly belonged to a process that is gone now.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// Wait until `f` holds, up to `limit`.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Whether script(1) is there to give pbxctl a pseudo-terminal.
pub fn have_script() -> bool {
    Command::new("script").arg("--version").output().is_ok()
}

/// Run pbxctl ARGS on a pseudo-terminal (through script(1)) with the runtime
/// directory `dir`, with `NO_COLOR=1` when `no_color`; its terminal output.
pub fn pbxctl_tty(dir: &Path, args: &str, no_color: bool) -> String {
    let mut c = Command::new("script");
    c.args([
        "-qec",
        &format!("{} {args}", env!("CARGO_BIN_EXE_pbxctl")),
        "/dev/null",
    ])
    .env_remove("NO_COLOR")
    .env("COVENTRY_RUNTIME_DIR", dir);
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let o = c.output().expect("script");
    String::from_utf8_lossy(&o.stdout).into_owned()
}
