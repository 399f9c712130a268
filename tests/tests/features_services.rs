//! The switch's own services, end to end with the real daemon, the
//! in-test UA and the real `pbxctl`: keypad feature codes (answered with every
//! stream declined, hung up after the ACK, confirmed by a text from `system`),
//! `/commands` to `system`, broadcast receipts, click-to-dial with its failures,
//! and busy lamp fields (dialog-info for an extension, the bitmap package of
//! `system`).
#![allow(clippy::unwrap_used)]

use coventry_shared::event::{CallOutcome, Event};
use coventry_shared::stateblock::call_state::ANSWERED;
use coventry_tests::ua::dialog::{sdp, tag_of, uri_of, SDP};
use coventry_tests::ua::{Msg, Ua};
use coventry_tests::{fenced_request, pbxctl_in, Conf, ExtSettingsRow, SnapshotExt, Switch, T};
use serde_json::Value;
use std::process::Output;
use std::thread::JoinHandle;
use std::time::Duration;

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

fn ctl_ok(sw: &Switch, args: &[&str]) -> String {
    let o = sw.pbxctl(args);
    assert_eq!(o.status.code(), Some(0), "pbxctl {args:?}: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A text from `system` that `p` received: checks the sender and returns the text.
fn system_text(p: &Ua, what: &str) -> String {
    let m = p.expect_method("MESSAGE", what, T);
    let from = m.header("From").unwrap_or("");
    assert!(
        uri_of(from).starts_with("sip:system@"),
        "{what}: the text comes from system:\n{}",
        m.dump()
    );
    assert!(
        m.header("Content-Type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/plain")),
        "{}",
        m.dump()
    );
    m.text()
}

fn poll(f: impl Fn() -> bool) -> bool {
    coventry_tests::poll_until(T, || f().then_some(())).is_some()
}

/// Nothing more from `system`: no MESSAGE waits for `p` once a fence through the
/// switch from `p` is answered (call it when the command was answered).
fn no_more_texts(p: &Ua) {
    if let Some(m) = fenced_request(p, "MESSAGE") {
        panic!("unexpected MESSAGE to {}:\n{}", p.user, m.dump());
    }
}

// ---------------------------------------------------------------------------
// Keypad feature codes.

/// `p` dials `code`: the switch answers 200 with every stream of the offer
/// declined, BYEs only after the ACK, and texts the outcome. Returns the text.
fn dial_code(p: &mut Ua, code: &str) -> String {
    let offer = sdp(&p.user, 1, "sendrecv");
    let mut call = p.call_start(code, &offer);
    let ok = p.call_expect_final(&mut call, 200, T);
    assert_eq!(ok.header("Content-Type"), Some(SDP), "{}", ok.dump());
    let body = ok.text();
    let media: Vec<&str> = body.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(media.len(), 1, "one m= line for the one offered: {body}");
    assert!(
        media.iter().all(|m| m.starts_with("m=audio 0 ")),
        "every stream declined (port 0): {body}"
    );
    assert!(body.starts_with("v=0\r\n"), "{body}");
    let contact = ok.list("Contact");
    assert!(
        contact.first().is_some_and(|c| c.contains("sip:system@")),
        "{}",
        ok.dump()
    );
    // No BYE before the phone's ACK (none came with the answer or before it).
    if let Some(b) = fenced_request(p, "BYE") {
        panic!("BYE before the ACK:\n{}", b.dump());
    }
    p.ack(&mut call);
    let bye = p.expect_method("BYE", "the switch hangs up after the ACK", T);
    assert_eq!(bye.call_id(), Some(call.call_id.as_str()), "{}", bye.dump());
    assert_eq!(
        bye.uri().as_deref(),
        Some(p.contact_uri().as_str()),
        "the BYE goes to the phone's Contact:\n{}",
        bye.dump()
    );
    assert_eq!(
        tag_of(bye.header("From").unwrap_or("")),
        tag_of(ok.header("To").unwrap_or("")),
        "the BYE is in the dialog of the 200"
    );
    assert_eq!(
        tag_of(bye.header("To").unwrap_or("")).as_deref(),
        Some(call.from_tag.as_str())
    );
    system_text(p, &format!("confirmation of {code}"))
}

#[test]
fn keypad_codes_set_dnd_and_forward() {
    let sw = Switch::start(&Conf::new(&[21, 38]).calls(1, 5).build());
    let mut p38 = phone(&sw, 38);
    let p21 = phone(&sw, 21);

    let text = dial_code(&mut p38, "*78");
    assert!(text.contains("38: do not disturb on"), "{text}");
    let row = sw.wait_settings(38, "DND on", |r| r.dnd);
    assert!(!row.forwarded && row.dnd_until_ms == 0, "{row:?}");

    let text = dial_code(&mut p38, "*79");
    assert!(text.contains("38: do not disturb off"), "{text}");
    sw.wait_settings(38, "DND off", |r| !r.dnd);

    let text = dial_code(&mut p38, "*7221");
    assert!(text.contains("38: forward always to 21"), "{text}");
    let row = sw.wait_settings(38, "forward always to 21", |r| r.always == "21");
    assert!(row.forwarded, "{row:?}");
    // It works: a call to 38 rings 21.
    let mut c = p38.call_start("38", &sdp("38", 1, "sendrecv"));
    let inv = p21.expect_invite("38 forwards to 21", T);
    p21.respond(&inv, 486, None);
    p38.call_expect_final(&mut c, 486, T);

    let text = dial_code(&mut p38, "*73");
    assert!(text.contains("38: forward always to 21 cleared"), "{text}");
    let row = sw.wait_settings(38, "no forward", |r| !r.forwarded);
    assert_eq!(row, ExtSettingsRow::default());

    // Codes that cannot be carried out: 403 and a text saying why.
    for (code, why) in [
        ("*7277", "77 is not a configured extension"),
        ("*7238", "38 cannot forward to itself"),
    ] {
        let mut call = p38.call_start(code, &sdp("38", 1, "sendrecv"));
        let r = p38.call_expect_final(&mut call, 403, T);
        assert!(r.header("To").is_some_and(|t| t.contains("tag=")));
        let text = system_text(&p38, &format!("the refusal of {code}"));
        assert!(text.contains("not done") && text.contains(why), "{text}");
    }
    assert_eq!(sw.snapshot().settings_of(38), ExtSettingsRow::default());
    no_more_texts(&p38);
}

#[test]
fn keypad_codes_follow_the_features_section() {
    let sw = Switch::start(
        &Conf::new(&[21, 38])
            .section("features", "dnd_on = *55")
            .section("features", "dnd_off = *56")
            .section("features", "forward_always = #4")
            .build(),
    );
    let mut p38 = phone(&sw, 38);
    let text = dial_code(&mut p38, "*55");
    assert!(text.contains("do not disturb on"), "{text}");
    sw.wait_settings(38, "DND on", |r| r.dnd);
    let text = dial_code(&mut p38, "#421");
    assert!(text.contains("forward always to 21"), "{text}");
    sw.wait_settings(38, "forward always", |r| r.always == "21");
    // The default code is no longer one: *79 is not a number here.
    let mut call = p38.call_start("*79", &sdp("38", 1, "sendrecv"));
    p38.call_expect_final(&mut call, 404, T);
    assert!(sw.snapshot().settings_of(38).dnd, "*79 did nothing");
    let text = dial_code(&mut p38, "*56");
    assert!(text.contains("do not disturb off"), "{text}");
    sw.wait_settings(38, "DND off", |r| !r.dnd);
}

// ---------------------------------------------------------------------------
// /commands to system.

/// `p` sends `text` to `system`: 200, then the reply from `system`.
fn command(p: &mut Ua, text: &str) -> String {
    let st = p.message("system", text);
    assert_eq!(st, 200, "MESSAGE {text:?} to system");
    system_text(p, &format!("reply to {text:?}"))
}

#[test]
fn system_commands_reply_and_change_only_the_sender() {
    let sw = Switch::start(&Conf::new(&[21, 35, 36, 37]).build());
    let _p21 = phone(&sw, 21);
    let _p35 = phone(&sw, 35);
    let mut p36 = phone(&sw, 36);

    let help = command(&mut p36, "/help");
    for c in ["/status", "/who", "/forward", "/dnd", "/msg"] {
        assert!(help.contains(c), "/help lists {c}: {help}");
    }
    let who = command(&mut p36, "/who");
    assert!(who.starts_with("online: "), "{who}");
    for e in ["21", "35", "36"] {
        assert!(who.contains(e), "/who lists {e}: {who}");
    }
    assert!(!who.contains("37"), "37 is offline: {who}");
    let status = command(&mut p36, "/status");
    assert!(status.contains("36: 1 contact(s)"), "{status}");
    assert!(status.contains("dnd off"), "{status}");

    let r = command(&mut p36, "/forward 21");
    assert!(r.contains("36: forward always to 21"), "{r}");
    sw.wait_settings(36, "forward always 21", |r| r.always == "21" && r.forwarded);
    let r = command(&mut p36, "/forward off");
    assert!(r.contains("36: forward always to 21 cleared"), "{r}");
    sw.wait_settings(36, "no forward", |r| !r.forwarded);
    let r = command(&mut p36, "/forward 21 busy");
    assert!(r.contains("36: forward busy to 21"), "{r}");
    let r = command(&mut p36, "/forward 35 noanswer");
    assert!(r.contains("36: forward noanswer to 35"), "{r}");
    let row = sw.wait_settings(36, "busy and no-answer forwards", |r| {
        r.busy == "21" && r.noanswer == "35"
    });
    assert!(row.always.is_empty(), "{row:?}");
    let r = command(&mut p36, "/dnd on");
    assert!(r.contains("36: do not disturb on"), "{r}");
    sw.wait_settings(36, "DND", |r| r.dnd);
    let status = command(&mut p36, "/status");
    for part in ["forward busy to 21", "forward noanswer to 35", "dnd on"] {
        assert!(status.contains(part), "/status shows {part}: {status}");
    }
    // No hook directory here: the chat service is not there.
    let r = command(&mut p36, "/msg hello there");
    assert_eq!(r, "chat service hello is not available");
    let r = command(&mut p36, "/bogus");
    assert!(r.contains("unknown command"), "{r}");

    // Another extension's settings: refused, nothing changes.
    ctl_ok(&sw, &["dnd", "35", "on"]);
    sw.wait_settings(35, "35 on DND", |r| r.dnd);
    let before = (sw.snapshot().settings_of(35), sw.snapshot().settings_of(36));
    let r = command(&mut p36, "/dnd off 35");
    assert!(r.contains("only change your own"), "{r}");
    let r = command(&mut p36, "/forward 21 always 35");
    assert!(r.contains("only change your own"), "{r}");
    let r = command(&mut p36, "/forward off busy 35");
    assert!(r.contains("only change your own"), "{r}");
    // The refusals are answered: nothing they could have changed is still to come
    // (the state block is published before an answer goes out).
    let after = (sw.snapshot().settings_of(35), sw.snapshot().settings_of(36));
    assert_eq!(before, after, "nothing changed");

    let r = command(&mut p36, "/dnd off");
    assert!(r.contains("36: do not disturb off"), "{r}");
    sw.wait_settings(36, "DND off", |r| !r.dnd);
    assert!(sw.snapshot().settings_of(35).dnd, "35 still on DND");
    no_more_texts(&p36);

    // Every command shows as a Message event to system.
    let n = sw
        .events()
        .iter()
        .filter(|r| matches!(&r.event, Event::Message { from, to, .. } if from.starts_with("36") && to == "system"))
        .count();
    assert!(n >= 15, "{n} messages to system in the events");
}

// ---------------------------------------------------------------------------
// Broadcast receipts.

#[test]
fn broadcast_receipts_per_extension() {
    let sw = Switch::start(
        &Conf::new(&[21, 35, 36, 37])
            .group(100, &[35, 36, 37])
            .build(),
    );
    let p21 = phone(&sw, 21);
    let p35 = phone(&sw, 35);
    let p36 = phone(&sw, 36);
    // 37 is offline.

    let out = ctl_ok(&sw, &["message", "all", "shutdown", "at", "5"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first().map(|l| l.trim()),
        Some("all: delivered to 3 of 3 registered now"),
        "{out}"
    );
    // EXT NAME RESULT STATUS (the name has spaces: keep the first and last two).
    let row = |ext: &str| -> Vec<String> {
        let w: Vec<&str> = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(ext))
            .unwrap_or_else(|| panic!("no row for {ext}:\n{out}"))
            .split_whitespace()
            .collect();
        assert!(w.len() >= 3, "{out}");
        vec![w[0], w[w.len() - 2], w[w.len() - 1]]
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    assert!(
        lines
            .iter()
            .any(|l| l.contains("EXT") && l.contains("RESULT") && l.contains("STATUS")),
        "{out}"
    );
    for e in ["21", "35", "36"] {
        assert_eq!(row(e), vec![e, "delivered", "200"], "{out}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.split_whitespace().next() == Some("37")),
        "all means registered now: 37 is no target: {out}"
    );
    assert!(
        out.contains("Extension 35"),
        "the table names the extensions: {out}"
    );
    for p in [&p21, &p35, &p36] {
        let m = p.expect_method("MESSAGE", "the broadcast", T);
        assert_eq!(m.text(), "shutdown at 5");
        assert!(uri_of(m.header("From").unwrap_or("")).starts_with("sip:system@"));
    }

    let o = sw.pbxctl(&["--json", "message", "all", "shutdown at 5"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["text"], "all: delivered to 3 of 3 registered now", "{v}");
    let receipts = v["receipts"].as_array().cloned().unwrap_or_default();
    let r: Vec<(u64, String, Value)> = receipts
        .iter()
        .map(|r| {
            (
                r["ext"].as_u64().unwrap_or(0),
                r["result"].as_str().unwrap_or("").to_string(),
                r["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        r,
        vec![
            (21, "delivered".to_string(), Value::from(200)),
            (35, "delivered".to_string(), Value::from(200)),
            (36, "delivered".to_string(), Value::from(200)),
        ],
        "{v}"
    );
    for p in [&p21, &p35, &p36] {
        p.expect_method("MESSAGE", "the second broadcast", T);
    }

    // A group with a member that refuses: some have it (status 5), the refusal
    // with its status, the offline member listed.
    p36.set_answer(486);
    let o = sw.pbxctl(&["--json", "message", "100", "fire drill"]);
    assert_eq!(o.status.code(), Some(5), "some, not all: {}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["text"], "100: delivered to 1 of 3", "{v}");
    let receipts = v["receipts"].as_array().cloned().unwrap_or_default();
    let get = |ext: u64| {
        receipts
            .iter()
            .find(|r| r["ext"] == ext)
            .cloned()
            .unwrap_or_else(|| panic!("no receipt for {ext}: {v}"))
    };
    assert_eq!(get(35)["result"], "delivered", "{v}");
    assert_eq!(get(36)["result"], "refused", "{v}");
    assert_eq!(get(36)["status"], 486, "{v}");
    assert_eq!(get(37)["result"], "offline", "{v}");
    assert_eq!(receipts.len(), 3, "{v}");

    // Nobody delivered: status 1, the switch's summary on standard error, the
    // receipts still listed.
    p35.set_answer(486);
    let o = sw.pbxctl(&["message", "100", "again"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("100: delivered to 0 of 2 online (1 offline)"),
        "{}",
        show(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("refused") && out.contains("offline"),
        "{}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------
// Click-to-dial.

/// `pbxctl dial A B` in the background (it returns once the call is connected or
/// has failed).
fn dial_bg(sw: &Switch, a: &str, b: &str) -> JoinHandle<Output> {
    let dir = sw.runtime_dir().to_path_buf();
    let (a, b) = (a.to_string(), b.to_string());
    std::thread::spawn(move || {
        pbxctl_in(
            &dir,
            &["--timeout", "20", "dial", &a, &b],
            Duration::from_secs(30),
        )
    })
}

fn joined(h: JoinHandle<Output>) -> Output {
    match h.join() {
        Ok(o) => o,
        Err(_) => panic!("the pbxctl thread panicked"),
    }
}

/// The SDP-less INVITE of a click-to-dial call at A.
fn expect_dial_invite(a: &Ua, target: &str) -> Msg {
    let inv = a.expect_invite("click-to-dial rings A first", T);
    assert!(inv.body.is_empty(), "no SDP to A:\n{}", inv.dump());
    assert_eq!(inv.header("Content-Length"), Some("0"), "{}", inv.dump());
    assert!(inv.header("Content-Type").is_none(), "{}", inv.dump());
    assert_eq!(inv.uri().as_deref(), Some(a.contact_uri().as_str()));
    assert!(
        uri_of(inv.header("From").unwrap_or("")).starts_with(&format!("sip:{target}@")),
        "A sees whom it is connected to:\n{}",
        inv.dump()
    );
    inv
}

/// A answers, B gets A's offer and answers, A gets B's answer in the ACK, pbxctl
/// reports the connection. Returns both INVITEs.
fn connect(sw: &Switch, a: &Ua, b: &Ua) -> (Msg, Msg) {
    let h = dial_bg(sw, &a.user, &b.user);
    let inv_a = expect_dial_invite(a, &b.user);
    a.respond(&inv_a, 180, None);
    let offer = sdp(&a.user, 1, "sendrecv");
    a.respond_sdp(&inv_a, 200, &offer);
    let inv_b = b.expect_invite("A's offer goes to B", T);
    assert_eq!(inv_b.body, offer, "B gets A's offer byte for byte");
    assert_eq!(inv_b.header("Content-Type"), Some(SDP));
    assert_eq!(inv_b.uri().as_deref(), Some(b.contact_uri().as_str()));
    assert!(
        uri_of(inv_b.header("From").unwrap_or("")).starts_with(&format!("sip:{}@", a.user)),
        "B sees A calling:\n{}",
        inv_b.dump()
    );
    assert_ne!(inv_a.call_id(), inv_b.call_id(), "two legs, two dialogs");
    let answer_sdp = sdp(&b.user, 1, "sendrecv");
    b.respond(&inv_b, 180, None);
    b.respond_sdp(&inv_b, 200, &answer_sdp);
    let ack_b = b.expect_method("ACK", "B's 200 is ACKed", T);
    assert_eq!(ack_b.call_id(), inv_b.call_id());
    assert!(ack_b.body.is_empty(), "{}", ack_b.dump());
    let ack_a = a.expect_method("ACK", "A's 200 is ACKed with B's answer", T);
    assert_eq!(ack_a.call_id(), inv_a.call_id());
    assert_eq!(ack_a.body, answer_sdp, "B's answer reaches A in the ACK");
    assert_eq!(ack_a.header("Content-Type"), Some(SDP));
    let o = joined(h);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("connected {} and {}", a.user, b.user)),
        "{out}"
    );
    (inv_a, inv_b)
}

#[test]
fn click_to_dial_connects_and_either_side_hangs_up() {
    let sw = Switch::start(&Conf::new(&[21, 35]).calls(1, 5).build());
    let a = phone(&sw, 21);
    let b = phone(&sw, 35);

    // B hangs up.
    let (inv_a, inv_b) = connect(&sw, &a, &b);
    let row = sw.wait_call("click-to-dial answered", |c| c.state == ANSWERED);
    assert_eq!(
        (row.from.as_str(), row.to.as_str()),
        ("21", "35"),
        "{row:?}"
    );
    assert!(
        row.answer_ms >= row.start_ms && row.answer_ms > 0,
        "{row:?}"
    );
    // Both phones are in a call: the busy bits say so.
    sw.wait_bits(21, false, true);
    sw.wait_bits(35, false, true);
    let mut d = b.dialog_as_callee(&inv_b);
    assert_eq!(b.bye(&mut d).status(), 200, "the switch answers B's BYE");
    let bye = a.expect_method("BYE", "B hung up: A's leg ends", T);
    assert_eq!(bye.call_id(), inv_a.call_id());
    let r = sw.expect_record(0, "21", "35", T);
    assert_eq!(
        (r.outcome, r.status),
        (CallOutcome::Completed, 200),
        "{r:?}"
    );
    assert!(r.answer_ms > 0 && r.end_ms >= r.answer_ms, "{r:?}");
    sw.wait_call("the click-to-dial call ended", |c| {
        c.id == row.id && c.state == coventry_shared::stateblock::call_state::ENDED
    });

    // A hangs up.
    let mark = sw.mark();
    let (inv_a, inv_b) = connect(&sw, &a, &b);
    let mut d = a.dialog_as_callee(&inv_a);
    assert_eq!(a.bye(&mut d).status(), 200, "the switch answers A's BYE");
    let bye = b.expect_method("BYE", "A hung up: B's leg ends", T);
    assert_eq!(bye.call_id(), inv_b.call_id());
    let r = sw.expect_record(mark, "21", "35", T);
    assert_eq!(
        (r.outcome, r.status),
        (CallOutcome::Completed, 200),
        "{r:?}"
    );
    if let Some(m) = fenced_request(&a, "BYE") {
        panic!("A hung up itself and still got a BYE:\n{}", m.dump());
    }
    // Both are idle again.
    sw.wait_bits(21, false, false);
    sw.wait_bits(35, false, false);
}

#[test]
fn click_to_dial_parties_are_busy_while_connected() {
    let sw = Switch::start(&Conf::new(&[21, 35, 37, 38]).calls(1, 5).build());
    let a = phone(&sw, 21);
    let b = phone(&sw, 35);
    let mut c = phone(&sw, 37);
    let mut watcher = phone(&sw, 38);
    let (_inv_a, inv_b) = connect(&sw, &a, &b);
    sw.wait_bits(21, false, true);
    sw.wait_bits(35, false, true);
    let mut problems = Vec::new();
    // A busy lamp field on 35 shows the call.
    let (ok, _) = subscribe(&mut watcher, "35", "dialog");
    assert_eq!(ok.status(), Some(200), "{}", ok.dump());
    let first = notifies_until(&watcher, "(initial)", |_| true).remove(0);
    if !first.text().contains("<state>confirmed</state>") {
        problems.push(format!(
            "a BLF subscriber of 35 does not see its click-to-dial call: {}",
            first.text()
        ));
    }
    // Both lines are in use: a third caller gets busy, neither phone rings.
    for (target, callee) in [("35", &b), ("21", &a)] {
        let mut call = c.call_start(target, &sdp("37", 1, "sendrecv"));
        let fin = c.call_final(&mut call, T).and_then(|m| m.status());
        // Routed by now: an INVITE to the callee would be in before its fence.
        let rang = fenced_request(callee, "INVITE");
        if let Some(m) = &rang {
            callee.respond(m, 486, None);
        }
        if rang.is_some() || fin != Some(486) {
            problems.push(format!(
                "a call to {target} during its click-to-dial call rang it: {}, \
                 final {fin:?}",
                rang.is_some()
            ));
        }
    }
    let mut d = b.dialog_as_callee(&inv_b);
    b.bye(&mut d);
    a.expect_method("BYE", "B hung up", T);
    for e in [21, 35] {
        let idle = coventry_tests::poll_until(T, || {
            let s = sw.snapshot();
            (!s.is_busy(e) && !s.is_ringing(e)).then_some(())
        });
        if idle.is_none() {
            problems.push(format!("{e}: busy bit still set after the call ended"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        sw.snapshot().calls_text()
    );
}

#[test]
fn click_to_dial_a_stranger_cannot_end_it() {
    let sw = Switch::start(&Conf::new(&[21, 35, 37]).calls(1, 5).build());
    let a = phone(&sw, 21);
    let b = phone(&sw, 35);
    let (inv_a, inv_b) = connect(&sw, &a, &b);
    let row = sw.wait_call("click-to-dial answered", |c| c.state == ANSWERED);
    // 37 knows both legs' Call-IDs and tags but is not one of the call's phones
    // (it sits on another loopback address, as in calls.rs).
    let sock = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let mut c = Ua::with_socket(sock, sw.addr(), "37", &coventry_tests::secret(37));
    c.register(300);
    let mut problems = Vec::new();
    for (leg, inv) in [("B", &inv_b), ("A", &inv_a)] {
        let mut stolen = c.dialog_as_callee(inv);
        stolen.local_cseq += 10;
        let st = c.bye(&mut stolen).status();
        if st != 403 {
            problems.push(format!("a stranger's BYE on leg {leg} got {st}, not 403"));
        }
    }
    for (p, who) in [(&a, "21"), (&b, "35")] {
        if let Some(m) = fenced_request(p, "BYE") {
            problems.push(format!(
                "{who} was hung up by the stranger: {}",
                m.summary()
            ));
        }
    }
    let state = sw
        .snapshot()
        .calls()
        .into_iter()
        .find(|c| c.id == row.id)
        .map(|c| c.state);
    if state != Some(ANSWERED) {
        problems.push(format!("the call is no longer answered: {state:?}"));
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        sw.snapshot().calls_text()
    );
    let mut d = a.dialog_as_callee(&inv_a);
    assert_eq!(a.bye(&mut d).status(), 200);
    b.expect_method("BYE", "A hung up", T);
}

#[test]
fn click_to_dial_failures_end_cleanly() {
    let sw = Switch::start(&Conf::new(&[21, 35]).calls(1, 2).build());
    let a = phone(&sw, 21);
    let b = phone(&sw, 35);

    // A rings but does not answer: cancelled after its rings (2 of 1 s).
    let h = dial_bg(&sw, "21", "35");
    let inv_a = expect_dial_invite(&a, "35");
    a.respond(&inv_a, 180, None);
    let cancel = a.expect_method("CANCEL", "A did not answer", T);
    assert_eq!(cancel.call_id(), inv_a.call_id());
    assert!(poll(|| a.invite_final(&inv_a) == Some(487)));
    let o = joined(h);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("21 did not answer"),
        "{}",
        show(&o)
    );
    let r = sw.expect_record(0, "21", "35", T);
    assert_eq!(r.outcome, CallOutcome::NoAnswer, "{r:?}");
    assert!(fenced_request(&b, "INVITE").is_none());

    // A declines: its 603 is ACKed, B never rings.
    let mark = sw.mark();
    let h = dial_bg(&sw, "21", "35");
    let inv_a = expect_dial_invite(&a, "35");
    a.respond(&inv_a, 603, None);
    let ack = a.expect_method("ACK", "the 603 is ACKed", T);
    assert_eq!(ack.call_id(), inv_a.call_id());
    assert_eq!(ack.branch(), inv_a.branch(), "hop-by-hop ACK: same branch");
    let o = joined(h);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("21 did not take the call (603)"),
        "{}",
        show(&o)
    );
    assert!(fenced_request(&b, "INVITE").is_none());
    let r = sw.expect_record(mark, "21", "35", T);
    assert_eq!(r.outcome, CallOutcome::Rejected, "{r:?}");
    assert_eq!(r.answer_ms, 0, "{r:?}");

    // B busy (its phone says 486): A is answered (ACK) and hung up (BYE).
    let failing_b = |setup: &dyn Fn(), b_answers: Option<u16>, want: &str| {
        setup();
        let mark = sw.mark();
        let h = dial_bg(&sw, "21", "35");
        let inv_a = expect_dial_invite(&a, "35");
        a.respond_sdp(&inv_a, 200, &sdp("21", 1, "sendrecv"));
        if let Some(code) = b_answers {
            let inv_b = b.expect_invite("B is tried", T);
            b.respond(&inv_b, code, None);
            let ack = b.expect_method("ACK", "B's failure is ACKed", T);
            assert_eq!(ack.branch(), inv_b.branch());
        }
        let ack = a.expect_method("ACK", "A's 200 is ACKed", T);
        assert_eq!(ack.call_id(), inv_a.call_id());
        assert!(
            ack.text()
                .lines()
                .filter(|l| l.starts_with("m="))
                .all(|l| l.contains(" 0 ")),
            "A's offer is answered with every stream declined:\n{}",
            ack.dump()
        );
        let bye = a.expect_method("BYE", "A is hung up", T);
        assert_eq!(bye.call_id(), inv_a.call_id());
        let o = joined(h);
        assert_eq!(o.status.code(), Some(1), "{want}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{want}: {}", show(&o));
        let r = sw.expect_record(mark, "21", "35", T);
        assert!(r.end_ms > 0, "{r:?}");
        assert_ne!(r.outcome, CallOutcome::Completed, "{r:?}");
        sw.wait_bits(21, false, false);
    };
    failing_b(&|| {}, Some(486), "35 is busy (486)");
    // B on DND: the switch knows at once.
    failing_b(
        &|| {
            ctl_ok(&sw, &["dnd", "35", "on"]);
        },
        None,
        "35 is busy (486)",
    );
    assert!(fenced_request(&b, "INVITE").is_none());
    // B absent.
    failing_b(
        &|| {
            ctl_ok(&sw, &["dnd", "35", "off"]);
            ctl_ok(&sw, &["release", "35"]);
        },
        None,
        "35 is not available (480)",
    );
}

// ---------------------------------------------------------------------------
// Busy lamp fields.

/// NOTIFYs `p` receives until one satisfies `pred`; returns them all (in order).
fn notifies_until(p: &Ua, what: &str, pred: impl Fn(&Msg) -> bool) -> Vec<Msg> {
    let mut got = Vec::new();
    loop {
        match p.recv_method("NOTIFY", T) {
            Some(m) => {
                let done = pred(&m);
                got.push(m);
                if done {
                    return got;
                }
            }
            None => panic!(
                "no NOTIFY {what} within {T:?}; got:\n{}",
                got.iter()
                    .map(Msg::dump)
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            ),
        }
    }
}

/// The state of dialog `id` in a dialog-info body, if listed.
fn dialog_state(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("<dialog id=\"{id}\""))?;
    let rest = &body[at..];
    let end = rest.find("</dialog>")?;
    let d = &rest[..end];
    let s = d.find("<state>")? + "<state>".len();
    let e = d.find("</state>")?;
    Some(d[s..e].to_string())
}

fn subscribe(p: &mut Ua, target: &str, event: &str) -> (Msg, String) {
    let ex = p.out_of_dialog(
        "SUBSCRIBE",
        target,
        &[
            format!("Event: {event}"),
            "Expires: 600".to_string(),
            "Accept: application/dialog-info+xml".to_string(),
        ],
        None,
    );
    assert!(ex.challenge.is_some(), "SUBSCRIBE is authenticated");
    let r = ex.response().clone();
    let req = Msg::parse(&ex.request, p.local_addr()).unwrap();
    let from_tag = tag_of(req.header("From").unwrap_or("")).unwrap_or_default();
    (r, from_tag)
}

#[test]
fn blf_sees_early_confirmed_terminated_and_dnd() {
    let sw = Switch::start(&Conf::new(&[21, 35, 38]).calls(1, 5).build());
    let mut p21 = phone(&sw, 21);
    let p35 = phone(&sw, 35);
    let mut p38 = phone(&sw, 38);

    let (ok, tag) = subscribe(&mut p38, "35", "dialog");
    assert_eq!(ok.status(), Some(200), "{}", ok.dump());
    assert!(ok.header("Expires").is_some(), "{}", ok.dump());
    let first = notifies_until(&p38, "(initial)", |_| true).remove(0);
    let check = |n: &Msg| {
        assert_eq!(n.header("Event"), Some("dialog"), "{}", n.dump());
        assert_eq!(
            n.header("Content-Type"),
            Some("application/dialog-info+xml"),
            "{}",
            n.dump()
        );
        assert!(
            n.header("Subscription-State")
                .is_some_and(|s| s.starts_with("active")),
            "{}",
            n.dump()
        );
        assert_eq!(n.call_id(), ok.call_id(), "in the subscription's dialog");
        assert_eq!(
            tag_of(n.header("To").unwrap_or("")).as_deref(),
            Some(tag.as_str())
        );
        assert_eq!(
            tag_of(n.header("From").unwrap_or("")),
            tag_of(ok.header("To").unwrap_or(""))
        );
        assert_eq!(n.uri().as_deref(), Some(p38.contact_uri().as_str()));
        let body = n.text();
        assert!(
            body.contains("<dialog-info") && body.contains("entity=\"sip:35@"),
            "{body}"
        );
    };
    check(&first);
    assert!(
        !first.text().contains("<dialog id"),
        "idle: {}",
        first.text()
    );

    // A call to 35: early while it rings, confirmed when answered, terminated.
    let offer = sdp("21", 1, "sendrecv");
    let mut call = p21.call_start("35", &offer);
    let inv = p35.expect_invite("the call", T);
    let row = sw.wait_call("the call to 35", |c| c.to == "35");
    let id = row.id.to_string();
    let n = notifies_until(&p38, "early", |n| dialog_state(&n.text(), &id).is_some());
    assert_eq!(
        dialog_state(&n.last().unwrap().text(), &id).as_deref(),
        Some("early"),
        "{}",
        n.last().unwrap().text()
    );
    assert!(n.last().unwrap().text().contains("direction=\"recipient\""));
    p35.respond(&inv, 180, None);
    p35.respond_sdp(&inv, 200, &sdp("35", 1, "sendrecv"));
    p21.call_expect(&mut call, 200, T);
    p21.ack(&mut call);
    let n2 = notifies_until(&p38, "confirmed", |n| {
        dialog_state(&n.text(), &id).as_deref() == Some("confirmed")
    });
    p21.bye(call.dialog());
    let n3 = notifies_until(&p38, "terminated", |n| {
        dialog_state(&n.text(), &id).as_deref() == Some("terminated")
    });
    let states: Vec<String> = n
        .iter()
        .chain(&n2)
        .chain(&n3)
        .filter_map(|m| dialog_state(&m.text(), &id))
        .collect();
    assert_eq!(
        states,
        vec!["early", "confirmed", "terminated"],
        "in order, once each"
    );
    let mut versions = vec![first.clone()];
    versions.extend(n.iter().chain(&n2).chain(&n3).cloned());
    for m in &versions {
        check(m);
    }
    let v: Vec<u64> = versions
        .iter()
        .filter_map(|m| {
            let b = m.text();
            let info = &b[b.find("<dialog-info")?..];
            let at = info.find(" version=\"")? + 10;
            info[at..].split('"').next()?.parse().ok()
        })
        .collect();
    assert!(
        v.len() == versions.len() && v.windows(2).all(|w| w[1] == w[0] + 1),
        "versions count up by one: {v:?}"
    );

    // DND shows as a confirmed pseudo-dialog.
    ctl_ok(&sw, &["dnd", "35", "on"]);
    let n = notifies_until(&p38, "DND", |n| dialog_state(&n.text(), "dnd").is_some());
    assert_eq!(
        dialog_state(&n.last().unwrap().text(), "dnd").as_deref(),
        Some("confirmed")
    );
    assert!(
        dialog_state(&n.last().unwrap().text(), &id).is_none(),
        "the call is gone"
    );
    ctl_ok(&sw, &["dnd", "35", "off"]);
    notifies_until(&p38, "DND off", |n| {
        dialog_state(&n.text(), "dnd").as_deref() == Some("terminated")
    });

    // An extension that is not configured.
    let ex = p38.out_of_dialog("SUBSCRIBE", "77", &["Event: dialog".to_string()], None);
    assert_eq!(
        ex.status(),
        404,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
}

/// Bit `idx` (plan index) of a hex bitmap line: four extensions a hex digit,
/// lowest bit first.
fn hex_bit(hex: &str, idx: usize) -> bool {
    hex.as_bytes()
        .get(idx / 4)
        .and_then(|c| (*c as char).to_digit(16))
        .is_some_and(|d| d & (1 << (idx % 4)) != 0)
}

fn package_line(body: &str, key: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {body:?}"))
        .to_string()
}

#[test]
fn system_subscription_gets_the_bitmap_package() {
    let sw = Switch::start(&Conf::new(&[21, 35, 36, 38]).calls(1, 5).build());
    let _p21 = phone(&sw, 21);
    let _p35 = phone(&sw, 35);
    let mut p38 = phone(&sw, 38);
    let (ok, _) = subscribe(&mut p38, "system", "x-coventry-exts");
    assert_eq!(ok.status(), Some(200), "{}", ok.dump());
    let n = notifies_until(&p38, "(initial)", |_| true).remove(0);
    assert_eq!(n.header("Event"), Some("x-coventry-exts"), "{}", n.dump());
    assert_eq!(
        n.header("Content-Type"),
        Some("application/x-coventry-exts"),
        "{}",
        n.dump()
    );
    let body = n.text();
    assert!(body.starts_with("plan=2\n"), "{body}");
    let registered = package_line(&body, "registered");
    assert_eq!(registered.len(), 20, "80 extensions, 4 a digit: {body}");
    let snap = sw.snapshot();
    for e in snap.header.plan.numbers() {
        let i = snap.header.plan.index_of(e).unwrap();
        assert_eq!(
            hex_bit(&registered, i),
            snap.is_registered(e),
            "registered bit of {e}: {body}"
        );
    }
    assert!(
        hex_bit(&registered, 11) && !hex_bit(&registered, 26),
        "{body}"
    );
    for key in ["ringing", "busy", "dnd", "forwarded"] {
        assert_eq!(package_line(&body, key), "0".repeat(20), "{key}: {body}");
    }

    // A change: one NOTIFY with the new bits.
    ctl_ok(&sw, &["dnd", "36", "on"]);
    let n = notifies_until(&p38, "DND of 36", |_| true).remove(0);
    let body = n.text();
    let dnd = package_line(&body, "dnd");
    assert!(hex_bit(&dnd, 26), "36 is plan index 26: {body}");
    assert_eq!(dnd.chars().filter(|c| *c != '0').count(), 1, "{body}");
    ctl_ok(&sw, &["forward", "21", "35"]);
    let n = notifies_until(&p38, "forward of 21", |_| true).remove(0);
    assert!(
        hex_bit(&package_line(&n.text(), "forwarded"), 11),
        "{}",
        n.text()
    );
    assert!(
        fenced_request(&p38, "NOTIFY").is_none(),
        "one NOTIFY a change"
    );

    // Another package of system is refused.
    let ex = p38.out_of_dialog(
        "SUBSCRIBE",
        "system",
        &["Event: presence".to_string()],
        None,
    );
    assert_eq!(
        ex.status(),
        489,
        "{:?}",
        ex.response.as_ref().map(Msg::dump)
    );
}

#[test]
fn click_to_dial_hold_and_resume_cross_the_legs() {
    let sw = Switch::start(&Conf::new(&[21, 35]).calls(1, 5).build());
    let a = phone(&sw, 21);
    let b = phone(&sw, 35);
    let (inv_a, inv_b) = connect(&sw, &a, &b);
    let mut da = a.dialog_as_callee(&inv_a);
    for (version, offer_dir, answer_dir) in
        [(2, "sendonly", "recvonly"), (3, "sendrecv", "sendrecv")]
    {
        let offer = sdp("21", version, offer_dir);
        let p = a.send_in_dialog(&mut da, "INVITE", &[], Some((SDP, &offer)));
        let re_b = b.expect_invite("A's re-INVITE passed to B", T);
        assert_eq!(re_b.call_id(), inv_b.call_id(), "in B's own dialog");
        assert_eq!(re_b.body, offer, "the offer byte for byte");
        let answer = sdp("35", version, answer_dir);
        b.respond_sdp(&re_b, 200, &answer);
        b.expect_method("ACK", "the switch ACKs B's 200", T);
        let ex = a.finish(&da, p);
        assert_eq!(ex.status(), 200, "{}", ex.response().dump());
        assert_eq!(ex.response().body, answer, "B's answer reaches A");
    }
    // Still connected; A hangs up as usual.
    assert_eq!(a.bye(&mut da).status(), 200);
    b.expect_method("BYE", "B's leg ends", T);
    let r = sw.expect_record(0, "21", "35", T);
    assert_eq!(r.outcome, CallOutcome::Completed);
}

#[test]
fn pbxctl_hangup_ends_a_click_to_dial_call_by_extension_or_number() {
    let sw = Switch::start(&Conf::new(&[21, 35]).calls(1, 5).build());
    let a = phone(&sw, 21);
    let b = phone(&sw, 35);
    for how in ["ext", "number"] {
        let (inv_a, _) = connect(&sw, &a, &b);
        let target = if how == "ext" {
            "21".to_string()
        } else {
            sw.snapshot()
                .call_by_sip_id(inv_a.call_id().unwrap_or(""))
                .map(|c| c.id.to_string())
                .expect("the call in the table")
        };
        let o = sw.pbxctl(&["hangup", &target]);
        assert_eq!(o.status.code(), Some(0), "hangup {target}: {}", show(&o));
        a.expect_method("BYE", "the operator hung up (A)", T);
        b.expect_method("BYE", "the operator hung up (B)", T);
        let o = sw.pbxctl(&["hangup", &target]);
        assert_ne!(
            o.status.code(),
            Some(0),
            "nothing left to hang up: {}",
            show(&o)
        );
        for e in [21, 35] {
            let idle = coventry_tests::poll_until(T, || (!sw.snapshot().is_busy(e)).then_some(()));
            assert!(idle.is_some(), "{e} is still busy after the hang-up");
        }
    }
}

#[test]
fn click_to_dial_answers_within_its_timeout_with_where_the_call_is() {
    let sw = Switch::start(&Conf::new(&[21, 35]).build());
    let a = phone(&sw, 21);
    let _b = phone(&sw, 35);
    let dir = sw.runtime_dir().to_path_buf();
    // pbxctl's timeout must outlast the first leg's ringing on any machine (the
    // phone's 180 has to be seen) and end before the switch gives up (30 s on the
    // defaults).
    let bg = std::thread::spawn(move || {
        pbxctl_in(
            &dir,
            &["--json", "--timeout", "10", "dial", "21", "35"],
            coventry_tests::LONG,
        )
    });
    // 21's phone rings and is never picked up while pbxctl waits.
    let inv = a.expect_invite("the first leg", T);
    a.respond(&inv, 180, None);
    let o = bg.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(5),
        "under way, not connected: {}",
        show(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["step"], "a-ringing", "{v}");
    assert_eq!(v["done"], false, "{v}");
    assert!(v["text"].as_str().unwrap_or("").contains("21 rings"), "{v}");
}
