//! Reading the file line by line into its sections, then putting them
//! together with the checks that need more than one section.

use super::calls::{self, CallsConfig};
use super::features::{self, FeatureCodes};
use super::hooks::{self, HooksConfig};
use super::line::{self, LineConfig, BUILTIN_EXTENSIONS};
use super::records::{self, RecordsConfig};
use super::security::{self, SecurityConfig};
use super::server::{self, ServerConfig};
use super::upstream::{self, UpstreamConfig};
use super::values::is_dial_code;
use super::{groups, runstates, Config, ConfigError, Fault};
use coventry_shared::dialplan::Plan;
use coventry_shared::runstate::{valid_name as valid_runstate, RunState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The file being read: each section as it is given, checked as a whole in
/// [`Parser::finish`].
pub(super) struct Parser<'f> {
    file: &'f Path,
    server: ServerConfig,
    calls: CallsConfig,
    groups: Vec<(usize, u16, Vec<u16>)>,
    lines: Vec<(usize, LineConfig)>,
    speed: Vec<(usize, String, String)>,
    features: FeatureCodes,
    upstream: UpstreamConfig,
    hooks: HooksConfig,
    records: RecordsConfig,
    /// `[runstate NAME]` sections with their first line, in order.
    runstates: Vec<(usize, String, RunState)>,
    security: SecurityConfig,
    /// Line of `[upstream] emergency` / `emergency_local`, for errors found at the end.
    upstream_lines: BTreeMap<&'static str, usize>,
    /// Line numbers of `coverage`/`delayed` keys, for errors found at the end.
    coverage_lines: Vec<(usize, u16, String)>,
}

/// The section the lines being read belong to.
enum Section {
    None,
    Server,
    Calls,
    Groups,
    Speed,
    Features,
    Upstream,
    Hooks,
    Records,
    RunState(usize),
    Security,
    Line(usize),
}

impl<'f> Parser<'f> {
    /// A parser naming `file` in its errors.
    pub(super) fn new(file: &'f Path) -> Self {
        Parser {
            file,
            server: ServerConfig::default(),
            calls: CallsConfig::default(),
            groups: Vec::new(),
            lines: Vec::new(),
            speed: Vec::new(),
            features: FeatureCodes::default(),
            upstream: UpstreamConfig::default(),
            hooks: HooksConfig::default(),
            records: RecordsConfig::default(),
            runstates: Vec::new(),
            security: SecurityConfig::default(),
            upstream_lines: BTreeMap::new(),
            coverage_lines: Vec::new(),
        }
    }

    fn err(&self, line: usize, key: Option<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            key,
            message: message.into(),
        }
    }

    /// Read `text` and check it as a whole.
    pub(super) fn run(mut self, text: &str) -> Result<Config, ConfigError> {
        let mut section = Section::None;
        let mut section_name = String::new();
        let mut lineno = 0usize;
        for item in ini_roundtrip::Parser::new(text) {
            use ini_roundtrip::Item;
            if !matches!(item, Item::SectionEnd) {
                lineno += 1;
            }
            match item {
                Item::SectionEnd | Item::Comment { .. } | Item::Blank { .. } => {}
                Item::Error(raw) => {
                    return Err(self.err(lineno, None, format!("malformed section header `{raw}`")))
                }
                Item::Section { name, .. } => {
                    section_name = name.to_string();
                    section = self.open_section(lineno, name)?;
                }
                Item::Property { key, val, .. } => {
                    let kname = Some(format!("[{section_name}] {key}"));
                    let Some(val) = val else {
                        return Err(self.err(lineno, kname, "expected `key = value`"));
                    };
                    let k = key.to_ascii_lowercase();
                    match section {
                        Section::None => {
                            return Err(self.err(
                                lineno,
                                Some(key.to_string()),
                                "key outside any section",
                            ))
                        }
                        Section::Server => server::set_key(&mut self.server, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Calls => calls::set_key(&mut self.calls, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Groups => {
                            let (n, members) = groups::parse_group(key, val)
                                .map_err(|m| self.err(lineno, kname, m))?;
                            self.groups.push((lineno, n, members));
                        }
                        Section::Speed => {
                            if !is_dial_code(key) || !is_dial_code(val) {
                                return Err(self.err(
                                    lineno,
                                    kname,
                                    "speed dials map a code of digits, * and # to a number",
                                ));
                            }
                            self.speed.push((lineno, key.to_string(), val.to_string()));
                        }
                        Section::Features => features::set_key(&mut self.features, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Upstream => {
                            upstream::set_key(&mut self.upstream, &k, val)
                                .map_err(|m| self.err(lineno, kname, m))?;
                            if let Some(key) =
                                upstream::KEYS_CHECKED_LATER.iter().find(|key| **key == k)
                            {
                                self.upstream_lines.insert(key, lineno);
                            }
                        }
                        Section::Hooks => hooks::set_key(&mut self.hooks, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Records => records::set_key(&mut self.records, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::RunState(i) => self.runstates[i]
                            .2
                            .set(&k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Security => security::set_key(&mut self.security, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Line(i) => {
                            if k == "coverage" || k == "delayed" {
                                let n = self.lines[i].1.number;
                                self.coverage_lines.push((lineno, n, k.clone()));
                            }
                            line::set_key(&mut self.lines[i].1, &k, val)
                                .map_err(|m| self.err(lineno, kname, m))?;
                        }
                    }
                }
            }
        }
        self.finish()
    }

    fn open_section(&mut self, lineno: usize, name: &str) -> Result<Section, ConfigError> {
        match name.to_ascii_lowercase().as_str() {
            "server" => Ok(Section::Server),
            "calls" => Ok(Section::Calls),
            "groups" => Ok(Section::Groups),
            "speed" => Ok(Section::Speed),
            "features" => Ok(Section::Features),
            "upstream" => Ok(Section::Upstream),
            "hooks" => Ok(Section::Hooks),
            "records" => Ok(Section::Records),
            n if n.starts_with("runstate ") || n.starts_with("runstate\t") => {
                let state = n["runstate".len()..].trim().to_string();
                let key = Some(format!("[{name}]"));
                if !valid_runstate(&state) {
                    return Err(self.err(
                        lineno,
                        key,
                        "a run state's name is 1 to 31 lower-case letters, digits, - or _",
                    ));
                }
                if self.runstates.iter().any(|(_, s, _)| *s == state) {
                    return Err(self.err(lineno, key, format!("run state {state} is defined twice")));
                }
                self.runstates.push((lineno, state, RunState::default()));
                Ok(Section::RunState(self.runstates.len() - 1))
            }
            "security" => Ok(Section::Security),
            n if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
                let number: u16 = n
                    .parse()
                    .map_err(|_| self.err(lineno, Some(format!("[{name}]")), "bad number"))?;
                if let Some((first, _)) = self.lines.iter().find(|(_, l)| l.number == number) {
                    return Err(self.err(
                        lineno,
                        Some(format!("[{name}]")),
                        format!("extension {number} is already defined on line {first}"),
                    ));
                }
                self.lines.push((lineno, LineConfig::new(number)));
                Ok(Section::Line(self.lines.len() - 1))
            }
            _ => Err(self.err(
                lineno,
                Some(format!("[{name}]")),
                "unknown section (expected server, calls, groups, speed, features, upstream, hooks, records, security, runstate NAME or an extension number)",
            )),
        }
    }

    /// The sections put together: each checked as a whole, then against
    /// the others.
    fn finish(self) -> Result<Config, ConfigError> {
        self.assemble().map_err(|f| f.in_file(self.file))
    }

    fn assemble(&self) -> Result<Config, Fault> {
        let plan = self.server.plan;
        server::check(&self.server)?;
        security::check(&self.security)?;
        let mut lines = BTreeMap::new();
        for (lineno, l) in &self.lines {
            lines.insert(
                l.number,
                line::finish(*lineno, l, plan, &self.server.algorithms)?,
            );
        }
        // The numbers the other sections may name: the extension sections, or, in a
        // file without any, the built-in extensions it keeps (with_builtin_lines).
        let known: BTreeSet<u16> = if lines.is_empty() && plan == Plan::TwoDigit {
            BUILTIN_EXTENSIONS.collect()
        } else {
            lines.keys().copied().collect()
        };
        let groups = groups::table(plan, &known, &self.groups)?;
        line::check_coverage(&self.coverage_lines, &lines)?;
        let speed = features::speed_table(plan, &groups, &self.features, &self.speed)?;
        features::check(&self.features)?;
        let upstream = upstream::finish(
            self.upstream.clone(),
            &self.upstream_lines,
            &known,
            &groups,
            &speed,
        )?;
        let runstates = runstates::table(&known, &groups, &self.runstates)?;
        Ok(Config {
            server: self.server.clone(),
            calls: self.calls.clone(),
            groups,
            lines,
            speed,
            features: self.features.clone(),
            upstream,
            hooks: self.hooks.clone(),
            records: self.records.clone(),
            runstates,
            security: self.security.clone(),
        })
    }
}
