//! Command-line interface of coventryd (also the source of its man page).

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Coventry SIP switch: registers phones, connects calls and delivers text messages
/// for a home, office or apartment building.
///
/// Phones talk UDP SIP. Numbers that are not local, emergency numbers and texts to
/// numbers go over TCP SIP to the `[upstream]` routes of the configuration (a SIP
/// adapter, a provider, a Kamailio or Asterisk), kept connected with back-off and
/// keep-alives; with an upstream configured the switch also listens on TCP, on the
/// same address and port, for calls and texts from the upstream peers.
///
/// Runs in the foreground and logs to standard error. SIGTERM or SIGINT stop it
/// cleanly; SIGHUP reloads the configuration. Without a configuration file it starts
/// on a built-in default: a 2-digit plan with extensions 10-19 whose generated secrets
/// are written to the file `secrets` in the state directory, readable by the owner only.
#[derive(Debug, Parser)]
#[command(name = "coventryd", version, about, long_about)]
pub struct Cli {
    /// Configuration file (INI). When not given and /etc/coventry.conf does not
    /// exist, the built-in default configuration is used.
    #[arg(long, short = 'c', value_name = "FILE", env = "COVENTRY_CONFIG")]
    pub config: Option<PathBuf>,

    /// Runtime directory for the state block and the control FIFO
    /// [default: /run/coventry for root or when it exists and this user may write it,
    /// else $XDG_RUNTIME_DIR/coventry or /tmp/coventry-$UID].
    #[arg(long, value_name = "DIR", env = "COVENTRY_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Directory for persistent state: registrations, settings, generated secrets
    /// [default: /var/lib/coventry for root or when it exists and this user may write
    /// it (the coventry user), else $XDG_STATE_HOME/coventry or ~/.local/state/coventry].
    #[arg(long, value_name = "DIR", env = "COVENTRY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Listen on this UDP address:port instead of the configured one (port 0 picks a
    /// free port; the bound address is published in the state block). With an
    /// upstream configured, TCP listens on the same address and port.
    #[arg(long, value_name = "ADDR:PORT", env = "COVENTRY_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Check the configuration, print a summary and exit (status 1 when invalid).
    #[arg(long)]
    pub check_config: bool,

    /// Log to syslog (facility daemon, ident coventryd) instead of standard error,
    /// through /dev/log or the datagram socket SOCKET.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = "/dev/log")]
    pub syslog: Option<PathBuf>,
}
