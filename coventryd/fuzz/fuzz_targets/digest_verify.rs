//! Fuzz the digest credentials parser and verifier: nothing may panic and no
//! arbitrary header may authenticate.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/sip/mod.rs"]
mod sip;

use libfuzzer_sys::fuzz_target;
use sip::digest::{Credentials, DigestAuthority, Verdict};
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sip::digest::parse_credentials(s);
    let mut auth = DigestAuthority::new("coventry".into(), vec![], Duration::from_secs(300));
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let v = auth.verify(now, "REGISTER", "sip:h", s, |_| {
        Some(Credentials::from_password("pw"))
    });
    // A fresh authority's key is random, so no fuzzed nonce can be valid.
    assert!(matches!(v, Verdict::Rejected { .. }));
});
