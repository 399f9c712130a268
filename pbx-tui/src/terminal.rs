//! The terminal: raw mode and the alternate screen while the console runs, and the
//! operator's terminal put back as it was on exit, on error and on panic.

use crate::model::Model;
use crossterm::cursor::Show;
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{self, BufWriter, IsTerminal, Stdout};
use std::mem::ManuallyDrop;
use std::sync::Once;

type Backend = CrosstermBackend<BufWriter<Stdout>>;

/// The console's terminal; dropping it restores the operator's terminal.
pub struct Tty {
    // Never dropped: ratatui's drop shows the cursor and, when that fails (the
    // terminal is gone), reports it with `eprintln!`, which panics when stderr is
    // that terminal. [`restore`] shows the cursor instead, ignoring failures.
    terminal: ManuallyDrop<Terminal<Backend>>,
}

/// Put the terminal back: leave the alternate screen, show the cursor, cooked mode.
/// Harmless when it is not needed, so it is safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

impl Tty {
    /// Take over the terminal (stdin and stdout must be one).
    pub fn enter() -> io::Result<Tty> {
        if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
            return Err(io::Error::other(
                "standard input and output must be a terminal (scripts use pbxctl)",
            ));
        }
        install_panic_hook();
        enable_raw_mode()?;
        let mut tty = Tty {
            terminal: ManuallyDrop::new(
                Terminal::new(CrosstermBackend::new(BufWriter::new(io::stdout())))
                    .inspect_err(|_| restore())?,
            ),
        };
        execute!(io::stdout(), EnterAlternateScreen)?;
        tty.terminal.clear()?;
        Ok(tty)
    }

    /// Draw the model. Only the cells that changed since the last draw are sent.
    pub fn draw(&mut self, model: &Model) -> io::Result<()> {
        self.terminal.draw(|frame| model.view(frame)).map(|_| ())
    }

    /// Forget what is on the screen, so the next draw repaints every cell.
    pub fn repaint(&mut self) -> io::Result<()> {
        self.terminal.clear()
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        restore();
    }
}
