//! The Debian package as `scripts/package-deb` builds it, unpacked into a scratch
//! root with `dpkg-deb -x`: every file where Debian expects it with its mode, the
//! original utilities as links that work, completions and man pages, the example
//! configuration checked by the unpacked daemon, and the systemd unit verified
//! with `systemd-analyze verify` where the machine has it.
#![allow(clippy::unwrap_used)]

use coventry_tests::{bin_dir, run_bounded, workspace_dir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_debian_package_holds_everything_where_debian_expects_it() {
    if !have("dpkg-deb") {
        eprintln!("skipped: dpkg-deb is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut build = Command::new(workspace_dir().join("scripts/package-deb"));
    build
        .arg("--bin")
        .arg(bin_dir())
        .arg("--uncompressed")
        .arg("--out")
        .arg(dir.path());
    let o = run_bounded(build, LIMIT).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deb = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let root = dir.path().join("root");
    let mut x = Command::new("dpkg-deb");
    x.arg("-x").arg(&deb).arg(&root);
    assert!(run_bounded(x, LIMIT).unwrap().status.success());

    for (path, want) in [
        ("usr/sbin/coventryd", 0o755),
        ("usr/bin/pbxctl", 0o755),
        ("usr/bin/pbx-tui", 0o755),
        ("lib/systemd/system/coventryd.service", 0o644),
        ("usr/lib/sysusers.d/coventry.conf", 0o644),
        ("etc/coventry.conf", 0o640),
        ("etc/fail2ban/filter.d/coventry.conf", 0o644),
        ("usr/libexec/coventry", 0o755),
        ("usr/share/doc/coventry/examples/hooks/call.example", 0o644),
        (
            "usr/share/doc/coventry/examples/hooks/msg-echo.example",
            0o644,
        ),
    ] {
        assert_eq!(mode(&root.join(path)), want, "{path}");
    }
    for page in [
        "man8/coventryd.8.gz",
        "man5/coventry.conf.5.gz",
        "man1/pbxctl.1.gz",
        "man1/pbx-tui.1.gz",
        "man1/pbx-message.1.gz",
        "man1/pbx-registry.1.gz",
        "man1/pbx-runstate.1.gz",
    ] {
        assert!(root.join("usr/share/man").join(page).is_file(), "{page}");
    }
    for completion in [
        "usr/share/bash-completion/completions/pbxctl",
        "usr/share/zsh/vendor-completions/_pbxctl",
        "usr/share/fish/vendor_completions.d/pbxctl.fish",
    ] {
        let text = std::fs::read_to_string(root.join(completion)).unwrap();
        assert!(
            text.contains("regs") && text.contains("message"),
            "{completion}"
        );
    }
    // The original utilities complete as themselves (their own options).
    for (tool, option) in [
        ("pbx-message", "--to"),
        ("pbx-registry", "--exists"),
        ("pbx-runstate", "--quiet"),
    ] {
        for completion in [
            format!("usr/share/bash-completion/completions/{tool}"),
            format!("usr/share/zsh/vendor-completions/_{tool}"),
            format!("usr/share/fish/vendor_completions.d/{tool}.fish"),
        ] {
            let text = std::fs::read_to_string(root.join(&completion)).unwrap();
            assert!(
                text.contains(tool) || text.contains(&tool.replace('-', "__")),
                "{completion}"
            );
            assert!(
                text.contains(option.trim_start_matches('-')),
                "{completion}: {option}"
            );
        }
    }
    // The original utilities are links to pbxctl, and work as such.
    for tool in ["pbx-message", "pbx-registry", "pbx-runstate"] {
        let link = root.join("usr/bin").join(tool);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("pbxctl"),
            "{tool}"
        );
        let mut help = Command::new(&link);
        help.arg("--help");
        let o = run_bounded(help, LIMIT).unwrap();
        assert!(o.status.success(), "{tool} --help");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Exit status"),
            "{tool}"
        );
    }
    // The example configuration is one the unpacked daemon accepts.
    let mut check = Command::new(root.join("usr/sbin/coventryd"));
    check
        .arg("--config")
        .arg(root.join("etc/coventry.conf"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--check-config");
    let o = run_bounded(check, LIMIT).unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("configuration ok"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // The control area: the configuration files are conffiles.
    let mut info = Command::new("dpkg-deb");
    info.arg("-I").arg(&deb).arg("conffiles");
    let conffiles = String::from_utf8_lossy(&run_bounded(info, LIMIT).unwrap().stdout).to_string();
    assert!(conffiles.contains("/etc/coventry.conf"), "{conffiles}");

    // The unit, with its daemon where the package put it here.
    if !have("systemd-analyze") {
        eprintln!("skipped the unit check: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/coventryd.service")).unwrap();
    let unit = unit.replace(
        "/usr/sbin/coventryd",
        &root.join("usr/sbin/coventryd").display().to_string(),
    );
    let unit_path = dir.path().join("coventryd.service");
    std::fs::write(&unit_path, unit).unwrap();
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify").arg("--man=no").arg(&unit_path);
    let o = run_bounded(verify, LIMIT).unwrap();
    assert!(
        o.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `scripts/package-deb` with `args`, into `out`: the package's path.
fn build_package(out: &Path, args: &[&str]) -> String {
    let mut build = Command::new(workspace_dir().join("scripts/package-deb"));
    build
        .arg("--bin")
        .arg(bin_dir())
        .args(args)
        .arg("--out")
        .arg(out);
    let o = run_bounded(build, LIMIT).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn lintian_reports_no_errors_and_only_the_justified_warning() {
    assert!(
        have("lintian"),
        "lintian is not installed (Debian package lintian; scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path(), &["--gzip"]);
    let mut lint = Command::new("lintian");
    lint.args(["--tag-display-limit", "0"]).arg(&deb);
    let o = run_bounded(lint, LIMIT).unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let tags: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    // The one warning the README justifies: the configuration holds secrets.
    assert_eq!(
        tags,
        ["W: coventry: non-standard-file-perm 0640 != 0644 [etc/coventry.conf]"],
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `dpkg --root ROOT ARGS` with chroot-less maintainer scripts (they honour
/// DPKG_ROOT); dependencies are the host's business.
fn dpkg(root: &Path, args: &[&str]) {
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-not-root",
        ])
        .args(args);
    let o = run_bounded(c, LIMIT).unwrap();
    assert!(
        o.status.success(),
        "dpkg {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn install_remove_and_purge_leave_nothing_running_and_nothing_behind() {
    use coventry_tests::ua::Ua;
    assert!(have("dpkg") && have("start-stop-daemon"), "dpkg is needed");
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path(), &["--uncompressed"]);
    // A throw-away root with an empty dpkg database.
    let root = dir.path().join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    dpkg(&root, &["--install", &deb]);
    let daemon = root.join("usr/sbin/coventryd");
    assert!(daemon.is_file());
    let conf = root.join("etc/coventry.conf");
    assert_eq!(mode(&conf), 0o640, "the configuration holds secrets");
    let state = root.join("var/lib/coventry");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();

    // The installed switch runs, with a phone registered on it.
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = dir.path().join("test.conf");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = 127.0.0.1:0\nrealm = test\n[21]\nsecret = {}\n",
            coventry_tests::secret(21)
        ),
    )
    .unwrap();
    let mut child = Command::new(&daemon)
        .arg("--config")
        .arg(&config)
        .arg("--runtime-dir")
        .arg(&run)
        .arg("--state-dir")
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reader = coventry_tests::poll_until(LIMIT, || {
        coventry_shared::stateblock::StateReader::open(&coventry_shared::runtime::state_path(&run))
            .ok()
    })
    .expect("the installed switch publishes its state block");
    let addr: std::net::SocketAddr = reader.header().bound.parse().unwrap();
    let mut phone = Ua::ext(addr, 21);
    phone.register(300);

    // Removal stops it: nothing runs from a deleted binary.
    dpkg(&root, &["--remove", "coventry"]);
    let ended = coventry_tests::poll_until(LIMIT, || child.try_wait().ok().flatten());
    assert!(ended.is_some(), "the switch still runs after dpkg --remove");
    assert!(!daemon.exists(), "the binary is gone");
    assert!(conf.exists(), "a removed package keeps its configuration");
    // Purge: configuration and state go too.
    dpkg(&root, &["--purge", "coventry"]);
    assert!(!conf.exists(), "purged: no configuration");
    assert!(!state.exists(), "purged: no state");
    let mut left: Vec<_> = walk(&root.join("usr"));
    left.extend(
        walk(&root.join("etc"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("coventry")),
    );
    assert!(left.is_empty(), "files left behind: {left:?}");
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
