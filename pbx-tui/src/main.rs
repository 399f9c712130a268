//! pbx-tui — the live attendant console of the Coventry SIP switch.
#![forbid(unsafe_code)]

use clap::Parser;
use pbx_tui::msg::Ending;
use std::io::Write;
use std::process::ExitCode;

/// Say why on stderr, which may be the terminal that is gone: a failed write is
/// ignored (`eprintln!` would panic).
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "pbx-tui: {text}");
}

fn main() -> ExitCode {
    let cli = pbx_tui::cli::Cli::parse();
    match pbx_tui::run(cli) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(ending)) => {
            if let Ending::TerminalGone(why) = &ending {
                say(why);
            }
            ExitCode::from(ending.exit_status())
        }
        Err(e) => {
            say(&e);
            ExitCode::FAILURE
        }
    }
}
