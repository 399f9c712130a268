//! `status`: the daemon at a glance.

use crate::daemon;
use crate::error::Error;
use crate::output::{date_time, start_time, Out, Paint};
use coventry_shared::client::text::{display_safe, span};
use coventry_shared::client::view::{self, ExtView, RouteView};
use coventry_shared::client::{heartbeat_age_ms, liveness, Liveness};
use coventry_shared::event::RouteState;
use coventry_shared::stateblock::Counters;
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
        refused,
        digests_checked,
        auth_refused,
        shed,
        kernel_drops,
        limited,
        tcp_dropped,
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
        ("refused", refused),
        ("digests_checked", digests_checked),
        ("auth_refused", auth_refused),
        ("shed", shed),
        ("kernel_drops", kernel_drops),
        ("limited", limited),
        ("tcp_dropped", tcp_dropped),
    ]
}

/// One upstream connection as JSON.
fn route_json(r: &RouteView) -> Value {
    json!({
        "route": r.name,
        "addr": r.addr,
        "state": r.state.name(),
        "since_ms": r.since_ms,
        "retry_ms": r.retry_ms.unwrap_or(0),
        "connects": r.connects,
        "failures": r.failures,
        "sent": r.sent,
        "received": r.received,
        "refused": r.refused,
        "last_error": r.last_error.as_deref().unwrap_or(""),
    })
}

/// One upstream connection as a line: `default+sms  127.0.0.1:5070  connected
/// since 12:00:01 (sent 4, received 6)`.
pub fn route_text(out: &Out, r: &RouteView, now_ms: u64) -> String {
    let state = r.state;
    let paint = match state {
        RouteState::Connected => Paint::Green,
        RouteState::Connecting | RouteState::Reconnecting => Paint::Yellow,
        RouteState::Down => Paint::Red,
    };
    let mut line = format!(
        "{:<22} {:<24} {} since {}",
        display_safe(&r.name),
        display_safe(&r.addr),
        out.paint(paint, state.name()),
        date_time(r.since_ms)
    );
    line.push_str(&format!(
        " (sent {}, received {}, connects {}, failures {}, refused {})",
        r.sent, r.received, r.connects, r.failures, r.refused
    ));
    if state != RouteState::Connected {
        if let Some(retry) = r.retry_ms.filter(|t| *t > now_ms) {
            line.push_str(&format!(
                "; next try in {}s",
                (retry - now_ms).div_ceil(1000)
            ));
        }
        if let Some(err) = &r.last_error {
            line.push_str(&format!("; {}", display_safe(err)));
        }
    }
    line
}

/// Registered and configured extension counts of a snapshot.
pub fn extension_counts(exts: &[ExtView]) -> (usize, usize) {
    let registered = exts.iter().filter(|e| e.registered).count();
    let configured = exts.iter().filter(|e| e.configured).count();
    (registered, configured)
}

/// ` until HH:MM:SS (in 1h02m)` for an expiry at `ms`, or nothing.
fn until(ms: Option<u64>, now_ms: u64) -> String {
    match ms {
        Some(ms) => format!(
            " until {} (in {})",
            start_time(ms, now_ms),
            span(ms.saturating_sub(now_ms).div_ceil(1000) * 1000)
        ),
        None => String::new(),
    }
}

/// One line of the settings section for people: what is set on `e`, e.g.
/// `dnd until 17:00:00 (in 2h00m); forward always 35, busy 36 (earliest expiry
/// 18:00:00, in 3h00m)`.
pub fn settings_text(e: &ExtView, now_ms: u64) -> String {
    let mut parts = Vec::new();
    if e.dnd {
        parts.push(format!("dnd{}", until(e.dnd_until_ms, now_ms)));
    }
    let fwd = e.forwards();
    if !fwd.is_empty() {
        let list: Vec<String> = fwd
            .iter()
            .map(|(k, t)| format!("{k} {}", display_safe(t)))
            .collect();
        // The state block keeps one expiry per extension, the earliest of its
        // forwards': with several forwards, say which it is.
        let expiry = match (e.forward_until_ms, list.len()) {
            (Some(ms), n) if n > 1 => format!(
                " (earliest expiry {}, in {})",
                start_time(ms, now_ms),
                span(ms.saturating_sub(now_ms).div_ceil(1000) * 1000)
            ),
            (ms, _) => until(ms, now_ms),
        };
        parts.push(format!("forward {}{expiry}", list.join(", ")));
    }
    parts.join("; ")
}

/// The JSON object of an extension's settings.
fn settings_json(e: &ExtView) -> Value {
    json!({
        "ext": e.number,
        "name": e.name,
        "dnd": e.dnd,
        "dnd_until_ms": e.dnd_until_ms,
        "forward_always": e.forward_always,
        "forward_busy": e.forward_busy,
        "forward_noanswer": e.forward_noanswer,
        "forward_until_ms": e.forward_until_ms,
    })
}

/// Print the status of the daemon in `dir`. Status 3 (after printing) when the
/// daemon's pid is gone or its heartbeat is stale.
pub fn run(out: &mut Out, dir: &Path) -> Result<(), Error> {
    let reader = daemon::open_state(dir)?;
    let snap = daemon::snapshot(&reader)?;
    let now = coventry_shared::now_ms();
    let h = &snap.header;
    let live = liveness(&reader, h, now);
    let age_ms = heartbeat_age_ms(h, now);
    let uptime_s = now.saturating_sub(h.start_ms) / 1000;
    let exts = view::extensions(&snap);
    let (registered, configured) = extension_counts(&exts);
    let counters = counter_list(&snap.body.counters);
    let runstate = view::runstate(&snap);
    let traces = usize::from(snap.body.site.traces);
    let trace_filters = coventry_shared::stateblock::get_str(&snap.body.site.trace_filters);
    let routes = view::routes(&snap);
    let settings: Vec<ExtView> = exts.into_iter().filter(ExtView::has_settings).collect();
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
            "runstate": runstate,
            "heartbeat_ms": h.heartbeat_ms,
            "heartbeat_age_ms": age_ms,
            "registered": registered,
            "configured": configured,
            "events": h.event_head,
            "counters": counters,
            "settings": settings.iter().map(settings_json).collect::<Vec<_>>(),
            "upstream": routes.iter().map(route_json).collect::<Vec<_>>(),
            "traces": {
                "count": traces,
                "filters": trace_filters.split_whitespace().collect::<Vec<_>>(),
            },
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
        let mut rows: Vec<(&str, String)> = vec![
            ("coventryd", daemon_line),
            (
                "uptime",
                format!(
                    "{} (since {})",
                    span(uptime_s * 1000),
                    date_time(h.start_ms)
                ),
            ),
            ("dial plan", h.plan.to_string()),
            ("bound", display_safe(&h.bound)),
            ("realm", display_safe(&h.realm)),
            ("run state", display_safe(&runstate)),
            ("heartbeat", heartbeat),
            (
                "extensions",
                format!("{registered} registered / {configured} configured"),
            ),
            ("events", h.event_head.to_string()),
        ];
        if traces > 0 {
            rows.push(("tracing", display_safe(&trace_filters)));
        }
        for (k, v) in rows {
            let key = out.paint(Paint::Bold, &format!("{k:<12}"));
            out.line(&format!("{key} {v}"))?;
        }
        out.line(&out.paint(Paint::Bold, "upstream"))?;
        if routes.is_empty() {
            out.line("  none configured: numbers that are not local get 404")?;
        }
        for r in &routes {
            out.line(&format!("  {}", route_text(out, r, now)))?;
        }
        out.line(&out.paint(Paint::Bold, "counters"))?;
        for (k, v) in counters {
            out.line(&format!("  {k:<20} {v:>10}"))?;
        }
        out.line(&out.paint(Paint::Bold, "settings"))?;
        if settings.is_empty() {
            out.line("  no forwards, no dnd")?;
        }
        let width = settings
            .iter()
            .map(|e| display_safe(&e.name).chars().count())
            .max()
            .unwrap_or(0);
        for e in &settings {
            let name = display_safe(&e.name);
            let pad = width - name.chars().count();
            let line = format!(
                "  {:<4} {name}{:pad$}  {}",
                e.number,
                "",
                settings_text(e, now)
            );
            out.line(line.trim_end())?;
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
