//! `health`: one yes or no for monitoring and cron — the daemon is running and
//! every configured upstream route is connected.

use crate::daemon;
use crate::error::Error;
use crate::output::{date_time, Out};
use coventry_shared::client::text::display_safe;
use coventry_shared::client::view::{self, RouteView};
use coventry_shared::client::{liveness, Liveness};
use coventry_shared::event::RouteState;
use serde_json::json;
use std::path::Path;

/// What is wrong with a route, if anything.
pub fn route_problem(r: &RouteView) -> Option<String> {
    if r.state == RouteState::Connected {
        return None;
    }
    let mut line = format!(
        "upstream {} {} {} since {}",
        display_safe(&r.name),
        display_safe(&r.addr),
        r.state.name(),
        date_time(r.since_ms)
    );
    if let Some(err) = &r.last_error {
        line.push_str(&format!(": {}", display_safe(err)));
    }
    Some(line)
}

/// Check the daemon in `dir`: status 0 when it runs and every route is
/// connected (one line on stdout), 1 with one line per problem (stderr), 3 when
/// it is not running.
pub fn run(out: &mut Out, dir: &Path) -> Result<(), Error> {
    let reader = daemon::open_state(dir)?;
    let snap = daemon::snapshot(&reader)?;
    let now = coventry_shared::now_ms();
    let h = &snap.header;
    match liveness(&reader, h, now) {
        Liveness::Running => {}
        Liveness::StaleHeartbeat => {
            return Err(Error::not_running(format!(
                "daemon not answering: pid {} exists but its heartbeat stopped",
                h.pid
            )))
        }
        Liveness::Gone => {
            return Err(Error::not_running(format!(
                "daemon not running: pid {} is gone",
                h.pid
            )))
        }
    }
    let routes = view::routes(&snap);
    let problems: Vec<String> = routes.iter().filter_map(route_problem).collect();
    if out.json {
        out.json_doc(&json!({
            "ok": problems.is_empty(),
            "pid": h.pid,
            "routes": routes.len(),
            "problems": problems,
        }))?;
    } else if problems.is_empty() {
        let routes = match routes.len() {
            0 => "no upstream configured".to_string(),
            1 => "its upstream route connected".to_string(),
            n => format!("all {n} upstream routes connected"),
        };
        out.line(&format!("ok: coventryd running (pid {}), {routes}", h.pid))?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(problems.join("\n")))
    }
}
