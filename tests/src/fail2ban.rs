//! The shipped fail2ban filter, run with `fail2ban-regex` over the daemon's own
//! log lines: what it would ban.

use crate::run_bounded;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The daemon's lines as syslog (or the journal) hands them to fail2ban.
pub fn as_syslog(log: &str) -> String {
    log.lines()
        .filter(|l| !l.starts_with("====="))
        .enumerate()
        .map(|(i, l)| {
            format!(
                "Jan 10 12:{:02}:{:02} pbx coventryd[4242]: {l}\n",
                i / 60 % 60,
                i % 60
            )
        })
        .collect()
}

/// `fail2ban-regex` with the shipped filter over `log`: the address of every
/// matched line, and the tool's report.
pub fn fail2ban_hosts(log: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().expect("fail2ban-regex scratch files");
    let filters = dir.path().join("filter.d");
    std::fs::create_dir(&filters).expect("fail2ban-regex scratch files");
    let repo = crate::workspace_dir();
    std::fs::copy(
        repo.join("contrib/fail2ban/filter.d/coventry.conf"),
        filters.join("coventry.conf"),
    )
    .expect("fail2ban-regex scratch files");
    // The filter builds on fail2ban's own common.conf, as when installed.
    let common = Path::new("/etc/fail2ban/filter.d/common.conf");
    assert!(
        common.exists(),
        "fail2ban is not installed (Debian package fail2ban; scripts/test installs it)"
    );
    std::fs::copy(common, filters.join("common.conf")).expect("fail2ban-regex scratch files");
    let file = dir.path().join("coventryd.log");
    std::fs::write(&file, as_syslog(log)).expect("fail2ban-regex scratch files");
    let run = |args: &[&str]| {
        let mut cmd = Command::new("fail2ban-regex");
        cmd.args(args).arg(&file).arg(filters.join("coventry.conf"));
        let out = run_bounded(cmd, Duration::from_secs(60)).expect("fail2ban-regex runs");
        assert!(
            out.status.success(),
            "fail2ban-regex failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let hosts = run(&["-o", "ip"])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (hosts, run(&["--print-all-matched"]))
}
