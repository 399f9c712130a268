//! pbx-tui: the live attendant console of the Coventry SIP switch.
//!
//! It is built as The Elm Architecture:
//!
//! - the **model** ([`model::Model`]) is the whole state of the console: the last
//!   snapshot of the switch ([`site::Site`]), the selection, the log, the mode (prompt,
//!   command line, help...), the commands awaiting their results;
//! - **messages** ([`msg::Msg`]) are everything that happens: keys, clock ticks, and
//!   what [`daemon::DaemonLink`] reads from the state block (the daemon's condition,
//!   new snapshots, new events);
//! - **update** ([`update`]) turns a message into model changes and
//!   [`msg::Effect`]s (a line for the control FIFO, quitting);
//! - **view** ([`view`]) draws the model; it takes `&self` and reads the clock from
//!   the model, so it is deterministic.
//!
//! [`app`] is the event loop, the only code with I/O besides [`fifo`],
//! [`terminal`], [`input`] (reading the terminal; [`keys`] decodes what it read)
//! and [`signals`]. Like pbxctl, the console reads only the state block and writes only
//! the control FIFO; it links no SIP code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actions;
pub mod app;
pub mod cli;
pub mod clock;
pub mod complete;
pub mod daemon;
pub mod input;
pub mod keymap;
pub mod keys;
pub mod line_edit;
pub mod log;
pub mod model;
pub mod msg;
pub mod ring_wake;
pub mod sanitize;
pub mod signals;
pub mod site;
pub mod terminal;
pub mod trace_link;
pub mod update;
pub mod view;

/// Run the console as the command line asks. `Ok(None)` when the operator quit,
/// `Ok(Some(why))` when its terminal went away or a signal ended it.
pub fn run(cli: cli::Cli) -> Result<Option<msg::Ending>, String> {
    let runtime_dir = coventry_shared::runtime::runtime_dir(
        cli.runtime_dir
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty()),
    );
    app::run(app::RunSettings {
        runtime_dir,
        readonly: cli.readonly,
        color: cli.color(),
        poll: std::time::Duration::from_millis(cli.poll_ms),
    })
}
