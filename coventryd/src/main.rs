//! coventryd — the Coventry SIP switch.

mod sip;

fn main() {}
