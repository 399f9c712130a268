//! SIP wire handling (framing, normalisation in front of rsip, serialisation)
//! and server-side digest authentication. Both modules are pure: no I/O.

pub mod dest;
pub mod digest;
pub mod forward;
pub mod wire;
