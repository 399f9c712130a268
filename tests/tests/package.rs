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
        ("etc/coventry.conf", 0o644),
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
