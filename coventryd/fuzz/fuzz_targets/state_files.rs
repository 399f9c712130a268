//! Fuzz what the switch reads back from its state directory and its clients
//! read from the state block: the registrations and settings files (JSON), the
//! call records file, and an event ring slot. Nothing may panic; what a slot
//! decodes to, once encoded (cut to the slot's room), encodes and decodes to
//! itself.
#![no_main]

use coventry_shared::event::{EventSlot, EVENT_DATA};
use coventryd::switch::registrar::Registrar;
use coventryd::switch::settings::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = serde_json::from_slice::<Registrar>(data) {
        for (_, bindings) in r.iter() {
            let _ = bindings.iter().map(|b| b.dest()).count();
        }
        let _ = r.expire(u64::MAX / 2);
    }
    let _ = serde_json::from_slice::<Settings>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = coventry_shared::record::parse_lines(text);
    }
    if data.len() >= 2 {
        let mut slot = EventSlot {
            stamp: 1,
            time_ms: 1,
            len: u16::from_le_bytes([data[0], data[1]]),
            data: [0; EVENT_DATA],
        };
        let rest = &data[2..];
        let n = rest.len().min(EVENT_DATA);
        slot.data[..n].copy_from_slice(&rest[..n]);
        if let Some(event) = slot.decode() {
            let fitted = EventSlot::encode(1, &event)
                .decode()
                .expect("own slot decodes");
            let again = EventSlot::encode(1, &fitted).decode();
            assert_eq!(again.as_ref(), Some(&fitted));
        }
    }
});
