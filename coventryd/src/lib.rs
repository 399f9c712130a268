//! coventryd as a library: the switch core and its I/O shell, used by the
//! `coventryd` binary, its tests and its benchmarks.
//!
//! - [`switch`]: the pure core — every SIP rule, the registrar, the operator's
//!   settings, transactions; times come in, an outbox of sends and state changes
//!   goes out, nothing does I/O;
//! - [`sip`]: parsing and building SIP (pure);
//! - [`shell`]: the I/O around the core — sockets, the upstream TCP links, the
//!   control FIFO, the state block, files, hooks, call records;
//! - [`config`] and [`cli`]: the configuration file and the command line.

pub mod cli;
pub mod config;
pub mod logfmt;
pub mod shell;
pub mod sip;
pub mod switch;
