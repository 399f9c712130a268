//! The event loop, the only place with I/O: it waits for a key, the next look at
//! the state block or the next second, whichever comes first (never spinning), feeds
//! what happened to `update`, carries out the effects, and draws only when the
//! model says something visible changed.

use crate::clock;
use crate::daemon::DaemonLink;
use crate::fifo;
use crate::model::{Model, Options};
use crate::msg::{Effect, Msg};
use crate::terminal::Tty;
use crossterm::event::{self, Event};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Input events handled per wake-up at most.
const MAX_EVENTS_PER_WAKE: usize = 64;
/// Wake-ups in a row with nothing but empty events before the terminal is taken
/// for gone (a real terminal never does this: mouse and focus events are off).
const MAX_IDLE_WAKES: u32 = 10_000;

/// How the console runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The daemon's runtime directory.
    pub runtime_dir: PathBuf,
    /// Refuse every action.
    pub readonly: bool,
    /// Draw with colours.
    pub color: bool,
    /// How often the state block is looked at.
    pub poll: Duration,
}

/// A request id base unique to this process: its pid above a counter that starts
/// at the current second (so ids stay below 2^53 and differ between runs).
pub fn first_request_id(now_ms: u64) -> u64 {
    let pid = u64::from(std::process::id()) & ((1 << 22) - 1);
    (pid << 30) | ((now_ms / 1000) & ((1 << 30) - 1)).max(1)
}

fn apply(model: &mut Model, tty: &mut Tty, control: &Path, msg: Msg) -> std::io::Result<()> {
    let mut queue = VecDeque::from([msg]);
    while let Some(m) = queue.pop_front() {
        for effect in model.update(m) {
            match effect {
                Effect::Send { id, line } => {
                    if let Err(error) = fifo::send_line(control, &line) {
                        queue.push_back(Msg::SendFailed { id, error });
                    }
                }
                Effect::Repaint => {
                    tty.repaint()?;
                    model.dirty = true;
                }
                Effect::Quit => {}
            }
        }
    }
    Ok(())
}

/// Run the console until the operator quits or a signal (TERM, HUP, INT) ends it.
pub fn run(settings: Settings) -> Result<(), String> {
    let state = coventry_shared::runtime::state_path(&settings.runtime_dir);
    let control = coventry_shared::runtime::control_path(&settings.runtime_dir);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }
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
    let mut tty = Tty::enter().map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| format!("terminal: {e}");
    let mut next_poll = Instant::now();
    let mut idle_wakes = 0u32;
    loop {
        if Instant::now() >= next_poll {
            for m in link.poll(clock::now_ms()) {
                apply(&mut model, &mut tty, &control, m).map_err(io)?;
            }
            next_poll = Instant::now() + settings.poll;
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
        apply(&mut model, &mut tty, &control, tick).map_err(io)?;
        if model.needs_draw() {
            tty.draw(&model).map_err(io)?;
            model.drawn();
        }
        if model.quit || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let to_second = Duration::from_millis(1000 - now_ms % 1000);
        let wait = next_poll
            .saturating_duration_since(Instant::now())
            .min(to_second);
        if event::poll(wait).map_err(io)? {
            // Bounded, so a flood of input (or a terminal that hung up and reads
            // as endless empty events) never keeps the loop from the signals and
            // the state block.
            let mut useful = false;
            for _ in 0..MAX_EVENTS_PER_WAKE {
                let msg = match event::read().map_err(io)? {
                    Event::Key(k) => Some(Msg::Key(k)),
                    Event::Resize(..) => Some(Msg::Resize),
                    _ => None,
                };
                if let Some(m) = msg {
                    useful = true;
                    apply(&mut model, &mut tty, &control, m).map_err(io)?;
                }
                if model.quit
                    || stop.load(Ordering::Relaxed)
                    || !event::poll(Duration::ZERO).map_err(io)?
                {
                    break;
                }
            }
            idle_wakes = if useful { 0 } else { idle_wakes + 1 };
            if idle_wakes > MAX_IDLE_WAKES {
                return Err("terminal: it keeps waking us with nothing to read (hung up?)".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_fit_in_a_double() {
        let id = first_request_id(clock::now_ms());
        assert!(id > 0 && id < 1 << 53);
        assert_eq!(id >> 30, u64::from(std::process::id()) & ((1 << 22) - 1));
    }
}
