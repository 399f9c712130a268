//! Fuzz the datagram and stream parsers: nothing may panic, whatever we accept
//! must serialise and re-parse identically, and our stateless answers to what we
//! refuse must themselves be acceptable responses.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/sip/mod.rs"]
mod sip;

use libfuzzer_sys::fuzz_target;
use sip::wire;

fuzz_target!(|data: &[u8]| {
    match wire::parse_datagram(data, wire::DEFAULT_MAX_MESSAGE) {
        Ok(msg) => {
            let bytes = wire::to_bytes(&msg);
            let again = wire::parse_datagram(&bytes, usize::MAX).expect("own output parses");
            assert_eq!(again.body(), msg.body());
            assert_eq!(wire::to_bytes(&again), bytes);
            let _ = wire::top_via(&msg);
        }
        Err(e) => {
            if let Some(answer) = e.response_bytes() {
                assert!(wire::parse_datagram(&answer, usize::MAX).is_ok());
            }
        }
    }
    if let Ok(
        wire::StreamFrame::Message { consumed, .. }
        | wire::StreamFrame::Invalid { consumed, .. }
        | wire::StreamFrame::KeepAlive { consumed },
    ) = wire::parse_stream(data, wire::DEFAULT_MAX_MESSAGE)
    {
        assert!(consumed > 0 && consumed <= data.len());
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = wire::parse_via(s);
        let _ = wire::parse_name_addr(s);
        let _ = wire::parse_uri(s);
    }
});
