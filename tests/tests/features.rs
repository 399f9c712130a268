//! The switch features that decide where a call goes, end to end: the
//! real daemon, real phones (sipp and the in-test UA) and the real `pbxctl`.
//! Forward always (sipp), busy, no answer; do not disturb; a refused loop; expiring
//! forwards and DND (`--for`, `until=`); coverage and delayed coverage with their
//! ring counts; a group call answered by its second member (sipp); `pbxctl why`;
//! settings after `kill -9` and a restart, in `pbxctl status` and `exts --json`.
//!
//! Timing: `[calls] ring = 1` (one ring a second) and a few rings before "no
//! answer", so every call here is over in seconds.
#![allow(clippy::unwrap_used)]

use coventry_shared::event::{CallOutcome, CallPhase, Event, ResultCode};
use coventry_shared::stateblock::call_state::{ANSWERED, RINGING};
use coventry_tests::sipp::{register_phone, Sipp, SippRun};
use coventry_tests::ua::dialog::{sdp, UaCall};
use coventry_tests::ua::{Msg, Ua};
use coventry_tests::{
    fenced_request, secret, Conf, ExtSettingsRow, Record, SnapshotExt, Switch, T,
};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

/// A registered phone for `ext` (SHA-256 or MD5, whatever the switch offers).
fn phone(sw: &Switch, ext: u16) -> Ua {
    let mut p = Ua::ext(sw.addr(), ext);
    p.register(300);
    p
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run pbxctl; it must exit 0. Returns its standard output.
fn ctl_ok(sw: &Switch, args: &[&str]) -> String {
    let o = sw.pbxctl(args);
    assert_eq!(o.status.code(), Some(0), "pbxctl {args:?}: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run pbxctl; it must exit 1 (the daemon refused or the command failed).
/// Returns its standard error.
fn ctl_fails(sw: &Switch, args: &[&str]) -> String {
    let o = sw.pbxctl(args);
    assert_eq!(o.status.code(), Some(1), "pbxctl {args:?}: {}", show(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(sw: &Switch, args: &[&str]) -> Value {
    let out = ctl_ok(sw, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("pbxctl {args:?}: not JSON ({e}):\n{out}"))
}

/// The call record of a call from `from` to `to` (as dialled).
fn record(sw: &Switch, from: &str, to: &str, outcome: CallOutcome, status: u16) -> Record {
    let r = sw.expect_record(0, from, to, T);
    assert_eq!(
        (r.outcome, r.status),
        (outcome, status),
        "record {r:?}\nevents:\n{}",
        sw.events_text(0)
    );
    r
}

/// `a` calls `target`; the phone `rings` gets the INVITE (with `a`'s offer byte
/// for byte). Returns the call and the INVITE.
fn ring(a: &mut Ua, target: &str, rings: &Ua) -> (UaCall, Msg) {
    let offer = sdp(&a.user, 1, "sendrecv");
    let mut call = a.call_start(target, &offer);
    a.call_expect(&mut call, 100, T);
    let inv = rings.expect_invite(&format!("{} calls {target}", a.user), T);
    assert_eq!(inv.body, offer, "the offer arrives byte for byte");
    (call, inv)
}

/// The callee answers `inv` with 200 and an SDP answer; the caller gets it and
/// ACKs; the callee gets the ACK.
fn answer(sw: &Switch, a: &Ua, call: &mut UaCall, b: &Ua, inv: &Msg) {
    let answer_sdp = sdp(&b.user, 1, "sendrecv");
    b.respond_sdp(inv, 200, &answer_sdp);
    let ok = a.call_expect(call, 200, T);
    assert_eq!(ok.body, answer_sdp, "the answer arrives byte for byte");
    a.ack(call);
    b.expect_method("ACK", "ACK of the 200", T);
    sw.wait_call_state(&call.call_id, ANSWERED);
}

/// `p` got no INVITE (it is forwarded, on DND, ...). Call it once the call that
/// might have rung it was routed (another phone rings, the caller has its
/// answer): what the switch sent `p` then is in before a fence's answer.
fn never_rings(p: &Ua, why: &str) {
    if let Some(m) = fenced_request(p, "INVITE") {
        panic!("{} rang although {why}:\n{}", p.user, m.dump());
    }
}

/// The most rings the call `call_id` has had, by its `CallState` events so far.
fn rings_so_far(sw: &Switch, call_id: &str) -> u8 {
    let Some(row) = sw.snapshot().call_by_sip_id(call_id) else {
        panic!(
            "call {call_id} not in the table:\n{}",
            sw.snapshot().calls_text()
        );
    };
    sw.call_states(0, row.id)
        .into_iter()
        .filter(|(p, _)| *p == CallPhase::Ringing)
        .map(|(_, r)| r)
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Forwards.

#[test]
fn forward_always_sipp_call_reaches_the_target() {
    let sw = Switch::start(&Conf::new(&[21, 35, 36]).calls(1, 5).build());
    let p35 = phone(&sw, 35);
    let uas = register_phone(
        &sw,
        36,
        Sipp::new("uas_call.xml")
            .key("ext", "36")
            .set("ring", "200")
            .set("linger", "0"),
    );
    let port36 = uas.port();
    let out = ctl_ok(&sw, &["forward", "35", "36"]);
    assert!(out.contains("35: forward always to 36"), "{out}");
    let row = sw.wait_settings(35, "forward always to 36", |r| r.always == "36");
    assert!(row.forwarded && row.busy.is_empty() && row.noanswer.is_empty() && !row.dnd);

    let caller = Sipp::new("uac_call.xml")
        .remote(sw.addr())
        .key("ext", "21")
        .key("target", "35")
        .auth("21", &secret(21))
        .auth_uri(&sw.host())
        .set("hold", "300")
        .run();
    let callee = uas.wait();
    both_succeed(
        &caller,
        &callee,
        "sipp 21 -> 35, forwarded always to sipp 36",
    );
    let invites = callee.received("INVITE ");
    assert_eq!(invites.len(), 1, "{}", callee.report());
    let inv = &invites[0];
    assert_eq!(
        inv.uri().as_deref(),
        Some(format!("sip:36@127.0.0.1:{port36}").as_str()),
        "the forward rings 36's registered contact:\n{}",
        inv.dump()
    );
    let offer = caller
        .sent("INVITE ")
        .into_iter()
        .last()
        .expect("caller's INVITE");
    assert_eq!(inv.body, offer.body, "the offer reaches 36 byte for byte");
    never_rings(&p35, "it forwards every call to 36");
    record(&sw, "21", "35", CallOutcome::Completed, 200);
}

fn both_succeed(caller: &SippRun, callee: &SippRun, what: &str) {
    assert!(
        caller.success() && callee.success(),
        "{what}\n===== caller =====\n{}\n===== callee =====\n{}",
        caller.report(),
        callee.report()
    );
}

#[test]
fn forward_on_busy_when_in_a_call() {
    // The defaults: no call waiting, so an extension in a call is busy.
    let sw = Switch::start(&Conf::new(&[21, 35, 36, 37]).calls(1, 5).build());
    let mut p21 = phone(&sw, 21);
    let p35 = phone(&sw, 35);
    let p36 = phone(&sw, 36);
    let mut p37 = phone(&sw, 37);
    let out = ctl_ok(&sw, &["forward", "35", "36", "--busy"]);
    assert!(out.contains("35: forward busy to 36"), "{out}");
    let row = sw.wait_settings(35, "forward busy to 36", |r| r.busy == "36");
    assert!(row.forwarded && row.always.is_empty(), "{row:?}");

    // 35 is free: it rings itself.
    let (mut c1, inv) = ring(&mut p21, "35", &p35);
    answer(&sw, &p21, &mut c1, &p35, &inv);
    sw.wait_bits(35, false, true);

    // In a call: the call goes to 36.
    let (mut c2, inv36) = ring(&mut p37, "35", &p36);
    never_rings(&p35, "it is in a call");
    answer(&sw, &p37, &mut c2, &p36, &inv36);
    p37.bye(c2.dialog());
    record(&sw, "37", "35", CallOutcome::Completed, 200);
    p21.bye(c1.dialog());
    sw.wait_bits(35, false, false);

    // Free again: 35 rings, not 36.
    let (mut c3, inv) = ring(&mut p37, "35", &p35);
    never_rings(&p36, "35 is free again");
    p35.respond(&inv, 486, None);
    p37.call_expect_final(&mut c3, 486, T);
}

#[test]
fn forward_on_no_answer_rings_the_target_after_the_rings() {
    let sw = Switch::start(&Conf::new(&[21, 36, 38]).calls(1, 2).build());
    let p21 = phone(&sw, 21);
    let mut p36 = phone(&sw, 36);
    let p38 = phone(&sw, 38);
    let out = ctl_ok(&sw, &["forward", "38", "21", "--no-answer"]);
    assert!(out.contains("38: forward noanswer to 21"), "{out}");
    sw.wait_settings(38, "forward noanswer to 21", |r| {
        r.noanswer == "21" && r.forwarded
    });

    let (mut call, inv38) = ring(&mut p36, "38", &p38);
    p38.respond(&inv38, 180, None);
    p36.call_expect(&mut call, 180, T);
    // Two rings, then 38 is cancelled and 21 rings instead. When (on the clock)
    // is core_features' business; here: not before the switch counted its rings
    // (the ring events are published before the CANCEL goes out).
    let cancel = p38.expect_method("CANCEL", "38 stops ringing after its rings", T);
    let rang = rings_so_far(&sw, &call.call_id);
    assert!(rang >= 2, "38 was cancelled after {rang} ring(s), not 2");
    assert_eq!(cancel.call_id(), inv38.call_id());
    let inv21 = p21.expect_invite("the no-answer forward rings 21", T);
    assert_eq!(
        inv21.call_id(),
        Some(call.call_id.as_str()),
        "the same call goes on to 21"
    );
    assert_eq!(inv21.body, call.sdp, "the caller's offer, byte for byte");
    assert!(
        poll(|| p38.invite_final(&inv38) == Some(487)),
        "38's INVITE ends with 487"
    );
    assert_eq!(
        call.final_response.as_ref().and_then(Msg::status),
        None,
        "the caller keeps waiting: {}",
        call.describe()
    );
    p21.respond(&inv21, 180, None);
    answer(&sw, &p36, &mut call, &p21, &inv21);
    assert!(
        call.statuses().iter().all(|s| *s < 300 || *s == 200),
        "no failure reached the caller: {:?}",
        call.statuses()
    );
    let bye = p36.bye(call.dialog());
    assert_eq!(bye.status(), 200);
    p21.expect_method("BYE", "the caller hung up", T);
    record(&sw, "36", "38", CallOutcome::Completed, 200);

    // 38 not registered at all: the no-answer forward applies at once.
    ctl_ok(&sw, &["release", "38"]);
    sw.wait_contacts(38, &[]);
    let mark = sw.mark();
    let mut call = p36.call_start("38", &sdp("36", 1, "sendrecv"));
    let inv21 = p21.expect_invite("38 is offline: 21 rings at once", T);
    assert_eq!(inv21.call_id(), Some(call.call_id.as_str()));
    p21.respond(&inv21, 486, None);
    p36.call_expect_final(&mut call, 486, T);
    never_rings(&p38, "it is not registered");
    let r = sw.expect_record(mark, "36", "38", T);
    assert_eq!(r.outcome, CallOutcome::Busy, "{r:?}");
}

fn poll(f: impl Fn() -> bool) -> bool {
    coventry_tests::poll_until(T, || f().then_some(())).is_some()
}

// ---------------------------------------------------------------------------
// Do not disturb.

#[test]
fn dnd_gives_busy_or_the_forward_on_busy_target() {
    let sw = Switch::start(&Conf::new(&[21, 35, 36]).calls(1, 5).build());
    let p21 = phone(&sw, 21);
    let mut p35 = phone(&sw, 35);
    let p36 = phone(&sw, 36);
    let out = ctl_ok(&sw, &["dnd", "21", "on"]);
    assert!(out.contains("21: do not disturb on"), "{out}");
    let row = sw.wait_settings(21, "on DND", |r| r.dnd);
    assert!(!row.forwarded && row.dnd_until_ms == 0, "{row:?}");
    let exts = json_of(&sw, &["exts", "--json"]);
    let e21 = ext_json(&exts, 21);
    assert_eq!(e21["dnd"], true, "{e21}");
    assert_eq!(e21["state"], "D", "DND shows in the grid: {e21}");

    // A caller gets busy; 21 never rings.
    let mut call = p35.call_start("21", &sdp("35", 1, "sendrecv"));
    let busy = p35.call_expect_final(&mut call, 486, T);
    assert!(busy.header("To").is_some_and(|t| t.contains("tag=")));
    never_rings(&p21, "it is on DND");
    record(&sw, "35", "21", CallOutcome::Busy, 486);

    // With a forward on busy, the target rings instead.
    ctl_ok(&sw, &["forward", "21", "36", "--busy"]);
    let (mut call, inv) = ring(&mut p35, "21", &p36);
    never_rings(&p21, "it is on DND (forward on busy to 36)");
    answer(&sw, &p35, &mut call, &p36, &inv);
    p35.bye(call.dialog());

    // DND off: 21 rings again (and its forward on busy stays for when it is busy).
    let out = ctl_ok(&sw, &["dnd", "21", "off"]);
    assert!(out.contains("21: do not disturb off"), "{out}");
    let row = sw.wait_settings(21, "DND off", |r| !r.dnd);
    assert_eq!(row.busy, "36");
    let (mut call, inv) = ring(&mut p35, "21", &p21);
    p21.respond(&inv, 486, None);
    p35.call_expect_final(&mut call, 486, T);
}

fn ext_json(exts: &Value, ext: u16) -> Value {
    exts.as_array()
        .and_then(|a| a.iter().find(|e| e["ext"] == ext))
        .cloned()
        .unwrap_or_else(|| panic!("no extension {ext} in {exts}"))
}

// ---------------------------------------------------------------------------
// Loops and expiry.

#[test]
fn a_forward_that_would_loop_is_refused() {
    let sw = Switch::start(&Conf::new(&[21, 35, 36]).build());
    ctl_ok(&sw, &["forward", "21", "35"]);
    sw.wait_settings(21, "forward always to 35", |r| r.always == "35");

    let err = ctl_fails(&sw, &["forward", "35", "21", "--busy"]);
    assert!(err.contains("loop"), "the refusal says why: {err}");
    assert!(err.contains("35 -> 21 -> 35"), "and shows the loop: {err}");
    let err = ctl_fails(&sw, &["forward", "35", "21"]);
    assert!(err.contains("loop"), "{err}");
    let err = ctl_fails(&sw, &["forward", "21", "21"]);
    assert!(err.contains("itself"), "{err}");
    // A longer circle: 21 -> 35 -> 36 -> 21.
    ctl_ok(&sw, &["forward", "35", "36", "--no-answer"]);
    let err = ctl_fails(&sw, &["forward", "36", "21", "--no-answer"]);
    assert!(err.contains("36 -> 21 -> 35 -> 36"), "{err}");

    // The FIFO refuses it the same way.
    let mark = sw.mark();
    sw.fifo_write(b"#7 forward 35 21 busy\n").unwrap();
    let e = sw.expect_event_after(
        mark,
        "result #7",
        |e| matches!(e, Event::CommandResult { id: Some(7), .. }),
        T,
    );
    match e {
        Event::CommandResult { code, text, .. } => {
            assert_eq!(code, ResultCode::Failed, "{text}");
            assert!(text.contains("loop"), "{text}");
        }
        other => panic!("{other:?}"),
    }

    // Nothing changed.
    let snap = sw.snapshot();
    assert_eq!(snap.settings_of(35).busy, "", "refused: not set");
    assert_eq!(snap.settings_of(35).always, "", "refused: not set");
    assert_eq!(snap.settings_of(35).noanswer, "36");
    assert_eq!(snap.settings_of(36), ExtSettingsRow::default());
    assert_eq!(snap.settings_of(21).always, "35");
}

/// Wait for a Notice containing `text` after `mark`; returns its time (the
/// daemon's clock, ms since the epoch).
fn expect_notice(sw: &Switch, mark: usize, text: &str, within: Duration) -> u64 {
    sw.expect_event_after(
        mark,
        &format!("Notice {text:?}"),
        |e| matches!(e, Event::Notice { text: t } if t.contains(text)),
        within,
    );
    sw.events()
        .iter()
        .skip(mark)
        .find(|r| matches!(&r.event, Event::Notice { text: t } if t.contains(text)))
        .map(|r| r.time_ms)
        .unwrap_or(0)
}

#[test]
fn forwards_and_dnd_expire_by_themselves() {
    let sw = Switch::start(&Conf::new(&[21, 35, 36]).calls(1, 5).build());
    let p21 = phone(&sw, 21);
    let p35 = phone(&sw, 35);
    let mut p36 = phone(&sw, 36);

    // pbxctl --for 2s.
    let mark = sw.mark();
    let now_s = coventry_shared::now_ms() / 1000;
    let out = ctl_ok(&sw, &["forward", "21", "35", "--for", "2s"]);
    assert!(out.contains("21: forward always to 35"), "{out}");
    let row = sw.wait_settings(21, "forward always to 35", |r| r.always == "35");
    assert!(row.forwarded, "{row:?}");
    let until_s = row.forward_until_ms / 1000;
    assert!(
        (now_s + 2..=now_s + 4).contains(&until_s),
        "forward_until_ms {} is not about 2 s from {now_s}",
        row.forward_until_ms
    );
    let status = ctl_ok(&sw, &["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("21") && l.contains("forward always 35 until")),
        "status shows the forward and its expiry:\n{status}"
    );
    // Meanwhile a call to 21 rings 35.
    let (mut call, inv) = ring(&mut p36, "21", &p35);
    p35.respond(&inv, 486, None);
    p36.call_expect_final(&mut call, 486, T);

    // The expiry's timing is core_features'; here: not before its time, by the
    // daemon's own clock.
    let at = expect_notice(
        &sw,
        mark,
        "21: forward always to 35 ended (expiry)",
        coventry_tests::LONG,
    );
    assert!(
        at >= row.forward_until_ms,
        "reverted at {at}, before its time {}",
        row.forward_until_ms
    );
    let row = sw.wait_settings(21, "no forward", |r| r.always.is_empty());
    assert_eq!(row, ExtSettingsRow::default(), "everything reverted");
    // And calls reach 21 again.
    let (mut call, inv) = ring(&mut p36, "21", &p21);
    p21.respond(&inv, 486, None);
    p36.call_expect_final(&mut call, 486, T);

    // The FIFO with until=: DND and a forward on busy.
    let mark = sw.mark();
    let until = coventry_shared::now_ms() / 1000 + 2;
    sw.fifo_write(format!("#5 dnd 21 on until={until}\n").as_bytes())
        .unwrap();
    sw.fifo_write(format!("#6 forward 21 36 busy until={until}\n").as_bytes())
        .unwrap();
    for id in [5, 6] {
        let e = sw.expect_event_after(
            mark,
            &format!("result #{id}"),
            |e| matches!(e, Event::CommandResult { id: Some(i), .. } if *i == id),
            T,
        );
        assert!(
            matches!(
                e,
                Event::CommandResult {
                    code: ResultCode::Ok,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let row = sw.wait_settings(21, "DND and forward busy", |r| r.dnd && r.busy == "36");
    assert_eq!(row.dnd_until_ms, until * 1000, "{row:?}");
    assert_eq!(row.forward_until_ms, until * 1000, "{row:?}");
    assert!(row.forwarded, "{row:?}");
    for what in [
        "21: do not disturb ended (expiry)",
        "21: forward busy to 36 ended (expiry)",
    ] {
        let at = expect_notice(&sw, mark, what, coventry_tests::LONG);
        assert!(at >= until * 1000, "{what} at {at}, before {until} s");
    }
    let row = sw.wait_settings(21, "nothing set", |r| !r.dnd && !r.forwarded);
    assert_eq!(row, ExtSettingsRow::default());
    // A time already past is refused.
    let mark = sw.mark();
    sw.fifo_write(b"#9 dnd 21 on until=1000\n").unwrap();
    let e = sw.expect_event_after(
        mark,
        "result #9",
        |e| matches!(e, Event::CommandResult { id: Some(9), .. }),
        T,
    );
    assert!(
        matches!(
            e,
            Event::CommandResult {
                code: ResultCode::Failed,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!sw.snapshot().settings_of(21).dnd);
}

// ---------------------------------------------------------------------------
// Coverage and groups.

#[test]
fn coverage_rings_at_once_and_delayed_coverage_joins_after_its_rings() {
    let sw = Switch::start(
        &Conf::new(&[21, 35, 36, 37])
            .calls(1, 8)
            .ext_line(35, "coverage = 36")
            .ext_line(35, "delayed = 37")
            .ext_line(35, "delay = 2")
            .build(),
    );
    let mut p21 = phone(&sw, 21);
    let p35 = phone(&sw, 35);
    let p36 = phone(&sw, 36);
    let p37 = phone(&sw, 37);

    let (mut call, inv35) = ring(&mut p21, "35", &p35);
    let inv36 = p36.expect_invite("coverage rings together with 35", T);
    assert_eq!(inv36.call_id(), Some(call.call_id.as_str()));
    assert_eq!(inv36.body, call.sdp);
    p35.respond(&inv35, 180, None);
    p36.respond(&inv36, 180, None);
    p21.call_expect(&mut call, 180, T);
    sw.wait_call_state(&call.call_id, RINGING);

    // Rings 1 and 2: 37 waits. It joins at ring 3 (after `delay = 2` rings): the
    // ring events are published before the INVITE goes out, so when it comes the
    // third ring is counted (the timing on the clock is core_features').
    let inv37 = p37.expect_invite("delayed coverage joins", T);
    let rang = rings_so_far(&sw, &call.call_id);
    assert!(
        rang >= 3,
        "delayed coverage rang after {rang} ring(s), not 3"
    );
    assert_eq!(inv37.call_id(), Some(call.call_id.as_str()));
    assert_eq!(inv37.body, call.sdp, "the same offer");
    let row = sw.snapshot().call_by_sip_id(&call.call_id).unwrap();
    assert!(row.ring_count >= 3, "37 joins on ring 3: {row:?}");
    let rings: Vec<u8> = sw
        .call_states(0, row.id)
        .into_iter()
        .filter(|(p, _)| *p == CallPhase::Ringing)
        .map(|(_, r)| r)
        .collect();
    assert!(
        rings.windows(2).all(|w| w[0] <= w[1]) && rings.contains(&1) && rings.contains(&3),
        "ringing events count 1, 2, 3: {rings:?}"
    );

    // 37 answers: 35 and 36 are cancelled.
    p37.respond(&inv37, 180, None);
    answer(&sw, &p21, &mut call, &p37, &inv37);
    for (p, inv) in [(&p35, &inv35), (&p36, &inv36)] {
        let c = p.expect_method("CANCEL", "another phone answered", T);
        assert_eq!(c.call_id(), inv.call_id());
        assert!(poll(|| p.invite_final(inv) == Some(487)));
    }
    p21.bye(call.dialog());
    p37.expect_method("BYE", "the caller hung up", T);
    record(&sw, "21", "35", CallOutcome::Completed, 200);
}

#[test]
fn group_call_answered_by_the_second_member_sipp() {
    let sw = Switch::start(
        &Conf::new(&[21, 35, 36])
            .calls(1, 5)
            .group(100, &[35, 36])
            .build(),
    );
    // 35 rings until cancelled; 36 rings 500 ms, answers, and is hung up.
    let m35 = register_phone(&sw, 35, Sipp::new("uas_ring_cancel.xml").key("ext", "35"));
    let m36 = register_phone(
        &sw,
        36,
        Sipp::new("uas_call.xml")
            .key("ext", "36")
            .set("ring", "500")
            .set("linger", "0"),
    );
    let caller = Sipp::new("uac_call.xml")
        .remote(sw.addr())
        .key("ext", "21")
        .key("target", "100")
        .auth("21", &secret(21))
        .auth_uri(&sw.host())
        .set("hold", "300")
        .run();
    let r36 = m36.wait();
    let r35 = m35.wait();
    both_succeed(&caller, &r36, "group 100: 36 answers");
    r35.assert_success("group 100: 35 rings and is cancelled");

    // 35: INVITE, its 180, then the CANCEL (after its 180, RFC 3261 §9.1).
    let trace35: Vec<String> = r35.traced().iter().map(|t| t.start_line()).collect();
    let pos = |start: &str| trace35.iter().position(|l| l.starts_with(start));
    let (inv, ringing, cancel) = (pos("INVITE "), pos("SIP/2.0 180"), pos("CANCEL "));
    assert!(
        inv.is_some() && ringing > inv && cancel > ringing,
        "35 saw {trace35:?}"
    );
    // Both members got the caller's offer; the caller got 36's answer.
    let offer = caller.sent("INVITE ").into_iter().last().unwrap();
    for (who, run) in [("35", &r35), ("36", &r36)] {
        let got = run.received("INVITE ");
        assert_eq!(got.len(), 1, "{who}: {}", run.report());
        assert_eq!(got[0].body, offer.body, "{who} got the offer byte for byte");
        assert_eq!(got[0].call_id(), offer.call_id());
    }
    let answered = r36.sent("SIP/2.0 200").into_iter().next().unwrap();
    let at_caller = caller
        .received("SIP/2.0 200")
        .into_iter()
        .find(|m| m.cseq().is_some_and(|c| c.1 == "INVITE"))
        .unwrap();
    assert_eq!(at_caller.body, answered.body);
    assert!(caller.received("SIP/2.0 487").is_empty());
    record(&sw, "21", "100", CallOutcome::Completed, 200);
    for e in [35, 36] {
        sw.wait_bits(e, false, false);
    }
}

// ---------------------------------------------------------------------------
// why.

/// `pbxctl why` prints the steps (typed events) one per line, then the conclusion.
#[test]
fn why_explains_forwards_dnd_and_coverage() {
    let sw = Switch::start(
        &Conf::new(&[21, 35, 36, 37, 38])
            .ext_line(35, "coverage = 36")
            .ext_line(35, "delayed = 37")
            .ext_line(35, "delay = 2")
            .build(),
    );
    let _phones: Vec<Ua> = [35, 36, 37].iter().map(|e| phone(&sw, *e)).collect();
    ctl_ok(&sw, &["forward", "21", "35"]);
    ctl_ok(&sw, &["dnd", "38", "on"]);
    ctl_ok(&sw, &["forward", "38", "37", "--busy"]);

    let lines = |ext: &str| -> Vec<String> {
        ctl_ok(&sw, &["why", ext])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(
        lines("21"),
        vec![
            "21 forwards every call to 35",
            "35 rings on 1 registered contact(s)",
            "coverage rings too: 36",
            "after 2 rings: 37",
            "21 is challenged with digest MD5 (the [server] offer)",
            "a call to 21 rings 35, 36 (for 35)",
        ]
    );
    let l = lines("38");
    assert_eq!(
        l,
        vec![
            "38 is on do not disturb, and forwards on busy to 37",
            "37 rings on 1 registered contact(s)",
            "38 is challenged with digest MD5 (the [server] offer)",
            "a call to 38 rings 37 (for 37)",
        ],
        "{l:?}"
    );
    assert_eq!(
        l.last().map(String::as_str),
        Some("a call to 38 rings 37 (for 37)")
    );
    // DND without a forward, and an extension that is not registered.
    ctl_ok(&sw, &["forward", "38", "off", "--busy"]);
    let l = lines("38");
    assert_eq!(
        l.last().map(String::as_str),
        Some("a call to 38 gets 486 Busy Here (do not disturb)"),
        "{l:?}"
    );
    let l = lines("36");
    assert_eq!(
        l.last().map(String::as_str),
        Some("a call to 36 rings 36 (for 36)"),
        "{l:?}"
    );
    ctl_ok(&sw, &["dnd", "38", "off"]);
    let l = lines("38");
    assert_eq!(
        l.last().map(String::as_str),
        Some("a call to 38 gets 480 Temporarily Unavailable (not registered)"),
        "{l:?}"
    );

    let v = json_of(&sw, &["why", "21", "--json"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["text"], "a call to 21 rings 35, 36 (for 35)", "{v}");
    assert_eq!(v["steps"][0], "21 forwards every call to 35", "{v}");

    let err = ctl_fails(&sw, &["why", "77"]);
    assert!(err.contains("77"), "{err}");
}

// ---------------------------------------------------------------------------
// Persistence.

fn settings_rows(sw: &Switch, exts: &[u16]) -> Vec<ExtSettingsRow> {
    let snap = sw.snapshot();
    exts.iter().map(|e| snap.settings_of(*e)).collect()
}

/// status and exts show the settings made in `settings_survive_kill_9_and_restart`.
fn check_settings_shown(sw: &Switch, dnd_until_ms: u64) {
    let status = ctl_ok(sw, &["status"]);
    let line = |ext: &str| {
        status
            .lines()
            .find(|l| l.split_whitespace().next() == Some(ext))
            .unwrap_or_else(|| panic!("no settings line for {ext} in status:\n{status}"))
            .to_string()
    };
    assert!(
        line("21").contains("forward always 35, busy 36"),
        "{status}"
    );
    assert!(line("37").contains("dnd until"), "{status}");
    assert!(
        line("38").contains("forward no-answer 21 until"),
        "{status}"
    );
    let v = json_of(sw, &["status", "--json"]);
    let settings = v["settings"].as_array().cloned().unwrap_or_default();
    let get = |ext: u16| {
        settings
            .iter()
            .find(|s| s["ext"] == ext)
            .cloned()
            .unwrap_or_else(|| panic!("no settings for {ext} in {v}"))
    };
    assert_eq!(get(21)["forward_always"], "35", "{v}");
    assert_eq!(get(21)["forward_busy"], "36", "{v}");
    assert_eq!(get(37)["dnd"], true, "{v}");
    assert_eq!(get(37)["dnd_until_ms"], dnd_until_ms, "{v}");
    assert_eq!(get(38)["forward_noanswer"], "21", "{v}");
    assert_eq!(settings.len(), 3, "only 21, 37, 38 have settings: {v}");
    let exts = json_of(sw, &["exts", "--json"]);
    let e21 = ext_json(&exts, 21);
    assert_eq!(e21["forwarded"], true, "{e21}");
    assert_eq!(e21["forward_always"], "35", "{e21}");
    assert_eq!(e21["forward_busy"], "36", "{e21}");
    let e37 = ext_json(&exts, 37);
    assert_eq!(e37["dnd"], true, "{e37}");
    assert_eq!(e37["dnd_until_ms"], dnd_until_ms, "{e37}");
    assert_eq!(ext_json(&exts, 36)["forwarded"], false);
}

#[test]
fn settings_survive_kill_9_and_restart() {
    let mut sw = Switch::start(&Conf::new(&[21, 35, 36, 37, 38]).calls(1, 5).build());
    let mut p35 = Ua::ext(sw.addr(), 35);
    let mut p36 = Ua::ext(sw.addr(), 36);
    ctl_ok(&sw, &["forward", "21", "35"]);
    ctl_ok(&sw, &["forward", "21", "36", "--busy"]);
    ctl_ok(&sw, &["forward", "38", "21", "--no-answer", "--for", "1h"]);
    ctl_ok(&sw, &["dnd", "37", "on", "--for", "2h"]);
    let out = ctl_ok(&sw, &["speed", "9", "35"]);
    assert!(out.contains("speed dial 9 -> 35"), "{out}");
    let exts = [21, 35, 36, 37, 38];
    let before = sw.wait_state("settings published", T, |s| {
        s.settings_of(37).dnd && s.settings_of(38).noanswer == "21"
    });
    let before: Vec<ExtSettingsRow> = exts.iter().map(|e| before.settings_of(*e)).collect();
    let dnd_until = before[3].dnd_until_ms;
    let now = coventry_shared::now_ms();
    assert!(
        dnd_until > now + 7_000_000 && dnd_until <= now + 7_202_000,
        "dnd for 2 h: {dnd_until}"
    );
    assert!(before[4].forward_until_ms > now + 3_500_000);
    check_settings_shown(&sw, dnd_until);

    // kill -9 right after the last result: the settings were on disk before it.
    sw.kill9();
    sw.restart();
    sw.wait_state("settings restored after kill -9", T, |s| {
        s.settings_of(21).always == "35"
    });
    assert_eq!(settings_rows(&sw, &exts), before, "after kill -9");
    check_settings_shown(&sw, dnd_until);
    check_speed_dial(&sw, &mut p36, &mut p35);

    sw.restart();
    sw.wait_state("settings restored after a restart", T, |s| {
        s.settings_of(21).always == "35"
    });
    assert_eq!(settings_rows(&sw, &exts), before, "after a restart");
    check_settings_shown(&sw, dnd_until);
    check_speed_dial(&sw, &mut p36, &mut p35);
}

/// Speed dial 9 (set with pbxctl) still rings 35 (the phones register again: the
/// same contacts).
fn check_speed_dial(sw: &Switch, p36: &mut Ua, p35: &mut Ua) {
    p35.register(300);
    p36.register(300);
    sw.wait_contacts(35, &[p35.contact_uri()]);
    let mut call = p36.call_start("9", &sdp("36", 1, "sendrecv"));
    let inv = p35.expect_invite("speed dial 9 rings 35", T);
    p35.respond(&inv, 486, None);
    p36.call_expect_final(&mut call, 486, T);
}
