//! A text sent by a control command, followed through its typed receipts: the
//! [`Event::Delivering`]s say whom it went to (the extensions registered now)
//! and who was offline, each target's [`Event::Message`] with the command's id
//! says what became of it, and the [`Event::CommandResult`] closes it. A client
//! that stops waiting (its timeout) still knows who has it, who refused and who
//! has not answered yet; later outcomes keep arriving as events.

use crate::event::{Event, ResultCode};
use std::collections::BTreeMap;

/// What became of the text at one extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A phone accepted it (2xx).
    Delivered,
    /// Its phones refused it with this status (486, 603...).
    Refused(u16),
    /// No phone answered before the switch gave up (408, after 32 s).
    NoAnswer,
    /// Not registered: nothing was sent (480).
    Offline,
    /// Sent; no answer yet.
    Waiting,
}

impl Outcome {
    /// The outcome a final status means.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            408 => Outcome::NoAnswer,
            480 => Outcome::Offline,
            s => Outcome::Refused(s),
        }
    }

    /// Short name: `delivered`, `refused`, `no-answer`, `offline`, `waiting`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Refused(_) => "refused",
            Outcome::NoAnswer => "no-answer",
            Outcome::Offline => "offline",
            Outcome::Waiting => "waiting",
        }
    }

    /// The SIP status behind it, when there is one.
    pub fn status(self) -> Option<u16> {
        match self {
            Outcome::Delivered => Some(200),
            Outcome::Refused(s) => Some(s),
            Outcome::NoAnswer => Some(408),
            Outcome::Offline => Some(480),
            Outcome::Waiting => None,
        }
    }
}

/// How a delivery stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every target has it.
    All,
    /// Some targets have it; others refused, are offline or have not answered.
    Some,
    /// Nobody has it, and nobody can any more.
    None,
    /// Nobody has it yet, but some targets have not answered.
    NothingYet,
}

/// One command's text and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    id: u64,
    /// The target as addressed (`21`, `100`, `all`), once announced.
    pub to: Option<String>,
    targets: BTreeMap<u16, Outcome>,
    /// The command's result, once the switch gave it.
    pub result: Option<(ResultCode, String)>,
}

impl Delivery {
    /// Follow the text of the command with request id `id`.
    pub fn new(id: u64) -> Delivery {
        Delivery {
            id,
            to: None,
            targets: BTreeMap::new(),
            result: None,
        }
    }

    /// Take in an event; true when it was about this command.
    pub fn note(&mut self, event: &Event) -> bool {
        match event {
            Event::Delivering {
                id: Some(id),
                to,
                targets,
                offline,
            } if *id == self.id => {
                self.to = Some(to.clone());
                for t in targets {
                    self.targets.entry(*t).or_insert(Outcome::Waiting);
                }
                for o in offline {
                    self.targets.insert(*o, Outcome::Offline);
                }
                true
            }
            Event::Message {
                id: Some(id),
                to,
                status,
                ..
            } if *id == self.id => {
                if let Ok(ext) = to.parse::<u16>() {
                    self.targets.insert(ext, Outcome::of_status(*status));
                }
                true
            }
            Event::CommandResult {
                id: Some(id),
                code,
                text,
            } if *id == self.id => {
                self.result = Some((*code, text.clone()));
                true
            }
            _ => false,
        }
    }

    /// Whether the switch gave the command's result.
    pub fn done(&self) -> bool {
        self.result.is_some()
    }

    /// Each target extension and its outcome, in extension order.
    pub fn receipts(&self) -> Vec<(u16, Outcome)> {
        self.targets.iter().map(|(e, o)| (*e, *o)).collect()
    }

    /// Targets that have it.
    pub fn delivered(&self) -> usize {
        self.count(|o| o == Outcome::Delivered)
    }

    /// Targets not answered yet.
    pub fn waiting(&self) -> usize {
        self.count(|o| o == Outcome::Waiting)
    }

    /// Targets in all.
    pub fn total(&self) -> usize {
        self.targets.len()
    }

    fn count(&self, f: impl Fn(Outcome) -> bool) -> usize {
        self.targets.values().filter(|o| f(**o)).count()
    }

    /// How it stands.
    pub fn verdict(&self) -> Verdict {
        let (delivered, waiting, total) = (self.delivered(), self.waiting(), self.total());
        if total > 0 && delivered == total {
            Verdict::All
        } else if delivered > 0 {
            Verdict::Some
        } else if waiting > 0 {
            Verdict::NothingYet
        } else {
            Verdict::None
        }
    }

    /// One line for people: `all: delivered to 2 of 3 registered now, 1 not
    /// answered yet`.
    pub fn summary(&self) -> String {
        let to = self.to.as_deref().unwrap_or("");
        let mut s = if to == "all" {
            format!(
                "all: delivered to {} of {} registered now",
                self.delivered(),
                self.total()
            )
        } else if self.total() == 1 && !to.is_empty() {
            let (ext, o) = self.receipts()[0];
            match o {
                Outcome::Delivered => format!("delivered to {ext}"),
                o => format!("{ext}: {}", o.name()),
            }
        } else {
            format!(
                "{to}: delivered to {} of {}",
                self.delivered(),
                self.total()
            )
        };
        let waiting = self.waiting();
        if waiting > 0 && self.total() > 1 {
            s.push_str(&format!(", {waiting} not answered yet"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: Option<u64>, to: u16, status: u16) -> Event {
        Event::Message {
            id,
            from: "operator".into(),
            to: to.to_string(),
            status,
            text: "x".into(),
        }
    }

    #[test]
    fn receipts_as_they_come() {
        let mut d = Delivery::new(7);
        assert!(d.note(&Event::Delivering {
            id: Some(7),
            to: "100".into(),
            targets: vec![21, 22, 23],
            offline: vec![24],
        }));
        assert!(!d.note(&msg(Some(8), 21, 200)), "another command's");
        assert!(!d.note(&msg(None, 21, 200)), "a phone's text");
        assert_eq!(d.verdict(), Verdict::NothingYet);
        assert!(d.note(&msg(Some(7), 21, 200)));
        d.note(&msg(Some(7), 22, 486));
        assert_eq!(d.verdict(), Verdict::Some);
        assert_eq!(d.waiting(), 1);
        assert_eq!(
            d.receipts(),
            vec![
                (21, Outcome::Delivered),
                (22, Outcome::Refused(486)),
                (23, Outcome::Waiting),
                (24, Outcome::Offline)
            ]
        );
        assert_eq!(d.summary(), "100: delivered to 1 of 4, 1 not answered yet");
        assert!(!d.done());
        d.note(&msg(Some(7), 23, 408));
        d.note(&Event::CommandResult {
            id: Some(7),
            code: ResultCode::Ok,
            text: "done".into(),
        });
        assert!(d.done());
        assert_eq!(d.receipts()[2], (23, Outcome::NoAnswer));
    }

    #[test]
    fn verdicts() {
        let mut d = Delivery::new(1);
        d.note(&Event::Delivering {
            id: Some(1),
            to: "all".into(),
            targets: vec![21, 22],
            offline: vec![],
        });
        d.note(&msg(Some(1), 21, 200));
        d.note(&msg(Some(1), 22, 202));
        assert_eq!(d.verdict(), Verdict::All);
        assert_eq!(d.summary(), "all: delivered to 2 of 2 registered now");
        let mut d = Delivery::new(2);
        d.note(&msg(Some(2), 21, 480));
        assert_eq!(d.verdict(), Verdict::None);
    }
}
