//! The state block under concurrency: a reader hammering snapshots while the writer
//! updates never sees a torn record, and a reader that falls behind the event ring
//! counts exactly the events it lost.

use coventry_shared::dialplan::Plan;
use coventry_shared::event::Event;
use coventry_shared::stateblock::{
    get_str, put_str, BlockInit, EventCursor, OpenError, StateReader, StateWriter, RING_SLOTS,
};
use proptest::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn init() -> BlockInit {
    BlockInit {
        plan: Plan::TwoDigit,
        bound: "127.0.0.1:5060".into(),
        realm: "test".into(),
        state_dir: String::new(),
        start_ms: 1,
    }
}

/// Writes generation `g` into a record spread over the whole body: if any reader sees
/// a mix of generations, the copy was torn.
fn write_generation(w: &mut StateWriter, g: u64) {
    let mut body = w.body_mut();
    let text = format!("gen-{g}");
    for e in body.exts.iter_mut() {
        put_str(&mut e.name, &text);
        e.contacts[3].expires_ms = g;
    }
    body.counters.sip_in = g;
    body.counters.reserved[12] = g;
    body.calls[127].start_ms = g;
}

#[test]
fn snapshots_are_never_torn() {
    // The writer keeps writing until both readers have checked their snapshots
    // (bounded), so the copies really race the writes.
    const SNAPSHOTS: u64 = 300;
    const MOVES: u64 = 10;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    let mut w = StateWriter::create(&path, &init()).expect("create");
    write_generation(&mut w, 0);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                // Counted as done however the reader ends (a failed assertion
                // too), so the writer never waits for a reader that is gone.
                struct Done(Arc<std::sync::atomic::AtomicUsize>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _done = Done(done);
                let r = StateReader::open(&path).expect("open");
                let (mut seen, mut last, mut moved) = (0u64, 0u64, 0u64);
                // Until enough snapshots were checked and the writer was seen to
                // move under this reader often enough, however the two threads
                // are scheduled (bounded by the writer's own limit).
                for _ in 0..10_000_000 {
                    if seen >= SNAPSHOTS && moved > MOVES {
                        break;
                    }
                    let Some(s) = r.snapshot() else { continue };
                    let g = s.body.counters.sip_in;
                    let text = format!("gen-{g}");
                    for e in s.body.exts.iter() {
                        assert_eq!(get_str(&e.name), text, "torn extension name");
                        assert_eq!(e.contacts[3].expires_ms, g, "torn contact");
                    }
                    assert_eq!(s.body.counters.reserved[12], g, "torn counters");
                    assert_eq!(s.body.calls[127].start_ms, g, "torn call table");
                    assert!(g >= last, "generations went backwards");
                    if g > last {
                        moved += 1;
                    }
                    last = g;
                    seen += 1;
                }
                (seen, moved)
            })
        })
        .collect();
    let mut g = 0u64;
    while done.load(Ordering::SeqCst) < 2 && g < 2_000_000 {
        g += 1;
        write_generation(&mut w, g);
        // A breath between updates, so readers also find the block at rest.
        std::thread::sleep(std::time::Duration::from_micros(20));
    }
    for r in readers {
        let (seen, moved) = r.join().expect("reader panicked");
        assert!(seen >= SNAPSHOTS, "a reader got only {seen} snapshots");
        assert!(
            moved > MOVES,
            "the writer must have moved under the reader ({moved} changes seen)"
        );
    }
}

#[test]
fn reader_counts_lost_events_exactly() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    let mut w = StateWriter::create(&path, &init()).expect("create");
    let r = StateReader::open(&path).expect("open");
    let mut cur = r.cursor_at_end();
    let ev = |i: u64| Event::Notice {
        text: format!("n{i}"),
    };
    for i in 0..10 {
        w.push_event(i, &ev(i));
    }
    let p = r.poll_events(&mut cur, 1000);
    assert_eq!((p.events.len(), p.lost), (10, 0));
    assert_eq!(p.events[9].event, ev(9));
    // Fall behind by more than the ring holds.
    let extra = RING_SLOTS as u64 + 476;
    for i in 10..10 + extra {
        w.push_event(i, &ev(i));
    }
    let p = r.poll_events(&mut cur, 10_000);
    assert_eq!(p.lost, 476);
    assert_eq!(p.events.len(), RING_SLOTS);
    assert_eq!(p.events[0].seq, 10 + 476);
    assert_eq!(p.events[0].event, ev(10 + 476));
    assert!(p.events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let p = r.poll_events(&mut cur, 10);
    assert_eq!((p.events.len(), p.lost), (0, 0));
}

#[test]
fn concurrent_reader_accounts_for_every_event() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    let mut w = StateWriter::create(&path, &init()).expect("create");
    const TOTAL: u64 = 50_000;
    let reader = {
        let path = path.clone();
        std::thread::spawn(move || {
            let r = StateReader::open(&path).expect("open");
            // From the very first event: whatever was overwritten before this
            // thread started must be counted as lost too.
            let mut cur = EventCursor { next: 0 };
            let (mut got, mut lost, mut next) = (0u64, 0u64, 0u64);
            for _ in 0..5_000_000 {
                let p = r.poll_events(&mut cur, 64);
                lost += p.lost;
                for e in p.events {
                    assert!(e.seq >= next, "events out of order");
                    let Event::Notice { text } = &e.event else {
                        panic!("kind")
                    };
                    assert_eq!(text, &format!("n{}", e.seq), "torn event");
                    next = e.seq + 1;
                    got += 1;
                }
                if got + lost >= TOTAL {
                    break;
                }
            }
            (got, lost)
        })
    };
    for i in 0..TOTAL {
        w.push_event(
            i,
            &Event::Notice {
                text: format!("n{i}"),
            },
        );
    }
    let (got, lost) = reader.join().expect("reader panicked");
    assert_eq!(
        got + lost,
        TOTAL,
        "every event is either read or counted as lost"
    );
}

#[test]
fn restart_is_noticed_and_garbage_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    assert!(matches!(
        StateReader::open(&path),
        Err(OpenError::Missing(_))
    ));
    let w = StateWriter::create(&path, &init()).expect("create");
    let r = StateReader::open(&path).expect("open");
    assert!(!r.replaced());
    assert!(r.daemon_alive());
    assert_eq!(r.header().bound, "127.0.0.1:5060");
    assert_eq!(r.header().plan, Plan::TwoDigit);
    drop(w);
    let _w2 = StateWriter::create(&path, &init()).expect("again");
    assert!(
        r.replaced(),
        "a new block under the same path must be noticed"
    );
    std::fs::write(&path, b"not a state block").expect("write");
    assert!(matches!(
        StateReader::open(&path),
        Err(OpenError::Invalid(_))
    ));
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.path().join("state2");
        StateWriter::create(&p, &init()).expect("create");
        std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777
    };
    assert_eq!(mode & 0o007, 0, "state block must not be world-accessible");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// Whatever interleaving of pushes and polls, seen + lost == pushed.
    #[test]
    fn seen_plus_lost_is_pushed(batches in proptest::collection::vec((0usize..2500, 1usize..3000), 1..6)) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state");
        let mut w = StateWriter::create(&path, &init()).expect("create");
        let r = StateReader::open(&path).expect("open");
        let mut cur = r.cursor_at_end();
        let (mut pushed, mut seen, mut lost) = (0u64, 0u64, 0u64);
        for (push, poll_max) in batches {
            for _ in 0..push {
                w.push_event(pushed, &Event::Notice { text: pushed.to_string() });
                pushed += 1;
            }
            let p = r.poll_events(&mut cur, poll_max);
            seen += p.events.len() as u64;
            lost += p.lost;
        }
        let p = r.poll_events(&mut cur, usize::MAX / 2);
        seen += p.events.len() as u64;
        lost += p.lost;
        prop_assert_eq!(seen + lost, pushed);
    }
}

#[test]
fn lamps_follow_the_priority() {
    use coventry_shared::stateblock::{set_bit, Lamp, EXT_CONFIGURED};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    let mut w = StateWriter::create(&path, &init()).expect("create");
    {
        let mut b = w.body_mut();
        for i in 0..6 {
            b.exts[i].flags |= EXT_CONFIGURED;
            set_bit(&mut b.bitmaps.registered, i, true);
        }
        set_bit(&mut b.bitmaps.ringing, 0, true);
        set_bit(&mut b.bitmaps.busy, 0, true);
        set_bit(&mut b.bitmaps.busy, 1, true);
        set_bit(&mut b.bitmaps.dnd, 2, true);
        set_bit(&mut b.bitmaps.forwarded, 2, true);
        set_bit(&mut b.bitmaps.forwarded, 3, true);
        set_bit(&mut b.bitmaps.registered, 5, false);
    }
    let s = StateReader::open(&path)
        .expect("open")
        .snapshot()
        .expect("snap");
    let lamps: String = (10..=16).map(|n| s.lamp(n).letter()).collect();
    assert_eq!(lamps, "rBDFR-.");
    assert_eq!(s.lamp(99), Lamp::Unconfigured);
}

#[test]
fn a_block_truncated_under_a_reader_is_reported_never_a_fault() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    let mut w = StateWriter::create(&path, &init()).expect("create");
    w.heartbeat(1_234);
    for i in 0..10 {
        w.push_event(
            i,
            &Event::Notice {
                text: i.to_string(),
            },
        );
    }
    let r = StateReader::open(&path).expect("open");
    let mut cur = r.cursor_at_start();
    assert_eq!(r.poll_events(&mut cur, 5).events.len(), 5);
    assert!(!r.replaced());
    for len in [
        coventry_shared::stateblock::RING_OFFSET as u64 + 100,
        300,
        0,
    ] {
        // Cut the file the writer still maps (the writer no longer touches it).
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open for cut")
            .set_len(len)
            .expect("truncate");
        assert!(r.truncated() && r.replaced(), "cut to {len} unnoticed");
        let polled = r.poll_events(&mut cur, 100);
        assert!(polled.events.is_empty() && polled.lost == 0, "{polled:?}");
        let h = r.header();
        assert_eq!(h.bound, "127.0.0.1:5060");
        match StateReader::open(&path) {
            Err(OpenError::Truncated { len: l, .. }) => assert_eq!(l, len),
            Err(e) => panic!("cut to {len}: {e}"),
            Ok(_) => panic!("cut to {len}: opened"),
        }
        if len < coventry_shared::stateblock::RING_OFFSET as u64 {
            assert!(r.snapshot().is_none(), "a snapshot of a cut body");
        }
        // Waiting on a cut block neither faults nor hangs.
        r.wait_for_events(&cur, std::time::Duration::from_millis(10));
    }
    drop(w);
}

/// A reader sleeping on the ring is woken by the writer's next event (another
/// thread here; another process in the field, the futex is shared), returns at
/// once when an event is already there, and wakes at its timeout otherwise.
#[test]
fn a_sleeping_reader_is_woken_by_the_next_event() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    let mut w = StateWriter::create(&path, &init()).expect("create");
    let r = StateReader::open(&path).expect("open");
    let mut cur = r.cursor_at_end();

    // The waits below would last an hour if nothing woke them; this bound only
    // stops a hung test.
    const NEVER: Duration = Duration::from_secs(3600);
    const HUNG: Duration = Duration::from_secs(120);

    // Nothing happens: the wait ends at its timeout, not (much) before.
    let t = Instant::now();
    r.wait_for_events(&cur, Duration::from_millis(50));
    assert!(
        t.elapsed() >= Duration::from_millis(40),
        "{:?}",
        t.elapsed()
    );

    // An event is already there: no sleep at all (an hour's wait returns).
    w.push_event(1, &Event::Notice { text: "a".into() });
    w.wake_readers();
    let r = std::sync::Arc::new(r);
    let (tx, rx) = std::sync::mpsc::channel();
    let r2 = r.clone();
    std::thread::spawn(move || {
        r2.wait_for_events(&cur, NEVER);
        let _ = tx.send(());
    });
    rx.recv_timeout(HUNG)
        .expect("a wait with an event already there returns");
    assert_eq!(r.poll_events(&mut cur, 10).events.len(), 1);

    // Asleep when the event comes: woken by it (an hour's wait returns).
    let (tx, rx) = std::sync::mpsc::channel();
    let r2 = r.clone();
    std::thread::spawn(move || {
        let _ = tx.send(nix::unistd::gettid().as_raw());
        r2.wait_for_events(&cur, NEVER);
        let _ = tx.send(0);
    });
    let tid = rx.recv_timeout(HUNG).expect("the sleeper's thread id");
    // Asleep: blocked in futex(2) (bounded poll on /proc).
    let asleep = (0..HUNG.as_millis() / 5).any(|_| {
        let now = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
            == Some(nix::libc::SYS_futex);
        if !now {
            std::thread::sleep(Duration::from_millis(5));
        }
        now
    });
    assert!(asleep, "the reader never went to sleep on the ring");
    w.push_event(2, &Event::Notice { text: "b".into() });
    w.wake_readers();
    rx.recv_timeout(HUNG)
        .expect("woken by the event, not the timeout");
    assert_eq!(r.poll_events(&mut cur, 10).events.len(), 1);
}
