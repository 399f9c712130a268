//! Every man page the programs generate, each from its program's own definitions
//! (clap, exit-status tables, key tables) plus the prose kept here.

pub mod coventryd;
pub mod legacy;
pub mod pbx_tui;
pub mod pbxctl;

use clap_mangen::roff::Roff;

/// Render with clap_mangen's section renderer, without the repeated roff preamble.
pub fn section(f: impl Fn(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).expect("render to memory");
    let text = String::from_utf8(buf).expect("utf-8");
    let preamble = Roff::new().render();
    text.strip_prefix(preamble.as_str())
        .map(str::to_string)
        .unwrap_or(text)
}
