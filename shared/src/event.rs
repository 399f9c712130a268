//! Event records carried in the state block's ring, and their fixed-size slot form.
//!
//! The small enums name themselves with strum (`name()`, the same names their
//! serde form has: a test keeps the two alike) and read their stored numbers
//! back with strum's `FromRepr`.

use serde::{Deserialize, Serialize};
use std::fmt;
use strum::{EnumIter, EnumString, FromRepr, IntoStaticStr};

/// Bytes available for an event's strings in one ring slot.
pub const EVENT_DATA: usize = 728;

/// How a command on the FIFO ended.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    EnumIter,
    FromRepr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[repr(u16)]
pub enum ResultCode {
    /// Done.
    Ok = 0,
    /// The line could not be parsed (syntax, usage, too long, not UTF-8).
    BadSyntax = 1,
    /// Unknown verb.
    UnknownVerb = 2,
    /// The target (extension, group) does not exist.
    NotFound = 3,
    /// Understood but could not be carried out (offline target, delivery failed...).
    Failed = 4,
}

impl ResultCode {
    fn from_u16(v: u16) -> ResultCode {
        ResultCode::from_repr(v).unwrap_or(ResultCode::Failed)
    }

    /// Short lowercase name (`ok`, `bad-syntax`, ...).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What the event ring says of a text whose words are private (the daemon's
/// default, `[security] show_texts = no`): its length only.
pub fn hidden_text(text: &str) -> String {
    format!("({} characters, words not shown)", text.chars().count())
}

/// Why a registration ended.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    EnumIter,
    FromRepr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[repr(u16)]
pub enum Unregistration {
    /// The phone sent `Expires: 0`.
    #[serde(rename = "unregistered")]
    #[strum(serialize = "unregistered")]
    ByPhone = 0,
    /// It was not refreshed in time.
    Expired = 1,
    /// The operator released it.
    Released = 2,
    /// Its extension left the configuration.
    Removed = 3,
    /// A new registration from the same address took its line (the phone came
    /// back with another contact, as after a reboot).
    Replaced = 4,
}

impl Unregistration {
    fn from_u16(v: u16) -> Unregistration {
        Unregistration::from_repr(v).unwrap_or(Unregistration::Removed)
    }

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Where a call is (the same numbers as `stateblock::call_state`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    EnumIter,
    FromRepr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[repr(u16)]
pub enum CallPhase {
    /// The INVITE went on; nothing back yet.
    Dialing = 1,
    /// The callee rings.
    Ringing = 2,
    /// Answered.
    Answered = 3,
    /// Over.
    Ended = 4,
}

impl CallPhase {
    /// From the stored number (unknown numbers read as `Ended`).
    pub fn from_u16(v: u16) -> CallPhase {
        CallPhase::from_repr(v).unwrap_or(CallPhase::Ended)
    }

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// How a call ended. Serialized by its [`CallOutcome::name`] (call records).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    EnumIter,
    EnumString,
    FromRepr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[repr(u16)]
pub enum CallOutcome {
    /// Answered, then hung up by either side (or the operator).
    Completed = 0,
    /// The callee was busy (486): in a call, or on do not disturb.
    Busy = 1,
    /// Nobody answered within the configured rings (480).
    NoAnswer = 2,
    /// The callee declined (603).
    Rejected = 3,
    /// The caller hung up while it rang (487).
    Cancelled = 4,
    /// No such number (404).
    #[serde(rename = "unknown-number")]
    #[strum(serialize = "unknown-number")]
    Unknown = 5,
    /// Too few digits (484).
    #[serde(rename = "incomplete-number")]
    #[strum(serialize = "incomplete-number")]
    Incomplete = 6,
    /// The callee is not registered (480).
    Unavailable = 7,
    /// No answer from the callee's phone at all (408).
    TimedOut = 8,
    /// Any other failure (the SIP status says which).
    Failed = 9,
}

impl CallOutcome {
    /// From the stored number (unknown numbers read as `Failed`).
    pub fn from_u16(v: u16) -> CallOutcome {
        CallOutcome::from_repr(v).unwrap_or(CallOutcome::Failed)
    }

    /// The outcome called `name` ([`CallOutcome::name`]).
    pub fn from_name(name: &str) -> Option<CallOutcome> {
        name.parse().ok()
    }

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Where a click-to-dial call is, before it is connected.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    EnumIter,
    FromRepr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[repr(u16)]
pub enum DialStep {
    /// The first extension's phone is being called.
    Started = 1,
    /// The first extension's phone rings.
    ARinging = 2,
    /// The first extension answered; the number is being called.
    CallingB = 3,
    /// The number's phone rings.
    BRinging = 4,
}

impl DialStep {
    fn from_u16(v: u16) -> Option<DialStep> {
        DialStep::from_repr(v)
    }

    /// Short name: `started`, `a-ringing`, `calling-b`, `b-ringing`.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Where an upstream route's connection is (the same numbers as
/// `stateblock::RouteEntry::state`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    EnumIter,
    FromRepr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[repr(u8)]
pub enum RouteState {
    /// The first connection attempt is under way.
    Connecting = 1,
    /// Connected: calls and messages go through.
    Connected = 2,
    /// The connection was lost or an attempt failed; retrying with back-off.
    Reconnecting = 3,
    /// Several attempts in a row failed; still retrying, at the longest back-off.
    Down = 4,
}

impl RouteState {
    /// From the stored number (unknown numbers read as `Down`).
    pub fn from_u8(v: u8) -> RouteState {
        RouteState::from_repr(v).unwrap_or(RouteState::Down)
    }

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Something that happened in the switch. Its kind's name
/// ([`Event::kind_name`]) is the variant's name in kebab case unless it says
/// otherwise. Serialized (serde's default, externally tagged form), its fields
/// carry the names `pbxctl watch --json` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Event {
    /// A contact registered (or re-registered with a new contact).
    Registered {
        /// Extension.
        ext: u16,
        /// Contact URI.
        contact: String,
        /// The phone's User-Agent.
        user_agent: String,
    },
    /// A contact is gone.
    Unregistered {
        /// Extension.
        ext: u16,
        /// Contact URI.
        contact: String,
        /// Why.
        why: Unregistration,
    },
    /// A text message was handled (delivered or not). For a text sent by a
    /// control command, one per target extension carrying the command's request
    /// id: the command's receipts.
    Message {
        /// The request id of the control command that sent it, if one did.
        id: Option<u64>,
        /// Sender (`21`, `system`, `operator`).
        from: String,
        /// Target as addressed (`35`, `100`, `all`).
        to: String,
        /// SIP status of the outcome (200 delivered, 202 fanned out, 480 offline...).
        status: u16,
        /// The text.
        text: String,
    },
    /// A control command's text is on its way: whom it was sent to (the
    /// extensions registered now) and who is offline. Long lists come in several
    /// events. Each target's [`Event::Message`] with the same id follows when its
    /// outcome is known.
    Delivering {
        /// The command's request id.
        id: Option<u64>,
        /// Target as addressed (`35`, `100`, `all`).
        to: String,
        /// Extensions it was sent to.
        targets: Vec<u16>,
        /// Extensions of the target that were offline (not sent).
        offline: Vec<u16>,
    },
    /// How a click-to-dial command's call is getting on (its result comes when
    /// the call is connected or has failed).
    Dialing {
        /// The command's request id.
        id: Option<u64>,
        /// The call's number.
        call: u32,
        /// Where it is.
        step: DialStep,
    },
    /// One step of a `why` explanation, before its result (whose text is the
    /// conclusion): the steps in order, `step` counting from 0.
    WhyStep {
        /// The command's request id.
        id: Option<u64>,
        /// Its place in the explanation.
        step: u16,
        /// What the switch follows at this step (`21 forwards every call to 35`).
        text: String,
    },
    /// One speed dial in force, answering a `speed` command without arguments
    /// (one each, in code order, before its result).
    SpeedDial {
        /// The command's request id.
        id: Option<u64>,
        /// The short code.
        code: String,
        /// What it dials now (`None`: the configuration's dial is cleared at
        /// run time).
        target: Option<String>,
        /// What the configuration's `[speed]` section says for the code, if
        /// anything (a run-time setting takes precedence over it).
        config: Option<String>,
    },
    /// The result of a control line.
    #[strum(serialize = "result")]
    CommandResult {
        /// The line's request id.
        id: Option<u64>,
        /// Outcome.
        code: ResultCode,
        /// Human-readable detail.
        text: String,
    },
    /// A failed authentication (one per failure).
    AuthFailed {
        /// The user name tried.
        user: String,
        /// Source address:port.
        source: String,
    },
    /// Something the operator should know about.
    Warning {
        /// What.
        text: String,
    },
    /// Informational: start, reload, stop.
    Notice {
        /// What.
        text: String,
    },
    /// A call changed state (and every ring while it rings).
    #[strum(serialize = "call")]
    CallState {
        /// Switch-local call number (as in the call table).
        call: u32,
        /// Caller.
        from: String,
        /// Callee as dialled.
        to: String,
        /// New state.
        phase: CallPhase,
        /// Rings so far.
        rings: u8,
    },
    /// A call ended: its record.
    CallRecord {
        /// Switch-local call number.
        call: u32,
        /// Caller.
        from: String,
        /// Callee as dialled.
        to: String,
        /// Start, ms since the epoch.
        start_ms: u64,
        /// Answer, ms since the epoch (0: never answered).
        answer_ms: u64,
        /// End, ms since the epoch.
        end_ms: u64,
        /// How it ended.
        outcome: CallOutcome,
        /// The SIP status behind the outcome (200 for completed calls).
        status: u16,
    },
    /// An upstream route's connection changed state.
    Upstream {
        /// The routes it serves (`default`, `emergency+sms`...).
        route: String,
        /// The peer as configured (host:port).
        addr: String,
        /// New state.
        state: RouteState,
        /// Why (the error, or the address connected to).
        detail: String,
    },
}

/// One event read back from the ring with its sequence number and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Ring sequence number (0 for the first event ever written).
    pub seq: u64,
    /// Wall-clock time in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The event.
    pub event: Event,
}

/// A ring slot as laid out in the state block (768 bytes, `#[repr(C)]`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EventSlot {
    /// `seq + 1` once complete, `u64::MAX` while being written, 0 when empty.
    pub stamp: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Request id (valid when `flags & FLAG_ID`).
    pub id: u64,
    /// Event kind.
    pub kind: u16,
    /// Flags.
    pub flags: u16,
    /// Status or code.
    pub status: u16,
    /// Extension number.
    pub ext: u16,
    /// Byte lengths of up to four strings packed in `data`.
    pub lens: [u16; 4],
    /// The strings, back to back.
    pub data: [u8; EVENT_DATA],
}

/// `EventSlot::flags` bit: `id` is meaningful.
pub const FLAG_ID: u16 = 1;

const K_REGISTERED: u16 = 1;
const K_UNREGISTERED: u16 = 2;
const K_MESSAGE: u16 = 3;
const K_COMMAND: u16 = 4;
const K_AUTH_FAILED: u16 = 5;
const K_WARNING: u16 = 6;
const K_NOTICE: u16 = 7;
const K_CALL_STATE: u16 = 8;
const K_CALL_RECORD: u16 = 9;
const K_UPSTREAM: u16 = 10;
const K_DELIVERING: u16 = 11;
const K_DIALING: u16 = 12;
const K_WHY_STEP: u16 = 13;
const K_SPEED_DIAL: u16 = 14;

/// `EventSlot::flags` bit of a speed dial: it has a target.
const FLAG_TARGET: u16 = 2;
/// `EventSlot::flags` bit of a speed dial: the configuration has the code.
const FLAG_CONFIG: u16 = 4;

impl EventSlot {
    /// An empty slot.
    pub const EMPTY: EventSlot = EventSlot {
        stamp: 0,
        time_ms: 0,
        id: 0,
        kind: 0,
        flags: 0,
        status: 0,
        ext: 0,
        lens: [0; 4],
        data: [0; EVENT_DATA],
    };

    /// Encode `event`; strings that do not fit are cut at a character boundary.
    pub fn encode(time_ms: u64, event: &Event) -> EventSlot {
        let mut s = EventSlot {
            time_ms,
            ..EventSlot::EMPTY
        };
        let times: String;
        let lists: [String; 2];
        let strs: Vec<&str> = match event {
            Event::Registered {
                ext,
                contact,
                user_agent,
            } => {
                s.kind = K_REGISTERED;
                s.ext = *ext;
                vec![contact, user_agent]
            }
            Event::Unregistered { ext, contact, why } => {
                s.kind = K_UNREGISTERED;
                s.ext = *ext;
                s.status = *why as u16;
                vec![contact]
            }
            Event::Message {
                id,
                from,
                to,
                status,
                text,
            } => {
                s.kind = K_MESSAGE;
                s.status = *status;
                if let Some(id) = id {
                    s.id = *id;
                    s.flags |= FLAG_ID;
                }
                vec![from, to, text]
            }
            Event::WhyStep { id, step, text } => {
                s.kind = K_WHY_STEP;
                if let Some(id) = id {
                    s.id = *id;
                    s.flags |= FLAG_ID;
                }
                s.status = *step;
                vec![text]
            }
            Event::SpeedDial {
                id,
                code,
                target,
                config,
            } => {
                s.kind = K_SPEED_DIAL;
                if let Some(id) = id {
                    s.id = *id;
                    s.flags |= FLAG_ID;
                }
                if target.is_some() {
                    s.flags |= FLAG_TARGET;
                }
                if config.is_some() {
                    s.flags |= FLAG_CONFIG;
                }
                vec![
                    code,
                    target.as_deref().unwrap_or(""),
                    config.as_deref().unwrap_or(""),
                ]
            }
            Event::Dialing { id, call, step } => {
                s.kind = K_DIALING;
                if let Some(id) = id {
                    s.id = *id;
                    s.flags |= FLAG_ID;
                }
                s.status = *step as u16;
                times = call.to_string();
                vec![&times]
            }
            Event::Delivering {
                id,
                to,
                targets,
                offline,
            } => {
                s.kind = K_DELIVERING;
                if let Some(id) = id {
                    s.id = *id;
                    s.flags |= FLAG_ID;
                }
                lists = [join_exts(targets), join_exts(offline)];
                vec![to, &lists[0], &lists[1]]
            }
            Event::CommandResult { id, code, text } => {
                s.kind = K_COMMAND;
                if let Some(id) = id {
                    s.id = *id;
                    s.flags |= FLAG_ID;
                }
                s.status = *code as u16;
                vec![text]
            }
            Event::AuthFailed { user, source } => {
                s.kind = K_AUTH_FAILED;
                vec![user, source]
            }
            Event::Warning { text } => {
                s.kind = K_WARNING;
                vec![text]
            }
            Event::Notice { text } => {
                s.kind = K_NOTICE;
                vec![text]
            }
            Event::CallState {
                call,
                from,
                to,
                phase,
                rings,
            } => {
                s.kind = K_CALL_STATE;
                s.id = u64::from(*call);
                s.status = *phase as u16;
                s.ext = u16::from(*rings);
                vec![from, to]
            }
            Event::CallRecord {
                call,
                from,
                to,
                start_ms,
                answer_ms,
                end_ms,
                outcome,
                status,
            } => {
                s.kind = K_CALL_RECORD;
                s.id = u64::from(*call);
                s.status = *status;
                s.ext = *outcome as u16;
                // Times beyond the slot's own: decimal text in the third string.
                times = format!("{start_ms} {answer_ms} {end_ms}");
                vec![from, to, &times]
            }
            Event::Upstream {
                route,
                addr,
                state,
                detail,
            } => {
                s.kind = K_UPSTREAM;
                s.status = u16::from(*state as u8);
                vec![route, addr, detail]
            }
        };
        // Short fields first keep their room; the last string takes what is left.
        let mut at = 0usize;
        for (i, st) in strs.iter().enumerate() {
            let room = EVENT_DATA - at;
            let cut = floor_char_boundary(st, room);
            s.data[at..at + cut].copy_from_slice(&st.as_bytes()[..cut]);
            s.lens[i] = cut as u16;
            at += cut;
        }
        s
    }

    /// Decode a slot; `None` for an empty or unknown slot.
    pub fn decode(&self) -> Option<Event> {
        let mut strs: [String; 4] = Default::default();
        let mut at = 0usize;
        for (i, len) in self.lens.iter().enumerate() {
            let len = usize::from(*len);
            let end = at.checked_add(len).filter(|e| *e <= EVENT_DATA)?;
            strs[i] = String::from_utf8_lossy(&self.data[at..end]).into_owned();
            at = end;
        }
        let [a, b, c, _] = strs;
        Some(match self.kind {
            K_REGISTERED => Event::Registered {
                ext: self.ext,
                contact: a,
                user_agent: b,
            },
            K_UNREGISTERED => Event::Unregistered {
                ext: self.ext,
                contact: a,
                why: Unregistration::from_u16(self.status),
            },
            K_MESSAGE => Event::Message {
                id: (self.flags & FLAG_ID != 0).then_some(self.id),
                from: a,
                to: b,
                status: self.status,
                text: c,
            },
            K_WHY_STEP => Event::WhyStep {
                id: (self.flags & FLAG_ID != 0).then_some(self.id),
                step: self.status,
                text: a,
            },
            K_SPEED_DIAL => Event::SpeedDial {
                id: (self.flags & FLAG_ID != 0).then_some(self.id),
                code: a,
                target: (self.flags & FLAG_TARGET != 0).then_some(b),
                config: (self.flags & FLAG_CONFIG != 0).then_some(c),
            },
            K_DIALING => Event::Dialing {
                id: (self.flags & FLAG_ID != 0).then_some(self.id),
                call: a.parse().ok()?,
                step: DialStep::from_u16(self.status)?,
            },
            K_DELIVERING => Event::Delivering {
                id: (self.flags & FLAG_ID != 0).then_some(self.id),
                to: a,
                targets: split_exts(&b),
                offline: split_exts(&c),
            },
            K_COMMAND => Event::CommandResult {
                id: (self.flags & FLAG_ID != 0).then_some(self.id),
                code: ResultCode::from_u16(self.status),
                text: a,
            },
            K_AUTH_FAILED => Event::AuthFailed { user: a, source: b },
            K_WARNING => Event::Warning { text: a },
            K_NOTICE => Event::Notice { text: a },
            K_CALL_STATE => Event::CallState {
                call: u32::try_from(self.id).ok()?,
                from: a,
                to: b,
                phase: CallPhase::from_u16(self.status),
                rings: u8::try_from(self.ext).unwrap_or(u8::MAX),
            },
            K_CALL_RECORD => {
                let mut t = c.split(' ').map(|v| v.parse::<u64>().ok());
                let (Some(Some(start_ms)), Some(Some(answer_ms)), Some(Some(end_ms))) =
                    (t.next(), t.next(), t.next())
                else {
                    return None;
                };
                Event::CallRecord {
                    call: u32::try_from(self.id).ok()?,
                    from: a,
                    to: b,
                    start_ms,
                    answer_ms,
                    end_ms,
                    outcome: CallOutcome::from_u16(self.ext),
                    status: self.status,
                }
            }
            K_UPSTREAM => Event::Upstream {
                route: a,
                addr: b,
                state: RouteState::from_u8(u8::try_from(self.status).unwrap_or(0)),
                detail: c,
            },
            _ => return None,
        })
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Extensions as a comma-separated list (the form [`Event::Delivering`] keeps
/// them in a slot).
fn join_exts(exts: &[u16]) -> String {
    exts.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The extensions of a [`join_exts`] list (anything else is skipped).
fn split_exts(s: &str) -> Vec<u16> {
    s.split(',').filter_map(|e| e.trim().parse().ok()).collect()
}

/// Most extensions one [`Event::Delivering`] lists in its two lists together, so
/// that they fit a ring slot (at most 4 bytes each).
pub const DELIVERING_CHUNK: usize = 150;

impl Event {
    /// Short kind name used by `pbxctl watch --json` and the console.
    pub fn kind_name(&self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Registered {
                ext,
                contact,
                user_agent,
            } => {
                write!(f, "{ext} registered {contact}")?;
                if !user_agent.is_empty() {
                    write!(f, " ({user_agent})")?;
                }
                Ok(())
            }
            Event::Unregistered { ext, contact, why } => {
                write!(f, "{ext} {} {contact}", why.name())
            }
            Event::Message {
                id,
                from,
                to,
                status,
                text,
            } => {
                if let Some(id) = id {
                    write!(f, "#{id} ")?;
                }
                write!(f, "message {from} -> {to} [{status}]: {text}")
            }
            Event::Dialing { id, call, step } => {
                if let Some(id) = id {
                    write!(f, "#{id} ")?;
                }
                write!(f, "dial call {call}: {}", step.name())
            }
            Event::WhyStep { id, step, text } => {
                if let Some(id) = id {
                    write!(f, "#{id} ")?;
                }
                write!(f, "why step {step}: {text}")
            }
            Event::SpeedDial {
                id,
                code,
                target,
                config,
            } => {
                if let Some(id) = id {
                    write!(f, "#{id} ")?;
                }
                match target {
                    Some(t) => write!(f, "speed dial {code} -> {t}")?,
                    None => write!(f, "speed dial {code} cleared")?,
                }
                match config {
                    Some(c) if target.as_deref() != Some(c.as_str()) => {
                        write!(f, " (configured: {c})")
                    }
                    _ => Ok(()),
                }
            }
            Event::Delivering {
                id,
                to,
                targets,
                offline,
            } => {
                if let Some(id) = id {
                    write!(f, "#{id} ")?;
                }
                write!(
                    f,
                    "message to {to}: sent to {} registered now, {} offline",
                    targets.len(),
                    offline.len()
                )
            }
            Event::CommandResult { id, code, text } => {
                if let Some(id) = id {
                    write!(f, "#{id} ")?;
                }
                write!(f, "{}: {text}", code.name())
            }
            Event::AuthFailed { user, source } => {
                write!(f, "authentication failed for {user} from {source}")
            }
            Event::Warning { text } => write!(f, "warning: {text}"),
            Event::Notice { text } => f.write_str(text),
            Event::CallState {
                call,
                from,
                to,
                phase,
                rings,
            } => {
                write!(f, "call {call} {from} -> {to} {}", phase.name())?;
                if *phase == CallPhase::Ringing {
                    write!(f, " (ring {rings})")?;
                }
                Ok(())
            }
            Event::CallRecord {
                call,
                from,
                to,
                start_ms,
                answer_ms,
                end_ms,
                outcome,
                status,
            } => {
                let talk = if *answer_ms > 0 {
                    end_ms.saturating_sub(*answer_ms) / 1000
                } else {
                    0
                };
                let total = end_ms.saturating_sub(*start_ms) / 1000;
                write!(
                    f,
                    "call {call} {from} -> {to} ended: {} [{status}], {total}s, talked {talk}s",
                    outcome.name()
                )
            }
            Event::Upstream {
                route,
                addr,
                state,
                detail,
            } => {
                write!(f, "upstream {route} ({addr}) {}", state.name())?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name `name()` gives is the one serde writes (JSON, call records),
    /// and reads back.
    fn names_agree<T>(all: impl Iterator<Item = T>, name: fn(&T) -> &'static str) -> usize
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
    {
        let mut n = 0;
        for v in all {
            let json = serde_json::to_value(&v).expect("serializes");
            assert_eq!(json, serde_json::Value::from(name(&v)), "{v:?}");
            assert_eq!(serde_json::from_value::<T>(json).ok().as_ref(), Some(&v));
            n += 1;
        }
        n
    }

    #[test]
    fn strum_names_are_serde_names() {
        use strum::IntoEnumIterator;
        assert_eq!(names_agree(ResultCode::iter(), |v| v.name()), 5);
        assert_eq!(names_agree(Unregistration::iter(), |v| v.name()), 5);
        assert_eq!(names_agree(CallPhase::iter(), |v| v.name()), 4);
        assert_eq!(names_agree(CallOutcome::iter(), |v| v.name()), 10);
        assert_eq!(names_agree(DialStep::iter(), |v| v.name()), 4);
        assert_eq!(names_agree(RouteState::iter(), |v| v.name()), 4);
        assert_eq!(Unregistration::ByPhone.name(), "unregistered");
        assert_eq!(DialStep::ARinging.name(), "a-ringing");
        assert_eq!(CallOutcome::Incomplete.name(), "incomplete-number");
        assert_eq!(
            CallOutcome::from_name("no-answer"),
            Some(CallOutcome::NoAnswer)
        );
        assert_eq!(CallOutcome::from_name("nothing"), None);
        for o in CallOutcome::iter() {
            assert_eq!(CallOutcome::from_u16(o as u16), o);
        }
        assert_eq!(CallOutcome::from_u16(77), CallOutcome::Failed);
        assert_eq!(CallPhase::from_u16(0), CallPhase::Ended);
        assert_eq!(RouteState::from_u8(2), RouteState::Connected);
        assert_eq!(RouteState::from_u8(9), RouteState::Down);
    }

    #[test]
    fn kind_names() {
        let kinds = [
            (Event::Warning { text: "w".into() }, "warning"),
            (
                Event::CommandResult {
                    id: None,
                    code: ResultCode::Ok,
                    text: String::new(),
                },
                "result",
            ),
            (
                Event::CallState {
                    call: 1,
                    from: "21".into(),
                    to: "22".into(),
                    phase: CallPhase::Dialing,
                    rings: 0,
                },
                "call",
            ),
            (
                Event::AuthFailed {
                    user: "21".into(),
                    source: "x".into(),
                },
                "auth-failed",
            ),
            (
                Event::WhyStep {
                    id: None,
                    step: 0,
                    text: String::new(),
                },
                "why-step",
            ),
        ];
        for (e, name) in kinds {
            assert_eq!(e.kind_name(), name);
        }
    }

    #[test]
    fn slot_is_768_bytes() {
        assert_eq!(std::mem::size_of::<EventSlot>(), 768);
        assert_eq!(std::mem::align_of::<EventSlot>(), 8);
        assert_eq!(std::mem::offset_of!(EventSlot, data), 40);
    }

    #[test]
    fn round_trip_every_kind() {
        let all = vec![
            Event::Registered {
                ext: 21,
                contact: "sip:21@1.2.3.4:5060".into(),
                user_agent: "Yealink".into(),
            },
            Event::Unregistered {
                ext: 21,
                contact: "sip:21@x".into(),
                why: Unregistration::Expired,
            },
            Event::Message {
                id: None,
                from: "21".into(),
                to: "all".into(),
                status: 202,
                text: "héllo ✓".into(),
            },
            Event::Message {
                id: Some(9),
                from: "operator".into(),
                to: "21".into(),
                status: 408,
                text: "drill".into(),
            },
            Event::Delivering {
                id: Some(9),
                to: "all".into(),
                targets: vec![21, 22, 105],
                offline: vec![],
            },
            Event::Delivering {
                id: None,
                to: "100".into(),
                targets: vec![],
                offline: vec![23],
            },
            Event::Dialing {
                id: Some(4),
                call: 1_000_007,
                step: DialStep::BRinging,
            },
            Event::WhyStep {
                id: Some(5),
                step: 2,
                text: "21 forwards every call to 35".into(),
            },
            Event::SpeedDial {
                id: Some(6),
                code: "*7".into(),
                target: Some("0123456".into()),
                config: None,
            },
            Event::SpeedDial {
                id: None,
                code: "#1".into(),
                target: None,
                config: Some("21".into()),
            },
            Event::SpeedDial {
                id: Some(6),
                code: "*8".into(),
                target: Some("".into()),
                config: Some("".into()),
            },
            Event::CommandResult {
                id: Some(42),
                code: ResultCode::NotFound,
                text: "no such extension".into(),
            },
            Event::CommandResult {
                id: None,
                code: ResultCode::Ok,
                text: "".into(),
            },
            Event::AuthFailed {
                user: "21".into(),
                source: "127.0.0.1:5099".into(),
            },
            Event::Warning { text: "w".into() },
            Event::Notice {
                text: "started".into(),
            },
            Event::CallState {
                call: 7,
                from: "21".into(),
                to: "35".into(),
                phase: CallPhase::Ringing,
                rings: 3,
            },
            Event::CallRecord {
                call: 7,
                from: "21".into(),
                to: "35".into(),
                start_ms: 1_700_000_000_000,
                answer_ms: 0,
                end_ms: 1_700_000_030_000,
                outcome: CallOutcome::NoAnswer,
                status: 480,
            },
            Event::Upstream {
                route: "default+sms".into(),
                addr: "127.0.0.1:5070".into(),
                state: RouteState::Reconnecting,
                detail: "connection refused".into(),
            },
        ];
        for e in all {
            assert_eq!(EventSlot::encode(7, &e).decode(), Some(e));
        }
    }

    #[test]
    fn long_text_is_cut_on_char_boundary() {
        let text = "✓".repeat(400);
        let e = Event::Message {
            id: None,
            from: "21".into(),
            to: "35".into(),
            status: 200,
            text,
        };
        let Some(Event::Message { text, .. }) = EventSlot::encode(0, &e).decode() else {
            panic!("decode");
        };
        assert!(text.len() <= EVENT_DATA - 4);
        assert!(text.chars().all(|c| c == '✓'));
        let max = "✓".repeat(160);
        let e = Event::Message {
            id: None,
            from: "21".into(),
            to: "35".into(),
            status: 200,
            text: max,
        };
        assert_eq!(EventSlot::encode(0, &e).decode(), Some(e));
    }

    #[test]
    fn corrupt_slot_decodes_to_none() {
        let mut s = EventSlot::EMPTY;
        s.kind = K_MESSAGE;
        s.lens = [700, 700, 0, 0];
        assert_eq!(s.decode(), None);
        s.lens = [0; 4];
        s.kind = 999;
        assert_eq!(s.decode(), None);
    }
}
