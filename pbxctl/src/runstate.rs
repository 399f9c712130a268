//! `pbxctl runstate [NAME]`: show or set the run state (day, night, holiday...).
//! With the switch running it asks the switch, which applies a new state at
//! once; with the switch down it reads or writes the choice in the state
//! directory, where the switch finds it when it starts (so cron can set night
//! mode whether or not the switch is up).

use crate::commands;
use crate::daemon;
use crate::error::{Error, Status};
use crate::output::Out;
use coventry_shared::control::Command;
use coventry_shared::runstate::{valid_name, DEFAULT_RUNSTATE, RUNSTATE_FILE};
use coventry_shared::runtime::{Kind, SafeDir, TrustError};
use coventry_shared::stateblock::get_str;
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// Where the choice stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// The running switch has it in force.
    Running,
    /// Kept in the state directory for the next start.
    Stored,
}

/// The run state: from the running switch, else as stored in `state_dir`.
pub fn current(runtime_dir: &Path, state_dir: &Path) -> Result<(String, Where), Error> {
    match daemon::live_snapshot(runtime_dir) {
        Ok(s) => {
            let name = get_str(&s.body.site.runstate);
            let name = if name.is_empty() {
                DEFAULT_RUNSTATE.to_string()
            } else {
                name
            };
            Ok((name, Where::Running))
        }
        Err(e) if e.status == Status::NotRunning => Ok((stored(state_dir)?, Where::Stored)),
        Err(e) => Err(e),
    }
}

/// The run state stored in `state_dir` (the default when none is).
pub fn stored(state_dir: &Path) -> Result<String, Error> {
    // No state directory at all is not "the default": it is the wrong place
    // (or no switch ever ran there), and saying `day` would be a guess.
    let dir = match SafeDir::trusted(state_dir) {
        Ok(d) => d,
        Err(TrustError::Missing(_)) => {
            return Err(Error::failed(format!(
                "cannot read the run state: no state directory {} (see --state-dir)",
                state_dir.display()
            )))
        }
        Err(e) => return Err(Error::failed(format!("cannot read the run state: {e}"))),
    };
    let mut f = match dir.open_checked(RUNSTATE_FILE, Kind::Regular, false) {
        Ok(f) => f,
        Err(TrustError::Missing(_)) => return Ok(DEFAULT_RUNSTATE.to_string()),
        Err(e) => return Err(Error::failed(format!("cannot read the run state: {e}"))),
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| Error::failed(format!("{RUNSTATE_FILE}: {e}")))?;
    let name = text.trim();
    Ok(if valid_name(name) {
        name.to_string()
    } else {
        DEFAULT_RUNSTATE.to_string()
    })
}

/// Keep `name` in `state_dir` for the switch's next start.
pub fn store(state_dir: &Path, name: &str) -> Result<(), Error> {
    let dir = SafeDir::trusted_for_writing(state_dir).map_err(|e| Error::failed(e.to_string()))?;
    let t = dir
        .create_temp(RUNSTATE_FILE, 0o640)
        .map_err(|e| Error::failed(format!("{}: {e}", state_dir.display())))?;
    t.file()
        .write_all(format!("{name}\n").as_bytes())
        .and_then(|()| t.commit(RUNSTATE_FILE, true))
        .map_err(|e| Error::failed(format!("{}: {e}", state_dir.display())))
}

/// `pbxctl runstate [NAME]`.
pub fn run(
    out: &mut Out,
    json: bool,
    (runtime_dir, state_dir): (&Path, &Path),
    timeout: Duration,
    name: Option<String>,
) -> Result<(), Error> {
    let Some(name) = name else {
        let (name, at) = current(runtime_dir, state_dir)?;
        return if json {
            out.json_doc(&json!({"runstate": name, "running": at == Where::Running}))
        } else if at == Where::Running {
            out.line(&name)
        } else {
            out.line(&format!(
                "{name} (the switch is not running: in force when it starts)"
            ))
        };
    };
    if !valid_name(&name) {
        return Err(Error::usage(format!(
            "{name:?} is no run state name: lower-case letters, digits, - and _"
        )));
    }
    match daemon::live_snapshot(runtime_dir) {
        Ok(_) => commands::run(
            out,
            runtime_dir,
            timeout,
            Command::RunState { name: Some(name) },
        ),
        Err(e) if e.status == Status::NotRunning => {
            store(state_dir, &name)?;
            if json {
                out.json_doc(&json!({"runstate": name, "running": false}))
            } else {
                out.line(&format!(
                    "run state {name} kept: the switch is not running, it applies when it \
                     starts (if its configuration has [runstate {name}], or it is {DEFAULT_RUNSTATE})"
                ))
            }
        }
        Err(e) => Err(e),
    }
}
