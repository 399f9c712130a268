//! Fuzz the datagram and stream parsers: nothing may panic, whatever we accept
//! must serialise and re-parse identically, and our stateless answers to what we
//! refuse must themselves be acceptable responses.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/sip/mod.rs"]
mod sip;

use libfuzzer_sys::fuzz_target;
use sip::{error, framing, parse, serialize};

fuzz_target!(|data: &[u8]| {
    match framing::parse_datagram(data, error::DEFAULT_MAX_MESSAGE) {
        Ok(msg) => {
            let bytes = serialize::to_bytes(&msg);
            let again = framing::parse_datagram(&bytes, usize::MAX).expect("own output parses");
            assert_eq!(again.body(), msg.body());
            assert_eq!(serialize::to_bytes(&again), bytes);
            let _ = parse::top_via(&msg);
        }
        Err(e) => {
            if let Some(answer) = e.response_bytes() {
                assert!(framing::parse_datagram(&answer, usize::MAX).is_ok());
            }
        }
    }
    if let Ok(
        framing::StreamFrame::Message { consumed, .. }
        | framing::StreamFrame::Invalid { consumed, .. }
        | framing::StreamFrame::KeepAlive { consumed },
    ) = framing::parse_stream(data, error::DEFAULT_MAX_MESSAGE)
    {
        assert!(consumed > 0 && consumed <= data.len());
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse::parse_via(s);
        let _ = parse::parse_name_addr(s);
        let _ = parse::parse_uri(s);
    }
});
