//! pbxctl — control and inspect the Coventry SIP switch. Invoked through a link
//! named pbx-message, pbx-registry or pbx-runstate, it is that original utility.
#![forbid(unsafe_code)]

use clap::Parser;
use pbxctl::legacy::Tool;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(tool) = args.first().and_then(|a0| Tool::of_argv0(a0)) {
        return ExitCode::from(tool.main(args));
    }
    let cli = pbxctl::cli::Cli::parse_from(args);
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
