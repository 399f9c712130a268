//! Configuration in the original Coventry INI layout (`/etc/coventry.conf`).
//!
//! ```ini
//! [server]
//! listen = 0.0.0.0:5060
//! digits = 2
//! realm = coventry
//! algorithm = sha256, md5
//!
//! [calls]
//! ring = 5
//! noanswer = 6
//!
//! [groups]
//! 100 = 21 22 23
//!
//! [upstream]
//! route = 127.0.0.1:5070
//! emergency = 112, 911
//!
//! [21]
//! secret = correct-horse
//! display = Reception
//! lines = 2
//! ```
//!
//! Every error names the file, the line and the key.
//!
//! One file a section (`server.rs`, `line.rs` for `[NN]`, ...): its type, its
//! defaults, its keys and the checks that need the rest of the file;
//! `parser.rs` reads the lines and puts the sections together.

mod calls;
mod features;
mod groups;
mod hooks;
mod line;
mod parser;
mod records;
mod runstates;
mod security;
mod server;
#[cfg(test)]
mod tests;
mod upstream;
mod values;

pub use calls::{CallsConfig, DEFAULT_MAX_CALLS_PER_LINE};
pub use coventry_shared::auth::DigestAlgorithm;
pub use features::{speed_code_clash, FeatureCodes, FeatureUse};
pub use hooks::HooksConfig;
pub use line::{LineConfig, BUILTIN_EXTENSIONS, MAX_LINES};
pub use records::RecordsConfig;
pub use security::{SecurityConfig, DEFAULT_SOURCE_RATE};
pub use server::ServerConfig;
pub use upstream::{HostPort, Identity, RouteKind, UpstreamConfig, DEFAULT_MAX_UPSTREAM_CALLS};

use coventry_shared::dialplan::{classify, Plan, Target};
use coventry_shared::runstate::RunState;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[calls]`.
    pub calls: CallsConfig,
    /// `[groups]`: group number → member extensions.
    pub groups: BTreeMap<u16, Vec<u16>>,
    /// Configured extensions by number.
    pub lines: BTreeMap<u16, LineConfig>,
    /// `[speed]`: speed-dial code → target.
    pub speed: BTreeMap<String, String>,
    /// `[features]`: keypad codes.
    pub features: FeatureCodes,
    /// `[upstream]`: the TCP routes for everything not local.
    pub upstream: UpstreamConfig,
    /// `[hooks]`: scripts run on the switch's activity.
    pub hooks: HooksConfig,
    /// `[records]`: the call records file.
    pub records: RecordsConfig,
    /// `[runstate NAME]` sections.
    pub runstates: BTreeMap<String, RunState>,
    /// `[security]`: password-guessing limits.
    pub security: SecurityConfig,
}

/// A configuration error with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in.
    pub file: PathBuf,
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    /// Section and key, e.g. `[21] secret`, when there is one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}
impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let text = String::from_utf8(text).map_err(|_| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: None,
            message: "not valid UTF-8".into(),
        })?;
        Config::parse(path, &text)
    }

    /// The built-in default: a 2-digit plan with extensions 10–19 whose secrets come
    /// from `secret_for` (the daemon generates them and keeps them readable by the
    /// operator only).
    pub fn builtin(listen: SocketAddr, secret_for: impl Fn(u16) -> String) -> Config {
        let lines = line::builtin_lines(&secret_for);
        Config {
            server: ServerConfig {
                listen,
                ..ServerConfig::default()
            },
            calls: CallsConfig::default(),
            groups: BTreeMap::new(),
            lines,
            speed: BTreeMap::new(),
            features: FeatureCodes::default(),
            upstream: UpstreamConfig::default(),
            hooks: HooksConfig::default(),
            records: RecordsConfig::default(),
            runstates: BTreeMap::new(),
            security: SecurityConfig::default(),
        }
    }

    /// A file with no extension sections (only `[server]` keys, say) keeps the
    /// built-in default's extensions and their secrets from `secret_for`: tuning
    /// one key must not leave a switch nobody can register with. In a plan the
    /// built-in numbers do not fit, the error says what to add.
    pub fn with_builtin_lines(
        mut self,
        secret_for: impl Fn(u16) -> String,
    ) -> Result<Config, String> {
        if !self.lines.is_empty() {
            return Ok(self);
        }
        if self.server.plan != Plan::TwoDigit {
            return Err(format!(
                "no extension sections, and the built-in extensions {}-{} are not numbers of \
                 the {} plan: add a section for each extension ([100] secret = ...)",
                BUILTIN_EXTENSIONS.start(),
                BUILTIN_EXTENSIONS.end(),
                self.server.plan
            ));
        }
        self.lines = line::builtin_lines(&secret_for);
        Ok(self)
    }

    /// Parse `text`, naming `file` in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        parser::Parser::new(file).run(text)
    }

    /// Whether `n` has a `[n]` section.
    pub fn is_configured(&self, n: u16) -> bool {
        self.lines.contains_key(&n)
    }

    /// What a number dialled here is, under the dial plan and groups: in a
    /// building (`[upstream] site_prefix`), the site's own prefix followed by a
    /// local extension or group is that local number.
    pub fn target_of(&self, number: &str) -> Target {
        let local =
            |n: &str| classify(self.server.plan, &self.groups, |e| self.is_configured(e), n);
        let target = local(number);
        if let (Target::External(_), Some(rest)) = (&target, self.own_building_number(number)) {
            if let t @ (Target::Extension(_) | Target::Group(_)) = local(rest) {
                return t;
            }
        }
        target
    }

    /// The rest of `number` after this site's own prefix, when it has one and
    /// `number` starts with it.
    pub fn own_building_number<'n>(&self, number: &'n str) -> Option<&'n str> {
        let prefix = self.upstream.site_prefix.as_deref()?;
        number.trim().strip_prefix(prefix).filter(|r| !r.is_empty())
    }

    /// How local number `n` is known in the building: with the site prefix
    /// before it, or as it is when the switch is on its own.
    pub fn building_number(&self, n: &str) -> String {
        format!("{}{n}", self.upstream.site_prefix.as_deref().unwrap_or(""))
    }
}

/// A configuration error before it is given its file: the line (0: the file
/// as a whole), the section and key, and what is wrong.
#[derive(Debug)]
struct Fault {
    line: usize,
    key: Option<String>,
    message: String,
}

impl Fault {
    fn new(line: usize, key: impl Into<String>, message: impl Into<String>) -> Fault {
        Fault {
            line,
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// The error in `file`.
    fn in_file(self, file: &Path) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: self.line,
            key: self.key,
            message: self.message,
        }
    }
}
