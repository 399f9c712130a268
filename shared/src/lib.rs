//! The Coventry contract shared by coventryd, pbxctl and pbx-tui: where the runtime
//! files live, the state block and its event ring, the control-command grammar, the
//! dial plan, the call records file and the configuration (and the man-page check
//! their tests share). The programs share no other code.

pub mod auth;
pub mod client;
pub mod control;
pub mod dialplan;
pub mod event;
pub mod record;
pub mod runstate;
pub mod runtime;
pub mod secret;
pub mod stateblock;
pub mod trace;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
