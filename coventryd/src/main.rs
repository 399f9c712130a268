//! coventryd — the Coventry SIP switch.

use clap::Parser;
use coventry_shared::runtime::{self, Role, SafeDir};
use coventryd::cli;
use coventryd::config::{Config, BUILTIN_EXTENSIONS};
use coventryd::shell::{app, secrets};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Make sure `dir` is a directory coventryd may keep its files in (created with
/// `mode` when missing; refused when another user could have made or may write in
/// it), and remove temporary files a crash left there.
fn secure_dir(dir: &Path, mode: u32, role: Role) -> Result<(), String> {
    let d = SafeDir::own(dir, mode, role).map_err(|e| e.to_string())?;
    match d.remove_stale_temps() {
        Ok(0) => {}
        Ok(n) => log::info!("removed {n} temporary files left in {}", dir.display()),
        Err(e) => log::warn!("cannot clean {}: {e}", dir.display()),
    }
    Ok(())
}

/// Load the configuration: the named file, else /etc/coventry.conf when present,
/// else the built-in default with generated secrets.
fn load_config(cli: &cli::Cli, state_dir: &Path) -> Result<(Config, Option<PathBuf>), String> {
    let path = match &cli.config {
        Some(p) => Some(p.clone()),
        None => {
            let default = PathBuf::from(runtime::DEFAULT_CONFIG);
            default.exists().then_some(default)
        }
    };
    match path {
        Some(p) => {
            let config = Config::load(&p).map_err(|e| e.to_string())?;
            if config.lines.is_empty() && !cli.check_config {
                secure_dir(state_dir, runtime::STATE_DIR_MODE, Role::State)?;
            }
            let (config, note) = secrets::complete(config, &p, state_dir, cli.check_config)?;
            if let Some(n) = note {
                if cli.check_config {
                    eprintln!("coventryd: note: {n}");
                } else {
                    log::warn!("{n}");
                }
            }
            Ok((config, Some(p)))
        }
        None if cli.check_config => {
            // A check writes nothing: the secrets are generated at the first start.
            let listen = coventryd::config::ServerConfig::default().listen;
            let config = Config::builtin(listen, |_| "generated-at-first-start".to_string());
            eprintln!(
                "coventryd: note: no configuration file: the built-in default, extensions {}-{}, \
                 secrets in {}",
                BUILTIN_EXTENSIONS.start(),
                BUILTIN_EXTENSIONS.end(),
                secrets::secrets_path(state_dir).display()
            );
            Ok((config, None))
        }
        None => {
            secure_dir(state_dir, runtime::STATE_DIR_MODE, Role::State)?;
            let numbers: Vec<u16> = BUILTIN_EXTENSIONS.collect();
            let secrets =
                secrets::load_or_create(state_dir, &numbers).map_err(|e| e.to_string())?;
            let listen = coventryd::config::ServerConfig::default().listen;
            let config = Config::builtin(listen, |n| secrets.get(&n).cloned().unwrap_or_default());
            log::info!(
                "no configuration file: built-in default, extensions {}-{}, secrets in {}",
                BUILTIN_EXTENSIONS.start(),
                BUILTIN_EXTENSIONS.end(),
                secrets::secrets_path(state_dir).display()
            );
            Ok((config, None))
        }
    }
}

/// Log lines go to standard error — with a UTC timestamp unless that is the
/// systemd journal, which stamps its own — or with `--syslog` to syslog. The level
/// comes from `COVENTRY_LOG` (default `info`).
fn init_logging(syslog_socket: Option<&Path>) -> Result<(), String> {
    let Some(socket) = syslog_socket else {
        let stamped = !coventryd::logfmt::under_journald();
        env_logger::Builder::from_env(env_logger::Env::new().filter_or("COVENTRY_LOG", "info"))
            .format(move |buf, record| {
                use std::io::Write;
                if stamped {
                    write!(buf, "{} ", buf.timestamp_millis())?;
                }
                writeln!(buf, "[{:<5}] {}", record.level(), record.args())
            })
            .init();
        return Ok(());
    };
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: "coventryd".into(),
        pid: std::process::id(),
    };
    let logger = syslog::unix_custom(formatter, socket)
        .map_err(|e| format!("cannot log to syslog at {}: {e}", socket.display()))?;
    let level = std::env::var("COVENTRY_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Info);
    log::set_boxed_logger(Box::new(syslog::BasicLogger::new(logger)))
        .map_err(|e| format!("logger: {e}"))?;
    log::set_max_level(level);
    Ok(())
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = init_logging(cli.syslog.as_deref()) {
        eprintln!("coventryd: {e}");
        return ExitCode::from(1);
    }
    // The daemon writes its directories: the system service's when this user may.
    let runtime_dir = runtime::runtime_dir_for(cli.runtime_dir.as_deref(), runtime::Need::Write);
    let state_dir = runtime::state_dir_for(cli.state_dir.as_deref(), runtime::Need::Write);
    let (config, config_path) = match load_config(&cli, &state_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("coventryd: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.check_config {
        let links = config.upstream.links();
        let upstream = if links.is_empty() {
            "none".to_string()
        } else {
            links
                .iter()
                .map(|(hp, kinds)| format!("{} {hp}", config.upstream.link_name(kinds)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "configuration ok: {} plan, {} extensions, {} groups, listen {}, realm {}, upstream {upstream}",
            config.server.plan,
            config.lines.len(),
            config.groups.len(),
            cli.listen.unwrap_or(config.server.listen),
            config.server.realm
        );
        // The files a switch started the same way would use (nothing is written).
        println!(
            "files: configuration {}, state directory {}, runtime directory {}",
            config_path
                .as_deref()
                .map_or("built-in default".to_string(), |p| p.display().to_string()),
            state_dir.display(),
            runtime_dir.display()
        );
        if let Some(w) = config.upstream.local_trust_warning() {
            eprintln!("coventryd: warning: {w}");
        }
        return ExitCode::SUCCESS;
    }
    for (dir, mode, role) in [
        (&runtime_dir, runtime::RUNTIME_DIR_MODE, Role::Runtime),
        (&state_dir, runtime::STATE_DIR_MODE, Role::State),
    ] {
        if let Err(e) = secure_dir(dir, mode, role) {
            eprintln!("coventryd: {e}");
            return ExitCode::from(1);
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coventryd: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let setup = app::Setup {
        config,
        config_path,
        listen: cli.listen,
        runtime_dir,
        state_dir,
    };
    match rt.block_on(app::run(setup)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coventryd: {e}");
            ExitCode::from(1)
        }
    }
}
