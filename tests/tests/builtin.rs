//! The built-in default configuration: with no configuration file the switch runs
//! extensions 10–19, each with a generated secret that only the owner can read, and
//! nobody registers without it.
#![allow(clippy::unwrap_used)]

use coventry_shared::runtime::state_path;
use coventry_shared::stateblock::StateReader;
use coventry_tests::ua::Ua;
use coventry_tests::{coventryd_bin, poll_until, T};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// The secret of extension `n` in the generated secrets file.
fn secret_of(text: &str, n: u16) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("[{n}]"));
    lines.next().unwrap();
    let line = lines.find(|l| l.starts_with("secret")).unwrap();
    line.split_once('=').unwrap().1.trim().to_string()
}

#[test]
fn builtin_default_is_a_working_and_secure_switch() {
    if std::path::Path::new("/etc/coventry.conf").exists() {
        eprintln!("skipped: /etc/coventry.conf exists, so the built-in default is not used");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (run, state) = (dir.path().join("run"), dir.path().join("state"));
    let mut child = Command::new(coventryd_bin())
        .args(["--listen", "127.0.0.1:0", "--runtime-dir"])
        .arg(&run)
        .arg("--state-dir")
        .arg(&state)
        .env_remove("COVENTRY_CONFIG")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = poll_until(T, || StateReader::open(&state_path(&run)).ok())
        .expect("the daemon came up on the built-in configuration");
    let addr = reader.header().bound.parse().unwrap();

    let secrets_path = state.join("secrets");
    let mode = std::fs::metadata(&secrets_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "secrets must be readable by the owner only");
    let text = std::fs::read_to_string(&secrets_path).unwrap();
    let s10 = secret_of(&text, 10);
    assert!(
        s10.len() >= 16,
        "a generated secret is long enough: {s10:?}"
    );
    assert_ne!(
        s10,
        secret_of(&text, 11),
        "each extension has its own secret"
    );

    let mut phone = Ua::new(addr, "10", &s10);
    phone.register(300);
    let mut wrong = Ua::new(addr, "11", &s10);
    assert_eq!(wrong.register_exchange(Some(300), None).status(), 403);
    let mut outside = Ua::new(addr, "20", "anything");
    assert_eq!(outside.register_exchange(Some(300), None).status(), 403);
    let mut no_secret = Ua::new(addr, "12", "");
    assert_eq!(no_secret.register_exchange(Some(300), None).status(), 403);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = poll_until(T, || child.try_wait().unwrap()).expect("stops on SIGTERM");
    assert!(st.success());
    // The same secrets next time: phones keep working across restarts.
    let again = std::fs::read_to_string(&secrets_path).unwrap();
    assert_eq!(secret_of(&again, 10), s10);
}

/// `coventryd --config CONF --state-dir STATE --check-config`.
fn check_config(conf: &std::path::Path, state: &std::path::Path) -> std::process::Output {
    Command::new(coventryd_bin())
        .arg("--config")
        .arg(conf)
        .arg("--state-dir")
        .arg(state)
        .arg("--check-config")
        .output()
        .unwrap()
}

#[test]
fn a_file_with_only_server_keys_keeps_the_builtin_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let (run, state) = (dir.path().join("run"), dir.path().join("state"));
    let conf = dir.path().join("coventry.conf");
    std::fs::write(&conf, "[server]\nlisten = 127.0.0.1:0\nalgorithm = md5\n").unwrap();
    // The check says what applies, and writes nothing.
    let o = check_config(&conf, &state);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("10 extensions"), "{out}");
    assert!(
        err.contains("no extension sections") && err.contains("10-19"),
        "{err}"
    );
    assert!(!state.join("secrets").exists(), "a check writes no secrets");

    let mut child = Command::new(coventryd_bin())
        .arg("--config")
        .arg(&conf)
        .arg("--runtime-dir")
        .arg(&run)
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader =
        poll_until(T, || StateReader::open(&state_path(&run)).ok()).expect("the daemon came up");
    let addr = reader.header().bound.parse().unwrap();
    let text = std::fs::read_to_string(state.join("secrets")).unwrap();
    let mut phone = Ua::new(addr, "10", &secret_of(&text, 10));
    phone.register(300);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = poll_until(T, || child.try_wait().unwrap()).expect("stops on SIGTERM");
    assert!(st.success());

    // In a 3-digit plan the built-in numbers do not fit: the check says so.
    std::fs::write(&conf, "[server]\ndigits = 3\n").unwrap();
    let o = check_config(&conf, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("no extension sections"), "{err}");
}

#[test]
fn a_check_writes_nothing_and_names_the_files_a_start_would_use() {
    let dir = tempfile::tempdir().unwrap();
    let (run, state) = (dir.path().join("run"), dir.path().join("state"));
    // No configuration named: /etc/coventry.conf, else the built-in default;
    // nothing created either way.
    let o = Command::new(coventryd_bin())
        .env_remove("COVENTRY_CONFIG")
        .arg("--runtime-dir")
        .arg(&run)
        .arg("--state-dir")
        .arg(&state)
        .arg("--check-config")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    if std::path::Path::new("/etc/coventry.conf").exists() {
        // This machine has a configuration of its own: the check names it.
        assert!(out.contains("configuration /etc/coventry.conf"), "{out}");
    } else {
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("configuration built-in default"), "{out}");
    }
    assert!(
        out.contains(&format!("state directory {}", state.display()))
            && out.contains(&format!("runtime directory {}", run.display())),
        "{out}"
    );
    assert!(!state.exists() && !run.exists(), "a check creates nothing");

    // A state directory that is another user's (the service's, checked by root):
    // read nothing, refuse nothing.
    if nix::unistd::geteuid().is_root() {
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("secrets"), "[10]\nsecret = x\n").unwrap();
        let nobody = nix::unistd::Uid::from_raw(65534);
        nix::unistd::chown(&state, Some(nobody), None).unwrap();
        nix::unistd::chown(&state.join("secrets"), Some(nobody), None).unwrap();
        let conf = dir.path().join("coventry.conf");
        std::fs::write(&conf, "[server]\nlisten = 127.0.0.1:0\n").unwrap();
        let o = check_config(&conf, &state);
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
