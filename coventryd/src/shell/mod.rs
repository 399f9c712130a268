//! The I/O shell around the switch core: everything that touches a socket, a
//! file, a process or the clock. `app` runs the loop that feeds the core,
//! `outlets` carries out its outbox.

pub mod app;
pub mod durable;
pub mod fifo;
pub mod hooks;
pub mod intake;
pub mod links;
mod outlets;
pub mod persist;
mod persister;
pub mod publish;
pub mod reader;
pub mod records;
mod reload;
pub mod routing;
pub mod secrets;
pub mod service;
mod sockets;
pub mod trace;
