//! Text commands to the `system` user: an extension messages `/forward 35` and the
//! switch answers with a message from `system`. An extension changes only its own
//! settings.

use super::Switch;
use coventry_shared::control::ForwardKind;

/// What `/help` says.
pub const HELP: &str =
    "/status, /who, /forward NUMBER|off [busy|noanswer], /dnd on|off, /msg NAME TEXT";

/// A `/msg NAME TEXT` for the chat service NAME (a hook, run by the I/O shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// The service's name as typed (lower-cased).
    pub name: String,
    /// The extension that wrote.
    pub from: u16,
    /// What it wrote after the name.
    pub text: String,
}

impl Switch {
    /// A text from `system` to `ext`: a chat service's answer, or why there is
    /// none.
    pub fn send_system_text(&mut self, now_ms: u64, ext: u16, text: &str) {
        self.last_now = now_ms;
        self.system_reply(now_ms, ext, text);
    }

    /// Carry out a `/command` from `ext`; the reply text (empty: none).
    pub(super) fn system_command(&mut self, now_ms: u64, ext: u16, text: &str) -> String {
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_lowercase();
        let args: Vec<&str> = words.collect();
        let own = |args: &[&str], max: usize| -> Result<(), String> {
            match args.get(max) {
                Some(other) if other.parse::<u16>().is_ok_and(|n| n != ext) => Err(format!(
                    "you can only change your own settings ({ext}), not {other}'s"
                )),
                Some(_) => Err(format!("too many words; {HELP}")),
                None => Ok(()),
            }
        };
        match verb.as_str() {
            "/help" | "/?" => format!("Commands: {HELP}"),
            "/status" => self.status_text(ext),
            "/who" => {
                let who: Vec<String> = self
                    .registrar
                    .iter()
                    .map(|(e, _)| {
                        let name = self
                            .config
                            .lines
                            .get(&e)
                            .map(|l| l.display.as_str())
                            .unwrap_or("");
                        format!("{e} {name}")
                    })
                    .collect();
                if who.is_empty() {
                    "nobody is registered".into()
                } else {
                    format!("online: {}", who.join(", "))
                }
            }
            "/forward" | "/fwd" => {
                let Some(target) = args.first() else {
                    return "usage: /forward NUMBER|off [busy|noanswer]".into();
                };
                let (kind, rest) = match args.get(1).and_then(|k| ForwardKind::parse(k)) {
                    Some(k) => (k, 2),
                    None => (ForwardKind::Always, 1),
                };
                if let Err(e) = own(&args, rest) {
                    return e;
                }
                let target = (!target.eq_ignore_ascii_case("off")).then_some(*target);
                match self.set_forward(now_ms, ext, kind, target, None) {
                    Ok(t) => t,
                    Err(r) => r.to_string(),
                }
            }
            "/dnd" => {
                let on = match args.first().map(|a| a.to_ascii_lowercase()) {
                    Some(a) if a == "on" => true,
                    Some(a) if a == "off" => false,
                    _ => return "usage: /dnd on|off".into(),
                };
                if let Err(e) = own(&args, 1) {
                    return e;
                }
                match self.set_dnd(now_ms, ext, on, None) {
                    Ok(t) => t,
                    Err(r) => r.to_string(),
                }
            }
            "/msg" => {
                let (Some(name), Some(_)) = (args.first(), args.get(1)) else {
                    return "usage: /msg NAME TEXT".into();
                };
                let text = args[1..].join(" ");
                self.out.chats.push(Chat {
                    name: name.to_ascii_lowercase(),
                    from: ext,
                    text,
                });
                // The chat service answers with texts of its own.
                String::new()
            }
            "" => format!("empty command; {HELP}"),
            other => format!("unknown command {other}; {HELP}"),
        }
    }

    /// `/status` for `ext`.
    fn status_text(&self, ext: u16) -> String {
        let s = self.ext_settings(ext);
        let contacts = self.registrar.contacts(ext).len();
        let mut parts = vec![format!("{ext}: {contacts} contact(s)")];
        for kind in [
            ForwardKind::Always,
            ForwardKind::Busy,
            ForwardKind::NoAnswer,
        ] {
            if let Some(f) = s.forward(kind) {
                parts.push(format!("forward {} to {}", kind.name(), f.target));
            }
        }
        parts.push(format!("dnd {}", if s.dnd { "on" } else { "off" }));
        let calls = self.calls.active_for(ext).count();
        if calls > 0 {
            parts.push(format!("{calls} call(s)"));
        }
        parts.join(", ")
    }
}
