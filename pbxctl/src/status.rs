//! `status`: the daemon at a glance.

use crate::daemon::{self, Liveness};
use crate::error::Error;
use crate::output::{date_time, human_secs, sanitize, Out, Paint};
use coventry_shared::stateblock::{get_bit, Counters, Snapshot, EXT_CONFIGURED};
use serde_json::{json, Value};
use std::path::Path;

/// Counters by name, in the order of [`Counters`].
pub fn counter_list(c: &Counters) -> Vec<(&'static str, u64)> {
    // Destructured without `..` so that a new counter fails to compile here.
    let Counters {
        sip_in,
        sip_out,
        malformed,
        too_large,
        retransmissions,
        registers,
        auth_failures,
        messages_delivered,
        messages_failed,
        commands_ok,
        commands_failed,
        calls,
        reserved: _,
    } = *c;
    vec![
        ("sip_in", sip_in),
        ("sip_out", sip_out),
        ("malformed", malformed),
        ("too_large", too_large),
        ("retransmissions", retransmissions),
        ("registers", registers),
        ("auth_failures", auth_failures),
        ("messages_delivered", messages_delivered),
        ("messages_failed", messages_failed),
        ("commands_ok", commands_ok),
        ("commands_failed", commands_failed),
        ("calls", calls),
    ]
}

/// Registered and configured extension counts of a snapshot.
pub fn extension_counts(snap: &Snapshot) -> (usize, usize) {
    let registered = (0..snap.header.plan.count())
        .filter(|i| get_bit(&snap.body.bitmaps.registered, *i))
        .count();
    let configured = snap
        .exts()
        .iter()
        .filter(|e| e.flags & EXT_CONFIGURED != 0)
        .count();
    (registered, configured)
}

/// Print the status of the daemon in `dir`. Status 3 (after printing) when the
/// daemon's pid is gone or its heartbeat is stale.
pub fn run(out: &mut Out, dir: &Path) -> Result<(), Error> {
    let reader = daemon::open_state(dir)?;
    let snap = reader
        .snapshot()
        .ok_or_else(|| Error::failed("could not read a consistent state block (daemon busy?)"))?;
    let now = coventry_shared::now_ms();
    let h = &snap.header;
    let live = daemon::liveness(&reader, h, now);
    let age_ms = daemon::heartbeat_age_ms(h, now);
    let uptime_s = now.saturating_sub(h.start_ms) / 1000;
    let (registered, configured) = extension_counts(&snap);
    let counters = counter_list(&snap.body.counters);
    let state = match live {
        Liveness::Running => "running",
        Liveness::StaleHeartbeat => "stale",
        Liveness::Gone => "gone",
    };

    if out.json {
        let counters: serde_json::Map<String, Value> = counters
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        out.json_doc(&json!({
            "state": state,
            "running": live == Liveness::Running,
            "stale": live != Liveness::Running,
            "pid": h.pid,
            "start_ms": h.start_ms,
            "uptime_s": uptime_s,
            "digits": h.plan.digits(),
            "plan": h.plan.to_string(),
            "bound": h.bound,
            "realm": h.realm,
            "heartbeat_ms": h.heartbeat_ms,
            "heartbeat_age_ms": age_ms,
            "registered": registered,
            "configured": configured,
            "events": h.event_head,
            "counters": counters,
        }))?;
    } else {
        let daemon_line = match live {
            Liveness::Running => out.paint(Paint::Green, &format!("running, pid {}", h.pid)),
            Liveness::StaleHeartbeat => out.paint(
                Paint::Red,
                &format!("STALE: pid {} exists but its heartbeat stopped", h.pid),
            ),
            Liveness::Gone => out.paint(
                Paint::Red,
                &format!("STALE: not running (pid {} is gone)", h.pid),
            ),
        };
        let mut heartbeat = format!("{:.1}s ago", age_ms as f64 / 1000.0);
        if live != Liveness::Running {
            heartbeat = out.paint(Paint::Red, &format!("{heartbeat} (stale)"));
        }
        let rows: Vec<(&str, String)> = vec![
            ("coventryd", daemon_line),
            (
                "uptime",
                format!("{} (since {})", human_secs(uptime_s), date_time(h.start_ms)),
            ),
            ("dial plan", h.plan.to_string()),
            ("bound", sanitize(&h.bound)),
            ("realm", sanitize(&h.realm)),
            ("heartbeat", heartbeat),
            (
                "extensions",
                format!("{registered} registered / {configured} configured"),
            ),
            ("events", h.event_head.to_string()),
        ];
        for (k, v) in rows {
            let key = out.paint(Paint::Bold, &format!("{k:<12}"));
            out.line(&format!("{key} {v}"))?;
        }
        out.line(&out.paint(Paint::Bold, "counters"))?;
        for (k, v) in counters {
            out.line(&format!("  {k:<20} {v:>10}"))?;
        }
    }
    match live {
        Liveness::Running => Ok(()),
        Liveness::StaleHeartbeat => Err(Error::not_running(format!(
            "daemon not answering: heartbeat is {:.1}s old (pid {} exists; hung, or the pid \
             was reused)",
            age_ms as f64 / 1000.0,
            h.pid
        ))),
        Liveness::Gone => Err(Error::not_running(format!(
            "daemon not running: pid {} is gone (the state block is left over)",
            h.pid
        ))),
    }
}
