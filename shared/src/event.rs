//! Event records carried in the state block's ring, and their fixed-size slot form.
//!
//! Nothing here is encoded by hand: an [`Event`] goes into its ring slot as
//! postcard's encoding of its serde form (cut to fit first, [`Event::fitted`]),
//! and into `pbxctl watch --json` as its serde form. The small enums name
//! themselves with strum (`name()`, the same names their serde form has: a test
//! keeps the two alike) and read the numbers the state block stores back with
//! strum's `FromRepr`.

use serde::{Deserialize, Serialize};
use std::fmt;
use strum::{EnumIter, EnumString, FromRepr, IntoStaticStr};

/// Bytes available for an encoded event in one ring slot.
pub const EVENT_DATA: usize = 750;

/// How a command on the FIFO ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumIter,
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
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumIter,
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
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumIter,
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
/// carry the names `pbxctl watch --json` shows; in a ring slot, postcard writes
/// the variant's index and the fields in order ([`EventSlot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr)]
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
///
/// The event is stored in postcard's encoding of its serde form (the variant's
/// index, then its fields in order), so the order of [`Event`]'s variants and
/// fields is part of the layout: changing it means a new
/// `stateblock::ABI_VERSION` (`fixed_bytes_of_the_encoding` pins it). The
/// slot's bound is kept by [`EventSlot::encode`] cutting the event's texts
/// before encoding, not by the codec.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EventSlot {
    /// `seq + 1` once complete, `u64::MAX` while being written, 0 when empty.
    pub stamp: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Bytes of `data` the encoded event takes (0: no event).
    pub len: u16,
    /// The event, postcard-encoded.
    pub data: [u8; EVENT_DATA],
}

impl EventSlot {
    /// An empty slot.
    pub const EMPTY: EventSlot = EventSlot {
        stamp: 0,
        time_ms: 0,
        len: 0,
        data: [0; EVENT_DATA],
    };

    /// Encode `event`; texts that do not fit are cut at a character boundary
    /// ([`Event::fitted`]).
    pub fn encode(time_ms: u64, event: &Event) -> EventSlot {
        let mut s = EventSlot {
            time_ms,
            ..EventSlot::EMPTY
        };
        let used = match postcard::to_slice(event, &mut s.data) {
            Ok(used) => used.len(),
            Err(_) => {
                postcard::to_slice(&event.fitted(EVENT_DATA), &mut s.data).map_or(0, |u| u.len())
            }
        };
        s.len = u16::try_from(used).unwrap_or(0);
        s
    }

    /// Decode a slot; `None` for an empty slot or one that does not hold exactly
    /// one event.
    pub fn decode(&self) -> Option<Event> {
        let data = self.data.get(..usize::from(self.len))?;
        match postcard::take_from_bytes::<Event>(data) {
            Ok((event, [])) => Some(event),
            _ => None,
        }
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

/// Most extensions one [`Event::Delivering`] lists in its two lists together, so
/// that they fit a ring slot (at most 3 bytes each).
pub const DELIVERING_CHUNK: usize = 150;

impl Event {
    /// Short kind name used by `pbxctl watch --json` and the console.
    pub fn kind_name(&self) -> &'static str {
        self.into()
    }

    /// The event's texts, in field order (what [`Event::fitted`] may cut).
    fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            Event::Registered {
                contact,
                user_agent,
                ..
            } => vec![contact, user_agent],
            Event::Unregistered { contact, .. } => vec![contact],
            Event::Message { from, to, text, .. } => vec![from, to, text],
            Event::Delivering { to, .. } => vec![to],
            Event::Dialing { .. } => vec![],
            Event::WhyStep { text, .. }
            | Event::CommandResult { text, .. }
            | Event::Warning { text }
            | Event::Notice { text } => vec![text],
            Event::SpeedDial {
                code,
                target,
                config,
                ..
            } => std::iter::once(code)
                .chain(target.as_mut())
                .chain(config.as_mut())
                .collect(),
            Event::AuthFailed { user, source } => vec![user, source],
            Event::CallState { from, to, .. } | Event::CallRecord { from, to, .. } => {
                vec![from, to]
            }
            Event::Upstream {
                route,
                addr,
                detail,
                ..
            } => vec![route, addr, detail],
        }
    }

    /// The event cut to encode in at most `room` bytes: short fields first keep
    /// their room; each text, in field order, is cut (at a character boundary)
    /// to what the ones before it left. A [`Event::Delivering`] keeps at most
    /// [`DELIVERING_CHUNK`] extensions.
    pub fn fitted(&self, room: usize) -> Event {
        let mut e = self.clone();
        if let Event::Delivering {
            targets, offline, ..
        } = &mut e
        {
            targets.truncate(DELIVERING_CHUNK);
            offline.truncate(DELIVERING_CHUNK - targets.len());
        }
        let texts: Vec<String> = e.texts_mut().into_iter().map(std::mem::take).collect();
        // The event with its texts empty: each text's length already counts one byte.
        let bare = postcard::experimental::serialized_size(&e).unwrap_or(usize::MAX);
        let mut left = room.saturating_sub(bare);
        for (slot, mut text) in e.texts_mut().into_iter().zip(texts) {
            let mut cut = floor_char_boundary(&text, left);
            // A length of 128 or more takes more than the one byte counted.
            while cut + length_bytes(cut) - 1 > left {
                cut = floor_char_boundary(&text, cut - 1);
            }
            left -= cut + length_bytes(cut) - 1;
            text.truncate(cut);
            *slot = text;
        }
        e
    }
}

/// Bytes postcard takes for a length of `n` (a varint of 7 bits a byte).
fn length_bytes(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    bits.div_ceil(7).max(1) as usize
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
    use proptest::prelude::*;

    /// [`every_kind`] encoded, in hex.
    const GOLDEN: [&str; 19] = [
        "0015137369703a323140312e322e332e343a35303630075965616c696e6b",
        "0115087369703a3231407801",
        "020002323103616c6cca010a68c3a96c6c6f20e29c93",
        "020109086f70657261746f720232319803056472696c6c",
        "03010903616c6c0315166900",
        "030003313030000117",
        "040104c7843d03",
        "050105021c323120666f7277617264732065766572792063616c6c20746f203335",
        "060106022a3701073031323334353600",
        "06000223310001023231",
        "060106022a3801000100",
        "07012a03116e6f207375636820657874656e73696f6e",
        "07000000",
        "080232310e3132372e302e302e313a35303939",
        "090177",
        "0a0773746172746564",
        "0b070232310233350103",
        "0c0702323102333580d095ffbc3100b0ba97ffbc3102e003",
        "0d0b64656661756c742b736d730e3132372e302e302e313a353037300212636f6e6e656374696f6e2072656675736564",
    ];

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
        assert_eq!(std::mem::offset_of!(EventSlot, len), 16);
        assert_eq!(std::mem::offset_of!(EventSlot, data), 18);
    }

    /// One event of every kind (some twice), every text filled.
    fn every_kind() -> Vec<Event> {
        vec![
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
        ]
    }

    #[test]
    fn round_trip_every_kind() {
        for e in every_kind() {
            assert_eq!(EventSlot::encode(7, &e).decode(), Some(e));
        }
    }

    /// The encoding is the layout: these bytes change only with a new
    /// `stateblock::ABI_VERSION` (reordered variants or fields, other types).
    #[test]
    fn fixed_bytes_of_the_encoding() {
        let hex = |e: &Event| {
            let s = EventSlot::encode(0, e);
            s.data[..usize::from(s.len)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let got: Vec<String> = every_kind().iter().map(hex).collect();
        assert_eq!(got, GOLDEN);
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
        let e = Event::Warning { text: "w".into() };
        let good = EventSlot::encode(1, &e);
        assert_eq!(good.decode(), Some(e));
        // Longer than its data, shorter than its event, or with bytes left over.
        for len in [
            EVENT_DATA as u16 + 1,
            u16::MAX,
            good.len - 1,
            good.len + 1,
            0,
        ] {
            let s = EventSlot { len, ..good };
            assert_eq!(s.decode(), None, "len {len}");
        }
        // An unknown kind (variant index), and text that is not UTF-8.
        let mut s = good;
        s.data[0] = 99;
        assert_eq!(s.decode(), None);
        let mut s = good;
        s.data[2] = 0xff;
        assert_eq!(s.decode(), None);
        assert_eq!(EventSlot::EMPTY.decode(), None);
    }

    #[test]
    fn fitted_cuts_texts_in_field_order() {
        let e = Event::Upstream {
            route: "r".repeat(300),
            addr: "a".repeat(300),
            state: RouteState::Down,
            detail: "d".repeat(300),
        };
        let Some(Event::Upstream {
            route,
            addr,
            detail,
            ..
        }) = EventSlot::encode(0, &e).decode()
        else {
            panic!("decode");
        };
        assert_eq!((route.len(), addr.len()), (300, 300));
        assert!(!detail.is_empty() && detail.len() < 150, "{}", detail.len());
        let lists = Event::Delivering {
            id: Some(u64::MAX),
            to: "all".into(),
            targets: (20_000..20_300).collect(),
            offline: vec![20_000; 100],
        };
        let Some(Event::Delivering {
            targets, offline, ..
        }) = EventSlot::encode(0, &lists).decode()
        else {
            panic!("decode");
        };
        assert_eq!((targets.len(), offline.len()), (DELIVERING_CHUNK, 0));
        assert!(postcard::experimental::serialized_size(&lists.fitted(0)).is_ok());
    }

    #[test]
    fn fitted_counts_the_bytes_of_each_length() {
        for (n, bytes) in [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3)] {
            assert_eq!(length_bytes(n), bytes, "{n}");
            let text = "x".repeat(n);
            assert_eq!(
                postcard::experimental::serialized_size(&text).ok(),
                Some(n + bytes)
            );
        }
        let e = Event::Notice {
            text: "é".repeat(20_000),
        };
        for room in [
            0, 1, 2, 3, 129, 130, 131, 750, 16_386, 16_387, 16_388, 40_000,
        ] {
            let cut = e.fitted(room);
            let size = postcard::experimental::serialized_size(&cut).unwrap_or(usize::MAX);
            assert!(size <= room.max(2), "room {room}: {size}");
            assert!(size + 3 >= room.min(40_003), "room {room}: only {size}");
        }
    }

    /// Whether `cut` is `whole` with some of its texts shortened (JSON forms).
    fn is_cut_of(cut: &serde_json::Value, whole: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (cut, whole) {
            (Value::String(c), Value::String(w)) => w.starts_with(c.as_str()),
            (Value::Object(c), Value::Object(w)) => {
                c.len() == w.len()
                    && c.iter()
                        .all(|(k, v)| w.get(k).is_some_and(|wv| is_cut_of(v, wv)))
            }
            (Value::Array(c), Value::Array(w)) => {
                c.len() == w.len() && c.iter().zip(w).all(|(c, w)| is_cut_of(c, w))
            }
            (c, w) => c == w,
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,12}", "\\PC{0,400}"]
    }

    fn id() -> impl Strategy<Value = Option<u64>> {
        proptest::option::of(any::<u64>())
    }

    fn one_of<T: Clone + fmt::Debug + 'static>(
        all: impl Iterator<Item = T>,
    ) -> impl Strategy<Value = T> {
        proptest::sample::select(all.collect::<Vec<T>>())
    }

    /// Events of every kind with texts up to 1,600 bytes each.
    fn any_event() -> impl Strategy<Value = Event> {
        use proptest::collection::vec;
        use strum::IntoEnumIterator;
        prop_oneof![
            (any::<u16>(), text(), text()).prop_map(|(ext, contact, user_agent)| {
                Event::Registered {
                    ext,
                    contact,
                    user_agent,
                }
            }),
            (any::<u16>(), text(), one_of(Unregistration::iter()))
                .prop_map(|(ext, contact, why)| Event::Unregistered { ext, contact, why }),
            (id(), text(), text(), any::<u16>(), text()).prop_map(
                |(id, from, to, status, text)| Event::Message {
                    id,
                    from,
                    to,
                    status,
                    text,
                }
            ),
            (
                id(),
                text(),
                vec(any::<u16>(), 0..100),
                vec(any::<u16>(), 0..50)
            )
                .prop_map(|(id, to, targets, offline)| Event::Delivering {
                    id,
                    to,
                    targets,
                    offline,
                }),
            (id(), any::<u32>(), one_of(DialStep::iter()))
                .prop_map(|(id, call, step)| Event::Dialing { id, call, step }),
            (id(), any::<u16>(), text()).prop_map(|(id, step, text)| Event::WhyStep {
                id,
                step,
                text
            }),
            (
                id(),
                text(),
                proptest::option::of(text()),
                proptest::option::of(text())
            )
                .prop_map(|(id, code, target, config)| Event::SpeedDial {
                    id,
                    code,
                    target,
                    config,
                }),
            (id(), one_of(ResultCode::iter()), text())
                .prop_map(|(id, code, text)| Event::CommandResult { id, code, text }),
            (text(), text()).prop_map(|(user, source)| Event::AuthFailed { user, source }),
            text().prop_map(|text| Event::Warning { text }),
            text().prop_map(|text| Event::Notice { text }),
            (
                any::<u32>(),
                text(),
                text(),
                one_of(CallPhase::iter()),
                any::<u8>()
            )
                .prop_map(|(call, from, to, phase, rings)| Event::CallState {
                    call,
                    from,
                    to,
                    phase,
                    rings,
                }),
            (
                any::<u32>(),
                text(),
                text(),
                any::<[u64; 3]>(),
                one_of(CallOutcome::iter()),
                any::<u16>()
            )
                .prop_map(
                    |(call, from, to, [start_ms, answer_ms, end_ms], outcome, status)| {
                        Event::CallRecord {
                            call,
                            from,
                            to,
                            start_ms,
                            answer_ms,
                            end_ms,
                            outcome,
                            status,
                        }
                    }
                ),
            (text(), text(), one_of(RouteState::iter()), text()).prop_map(
                |(route, addr, state, detail)| Event::Upstream {
                    route,
                    addr,
                    state,
                    detail,
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every event goes into a slot: whole when it fits, else with texts cut
        /// (nothing else changed); and what comes out goes in again unchanged.
        #[test]
        fn every_event_fits_a_slot(e in any_event()) {
            let out = EventSlot::encode(3, &e).decode();
            prop_assert!(out.is_some(), "{e:?} did not fit");
            let out = out.unwrap_or_else(|| e.clone());
            if postcard::experimental::serialized_size(&e).is_ok_and(|n| n <= EVENT_DATA) {
                prop_assert_eq!(&out, &e);
            } else {
                let (o, w) = (serde_json::to_value(&out), serde_json::to_value(&e));
                prop_assert!(matches!((&o, &w), (Ok(o), Ok(w)) if is_cut_of(o, w)), "{out:?}");
            }
            prop_assert_eq!(EventSlot::encode(3, &out).decode(), Some(out));
        }
    }
}
