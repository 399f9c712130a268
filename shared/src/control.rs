//! The control-command grammar spoken on the FIFO: `[#ID ]VERB ARGS`, one line.
//!
//! A line is at most [`MAX_LINE`] bytes including its newline. Programs write it
//! framed ([`frame`]): a newline first, then the line, in one `write` of at most
//! [`MAX_FRAME`] bytes — well within Linux's `PIPE_BUF` (4096), so concurrent writers
//! never interleave, and the leading newline ends whatever partial line another
//! writer left behind, so junk can never join a command. The daemon ignores empty
//! lines and drops a partial line that waited [`PARTIAL_LINE_TIMEOUT_MS`] for its
//! newline, answering it with an error result. A plain `echo "reload" > control`
//! works as well.

use std::fmt;

/// Longest control line in bytes, newline included: room for any command, a
/// `message` of [`MAX_TEXT_CHARS`] characters of four bytes each among them.
pub const MAX_LINE: usize = 1024;

/// Most bytes of one framed write: the leading newline and a line.
pub const MAX_FRAME: usize = MAX_LINE + 1;

/// How long the daemon waits for the rest of a line without newline before it drops
/// it with an error result (a writer that died mid-line, or junk).
pub const PARTIAL_LINE_TIMEOUT_MS: u64 = 2_000;

/// The bytes to write to the FIFO, in one `write`, for `line` (one line, its
/// newline included, at most [`MAX_LINE`] bytes): a newline, then the line.
pub fn frame(line: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(line.len() + 1);
    v.push(b'\n');
    v.extend_from_slice(line.as_bytes());
    v
}

/// Whether `line` (without its newline) carries nothing, a framing newline's empty
/// line (`\r` or blanks only): the daemon skips it without a result.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// A parsed control line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Request id echoed on the command-result event (`#42`).
    pub id: Option<u64>,
    /// What to do.
    pub command: Command,
}

/// A command the daemon carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `message TARGET TEXT`: send a text to an extension, group or `all`.
    Message {
        /// Extension number, group number or `all`.
        target: String,
        /// The text (at most 160 characters).
        text: String,
    },
    /// `release EXT`: drop every registration of an extension.
    Release {
        /// Extension number.
        ext: u16,
    },
    /// `reload`: re-read the configuration file.
    Reload,
    /// `hangup CALL|EXT`: end a call (BYE to both sides when answered, CANCEL
    /// while it rings). A number with the plan's digit count names the calls of
    /// that extension; any other number is a call number (`pbxctl calls`).
    Hangup {
        /// Call number or extension.
        target: String,
    },
    /// `forward EXT TARGET|off [always|busy|noanswer] [until=UNIX]`: set or clear
    /// a forward; `until` (seconds since the epoch) makes the switch revert it.
    Forward {
        /// Extension whose calls are forwarded.
        ext: u16,
        /// Where to (`None`: off).
        target: Option<String>,
        /// Which forward.
        kind: ForwardKind,
        /// Revert at this time (seconds since the epoch).
        until: Option<u64>,
    },
    /// `dnd EXT on|off [until=UNIX]`: do not disturb.
    Dnd {
        /// Extension.
        ext: u16,
        /// On or off.
        on: bool,
        /// Revert at this time (seconds since the epoch).
        until: Option<u64>,
    },
    /// `dial EXT TARGET`: click-to-dial — ring EXT, then connect it to TARGET.
    Dial {
        /// The extension rung first.
        ext: u16,
        /// What it is connected to.
        target: String,
    },
    /// `why NUMBER`: explain where a call to NUMBER (an extension, or any
    /// number a phone could dial) would go now (the result text).
    Why {
        /// The number, as dialled.
        number: String,
    },
    /// `runstate [NAME]`: show the run state in force, or put NAME in force.
    RunState {
        /// The state to put in force (`None`: just say which is).
        name: Option<String>,
    },
    /// `speed`: list the speed dials in force (one [`crate::event::Event::SpeedDial`]
    /// each, then the result).
    SpeedList,
    /// `trace TOKEN FILTER|off`: trace SIP messages (see [`crate::trace`]) for
    /// as long as the lease TOKEN is held, or end that trace now.
    Trace {
        /// The lease's token (a lock the client holds on the state block).
        token: u32,
        /// What to follow (`None`: end the trace).
        filter: Option<crate::trace::Filter>,
    },
    /// `speed CODE TARGET|off`: set or clear a speed dial.
    Speed {
        /// The short code (digits).
        code: String,
        /// Its target (`None`: clear).
        target: Option<String>,
    },
}

/// Which forward a `forward` command sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForwardKind {
    /// Every call.
    Always,
    /// When the extension is busy (or on DND).
    Busy,
    /// When it does not answer within its rings.
    NoAnswer,
}

impl ForwardKind {
    /// The word used in commands.
    pub fn name(self) -> &'static str {
        match self {
            ForwardKind::Always => "always",
            ForwardKind::Busy => "busy",
            ForwardKind::NoAnswer => "noanswer",
        }
    }

    /// Parse `always`, `busy`, `noanswer` (also `no-answer`).
    pub fn parse(s: &str) -> Option<ForwardKind> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(ForwardKind::Always),
            "busy" => Some(ForwardKind::Busy),
            "noanswer" | "no-answer" => Some(ForwardKind::NoAnswer),
            _ => None,
        }
    }
}

/// A dial target: digits, `*` and `#` (feature codes), at most 32 characters.
fn is_dial_target(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// `until=UNIX` option.
fn parse_until(s: &str) -> Option<u64> {
    s.strip_prefix("until=")?.parse().ok()
}

/// Why a control line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The line was empty.
    Empty,
    /// Longer than [`MAX_LINE`].
    TooLong,
    /// Not UTF-8.
    NotUtf8,
    /// `#` not followed by a number.
    BadId,
    /// A verb the daemon does not know.
    UnknownVerb(String),
    /// Wrong arguments; the text is the usage line.
    Usage(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty command"),
            ParseError::TooLong => write!(f, "line longer than {MAX_LINE} bytes"),
            ParseError::NotUtf8 => f.write_str("line is not UTF-8"),
            ParseError::BadId => f.write_str("request id must be #NUMBER"),
            ParseError::UnknownVerb(v) => write!(f, "unknown command `{v}`"),
            ParseError::Usage(u) => write!(f, "usage: {u}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Longest text a phone is sent, in characters (not bytes): the switch
/// refuses longer ones, and the clients check before sending.
pub const MAX_TEXT_CHARS: usize = 160;

/// Usage of `message`.
pub const USAGE_MESSAGE: &str = "message TARGET TEXT";
/// Usage of `release`.
pub const USAGE_RELEASE: &str = "release EXT";
/// Usage of `reload`.
pub const USAGE_RELEASE_RELOAD: &str = "reload";

/// Usage of `hangup`.
pub const USAGE_HANGUP: &str = "hangup CALL|EXT";

/// Usage of `forward`.
pub const USAGE_FORWARD: &str = "forward EXT TARGET|off [always|busy|noanswer] [until=UNIX]";
/// Usage of `dnd`.
pub const USAGE_DND: &str = "dnd EXT on|off [until=UNIX]";
/// Usage of `dial`.
pub const USAGE_DIAL: &str = "dial EXT TARGET";
/// Usage of `why`.
pub const USAGE_WHY: &str = "why NUMBER";
/// Usage of `runstate`.
pub const USAGE_RUNSTATE: &str = "runstate [NAME] (NAME: lower-case letters, digits, - and _)";
/// Usage of `speed`.
pub const USAGE_SPEED: &str = "speed [CODE TARGET|off]";
/// Usage of `trace`.
pub const USAGE_TRACE: &str = "trace TOKEN all|EXT|IP|IP:PORT|off";

/// Every verb an operator types, for completion and help (`trace` is not one:
/// a tracing client sends it with the lease it holds, see [`crate::trace`]).
pub const VERBS: &[&str] = &[
    "message", "release", "reload", "hangup", "forward", "dnd", "dial", "speed", "why", "runstate",
];

impl Request {
    /// Parse one line (without or with its trailing newline).
    ///
    /// On error the request id is returned too when it could be read, so the
    /// result event still carries it.
    pub fn parse(line: &[u8]) -> Result<Request, (Option<u64>, ParseError)> {
        if line.len() > MAX_LINE {
            return Err((peek_id(line), ParseError::TooLong));
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).map_err(|_| (peek_id(line), ParseError::NotUtf8))?;
        let text = text.trim();
        let (id, rest) = split_id(text).map_err(|e| (None, e))?;
        let err = |e| (id, e);
        let rest = rest.trim_start();
        if rest.is_empty() {
            return Err(err(ParseError::Empty));
        }
        let (verb, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let args = args.trim();
        let command = match verb.to_ascii_lowercase().as_str() {
            "message" | "msg" => {
                let (target, text) = args
                    .split_once(char::is_whitespace)
                    .ok_or(err(ParseError::Usage(USAGE_MESSAGE)))?;
                let text = text.trim();
                if text.is_empty() || target.is_empty() {
                    return Err(err(ParseError::Usage(USAGE_MESSAGE)));
                }
                Command::Message {
                    target: target.to_string(),
                    text: text.to_string(),
                }
            }
            "release" => {
                let ext = args
                    .parse::<u16>()
                    .map_err(|_| err(ParseError::Usage(USAGE_RELEASE)))?;
                Command::Release { ext }
            }
            "hangup" => {
                if args.is_empty() || args.len() > 10 || !args.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(ParseError::Usage(USAGE_HANGUP)));
                }
                Command::Hangup {
                    target: args.to_string(),
                }
            }
            "forward" | "fwd" => {
                let usage = || err(ParseError::Usage(USAGE_FORWARD));
                let words: Vec<&str> = args.split_whitespace().collect();
                let (ext, target) = match words.as_slice() {
                    [e, t, ..] => (e.parse::<u16>().map_err(|_| usage())?, *t),
                    _ => return Err(usage()),
                };
                let target = if target.eq_ignore_ascii_case("off") {
                    None
                } else if is_dial_target(target) {
                    Some(target.to_string())
                } else {
                    return Err(usage());
                };
                let (mut kind, mut until) = (ForwardKind::Always, None);
                for w in &words[2..] {
                    if let Some(k) = ForwardKind::parse(w) {
                        kind = k;
                    } else if let Some(u) = parse_until(w) {
                        until = Some(u);
                    } else {
                        return Err(usage());
                    }
                }
                Command::Forward {
                    ext,
                    target,
                    kind,
                    until,
                }
            }
            "dnd" => {
                let usage = || err(ParseError::Usage(USAGE_DND));
                let words: Vec<&str> = args.split_whitespace().collect();
                let (ext, on, rest) = match words.as_slice() {
                    [e, o, rest @ ..] => {
                        let on = match o.to_ascii_lowercase().as_str() {
                            "on" => true,
                            "off" => false,
                            _ => return Err(usage()),
                        };
                        (e.parse::<u16>().map_err(|_| usage())?, on, rest)
                    }
                    _ => return Err(usage()),
                };
                let until = match rest {
                    [] => None,
                    [u] => Some(parse_until(u).ok_or_else(usage)?),
                    _ => return Err(usage()),
                };
                Command::Dnd { ext, on, until }
            }
            "dial" | "call" => {
                let usage = || err(ParseError::Usage(USAGE_DIAL));
                match args.split_whitespace().collect::<Vec<_>>().as_slice() {
                    [e, t] if is_dial_target(t) => Command::Dial {
                        ext: e.parse().map_err(|_| usage())?,
                        target: t.to_string(),
                    },
                    _ => return Err(usage()),
                }
            }
            "why" => {
                let number = args.trim();
                if !is_dial_target(number) {
                    return Err(err(ParseError::Usage(USAGE_WHY)));
                }
                Command::Why {
                    number: number.to_string(),
                }
            }
            "speed" => {
                let usage = || err(ParseError::Usage(USAGE_SPEED));
                match args.split_whitespace().collect::<Vec<_>>().as_slice() {
                    [] => Command::SpeedList,
                    [c, t] if is_dial_target(c) => Command::Speed {
                        code: c.to_string(),
                        target: if t.eq_ignore_ascii_case("off") {
                            None
                        } else if is_dial_target(t) {
                            Some(t.to_string())
                        } else {
                            return Err(usage());
                        },
                    },
                    _ => return Err(usage()),
                }
            }
            "trace" => {
                let usage = || err(ParseError::Usage(USAGE_TRACE));
                match args.split_whitespace().collect::<Vec<_>>().as_slice() {
                    [t, f] => Command::Trace {
                        token: t.parse().map_err(|_| usage())?,
                        filter: if f.eq_ignore_ascii_case("off") {
                            None
                        } else {
                            Some(crate::trace::Filter::parse(f).ok_or_else(usage)?)
                        },
                    },
                    _ => return Err(usage()),
                }
            }
            "runstate" => Command::RunState {
                name: match args {
                    "" => None,
                    n if crate::runstate::valid_name(n) => Some(n.to_string()),
                    _ => return Err(err(ParseError::Usage(USAGE_RUNSTATE))),
                },
            },
            "reload" => {
                if !args.is_empty() {
                    return Err(err(ParseError::Usage(USAGE_RELEASE_RELOAD)));
                }
                Command::Reload
            }
            other => {
                let v: String = other.chars().take(32).collect();
                return Err(err(ParseError::UnknownVerb(v)));
            }
        };
        Ok(Request { id, command })
    }

    /// The line to write on the FIFO, newline included.
    pub fn to_line(&self) -> String {
        let mut s = String::new();
        if let Some(id) = self.id {
            s.push_str(&format!("#{id} "));
        }
        s.push_str(&self.command.to_string());
        s.push('\n');
        s
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Message { target, text } => write!(f, "message {target} {text}"),
            Command::Release { ext } => write!(f, "release {ext}"),
            Command::Reload => f.write_str("reload"),
            Command::Hangup { target } => write!(f, "hangup {target}"),
            Command::Forward {
                ext,
                target,
                kind,
                until,
            } => {
                write!(
                    f,
                    "forward {ext} {} {}",
                    target.as_deref().unwrap_or("off"),
                    kind.name()
                )?;
                if let Some(u) = until {
                    write!(f, " until={u}")?;
                }
                Ok(())
            }
            Command::Dnd { ext, on, until } => {
                write!(f, "dnd {ext} {}", if *on { "on" } else { "off" })?;
                if let Some(u) = until {
                    write!(f, " until={u}")?;
                }
                Ok(())
            }
            Command::Dial { ext, target } => write!(f, "dial {ext} {target}"),
            Command::Why { number } => write!(f, "why {number}"),
            Command::RunState { name } => match name {
                Some(n) => write!(f, "runstate {n}"),
                None => f.write_str("runstate"),
            },
            Command::SpeedList => f.write_str("speed"),
            Command::Speed { code, target } => {
                write!(f, "speed {code} {}", target.as_deref().unwrap_or("off"))
            }
            Command::Trace { token, filter } => match filter {
                Some(x) => write!(f, "trace {token} {x}"),
                None => write!(f, "trace {token} off"),
            },
        }
    }
}

fn split_id(text: &str) -> Result<(Option<u64>, &str), ParseError> {
    let Some(rest) = text.strip_prefix('#') else {
        return Ok((None, text));
    };
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let id = rest[..end].parse::<u64>().map_err(|_| ParseError::BadId)?;
    Ok((Some(id), &rest[end..]))
}

/// The request id at the start of a (possibly broken or partial) line, if any.
pub fn peek_id(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"#")?;
    let digits: Vec<u8> = rest
        .iter()
        .take(20)
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_commands() {
        let r = Request::parse(b"#42 message 21 hello there\n").expect("ok");
        assert_eq!(r.id, Some(42));
        assert_eq!(
            r.command,
            Command::Message {
                target: "21".into(),
                text: "hello there".into()
            }
        );
        assert_eq!(r.to_line(), "#42 message 21 hello there\n");
        let r = Request::parse(b"release 21").expect("ok");
        assert_eq!(
            r,
            Request {
                id: None,
                command: Command::Release { ext: 21 }
            }
        );
        assert_eq!(
            Request::parse(b"RELOAD\r\n").expect("ok").command,
            Command::Reload
        );
        assert_eq!(
            Request::parse(b"#3 hangup 21").expect("ok").command,
            Command::Hangup {
                target: "21".into()
            }
        );
        assert!(Request::parse(b"hangup x").is_err());
        let all = [
            Command::Forward {
                ext: 21,
                target: Some("35".into()),
                kind: ForwardKind::Always,
                until: None,
            },
            Command::Forward {
                ext: 21,
                target: None,
                kind: ForwardKind::Busy,
                until: None,
            },
            Command::Forward {
                ext: 21,
                target: Some("36".into()),
                kind: ForwardKind::NoAnswer,
                until: Some(1_800_000_000),
            },
            Command::Dnd {
                ext: 21,
                on: true,
                until: Some(1_800_000_000),
            },
            Command::Dnd {
                ext: 21,
                on: false,
                until: None,
            },
            Command::Dial {
                ext: 21,
                target: "35".into(),
            },
            Command::Why {
                number: "21".into(),
            },
            Command::Speed {
                code: "*7".into(),
                target: Some("0123456".into()),
            },
            Command::Speed {
                code: "*7".into(),
                target: None,
            },
            Command::SpeedList,
            Command::Trace {
                token: 77,
                filter: Some(crate::trace::Filter::Ext(21)),
            },
            Command::Trace {
                token: 78,
                filter: crate::trace::Filter::parse("[::1]:5060"),
            },
            Command::Trace {
                token: 79,
                filter: None,
            },
        ];
        assert!(Request::parse(b"trace 1").is_err());
        assert!(Request::parse(b"trace x 21").is_err());
        assert!(Request::parse(b"trace 1 sip:21@h").is_err());
        for c in all {
            let r = Request {
                id: Some(5),
                command: c,
            };
            assert_eq!(Request::parse(r.to_line().as_bytes()), Ok(r));
        }
        assert_eq!(
            Request::parse(b"forward 21 35 --busy"),
            Err((None, ParseError::Usage(USAGE_FORWARD)))
        );
        assert!(Request::parse(b"dnd 21 maybe").is_err());
        assert!(Request::parse(b"dnd 21 on until=x").is_err());
        assert!(Request::parse(b"dial 21 sip:evil").is_err());
        assert!(Request::parse(b"hangup").is_err());
        assert!(Request::parse(b"speed *7").is_err());
        assert_eq!(
            Request::parse(b"speed").expect("ok").command,
            Command::SpeedList
        );
    }

    #[test]
    fn rejects_with_id() {
        assert_eq!(
            Request::parse(b"#7 frobnicate 1"),
            Err((Some(7), ParseError::UnknownVerb("frobnicate".into())))
        );
        assert_eq!(
            Request::parse(b"#8 message 21"),
            Err((Some(8), ParseError::Usage(USAGE_MESSAGE)))
        );
        assert_eq!(
            Request::parse(b"#9 release x"),
            Err((Some(9), ParseError::Usage(USAGE_RELEASE)))
        );
        assert_eq!(Request::parse(b"#x reload"), Err((None, ParseError::BadId)));
        assert_eq!(Request::parse(b"   "), Err((None, ParseError::Empty)));
        assert_eq!(
            Request::parse(b"#3 \xff\xfe"),
            Err((Some(3), ParseError::NotUtf8))
        );
        let mut long = b"#5 message 21 ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE));
        assert_eq!(Request::parse(&long), Err((Some(5), ParseError::TooLong)));
    }

    #[test]
    fn frames_start_with_a_newline_and_fit_one_atomic_write() {
        let r = Request {
            id: Some(7),
            command: Command::Reload,
        };
        assert_eq!(frame(&r.to_line()), b"\n#7 reload\n");
        const { assert!(MAX_FRAME <= 4096, "one atomic pipe write on Linux") };
        assert!(is_blank(b"") && is_blank(b"\r") && is_blank(b"  \t"));
        assert!(!is_blank(b"reload") && !is_blank(b"\x00"));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = Request::parse(&bytes);
        }

        #[test]
        fn message_round_trips(id in proptest::option::of(any::<u64>()), target in "[0-9]{2,3}|all",
                               text in "[^\\s\\n][^\\n]{0,100}[^\\s\\n]") {
            let r = Request { id, command: Command::Message { target, text } };
            prop_assert_eq!(Request::parse(r.to_line().as_bytes()), Ok(r));
        }
    }
}
