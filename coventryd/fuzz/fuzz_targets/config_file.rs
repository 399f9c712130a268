//! Fuzz the configuration parser: any text gets a configuration or a clear
//! error, never a panic.
#![no_main]

use coventryd::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(Path::new("fuzz.conf"), text);
    }
});
