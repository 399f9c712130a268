//! pbx-tui — the live attendant console of the Coventry SIP switch.
#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = pbx_tui::cli::Cli::parse();
    match pbx_tui::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pbx-tui: {e}");
            ExitCode::FAILURE
        }
    }
}
