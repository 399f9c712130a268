//! Another local user can neither read nor steer the switch through its runtime
//! files, and no writer or reader can break the IPC for the others.
//!
//! The tests run programs as other users with `setpriv` (they need root, as
//! `scripts/test` is run; without it they say so and pass): `nobody` (uid 65534)
//! runs the daemon on its defaults (`/tmp/coventry-65534`, `/tmp/coventry-state-65534`
//! without `XDG_RUNTIME_DIR`, `HOME` and the `COVENTRY_*` variables), `daemon` (uid 1)
//! is the attacker. The binaries are copied to a directory everyone may read, so
//! the other users can run them wherever the checkout is.
//!
//! - the `/tmp` race: a runtime or state directory pre-made by the attacker (0777,
//!   with links at the temporary names, the state block, the FIFO and the saved
//!   files pointing at a victim file) is refused with a clear error and the victim
//!   is untouched; pbxctl refuses such a directory, and files of another user;
//! - the daemon's own directory is closed to other users (modes 0750/0640/0660),
//!   and a service directory made by root (`/run/...`, systemd's
//!   `RuntimeDirectory=`) serves the members of the daemon's group only;
//! - a state block truncated under `pbxctl watch` (the console: `console.rs`) is
//!   reported, never a SIGBUS;
//! - a partial line or junk from one writer does not swallow the next command;
//!   the junk gets its error result, a partial line left alone is dropped after
//!   the timeout with one.
#![allow(clippy::unwrap_used)]

use coventry_shared::control::PARTIAL_LINE_TIMEOUT_MS;
use coventry_shared::event::{Event, ResultCode};
use coventry_tests::{
    coventryd_bin, pbxctl_bin, pbxctl_in, poll_until, run_bounded, Conf, SnapshotExt, Switch, T,
};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;
const ATTACKER: u32 = 1;
/// The runtime directory `nobody`'s daemon uses by default (no XDG_RUNTIME_DIR).
const TMP_RUNTIME: &str = "/tmp/coventry-65534";
/// The state directory it uses by default (no HOME, no XDG_STATE_HOME).
const TMP_STATE: &str = "/tmp/coventry-state-65534";
/// Bound for one program run as another user.
const RUN_T: Duration = Duration::from_secs(20);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skip (pass, saying so) when not root: `setpriv` needs it.
macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: running programs as other users needs root");
            return;
        }
    };
}

/// The environment variables that would choose other directories than the defaults.
const DIR_VARS: &[&str] = &[
    "XDG_RUNTIME_DIR",
    "XDG_STATE_HOME",
    "HOME",
    "COVENTRY_RUNTIME_DIR",
    "COVENTRY_STATE_DIR",
    "COVENTRY_CONFIG",
    "COVENTRY_LISTEN",
];

/// `program` run as `uid`:`gid` with no supplementary groups, without the directory
/// variables.
fn as_user(uid: u32, gid: u32, program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(program);
    for v in DIR_VARS {
        c.env_remove(v);
    }
    c
}

/// Run the shell `script` as `uid`:`gid`, bounded.
fn sh_as(uid: u32, gid: u32, script: &str) -> Output {
    let mut c = as_user(uid, gid, Path::new("/bin/sh"));
    c.arg("-c").arg(script);
    run_bounded(c, RUN_T).expect("run sh")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A scratch directory everyone may enter, with copies of the binaries, the
/// configuration, and a victim file of `nobody`'s.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("coventry-lsec-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        for (bin, name) in [(coventryd_bin(), "coventryd"), (pbxctl_bin(), "pbxctl")] {
            let to = dir.path().join(name);
            std::fs::copy(&bin, &to).expect("copy binary");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let conf = dir.path().join("coventry.conf");
        std::fs::write(&conf, Conf::new(&[21, 22, 23]).build()).expect("conf");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").expect("victim");
        nix::unistd::chown(
            &victim,
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            Some(nix::unistd::Gid::from_raw(NOGROUP)),
        )
        .expect("chown victim");
        Lab { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn victim(&self) -> PathBuf {
        self.path().join("victim")
    }

    fn assert_victim_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(self.victim()).expect("victim"),
            "precious\n",
            "the victim file was written through a link"
        );
    }

    /// coventryd as `uid`:`gid` on its defaults but the configuration file, its
    /// standard error in `coventryd.log` here.
    fn daemon_cmd(&self, uid: u32, gid: u32) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("coventryd.log"))
            .expect("log");
        let mut c = as_user(uid, gid, &self.bin("coventryd"));
        c.arg("--config")
            .arg(self.path().join("coventry.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("coventryd.log")).unwrap_or_default()
    }

    /// Run coventryd as `nobody` where it must refuse to start: its exit status and
    /// its log.
    fn daemon_refuses(&self) -> String {
        let mut child = Daemon(Some(
            self.daemon_cmd(NOBODY, NOGROUP).spawn().expect("start"),
        ));
        let st = poll_until(Duration::from_secs(10), || {
            child.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
        });
        let log = self.log();
        match st {
            Some(st) => assert_eq!(st.code(), Some(1), "{log}"),
            None => panic!("coventryd did not refuse to start:\n{log}"),
        }
        child.0 = None;
        log
    }

    /// pbxctl as `uid`:`gid` with `args`.
    fn pbxctl(&self, uid: u32, gid: u32, args: &[&str]) -> Output {
        let mut c = as_user(uid, gid, &self.bin("pbxctl"));
        c.args(args);
        run_bounded(c, RUN_T).expect("run pbxctl")
    }
}

/// A daemon started by a test: stopped (TERM, then KILL) and reaped with it.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if poll_until(Duration::from_secs(5), || c.try_wait().ok().flatten()).is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Exclusive use of `nobody`'s default directories under /tmp for one test,
/// removed before and after it (also when it fails).
struct TmpDefaults {
    _lock: MutexGuard<'static, ()>,
}

impl TmpDefaults {
    fn take() -> TmpDefaults {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        Self::clean();
        TmpDefaults { _lock: lock }
    }

    fn clean() {
        for d in [TMP_RUNTIME, TMP_STATE] {
            match std::fs::symlink_metadata(d) {
                Ok(m) if m.file_type().is_dir() => {
                    let _ = std::fs::remove_dir_all(d);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(d);
                }
                Err(_) => {}
            }
        }
    }
}

impl Drop for TmpDefaults {
    fn drop(&mut self) {
        Self::clean();
    }
}

/// The attacker's trap: `dir` made 0777 with links at the names the daemon would
/// use, all pointing at the victim.
fn plant_trap(lab: &Lab, dir: &str, names: &[&str]) {
    let mut script = format!("mkdir -m 0777 {dir}");
    for n in names {
        script.push_str(&format!(" && ln -s {} {dir}/{n}", lab.victim().display()));
    }
    let o = sh_as(ATTACKER, ATTACKER, &script);
    assert!(
        o.status.success(),
        "the attacker's setup failed: {}",
        text(&o)
    );
    let m = std::fs::symlink_metadata(dir).expect("trap");
    assert_eq!((m.uid(), m.mode() & 0o7777), (ATTACKER, 0o777));
}

fn entries(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_runtime_dir_made_by_another_user_in_tmp_is_refused() {
    require_root!();
    let lab = Lab::new();
    let _tmp = TmpDefaults::take();
    // Links at the old predictable temporary names too (pid-based).
    let mut names = vec!["state", "control"];
    let pids: Vec<String> = (0..64).map(|i| format!(".state.{}.tmp", 100 + i)).collect();
    names.extend(pids.iter().map(String::as_str));
    plant_trap(&lab, TMP_RUNTIME, &names);
    let before = entries(TMP_RUNTIME);

    let log = lab.daemon_refuses();
    for needle in [
        TMP_RUNTIME,
        "runtime directory",
        "owned by uid 1 (daemon)",
        "mode 0777",
        "--runtime-dir",
    ] {
        assert!(log.contains(needle), "no {needle:?} in the error:\n{log}");
    }
    lab.assert_victim_untouched();
    assert_eq!(
        entries(TMP_RUNTIME),
        before,
        "the daemon created files in the trap"
    );

    // pbxctl refuses the trap too, for reading and for writing.
    for args in [&["status"][..], &["dnd", "21", "on"][..]] {
        let o = lab.pbxctl(NOBODY, NOGROUP, args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "pbxctl {args:?}: {t}");
        assert!(t.contains("refusing") && t.contains(TMP_RUNTIME), "{t}");
    }
    lab.assert_victim_untouched();

    // Not writable by others but still the attacker's, with its own block and
    // FIFO: refused by both.
    TmpDefaults::clean();
    let o = sh_as(
        ATTACKER,
        ATTACKER,
        &format!(
            "mkdir -m 0755 {TMP_RUNTIME} && mkfifo -m 0666 {TMP_RUNTIME}/control \
             && head -c 4096 /dev/zero > {TMP_RUNTIME}/state"
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    let log = lab.daemon_refuses();
    assert!(log.contains("owned by uid 1 (daemon)"), "{log}");
    let o = lab.pbxctl(NOBODY, NOGROUP, &["reload"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("anyone could have made it"), "{t}");
}

#[test]
fn a_state_dir_made_by_another_user_in_tmp_is_refused() {
    require_root!();
    let lab = Lab::new();
    let _tmp = TmpDefaults::take();
    plant_trap(
        &lab,
        TMP_STATE,
        &[
            "registrations.json",
            "settings.json",
            "secrets",
            ".registrations.json.100.tmp",
            ".settings.json.100.tmp",
        ],
    );
    let before = entries(TMP_STATE);
    let log = lab.daemon_refuses();
    for needle in [
        TMP_STATE,
        "state directory",
        "owned by uid 1 (daemon)",
        "mode 0777",
        "--state-dir",
    ] {
        assert!(log.contains(needle), "no {needle:?} in the error:\n{log}");
    }
    lab.assert_victim_untouched();
    assert_eq!(entries(TMP_STATE), before);
}

/// Start coventryd as `uid`:`gid` (its runtime directory `runtime`) and wait until
/// pbxctl as the same user sees it running.
fn start_daemon(lab: &Lab, uid: u32, gid: u32, runtime: Option<&Path>) -> Daemon {
    let mut cmd = lab.daemon_cmd(uid, gid);
    if let Some(r) = runtime {
        cmd.env("COVENTRY_RUNTIME_DIR", r);
    }
    let mut d = Daemon(Some(cmd.spawn().expect("start coventryd")));
    let dir = runtime.map_or(PathBuf::from(TMP_RUNTIME), Path::to_path_buf);
    let dir_arg = dir.display().to_string();
    let ready = poll_until(Duration::from_secs(10), || {
        if let Some(st) = d.0.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("coventryd exited ({st}):\n{}", lab.log());
        }
        if !dir.join("state").exists() {
            return None;
        }
        let o = lab.pbxctl(uid, gid, &["--runtime-dir", &dir_arg, "status"]);
        o.status.success().then_some(())
    });
    assert!(ready.is_some(), "coventryd not ready:\n{}", lab.log());
    d
}

fn mode(p: impl AsRef<Path>) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).expect("stat");
    (m.uid(), m.mode() & 0o7777)
}

#[test]
fn the_default_tmp_runtime_dir_is_closed_to_other_users() {
    require_root!();
    let lab = Lab::new();
    let _tmp = TmpDefaults::take();
    let d = start_daemon(&lab, NOBODY, NOGROUP, None);
    assert_eq!(mode(TMP_RUNTIME), (NOBODY, 0o750));
    assert_eq!(mode(format!("{TMP_RUNTIME}/state")), (NOBODY, 0o640));
    assert_eq!(mode(format!("{TMP_RUNTIME}/control")), (NOBODY, 0o660));
    assert_eq!(mode(TMP_STATE), (NOBODY, 0o750));
    assert!(
        entries(TMP_RUNTIME).iter().all(|n| !n.ends_with(".tmp")),
        "{:?}",
        entries(TMP_RUNTIME)
    );

    // Its user drives it on the defaults.
    let o = lab.pbxctl(NOBODY, NOGROUP, &["dnd", "21", "on"]);
    assert!(o.status.success(), "{}", text(&o));

    // Another user can neither read the block nor write the FIFO...
    let o = sh_as(
        ATTACKER,
        ATTACKER,
        &format!("cat {TMP_RUNTIME}/state > /dev/null"),
    );
    assert!(!o.status.success(), "the attacker read the state block");
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));
    let o = sh_as(
        ATTACKER,
        ATTACKER,
        &format!("echo 'dnd 22 on' > {TMP_RUNTIME}/control"),
    );
    assert!(!o.status.success(), "the attacker wrote the FIFO");
    // ...and their pbxctl does not trust a directory of another user in /tmp.
    let o = lab.pbxctl(
        ATTACKER,
        ATTACKER,
        &["--runtime-dir", TMP_RUNTIME, "dnd", "22", "on"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("anyone could have made it"),
        "{}",
        text(&o)
    );

    let o = lab.pbxctl(NOBODY, NOGROUP, &["exts", "--json"]);
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let exts: serde_json::Value = serde_json::from_str(&t).expect("json");
    let dnd = |n: u64| {
        exts.as_array()
            .and_then(|a| a.iter().find(|e| e["ext"] == n))
            .map(|e| e["dnd"] == true)
    };
    assert_eq!((dnd(21), dnd(22)), (Some(true), Some(false)), "{t}");
    drop(d);
}

/// A directory like systemd's `RuntimeDirectory=` for a service running as
/// `nobody`: made by root under /run, owned by the service, mode 0750. Removed with it.
struct ServiceDir(PathBuf);

impl ServiceDir {
    fn new() -> ServiceDir {
        let p = PathBuf::from(format!("/run/coventry-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).expect("mkdir /run/...");
        let sd = ServiceDir(p);
        nix::unistd::chown(
            &sd.0,
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            Some(nix::unistd::Gid::from_raw(NOGROUP)),
        )
        .expect("chown");
        std::fs::set_permissions(&sd.0, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        sd
    }
}

impl Drop for ServiceDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_service_runtime_dir_made_by_root_serves_the_daemons_group_only() {
    require_root!();
    let lab = Lab::new();
    let _tmp = TmpDefaults::take();
    let svc = ServiceDir::new();
    let _d = start_daemon(&lab, NOBODY, NOGROUP, Some(&svc.0));
    let dir = svc.0.display().to_string();
    // An operator (another user) in the daemon's group: trusted, reads, commands.
    let o = lab.pbxctl(ATTACKER, NOGROUP, &["--runtime-dir", &dir, "status"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = lab.pbxctl(
        ATTACKER,
        NOGROUP,
        &["--runtime-dir", &dir, "dnd", "21", "on"],
    );
    assert!(o.status.success(), "{}", text(&o));
    // A user outside the group: a clear permission error, for reading and writing.
    for args in [&["status"][..], &["dnd", "22", "on"][..]] {
        let mut a = vec!["--runtime-dir", dir.as_str()];
        a.extend_from_slice(args);
        let o = lab.pbxctl(ATTACKER, ATTACKER, &a);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains("ermission denied"), "{t}");
    }
}

/// Lines of a child's standard output, as they come.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait (bounded by `within`) for a line containing `needle`; the lines seen.
fn expect_line(rx: &Receiver<String>, needle: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                panic!("no line with {needle:?} within {within:?}; got {seen:?}")
            }
        }
    }
}

#[test]
fn truncating_the_state_block_under_pbxctl_watch_is_reported_not_a_fault() {
    let mut sw = Switch::start(&Conf::new(&[21, 22]).build());
    let mut watch = Command::new(pbxctl_bin());
    watch
        .arg("--runtime-dir")
        .arg(sw.runtime_dir())
        .arg("watch")
        .env_remove("COVENTRY_RUNTIME_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = KillOnDrop(watch.spawn().expect("pbxctl watch"));
    let rx = lines_of(&mut child.0);
    // Attached: it shows a result we cause (again until it does: watch starts at
    // the end of the ring, whenever it gets there).
    let attached = poll_until(T, || {
        sw.fifo_write(b"#41 why 21\n").unwrap();
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|l| l.contains("#41 "))
    });
    assert!(attached.is_some(), "pbxctl watch never showed a result");

    // Freeze the daemon (so it does not write into the cut file) and cut the block.
    sw.signal(nix::sys::signal::Signal::SIGSTOP);
    let state = coventry_shared::runtime::state_path(sw.runtime_dir());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&state)
        .expect("open state")
        .set_len(0)
        .expect("truncate");
    expect_line(&rx, "was truncated; waiting for a new one", T);
    let o = pbxctl_in(sw.runtime_dir(), &["status"], T);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("truncated"), "{}", text(&o));

    // A new daemon: watch follows it.
    sw.kill9();
    sw.restart();
    let pid = sw.pid().expect("pid");
    expect_line(&rx, &format!("coventryd restarted (pid {pid})"), T);
    sw.fifo_write(b"#42 why 22\n").unwrap();
    expect_line(&rx, "#42 ", T);
    assert!(
        matches!(child.0.try_wait(), Ok(None)),
        "pbxctl watch died: {:?}",
        child.0.try_wait()
    );
}

/// A child killed and reaped when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn result_of(sw: &Switch, mark: usize, id: u64, within: Duration) -> (ResultCode, String) {
    match sw.expect_event_after(
        mark,
        &format!("CommandResult #{id}"),
        |e| matches!(e, Event::CommandResult { id: Some(i), .. } if *i == id),
        within,
    ) {
        Event::CommandResult { code, text, .. } => (code, text),
        _ => unreachable!(),
    }
}

#[test]
fn junk_or_a_partial_line_from_one_writer_does_not_swallow_the_next_command() {
    let sw = Switch::start(&Conf::new(&[21, 22, 23]).build());
    let mark = sw.mark();
    // A writer leaves junk without a newline, then pbxctl sends a command.
    sw.fifo_write(b"#777 rel\xff\x00oad").unwrap();
    let o = sw.pbxctl(&["dnd", "21", "on"]);
    assert!(o.status.success(), "{}", text(&o));
    sw.wait_settings(21, "on DND", |s| s.dnd);
    let (code, t) = result_of(&sw, mark, 777, T);
    assert_eq!(code, ResultCode::BadSyntax, "{t}");

    // A partial command left alone: dropped after the timeout with its own error
    // result, never carried out, and never joined to what follows.
    let mark = sw.mark();
    sw.fifo_write(b"#778 dnd 22 on").unwrap();
    let (code, t) = result_of(
        &sw,
        mark,
        778,
        Duration::from_millis(PARTIAL_LINE_TIMEOUT_MS) + T,
    );
    assert_eq!(code, ResultCode::BadSyntax, "{t}");
    assert!(t.contains("incomplete line"), "{t}");
    // A plain shell-style line (no framing newline) still works.
    sw.fifo_write(b"#779 dnd 23 on\n").unwrap();
    assert_eq!(result_of(&sw, mark, 779, T).0, ResultCode::Ok);
    sw.wait_settings(23, "on DND", |s| s.dnd);
    assert!(
        !sw.snapshot().settings_of(22).dnd,
        "the dropped line was carried out"
    );
}

/// The trace ring is the daemon group's only, like the state block: an operator in
/// the group traces; another user can neither read the ring nor start a trace.
#[test]
fn the_trace_ring_serves_the_daemons_group_only() {
    require_root!();
    let lab = Lab::new();
    let _tmp = TmpDefaults::take();
    let svc = ServiceDir::new();
    let _d = start_daemon(&lab, NOBODY, NOGROUP, Some(&svc.0));
    let dir = svc.0.display().to_string();
    let ring = svc.0.join("trace");
    assert!(!ring.exists(), "a trace ring while nobody traces");
    // An operator in the daemon's group traces everything.
    let mut c = as_user(ATTACKER, NOGROUP, &lab.bin("pbxctl"));
    c.args(["--runtime-dir", &dir, "trace", "all"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut tracer = KillOnDrop(c.spawn().expect("pbxctl trace"));
    assert!(
        poll_until(RUN_T, || ring.exists().then_some(())).is_some(),
        "no trace ring while tracing"
    );
    assert_eq!(mode(&ring), (NOBODY, 0o640));
    // A user outside the group: no reading it, no trace of their own.
    let o = sh_as(
        ATTACKER,
        ATTACKER,
        &format!("cat {} > /dev/null", ring.display()),
    );
    assert!(!o.status.success(), "another user read the trace ring");
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));
    let o = lab.pbxctl(
        ATTACKER,
        ATTACKER,
        &["--runtime-dir", &dir, "trace", "--count", "1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("ermission denied"), "{}", text(&o));
    // The operator's pbxctl gone, the ring goes.
    let _ = tracer.0.kill();
    let _ = tracer.0.wait();
    assert!(
        poll_until(RUN_T, || (!ring.exists()).then_some(())).is_some(),
        "the trace ring outlived its last tracer"
    );
}
