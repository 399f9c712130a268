//! Real phones on the switch's defaults (no `algorithm` key): baresips and linphonecs
//! register, call each other (answered, media peer to peer, hung up from either
//! side), text each other in UTF-8, and keep working across a daemon restart
//! with their refresh answered `401 stale` and re-authenticated.
#![allow(clippy::unwrap_used)]

use coventry_tests::baresip::Baresip;
use coventry_tests::{poll_until, secret, Conf, Switch};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A baresip registered as `ext` (asking for `regint` seconds) whose current
/// contact is `peer`.
fn phone(sw: &Switch, ext: u16, peer: u16, regint: u32) -> Baresip {
    let acc = format!(
        "<sip:{ext}@{}>;auth_pass={};regint={regint}\n",
        sw.addr(),
        secret(ext)
    );
    let contacts = format!("\"Extension {peer}\" <sip:{peer}@{}>\n", sw.addr());
    let mut b = Baresip::start_with_contacts(&acc, &contacts);
    b.wait_registered(WAIT);
    b
}

/// `a` calls 11 (`b`), `b` answers: both see the call established.
fn establish(sw: &Switch, a: &mut Baresip, b: &mut Baresip) {
    a.clear_events();
    b.clear_events();
    a.command("dial", &format!("sip:11@{}", sw.addr()));
    b.wait_event("CALL_INCOMING", WAIT);
    b.request("accept", "");
    a.wait_event("CALL_ESTABLISHED", WAIT);
    b.wait_event("CALL_ESTABLISHED", WAIT);
}

/// `a` calls `b`, `b` answers (with `media`: until `b`'s RTCP report counts
/// audio packets from `a`, which only the phones carry: the switch has no media
/// port), one of them hangs up; both see the call end.
fn call(sw: &Switch, a: &mut Baresip, b: &mut Baresip, caller_hangs_up: bool, media: bool) {
    establish(sw, a, b);
    if media {
        // RTCP reports come every few seconds.
        poll_until(Duration::from_secs(12), || {
            b.events()
                .iter()
                .filter(|e| e["type"] == "CALL_RTCP")
                .any(|e| {
                    e["rtcp_stats"]["rx"]["sent"]
                        .as_u64()
                        .is_some_and(|n| n > 0)
                })
                .then_some(())
        })
        .unwrap_or_else(|| panic!("no audio reached the callee:\n{:?}", b.events()));
    }
    if caller_hangs_up {
        a.command("hangup", "");
    } else {
        b.command("hangup", "");
    }
    a.wait_event("CALL_CLOSED", WAIT);
    b.wait_event("CALL_CLOSED", WAIT);
}

#[test]
fn baresip_registers_calls_and_hangs_up_from_either_side() {
    let sw = Switch::start(&Conf::new(&[10, 11]).build());
    let mut a = phone(&sw, 10, 11, 600);
    let mut b = phone(&sw, 11, 10, 600);
    assert!(!sw.contacts(10).is_empty(), "10 registered:\n{}", sw.log());
    call(&sw, &mut a, &mut b, true, true);
    call(&sw, &mut a, &mut b, false, false);
}

#[test]
fn baresip_texts_in_utf8_both_ways() {
    let sw = Switch::start(&Conf::new(&[10, 11]).build());
    let mut a = phone(&sw, 10, 11, 600);
    let mut b = phone(&sw, 11, 10, 600);
    a.request("message", "Grüße aus Coventry ✓");
    poll_until(WAIT, || {
        b.log().contains("Grüße aus Coventry ✓").then_some(())
    })
    .unwrap_or_else(|| panic!("11 got no text:\n{}\nswitch:\n{}", b.log(), sw.log()));
    b.request("message", "¡Recibido! 👍");
    poll_until(WAIT, || a.log().contains("¡Recibido! 👍").then_some(()))
        .unwrap_or_else(|| panic!("10 got no text:\n{}\nswitch:\n{}", a.log(), sw.log()));
}

#[test]
fn baresip_keeps_working_across_a_restart_and_its_refresh() {
    // A short registration (a test about min_expires) so that the refresh
    // comes while the test waits.
    let mut sw = Switch::start(&Conf::new(&[10, 11]).server("min_expires = 10").build());
    let mut a = phone(&sw, 10, 11, 10);
    let mut b = phone(&sw, 11, 10, 10);
    sw.restart();
    // A refresh of each phone (at most 10 s apart) made with the old run's
    // nonce: answered 401 stale, then accepted; nothing refused.
    let c = poll_until(Duration::from_secs(20), || {
        let c = sw.snapshot().body.counters;
        (c.registers >= 2).then_some(c)
    })
    .unwrap_or_else(|| panic!("no refresh after the restart:\n{}\n{}", a.log(), sw.log()));
    assert_eq!(c.auth_failures, 0, "nothing refused: {c:?}\n{}", sw.log());
    for p in [&mut a, &mut b] {
        let info = p.request("reginfo", "");
        assert!(
            info.contains("OK "),
            "still registered: {info}\n{}",
            p.log()
        );
    }
    call(&sw, &mut a, &mut b, true, false);
}

/// The call records in the switch's state directory, as written.
fn records_of(sw: &Switch) -> Vec<coventry_shared::record::CallRecord> {
    let text = std::fs::read_to_string(sw.state_dir().join("records.jsonl")).unwrap_or_default();
    coventry_shared::record::parse_lines(&text).0
}

#[test]
fn baresip_calls_answered_before_a_restart_or_a_crash_hang_up_after_it() {
    let mut sw = Switch::start(&Conf::new(&[10, 11]).build());
    let mut a = phone(&sw, 10, 11, 600);
    let mut b = phone(&sw, 11, 10, 600);
    for (round, crash) in [(1usize, false), (2, true)] {
        establish(&sw, &mut a, &mut b);
        if crash {
            // The answered call is on disk before the crash can take it.
            let kept = sw.state_dir().join("calls.json");
            let last = records_of(&sw).iter().map(|r| r.call).max().unwrap_or(0);
            poll_until(WAIT, || {
                let text = std::fs::read_to_string(&kept).ok()?;
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                v["calls"]
                    .as_array()?
                    .iter()
                    .any(|c| c["no"].as_u64().is_some_and(|n| n > u64::from(last)))
                    .then_some(())
            })
            .unwrap_or_else(|| panic!("the call was never kept:\n{}", sw.log()));
            sw.kill9();
        }
        sw.restart();
        assert!(
            sw.log().contains("restored 1 answered calls"),
            "round {round}:\n{}",
            sw.log()
        );
        // 10 hangs up: its BYE goes through the new run of the switch to 11.
        a.command("hangup", "");
        b.wait_event("CALL_CLOSED", WAIT);
        a.wait_event("CALL_CLOSED", WAIT);
        let records = poll_until(WAIT, || {
            let r = records_of(&sw);
            (r.len() >= round).then_some(r)
        })
        .unwrap_or_else(|| panic!("no record for round {round}:\n{}", sw.log()));
        assert_eq!(records.len(), round, "one record per call: {records:?}");
        let r = &records[round - 1];
        assert_eq!(
            r.outcome,
            coventry_shared::event::CallOutcome::Completed,
            "{r:?}"
        );
        assert_eq!(r.restarts, 1, "{r:?}");
        assert_eq!((r.caller.as_str(), r.dialled.as_str()), ("10", "11"));
    }
}

/// The README's own baresip example, followed literally against the built-in
/// default (only the address is this machine's): `/uanew sip:10@ADDR;auth_pass=SECRET`
/// with the secret read from the secrets file.
#[test]
fn the_readme_baresip_example_registers_on_the_builtin_default() {
    use coventry_shared::runtime::state_path;
    use coventry_shared::stateblock::StateReader;
    use std::process::{Command, Stdio};
    let readme =
        std::fs::read_to_string(coventry_tests::workspace_dir().join("README.md")).unwrap();
    let example = readme
        .lines()
        .find_map(|l| l.split("`/uanew ").nth(1))
        .and_then(|rest| rest.split('`').next())
        .expect("the README shows a /uanew example")
        .to_string();
    if std::path::Path::new("/etc/coventry.conf").exists() {
        eprintln!("skipped: /etc/coventry.conf exists, so the built-in default is not used");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (run, state) = (dir.path().join("run"), dir.path().join("state"));
    let daemon = Command::new(coventry_tests::coventryd_bin())
        .args(["--listen", "127.0.0.1:0", "--runtime-dir"])
        .arg(&run)
        .arg("--state-dir")
        .arg(&state)
        .env_remove("COVENTRY_CONFIG")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = EndsWithTest(daemon);
    let reader = poll_until(WAIT, || StateReader::open(&state_path(&run)).ok())
        .expect("the built-in default came up");
    let addr = reader.header().bound.clone();
    let secrets = std::fs::read_to_string(state.join("secrets")).unwrap();
    let secret = secrets
        .lines()
        .skip_while(|l| l.trim() != "[10]")
        .find_map(|l| l.strip_prefix("secret"))
        .and_then(|v| v.split_once('=').map(|(_, s)| s.trim().to_string()))
        .unwrap();
    let account = example
        .replace("192.168.1.5", &addr)
        .replace("SECRET", &secret);
    let mut phone = Baresip::start("");
    phone.command("uanew", &account);
    phone.wait_registered(WAIT);
}

/// A process stopped (SIGTERM, then SIGKILL) when the test ends, also on panic.
struct EndsWithTest(std::process::Child);

impl Drop for EndsWithTest {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if poll_until(WAIT, || self.0.try_wait().ok().flatten()).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// linphonec (linphone-cli 5.1), on the same defaults.

use coventry_tests::linphone::Linphone;

fn linphone(sw: &Switch, ext: u16) -> Linphone {
    let mut l = Linphone::start();
    l.register(ext, &sw.addr().to_string(), &secret(ext));
    l
}

/// `a` (an extension) calls `b_ext`; `b` answers; media flows; one hangs up.
fn linphone_call(
    sw: &Switch,
    a: &mut Linphone,
    b: &mut Linphone,
    round: usize,
    caller_hangs_up: bool,
) {
    a.command(&format!("call sip:11@{}", sw.addr()));
    b.wait_count("Receiving new incoming call", round, WAIT);
    b.command("answer");
    a.wait_count("connected.", round, WAIT);
    b.wait_count("connected.", round, WAIT);
    // Media peer to peer: both phones set up their streams with each other.
    a.wait_count("Media streams established", round, WAIT);
    b.wait_count("Media streams established", round, WAIT);
    if caller_hangs_up {
        a.command("terminate");
    } else {
        b.command("terminate");
    }
    a.wait_count("ended", round, WAIT);
    b.wait_count("ended", round, WAIT);
}

#[test]
fn linphonec_registers_calls_hangs_up_and_texts() {
    let sw = Switch::start(&Conf::new(&[10, 11]).build());
    let mut a = linphone(&sw, 10);
    let mut b = linphone(&sw, 11);
    linphone_call(&sw, &mut a, &mut b, 1, true);
    linphone_call(&sw, &mut a, &mut b, 2, false);
    a.command(&format!("chat sip:11@{} Grüße aus Coventry ✓", sw.addr()));
    b.wait_for("Grüße aus Coventry ✓", WAIT);
    b.command(&format!("chat sip:10@{} ¡Recibido! 👍", sw.addr()));
    a.wait_for("¡Recibido! 👍", WAIT);
}

#[test]
fn linphonec_keeps_working_across_a_restart_and_its_refresh() {
    // Short registrations (a test about min_expires/max_expires) so that the
    // refresh comes while the test waits.
    let conf = Conf::new(&[10, 11])
        .server("min_expires = 10")
        .server("max_expires = 10");
    let mut sw = Switch::start(&conf.build());
    let mut a = linphone(&sw, 10);
    let mut b = linphone(&sw, 11);
    sw.restart();
    // A refresh of each (about 9 s apart) with the old run's nonce: answered
    // 401 stale, then accepted; nothing refused.
    let c = poll_until(Duration::from_secs(20), || {
        let c = sw.snapshot().body.counters;
        (c.registers >= 2).then_some(c)
    })
    .unwrap_or_else(|| {
        panic!(
            "no refresh after the restart:\n{}\n{}",
            a.output(),
            sw.log()
        )
    });
    assert_eq!(c.auth_failures, 0, "nothing refused: {c:?}\n{}", sw.log());
    a.command("status register");
    a.wait_count("registered, identity=", 2, WAIT);
    linphone_call(&sw, &mut a, &mut b, 1, true);
}
