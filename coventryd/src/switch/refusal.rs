//! Why the switch did not carry out an operator's command (from the FIFO, a
//! keypad feature code or a chat command): one typed error whose text is what
//! the operator reads, and whose [`ResultCode`] is chosen here and nowhere else.

use super::message::MAX_TEXT_CHARS;
use super::settings::ForwardError;
use coventry_shared::event::ResultCode;

/// A command the switch refused or could not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The extension is not configured.
    #[error("no extension {0}")]
    NoExtension(u16),
    /// A number of the plan's shape that is not configured.
    #[error("no extension {0}")]
    NoSuchNumber(String),
    /// A message target that is neither an extension nor a group.
    #[error("no extension or group {0}")]
    NoTarget(String),
    /// A message addressed to the switch itself.
    #[error("system cannot receive messages")]
    SystemCannotReceive,
    /// `hangup` named nothing that is going on.
    #[error("no call matches {0}")]
    NoCall(String),
    /// `runstate` named a run state the configuration does not have.
    #[error("no run state {name} (known: {})", .known.join(", "))]
    NoRunState {
        /// The name asked for.
        name: String,
        /// The run states there are.
        known: Vec<String>,
    },
    /// An expiry time that is already over.
    #[error("that time has passed")]
    TimePassed,
    /// The forward itself is refused (loop, chain too long).
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// A forward to an emergency number.
    #[error("{0} is an emergency number: never a forward target")]
    EmergencyTarget(String),
    /// A forward outside with no upstream route to take it.
    #[error(
        "{0} is outside and there is no [upstream] route: calls forwarded there would get 404"
    )]
    NoUpstreamRoute(String),
    /// A forward outside that `[upstream] forward_prefixes` does not allow.
    #[error("{0} is outside: forwards outside need [upstream] forward_prefixes to allow it")]
    OutsideNotAllowed(String),
    /// A forward to a number of the plan's shape that is not configured.
    #[error("{0} is not a configured extension")]
    NotAnExtension(String),
    /// A forward to something that takes no calls (`all`, the switch).
    #[error("cannot forward to {0}")]
    CannotForwardTo(String),
    /// A speed dial code that clashes with the dial plan.
    #[error("speed dial {code} refused: {why}")]
    SpeedRefused {
        /// The code.
        code: String,
        /// What it clashes with.
        why: String,
    },
    /// A text over [`MAX_TEXT_CHARS`].
    #[error("text longer than {MAX_TEXT_CHARS} characters")]
    TextTooLong,
    /// The target extension has no registered phone.
    #[error("{0} is offline")]
    Offline(u16),
    /// Nobody of the target group (or `all`) is registered.
    #[error("nobody in {0} is online")]
    NobodyOnline(String),
    /// A click-to-dial's first extension has no registered phone.
    #[error("{0} is not registered")]
    NotRegistered(u16),
    /// A click-to-dial's first extension is in a call.
    #[error("{0} is busy")]
    Busy(u16),
}

impl Refusal {
    /// The result code a command refused this way ends with.
    pub fn code(&self) -> ResultCode {
        match self {
            Refusal::NoExtension(_)
            | Refusal::NoSuchNumber(_)
            | Refusal::NoTarget(_)
            | Refusal::SystemCannotReceive
            | Refusal::NoCall(_)
            | Refusal::NoRunState { .. } => ResultCode::NotFound,
            Refusal::TimePassed
            | Refusal::Forward(_)
            | Refusal::EmergencyTarget(_)
            | Refusal::NoUpstreamRoute(_)
            | Refusal::OutsideNotAllowed(_)
            | Refusal::NotAnExtension(_)
            | Refusal::CannotForwardTo(_)
            | Refusal::SpeedRefused { .. }
            | Refusal::TextTooLong
            | Refusal::Offline(_)
            | Refusal::NobodyOnline(_)
            | Refusal::NotRegistered(_)
            | Refusal::Busy(_) => ResultCode::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_code_of_a_refusal() {
        let r = Refusal::NoExtension(29);
        assert_eq!(
            (r.to_string(), r.code()),
            ("no extension 29".into(), ResultCode::NotFound)
        );
        let r = Refusal::NoRunState {
            name: "lunch".into(),
            known: vec!["day".into(), "night".into()],
        };
        assert_eq!(r.to_string(), "no run state lunch (known: day, night)");
        assert_eq!(r.code(), ResultCode::NotFound);
        let r = Refusal::from(ForwardError::ToItself(21));
        assert_eq!(
            (r.to_string(), r.code()),
            ("21 cannot forward to itself".into(), ResultCode::Failed)
        );
        assert_eq!(
            Refusal::TextTooLong.to_string(),
            format!("text longer than {MAX_TEXT_CHARS} characters")
        );
    }
}
