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

use coventry_shared::control::ForwardKind;
use coventry_shared::dialplan::{classify, Plan, Target};
use coventry_shared::runstate::{valid_name as valid_runstate, RunState};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Most contacts one extension may register (`lines`).
pub const MAX_LINES: u8 = 4;

pub use coventry_shared::auth::DigestAlgorithm;

/// `[server]`: where and how the switch listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// UDP address:port to bind (port 0 picks one; the bound one is published).
    pub listen: SocketAddr,
    /// The numbering plan.
    pub plan: Plan,
    /// Digest realm.
    pub realm: String,
    /// Offered digest algorithms in order of preference.
    pub algorithms: Vec<DigestAlgorithm>,
    /// Shortest registration the switch grants, seconds.
    pub min_expires: u32,
    /// Longest registration the switch grants, seconds.
    pub max_expires: u32,
    /// Registration length when a phone asks for none, seconds.
    pub default_expires: u32,
    /// How long a digest nonce stays valid, seconds.
    pub nonce_lifetime: u32,
    /// Largest SIP message accepted, bytes (bigger requests get 513).
    pub max_message: usize,
}

/// `[security]`: how the switch slows down password guessing and keeps its log
/// readable under a guessing flood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Failed authentications from one address (IPv4, or IPv6 /64) before it has
    /// to wait (`source_failures`).
    pub source_failures: u32,
    /// Failed authentications for one extension, from addresses it is not known
    /// at, before such addresses have to wait (`extension_failures`).
    pub extension_failures: u32,
    /// The first wait, seconds (`backoff`); it doubles with every further failure.
    pub backoff: u32,
    /// The longest wait, seconds (`max_backoff`).
    pub max_backoff: u32,
    /// Failures are forgotten this long after the last one, seconds (`forget_after`).
    pub forget_after: u32,
    /// Failed-authentication log lines per address per minute (`log_failures`);
    /// the rest are counted in one summary line.
    pub log_failures: u32,
    /// Datagrams a second the switch reads from one source address before it
    /// drops the rest unparsed (`source_rate`; 0: no limit).
    pub source_rate: u32,
}

/// `[calls]`: call timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallsConfig {
    /// Seconds per ring (the ring count advances this often).
    pub ring: u32,
    /// Rings before an unanswered call ends as "no answer".
    pub noanswer: u32,
    /// Longest an answered call lasts, seconds (0: no limit): the switch then hangs
    /// up both sides, so a call whose BYE was lost does not stay forever.
    pub max_duration: u32,
    /// Calls one extension may be making at once (0: no limit); beyond, its
    /// INVITE gets 503 with Retry-After.
    pub max_per_line: u32,
}

/// One extension (a `[NN]` section).
#[derive(Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// Extension number.
    pub number: u16,
    /// Display name (`display`; "Extension N" when not set).
    pub display: String,
    /// Whether `display` was set: then the switch shows it to the phones its
    /// calls reach, whatever the phone put in its From.
    pub display_set: bool,
    /// Plain secret, if given.
    pub secret: Option<String>,
    /// HA1 = SHA-256(user:realm:secret) in hex, if given.
    pub sha256: Option<String>,
    /// HA1 = MD5(user:realm:secret) in hex, if given.
    pub md5: Option<String>,
    /// Contacts that may register at once (1..=4).
    pub lines: u8,
    /// Extensions that ring together with this one at once (`coverage`).
    pub coverage: Vec<u16>,
    /// Extensions that join after `delay` rings (`delayed`).
    pub delayed: Vec<u16>,
    /// Rings before the delayed coverage joins (`delay`, default 2).
    pub delay: u8,
    /// A second call rings while the extension is in a call (`call_waiting`,
    /// default no: an extension in a call is busy).
    pub call_waiting: bool,
    /// Digest algorithms offered when a phone claims this extension
    /// (`algorithm`); none: the `[server]` offer.
    pub algorithms: Option<Vec<DigestAlgorithm>>,
}

impl LineConfig {
    /// Extension `number` with every default: no secret yet, 2 contacts, no
    /// coverage, no call waiting.
    pub fn new(number: u16) -> LineConfig {
        LineConfig {
            number,
            display: String::new(),
            display_set: false,
            secret: None,
            sha256: None,
            md5: None,
            lines: 2,
            coverage: Vec::new(),
            delayed: Vec::new(),
            delay: 2,
            call_waiting: false,
            algorithms: None,
        }
    }

    /// What a phone claiming this extension is offered: its own `algorithm`,
    /// else `server`'s.
    pub fn offer<'a>(&'a self, server: &'a [DigestAlgorithm]) -> &'a [DigestAlgorithm] {
        self.algorithms.as_deref().unwrap_or(server)
    }
}

impl fmt::Debug for LineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineConfig")
            .field("number", &self.number)
            .field("display", &self.display)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("lines", &self.lines)
            .field("coverage", &self.coverage)
            .field("delayed", &self.delayed)
            .field("delay", &self.delay)
            .field("call_waiting", &self.call_waiting)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// `[features]`: the keypad codes (each dialled alone, or followed by a target for
/// the forward codes: `*72 35` is dialled as `*7235`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    /// Set forward always (followed by the target).
    pub forward_always: String,
    /// Clear forward always.
    pub forward_always_off: String,
    /// Set forward on busy (followed by the target).
    pub forward_busy: String,
    /// Clear forward on busy.
    pub forward_busy_off: String,
    /// Set forward on no answer (followed by the target).
    pub forward_noanswer: String,
    /// Clear forward on no answer.
    pub forward_noanswer_off: String,
    /// Do not disturb on.
    pub dnd_on: String,
    /// Do not disturb off.
    pub dnd_off: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            forward_always: "*72".into(),
            forward_always_off: "*73".into(),
            forward_busy: "*90".into(),
            forward_busy_off: "*91".into(),
            forward_noanswer: "*92".into(),
            forward_noanswer_off: "*93".into(),
            dnd_on: "*78".into(),
            dnd_off: "*79".into(),
        }
    }
}

/// What a number dialled from a keypad means to the feature codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureUse<'a> {
    /// Do not disturb on (`true`) or off.
    Dnd(bool),
    /// Clear a forward.
    ForwardOff(ForwardKind),
    /// Set a forward to the target that follows the code.
    Forward(ForwardKind, &'a str),
}

impl FeatureCodes {
    /// The feature `dialled` asks for, if any: one of the codes alone, or a
    /// forward code followed by its target. The switch reads a number this way
    /// before anything else, so nothing else may be dialled like it.
    pub fn read<'a>(&self, dialled: &'a str) -> Option<FeatureUse<'a>> {
        let fwd = |code: &str| dialled.strip_prefix(code).filter(|rest| !rest.is_empty());
        let kinds = [
            (
                &self.forward_always,
                &self.forward_always_off,
                ForwardKind::Always,
            ),
            (
                &self.forward_busy,
                &self.forward_busy_off,
                ForwardKind::Busy,
            ),
            (
                &self.forward_noanswer,
                &self.forward_noanswer_off,
                ForwardKind::NoAnswer,
            ),
        ];
        if dialled == self.dnd_on {
            return Some(FeatureUse::Dnd(true));
        }
        if dialled == self.dnd_off {
            return Some(FeatureUse::Dnd(false));
        }
        if let Some((_, _, k)) = kinds.iter().find(|(_, off, _)| dialled == off.as_str()) {
            return Some(FeatureUse::ForwardOff(*k));
        }
        kinds
            .iter()
            .find_map(|(set, _, k)| fwd(set).map(|t| FeatureUse::Forward(*k, t)))
    }

    /// Every code with its key name.
    pub fn all(&self) -> [(&'static str, &str); 8] {
        [
            ("forward_always", &self.forward_always),
            ("forward_always_off", &self.forward_always_off),
            ("forward_busy", &self.forward_busy),
            ("forward_busy_off", &self.forward_busy_off),
            ("forward_noanswer", &self.forward_noanswer),
            ("forward_noanswer_off", &self.forward_noanswer_off),
            ("dnd_on", &self.dnd_on),
            ("dnd_off", &self.dnd_off),
        ]
    }
}

/// A host (name or IP literal) and port, reached over TCP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (5060 when the text gave none).
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// `host`, `host:port`, `[v6]:port` or `v6`.
    fn from_str(s: &str) -> Result<HostPort, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not host[:port] (e.g. 127.0.0.1:5070 or sip.example.net)");
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(HostPort {
                host: a.ip().to_string(),
                port: a.port(),
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostPort {
                host: ip.to_string(),
                port: 5060,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (s, 5060),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !name_ok || port == 0 {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// How the switch tells the upstream who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A `P-Asserted-Identity` header (RFC 3325) naming the extension.
    Pai,
    /// Only the From header, rewritten to the extension at the switch.
    From,
}

/// Which upstream route a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// Calls to non-local numbers.
    Default,
    /// Calls to the emergency numbers.
    Emergency,
    /// Text messages to non-local numbers.
    Sms,
}

impl RouteKind {
    /// Every kind, in display order.
    pub const ALL: [RouteKind; 3] = [RouteKind::Default, RouteKind::Emergency, RouteKind::Sms];

    /// Lowercase name (`default`, `emergency`, `sms`).
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Default => "default",
            RouteKind::Emergency => "emergency",
            RouteKind::Sms => "sms",
        }
    }
}

/// `[hooks]`: the executables the switch runs on its activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// Where the hooks are (`dir`, default `/usr/libexec/coventry`).
    pub dir: PathBuf,
    /// A hook still running after this many seconds is killed (`timeout`, 10).
    pub timeout: u32,
    /// Hooks running at once (`max_running`, 4).
    pub max_running: usize,
    /// Runs waiting for a slot; beyond it they are dropped and counted (`queue`, 256).
    pub queue: usize,
    /// Bytes of output kept per stream (`max_output`, 65536).
    pub max_output: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            dir: PathBuf::from("/usr/libexec/coventry"),
            timeout: 10,
            max_running: 4,
            queue: 256,
            max_output: 65_536,
        }
    }
}

/// `[records]`: the call records file in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsConfig {
    /// Rotate the file when it grows past this many bytes (`max_size`, 10 MiB).
    pub max_size: u64,
    /// Rotated files kept (`keep`, 5); 0 keeps none.
    pub keep: u32,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            max_size: 10 << 20,
            keep: 5,
        }
    }
}

/// `[upstream]`: where anything that is not local goes, over TCP.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The default route (`route`); none: non-local numbers get 404.
    pub route: Option<HostPort>,
    /// Numbers that are emergency calls (`emergency`), checked before anything else.
    pub emergency: Vec<String>,
    /// Calls at once to the default route (`max_calls`; 0: no limit); emergency
    /// calls are never counted nor refused.
    pub max_calls: u32,
    /// Prefixes of outside numbers an extension may be forwarded to
    /// (`forward_prefixes`); none: forwards stay inside.
    pub forward_prefixes: Vec<String>,
    /// Own route for emergency calls (`emergency_route`; default: `route`).
    pub emergency_route: Option<HostPort>,
    /// Extension or group that rings when no emergency route is reachable
    /// (`emergency_local`).
    pub emergency_local: Option<String>,
    /// Own route for text messages (`sms_route`; default: `route`).
    pub sms_route: Option<HostPort>,
    /// How the caller is asserted (`identity`).
    pub identity: Identity,
    /// Host part of the Request-URIs sent upstream (`domain`; default: the
    /// route's host:port).
    pub domain: Option<String>,
    /// Addresses accepted as the upstream peer besides the routes' own (`trust`).
    pub trust: Vec<IpAddr>,
    /// Digest user the upstream peer authenticates as (`peer_user`).
    pub peer_user: String,
    /// With a secret (`peer_secret`) the peer's calls and texts must also answer a
    /// digest challenge (407) as `peer_user`; without, its address is enough.
    pub peer_secret: Option<String>,
    /// Seconds between CRLF keep-alive pings on an idle connection (`keepalive`).
    pub keepalive: u32,
    /// Seconds in the Retry-After of the 503 a caller gets while a route is down
    /// (`retry_after`).
    pub retry_after: u32,
    /// This switch's prefix in a building of switches (`site_prefix`): its
    /// callers are presented upstream as PREFIX+EXT, and PREFIX+local number
    /// dialled here is local. None: a switch on its own.
    pub site_prefix: Option<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            route: None,
            emergency: vec!["112".into(), "911".into()],
            forward_prefixes: Vec::new(),
            max_calls: DEFAULT_MAX_UPSTREAM_CALLS,
            emergency_route: None,
            emergency_local: None,
            sms_route: None,
            identity: Identity::Pai,
            domain: None,
            trust: Vec::new(),
            peer_user: "upstream".into(),
            peer_secret: None,
            keepalive: 30,
            retry_after: 30,
            site_prefix: None,
        }
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("route", &self.route)
            .field("emergency", &self.emergency)
            .field("emergency_route", &self.emergency_route)
            .field("emergency_local", &self.emergency_local)
            .field("sms_route", &self.sms_route)
            .field("identity", &self.identity)
            .field("domain", &self.domain)
            .field("trust", &self.trust)
            .field("peer_user", &self.peer_user)
            .field(
                "peer_secret",
                &self.peer_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("keepalive", &self.keepalive)
            .field("retry_after", &self.retry_after)
            .field("site_prefix", &self.site_prefix)
            .finish()
    }
}

impl UpstreamConfig {
    /// Where requests of `kind` go, if anywhere.
    pub fn route_for(&self, kind: RouteKind) -> Option<&HostPort> {
        match kind {
            RouteKind::Default => self.route.as_ref(),
            RouteKind::Emergency => self.emergency_route.as_ref().or(self.route.as_ref()),
            RouteKind::Sms => self.sms_route.as_ref().or(self.route.as_ref()),
        }
    }

    /// The name of a route of `kind`: `building` for the default route of a
    /// site in a building of switches (`site_prefix`), else the kind's name.
    pub fn route_name(&self, kind: RouteKind) -> &'static str {
        match kind {
            RouteKind::Default if self.site_prefix.is_some() => "building",
            k => k.name(),
        }
    }

    /// The name of a link serving `kinds`, `+`-joined (`building+sms`).
    pub fn link_name(&self, kinds: &[RouteKind]) -> String {
        kinds
            .iter()
            .map(|k| self.route_name(*k))
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The distinct peers to keep a connection to, each with the kinds it serves
    /// (`route`, then `emergency_route`, then `sms_route`).
    pub fn links(&self) -> Vec<(HostPort, Vec<RouteKind>)> {
        let mut out: Vec<(HostPort, Vec<RouteKind>)> = Vec::new();
        for kind in RouteKind::ALL {
            let Some(hp) = self.route_for(kind) else {
                continue;
            };
            match out.iter_mut().find(|(h, _)| h == hp) {
                Some((_, kinds)) => kinds.push(kind),
                None => out.push((hp.clone(), vec![kind])),
            }
        }
        out
    }

    /// Upstream peers on this host (loopback routes or trusted addresses) that
    /// are trusted by address alone, with no `peer_secret`: any local user can
    /// connect from that address and send calls and texts as the peer.
    pub fn local_peers_without_secret(&self) -> Vec<String> {
        if self.peer_secret.is_some() {
            return Vec::new();
        }
        let local = |host: &str| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.to_canonical().is_loopback())
        };
        let mut out: Vec<String> = self
            .links()
            .into_iter()
            .filter(|(hp, _)| local(&hp.host))
            .map(|(hp, _)| hp.to_string())
            .collect();
        out.extend(
            self.trust
                .iter()
                .filter(|ip| ip.to_canonical().is_loopback())
                .map(IpAddr::to_string),
        );
        out
    }

    /// The warning for [`UpstreamConfig::local_peers_without_secret`], if any.
    pub fn local_trust_warning(&self) -> Option<String> {
        let peers = self.local_peers_without_secret();
        (!peers.is_empty()).then(|| {
            format!(
                "upstream peer {} on this host is trusted by address alone: any local user \
                 can connect from it and call or text as the upstream; set [upstream] \
                 peer_secret (and peer_user) so that it must answer a digest challenge",
                peers.join(", ")
            )
        })
    }

    /// Whether `number` is an emergency number.
    pub fn is_emergency(&self, number: &str) -> bool {
        self.emergency.iter().any(|e| e == number)
    }

    /// Whether an extension may be forwarded to the outside `number`.
    pub fn may_forward_to(&self, number: &str) -> bool {
        !self.is_emergency(number)
            && self
                .forward_prefixes
                .iter()
                .any(|p| number.starts_with(p.as_str()))
    }
}

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

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            plan: Plan::TwoDigit,
            realm: "coventry".into(),
            algorithms: vec![DigestAlgorithm::Md5],
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: 300,
            max_message: 8192,
        }
    }
}

/// `[upstream] max_calls` by default: an office's lines to the outside.
pub const DEFAULT_MAX_UPSTREAM_CALLS: u32 = 32;

/// `[calls] max_per_line` by default: more than any desk phone's line keys.
pub const DEFAULT_MAX_CALLS_PER_LINE: u32 = 8;

/// `[security] source_rate` by default: far above what a household of phones
/// behind one address sends, far below a flood.
pub const DEFAULT_SOURCE_RATE: u32 = 2000;

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            source_failures: 5,
            extension_failures: 10,
            backoff: 10,
            max_backoff: 600,
            forget_after: 3600,
            log_failures: 10,
            source_rate: DEFAULT_SOURCE_RATE,
        }
    }
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring: 5,
            noanswer: 6,
            max_duration: 43_200,
            max_per_line: DEFAULT_MAX_CALLS_PER_LINE,
        }
    }
}

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
        let lines = builtin_lines(&secret_for);
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
        self.lines = builtin_lines(&secret_for);
        Ok(self)
    }

    /// Parse `text`, naming `file` in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        Parser::new(file).run(text)
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

struct Parser<'f> {
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
    fn new(file: &'f Path) -> Self {
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

    fn run(mut self, text: &str) -> Result<Config, ConfigError> {
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
                        Section::Server => self
                            .server_key(&k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Calls => self
                            .calls_key(&k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Groups => {
                            let (n, members) =
                                parse_group(key, val).map_err(|m| self.err(lineno, kname, m))?;
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
                        Section::Features => self
                            .features_key(&k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Upstream => self
                            .upstream_key(lineno, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Hooks => self
                            .hooks_key(&k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Records => self
                            .records_key(&k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::RunState(i) => self.runstates[i]
                            .2
                            .set(&k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Security => security_key(&mut self.security, &k, val)
                            .map_err(|m| self.err(lineno, kname, m))?,
                        Section::Line(i) => {
                            if k == "coverage" || k == "delayed" {
                                let n = self.lines[i].1.number;
                                self.coverage_lines.push((lineno, n, k.clone()));
                            }
                            line_key(&mut self.lines[i].1, &k, val)
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

    fn server_key(&mut self, k: &str, v: &str) -> Result<(), String> {
        let s = &mut self.server;
        match k {
            "listen" => {
                s.listen = v
                    .parse()
                    .map_err(|_| format!("`{v}` is not an address:port (e.g. 0.0.0.0:5060)"))?
            }
            "digits" => {
                s.plan = v
                    .parse::<u8>()
                    .ok()
                    .and_then(Plan::from_digits)
                    .ok_or_else(|| format!("`{v}`: digits must be 2 or 3"))?
            }
            "realm" => {
                if v.is_empty() || v.contains('"') || v.contains(char::is_whitespace) {
                    return Err("realm must be non-empty, without quotes or spaces".into());
                }
                s.realm = v.to_string()
            }
            "algorithm" | "algorithms" => {
                s.algorithms = algorithm_list(v)?;
            }
            "min_expires" => s.min_expires = num(v, 1, 86_400)?,
            "max_expires" => s.max_expires = num(v, 1, 86_400)?,
            "default_expires" => s.default_expires = num(v, 1, 86_400)?,
            "nonce_lifetime" => s.nonce_lifetime = num(v, 5, 86_400)?,
            "max_message" => s.max_message = num(v, 1024, 65_535)? as usize,
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }

    fn features_key(&mut self, k: &str, v: &str) -> Result<(), String> {
        if !v.starts_with(['*', '#']) || !is_dial_code(v) {
            return Err(format!(
                "`{v}`: a feature code starts with * or # (e.g. *72)"
            ));
        }
        let f = &mut self.features;
        let slot = match k {
            "forward_always" => &mut f.forward_always,
            "forward_always_off" => &mut f.forward_always_off,
            "forward_busy" => &mut f.forward_busy,
            "forward_busy_off" => &mut f.forward_busy_off,
            "forward_noanswer" => &mut f.forward_noanswer,
            "forward_noanswer_off" => &mut f.forward_noanswer_off,
            "dnd_on" => &mut f.dnd_on,
            "dnd_off" => &mut f.dnd_off,
            _ => return Err("unknown key".into()),
        };
        *slot = v.to_string();
        Ok(())
    }

    fn upstream_key(&mut self, lineno: usize, k: &str, v: &str) -> Result<(), String> {
        let u = &mut self.upstream;
        let host = |v: &str| -> Result<Option<HostPort>, String> {
            if v.is_empty() || v.eq_ignore_ascii_case("none") {
                Ok(None)
            } else {
                v.parse().map(Some)
            }
        };
        match k {
            "route" => u.route = host(v)?,
            "emergency_route" => u.emergency_route = host(v)?,
            "sms_route" => u.sms_route = host(v)?,
            "emergency" => {
                let mut list = Vec::new();
                for n in v.split(|c: char| c == ',' || c.is_whitespace()) {
                    if n.is_empty() {
                        continue;
                    }
                    if !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 15 {
                        return Err(format!("`{n}` is not an emergency number (digits only)"));
                    }
                    if !list.iter().any(|e| e == n) {
                        list.push(n.to_string());
                    }
                }
                u.emergency = list;
                self.upstream_lines.insert("emergency", lineno);
            }
            "forward_prefixes" => {
                let mut list = Vec::new();
                for p in v.split(|c: char| c == ',' || c.is_whitespace()) {
                    if p.is_empty() {
                        continue;
                    }
                    let digits = p.strip_prefix('+').unwrap_or(p);
                    if digits.is_empty()
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                        || p.len() > 16
                    {
                        return Err(format!("`{p}` is not a number prefix (digits, + first)"));
                    }
                    list.push(p.to_string());
                }
                u.forward_prefixes = list;
            }
            "emergency_local" => {
                if !is_dial_code(v) {
                    return Err(format!("`{v}` is not an extension or group number"));
                }
                u.emergency_local = Some(v.to_string());
                self.upstream_lines.insert("emergency_local", lineno);
            }
            "identity" => {
                u.identity = match v.to_ascii_lowercase().as_str() {
                    "pai" | "p-asserted-identity" => Identity::Pai,
                    "from" => Identity::From,
                    _ => return Err(format!("`{v}`: identity is pai or from")),
                }
            }
            "domain" => {
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                {
                    return Err(format!("`{v}` is not a domain"));
                }
                u.domain = Some(v.to_string());
            }
            "trust" => {
                let mut list = Vec::new();
                for a in v.split(|c: char| c == ',' || c.is_whitespace()) {
                    if a.is_empty() {
                        continue;
                    }
                    list.push(
                        a.parse::<IpAddr>()
                            .map_err(|_| format!("`{a}` is not an IP address"))?,
                    );
                }
                u.trust = list;
            }
            "peer_user" => {
                if v.is_empty()
                    || v.len() > 64
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                {
                    return Err(format!("`{v}`: letters, digits, - . _ (at most 64)"));
                }
                u.peer_user = v.to_string();
            }
            "peer_secret" => {
                if v.is_empty() {
                    return Err("peer_secret must not be empty".into());
                }
                u.peer_secret = Some(v.to_string());
            }
            "keepalive" => u.keepalive = num(v, 5, 3600)?,
            "retry_after" => u.retry_after = num(v, 1, 3600)?,
            "site_prefix" => {
                if v.is_empty() || v.len() > 4 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("`{v}`: a site prefix is 1 to 4 digits"));
                }
                u.site_prefix = Some(v.to_string());
                self.upstream_lines.insert("site_prefix", lineno);
            }
            "max_calls" => u.max_calls = num(v, 0, 1_000_000)?,
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }

    fn hooks_key(&mut self, k: &str, v: &str) -> Result<(), String> {
        let h = &mut self.hooks;
        match k {
            "dir" => {
                if !v.starts_with('/') {
                    return Err("dir must be an absolute path".into());
                }
                h.dir = PathBuf::from(v);
            }
            "timeout" => h.timeout = num(v, 1, 3600)?,
            "max_running" => h.max_running = num(v, 1, 64)? as usize,
            "queue" => h.queue = num(v, 0, 100_000)? as usize,
            "max_output" => h.max_output = num(v, 0, 16 << 20)? as usize,
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }

    fn records_key(&mut self, k: &str, v: &str) -> Result<(), String> {
        match k {
            "max_size" => self.records.max_size = u64::from(num(v, 4096, u32::MAX)?),
            "keep" => self.records.keep = num(v, 0, 100)?,
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }

    fn calls_key(&mut self, k: &str, v: &str) -> Result<(), String> {
        match k {
            "ring" => self.calls.ring = num(v, 1, 60)?,
            "noanswer" | "no_answer" => self.calls.noanswer = num(v, 1, 100)?,
            "max_per_line" => self.calls.max_per_line = num(v, 0, 1_000_000)?,
            "max_duration" => {
                let n = num(v, 0, 604_800)?;
                if n > 0 && n < 60 {
                    return Err("max_duration is 0 (no limit) or at least 60 seconds".into());
                }
                self.calls.max_duration = n;
            }
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }

    fn finish(self) -> Result<Config, ConfigError> {
        let plan = self.server.plan;
        let s = &self.server;
        if s.min_expires > s.max_expires {
            return Err(self.err(
                0,
                Some("[server] min_expires".into()),
                "min_expires is larger than max_expires",
            ));
        }
        let sec = &self.security;
        if sec.backoff > sec.max_backoff {
            return Err(self.err(
                0,
                Some("[security] max_backoff".into()),
                "max_backoff is smaller than backoff",
            ));
        }
        if sec.forget_after < sec.max_backoff {
            return Err(self.err(
                0,
                Some("[security] forget_after".into()),
                "forget_after is smaller than max_backoff (failures would be forgotten \
                 before the longest wait is over)",
            ));
        }
        let mut lines = BTreeMap::new();
        for (lineno, l) in &self.lines {
            let key = Some(format!("[{}]", l.number));
            if !plan.contains(l.number) {
                return Err(self.err(
                    *lineno,
                    key,
                    format!(
                        "{} is not an extension of the {} plan (set [server] digits)",
                        l.number, plan
                    ),
                ));
            }
            if l.secret.is_none() && l.sha256.is_none() && l.md5.is_none() {
                return Err(self.err(
                    *lineno,
                    key,
                    "no secret, sha256 or md5: nobody could register this extension",
                ));
            }
            // A phone claiming this line is offered its algorithms (the [server]
            // offer unless the line has its own), so the line must be able to answer
            // each of them.
            if l.secret.is_none() {
                let missing = l.offer(&s.algorithms).iter().find(|a| match a {
                    DigestAlgorithm::Sha256 => l.sha256.is_none(),
                    DigestAlgorithm::Md5 => l.md5.is_none(),
                });
                if let Some(a) = missing {
                    let name = a.key();
                    let whose = if l.algorithms.is_some() {
                        "its algorithm key offers"
                    } else {
                        "[server] algorithm offers"
                    };
                    return Err(self.err(
                        *lineno,
                        key,
                        format!(
                            "no secret and no {name} hash, but {whose} {name} to a phone \
                             claiming it: add {name} = HEX (or a secret), or leave {name} out \
                             of the offer"
                        ),
                    ));
                }
            }
            let mut l = l.clone();
            if l.display.is_empty() {
                l.display = format!("Extension {}", l.number);
            }
            lines.insert(l.number, l);
        }
        // The numbers the other sections may name: the extension sections, or, in a
        // file without any, the built-in extensions it keeps (with_builtin_lines).
        let known: std::collections::BTreeSet<u16> = if lines.is_empty() && plan == Plan::TwoDigit {
            BUILTIN_EXTENSIONS.collect()
        } else {
            lines.keys().copied().collect()
        };
        let mut groups = BTreeMap::new();
        for (lineno, n, members) in &self.groups {
            let key = Some(format!("[groups] {n}"));
            if !plan.is_group_number(*n) {
                return Err(self.err(
                    *lineno,
                    key,
                    format!("{n} cannot be a group number in the {plan} plan"),
                ));
            }
            if let Some(m) = members.iter().find(|m| !known.contains(m)) {
                return Err(self.err(*lineno, key, format!("member {m} has no [{m}] section")));
            }
            if groups.insert(*n, members.clone()).is_some() {
                return Err(self.err(*lineno, key, "group defined twice"));
            }
        }
        for (lineno, n, key) in &self.coverage_lines {
            let l = &lines[n];
            let list = if key == "coverage" {
                &l.coverage
            } else {
                &l.delayed
            };
            if let Some(m) = list.iter().find(|m| !lines.contains_key(m) || *m == n) {
                return Err(self.err(
                    *lineno,
                    Some(format!("[{n}] {key}")),
                    format!("{m} must be another configured extension"),
                ));
            }
        }
        let mut speed = BTreeMap::new();
        for (lineno, code, target) in &self.speed {
            if speed.insert(code.clone(), target.clone()).is_some() {
                return Err(self.err(
                    *lineno,
                    Some(format!("[speed] {code}")),
                    "code defined twice",
                ));
            }
            if let Some(why) = speed_code_clash(plan, &groups, &self.features, code) {
                return Err(self.err(*lineno, Some(format!("[speed] {code}")), why));
            }
        }
        let codes = self.features.all();
        for (i, (name, code)) in codes.iter().enumerate() {
            if let Some((other, _)) = codes[i + 1..].iter().find(|(_, c)| c == code) {
                return Err(self.err(
                    0,
                    Some(format!("[features] {name}")),
                    format!("{code} is also {other}"),
                ));
            }
        }
        let mut upstream = self.upstream.clone();
        if !self.upstream_lines.contains_key("emergency") {
            // The default list yields to the site's own numbering: a 3-digit plan
            // may well have an extension 112.
            upstream.emergency.retain(|e| {
                !e.parse::<u16>()
                    .is_ok_and(|n| known.contains(&n) || groups.contains_key(&n))
                    && !speed.contains_key(e)
            });
        }
        let u = &upstream;
        for e in &u.emergency {
            let clash = e
                .parse::<u16>()
                .ok()
                .filter(|n| known.contains(n) || groups.contains_key(n));
            if let Some(n) = clash {
                return Err(self.err(
                    self.upstream_lines.get("emergency").copied().unwrap_or(0),
                    Some("[upstream] emergency".into()),
                    format!("{n} is an emergency number and also an extension or group"),
                ));
            }
            if speed.contains_key(e) {
                return Err(self.err(
                    self.upstream_lines.get("emergency").copied().unwrap_or(0),
                    Some("[upstream] emergency".into()),
                    format!("{e} is an emergency number and also a speed dial"),
                ));
            }
        }
        if u.site_prefix.is_some() && u.route.is_none() {
            return Err(self.err(
                self.upstream_lines.get("site_prefix").copied().unwrap_or(0),
                Some("[upstream] site_prefix".into()),
                "a site prefix needs the building's route (`route = HOST[:PORT]`)",
            ));
        }
        if let Some(t) = &u.emergency_local {
            let ok = t
                .parse::<u16>()
                .is_ok_and(|n| known.contains(&n) || groups.contains_key(&n));
            if !ok {
                return Err(self.err(
                    self.upstream_lines
                        .get("emergency_local")
                        .copied()
                        .unwrap_or(0),
                    Some("[upstream] emergency_local".into()),
                    format!("{t} is not a configured extension or group"),
                ));
            }
        }
        let mut runstates = BTreeMap::new();
        for (lineno, name, state) in &self.runstates {
            let key = Some(format!("[runstate {name}]"));
            let unknown = state
                .numbers()
                .find(|n| !known.contains(n))
                .map(|n| format!("{n} is not a configured extension"))
                .or_else(|| {
                    state.groups.iter().find_map(|(g, members)| {
                        if !groups.contains_key(g) {
                            Some(format!("{g} is not a group of [groups]"))
                        } else {
                            members
                                .iter()
                                .find(|m| !known.contains(m))
                                .map(|m| format!("group {g}: member {m} has no [{m}] section"))
                        }
                    })
                })
                .or_else(|| {
                    state.coverage.iter().find_map(|(n, list)| {
                        list.iter()
                            .find(|m| **m == *n || !known.contains(m))
                            .map(|m| {
                                format!("coverage of {n}: {m} must be another configured extension")
                            })
                    })
                })
                .or_else(|| {
                    state.forwards.iter().find_map(|((n, _), t)| {
                        (t.as_deref() == Some(n.to_string().as_str()))
                            .then(|| format!("{n} cannot forward to itself"))
                    })
                });
            if let Some(why) = unknown {
                return Err(self.err(*lineno, key, why));
            }
            runstates.insert(name.clone(), state.clone());
        }
        Ok(Config {
            server: self.server,
            calls: self.calls,
            groups,
            lines,
            speed,
            features: self.features,
            upstream,
            hooks: self.hooks,
            records: self.records,
            runstates,
            security: self.security,
        })
    }
}

fn security_key(s: &mut SecurityConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "source_failures" => s.source_failures = num(v, 1, 1000)?,
        "extension_failures" => s.extension_failures = num(v, 1, 1000)?,
        "backoff" => s.backoff = num(v, 1, 3600)?,
        "max_backoff" => s.max_backoff = num(v, 1, 86_400)?,
        "forget_after" => s.forget_after = num(v, 60, 604_800)?,
        "log_failures" => s.log_failures = num(v, 1, 1000)?,
        "source_rate" => s.source_rate = num(v, 0, 10_000_000)?,
        _ => return Err("unknown key".into()),
    }
    Ok(())
}

fn num(v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{v}` must be a whole number from {min} to {max}")),
    }
}

fn is_hex(v: &str, len: usize) -> bool {
    v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The extensions of the built-in default (and of a file without extension
/// sections).
pub const BUILTIN_EXTENSIONS: std::ops::RangeInclusive<u16> = 10..=19;

fn builtin_lines(secret_for: &impl Fn(u16) -> String) -> BTreeMap<u16, LineConfig> {
    BUILTIN_EXTENSIONS
        .map(|n| {
            (
                n,
                LineConfig {
                    display: format!("Extension {n}"),
                    secret: Some(secret_for(n)),
                    ..LineConfig::new(n)
                },
            )
        })
        .collect()
}

/// A list of digest algorithms (`sha256, md5`), in order, without repeats.
fn algorithm_list(v: &str) -> Result<Vec<DigestAlgorithm>, String> {
    let mut algs = Vec::new();
    for a in v.split(|c: char| c == ',' || c.is_whitespace()) {
        if a.is_empty() {
            continue;
        }
        let alg = DigestAlgorithm::parse_key(a)
            .ok_or_else(|| format!("unknown algorithm `{a}` (sha256, md5)"))?;
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    if algs.is_empty() {
        return Err("at least one algorithm (sha256, md5)".into());
    }
    Ok(algs)
}

fn line_key(l: &mut LineConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "secret" => {
            if v.is_empty() {
                return Err("secret must not be empty".into());
            }
            l.secret = Some(v.to_string())
        }
        "sha256" => {
            if !is_hex(v, 64) {
                return Err("sha256 must be 64 hex digits: SHA-256 of user:realm:secret".into());
            }
            l.sha256 = Some(v.to_ascii_lowercase())
        }
        "md5" => {
            if !is_hex(v, 32) {
                return Err("md5 must be 32 hex digits: MD5 of user:realm:secret".into());
            }
            l.md5 = Some(v.to_ascii_lowercase())
        }
        "display" | "name" => {
            if v.chars().count() > 31 || v.contains(['"', '\\']) || v.chars().any(char::is_control)
            {
                return Err("display must be at most 31 characters, without quotes".into());
            }
            l.display = v.to_string();
            l.display_set = true;
        }
        "lines" => l.lines = num(v, 1, u32::from(MAX_LINES))? as u8,
        "coverage" => l.coverage = ext_list(v)?,
        "delayed" => l.delayed = ext_list(v)?,
        "delay" => l.delay = num(v, 1, 20)? as u8,
        "call_waiting" => l.call_waiting = yes_no(v)?,
        "algorithm" | "algorithms" => l.algorithms = Some(algorithm_list(v)?),
        _ => return Err("unknown key".into()),
    }
    Ok(())
}

/// Why `code` cannot be a speed dial, if it cannot: it would shadow what the
/// switch reads first — a number of the plan's extension range (configured or
/// not), a group, `all` or `system`, or a keypad feature code (alone, or a
/// forward code with a target after it).
pub fn speed_code_clash(
    plan: Plan,
    groups: &BTreeMap<u16, Vec<u16>>,
    features: &FeatureCodes,
    code: &str,
) -> Option<String> {
    if features.read(code).is_some() {
        return Some(format!(
            "{code} is read as a keypad feature code ([features])"
        ));
    }
    match classify(plan, groups, |_| true, code) {
        Target::Extension(_) => Some(format!(
            "{code} is an extension number of the {}-digit plan",
            plan.digits()
        )),
        Target::Group(g) => Some(format!("{code} is group {g}")),
        Target::All | Target::System => Some(format!("{code} is a name of the switch")),
        Target::Unknown(_) | Target::External(_) => None,
    }
}

/// `yes`/`no` (also `true`/`false`, `on`/`off`, `1`/`0`).
fn yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("`{v}` must be yes or no")),
    }
}

/// Digits, `*` and `#`, 1 to 32 of them.
fn is_dial_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// A list of extension numbers separated by spaces or commas.
fn ext_list(v: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for m in v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
    {
        let e: u16 = m
            .parse()
            .map_err(|_| format!("`{m}` is not an extension number"))?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

fn parse_group(key: &str, v: &str) -> Result<(u16, Vec<u16>), String> {
    let n: u16 = key
        .parse()
        .map_err(|_| format!("`{key}` is not a group number"))?;
    let mut members = Vec::new();
    for m in v.split(|c: char| c == ',' || c.is_whitespace()) {
        if m.is_empty() {
            continue;
        }
        let e: u16 = m
            .parse()
            .map_err(|_| format!("member `{m}` is not an extension number"))?;
        if !members.contains(&e) {
            members.push(e);
        }
    }
    if members.is_empty() {
        return Err("a group needs at least one member".into());
    }
    Ok((n, members))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/coventry.conf"), s)
    }

    #[test]
    fn full_file() {
        let c = parse(
            "; site\n[server]\nlisten = 127.0.0.1:5070\ndigits = 2\nrealm = home\n\
             algorithm = md5\n\n[calls]\nring = 4\nnoanswer = 3\n\n[groups]\n100 = 21, 22\n\n\
             [21]\nsecret = s21\ndisplay = Reception\nlines = 3\n[22]\nmd5 = 0123456789abcdef0123456789ABCDEF\n",
        )
        .expect("valid");
        assert_eq!(c.server.listen, "127.0.0.1:5070".parse().expect("addr"));
        assert_eq!(c.server.realm, "home");
        assert_eq!(c.server.algorithms, vec![DigestAlgorithm::Md5]);
        assert_eq!(
            c.calls,
            CallsConfig {
                ring: 4,
                noanswer: 3,
                max_duration: 43_200,
                max_per_line: DEFAULT_MAX_CALLS_PER_LINE,
            }
        );
        assert_eq!(c.groups[&100], vec![21, 22]);
        assert_eq!(c.lines[&21].display, "Reception");
        assert_eq!(c.lines[&21].lines, 3);
        assert_eq!(
            c.lines[&22].md5.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(c.lines[&22].display, "Extension 22");
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = parse("[server]\ndigits = 2\n\n[21]\nsecret = x\nlines = 9\n").expect_err("bad");
        assert_eq!(e.line, 6);
        assert_eq!(e.key.as_deref(), Some("[21] lines"));
        assert_eq!(
            e.to_string(),
            "/etc/coventry.conf:6: [21] lines: `9` must be a whole number from 1 to 4"
        );
        let e = parse("[21]\ndisplay = x\n").expect_err("no secret");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("no secret"));
        let e = parse("[server]\nlisten = nowhere\n").expect_err("listen");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("[server] listen")));
        let e = parse("[server]\ncolour = red\n").expect_err("unknown");
        assert!(e.to_string().contains("unknown key"));
        let e = parse("[150]\nsecret = x\n").expect_err("plan");
        assert!(e.message.contains("not an extension"));
        let e = parse("[groups]\n100 = 21\n").expect_err("member");
        assert!(e.message.contains("member 21"));
        let e = parse("[oops\n").expect_err("header");
        assert!(e.message.contains("malformed"));
        let e = parse("[21]\nsecret = a\n[21]\nsecret = b\n").expect_err("dup");
        assert_eq!(e.line, 3);
        let e = parse("[server]\ndigits = 3\n[groups]\n150 = 150\n[150]\nsecret=x\n")
            .expect_err("group in plan");
        assert!(e.message.contains("cannot be a group"));
    }

    #[test]
    fn security_section() {
        let c = parse("[21]\nsecret = a\n").expect("valid");
        assert_eq!(c.security, SecurityConfig::default());
        let c = parse(
            "[security]\nsource_failures = 3\nextension_failures = 7\nbackoff = 5\n\
             max_backoff = 60\nforget_after = 120\nlog_failures = 2\nsource_rate = 0\n\
             [21]\nsecret = a\n",
        )
        .expect("valid");
        assert_eq!(
            c.security,
            SecurityConfig {
                source_failures: 3,
                extension_failures: 7,
                backoff: 5,
                max_backoff: 60,
                forget_after: 120,
                log_failures: 2,
                source_rate: 0,
            }
        );
        let e = parse("[security]\nbackoff = 0\n").expect_err("zero");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("[security] backoff")));
        let e = parse("[security]\nbackoff = 60\nmax_backoff = 30\n[21]\nsecret = a\n")
            .expect_err("order");
        assert_eq!(e.key.as_deref(), Some("[security] max_backoff"));
        let e = parse("[security]\nmax_backoff = 7200\n[21]\nsecret = a\n").expect_err("forget");
        assert_eq!(e.key.as_deref(), Some("[security] forget_after"));
        let e = parse("[security]\nlockout = 1\n").expect_err("unknown");
        assert!(e.to_string().contains("unknown key"));
    }

    #[test]
    fn a_line_may_have_its_own_offer() {
        let sha = "sha256 = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        // A SHA-256-only line on the default (MD5) server offer: with its own offer.
        let c = parse(&format!("[22]\n{sha}\nalgorithm = sha256\n")).expect("own offer");
        let l = &c.lines[&22];
        assert_eq!(l.offer(&c.server.algorithms), &[DigestAlgorithm::Sha256]);
        // Its own offer must be answerable too.
        let e = parse(&format!("[22]\n{sha}\nalgorithm = sha256, md5\n")).expect_err("no md5");
        assert!(e.message.contains("its algorithm key offers md5"), "{e}");
        let e = parse("[22]\nsecret = x\nalgorithm = sha512\n").expect_err("unknown");
        assert!(e.message.contains("unknown algorithm"), "{e}");
    }

    #[test]
    fn a_local_peer_without_secret_is_named() {
        let c = parse("[upstream]\nroute = 127.0.0.1:5070\n[21]\nsecret = a\n").expect("ok");
        assert_eq!(
            c.upstream.local_peers_without_secret(),
            vec!["127.0.0.1:5070"]
        );
        assert!(c.upstream.local_trust_warning().is_some());
        let c = parse("[upstream]\nroute = localhost\ntrust = ::1, 10.0.0.7\n[21]\nsecret = a\n")
            .expect("ok");
        assert_eq!(
            c.upstream.local_peers_without_secret(),
            vec!["localhost:5060", "::1"]
        );
        let c =
            parse("[upstream]\nroute = 127.0.0.1\npeer_secret = s3cret-long\n[21]\nsecret = a\n")
                .expect("ok");
        assert!(c.upstream.local_trust_warning().is_none());
        let c = parse("[upstream]\nroute = 192.0.2.7\n[21]\nsecret = a\n").expect("ok");
        assert!(c.upstream.local_trust_warning().is_none());
    }

    #[test]
    fn every_line_answers_every_offered_algorithm() {
        let md5 = "md5 = 0123456789abcdef0123456789abcdef";
        let sha = "sha256 = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        // The default offer is MD5 alone: a line with only a SHA-256 hash cannot answer.
        let e = parse(&format!("[21]\nsecret = a\n[22]\n{sha}\n")).expect_err("sha only");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("[22]")));
        assert!(e.message.contains("no md5 hash"), "{e}");
        parse(&format!("[22]\n{md5}\n")).expect("md5 on the default offer");
        // Offering both: a line with one hash cannot answer both.
        let both = "[server]\nalgorithm = sha256, md5\n";
        let e = parse(&format!("{both}[22]\n{md5}\n")).expect_err("md5 only");
        assert!(e.message.contains("no sha256 hash"), "{e}");
        parse(&format!("[server]\nalgorithm = md5\n[22]\n{md5}\n")).expect("md5 offer");
        parse(&format!("[server]\nalgorithm = sha256\n[22]\n{sha}\n")).expect("sha offer");
        parse(&format!("[22]\n{md5}\n{sha}\n")).expect("both hashes");
    }

    #[test]
    fn features_speed_and_coverage() {
        let c = parse(
            "[features]\ndnd_on = *5\n[speed]\n*1 = 0123456\n9 = 35\n\
             [21]\nsecret = a\ncoverage = 22\ndelayed = 23, 24\ndelay = 3\n\
             [22]\nsecret = b\n[23]\nsecret = c\n[24]\nsecret = d\n",
        )
        .expect("valid");
        assert_eq!(c.features.dnd_on, "*5");
        assert_eq!(c.features.dnd_off, "*79");
        assert_eq!(c.speed["*1"], "0123456");
        assert_eq!(c.lines[&21].coverage, vec![22]);
        assert_eq!(c.lines[&21].delayed, vec![23, 24]);
        assert_eq!(c.lines[&21].delay, 3);
        let e = parse("[21]\nsecret = a\ncoverage = 25\n").expect_err("unknown coverage");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("[21] coverage")));
        let e = parse("[features]\ndnd_on = 78\n").expect_err("no star");
        assert!(e.message.contains("starts with"));
        let e = parse("[features]\ndnd_on = *73\n").expect_err("clash");
        assert!(e.message.contains("also"), "{e}");
        let e = parse("[speed]\n*1 = sip:x\n").expect_err("bad speed");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn speed_codes_shadow_nothing() {
        let conf = |speed: &str| {
            parse(&format!(
                "[groups]\n100 = 21\n[speed]\n{speed} = 35\n[21]\nsecret = a\n"
            ))
        };
        for (code, why) in [
            ("21", "extension number"),
            ("35", "extension number"),
            ("100", "group 100"),
            ("*78", "feature code"),
            ("*7235", "feature code"),
        ] {
            let e = conf(code).expect_err(code);
            assert_eq!(e.key.as_deref(), Some(format!("[speed] {code}").as_str()));
            assert!(e.message.contains(why), "{code}: {e}");
        }
        for code in ["9", "*1", "0", "999", "*7"] {
            assert!(conf(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn a_site_prefix_names_the_building_route_and_keeps_its_numbers_local() {
        let c = parse("[upstream]\nroute = 10.0.0.1\nsite_prefix = 71\n[21]\nsecret = a\n")
            .expect("valid");
        assert_eq!(c.upstream.site_prefix.as_deref(), Some("71"));
        assert_eq!(
            c.upstream.link_name(&[RouteKind::Default, RouteKind::Sms]),
            "building+sms"
        );
        assert_eq!(c.target_of("7121"), Target::Extension(21));
        assert_eq!(c.target_of("21"), Target::Extension(21));
        assert_eq!(c.target_of("7122"), Target::External("7122".into()));
        assert_eq!(c.target_of("71"), Target::Unknown("71".into()));
        assert_eq!(c.target_of("7221"), Target::External("7221".into()));
        assert_eq!(c.building_number("21"), "7121");
        let alone = parse("[21]\nsecret = a\n").expect("valid");
        assert_eq!(alone.target_of("7121"), Target::External("7121".into()));
        assert_eq!(alone.upstream.link_name(&[RouteKind::Default]), "default");
        let e = parse("[upstream]\nsite_prefix = 71\n").expect_err("no route");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (2, Some("[upstream] site_prefix"))
        );
        for bad in ["7a", "12345", ""] {
            let e = parse(&format!(
                "[upstream]\nroute = 10.0.0.1\nsite_prefix = {bad}\n"
            ))
            .expect_err(bad);
            assert_eq!(e.line, 3, "{bad}: {e}");
        }
    }

    #[test]
    fn upstream_section() {
        let c = parse(
            "[upstream]\nroute = 127.0.0.1:5070\nemergency = 112 911, 999\n\
             emergency_route = [::1]:5071\nsms_route = sms.example.net\nidentity = from\n\
             trust = 10.0.0.7\nemergency_local = 21\n[21]\nsecret = a\n",
        )
        .expect("valid");
        let u = &c.upstream;
        assert_eq!(
            u.route.as_ref().map(|h| h.to_string()).as_deref(),
            Some("127.0.0.1:5070")
        );
        assert_eq!(u.emergency, vec!["112", "911", "999"]);
        assert!(u.is_emergency("999") && !u.is_emergency("99"));
        assert_eq!(
            u.route_for(RouteKind::Emergency)
                .map(|h| h.to_string())
                .as_deref(),
            Some("[::1]:5071")
        );
        assert_eq!(
            u.route_for(RouteKind::Sms)
                .map(|h| h.to_string())
                .as_deref(),
            Some("sms.example.net:5060")
        );
        assert_eq!(u.identity, Identity::From);
        assert_eq!(u.links().len(), 3);
        let c = parse("[upstream]\nroute = 127.0.0.1:5070\n").expect("valid");
        assert_eq!(
            c.upstream.links(),
            vec![(
                "127.0.0.1:5070".parse().expect("hp"),
                vec![RouteKind::Default, RouteKind::Emergency, RouteKind::Sms]
            )]
        );
        assert!(parse("").expect("empty").upstream.links().is_empty());
        let e = parse("[upstream]\nroute = bad host:1\n").expect_err("host");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("[upstream] route")));
        let e = parse("[server]\ndigits = 3\n[upstream]\nemergency = 112\n[112]\nsecret = x\n")
            .expect_err("clash");
        assert!(e.message.contains("emergency"), "{e}");
        // The default list gives way to an extension 112.
        let c = parse("[server]\ndigits = 3\n[112]\nsecret = x\n").expect("default yields");
        assert_eq!(c.upstream.emergency, vec!["911"]);
        let e = parse("[upstream]\nemergency_local = 30\n").expect_err("local");
        assert_eq!(e.line, 2);
        let e = parse("[upstream]\nidentity = both\n").expect_err("identity");
        assert!(e.message.contains("pai or from"));
    }

    #[test]
    fn builtin_is_secured() {
        let c = Config::builtin("127.0.0.1:0".parse().expect("addr"), |n| format!("s{n}"));
        assert_eq!(c.lines.len(), 10);
        assert!(c.lines.values().all(|l| l.secret.is_some()));
        assert!(!format!("{:?}", c.lines[&10]).contains("s10"));
    }

    #[test]
    fn a_file_without_extension_sections_may_name_the_builtin_ones() {
        let text = "[groups]\n700 = 12 13\n[runstate night]\nforward.10 = 19\ndnd.11 = on\n\
                    group.700 = 18 19\n";
        let c = parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_builtin_lines(|n| format!("s{n}"))
            .expect("builtin lines");
        assert_eq!(c.groups[&700], vec![12, 13]);
        assert!(c.runstates.contains_key("night"));
        assert_eq!(c.lines.len(), 10);
        // Numbers outside them are still refused, and a file with extension
        // sections names only its own.
        assert!(parse("[runstate night]\ndnd.20 = on\n").is_err());
        assert!(parse("[12]\nsecret = x\n[runstate night]\ndnd.11 = on\n").is_err());
    }
}
