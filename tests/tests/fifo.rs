//! The control FIFO: every line — valid, unknown, too long, binary — yields exactly
//! one command-result event with its request id; concurrent writers; the daemon
//! never blocks on it.
#![allow(clippy::unwrap_used)]

use coventry_shared::control::MAX_LINE;
use coventry_shared::event::{hidden_text, Event, ResultCode, Unregistration};
use coventry_tests::ua::Ua;
use coventry_tests::{Conf, Switch, LONG, T};

fn switch() -> Switch {
    Switch::start(&Conf::new(&[21, 22, 23]).build())
}

/// Wait for the result with request id `id`; returns (code, text).
fn result(sw: &Switch, mark: usize, id: u64) -> (ResultCode, String) {
    match sw.expect_event_after(
        mark,
        &format!("CommandResult #{id}"),
        |e| matches!(e, Event::CommandResult { id: Some(i), .. } if *i == id),
        T,
    ) {
        Event::CommandResult { code, text, .. } => (code, text),
        _ => unreachable!(),
    }
}

/// After a [`Switch::control_fence`] (whose id is `fence`): the command results
/// after `mark` other than the fence's, all there are.
fn results_before_fence(sw: &Switch, mark: usize, fence: u64) -> Vec<(Option<u64>, ResultCode)> {
    sw.events()
        .iter()
        .skip(mark)
        .filter_map(|r| match &r.event {
            Event::CommandResult { id, code, .. } if *id != Some(fence) => Some((*id, *code)),
            _ => None,
        })
        .collect()
}

fn results_with_id(sw: &Switch, mark: usize, id: u64) -> usize {
    sw.events()
        .iter()
        .skip(mark)
        .filter(|r| matches!(r.event, Event::CommandResult { id: Some(i), .. } if i == id))
        .count()
}

/// The switch still serves SIP: an OPTIONS is answered. A daemon blocked on the
/// FIFO never answers; the bound only stops such a hung test.
fn assert_sip_answered(sw: &Switch) {
    let mut ua = Ua::ext(sw.addr(), 23);
    ua.timeout = LONG;
    let r = ua.options();
    assert!(
        r.as_ref().and_then(|m| m.status()) == Some(200),
        "OPTIONS not answered: {:?}",
        r.map(|m| m.summary())
    );
}

#[test]
fn unknown_verb() {
    let sw = switch();
    let mark = sw.mark();
    sw.fifo_write(b"#1 frobnicate 21\n").unwrap();
    let (code, text) = result(&sw, mark, 1);
    assert_eq!(code, ResultCode::UnknownVerb, "{text}");
    assert!(text.contains("frobnicate"), "{text}");
    let fence = sw.control_fence();
    assert_eq!(results_with_id(&sw, mark, 1), 1);
    assert_eq!(results_before_fence(&sw, mark, fence).len(), 1);
    sw.wait_counters("commands_failed >= 1", |c| c.commands_failed >= 1);
}

#[test]
fn too_long_lines() {
    let sw = switch();
    let mark = sw.mark();
    // Over MAX_LINE but under PIPE_BUF: arrives whole, rejected with its id.
    let mut line = format!("#2 message 22 {}", "a".repeat(MAX_LINE)).into_bytes();
    line.push(b'\n');
    sw.fifo_write(&line).unwrap();
    let (code, text) = result(&sw, mark, 2);
    assert_eq!(code, ResultCode::BadSyntax, "{text}");
    // Far over PIPE_BUF: still exactly one result, and the next line is fine.
    let mark2 = sw.mark();
    let mut huge = format!("#3 message 22 {}", "b".repeat(20_000)).into_bytes();
    huge.push(b'\n');
    sw.fifo_write(&huge).unwrap();
    sw.fifo_write(b"#4 reload\n").unwrap();
    let (code, text) = result(&sw, mark2, 4);
    assert_eq!(code, ResultCode::Ok, "reload after a huge line: {text}");
    let fence = sw.control_fence();
    let results = results_before_fence(&sw, mark2, fence);
    assert_eq!(
        results.len(),
        2,
        "a 20 kB line must yield exactly one result:\n{}",
        sw.events_text(mark2)
    );
    let bad = results.into_iter().find(|(id, _)| *id != Some(4)).unwrap();
    assert_eq!(bad.1, ResultCode::BadSyntax);
    assert!(bad.0.is_none() || bad.0 == Some(3));
}

#[test]
fn binary_garbage() {
    let sw = switch();
    let mark = sw.mark();
    sw.fifo_write(b"#5 \xff\xfe\x00\x01 message 21 x\n")
        .unwrap();
    let (code, _) = result(&sw, mark, 5);
    assert_eq!(code, ResultCode::BadSyntax);
    let mark2 = sw.mark();
    sw.fifo_write(b"\x00\x01\x02\x03\x04\xc0\xc1\x80\n")
        .unwrap();
    sw.fifo_write(b"#6 release 21\n").unwrap();
    let (code, _) = result(&sw, mark2, 6);
    assert_eq!(code, ResultCode::Ok);
    let fence = sw.control_fence();
    assert_eq!(
        results_before_fence(&sw, mark2, fence).len(),
        2,
        "{}",
        sw.events_text(mark2)
    );
    assert!(sw.events().iter().skip(mark2).any(|r| matches!(
        r.event,
        Event::CommandResult {
            id: None,
            code: ResultCode::BadSyntax,
            ..
        }
    )));
    // Bad ids and usage errors keep what id they have.
    let mark3 = sw.mark();
    sw.fifo_write(b"#7 message 21\n").unwrap();
    assert_eq!(result(&sw, mark3, 7).0, ResultCode::BadSyntax);
    sw.fifo_write(b"#8 release twenty-one\n").unwrap();
    assert_eq!(result(&sw, mark3, 8).0, ResultCode::BadSyntax);
    assert_sip_answered(&sw);
}

#[test]
fn commands_do_what_they_say() {
    let sw = switch();
    let mut phone = Ua::ext(sw.addr(), 22);
    phone.register(300);
    let mark = sw.mark();
    sw.fifo_write("#10 message 22 from the operator ✓\n".as_bytes())
        .unwrap();
    let (code, text) = result(&sw, mark, 10);
    assert_eq!(code, ResultCode::Ok, "{text}");
    let m = phone.expect_request("operator MESSAGE", T);
    assert_eq!(m.text(), "from the operator ✓");
    sw.expect_event_after(
        mark,
        "Message to 22",
        |e| matches!(e, Event::Message { to, status: 200, text, .. } if to == "22" && *text == hidden_text("from the operator ✓")),
        T,
    );
    sw.fifo_write(b"#11 message 23 anyone?\n").unwrap();
    assert_eq!(
        result(&sw, mark, 11).0,
        ResultCode::Failed,
        "offline target"
    );
    sw.fifo_write(b"#12 message 77 anyone?\n").unwrap();
    assert_eq!(
        result(&sw, mark, 12).0,
        ResultCode::NotFound,
        "unknown target"
    );
    sw.fifo_write(b"#13 release 22\n").unwrap();
    assert_eq!(result(&sw, mark, 13).0, ResultCode::Ok);
    sw.expect_event_after(
        mark,
        "Unregistered 22 (released)",
        |e| {
            matches!(
                e,
                Event::Unregistered {
                    ext: 22,
                    why: Unregistration::Released,
                    ..
                }
            )
        },
        T,
    );
    sw.wait_contacts(22, &[]);
    sw.fifo_write(b"#14 reload\n").unwrap();
    assert_eq!(result(&sw, mark, 14).0, ResultCode::Ok);
    // Without an id too.
    let mark2 = sw.mark();
    sw.fifo_write(b"reload\n").unwrap();
    sw.expect_event_after(
        mark2,
        "result without id",
        |e| {
            matches!(
                e,
                Event::CommandResult {
                    id: None,
                    code: ResultCode::Ok,
                    ..
                }
            )
        },
        T,
    );
}

#[test]
fn fifty_concurrent_writers_each_get_their_result() {
    let sw = switch();
    let mark = sw.mark();
    let lines: Vec<(u64, Vec<u8>, ResultCode)> = (0..50u64)
        .map(|i| {
            let id = 1000 + i;
            match i % 4 {
                0 | 1 => (
                    id,
                    format!("#{id} release {}\n", 21 + i % 3).into_bytes(),
                    ResultCode::Ok,
                ),
                2 => (
                    id,
                    format!("#{id} jump {i}\n").into_bytes(),
                    ResultCode::UnknownVerb,
                ),
                _ => {
                    let mut l = format!("#{id} ").into_bytes();
                    l.extend_from_slice(b"\xff\xfe garbage\n");
                    (id, l, ResultCode::BadSyntax)
                }
            }
        })
        .collect();
    let start = std::sync::Barrier::new(50);
    std::thread::scope(|s| {
        for (_, line, _) in &lines {
            let (sw, start) = (&sw, &start);
            s.spawn(move || {
                start.wait();
                sw.fifo_write(line).unwrap();
            });
        }
        // The switch keeps answering SIP meanwhile.
        assert_sip_answered(&sw);
    });
    for (id, _, want) in &lines {
        let (code, text) = result(&sw, mark, *id);
        assert_eq!(code, *want, "#{id}: {text}");
    }
    let fence = sw.control_fence();
    for (id, _, _) in &lines {
        assert_eq!(
            results_with_id(&sw, mark, *id),
            1,
            "#{id} must have exactly one result"
        );
    }
    assert_eq!(
        results_before_fence(&sw, mark, fence).len(),
        50,
        "{}",
        sw.events_text(mark)
    );
}

#[test]
fn the_daemon_never_blocks_on_the_fifo() {
    let sw = switch();
    let path = coventry_shared::runtime::control_path(sw.runtime_dir());
    // A writer that opens the FIFO and never writes or closes.
    let idle = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(&path)
        .unwrap();
    assert_sip_answered(&sw);
    // Writers come and go (EOF for the reader each time all of them close).
    drop(idle);
    for i in 0..20u64 {
        let mark = sw.mark();
        sw.fifo_write(format!("#{} reload\n", 2000 + i).as_bytes())
            .unwrap();
        assert_eq!(result(&sw, mark, 2000 + i).0, ResultCode::Ok);
    }
    // A flood: 600 lines as fast as the pipe takes them; SIP stays responsive.
    let mark = sw.mark();
    let flood = std::thread::scope(|s| {
        let h = s.spawn(|| {
            for i in 0..600u64 {
                sw.fifo_write(format!("#{} frob\n", 3000 + i).as_bytes())
                    .unwrap();
            }
        });
        assert_sip_answered(&sw);
        h.join()
    });
    assert!(flood.is_ok());
    // Every line of the flood is read before the fence's: then all results are in.
    let fence = sw.control_fence();
    assert_eq!(
        results_before_fence(&sw, mark, fence).len(),
        600,
        "results for the flood; lost events: {}",
        sw.events_lost()
    );
    assert_sip_answered(&sw);
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
    }
}
