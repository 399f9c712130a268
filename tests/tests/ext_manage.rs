//! `pbxctl ext add|remove|secret` against the real daemon: the extension is added
//! to coventry.conf with its comments and layout kept, registers with the printed
//! secret, gets a new one that replaces the old, goes again leaving the file as it
//! was byte for byte; a read-only file, a number outside the plan, an extension
//! that exists or does not are refused with the file unchanged. And `pbxctl speed`
//! lists the speed dials.
#![allow(clippy::unwrap_used)]

use coventry_shared::stateblock::EXT_CONFIGURED;
use coventry_tests::ua::Ua;
use coventry_tests::Switch;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

const CONF: &str = "\
; The test switch. Every comment here must outlive pbxctl ext.
[server]
listen = 127.0.0.1:0
realm = test

[speed]
9 = 21

# the reception
[21]
secret = pw21
display = Reception   

; the lobby phone
[25]
secret = pw25
";

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The secret pbxctl printed (`secret: ...`).
fn printed_secret(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    let s = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no secret printed:\n{}", text(o)))
        .to_string();
    assert!(
        coventry_shared::secret::is_generated_form(&s),
        "{s:?} is not a generated secret"
    );
    s
}

fn configured(sw: &Switch, ext: u16) -> bool {
    sw.snapshot()
        .ext(ext)
        .is_some_and(|e| e.flags & EXT_CONFIGURED != 0)
}

fn registers(sw: &Switch, ext: u16, secret: &str) -> Option<u16> {
    let mut ua = Ua::new(sw.addr(), &ext.to_string(), secret);
    ua.register_exchange(Some(300), None)
        .response
        .map(|r| r.status().unwrap_or(0))
}

#[test]
fn ext_add_secret_remove_round_trip_keeps_the_file() {
    let sw = Switch::start(CONF);
    let path = sw.root().join("coventry.conf");
    let conf = path.to_str().unwrap().to_string();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let ext = |args: &[&str]| {
        let mut all = vec!["ext"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", &conf]);
        sw.pbxctl(&all)
    };

    // Add 23 with a display name: it goes before [25], above its comment.
    let o = ext(&["add", "23", "--display", "Front desk"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first = printed_secret(&o);
    let file = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        file,
        CONF.replace(
            "; the lobby phone\n",
            &format!("[23]\nsecret = {first}\ndisplay = Front desk\n\n; the lobby phone\n")
        )
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "the file keeps its mode");
    assert!(configured(&sw, 23), "the daemon reloaded with 23");
    assert_eq!(sw.snapshot().ext(23).unwrap().name(), "Front desk");
    assert_eq!(registers(&sw, 23, &first), Some(200));
    // The secret is printed once and nowhere else: not in the daemon's log.
    assert!(!sw.log().contains(&first));

    // A new secret: the old one no longer registers, the new one does.
    let o = ext(&["secret", "23"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let second = printed_secret(&o);
    assert_ne!(first, second);
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(file.contains(&format!("[23]\nsecret = {second}\ndisplay = Front desk\n")));
    assert!(!file.contains(&first));
    assert_ne!(
        registers(&sw, 23, &first),
        Some(200),
        "the old secret is refused"
    );
    assert_eq!(registers(&sw, 23, &second), Some(200));

    // Refusals leave the file as it is.
    let before = std::fs::read(&path).unwrap();
    for (args, says) in [
        (&["add", "21"][..], "already configured"),
        (&["remove", "22"][..], "not configured"),
        (&["secret", "22"][..], "not configured"),
        (&["add", "95"][..], "not an extension number"),
        (&["add", "24", "--display", "two\nlines"][..], "--display"),
    ] {
        let o = ext(args);
        assert_ne!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o)
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{args:?}");
    }

    // Removed: the file is what it was, comments and all, byte for byte.
    let o = ext(&["remove", "23"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), CONF);
    assert!(!configured(&sw, 23));
    assert!(configured(&sw, 21) && configured(&sw, 25));

    // A read-only file is refused, even for root, and stays as it was.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let o = ext(&["add", "24"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&conf) && err.contains("read-only"),
        "{}",
        text(&o)
    );
    assert!(o.stdout.is_empty(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), CONF);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o444
    );
    assert!(!configured(&sw, 24));
    // No temporary file is left next to it.
    let names: Vec<String> = std::fs::read_dir(sw.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pbxctl"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_file_the_daemon_does_not_read_is_refused() {
    let sw = Switch::start(CONF);
    let other = sw.root().join("other.conf");
    let text_other = CONF.replace("[25]\nsecret = pw25\n", "");
    std::fs::write(&other, &text_other).unwrap();
    let o = sw.pbxctl(&["ext", "add", "23", "--config", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not those of"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&other).unwrap(), text_other);
}

#[test]
fn speed_lists_the_speed_dials() {
    let sw = Switch::start(CONF);
    let o = sw.pbxctl(&["speed", "*5", "25"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = sw.pbxctl(&["speed"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|w: &Vec<&str>| w.first().is_some_and(|c| *c == "*5" || *c == "9"))
        .collect();
    assert_eq!(
        rows,
        vec![vec!["*5", "25", "set"], vec!["9", "21", "config"]],
        "{out}"
    );
    let o = sw.pbxctl(&["speed", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dials"][1]["code"], "9");
    assert_eq!(v["dials"][1]["target"], "21");
    assert_eq!(v["dials"][1]["source"], "config");
}

#[test]
fn the_first_add_to_a_file_without_extensions_says_what_happens_to_the_built_in_ones() {
    let conf = "; only tuning\n[server]\nlisten = 127.0.0.1:0\nrealm = test\n";
    let sw = Switch::start(conf);
    let path = sw.root().join("coventry.conf");
    let p = path.to_str().unwrap();
    assert!(configured(&sw, 10) && configured(&sw, 19));
    let o = sw.pbxctl(&["ext", "add", "23", "--config", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--keep-builtin") && err.contains("--drop-builtin"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), conf);
    // Kept: 10-19 go into the file with the secrets the daemon generated.
    let secrets = std::fs::read_to_string(sw.state_dir().join("secrets")).unwrap();
    let o = sw.pbxctl(&["ext", "add", "23", "--keep-builtin", "--config", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s23 = printed_secret(&o);
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(file.starts_with(conf), "{file}");
    for n in 10..=19u16 {
        let block = secrets
            .split(&format!("[{n}]\n"))
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap()
            .to_string();
        assert!(file.contains(&format!("[{n}]\n{block}\n")), "{n}: {file}");
        assert!(configured(&sw, n));
    }
    let s10 = secrets
        .split("[10]\nsecret = ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .unwrap();
    assert_eq!(registers(&sw, 10, s10), Some(200));
    assert_eq!(registers(&sw, 23, &s23), Some(200));
}
