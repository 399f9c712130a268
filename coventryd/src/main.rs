//! coventryd — the Coventry SIP switch.

mod cli;
mod sip;

fn main() {}
