//! Fuzz the control FIFO's line parser: nothing may panic, and a line that
//! parses writes back (`to_line`) as a line that parses to the same request, or
//! (when spelling out a short verb made it longer than a line may be) is
//! refused as too long, as a client refuses to send it.
#![no_main]

use coventry_shared::control::{ParseError, Request, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        let line = req.to_line();
        let again = Request::parse(line.as_bytes());
        if line.len() <= MAX_LINE {
            assert_eq!(again, Ok(req), "{line:?}");
        } else {
            assert!(matches!(again, Err((_, ParseError::TooLong))), "{line:?}");
        }
    }
});
