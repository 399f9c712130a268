//! `pbxctl watch` ends when nobody is left to read it: its pipe's reader leaves
//! (`pbxctl watch | head -1`) on a switch with no more events, its terminal hangs
//! up with or without SIGHUP, or SIGTERM, SIGHUP or SIGINT come — also while it
//! waits for a stopped daemon. Each time the process must be gone (the time it took
//! is printed; the bound only stops a hung test).

use coventry_tests::pty::{in_futex_wait, sleeping_in, PtyChild, PtyOpts};
use coventry_tests::{pbxctl_bin, poll_until, Conf, Switch};
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The bound on watch being gone. It only stops a hung test: a watch that misses
/// its reader leaving or a signal never ends on a quiet switch.
const GONE_T: Duration = Duration::from_secs(20);
/// How long watch gets to show its first line.
const START_T: Duration = Duration::from_secs(10);

/// A child killed (and collected) when the test ends, even when it fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Write probe messages to the switch until `seen` says watch printed one (their
/// words are private: watch shows "operator -> 21" and their length): from
/// then on watch is following the ring.
fn probe_until(sw: &Switch, mut seen: impl FnMut() -> bool) {
    let end = Instant::now() + START_T;
    let mut n = 0;
    while !seen() {
        assert!(Instant::now() < end, "watch never showed a probe");
        n += 1;
        sw.fifo_write(format!("message 21 probe-{n}\n").as_bytes())
            .expect("fifo");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything the switch had to say is on `w`'s screen: a control fence's result
/// (the last event) is shown, and watch sleeps on the ring with nothing to write.
fn printed_everything(sw: &Switch, w: &PtyChild) {
    let fence = sw.control_fence();
    w.wait_output(&format!("#{fence} "), START_T);
    idle(w.pid());
}

/// Wait (bounded) until watch (`pid`) sleeps on the event ring: it has written all
/// it had.
fn idle(pid: u32) {
    if poll_until(START_T, || in_futex_wait(pid).then_some(())).is_none() {
        panic!(
            "watch (pid {pid}) never went to sleep on the ring (sleeping in {:?})",
            sleeping_in(pid)
        );
    }
}

fn watch_on_pty(dir: &Path, ctty: bool) -> PtyChild {
    let dir = dir.display().to_string();
    PtyChild::spawn(
        &pbxctl_bin(),
        &["--runtime-dir", &dir, "watch"],
        PtyOpts {
            ctty,
            stderr_pipe: true,
            ..PtyOpts::default()
        },
    )
}

fn expect_gone(w: &mut PtyChild, what: &str) -> ExitStatus {
    let pid = w.pid();
    match w.wait_gone(GONE_T) {
        Some((status, took)) => {
            eprintln!("{what}: gone after {} ms, {status}", took.as_millis());
            status
        }
        None => panic!(
            "{what}: pbxctl watch (pid {pid}) still runs after {GONE_T:?} (sleeping in {:?})",
            sleeping_in(pid)
        ),
    }
}

/// `pbxctl watch | head -1` on a quiet switch: watch ends as soon as `head` does,
/// quietly with status 0, without waiting for an event to fail to print.
#[test]
fn watch_ends_when_its_reader_leaves_on_a_quiet_switch() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    // From the start of the ring, which holds only the daemon's start notice: one
    // line at once, then nothing more.
    let mut child = Reaped(
        Command::new(pbxctl_bin())
            .arg("--runtime-dir")
            .arg(sw.runtime_dir())
            .args(["watch", "--from-start"])
            .env_remove("COVENTRY_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pbxctl watch"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let pid = child.0.id();
    // `head -1`: read one line, then close the pipe.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
        // Whatever else watch had to say is written (into the pipe, whose reader
        // is still there) once it sleeps on the ring: after this, it has nothing
        // to write.
        idle(pid);
        drop(out);
        let _ = tx.send(String::new());
    });
    let first = rx.recv_timeout(START_T).expect("the first line");
    assert!(first.contains("started"), "{first}");
    rx.recv_timeout(START_T).expect("the pipe closed");
    let events = sw.events().len();
    let t0 = Instant::now();
    let status = poll_until(GONE_T, || child.0.try_wait().ok().flatten()).unwrap_or_else(|| {
        panic!(
            "watch still runs {GONE_T:?} after its reader left (sleeping in {:?})",
            sleeping_in(child.0.id())
        )
    });
    eprintln!("reader left: gone after {} ms", t0.elapsed().as_millis());
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "no message: {err}");
    assert_eq!(
        sw.events().len(),
        events,
        "no event came that watch could have failed to print"
    );
}

/// Its terminal hangs up: as the controlling terminal (SIGHUP), and as one that
/// is not (no SIGHUP; watch sees the hang-up itself and stops quietly).
#[test]
fn watch_ends_when_its_terminal_hangs_up() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    for ctty in [true, false] {
        let mut w = watch_on_pty(sw.runtime_dir(), ctty);
        probe_until(&sw, || w.output().contains("operator -> 21"));
        // Nothing left to write when the terminal goes.
        printed_everything(&sw, &w);
        w.hang_up();
        let what = format!("hang-up (controlling terminal: {ctty})");
        let status = expect_gone(&mut w, &what);
        if ctty {
            assert!(
                status.code() == Some(0)
                    || std::os::unix::process::ExitStatusExt::signal(&status) == Some(1),
                "{what}: {status}"
            );
        } else {
            assert_eq!(status.code(), Some(0), "{what}: {}", w.stderr_text());
        }
    }
}

/// SIGTERM, SIGHUP and SIGINT end watch at once, while it follows the ring and
/// while it waits for a stopped daemon; and a hang-up ends it while it waits.
#[test]
fn signals_end_watch_also_while_it_waits_for_the_daemon() {
    use std::os::unix::process::ExitStatusExt;
    let mut sw = Switch::start(&Conf::new(&[21]).build());
    let signals = [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT];
    let watching: Vec<(Signal, PtyChild)> = signals
        .iter()
        .map(|s| (*s, watch_on_pty(sw.runtime_dir(), true)))
        .collect();
    for (_, w) in &watching {
        probe_until(&sw, || w.output().contains("operator -> 21"));
    }
    for (sig, mut w) in watching {
        w.signal(sig);
        let status = expect_gone(&mut w, &format!("{sig} while following"));
        assert_eq!(status.signal(), Some(sig as i32), "{status}");
    }

    let mut waiting: Vec<(Option<Signal>, PtyChild)> = signals
        .iter()
        .map(|s| Some(*s))
        .chain([None])
        .map(|s| (s, watch_on_pty(sw.runtime_dir(), true)))
        .collect();
    for (_, w) in &waiting {
        probe_until(&sw, || w.output().contains("operator -> 21"));
    }
    sw.stop();
    for (_, w) in &waiting {
        w.wait_output("coventryd stopped", START_T);
    }
    for (sig, w) in waiting.iter_mut() {
        match sig {
            Some(sig) => {
                w.signal(*sig);
                let status = expect_gone(w, &format!("{sig} while waiting for the daemon"));
                assert_eq!(status.signal(), Some(*sig as i32), "{status}");
            }
            None => {
                w.hang_up();
                expect_gone(w, "hang-up while waiting for the daemon");
            }
        }
    }
}
