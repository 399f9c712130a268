//! SIP on the wire and server-side digest authentication, all pure (no I/O): one
//! file per job, as a parser folder should be.
//!
//! - [`framing`]: a datagram, or a message from the front of a TCP stream;
//! - [`normalize`]: the canonical spelling rsip 0.4 accepts, and the head's limits;
//! - [`error`]: why a message was refused, limits, stateless error responses;
//! - [`reason`]: reason phrases;
//! - [`parse`]: Via, name-addr, URI and parameter parsers;
//! - [`headers`]: header names and values, the request fields the switch uses;
//! - [`serialize`]: messages back to bytes; [`request`]: requests of the
//!   switch's own;
//! - [`digest`], [`dest`], [`forward`]: digest authentication, where a response
//!   goes, forwarding;
//! - [`trace`]: a message as the live trace shows it (summary, credentials masked).

pub mod dest;
pub mod digest;
pub mod error;
pub mod forward;
pub mod framing;
pub mod headers;
pub mod normalize;
pub mod parse;
pub mod reason;
pub mod request;
pub mod serialize;
pub mod trace;

#[cfg(test)]
mod tests;
