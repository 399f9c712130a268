//! The I/O shell around the switch core: everything that touches a socket, a
//! file, a process or the clock. `app` runs the loop that feeds the core and
//! carries out its outbox.

pub mod app;
pub mod durable;
pub mod fifo;
pub mod hooks;
pub mod intake;
pub mod links;
pub mod persist;
pub mod publish;
pub mod reader;
pub mod records;
pub mod routing;
pub mod secrets;
pub mod service;
pub mod trace;
