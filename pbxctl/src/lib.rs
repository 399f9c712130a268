//! pbxctl: the Coventry command-line multitool.
//!
//! Everything it knows comes from the daemon's state block
//! ([`coventry_shared::stateblock::StateReader`]); everything it does goes through the
//! control FIFO, one line per command with a request id, whose result it then waits
//! for in the event ring. It never speaks SIP: of the daemon's code it uses only
//! the configuration parser, so that `pbxctl ext` checks an edited coventry.conf
//! exactly as the daemon will read it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calls;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod confedit;
pub mod daemon;
pub mod error;
pub mod ext;
pub mod exts;
pub mod health;
pub mod legacy;
pub mod output;
pub mod records;
pub mod regs;
pub mod runstate;
pub mod status;
pub mod trace;
pub mod wait;
pub mod watch;

use cli::{Cli, CliCommand};
use coventry_shared::record::Book;
use error::Error;
use output::Out;

/// Carry out the parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let g = &cli.global;
    let dir = daemon::runtime_dir(g.runtime_dir.as_deref());
    let mut out = Out::stdout(g.json, g.quiet);
    match cli.command {
        CliCommand::Status => status::run(&mut out, &dir),
        CliCommand::Health => health::run(&mut out, &dir),
        CliCommand::Regs { ext } => regs::run(&mut out, &dir, ext),
        CliCommand::Calls { ext } => calls::run(&mut out, &dir, ext),
        CliCommand::Exts => exts::run(&mut out, &dir),
        CliCommand::Hangup { target } => commands::run(
            &mut out,
            &dir,
            g.timeout,
            coventry_shared::control::Command::Hangup { target },
        ),
        CliCommand::Message { target, text } => {
            commands::run(&mut out, &dir, g.timeout, commands::message(&target, &text))
        }
        CliCommand::Release { ext } => commands::run(
            &mut out,
            &dir,
            g.timeout,
            coventry_shared::control::Command::Release { ext },
        ),
        CliCommand::Reload => commands::run(
            &mut out,
            &dir,
            g.timeout,
            coventry_shared::control::Command::Reload,
        ),
        CliCommand::Forward {
            ext,
            target,
            busy,
            no_answer,
            expiry,
        } => {
            let until = commands::expiry_now(&expiry)?;
            let c = commands::forward(ext, &target, busy, no_answer, until)?;
            commands::run(&mut out, &dir, g.timeout, c)
        }
        CliCommand::Dnd { ext, state, expiry } => {
            let until = commands::expiry_now(&expiry)?;
            let c = commands::dnd(ext, state, until)?;
            commands::run(&mut out, &dir, g.timeout, c)
        }
        CliCommand::Dial { ext, target } => commands::run(
            &mut out,
            &dir,
            g.timeout,
            coventry_shared::control::Command::Dial { ext, target },
        ),
        CliCommand::Speed {
            code: Some(code),
            target: Some(target),
        } => commands::run(&mut out, &dir, g.timeout, commands::speed(&code, &target)),
        CliCommand::Speed { .. } => commands::run(
            &mut out,
            &dir,
            g.timeout,
            coventry_shared::control::Command::SpeedList,
        ),
        CliCommand::Ext(e) => {
            let config = e
                .config
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| {
                    std::path::PathBuf::from(coventry_shared::runtime::DEFAULT_CONFIG)
                });
            let state_dir = daemon::state_dir(e.state_dir.as_deref(), &dir);
            let places = ext::Places {
                config: &config,
                runtime_dir: &dir,
                state_dir: &state_dir,
            };
            let (n, action) = match e.action {
                cli::ExtCommand::Add {
                    ext,
                    display,
                    keep_builtin,
                    drop_builtin,
                } => (
                    ext,
                    ext::Action::Add {
                        display,
                        keep_builtin,
                        drop_builtin,
                    },
                ),
                cli::ExtCommand::Remove { ext } => (ext, ext::Action::Remove),
                cli::ExtCommand::Secret { ext } => (ext, ext::Action::Secret),
            };
            ext::run(&mut out, &places, g.timeout, n, action)
        }
        CliCommand::Why { number } => commands::run(
            &mut out,
            &dir,
            g.timeout,
            coventry_shared::control::Command::Why { number },
        ),
        CliCommand::Runstate { name, state_dir } => {
            let sdir = daemon::state_dir(state_dir.as_deref(), &dir);
            runstate::run(&mut out, g.json, (&dir, &sdir), g.timeout, name)
        }
        CliCommand::Records {
            attempts,
            ext,
            since,
            outcome,
            last,
            state_dir,
        } => {
            let filter = records::Filter {
                ext,
                since_ms: since
                    .map(|s| records::parse_since(&s, coventry_shared::now_ms()))
                    .transpose()
                    .map_err(Error::usage)?,
                outcome: outcome
                    .map(|o| {
                        coventry_shared::event::CallOutcome::from_name(&o)
                            .ok_or_else(|| Error::usage(format!("no outcome called {o:?}")))
                    })
                    .transpose()?,
                last,
            };
            let dir = daemon::state_dir(state_dir.as_deref(), &dir);
            let book = if attempts {
                Book::Attempts
            } else {
                Book::Calls
            };
            records::run(&mut out, g.json, (&dir, book), &filter)
        }
        CliCommand::Complete { kind } => {
            completion::print_words(&dir, kind);
            Ok(())
        }
        CliCommand::Completions { shell, program } => {
            use clap::CommandFactory;
            let mut cmd = legacy::Tool::ALL
                .into_iter()
                .find(|t| t.name() == program)
                .map_or_else(Cli::command, legacy::Tool::command);
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, program.as_str(), &mut text);
            let mut text = String::from_utf8_lossy(&text).into_owned();
            if program == "pbxctl" {
                text = completion::with_live_words(shell, text);
            }
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(Error::output)
        }
        CliCommand::Trace(t) => trace::run(
            &mut out,
            &dir,
            g.timeout,
            trace::TraceOpts {
                target: t.target,
                verbose: t.verbose,
                count: t.count,
                duration: t.duration,
            },
        ),
        CliCommand::Watch(w) => watch::run(
            &mut out,
            &dir,
            watch::WatchOpts {
                from_start: w.from_start,
                count: w.count,
                duration: w.duration,
            },
        ),
    }
}
