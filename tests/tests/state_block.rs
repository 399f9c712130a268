//! The state block as readers see it while the real daemon writes: snapshots are
//! never torn, and a reader that fell behind counts the events it lost exactly.
#![allow(clippy::unwrap_used)]

use coventry_shared::event::Event;
use coventry_shared::stateblock::{get_str, StateReader, RING_SLOTS};
use coventry_tests::ua::Ua;
use coventry_tests::{Conf, Switch};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Snapshots the reader must take while the phones churn, and rounds of
/// register/unregister each churning extension must make: counts, not a time,
/// so a slow machine simply takes longer.
const SNAPSHOTS: u64 = 200;
const ROUNDS: u32 = 3;

#[test]
fn snapshots_are_never_torn_while_phones_churn() {
    let sw = Switch::start(&Conf::new(&[21, 22, 23]).ext_line(21, "lines = 4").build());
    let stop = AtomicBool::new(false);
    let taken = AtomicU64::new(0);
    let registered_seen = AtomicU64::new(0);
    let (snaps, changes) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r =
                StateReader::open(&coventry_shared::runtime::state_path(sw.runtime_dir())).unwrap();
            let mut n = 0u64;
            let mut seen_registered = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let snap = r.snapshot().expect("a consistent snapshot");
                n += 1;
                taken.store(n, Ordering::Relaxed);
                for e in snap.exts() {
                    let i = snap.header.plan.index_of(e.number).unwrap();
                    let bit =
                        coventry_shared::stateblock::get_bit(&snap.body.bitmaps.registered, i);
                    assert_eq!(
                        bit,
                        e.contact_count > 0,
                        "bit and contact count disagree for {}",
                        e.number
                    );
                    assert!(
                        usize::from(e.contact_count) <= coventry_shared::stateblock::MAX_CONTACTS
                    );
                    if e.contact_count > 0 {
                        seen_registered += 1;
                        registered_seen.store(seen_registered, Ordering::Relaxed);
                    }
                    for c in e.active_contacts() {
                        let uri = get_str(&c.uri);
                        assert!(
                            uri.starts_with(&format!("sip:{}@127.0.0.1:", e.number)),
                            "torn or foreign contact {uri:?} on {}",
                            e.number
                        );
                        assert!(
                            c.expires_ms > c.registered_ms,
                            "{uri}: expires before registered"
                        );
                    }
                }
            }
            (n, seen_registered)
        });
        let mut churn = Vec::new();
        for ext in [21u16, 22, 23] {
            let (sw, taken, registered_seen) = (&sw, &taken, &registered_seen);
            churn.push(s.spawn(move || {
                let mut phones: Vec<Ua> = (0..2).map(|_| Ua::ext(sw.addr(), ext)).collect();
                let mut rounds = 0u32;
                // Until both counts are reached; LONG only stops a hung test.
                let hung = Instant::now() + coventry_tests::LONG;
                while rounds < ROUNDS
                    || taken.load(Ordering::Relaxed) < SNAPSHOTS
                    || registered_seen.load(Ordering::Relaxed) == 0
                {
                    assert!(
                        Instant::now() < hung,
                        "{rounds} rounds, {} snapshots",
                        taken.load(Ordering::Relaxed)
                    );
                    for p in phones.iter_mut() {
                        p.register(300);
                    }
                    for p in phones.iter_mut() {
                        assert_eq!(p.register_exchange(Some(0), None).status(), 200);
                    }
                    rounds += 1;
                }
                rounds
            }));
        }
        let rounds: u32 = churn.into_iter().map(|h| h.join().unwrap()).sum();
        stop.store(true, Ordering::Relaxed);
        (reader.join().unwrap(), rounds)
    });
    assert!(snaps.0 >= SNAPSHOTS, "only {} snapshots taken", snaps.0);
    assert!(
        changes >= 3 * ROUNDS,
        "only {changes} register/unregister rounds"
    );
    assert!(snaps.1 > 0, "the reader never saw a registration");
}

#[test]
fn a_reader_that_fell_behind_counts_lost_events_exactly() {
    let sw = Switch::start(&Conf::new(&[21]).build());
    let total = RING_SLOTS as u64 + 150;
    // Enough command results to lap the ring.
    let mut batch = Vec::new();
    for i in 0..total {
        batch.extend_from_slice(format!("#{i} frob\n").as_bytes());
        if batch.len() > 3000 {
            sw.fifo_write(&batch).unwrap();
            batch.clear();
        }
    }
    sw.fifo_write(&batch).unwrap();
    let last = total - 1;
    let r = StateReader::open(&coventry_shared::runtime::state_path(sw.runtime_dir())).unwrap();
    let head = coventry_tests::poll_until(coventry_tests::LONG, || {
        let mut c = r.cursor_at_end();
        c.next = c.next.saturating_sub(1);
        let p = r.poll_events(&mut c, 1);
        p.events
            .iter()
            .any(|e| matches!(e.event, Event::CommandResult { id: Some(i), .. } if i == last))
            .then(|| r.header().event_head)
    })
    .expect("the last command's result");
    assert!(
        head > RING_SLOTS as u64,
        "the ring was not lapped: head {head}"
    );
    let mut cursor = coventry_shared::stateblock::EventCursor { next: 0 };
    let polled = r.poll_events(&mut cursor, 10_000);
    assert_eq!(
        polled.lost,
        head - RING_SLOTS as u64,
        "lost events miscounted"
    );
    assert_eq!(polled.events.len() as u64, RING_SLOTS as u64);
    assert_eq!(polled.events[0].seq, head - RING_SLOTS as u64);
    assert!(
        polled.events.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "gap in what the ring still holds"
    );
    assert_eq!(cursor.next, head);

    // pbxctl watch from the start reports the same loss first.
    let o = sw.pbxctl_bounded(
        &["watch", "--json", "--from-start", "--count", "3"],
        Duration::from_secs(20),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        first.get("kind").and_then(|v| v.as_str()),
        Some("lost"),
        "{first}"
    );
    assert_eq!(
        first.get("count").and_then(|v| v.as_u64()),
        Some(head - RING_SLOTS as u64),
        "{first}"
    );
}
