//! Every example command in the README and the man pages, taken from the files
//! themselves and run as written (through `bash -c`) against a switch on its
//! built-in defaults (extensions 10–19, generated secrets), each on a fresh switch
//! with the ten phones registered. Each must exit 0.
//!
//! The environment is a site's: `PATH` holds the built `pbxctl` (and its links
//! `pbx-message`, `pbx-registry`, `pbx-runstate`), `pbx-tui` and `coventryd`;
//! `HOME` and `TMPDIR` are the test's; `COVENTRY_RUNTIME_DIR`,
//! `COVENTRY_STATE_DIR` (`~/.local/state/coventry`, as a user's switch has it)
//! and `COVENTRY_LISTEN` (loopback, a port the kernel picks) are set as a site
//! sets them, so that nothing outside the test's directories is touched.
//!
//! A command block beside a configuration block (the same man page section) runs
//! on a switch started on that configuration. Cron lines run their command (the
//! user field of `/etc/cron.d` lines is dropped: the test runs as itself).
//! `$ COMMAND` lines are compared with the output printed under them. Commands
//! that run until stopped (`pbxctl watch` and `trace`, `pbx-tui`, `coventryd`) are started,
//! seen to produce their first output, and ended.
#![allow(clippy::unwrap_used)]

use coventry_shared::runtime::state_path;
use coventry_shared::stateblock::StateReader;
use coventry_tests::pty::{PtyChild, PtyOpts};
use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{
    bin_dir, coventryd_bin, pbxctl_bin, poll_until, run_bounded, workspace_dir, LONG, T,
};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Commands the test does not run, each with why (matched on the start of the
/// command as written).
const SKIPPED: &[(&str, &str)] = &[
    // Changes to the machine itself (packages, units, users) need root on a
    // real system; tests/tests/package.rs installs the package in a throw-away
    // root instead.
    ("sudo ", "changes the machine (apt, systemctl, usermod)"),
    // A release build of the whole switch (minutes on a small machine) listening
    // on 0.0.0.0:5060, beyond the loopback a test keeps to; the binaries it builds
    // are run by the coventryd(8) and pbx-tui(1) examples.
    ("cargo run --release", "a release build, and 0.0.0.0:5060"),
    // A release build and a package; tests/tests/package.rs runs the script on
    // the test's binaries.
    (
        "scripts/package-deb",
        "a release build (package.rs runs it)",
    ),
    // The whole test suite, this test included.
    ("scripts/test", "runs every test, this one included"),
    // Needs a second machine.
    ("ssh ", "needs a remote host"),
    // The build this test runs on is the same source (debug); its binaries are
    // on the site's PATH as the README's `export PATH` puts the release ones.
    (
        "cargo build --release",
        "a release build (the test's binaries stand in)",
    ),
    ("export PATH=", "the site's PATH holds the binaries already"),
    // The switch on every address at 5060, beyond the loopback a test keeps to;
    // the coventryd(8) examples start it on the test's own address.
    (
        "coventryd --listen 0.0.0.0",
        "listens on 0.0.0.0:5060 (coventryd(8)'s examples run it)",
    ),
    // Edits /etc/coventry.conf, which the built-in default these examples run on
    // does not have; tests/tests/ext_manage.rs runs add, secret and remove on a
    // configuration file against the daemon.
    (
        "pbxctl ext ",
        "edits /etc/coventry.conf (ext_manage.rs runs them)",
    ),
];

/// Programs an example line may start with.
const PROGRAMS: &[&str] = &[
    "pbxctl",
    "pbx-message",
    "pbx-registry",
    "pbx-runstate",
    "pbx-tui",
    "coventryd",
    "cat",
    "printf",
    "ssh",
    "sudo",
    "cargo",
    "scripts/package-deb",
    "scripts/test",
    "scripts/softphone",
    "export",
];

/// One example command.
#[derive(Debug, Clone)]
struct Example {
    /// Where it is written (file and line).
    place: String,
    /// The command line, unescaped.
    command: String,
    /// Output printed under a `$ COMMAND` line.
    output: Option<String>,
    /// The configuration shown beside it, if any.
    config: Option<String>,
}

/// `roff` escapes used in the pages' examples, as the reader sees them.
fn unroff(line: &str) -> String {
    line.replace("\\-", "-")
        .replace("\\(aq", "'")
        .replace("\\(ga", "`")
        .replace("\\(dq", "\"")
        .replace("\\e", "\\")
}

/// The program a command line runs (after `NAME=value` words, a value may be a
/// `$(...)`).
fn program(line: &str) -> &str {
    let mut rest = line.trim_start();
    loop {
        let name_len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        if name_len == 0 || !rest[name_len..].starts_with('=') {
            break;
        }
        let value = &rest[name_len + 1..];
        let end = if let Some(inner) = value.strip_prefix("$(") {
            inner.find(')').map(|i| i + 3).unwrap_or(value.len())
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = value[end..].trim_start();
    }
    rest.split_whitespace().next().unwrap_or("")
}

/// The command of a crontab line (`MIN HOUR DOM MON DOW [USER] COMMAND`), or
/// `None` when the line is not one.
fn cron_command(line: &str) -> Option<String> {
    let first = line.chars().next()?;
    if !(first.is_ascii_digit() || first == '*') {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let rest = words.get(5..)?;
    let rest = if rest.len() > 1 && !PROGRAMS.contains(&rest[0]) {
        &rest[1..]
    } else {
        rest
    };
    Some(rest.join(" "))
}

/// The command lines of one example block (`None` when the block is no command
/// block: configuration, JSON, log lines, a grammar). `$ ` lines take the lines
/// under them as their output.
fn commands_of(lines: &[(usize, String)], file: &str) -> Option<Vec<Example>> {
    let first = lines
        .iter()
        .map(|(_, l)| l.trim())
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let first = first.strip_prefix("$ ").unwrap_or(first);
    let first = cron_command(first).unwrap_or_else(|| first.to_string());
    if !PROGRAMS.contains(&program(&first)) {
        return None;
    }
    let mut out: Vec<Example> = Vec::new();
    let mut in_output = false;
    for (n, raw) in lines {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            in_output = false;
            continue;
        }
        let (command, prompt) = match l.strip_prefix("$ ") {
            Some(c) => (c.to_string(), true),
            None => match cron_command(l) {
                Some(c) => (c, false),
                None if in_output => {
                    if let Some(e) = out.last_mut() {
                        let o = e.output.get_or_insert_with(String::new);
                        o.push_str(l);
                        o.push('\n');
                    }
                    continue;
                }
                None => (l.to_string(), false),
            },
        };
        // A comment after the command (two spaces and #) is the reader's.
        let command = match command.find("  #") {
            Some(i) => command[..i].trim_end().to_string(),
            None => command,
        };
        assert!(
            PROGRAMS.contains(&program(&command)),
            "{file}:{n}: an example line this test does not know how to run: {command:?} \
             (add its program to PROGRAMS, or make the block no command block)"
        );
        in_output = prompt;
        out.push(Example {
            place: format!("{file}:{n}"),
            command,
            output: None,
            config: None,
        });
    }
    Some(out)
}

/// Whether a block is configuration (an INI fragment).
fn is_config(lines: &[(usize, String)]) -> bool {
    lines
        .iter()
        .map(|(_, l)| l.trim())
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.starts_with('[') && l.ends_with(']') || l.starts_with(';'))
}

/// The examples of a man page: its `.EX` blocks that hold commands; a block of
/// configuration in the same section is the configuration they run on.
fn man_examples(path: &Path) -> Vec<Example> {
    let name = format!("man/{}", path.file_name().unwrap().to_string_lossy());
    let text = std::fs::read_to_string(path).unwrap();
    // (section, blocks)
    let mut sections: Vec<Vec<Vec<(usize, String)>>> = vec![Vec::new()];
    let mut block: Option<Vec<(usize, String)>> = None;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with(".SH") {
            sections.push(Vec::new());
        } else if line == ".EX" {
            block = Some(Vec::new());
        } else if line == ".EE" {
            if let (Some(b), Some(s)) = (block.take(), sections.last_mut()) {
                s.push(b);
            }
        } else if let Some(b) = block.as_mut() {
            b.push((i + 1, unroff(line)));
        }
    }
    let mut out = Vec::new();
    for blocks in sections {
        let config: Vec<String> = blocks
            .iter()
            .filter(|b| is_config(b))
            .map(|b| b.iter().map(|(_, l)| format!("{l}\n")).collect())
            .collect();
        for b in &blocks {
            if let Some(cmds) = commands_of(b, &name) {
                for mut e in cmds {
                    if !config.is_empty() {
                        e.config = Some(config.concat());
                    }
                    out.push(e);
                }
            }
        }
    }
    out
}

/// The examples of the README: its `sh` code blocks, and the commands written
/// inline (`` `pbxctl ...` ``, `` `pbx-message ...` ``) in its prose.
fn readme_examples(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut block: Option<Vec<(usize, String)>> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(b) = block.as_mut() {
            if line.starts_with("```") {
                let b = block.take().unwrap_or_default();
                out.extend(commands_of(&b, "README.md").unwrap_or_else(|| {
                    panic!("README.md:{n}: a sh block with no command this test knows")
                }));
            } else {
                b.push((n, line.to_string()));
            }
            continue;
        }
        if line.trim_start() == "```sh" {
            block = Some(Vec::new());
            continue;
        }
        for (k, span) in line.split('`').enumerate() {
            // (The name alone, `pbxctl`, is a name, not a command.)
            if k % 2 == 1
                && span.contains(' ')
                && ["pbxctl", "pbx-message", "pbx-registry", "pbx-runstate"]
                    .contains(&program(span))
            {
                out.push(Example {
                    place: format!("README.md:{n}"),
                    command: span.to_string(),
                    output: None,
                    config: None,
                });
            }
        }
    }
    out
}

/// Every example, README first, then the man pages by name.
fn all_examples() -> Vec<Example> {
    let root = workspace_dir();
    let mut out = readme_examples(&root.join("README.md"));
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    for p in pages {
        out.extend(man_examples(&p));
    }
    out
}

/// `pbx-tui`, built here (the harness builds only coventryd and pbxctl).
fn pbx_tui_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PBX_TUI_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if std::env::var_os("COVENTRY_TEST_NO_BUILD").is_none_or(|v| v.is_empty()) {
        let dir = bin_dir();
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(workspace_dir())
            .args(["build", "--quiet", "-p", "pbx-tui"]);
        if let Some(target) = dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let o = run_bounded(cmd, Duration::from_secs(600)).unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    bin_dir().join("pbx-tui")
}

/// A fresh site: its directories, its `PATH`, and (when started) its switch.
struct Site {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    addr: Option<std::net::SocketAddr>,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::Builder::new()
            .prefix("coventry-examples-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        for d in ["bin", "home", "tmp", "run"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        use std::os::unix::fs::{symlink, PermissionsExt};
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        symlink(pbxctl_bin(), bin.join("pbxctl")).unwrap();
        for tool in ["pbx-message", "pbx-registry", "pbx-runstate"] {
            symlink(pbxctl_bin(), bin.join(tool)).unwrap();
        }
        symlink(coventryd_bin(), bin.join("coventryd")).unwrap();
        symlink(pbx_tui_bin(), bin.join("pbx-tui")).unwrap();
        Site {
            dir,
            daemon: None,
            addr: None,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn state_dir(&self) -> PathBuf {
        self.home().join(".local/state/coventry")
    }

    /// The site's environment, for a command.
    fn env(&self, cmd: &mut Command) {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.home())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("LANG", "C.UTF-8")
            .env("COVENTRY_RUNTIME_DIR", self.run_dir())
            .env("COVENTRY_STATE_DIR", self.state_dir())
            .env("COVENTRY_LISTEN", "127.0.0.1:0")
            .current_dir(self.home());
    }

    /// Start the switch (on `config` when given, else on the built-in default)
    /// and wait until it is ready.
    fn start(&mut self, config: Option<&str>) {
        let mut cmd = Command::new(coventryd_bin());
        self.env(&mut cmd);
        if let Some(text) = config {
            let p = self.dir.path().join("coventry.conf");
            std::fs::write(&p, text).unwrap();
            cmd.arg("--config").arg(p);
        }
        let log = std::fs::File::create(self.dir.path().join("coventryd.log")).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        self.daemon = Some(child);
        let state = state_path(&self.run_dir());
        let addr = poll_until(T, || {
            let r = StateReader::open(&state).ok()?;
            let h = r.header();
            let a: std::net::SocketAddr = h.bound.parse().ok()?;
            (h.pid == pid && a.port() != 0).then_some(a)
        });
        self.addr =
            Some(addr.unwrap_or_else(|| panic!("the switch did not come up\n{}", self.log())));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("coventryd.log")).unwrap_or_default()
    }

    /// The ten built-in phones, registered with their generated secrets.
    fn phones(&self) -> Vec<Ua> {
        let addr = self.addr.unwrap();
        let text = std::fs::read_to_string(self.state_dir().join("secrets")).unwrap();
        (10..=19u16)
            .map(|n| {
                let mut lines = text.lines().skip_while(|l| l.trim() != format!("[{n}]"));
                lines.next();
                let secret = lines
                    .find(|l| l.starts_with("secret"))
                    .and_then(|l| l.split_once('='))
                    .map(|(_, s)| s.trim().to_string())
                    .unwrap();
                let mut p = Ua::new(addr, &n.to_string(), &secret);
                p.register(300);
                p
            })
            .collect()
    }

    /// `bash -c COMMAND` in the site's environment, in a process group of its
    /// own.
    fn shell(&self, command: &str) -> Command {
        let mut cmd = Command::new("bash");
        self.env(&mut cmd);
        cmd.arg("-c").arg(command).process_group(0);
        // The repository's scripts are run from its top directory.
        if program(command).starts_with("scripts/") {
            cmd.current_dir(workspace_dir());
        }
        cmd
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            if poll_until(T, || c.try_wait().ok().flatten()).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Phones that answer every INVITE (200 with SDP) until told to stop, on a
/// thread of their own; returned when stopped.
struct Answering {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Ua>>,
}

impl Answering {
    fn start(phones: Vec<Ua>) -> Answering {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + LONG;
            while !s.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                for p in &phones {
                    if let Some(req) = p.recv_request(Duration::from_millis(5)) {
                        if req.method().as_deref() == Some("INVITE") {
                            p.respond_sdp(&req, 200, &sdp(&p.user, 1, "sendrecv"));
                        }
                    }
                }
            }
            phones
        });
        Answering { stop, thread }
    }

    fn stop(self) -> Vec<Ua> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// For `pbxctl hangup EXT`: an answered call between EXT and another phone.
fn call_in_progress(phones: &mut [Ua], ext: u16) {
    let i = usize::from(ext - 10);
    let j = if i == 0 { 1 } else { 0 };
    let target = phones[j].user.clone();
    let (a, b) = if i < j {
        let (l, r) = phones.split_at_mut(j);
        (&mut l[i], &r[0])
    } else {
        let (l, r) = phones.split_at_mut(i);
        (&mut r[0], &l[j])
    };
    let mut call = a.call_start(&target, &sdp(&a.user, 1, "sendrecv"));
    let inv = b.expect_invite("a call for the hangup example", T);
    b.respond_sdp(&inv, 200, &sdp(&b.user, 1, "sendrecv"));
    a.call_expect(&mut call, 200, T);
    a.ack(&mut call);
}

/// Whether `command` runs until it is stopped.
fn runs_until_stopped(command: &str) -> bool {
    let p = program(command);
    (p == "pbxctl"
        && (command.contains(" watch") || command.contains(" trace"))
        && !command.contains("--count"))
        || p == "pbx-tui"
        || (p == "coventryd" && !command.contains("--check-config"))
        || p == "scripts/softphone"
}

/// Kill a process group and reap its leader (bounded).
fn end_group(child: &mut Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    if poll_until(T, || child.try_wait().ok().flatten()).is_none() {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
}

/// Run one example that runs until stopped: started, seen to produce its first
/// output (a text from 10 to 11 gives `watch` something to print), ended.
fn run_bounded_example(site: &Site, phones: &mut [Ua], e: &Example) {
    if program(&e.command) == "pbx-tui" {
        // A terminal program: on a pty, until it has drawn its screen.
        let mut args: Vec<String> = vec![
            format!(
                "PATH={}:/usr/bin:/bin",
                site.dir.path().join("bin").display()
            ),
            format!("HOME={}", site.home().display()),
            format!("COVENTRY_RUNTIME_DIR={}", site.run_dir().display()),
            format!("COVENTRY_STATE_DIR={}", site.state_dir().display()),
            "TERM=xterm".into(),
        ];
        args.extend(["bash".into(), "-c".into(), e.command.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut tui = PtyChild::spawn(Path::new("/usr/bin/env"), &args, PtyOpts::default());
        tui.wait_output("Coventry", LONG);
        tui.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(
            tui.wait_gone(T).is_some(),
            "{}: {} did not end on SIGTERM",
            e.place,
            e.command
        );
        return;
    }
    let mut cmd = site.shell(&e.command);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let is_daemon = program(&e.command) == "coventryd";
    // The first output: a byte on stdout, or for the switch its log line saying
    // it listens (its log is its standard error).
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        if is_daemon {
            let mut text = Vec::new();
            let mut b = [0u8; 4096];
            loop {
                match stderr.read(&mut b) {
                    Ok(0) | Err(_) => return String::from_utf8_lossy(&text).into_owned(),
                    Ok(n) => text.extend_from_slice(&b[..n]),
                }
                if String::from_utf8_lossy(&text).contains("listening on") {
                    return String::from_utf8_lossy(&text).into_owned();
                }
            }
        } else {
            let mut b = [0u8; 1];
            let n = stdout.read(&mut b).unwrap_or(0);
            String::from_utf8_lossy(&b[..n]).into_owned()
        }
    });
    // A redirection writes a file in HOME instead.
    let wrote_file = || {
        std::fs::read_dir(site.home())
            .map(|d| {
                d.flatten()
                    .any(|f| f.path().is_file() && f.metadata().is_ok_and(|m| m.len() > 0))
            })
            .unwrap_or(false)
    };
    let mut seen = false;
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        if out.is_finished() || wrote_file() {
            seen = true;
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{}: {} ended by itself ({st})", e.place, e.command);
        }
        if !is_daemon {
            // Something for it to print (watch follows from now on: a text sent
            // before it attached is not shown, so one more each round).
            let _ = phones[0].message("11", "example");
        }
        // A pause between rounds of a bounded poll, not a synchronisation.
        std::thread::sleep(Duration::from_millis(20));
    }
    end_group(&mut child);
    let first = out.join().unwrap_or_default();
    assert!(
        seen && (!is_daemon || first.contains("listening on")),
        "{}: {} produced nothing within {LONG:?}",
        e.place,
        e.command
    );
}

#[test]
fn every_example_in_the_readme_and_the_man_pages_runs_as_written() {
    if Path::new("/etc/coventry.conf").exists() {
        eprintln!("skipped: /etc/coventry.conf exists, so the built-in default is not used");
        return;
    }
    let examples = all_examples();
    // The extraction finds them (a change in the files' layout must not make this
    // test pass on nothing).
    for (file, at_least) in [
        ("README.md", 20),
        ("man/pbxctl.1", 18),
        ("man/pbx-message.1", 2),
        ("man/pbx-registry.1", 3),
        ("man/pbx-runstate.1", 2),
        ("man/pbx-tui.1", 4),
        ("man/coventryd.8", 3),
        ("man/coventry.conf.5", 4),
    ] {
        let n = examples
            .iter()
            .filter(|e| e.place.starts_with(&format!("{file}:")))
            .count();
        assert!(n >= at_least, "{file}: only {n} examples found");
    }
    let mut ran = 0;
    for e in &examples {
        if let Some((_, why)) = SKIPPED.iter().find(|(p, _)| e.command.starts_with(p)) {
            eprintln!("{}: skipped ({why}): {}", e.place, e.command);
            continue;
        }
        eprintln!("{}: {}", e.place, e.command);
        let mut site = Site::new();
        let mut phones = Vec::new();
        // coventryd's own examples start the switch themselves.
        if program(&e.command) != "coventryd" {
            site.start(e.config.as_deref());
            if e.config.is_none() {
                phones = site.phones();
            }
        }
        let words: Vec<&str> = e.command.split_whitespace().collect();
        if let ["pbxctl", "hangup", ext] = words.as_slice() {
            call_in_progress(&mut phones, ext.parse().unwrap());
        }
        if runs_until_stopped(&e.command) {
            run_bounded_example(&site, &mut phones, e);
        } else {
            let answering = Answering::start(phones);
            let o = run_bounded(site.shell(&e.command), LONG).unwrap();
            answering.stop();
            let (out, err) = (
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
            );
            assert!(
                o.status.success(),
                "{}: `{}` failed ({}):\n{out}{err}\n----- switch log -----\n{}",
                e.place,
                e.command,
                o.status,
                site.log()
            );
            // `CMD || echo "TEXT"` exits 0 either way: TEXT says it failed.
            if let Some((_, fallback)) = e.command.split_once("|| echo \"") {
                let said = fallback.split(['"', '$']).next().unwrap_or("").trim();
                assert!(
                    said.is_empty() || !out.contains(said),
                    "{}: `{}` failed:\n{out}{err}",
                    e.place,
                    e.command
                );
            }
            if let Some(want) = &e.output {
                assert_eq!(&*out, want.as_str(), "{}: {}", e.place, e.command);
            }
        }
        ran += 1;
    }
    assert!(ran >= 50, "only {ran} examples ran");
}
