//! The live SIP trace, the shell's side: the leases (traces running, each with its
//! filter) and the trace ring they fill. While no lease is held the shell asks
//! [`Tracer::active`] (a test of an empty list) and copies nothing; there is no
//! ring file then. A lease lives as long as its client holds its lock on the
//! state block ([`coventry_shared::trace::Lease`]): checked every tick, so a
//! client killed by any means ends its trace within a tick, and the last trace
//! to end removes the ring.

use crate::config::Config;
use crate::sip::trace::{glance, mask, Texts};
use crate::switch::registrar::Registrar;
use crate::switch::TraceOrder;
use coventry_shared::event::{Event, ResultCode};
use coventry_shared::runtime::state_path;
use coventry_shared::stateblock::trace::TraceWriter;
use coventry_shared::trace::TRACE_FILE;
use coventry_shared::trace::{lease_held, Direction, Filter, Record, Transport, MAX_LEASES};
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One trace running.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TraceLease {
    token: u32,
    filter: Filter,
    /// Its bit in a record's `leases`.
    bit: u8,
}

/// The traces running as the state block shows them.
pub struct Published {
    /// How many.
    pub count: usize,
    /// The token of the lease of each record bit (0: none).
    pub tokens: [u32; MAX_LEASES],
    /// What they follow, space-separated.
    pub filters: String,
}

/// The traces running and their ring.
pub struct Tracer {
    runtime_dir: PathBuf,
    leases: Vec<TraceLease>,
    ring: Option<TraceWriter>,
    /// The state block, opened for the lease checks while a trace runs.
    block: Option<File>,
    /// Records were written since the readers were last woken.
    unannounced: bool,
    /// The leases changed since they were last published.
    changed: bool,
    /// Whether texts' words go into the ring (`[security] show_texts`).
    texts: Texts,
}

/// Which leases a message matches: filters need the message's users (From, To,
/// Request-URI) and, for an extension, its registered contacts' addresses.
fn matches(filter: &Filter, peer: SocketAddr, users: &[String], registrar: &Registrar) -> bool {
    match filter {
        Filter::Ext(n) => {
            let me = n.to_string();
            users.contains(&me)
                || registrar
                    .contacts(*n)
                    .iter()
                    .any(|b| b.source.parse::<SocketAddr>().is_ok_and(|s| same(s, peer)))
        }
        f => f.matches_addr(peer),
    }
}

fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

impl Tracer {
    /// No trace running, for the daemon of `runtime_dir`; a ring a killed daemon
    /// left behind is removed (nobody can hold a lease on it).
    pub fn new(runtime_dir: PathBuf) -> Tracer {
        let _ = std::fs::remove_file(runtime_dir.join(TRACE_FILE));
        Tracer {
            runtime_dir,
            leases: Vec::new(),
            ring: None,
            block: None,
            unannounced: false,
            changed: false,
            texts: Texts::Hidden,
        }
    }

    /// Follow the configuration: texts' words are traced only with `[security]
    /// show_texts = yes`, as they are published in the event ring.
    pub fn set_config(&mut self, config: &Config) {
        self.texts = if config.security.show_texts {
            Texts::Shown
        } else {
            Texts::Hidden
        };
    }

    /// Whether any trace runs: the one test made of every message when none does.
    #[inline]
    pub fn active(&self) -> bool {
        !self.leases.is_empty()
    }

    /// What to publish, once after each change.
    pub fn take_changed(&mut self) -> Option<Published> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let filters: Vec<String> = self.leases.iter().map(|l| l.filter.to_string()).collect();
        let mut tokens = [0u32; MAX_LEASES];
        for l in &self.leases {
            tokens[usize::from(l.bit)] = l.token;
        }
        Some(Published {
            count: self.leases.len(),
            tokens,
            filters: filters.join(" "),
        })
    }

    fn path(&self) -> PathBuf {
        self.runtime_dir.join(TRACE_FILE)
    }

    /// Carry out a `trace` command: its result, and a notice when a trace
    /// started or ended.
    pub fn order(&mut self, o: &TraceOrder) -> Vec<Event> {
        let token = o.token;
        let pos = self.leases.iter().position(|l| l.token == token);
        let (code, text, notice) = match (o.filter, pos) {
            (None, Some(i)) => {
                let l = self.leases.remove(i);
                self.changed = true;
                self.after_change();
                let t = format!("trace of {} ended", l.filter);
                (ResultCode::Ok, t.clone(), Some(t))
            }
            (None, None) => (ResultCode::NotFound, format!("no trace {token}"), None),
            (Some(f), Some(i)) => {
                self.leases[i].filter = f;
                self.changed = true;
                (ResultCode::Ok, format!("tracing {f}"), None)
            }
            (Some(f), None) => match self.start(token, f) {
                Ok(()) => {
                    let t = format!("tracing {f}");
                    (
                        ResultCode::Ok,
                        t.clone(),
                        Some(format!("trace of {f} started")),
                    )
                }
                Err(e) => (ResultCode::Failed, e, None),
            },
        };
        let mut events = vec![Event::CommandResult {
            id: o.id,
            code,
            text,
        }];
        if let Some(text) = notice {
            log::info!("{text}");
            events.push(Event::Notice { text });
        }
        events
    }

    fn start(&mut self, token: u32, filter: Filter) -> Result<(), String> {
        if self.leases.len() >= MAX_LEASES {
            return Err(format!("{MAX_LEASES} traces run already"));
        }
        if self.block.is_none() {
            let p = state_path(&self.runtime_dir);
            self.block = Some(File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?);
        }
        let held = self
            .block
            .as_ref()
            .map(|b| lease_held(b, token))
            .transpose()
            .map_err(|e| format!("cannot check lease {token}: {e}"))?;
        if held != Some(true) {
            self.after_change();
            return Err(format!(
                "lease {token} is not held: a tracer locks it on the state block first \
                 (pbxctl trace does)"
            ));
        }
        if self.ring.is_none() {
            let ring = TraceWriter::create(&self.path())
                .map_err(|e| format!("cannot create the trace ring: {e}"))?;
            self.ring = Some(ring);
        }
        let bit = (0..MAX_LEASES as u8)
            .find(|b| self.leases.iter().all(|l| l.bit != *b))
            .unwrap_or(0);
        self.leases.push(TraceLease { token, filter, bit });
        self.changed = true;
        Ok(())
    }

    /// With no trace left, nothing is kept: the ring is removed.
    fn after_change(&mut self) {
        if self.leases.is_empty() {
            self.block = None;
            if let Some(ring) = self.ring.take() {
                let _ = std::fs::remove_file(ring.path());
            }
        }
    }

    /// End the traces whose client no longer holds its lease (checked every
    /// tick while one runs); a notice for each.
    pub fn check(&mut self) -> Vec<Event> {
        if !self.active() {
            return Vec::new();
        }
        let Some(block) = &self.block else {
            return Vec::new();
        };
        let mut ended = Vec::new();
        self.leases.retain(|l| {
            // An error (never expected) ends the trace: no cost left behind.
            let held = lease_held(block, l.token).unwrap_or(false);
            if !held {
                ended.push(l.filter);
            }
            held
        });
        if ended.is_empty() {
            return Vec::new();
        }
        self.changed = true;
        self.after_change();
        ended
            .into_iter()
            .map(|f| {
                let text = format!("trace of {f} ended (its lease was let go)");
                log::info!("{text}");
                Event::Notice { text }
            })
            .collect()
    }

    /// Copy a message into the ring for the traces it matches (call only when
    /// [`Tracer::active`]).
    pub fn record(
        &mut self,
        now_ms: u64,
        (dir, transport, peer): (Direction, Transport, SocketAddr),
        bytes: &[u8],
        registrar: &Registrar,
    ) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let g = glance(bytes);
        let leases = self
            .leases
            .iter()
            .filter(|l| matches(&l.filter, peer, &g.users, registrar))
            .fold(0u8, |m, l| m | (1 << l.bit));
        if leases == 0 {
            return;
        }
        let masked = mask(bytes, self.texts);
        let rec = Record {
            seq: 0,
            time_ms: now_ms,
            dir,
            transport,
            peer,
            leases,
            method: g.method,
            status: g.status,
            reason: g.reason,
            call_id: g.call_id,
            cseq: g.cseq,
            cseq_method: g.cseq_method,
            len: u32::try_from(masked.len()).unwrap_or(u32::MAX),
            bytes: masked,
        };
        ring.push(now_ms, &rec);
        self.unannounced = true;
    }

    /// Wake the ring's readers once after a turn that wrote records.
    pub fn wake_readers(&mut self) {
        if std::mem::take(&mut self.unannounced) {
            if let Some(r) = &self.ring {
                r.wake_readers();
            }
        }
    }

    /// The daemon stops: no ring is left behind.
    pub fn stop(&mut self) {
        self.leases.clear();
        self.after_change();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::registrar::{ContactRequest, RegisterMeta, Registrar};

    #[test]
    fn filters_match_users_and_contact_addresses() {
        let reg = Registrar::new();
        let peer: SocketAddr = "127.0.0.1:5062".parse().expect("addr");
        let users = vec!["21".to_string(), "35".to_string()];
        assert!(matches(&Filter::Ext(21), peer, &users, &reg));
        assert!(matches(&Filter::Ext(35), peer, &users, &reg));
        assert!(!matches(&Filter::Ext(22), peer, &users, &reg));
        // Users are compared whole.
        assert!(!matches(&Filter::Ext(2), peer, &users, &reg));
        assert!(matches(&Filter::All, peer, &[], &reg));
        let f = Filter::parse("127.0.0.1:5062").expect("filter");
        assert!(matches(&f, peer, &[], &reg));
        assert!(!matches(
            &f,
            "127.0.0.1:5063".parse().expect("addr"),
            &[],
            &reg
        ));
    }

    #[test]
    fn an_extension_filter_follows_its_registered_addresses() {
        let mut reg = Registrar::new();
        let meta = RegisterMeta {
            source: "10.0.0.7:5070",
            user_agent: "ua",
            call_id: "c",
            cseq: 1,
            now_ms: 1000,
            algorithm: None,
        };
        let contact = ContactRequest {
            uri: "sip:phone@10.0.0.7:5070".into(),
            expires: 60,
        };
        reg.register(21, 2, &[contact], &meta).expect("registered");
        let phone: SocketAddr = "10.0.0.7:5070".parse().expect("addr");
        // An INVITE to the contact names no extension, only its address tells.
        let users = vec!["phone".to_string(), "35".to_string()];
        assert!(matches(&Filter::Ext(21), phone, &users, &reg));
        let other_port: SocketAddr = "10.0.0.7:5071".parse().expect("addr");
        assert!(!matches(&Filter::Ext(21), other_port, &users, &reg));
        assert!(!matches(&Filter::Ext(22), phone, &users, &reg));
    }
}
