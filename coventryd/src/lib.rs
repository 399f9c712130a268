//! coventryd as a library: the switch core and its I/O shell, used by the
//! `coventryd` binary, its tests and its benchmarks.

pub mod app;
pub mod cli;
pub mod config;
pub mod fifo;
pub mod hooks;
pub mod intake;
pub mod logfmt;
pub mod persist;
pub mod publish;
pub mod records;
pub mod registrar;
pub mod secrets;
pub mod settings;
pub mod sip;
pub mod switch;
pub mod transaction;
pub mod upstream;
