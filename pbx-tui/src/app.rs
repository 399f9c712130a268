//! The event loop, the only place with I/O: it waits for a key, a signal, an event
//! from the daemon (`ring_wake`), the next periodic look at the state block or the
//! next second, whichever comes first (never spinning), feeds what happened to `update`, carries out the effects, and draws
//! only when the model says something visible changed.
//!
//! It ends when the operator quits, when its terminal is gone (end-of-file or an
//! error reading it: a hang-up) and on SIGTERM, SIGHUP, SIGINT and SIGQUIT, in
//! every state: nothing on the screen waits for anything but the next turn.

use crate::clock;
use crate::daemon::DaemonLink;
use crate::input::{Input, Wake};
use crate::model::{Model, Options};
use crate::msg::{Effect, Ending, Msg};
use crate::ring_wake::RingWake;
use crate::signals::SignalWatch;
use crate::terminal::Tty;
use crate::trace_link::TraceLink;
use coventry_shared::client::send::{first_request_id, send_line};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a full FIFO is retried before giving up (the screen stays frozen that
/// long at most).
pub const FULL_FIFO_PATIENCE: Duration = Duration::from_millis(300);

/// How the console runs.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The daemon's runtime directory.
    pub runtime_dir: PathBuf,
    /// Refuse every action.
    pub readonly: bool,
    /// Draw with colours.
    pub color: bool,
    /// How often the state block is looked at.
    pub poll: Duration,
}

/// Where effects go: the terminal, the control FIFO, the runtime directory and
/// the open trace.
struct Outlets<'a> {
    tty: &'a mut Tty,
    control: &'a Path,
    runtime_dir: &'a Path,
    trace: &'a mut Option<TraceLink>,
}

fn apply(o: &mut Outlets<'_>, model: &mut Model, msg: Msg) -> std::io::Result<()> {
    let mut queue = VecDeque::from([msg]);
    while let Some(m) = queue.pop_front() {
        for effect in model.update(m) {
            match effect {
                Effect::Send { id, line } => {
                    if let Err(error) =
                        send_line(o.control, &line, Instant::now() + FULL_FIFO_PATIENCE)
                            .map_err(|e| e.to_string())
                    {
                        queue.push_back(Msg::SendFailed { id, error });
                    }
                }
                Effect::TraceStart { ext } => {
                    match TraceLink::start(o.runtime_dir, ext, FULL_FIFO_PATIENCE) {
                        Ok(link) => *o.trace = Some(link),
                        Err(why) => queue.push_back(Msg::TraceEnded(why)),
                    }
                }
                // Letting go of the lease is all it takes: the switch ends the
                // trace at its next look.
                Effect::TraceStop => *o.trace = None,
                Effect::Repaint => {
                    o.tty.repaint()?;
                    model.dirty = true;
                }
                Effect::Quit => {}
            }
        }
    }
    Ok(())
}

/// Run the console until the operator quits (`Ok(None)`), its terminal goes away
/// or a signal ends it (`Ok(Some(why))`).
pub fn run(settings: RunSettings) -> Result<Option<Ending>, String> {
    let state = coventry_shared::runtime::state_path(&settings.runtime_dir);
    let control = coventry_shared::runtime::control_path(&settings.runtime_dir);
    // Before the terminal is touched, so a signal during the set-up counts too.
    let signals = SignalWatch::start().map_err(|e| format!("cannot handle signals: {e}"))?;
    let now_ms = clock::now_ms();
    let mut offset = clock::local_offset_s(now_ms);
    let mut offset_checked = Instant::now();
    let mut model = Model::new(Options {
        readonly: settings.readonly,
        color: settings.color,
        now_ms,
        utc_offset_s: offset,
        first_request_id: first_request_id(now_ms),
        runtime_dir: settings.runtime_dir.display().to_string(),
    });
    let mut link = DaemonLink::new(&state);
    let ring = RingWake::start(state.clone(), signals.waker().map_err(|e| e.to_string())?)
        .map_err(|e| format!("cannot watch the event ring: {e}"))?;
    let mut tty = Tty::enter().map_err(|e| e.to_string())?;
    let mut input = Input::new(std::io::stdin());
    let io = |e: std::io::Error| format!("terminal: {e}");
    let mut next_poll = Instant::now();
    let mut trace: Option<TraceLink> = None;
    macro_rules! outlets {
        () => {
            Outlets {
                tty: &mut tty,
                control: &control,
                runtime_dir: &settings.runtime_dir,
                trace: &mut trace,
            }
        };
    }
    loop {
        let caught = signals.take();
        if let Some(sig) = caught.ending {
            apply(&mut outlets!(), &mut model, Msg::End(Ending::Signal(sig))).map_err(io)?;
        }
        if caught.resized {
            apply(&mut outlets!(), &mut model, Msg::Resize).map_err(io)?;
        }
        if model.quit {
            return Ok(model.ending);
        }
        if ring.take() {
            // The daemon wrote events: look now, not at the next periodic look.
            next_poll = Instant::now();
        }
        if Instant::now() >= next_poll {
            for m in link.poll(clock::now_ms()) {
                apply(&mut outlets!(), &mut model, m).map_err(io)?;
            }
            next_poll = Instant::now() + settings.poll;
        }
        if let Some(t) = trace.as_mut() {
            let m = match t.poll(offset) {
                Ok((lines, lost)) if lines.is_empty() && lost == 0 => None,
                Ok((lines, lost)) => Some(Msg::Trace { lines, lost }),
                Err(why) => {
                    trace = None;
                    Some(Msg::TraceEnded(why))
                }
            };
            if let Some(m) = m {
                apply(&mut outlets!(), &mut model, m).map_err(io)?;
            }
        }
        let now_ms = clock::now_ms();
        if offset_checked.elapsed() >= Duration::from_secs(60) {
            offset = clock::local_offset_s(now_ms);
            offset_checked = Instant::now();
        }
        let tick = Msg::Tick {
            now_ms,
            utc_offset_s: offset,
        };
        apply(&mut outlets!(), &mut model, tick).map_err(io)?;
        if model.needs_draw() && !model.quit {
            tty.draw(&model).map_err(io)?;
            model.drawn();
        }
        if model.quit {
            return Ok(model.ending);
        }
        let to_second = Duration::from_millis(1000 - now_ms % 1000);
        let wait = next_poll
            .saturating_duration_since(Instant::now())
            .min(to_second);
        match input.wait(signals.fd(), wait) {
            Wake::Keys(keys) => {
                for key in keys {
                    // A signal stops a long paste of keys (each may wait for a full
                    // control FIFO) at once.
                    if model.quit || signals.ending().is_some() {
                        break;
                    }
                    apply(&mut outlets!(), &mut model, Msg::Key(key)).map_err(io)?;
                }
            }
            Wake::Ended(why) => {
                let end = Msg::End(Ending::TerminalGone(why));
                apply(&mut outlets!(), &mut model, end).map_err(io)?;
            }
            Wake::Woken | Wake::Timeout => {}
        }
    }
}
