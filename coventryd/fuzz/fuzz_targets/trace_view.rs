//! Fuzz what the live trace reads of a message and the copy it makes: any bytes
//! get a glance and a masked copy, never a panic.
#![no_main]

use coventryd::sip::trace::{glance, mask, Texts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = glance(data);
    let _ = mask(data, Texts::Hidden);
    let _ = mask(data, Texts::Shown);
});
