//! Hooks: executables in the hook directory (`[hooks] dir`, default
//! `/usr/libexec/coventry`) that the switch runs on its activity — `register` when
//! a contact appears, `release` when one goes, `call` with the record at the end of
//! every call, `msg-NAME` for a `/msg NAME text` sent to `system` (its output lines
//! go back to the sender as texts from `system`).
//!
//! The data goes on stdin as one JSON object, never through a shell or argv; the
//! environment is minimal. The switch never waits on a hook: jobs wait in a
//! bounded queue (overflow counted and logged, never memory growth), at most
//! `max_running` run at once, each is killed at its timeout (with its process
//! group), its output is capped. A hook that is missing is skipped quietly; one
//! that is not executable, or that someone else could have put there, is skipped
//! with one log line.

pub mod queue;
mod runner;

use crate::config::HooksConfig;
use coventry_shared::event::Event;
use coventry_shared::record::CallRecord;
use coventry_shared::runtime::Facts;
use queue::Queue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// One run of one hook.
#[derive(Debug, Clone)]
pub struct Job {
    /// The hook's file name (`register`, `call`, `msg-weather`...).
    pub hook: String,
    /// What goes on its stdin.
    pub input: Value,
    /// Send its output lines back to this extension as texts (`msg-` hooks).
    pub reply_to: Option<u16>,
}

/// A hook that ended, with what it printed when someone waits for a reply.
#[derive(Debug)]
pub struct Done {
    /// The hook's name.
    pub hook: String,
    /// Who gets the reply.
    pub reply_to: Option<u16>,
    /// Its stdout lines (capped, control characters removed), for `reply_to`.
    pub lines: Vec<String>,
}

/// Most texts a `msg-` hook's reply becomes.
pub const MAX_REPLY_LINES: usize = 4;

/// The name of a chat resource: `/msg NAME text` runs hook `msg-NAME`.
pub fn chat_hook(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    ok.then(|| format!("msg-{name}"))
}

/// The job an event starts, if any.
pub fn job_for(event: &Event, time_ms: u64) -> Option<Job> {
    let (hook, input) = match event {
        Event::Registered {
            ext,
            contact,
            user_agent,
        } => (
            "register",
            json!({"event": "register", "time_ms": time_ms, "ext": ext,
                   "contact": contact, "user_agent": user_agent}),
        ),
        Event::Unregistered { ext, contact, why } => (
            "release",
            json!({"event": "release", "time_ms": time_ms, "ext": ext,
                   "contact": contact, "why": why.name()}),
        ),
        _ => return None,
    };
    Some(Job {
        hook: hook.to_string(),
        input,
        reply_to: None,
    })
}

/// Why a hook may not run (`None`: it may): the directory and the file must
/// belong to the daemon's user or root and be writable by nobody else, and the
/// file must be a regular executable file.
pub fn hook_problem(dir: Facts, file: Facts, euid: u32) -> Option<String> {
    const SHARED_WRITE: u32 = 0o022;
    let trusted = |f: Facts| f.uid == euid || f.uid == 0;
    if !trusted(dir) || dir.mode & SHARED_WRITE != 0 {
        return Some("its directory may be written by someone else".into());
    }
    if file.mode & 0o170_000 != 0o100_000 {
        return Some("it is not a regular file".into());
    }
    if !trusted(file) || file.mode & SHARED_WRITE != 0 {
        return Some("it may be written by someone else".into());
    }
    if file.mode & 0o111 == 0 {
        return Some("it is not executable".into());
    }
    None
}

/// Process groups of the hooks running now (killed when the switch stops).
pub type Running = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<i32>>>;

/// Where the hooks run, and how.
#[derive(Debug, Clone)]
pub struct RunnerSetup {
    /// The hook directory.
    pub dir: PathBuf,
    /// Killed after this long.
    pub timeout: std::time::Duration,
    /// Output kept from each stream, bytes.
    pub max_output: usize,
    /// The runtime directory, for hooks that answer with `pbxctl` or the FIFO.
    pub runtime_dir: PathBuf,
    /// The process groups running now.
    pub running: Running,
}

/// The hook runner: queue, running count, the channel finished runs come back on.
pub struct Hooks {
    settings: RunnerSetup,
    queue: Queue<Option<u16>, Job>,
    done_tx: mpsc::Sender<Done>,
    /// Per hook, the last reason it was skipped (logged once per reason).
    skipped: HashMap<String, String>,
    euid: u32,
}

impl Hooks {
    /// A runner for `cfg`; finished runs arrive on the receiver.
    pub fn new(cfg: &HooksConfig, runtime_dir: &Path) -> (Hooks, mpsc::Receiver<Done>) {
        let (done_tx, done_rx) = mpsc::channel(cfg.max_running.max(1) * 2);
        let hooks = Hooks {
            settings: RunnerSetup {
                dir: cfg.dir.clone(),
                timeout: std::time::Duration::from_secs(u64::from(cfg.timeout)),
                max_output: cfg.max_output,
                runtime_dir: runtime_dir.to_path_buf(),
                running: Running::default(),
            },
            queue: Queue::new(cfg.max_running, cfg.queue),
            done_tx,
            skipped: HashMap::new(),
            euid: nix::unistd::geteuid().as_raw(),
        };
        (hooks, done_rx)
    }

    /// Take a new configuration (reload): jobs already queued or running go on.
    pub fn reconfigure(&mut self, cfg: &HooksConfig) {
        self.settings.dir = cfg.dir.clone();
        self.settings.timeout = std::time::Duration::from_secs(u64::from(cfg.timeout));
        self.settings.max_output = cfg.max_output;
    }

    /// Run `job` when a slot is free; never waits. A job whose hook cannot run is
    /// dropped at once; one the queue has no room for is counted and logged.
    /// Whether it was queued.
    pub fn submit(&mut self, job: Job) -> bool {
        if self.usable(&job.hook).is_none() {
            return false;
        }
        // Chat services are fair per extension; the switch's own hooks
        // (register, release, call) are one party of their own.
        let party = job.reply_to;
        if !self.queue.push(party, job) {
            let n = self.queue.overflowed;
            if n.is_power_of_two() {
                log::warn!(
                    "hook queue full for {}: {n} hook run(s) dropped so far",
                    party.map_or("the switch".to_string(), |e| e.to_string())
                );
            }
            return false;
        }
        self.pump();
        true
    }

    /// Run the hooks `events` start (at `time_ms`).
    pub fn on_events(&mut self, events: &[Event], time_ms: u64) {
        for e in events {
            if let Some(job) = job_for(e, time_ms) {
                self.submit(job);
            }
        }
    }

    /// Run the `call` hook for each of `records`.
    pub fn on_records<'r>(&mut self, records: impl Iterator<Item = &'r CallRecord>, time_ms: u64) {
        for r in records {
            let mut input = serde_json::to_value(r).unwrap_or(Value::Null);
            if let Some(obj) = input.as_object_mut() {
                obj.insert("event".into(), json!("call"));
                obj.insert("time_ms".into(), json!(time_ms));
            }
            self.submit(Job {
                hook: "call".into(),
                input,
                reply_to: None,
            });
        }
    }

    /// `/msg NAME TEXT` from `from`: run hook `msg-NAME`, whose answer goes back
    /// to `from`. The text to send `from` at once when there is no such service.
    pub fn chat(&mut self, name: &str, from: u16, text: &str, time_ms: u64) -> Option<String> {
        let Some(hook) = chat_hook(name) else {
            return Some(format!("no chat service {name:?}"));
        };
        let job = Job {
            hook,
            input: json!({"event": "message", "time_ms": time_ms, "name": name,
                          "from": from, "text": text}),
            reply_to: Some(from),
        };
        if self.submit(job) {
            None
        } else {
            Some(format!("chat service {name} is not available"))
        }
    }

    /// A run ended: start the next.
    pub fn finished(&mut self) {
        self.queue.done();
        self.pump();
    }

    /// Kill every hook still running, with whatever it started (the switch stops).
    pub fn kill_all(&self) {
        let groups: Vec<i32> = match self.settings.running.lock() {
            Ok(g) => g.iter().copied().collect(),
            Err(_) => return,
        };
        for pg in groups {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pg),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Runs dropped because the queue was full.
    pub fn overflowed(&self) -> u64 {
        self.queue.overflowed
    }

    fn pump(&mut self) {
        while let Some(job) = self.queue.start_next() {
            match self.usable(&job.hook) {
                Some(path) => {
                    let settings = self.settings.clone();
                    let tx = self.done_tx.clone();
                    tokio::spawn(runner::run(path, job, settings, tx));
                }
                None => self.queue.done(),
            }
        }
    }

    /// The hook's path when it exists and may run; logs (once per reason) why not.
    fn usable(&mut self, hook: &str) -> Option<PathBuf> {
        let path = self.settings.dir.join(hook);
        let facts = |p: &Path| std::fs::symlink_metadata(p).map(|m| Facts::of(&m));
        let problem = match (facts(&self.settings.dir), facts(&path)) {
            (_, Err(_)) => return None, // no such hook: nothing to run
            (Err(e), _) => Some(format!("its directory cannot be examined: {e}")),
            (Ok(dir), Ok(file)) => hook_problem(dir, file, self.euid),
        };
        match problem {
            None => {
                self.skipped.remove(hook);
                Some(path)
            }
            Some(why) => {
                if self.skipped.get(hook) != Some(&why) {
                    log::warn!("hook {} skipped: {why}", path.display());
                    self.skipped.insert(hook.to_string(), why);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(uid: u32, mode: u32) -> Facts {
        Facts { uid, mode }
    }

    #[test]
    fn only_trusted_executables_run() {
        let dir = f(0, 0o040_755);
        assert_eq!(hook_problem(dir, f(0, 0o100_755), 1000), None);
        assert_eq!(hook_problem(dir, f(1000, 0o100_700), 1000), None);
        assert!(hook_problem(dir, f(1001, 0o100_755), 1000).is_some());
        assert!(hook_problem(dir, f(0, 0o100_775), 1000).is_some());
        assert!(hook_problem(dir, f(0, 0o100_644), 1000).is_some());
        assert!(hook_problem(dir, f(0, 0o120_777), 1000).is_some());
        assert!(hook_problem(f(0, 0o041_777), f(0, 0o100_755), 1000).is_some());
        assert!(hook_problem(f(1001, 0o040_755), f(0, 0o100_755), 1000).is_some());
    }

    #[test]
    fn chat_names_are_plain() {
        assert_eq!(chat_hook("weather").as_deref(), Some("msg-weather"));
        assert_eq!(chat_hook("a_b-1").as_deref(), Some("msg-a_b-1"));
        for bad in ["", "../x", "Big", "a b", "x/y", &"a".repeat(33)] {
            assert_eq!(chat_hook(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_become_jobs_with_their_data() {
        use coventry_shared::event::Unregistration;
        let j = job_for(
            &Event::Registered {
                ext: 21,
                contact: "sip:21@h".into(),
                user_agent: "ua \"x\"".into(),
            },
            5,
        )
        .expect("job");
        assert_eq!(j.hook, "register");
        assert_eq!(j.input["ext"], 21);
        assert_eq!(j.input["user_agent"], "ua \"x\"");
        let j = job_for(
            &Event::Unregistered {
                ext: 21,
                contact: "sip:21@h".into(),
                why: Unregistration::Expired,
            },
            5,
        )
        .expect("job");
        assert_eq!(
            (j.hook.as_str(), &j.input["why"]),
            ("release", &json!("expired"))
        );
        assert!(job_for(&Event::Notice { text: "x".into() }, 5).is_none());
    }
}
