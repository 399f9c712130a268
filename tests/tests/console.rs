//! The attendant console end to end: the real `pbx-tui` in tmux on an
//! 80x24 pane, against the real daemon, with phones played by the in-test UA. The
//! tests read the screen with `tmux capture-pane -p`, type with `send-keys`, and
//! check what the keys did in the switch's state block.
//!
//! How the console ends: SIGTERM, SIGHUP, SIGINT and SIGQUIT in every state, the
//! tmux session killed, its pty closed (on a pty of its own, `coventry_tests::pty`),
//! a signal while it is stuck writing to a stalled terminal — each time the process
//! must be gone (the time it took is printed; the bound only stops a hung test).
//!
//! `measure_idle_cpu_and_event_delay` (ignored; `bench/tui_idle.sh` runs it) measures
//! the console's CPU time over 60 s idle with 80 registered extensions and the delay
//! from an event in the state block to its appearance on the screen.
//!
//! Needs tmux (Debian package `tmux`), and `setsid` and `stty` (util-linux,
//! coreutils) for the pty tests. The console binary is
//! `<target>/<profile>/pbx-tui`, built on first use like the daemon (`PBX_TUI_BIN`
//! names another one; `COVENTRY_TEST_NO_BUILD=1` skips the build).

use coventry_shared::event::{hidden_text, Event, ResultCode};
use coventry_shared::stateblock::get_str;
use coventry_tests::pty::{process_gone, sleeping_in, wait_process_gone, PtyChild, PtyOpts};
use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{bin_dir, poll_until, run_bounded, workspace_dir, Conf, Switch, T};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the screen gets to show something (the console polls every 150 ms).
const SCREEN_T: Duration = Duration::from_secs(10);
/// How long the console may take to exit after `q`.
const EXIT_T: Duration = Duration::from_secs(30);

/// `pbx-tui`, built once per test process unless told otherwise.
fn pbx_tui_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PBX_TUI_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        if std::env::var_os("COVENTRY_TEST_NO_BUILD").is_some_and(|v| !v.is_empty()) {
            return Ok(());
        }
        let dir = bin_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_dir())
            .args(["build", "--quiet", "-p", "pbx-tui"]);
        if let Some(target) = dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let out = run_bounded(cmd, Duration::from_secs(600)).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = built {
        panic!("cannot build pbx-tui: {e}");
    }
    let p = bin_dir().join("pbx-tui");
    assert!(
        p.is_file(),
        "{} does not exist (cargo build -p pbx-tui)",
        p.display()
    );
    p
}

/// `pbx-tui` running in a detached tmux session on its own tmux server.
struct Console {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    /// The console's pid (the pane's: its shell execs the console).
    pid: u32,
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

impl Console {
    /// Start the console on `sw`'s runtime directory in a `w`×`h` pane.
    fn start(sw: &Switch, extra: &str, w: u16, h: u16) -> Console {
        Console::start_in(sw.runtime_dir(), extra, w, h)
    }

    /// Start the console on the runtime directory `dir` (with or without a daemon).
    fn start_in(runtime_dir: &Path, extra: &str, w: u16, h: u16) -> Console {
        if Command::new("tmux").arg("-V").output().is_err() {
            panic!("tmux is not installed (Debian package `tmux`; scripts/test should install it)");
        }
        let dir = tempfile::Builder::new()
            .prefix("coventry-console-")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("tmux.sock");
        let program = format!(
            "exec {} --runtime-dir {} {extra}",
            quote(&pbx_tui_bin()),
            quote(runtime_dir)
        );
        let mut c = Console {
            _dir: dir,
            socket,
            pid: 0,
        };
        c.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            &program,
            ";",
            "set-option",
            "-t",
            "console",
            "remain-on-exit",
            "on",
        ]);
        c.pid = c.pane("#{pane_pid}").parse().expect("pane pid");
        c
    }

    fn tmux(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).args(args);
        let out = run_bounded(cmd, Duration::from_secs(10)).expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen as text.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "console"])
    }

    /// Press keys (tmux key names: `Enter`, `Escape`, `Tab`, or literal text).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Wait until the screen satisfies `pred`; panics naming `what` with the screen.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match poll_until(SCREEN_T, || {
            let s = self.screen();
            pred(&s).then_some(s)
        }) {
            Some(s) => s,
            None => panic!(
                "the console never showed {what}; the screen:\n{}",
                self.screen()
            ),
        }
    }

    /// Wait until the screen contains every one of `needles`.
    fn wait_for(&self, needles: &[&str]) -> String {
        self.wait(&format!("{needles:?}"), |s| {
            needles.iter().all(|n| s.contains(n))
        })
    }

    fn pane(&self, format: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", "console", format])
            .trim()
            .to_string()
    }

    /// The console's pid.
    fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status once the console has exited (`sig N` when a signal
    /// ended it). Generous: a loaded machine may take a while to reap it.
    fn exit_status(&self) -> Option<String> {
        poll_until(EXIT_T, || {
            let s = self.pane("#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}");
            let mut parts = s.split('|');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("1"), Some(st), _) if !st.is_empty() => Some(st.to_string()),
                (Some("1"), _, Some(sig)) if !sig.is_empty() => Some(format!("sig {sig}")),
                (Some("1"), _, _) => {
                    // Dead but not reaped: tmux with libutempter can miss the
                    // SIGCHLD of a pane that exits while utempter's helper runs
                    // (tmux issue #311). Another SIGCHLD makes it reap.
                    if let Ok(pid) = self.pane("#{pid}").parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGCHLD,
                        );
                    }
                    None
                }
                _ => None,
            }
        })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(o) = Command::new("tmux")
                .arg("-S")
                .arg(&self.socket)
                .args(["capture-pane", "-p", "-t", "console"])
                .output()
            {
                eprintln!("console screen:\n{}", String::from_utf8_lossy(&o.stdout));
            }
        }
        // End the console itself first: killing the tmux server alone can leave
        // it behind, orphaned (and a test may have killed the session already).
        let ours = std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("pbx-tui"));
        if ours && !process_gone(self.pid) {
            if let Ok(pid) = i32::try_from(self.pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The row of the screen that holds `needle`.
fn row_with<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen.lines().find(|l| l.contains(needle)).unwrap_or("")
}

/// The status line (second to last row).
fn status_line(screen: &str) -> String {
    let rows: Vec<&str> = screen.lines().collect();
    rows.get(rows.len().saturating_sub(2))
        .unwrap_or(&"")
        .trim()
        .to_string()
}

#[test]
fn console_shows_registrations_and_a_ringing_call_and_forwards_by_keys() {
    let sw = Switch::start(&Conf::new(&[21, 22, 23]).calls(1, 30).build());
    let con = Console::start(&sw, "", 80, 24);
    con.wait_for(&["Coventry \u{25cf} up", "21- 22- 23-", "reg 0/3"]);

    // A phone registers: the grid, the header and the log show it.
    let mut a = Ua::ext(sw.addr(), 21);
    a.register(300);
    let s = con.wait_for(&["21R", "reg 1/3", "21 registered sip:21@127.0.0.1"]);
    assert!(sw.snapshot().is_registered(21));
    assert!(
        row_with(&s, "Extensions 10").contains("Extensions 10\u{2013}89"),
        "{s}"
    );

    // 21 calls 22, which only rings (180): the grid, the calls panel and the
    // selected extension's detail show it, with the rings counting up.
    let mut b = Ua::ext(sw.addr(), 22);
    b.register(300);
    con.wait_for(&["22R", "reg 2/3"]);
    let mut call = a.call_start("22", &sdp("21", 1, "sendrecv"));
    let inv = b.expect_invite("the call", T);
    b.respond(&inv, 180, None);
    a.call_expect(&mut call, 180, T);
    sw.wait_bits(22, true, false);
    let s = con.wait_for(&[
        "22r",
        "21B",
        "Calls: 1 live",
        "21 \u{2192} 22",
        "ringing \u{d7}",
    ]);
    assert!(s.contains("calls 1"), "{s}");
    con.wait("the ring count going up", |s| {
        row_with(s, "21 \u{2192} 22")
            .split('\u{d7}')
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
    });
    con.keys(&["2", "2"]);
    con.wait_for(&[">22r", "21\u{2192}22 ringing \u{d7}"]);

    // Forward 23 to 21 with the keys: select 23, f, answer the prompt.
    let mark = sw.mark();
    con.keys(&["2", "3", "f"]);
    con.wait_for(&["Forward 23 to"]);
    con.keys(&["21", "Enter"]);
    let result = sw.expect_event_after(
        mark,
        "the result of the console's forward",
        |e| matches!(e, Event::CommandResult { id: Some(_), .. }),
        T,
    );
    let Event::CommandResult { code, text, .. } = result else {
        unreachable!()
    };
    let s = con.wait(&format!("the daemon's answer {text:?}"), |s| {
        status_line(s).starts_with(&format!("forward 23 21 always: {}", code.name()))
            && status_line(s).contains(&text)
    });
    assert_eq!(code, ResultCode::Ok, "{}", status_line(&s));
    let snap = sw
        .wait_state_fn(|s| {
            s.ext(23)
                .is_some_and(|e| get_str(&e.forward_always) == "21")
        })
        .unwrap_or_else(|| panic!("no forward in the state block:\n{}", sw.events_text(mark)));
    let i = snap.header.plan.index_of(23).expect("23");
    assert!(coventry_shared::stateblock::get_bit(
        &snap.body.bitmaps.forwarded,
        i
    ));
    con.wait_for(&[">23F", "forward always\u{2192}21"]);

    // q leaves cleanly.
    con.keys(&["q"]);
    assert_eq!(con.exit_status().as_deref(), Some("0"));
}

/// A [`Switch::wait_state`]-like poll that returns `None` instead of panicking.
trait WaitState {
    fn wait_state_fn(
        &self,
        f: impl Fn(&coventry_shared::stateblock::Snapshot) -> bool,
    ) -> Option<coventry_shared::stateblock::Snapshot>;
}

impl WaitState for Switch {
    fn wait_state_fn(
        &self,
        f: impl Fn(&coventry_shared::stateblock::Snapshot) -> bool,
    ) -> Option<coventry_shared::stateblock::Snapshot> {
        poll_until(T, || {
            let s = self.snapshot();
            f(&s).then_some(s)
        })
    }
}

#[test]
fn console_survives_daemon_stop_crash_and_restart() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let con = Console::start(&sw, "", 80, 24);
    let first = sw.pid().expect("pid");
    con.wait_for(&[&format!("pid {first}"), "\u{25cf} up"]);

    // Frozen (SIGSTOP): the heartbeat gets old, the console says so; and recovers.
    sw.signal(nix::sys::signal::Signal::SIGSTOP);
    con.wait_for(&["COVENTRYD NOT RESPONDING", "\u{25cf} STALE"]);
    sw.signal(nix::sys::signal::Signal::SIGCONT);
    let s = con.wait_for(&[
        &format!("coventryd (pid {first}) is responding again"),
        "\u{25cf} up",
    ]);
    assert!(!s.contains("NOT RESPONDING"), "{s}");

    // Stopped: a banner, the last known state stays.
    sw.stop();
    let s = con.wait_for(&["COVENTRYD IS DOWN", "no state block", "\u{25cf} DOWN"]);
    assert!(s.contains("21-"), "the last known grid stays:\n{s}");

    // Back: the console re-opens the new block by itself and says so.
    sw.restart();
    let second = sw.pid().expect("pid");
    let s = con.wait_for(&[
        &format!("coventryd restarted (pid {second})"),
        "\u{25cf} up",
    ]);
    assert!(!s.contains("COVENTRYD IS DOWN"), "{s}");

    // A crash leaves the block behind: the console notices the pid is gone.
    sw.kill9();
    con.wait_for(&["COVENTRYD IS DOWN", &format!("(pid {second}) is gone")]);
    sw.restart();
    let third = sw.pid().expect("pid");
    con.wait_for(&[&format!("coventryd restarted (pid {third})"), "\u{25cf} up"]);

    // It still acts: release 21 (nothing registered) shows the daemon's answer.
    con.keys(&["2", "1", "r"]);
    con.wait_for(&["Release every registration of 21"]);
    con.keys(&["y"]);
    con.wait("the result of release", |s| {
        status_line(s).starts_with("release 21: ok \u{2014} released 21")
    });

    // A bigger terminal: the console uses the room (the whole hint line fits).
    con.tmux(&["resize-window", "-t", "console", "-x", "120", "-y", "40"]);
    con.wait("the 120x40 layout", |s| {
        s.lines().count() >= 40 && s.lines().any(|l| l.ends_with("/ filter"))
    });
}

#[test]
fn console_reports_a_truncated_state_block_and_recovers() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let con = Console::start(&sw, "", 200, 24);
    let first = sw.pid().expect("pid");
    con.wait_for(&[&format!("pid {first}"), "\u{25cf} up"]);
    let console_pid = con.pid();

    // Freeze the daemon (so it does not write into the cut file) and cut its block:
    // the console says so instead of dying of SIGBUS.
    sw.signal(nix::sys::signal::Signal::SIGSTOP);
    std::fs::OpenOptions::new()
        .write(true)
        .open(coventry_shared::runtime::state_path(sw.runtime_dir()))
        .expect("open state")
        .set_len(0)
        .expect("truncate");
    let s = con.wait_for(&["COVENTRYD IS DOWN", "truncated", "\u{25cf} DOWN"]);
    assert!(s.contains("21-"), "the last known grid stays:\n{s}");
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(console_pid as i32), None).is_ok(),
        "the console died"
    );

    // A new daemon: the console follows it and still acts.
    sw.kill9();
    sw.restart();
    let second = sw.pid().expect("pid");
    con.wait_for(&[
        &format!("coventryd restarted (pid {second})"),
        "\u{25cf} up",
    ]);
    con.keys(&["2", "1", "r"]);
    con.wait_for(&["Release every registration of 21"]);
    con.keys(&["y"]);
    con.wait("the result of release", |s| {
        status_line(s).starts_with("release 21: ok \u{2014} released 21")
    });
    con.keys(&["q"]);
    assert_eq!(con.exit_status().as_deref(), Some("0"));
}

#[test]
fn readonly_console_writes_nothing() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let con = Console::start(&sw, "--readonly", 80, 24);
    con.wait_for(&["READ-ONLY", "21-"]);
    let mark = sw.mark();
    con.keys(&["2", "1", "d", "r", "y", ":"]);
    con.wait_for(&["read-only console (--readonly): actions are disabled"]);
    // The keys were handled in order: anything the console wrote to the FIFO for
    // them is in before the fence, and its result before the fence's.
    let fence = sw.control_fence();
    assert!(
        !sw.events()
            .iter()
            .skip(mark)
            .any(|r| matches!(r.event, Event::CommandResult { id, .. } if id != Some(fence))),
        "a read-only console sent a command:\n{}",
        sw.events_text(mark)
    );
    con.keys(&["?"]);
    con.wait_for(&["Help: every key", "read-only"]);
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command (which is in parentheses): utime is 14th, stime 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
}

/// The console figures: CPU over `TUI_IDLE_SECS` (60) seconds idle with all 80
/// extensions of the 2-digit plan registered, and event-to-screen delays.
#[test]
#[ignore = "a measurement (about 90 s): bench/tui_idle.sh runs it"]
fn measure_idle_cpu_and_event_delay() {
    let secs: u64 = std::env::var("TUI_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let exts: Vec<u16> = (10..=89).collect();
    let sw = Switch::start(&Conf::new(&exts).build());
    let phones: Vec<Ua> = exts
        .iter()
        .map(|n| {
            let mut p = Ua::ext(sw.addr(), *n);
            p.register(3600);
            p
        })
        .collect();
    let con = Console::start(&sw, "", 80, 24);
    con.wait_for(&["reg 80/80"]);
    let pid = con.pid();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let c1 = cpu_ticks(pid);
    let wall = t0.elapsed().as_secs_f64();
    let cpu_s = (c1 - c0) as f64 / hz as f64;
    println!(
        "pbx-tui idle with 80 registered: {cpu_s:.3} s CPU in {wall:.1} s = {:.3}% of one core",
        100.0 * cpu_s / wall
    );

    // Event-to-screen: a message event with a unique text, then poll the pane.
    let mut delays = Vec::new();
    for i in 0..20u64 {
        let text = format!("probe-{i}-{}", std::process::id());
        let mark = sw.mark();
        sw.fifo_write(format!("message 10 {text}\n").as_bytes())
            .expect("fifo");
        let seen = poll_until(SCREEN_T, || {
            con.screen().contains(&text).then(coventry_shared::now_ms)
        })
        .expect("the probe on screen");
        let ev = sw
            .wait_event_after(
                mark,
                |e| matches!(e, Event::Message { text: t, .. } if *t == hidden_text(&text)),
                T,
            )
            .expect("the probe event");
        delays.push(seen.saturating_sub(ev.time_ms));
        // Spread the next event over the console's poll period (no phase locking).
        std::thread::sleep(Duration::from_millis(50 + (i * 73) % 200));
    }
    delays.sort_unstable();
    println!(
        "event-to-screen delay over {} events: median {} ms, p90 {} ms, max {} ms \
         (includes tmux capture polling)",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() * 9 / 10],
        delays[delays.len() - 1]
    );
    drop(phones);
    assert!(100.0 * cpu_s / wall < 1.0, "idle CPU over 1% of a core");
    assert!(
        delays[delays.len() - 1] < 250,
        "an event took over 250 ms to show"
    );
}

#[test]
fn the_header_follows_the_upstream() {
    // A route to a port nobody listens on yet: the switch keeps retrying.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let conf = Conf::new(&[21]).section("upstream", &format!("route = 127.0.0.1:{port}"));
    let sw = Switch::start(&conf.build());
    let con = Console::start(&sw, "", 120, 30);
    let s = con.wait("the route not connected", |s| {
        s.lines()
            .next()
            .is_some_and(|h| h.contains("upstream default+emergency+sms") && !h.contains("ok"))
    });
    assert!(s.contains("upstream"), "{s}");
    // The peer comes up: the switch connects within its back-off and the header says so.
    let peer = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the peer");
    let s = con.wait_for(&["upstream ok"]);
    assert!(
        s.contains("connected to 127.0.0.1"),
        "the log shows the change:\n{s}"
    );
    drop(peer);
}

// ----- the console ends with its terminal -----

/// The bound on the console being gone after a hang-up or an ending signal. It
/// only stops a hung test (a console that misses the signal or the hang-up never
/// ends); how long it took is printed. What makes it prompt (a signal thread, the
/// 0.5 s self-exit when stuck writing) does not depend on this bound.
const GONE_T: Duration = Duration::from_secs(20);

/// The signals that end the console, with the exit status each gives.
const ENDING: [(Signal, i32); 4] = [
    (Signal::SIGTERM, 143),
    (Signal::SIGHUP, 129),
    (Signal::SIGINT, 130),
    (Signal::SIGQUIT, 131),
];

/// `pbx-tui` on a pty of its own (no tmux), 80×24.
fn console_on_pty(runtime_dir: &Path, opts: PtyOpts) -> PtyChild {
    let dir = runtime_dir.display().to_string();
    let con = PtyChild::spawn(&pbx_tui_bin(), &["--runtime-dir", &dir], opts);
    // Drawn: raw mode is on and the loop is running.
    con.wait_output("Coventry", SCREEN_T);
    con
}

/// Wait for a console on a pty to be gone; panics when it is still there after
/// [`GONE_T`], naming `what` and where it sleeps.
fn expect_gone(con: &mut PtyChild, what: &str) -> std::process::ExitStatus {
    let pid = con.pid();
    match con.wait_gone(GONE_T) {
        Some((status, took)) => {
            eprintln!("{what}: gone after {} ms, {status}", took.as_millis());
            status
        }
        None => panic!(
            "{what}: pbx-tui (pid {pid}) still runs after {GONE_T:?} (sleeping in {:?}, {} CPU ticks)",
            sleeping_in(pid),
            cpu_ticks(pid)
        ),
    }
}

/// Signal the console in tmux and check it is gone within [`GONE_T`] with the
/// status of that signal.
fn expect_ended_by(con: &Console, sig: Signal, status: i32, state: &str) {
    let pid = con.pid();
    let raw = i32::try_from(pid).expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig).expect("kill");
    match wait_process_gone(pid, GONE_T) {
        Some(took) => eprintln!("{sig} in {state}: gone after {} ms", took.as_millis()),
        None => panic!(
            "{sig} in {state}: pbx-tui (pid {pid}) still runs after {GONE_T:?} (sleeping in {:?})",
            sleeping_in(pid)
        ),
    }
    assert_eq!(
        con.exit_status(),
        Some(status.to_string()),
        "exit status after {sig} in {state}"
    );
}

/// One console per ending signal, each brought into a state by `keys` until the
/// screen shows `shows`; then each gets its signal.
fn signal_in_state(runtime_dir: &Path, state: &str, keys: &[&str], shows: &[&str]) {
    let consoles: Vec<(Signal, i32, Console)> = ENDING
        .iter()
        .map(|(sig, status)| (*sig, *status, Console::start_in(runtime_dir, "", 80, 24)))
        .collect();
    for (_, _, con) in &consoles {
        con.wait_for(&["Coventry"]);
        for k in keys {
            con.keys(&[k]);
        }
        con.wait_for(shows);
    }
    for (sig, status, con) in &consoles {
        expect_ended_by(con, *sig, *status, state);
    }
}

/// SIGTERM, SIGHUP, SIGINT and SIGQUIT end the console whatever
/// it shows — the grid, the help, the command line, a prompt, a confirmation, a
/// command awaiting its result, the banner of a stopped daemon, no daemon at all —
/// with status 128 + the signal's number.
#[test]
fn signals_end_the_console_in_every_state() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let dir = sw.runtime_dir().to_path_buf();
    signal_in_state(&dir, "the grid", &[], &["21-", "\u{25cf} up"]);
    signal_in_state(&dir, "the help", &["?"], &["Help: every key"]);
    signal_in_state(
        &dir,
        "the command line",
        &[":", "release 2"],
        &[":release 2"],
    );
    signal_in_state(&dir, "a prompt", &["2", "1", "f"], &["Forward 21 to"]);
    signal_in_state(
        &dir,
        "a confirmation",
        &["2", "1", "x"],
        &["Hang up every call of 21"],
    );
    // The daemon frozen: the command is sent and its result never comes.
    let consoles: Vec<(Signal, i32, Console)> = ENDING
        .iter()
        .map(|(sig, status)| (*sig, *status, Console::start_in(&dir, "", 80, 24)))
        .collect();
    for (_, _, con) in &consoles {
        con.wait_for(&["21-", "\u{25cf} up"]);
    }
    sw.signal(Signal::SIGSTOP);
    for (_, _, con) in &consoles {
        con.keys(&["2", "1", "d"]);
        con.wait_for(&["dnd 21 on: sent, waiting for the daemon"]);
    }
    for (sig, status, con) in &consoles {
        expect_ended_by(con, *sig, *status, "a command awaiting its result");
    }
    sw.signal(Signal::SIGCONT);
    // The daemon stops under the consoles: the banner.
    let consoles: Vec<(Signal, i32, Console)> = ENDING
        .iter()
        .map(|(sig, status)| (*sig, *status, Console::start_in(&dir, "", 80, 24)))
        .collect();
    for (_, _, con) in &consoles {
        con.wait_for(&["22-", "\u{25cf} up"]);
    }
    sw.stop();
    for (_, _, con) in &consoles {
        con.wait_for(&["COVENTRYD IS DOWN"]);
    }
    for (sig, status, con) in &consoles {
        expect_ended_by(con, *sig, *status, "the banner of a stopped daemon");
    }
    // No daemon ever.
    let empty = tempfile::tempdir().expect("tempdir");
    signal_in_state(empty.path(), "no daemon", &[], &["COVENTRYD IS DOWN"]);
    signal_in_state(
        empty.path(),
        "no daemon, the help",
        &["?"],
        &["Help: every key"],
    );
}

/// Killing the tmux session (what an SSH drop does to the console's pty) ends the
/// console, with a daemon and without, and from the help screen.
#[test]
fn killing_the_tmux_session_ends_the_console() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let empty = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &Path, &[&str], &str); 3] = [
        ("with a daemon", sw.runtime_dir(), &[], "\u{25cf} up"),
        ("without a daemon", empty.path(), &[], "COVENTRYD IS DOWN"),
        ("in the help", sw.runtime_dir(), &["?"], "Help: every key"),
    ];
    for (what, dir, keys, shows) in cases {
        let con = Console::start_in(dir, "", 80, 24);
        con.wait_for(&["Coventry"]);
        for k in keys {
            con.keys(&[k]);
        }
        con.wait_for(&[shows]);
        let pid = con.pid();
        con.tmux(&["kill-session", "-t", "console"]);
        match wait_process_gone(pid, GONE_T) {
            Some(took) => eprintln!("kill-session {what}: gone after {} ms", took.as_millis()),
            None => panic!(
                "kill-session {what}: pbx-tui (pid {pid}) still runs after {GONE_T:?} \
                 (sleeping in {:?}, {} CPU ticks)",
                sleeping_in(pid),
                cpu_ticks(pid)
            ),
        }
    }
}

/// Closing the pty ends the console: as the controlling terminal
/// (the kernel sends SIGHUP: status 129, or 1 when the end of input is seen first)
/// and as a terminal that is not the controlling one (no SIGHUP: reading it fails,
/// status 1 and a word on stderr), with and without a daemon.
#[test]
fn closing_the_pty_ends_the_console() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let empty = tempfile::tempdir().expect("tempdir");
    for (what, dir) in [
        ("with a daemon", sw.runtime_dir()),
        ("without a daemon", empty.path()),
    ] {
        let mut con = console_on_pty(dir, PtyOpts::default());
        con.hang_up();
        let status = expect_gone(&mut con, &format!("hang-up {what}"));
        assert!(
            matches!(status.code(), Some(129 | 1)),
            "hang-up {what}: {status}"
        );

        let mut con = console_on_pty(
            dir,
            PtyOpts {
                ctty: false,
                stderr_pipe: true,
                ..PtyOpts::default()
            },
        );
        con.type_bytes(b"?");
        con.wait_output("Help", SCREEN_T);
        con.hang_up();
        let status = expect_gone(&mut con, &format!("end of input {what}"));
        let err = con.stderr_text();
        assert_eq!(
            status.code(),
            Some(1),
            "end of input {what}: {status}; {err}"
        );
        assert!(err.contains("pbx-tui: the terminal"), "{err}");
    }
}

/// A console stuck writing to a terminal that takes no more output (a stalled SSH
/// link) still ends on SIGTERM, with status 143.
#[test]
fn a_console_stuck_on_a_stalled_terminal_ends_on_sigterm() {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut con = console_on_pty(empty.path(), PtyOpts::default());
    con.stop_output();
    // The clock's next redraw blocks in write(2).
    let pid = con.pid();
    let stuck = poll_until(SCREEN_T, || {
        let w = sleeping_in(pid);
        (w.contains("wait_woken") || w.contains("write")).then_some(w)
    });
    assert!(
        stuck.is_some(),
        "pbx-tui never blocked writing (sleeps in {:?})",
        sleeping_in(pid)
    );
    con.signal(Signal::SIGTERM);
    let status = expect_gone(&mut con, "SIGTERM while stuck writing");
    assert_eq!(status.code(), Some(143), "{status}");
}

/// `T` shows the selected extension's live SIP trace where the log is: a
/// REGISTER and its challenge; the switch traces while it is open and stops
/// when `T` closes it.
#[test]
fn t_shows_the_selected_extensions_sip_trace_and_closing_it_stops_the_trace() {
    let sw = Switch::start(&Conf::new(&[21, 22]).build());
    let con = Console::start(&sw, "", 100, 30);
    con.wait_for(&["reg 0/2"]);
    con.keys(&["21"]);
    con.keys(&["T"]);
    con.wait_for(&["SIP trace of 21"]);
    let tracing = |sw: &Switch| {
        let o = sw.pbxctl(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v["traces"]["count"].as_u64().unwrap_or(0)
    };
    assert!(
        coventry_tests::poll_until(T, || (tracing(&sw) == 1).then_some(())).is_some(),
        "the switch never traced"
    );
    let mut phone = Ua::ext(sw.addr(), 21);
    phone.register(300);
    let s = con.wait_for(&["REGISTER", "401 Unauthorized", "200 OK"]);
    assert!(
        !s.contains(" Log "),
        "the trace takes the log's place:\n{s}"
    );
    con.keys(&["T"]);
    con.wait_for(&[" Log "]);
    assert!(
        coventry_tests::poll_until(T, || (tracing(&sw) == 0).then_some(())).is_some(),
        "the trace did not stop when the console closed it"
    );
}

/// The trace goes on across a restart of the switch: the console says the
/// switch went away and came back, takes a lease on the new one (whose state
/// shows it) and traces what it handles.
#[test]
fn the_trace_goes_on_across_a_restart_of_the_switch() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let con = Console::start(&sw, "", 100, 30);
    con.wait_for(&["reg 0/2"]);
    con.keys(&["21"]);
    con.keys(&["T"]);
    con.wait_for(&["SIP trace of 21"]);
    let old = sw.pid().expect("pid");
    sw.wait_state("the trace running", T, |s| s.body.site.traces == 1);
    sw.restart();
    let new = sw.pid().expect("pid");
    con.wait_for(&[
        &format!("the switch stopped (pid {old})"),
        &format!("the switch restarted (pid {new}); tracing 21 again"),
    ]);
    // Said once the new switch shows the console's lease.
    assert_eq!(sw.snapshot().body.site.traces, 1);
    let mut phone = Ua::ext(sw.addr(), 21);
    phone.register(300);
    let s = con.wait_for(&["REGISTER", "401 Unauthorized", "200 OK"]);
    assert!(!s.contains("ended:"), "the trace ended:\n{s}");
}
