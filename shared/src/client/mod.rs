//! The client side of the contract, decoded once for every reader of the daemon:
//! pbxctl, the console and the test harness.
//!
//! - [`view`]: typed views of a state-block snapshot (extensions, contacts, calls,
//!   upstream routes) with one rule for which call slots are live;
//! - [`text`]: one display-safe form of text that came from the network, and one
//!   format for durations;
//! - [`Liveness`]: one judgement of whether the daemon behind a block is running;
//! - [`follow`]: one follower of the block and its event ring across restarts;
//! - [`send`]: one control sender with one request-id scheme;
//! - [`receipts`]: a command's text followed through its typed receipts;
//! - [`trace`]: one live SIP trace on one daemon (lease, request, records), its
//!   end noticed when the daemon stops or restarts.

pub mod follow;
pub mod receipts;
pub mod send;
pub mod text;
pub mod trace;
pub mod view;

use crate::stateblock::{HeaderInfo, StateReader};

/// Heartbeats older than this (ms) mean the daemon is stuck or gone.
pub const STALE_AFTER_MS: u64 = 3000;

/// How alive the daemon behind a state block looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its process exists and its heartbeat is fresh.
    Running,
    /// Its process exists but the heartbeat is older than [`STALE_AFTER_MS`].
    StaleHeartbeat,
    /// Its process is gone: the block is left over.
    Gone,
}

/// Milliseconds since the last heartbeat of `h` (0 if the clock went backwards).
pub fn heartbeat_age_ms(h: &HeaderInfo, now_ms: u64) -> u64 {
    now_ms.saturating_sub(h.heartbeat_ms)
}

/// Judge the daemon of `reader` given its header `h` at `now_ms`.
pub fn liveness(reader: &StateReader, h: &HeaderInfo, now_ms: u64) -> Liveness {
    if !reader.daemon_alive() {
        Liveness::Gone
    } else if heartbeat_age_ms(h, now_ms) > STALE_AFTER_MS {
        Liveness::StaleHeartbeat
    } else {
        Liveness::Running
    }
}
