//! `pbxctl reload` and SIGHUP: the configuration file read again, applied
//! whole or refused.

use crate::config::Config;
use crate::shell::links::Upstream;
use crate::shell::secrets;
use crate::shell::sockets::bind_tcp;
use crate::switch::Switch;
use coventry_shared::event::{Event, ResultCode};
use coventry_shared::now_ms;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Re-read the configuration file; the outcome becomes events. A reload applies
/// all of a change or refuses it, saying which: upstream links follow a changed
/// `[upstream]`, and the TCP listener (on `udp_local`, the UDP socket's address)
/// opens when `[upstream]` appears and closes when it goes; what only a restart
/// can change is refused by the core.
pub(super) fn reload(
    sw: &mut Switch,
    up: &mut Upstream,
    (path, state_dir, udp_local): (Option<&PathBuf>, &Path, SocketAddr),
    id: Option<Option<u64>>,
) {
    let before = sw.config().upstream.clone();
    let outcome = match path {
        None => Ok("built-in configuration: nothing to reload".to_string()),
        Some(p) => Config::load(p)
            .map_err(|e| e.to_string())
            .and_then(|c| secrets::complete(c, p, state_dir, false))
            .and_then(|(c, note)| {
                if let Some(n) = note {
                    log::warn!("{n}");
                }
                // A new upstream needs the TCP listener before anything applies.
                let wants_tcp = !c.upstream.links().is_empty();
                let listener = match (wants_tcp, up.is_listening()) {
                    (true, false) => Some(bind_tcp(udp_local).map_err(|e| {
                        format!("[upstream] needs tcp {udp_local} and it cannot be opened: {e}")
                    })?),
                    _ => None,
                };
                let text = sw.apply_config(c)?;
                match (listener, wants_tcp) {
                    (Some(l), _) => {
                        up.listen(l);
                        log::info!("listening on tcp {udp_local} for the upstream");
                        Ok(format!("{text}; listening on tcp {udp_local}"))
                    }
                    (None, false) if up.is_listening() => {
                        up.stop_listening();
                        log::info!("no [upstream] any more: tcp closed");
                        Ok(format!("{text}; tcp closed (no upstream)"))
                    }
                    _ => Ok(text),
                }
            }),
    };
    if outcome.is_ok() && sw.config().upstream != before {
        let cfg = sw.config().upstream.clone();
        for ch in up.reconfigure(&cfg, now_ms()) {
            sw.on_link(ch.link, ch.peer);
            sw.announce(ch.event);
        }
    }
    match &outcome {
        Ok(text) => {
            log::info!("{text}");
            sw.announce(Event::Notice { text: text.clone() });
        }
        Err(e) => {
            log::warn!("reload refused: {e}");
            sw.announce(Event::Warning {
                text: format!("reload refused: {e}"),
            });
        }
    }
    if let Some(id) = id {
        let (code, text) = match outcome {
            Ok(t) => (ResultCode::Ok, t),
            Err(e) => (ResultCode::Failed, e),
        };
        sw.announce(Event::CommandResult { id, code, text });
    }
}
