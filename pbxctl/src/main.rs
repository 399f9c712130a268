//! pbxctl — control and inspect the Coventry SIP switch.
#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = pbxctl::cli::Cli::parse();
    match pbxctl::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(m) = &e.message {
                pbxctl::output::warn(m);
            }
            ExitCode::from(e.status.code())
        }
    }
}
