//! `pbxctl trace`: the SIP messages of one extension, as they go, from the real
//! daemon — one REGISTER (its digest response masked) and one call, nothing of
//! another extension — and when pbxctl is killed the daemon stops tracing (its
//! published state says so, and the trace ring is gone). A text's words are
//! traced only with `[security] show_texts = yes`, credentials never; a message
//! that came over TCP is shown as it came on the wire; and a trace goes on across
//! restarts of the daemon, by SIGTERM or by SIGKILL, on a lease taken anew.
#![allow(clippy::unwrap_used)]

use coventry_shared::event::Event;
use coventry_shared::stateblock::get_str;
use coventry_tests::ua::dialog::sdp;
use coventry_tests::ua::Ua;
use coventry_tests::{free_udp_tcp_port, pbxctl_bin, pin_listen_port, Conf, Switch, T};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A child killed and reaped when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of `from`, as they come, read by a thread of their own.
fn lines_of(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `pbxctl ARGS` (a trace) on the switch's runtime directory: the child and the
/// lines of its standard output and error.
fn pbxctl_trace(sw: &Switch, args: &[&str]) -> (KillOnDrop, Receiver<String>, Receiver<String>) {
    let mut child = KillOnDrop(
        Command::new(pbxctl_bin())
            .arg("--runtime-dir")
            .arg(sw.runtime_dir())
            .args(args)
            .env_remove("COVENTRY_RUNTIME_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pbxctl trace"),
    );
    let out = lines_of(child.0.stdout.take().expect("stdout"));
    let err = lines_of(child.0.stderr.take().expect("stderr"));
    (child, out, err)
}

/// Collect lines until one satisfies `done` (bounded by `within`).
fn read_until(
    rx: &Receiver<String>,
    seen: &mut Vec<String>,
    within: Duration,
    done: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => {
                let hit = done(&l);
                seen.push(l);
                if hit {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                panic!(
                    "the trace did not show what was expected within {within:?}:\n{}",
                    seen.join("\n")
                )
            }
        }
    }
}

/// The one-line records (the message lines of -v are indented).
fn summaries(seen: &[String]) -> Vec<&str> {
    seen.iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .collect()
}

/// Whether a summary line is `arrow peer ... what ... cseq`.
fn has(lines: &[&str], arrow: &str, peer: &str, what: &str, cseq: &str) -> bool {
    lines
        .iter()
        .any(|l| l.contains(&format!("{arrow} {peer} ")) && l.contains(what) && l.ends_with(cseq))
}

#[test]
fn a_trace_of_one_register_and_one_call() {
    let sw = Switch::start(&Conf::new(&[21, 22, 23]).build());
    let mut other = Ua::ext(sw.addr(), 23);
    other.register(300);
    let mut callee = Ua::ext(sw.addr(), 22);
    callee.register(300);

    let (mut child, rx, _err) = pbxctl_trace(&sw, &["trace", "21", "-v"]);
    let snap = sw.wait_state("the trace running", T, |s| s.body.site.traces == 1);
    assert_eq!(get_str(&snap.body.site.trace_filters), "21");
    let o = sw.pbxctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["traces"],
        serde_json::json!({"count": 1, "filters": ["21"]})
    );
    let ring = sw.runtime_dir().join("trace");
    let meta = std::fs::metadata(&ring).expect("the trace ring exists while tracing");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);

    // One REGISTER, challenged.
    let mut caller = Ua::ext(sw.addr(), 21);
    let ex = caller.register_exchange(Some(300), None);
    assert_eq!(ex.status(), 200);
    let sent = String::from_utf8_lossy(&ex.request).into_owned();
    let digest = sent
        .split("response=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the REGISTER carries a digest response")
        .to_string();
    // Another extension's REGISTER while the trace runs: none of its business.
    other.register(300);

    // One call, 21 to 22: answered, then hung up by 21.
    let mut call = caller.call_start("22", &sdp("21", 1, "sendrecv"));
    let inv = callee.expect_invite("the call", T);
    callee.respond(&inv, 180, None);
    caller.call_expect(&mut call, 180, T);
    callee.respond_sdp(&inv, 200, &sdp("22", 1, "sendrecv"));
    caller.call_expect(&mut call, 200, T);
    caller.ack(&mut call);
    callee.expect_method("ACK", "the ACK", T);
    assert_eq!(caller.bye(call.dialog()).status(), 200);

    let a = caller.local_addr().to_string();
    let b = callee.local_addr().to_string();
    let mut seen = Vec::new();
    read_until(&rx, &mut seen, T, |l| {
        l.starts_with(|c: char| c.is_ascii_digit())
            && l.contains(&format!("-> {a} "))
            && l.contains("200 OK")
            && l.ends_with("BYE")
    });
    let lines = summaries(&seen);
    let all = seen.join("\n");
    // The REGISTER, its challenge and its 200.
    assert!(has(&lines, "<-", &a, "REGISTER", "1 REGISTER"), "{all}");
    assert!(
        has(&lines, "->", &a, "401 Unauthorized", "1 REGISTER"),
        "{all}"
    );
    assert!(has(&lines, "<-", &a, "REGISTER", "2 REGISTER"), "{all}");
    assert!(has(&lines, "->", &a, "200 OK", "2 REGISTER"), "{all}");
    // Its digest response masked, in the whole message -v shows.
    assert!(all.contains("Authorization: Digest"), "{all}");
    assert!(all.contains("response=\"***\""), "{all}");
    assert!(!all.contains(&digest), "the digest response leaked:\n{all}");
    // The call: the INVITE both ways, its answers, the ACK and the BYE.
    for (arrow, peer, what, cseq) in [
        ("<-", &a, "INVITE", "INVITE"),
        ("->", &a, "407 Proxy Authentication Required", "INVITE"),
        ("->", &a, "100 Trying", "INVITE"),
        ("->", &b, "INVITE", "INVITE"),
        ("<-", &b, "180 Ringing", "INVITE"),
        ("->", &a, "180 Ringing", "INVITE"),
        ("<-", &b, "200 OK", "INVITE"),
        ("->", &a, "200 OK", "INVITE"),
        ("<-", &a, "ACK", "ACK"),
        ("->", &b, "ACK", "ACK"),
        ("<-", &a, "BYE", "BYE"),
        ("->", &b, "BYE", "BYE"),
        ("<-", &b, "200 OK", "BYE"),
        ("->", &a, "200 OK", "BYE"),
    ] {
        assert!(
            has(&lines, arrow, peer, what, cseq),
            "no `{arrow} {peer} {what} ... {cseq}` in:\n{all}"
        );
    }
    // Nothing of 23 (or of 22's own REGISTER, made before).
    let c = other.local_addr().to_string();
    assert!(!all.contains(&c) && !all.contains("sip:23@"), "{all}");
    assert!(!has(&lines, "<-", &b, "REGISTER", "REGISTER"), "{all}");

    // pbxctl killed: the daemon stops tracing — its published state shows no
    // trace, the ring is gone, and it said so.
    let mark = sw.mark();
    child.0.kill().expect("kill pbxctl");
    let _ = child.0.wait();
    let snap = sw.wait_state("the trace ended", T, |s| s.body.site.traces == 0);
    assert_eq!(get_str(&snap.body.site.trace_filters), "");
    assert!(snap.body.site.trace_tokens.iter().all(|t| *t == 0));
    assert!(!ring.exists(), "the trace ring is left behind");
    sw.expect_event_after(
        mark,
        "the trace's end",
        |e| matches!(e, Event::Notice { text } if text.starts_with("trace of 21 ended")),
        T,
    );
}

/// A trace nobody holds a lease for is refused; a bad target is a usage error.
#[test]
fn a_trace_without_its_lease_or_target_is_refused() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let mark = sw.mark();
    sw.fifo_write(b"#91 trace 12345 21\n").unwrap();
    let e = sw.expect_event_after(
        mark,
        "the result",
        |e| matches!(e, Event::CommandResult { id: Some(91), .. }),
        T,
    );
    assert!(
        matches!(&e, Event::CommandResult { text, .. } if text.contains("not held")),
        "{e:?}"
    );
    assert_eq!(sw.snapshot().body.site.traces, 0);
    assert!(!sw.runtime_dir().join("trace").exists());
    let o = sw.pbxctl(&["trace", "sip:21@x"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = sw.pbxctl(&["trace", "29"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no extension 29"),
        "{o:?}"
    );
}

/// The whole message shown under the summary line that satisfies `first` in the
/// lines of a `trace -v` (up to the blank line that ends it), unindented.
fn message_after(seen: &[String], first: impl Fn(&str) -> bool) -> Vec<&str> {
    seen.iter()
        .skip_while(|l| !first(l))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect()
}

/// A text's words are private: the trace shows its length only, unless
/// `[security] show_texts = yes`, as the event ring (watch) does. The digest
/// response of its Proxy-Authorization is masked either way.
#[test]
fn a_texts_words_are_traced_only_with_show_texts() {
    let words = "the key is under the mat";
    for show in [false, true] {
        let mut conf = Conf::new(&[21, 22]);
        if show {
            conf = conf.section("security", "show_texts = yes");
        }
        let sw = Switch::start(&conf.build());
        let mut to = Ua::ext(sw.addr(), 22);
        to.register(300);
        let (_child, rx, _err) = pbxctl_trace(&sw, &["trace", "21", "-v"]);
        sw.wait_state("the trace running", T, |s| s.body.site.traces == 1);

        let mut sender = Ua::ext(sw.addr(), 21);
        let ex = sender.message_exchange("22", "text/plain", words.as_bytes());
        assert_eq!(ex.status(), 200);
        assert_eq!(to.expect_request("the text", T).text(), words);
        let sent = String::from_utf8_lossy(&ex.request).into_owned();
        let digest = sent
            .split("response=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("the MESSAGE carries a digest response")
            .to_string();

        let (a, b) = (sender.local_addr().to_string(), to.local_addr().to_string());
        let mut seen = Vec::new();
        // The sender's 200 comes after the recipient's: everything before is in.
        read_until(&rx, &mut seen, T, |l| {
            l.contains(&format!("-> {a} ")) && l.contains("200 OK") && l.ends_with("MESSAGE")
        });
        let all = seen.join("\n");
        let to_b = message_after(&seen, |l| {
            l.contains(&format!("-> {b} ")) && l.contains(" MESSAGE ")
        });
        assert_eq!(
            to_b.last().copied(),
            Some(if show {
                words
            } else {
                "[text of 24 bytes not shown]"
            }),
            "the text as relayed to 22:\n{all}"
        );
        // Received twice (challenged, then with credentials) and relayed once:
        // the words in all three or in none.
        assert_eq!(
            all.matches(words).count(),
            if show { 3 } else { 0 },
            "{all}"
        );
        assert!(all.contains("Proxy-Authorization: Digest"), "{all}");
        assert!(all.contains("response=\"***\""), "{all}");
        assert!(!all.contains(&digest), "the digest response leaked:\n{all}");
    }
}

/// A message received over TCP is shown as it came on the wire — compact header
/// names and all — not in the canonical spelling the switch reads it in.
#[test]
fn a_tcp_message_is_traced_as_it_came_on_the_wire() {
    // The upstream's address (never answering) opens the TCP side and makes a
    // connection from this host a trusted peer's.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free_udp_tcp_port();
    let conf = Conf::new(&[21]).section(
        "upstream",
        &format!("route = {}", upstream.local_addr().unwrap()),
    );
    let sw = Switch::start(&pin_listen_port(&conf.build(), port));
    let (_child, rx, _err) = pbxctl_trace(&sw, &["trace", "all", "-v"]);
    sw.wait_state("the trace running", T, |s| s.body.site.traces == 1);

    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = TcpStream::connect(at).unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let me = peer.local_addr().unwrap();
    let lines = [
        format!("OPTIONS sip:{at};transport=tcp SIP/2.0"),
        format!("v: SIP/2.0/TCP {me};branch=z9hG4bKwire1"),
        "Max-Forwards: 70".to_string(),
        "f: <sip:upstream@127.0.0.1>;tag=1".to_string(),
        format!("t: <sip:{at}>"),
        "i: wire-1".to_string(),
        "CSeq:   7 OPTIONS".to_string(),
        "l: 0".to_string(),
    ];
    let wire = format!("{}\r\n\r\n", lines.join("\r\n"));
    peer.write_all(wire.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        peer.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"SIP/2.0 200 "), "{head:?}");

    let mut seen = Vec::new();
    read_until(&rx, &mut seen, T, |l| {
        l.contains(&format!("-> {me} ")) && l.contains("200 OK") && l.ends_with("7 OPTIONS")
    });
    let all = seen.join("\n");
    let received = |l: &str| {
        l.contains(&format!("<- {me} ")) && l.contains(" tcp OPTIONS ") && l.ends_with("7 OPTIONS")
    };
    assert!(seen.iter().any(|l| received(l)), "{all}");
    assert_eq!(
        message_after(&seen, received),
        lines.iter().map(String::as_str).collect::<Vec<_>>(),
        "the OPTIONS as it came:\n{all}"
    );
}

/// An OPTIONS of `phone` answered by the switch, seen in the trace `rx` (its
/// summary lines collected in `seen`).
fn options_traced(phone: &mut Ua, rx: &Receiver<String>, seen: &mut Vec<String>) {
    let r = phone.options().expect("an answer to OPTIONS");
    let (n, _) = r.cseq().expect("a CSeq");
    let a = phone.local_addr().to_string();
    read_until(rx, seen, T, |l| {
        l.contains(&format!("-> {a} "))
            && l.contains("200 OK")
            && l.ends_with(&format!(" {n} OPTIONS"))
    });
}

/// A trace survives restarts of the daemon, by SIGTERM and by SIGKILL: pbxctl
/// says on stderr (with --json: in its output) that the daemon went away and
/// came back, takes a lease on the new daemon — whose published state shows it —
/// and traces what it handles. Killed, it lets go of that lease too.
#[test]
fn a_trace_goes_on_across_restarts_of_the_daemon() {
    let mut sw = Switch::start(&Conf::new(&[21]).build());
    let (mut text, rx, err) = pbxctl_trace(&sw, &["trace", "21"]);
    let (_json, jrx, _jerr) = pbxctl_trace(&sw, &["--json", "trace", "all"]);
    sw.wait_state("both traces running", T, |s| s.body.site.traces == 2);
    let mut phone = Ua::ext(sw.addr(), 21);
    let (mut seen, mut notes, mut jseen) = (Vec::new(), Vec::new(), Vec::new());
    options_traced(&mut phone, &rx, &mut seen);

    for crash in [false, true] {
        let old = sw.pid().expect("pid");
        if crash {
            sw.kill9();
        }
        sw.restart();
        let new = sw.pid().expect("pid");
        read_until(&err, &mut notes, T, |l| {
            l == format!("-- coventryd restarted (pid {new}); tracing 21 again --")
        });
        assert!(
            notes.contains(&format!(
                "-- coventryd stopped (pid {old}); waiting for it to come back --"
            )),
            "{notes:?}"
        );
        read_until(&jrx, &mut jseen, T, |l| {
            l.contains("\"kind\":\"daemon-restarted\"") && l.contains(&format!("\"pid\":{new}"))
        });
        assert!(
            jseen
                .iter()
                .any(|l| l.contains("\"kind\":\"daemon-stopped\"")
                    && l.contains(&format!("\"pid\":{old}"))),
            "{jseen:?}"
        );
        // The new daemon shows both leases (pbxctl says it traces again only
        // once the daemon shows its own) and traces for them.
        let snap = sw.snapshot();
        assert_eq!(snap.body.site.traces, 2, "crash: {crash}");
        let mut filters: Vec<String> = get_str(&snap.body.site.trace_filters)
            .split_whitespace()
            .map(String::from)
            .collect();
        filters.sort();
        assert_eq!(filters, ["21", "all"]);
        options_traced(&mut phone, &rx, &mut seen);
    }
    let answers = seen
        .iter()
        .filter(|l| l.contains("200 OK") && l.ends_with("OPTIONS"));
    assert_eq!(
        answers.count(),
        3,
        "one before and one after each restart:\n{seen:?}"
    );

    // Killed, pbxctl lets go of its lease on the new daemon as well.
    text.0.kill().expect("kill pbxctl");
    let _ = text.0.wait();
    sw.wait_state("the trace of 21 ended", T, |s| s.body.site.traces == 1);
}
