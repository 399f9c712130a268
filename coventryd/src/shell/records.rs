//! The call records files: every record the core hands over is appended, one
//! JSON object per line, to its book's file in the state directory
//! (`records.jsonl` for calls, `attempts.jsonl` for attempts that reached no
//! one) by a writer thread of its own, in batches, each batch flushed to the disk
//! (`fdatasync`) before the next; past `[records] max_size` a file is rotated
//! (`records.jsonl.1` is the newest of `[records] keep`; one `attempts.jsonl.1`).
//! The same thread keeps the first call number of the next start on disk, so
//! numbering survives restarts and `kill -9`.
//!
//! The switch's loop never waits on the disk: it hands records over a bounded
//! channel; if the disk stalls long enough for the channel to fill, records are
//! dropped, counted and logged rather than let memory grow.

use crate::config::RecordsConfig;
use coventry_shared::record::{Book, CallRecord, ATTEMPTS_KEPT, NEXT_CALL_FILE};
use coventry_shared::runtime::SafeDir;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Records waiting for the writer at most.
const CHANNEL: usize = 65_536;
/// Mode of the records files: the daemon's group may read them.
const RECORDS_MODE: u32 = 0o640;

enum Work {
    Record(Book, String),
    Reserve(u32),
    Configure(RecordsConfig),
}

/// The writer thread's handle.
pub struct Records {
    tx: Option<mpsc::SyncSender<Work>>,
    thread: Option<JoinHandle<()>>,
    dropped: u64,
}

/// The first call number for this start, as kept in the state directory (the
/// first number when there is none or it is unreadable).
pub fn first_call_number(state_dir: &Path) -> u32 {
    let read = SafeDir::open_own(state_dir)
        .ok()
        .and_then(|d| d.read_own(NEXT_CALL_FILE).ok())
        .and_then(|(bytes, _)| String::from_utf8(bytes).ok())
        .and_then(|s| s.trim().parse::<u32>().ok());
    read.unwrap_or(0)
}

impl Records {
    /// Start the writer for `state_dir`.
    pub fn start(state_dir: &Path, cfg: &RecordsConfig) -> Records {
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let dir = state_dir.to_path_buf();
        let cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("records".into())
            .spawn(move || Writer::new(dir, cfg).run(rx))
            .map_err(|e| log::error!("cannot start the records writer: {e}"))
            .ok();
        Records {
            tx: Some(tx),
            thread,
            dropped: 0,
        }
    }

    fn hand_over(&mut self, w: Work) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.try_send(w).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                log::error!(
                    "call records: the disk is not keeping up; {} record(s) dropped",
                    self.dropped
                );
            }
        }
    }

    /// Append these records, each to its book.
    pub fn append(&mut self, records: &[(Book, CallRecord)]) {
        for (book, r) in records {
            match serde_json::to_string(r) {
                Ok(line) => self.hand_over(Work::Record(*book, line)),
                Err(e) => log::error!("call record {}: {e}", r.call),
            }
        }
    }

    /// Keep `next` as the first call number of the next start.
    pub fn reserve_call_numbers(&mut self, next: u32) {
        self.hand_over(Work::Reserve(next));
    }

    /// New `[records]` settings (reload).
    pub fn configure(&mut self, cfg: &RecordsConfig) {
        self.hand_over(Work::Configure(cfg.clone()));
    }

    /// Write what is queued and stop the thread.
    pub fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's side.
struct Writer {
    dir: PathBuf,
    cfg: RecordsConfig,
    /// The open file of each book (calls, attempts) and its length.
    files: [Option<(File, u64)>; 2],
}

/// A book's slot in [`Writer::files`].
fn slot(book: Book) -> usize {
    match book {
        Book::Calls => 0,
        Book::Attempts => 1,
    }
}

impl Writer {
    fn new(dir: PathBuf, cfg: RecordsConfig) -> Writer {
        Writer {
            dir,
            cfg,
            files: [None, None],
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Work>) {
        while let Ok(first) = rx.recv() {
            let mut batches = [String::new(), String::new()];
            let mut reserve = None;
            let mut next = Some(first);
            // Everything queued now goes in one write and one flush per book.
            while let Some(w) = next.take().or_else(|| rx.try_recv().ok()) {
                match w {
                    Work::Record(book, line) => {
                        let batch = &mut batches[slot(book)];
                        batch.push_str(&line);
                        batch.push('\n');
                    }
                    Work::Reserve(n) => reserve = Some(n),
                    Work::Configure(c) => self.cfg = c,
                }
                if batches.iter().map(String::len).sum::<usize>() > 1 << 20 {
                    break;
                }
            }
            if let Some(n) = reserve {
                if let Err(e) = self.reserve(n) {
                    log::error!("cannot keep the next call number: {e}");
                }
            }
            for book in [Book::Calls, Book::Attempts] {
                let batch = &batches[slot(book)];
                if batch.is_empty() {
                    continue;
                }
                if let Err(e) = self.write(book, batch.as_bytes()) {
                    log::error!("cannot append to {}: {e}", book.file());
                    self.files[slot(book)] = None;
                }
            }
        }
    }

    fn reserve(&self, next: u32) -> io::Result<()> {
        SafeDir::open_own(&self.dir)?.write_atomic(
            NEXT_CALL_FILE,
            format!("{next}\n").as_bytes(),
            0o600,
        )
    }

    fn write(&mut self, book: Book, bytes: &[u8]) -> io::Result<()> {
        let dir = SafeDir::open_own(&self.dir)?;
        let file = &mut self.files[slot(book)];
        if file.is_none() {
            let f = dir.open_append(book.file(), RECORDS_MODE)?;
            let len = f.metadata()?.len();
            *file = Some((f, len));
        }
        if let Some((f, len)) = file.as_mut() {
            f.write_all(bytes)?;
            f.sync_data()?;
            *len += bytes.len() as u64;
            if *len >= self.cfg.max_size {
                *file = None;
                let keep = match book {
                    Book::Calls => self.cfg.keep,
                    Book::Attempts => ATTEMPTS_KEPT,
                };
                rotate(&dir, book, keep)?;
            }
        }
        Ok(())
    }
}

/// `book`'s file becomes `.1`, `.1` becomes `.2`... up to `keep`; the oldest
/// goes.
fn rotate(dir: &SafeDir, book: Book, keep: u32) -> io::Result<()> {
    if keep == 0 {
        dir.remove(book.file())?;
        return dir.sync();
    }
    let _ = dir.remove(&book.rotated(keep));
    for n in (1..keep).rev() {
        let _ = dir.rename(&book.rotated(n), &book.rotated(n + 1));
    }
    dir.rename(book.file(), &book.rotated(1))?;
    dir.sync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coventry_shared::event::CallOutcome;
    use coventry_shared::record::Route;
    use std::os::unix::fs::PermissionsExt;

    fn record(call: u32) -> CallRecord {
        CallRecord {
            call,
            outcome: CallOutcome::Completed,
            status: 200,
            caller: "21".into(),
            dialled: "35".into(),
            answered_by: Some("35".into()),
            start_ms: 1,
            answer_ms: Some(2),
            end_ms: 3,
            ring_ms: 1,
            talk_ms: 1,
            route: Route::Local,
            forwards: Vec::new(),
            restarts: 0,
        }
    }

    /// A state directory of the daemon's own, and records rotated at 1000 bytes
    /// with two kept.
    fn scratch() -> (tempfile::TempDir, RecordsConfig) {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let cfg = RecordsConfig {
            max_size: 1000,
            keep: 2,
        };
        (tmp, cfg)
    }

    fn lines(p: &Path) -> Vec<CallRecord> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a record"))
            .collect()
    }

    #[test]
    fn records_are_appended_rotated_and_numbers_kept() {
        let (tmp, cfg) = scratch();
        assert_eq!(first_call_number(tmp.path()), 0);
        let mut r = Records::start(tmp.path(), &cfg);
        r.append(
            &(1000..1004)
                .map(|n| (Book::Calls, record(n)))
                .collect::<Vec<_>>(),
        );
        r.reserve_call_numbers(2000);
        r.stop();
        let got = lines(&tmp.path().join(Book::Calls.file()));
        assert_eq!(
            got.iter().map(|r| r.call).collect::<Vec<_>>(),
            [1000, 1001, 1002, 1003]
        );
        assert_eq!(first_call_number(tmp.path()), 2000);
        let mode = std::fs::metadata(tmp.path().join(Book::Calls.file()))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // Each session writes past max_size: rotated each time, two kept.
        for session in 0..5u32 {
            let mut r = Records::start(tmp.path(), &cfg);
            r.append(
                &(0..5)
                    .map(|n| (Book::Calls, record(3000 + session * 10 + n)))
                    .collect::<Vec<_>>(),
            );
            r.stop();
        }
        let current = lines(&tmp.path().join(Book::Calls.file()));
        let one = lines(&tmp.path().join(Book::Calls.rotated(1)));
        let two = lines(&tmp.path().join(Book::Calls.rotated(2)));
        assert!(!one.is_empty() && !two.is_empty());
        assert!(
            !tmp.path().join(Book::Calls.rotated(3)).exists(),
            "two kept"
        );
        let calls = |v: &[CallRecord]| v.iter().map(|r| r.call).collect::<Vec<_>>();
        assert!(
            calls(&two).iter().max() < calls(&one).iter().min(),
            ".1 is the newer"
        );
        let newest = current.last().or(one.last()).map(|r| r.call);
        assert_eq!(newest, Some(3044), "nothing lost at the end");
        for f in [&current, &one, &two] {
            assert!(f.iter().map(|r| r.call).is_sorted(), "in order");
        }
    }

    #[test]
    fn attempts_rotate_apart_and_never_push_calls_out() {
        let (tmp, cfg) = scratch();
        let mut r = Records::start(tmp.path(), &cfg);
        r.append(&[(Book::Calls, record(1))]);
        for n in 0..200 {
            r.append(&[(Book::Attempts, record(100 + n))]);
        }
        r.stop();
        let calls = lines(&tmp.path().join(Book::Calls.file()));
        assert_eq!(calls.iter().map(|r| r.call).collect::<Vec<_>>(), [1]);
        assert!(!tmp.path().join(Book::Calls.rotated(1)).exists());
        let one = lines(&tmp.path().join(Book::Attempts.rotated(1)));
        assert!(!one.is_empty());
        assert!(
            !tmp.path().join(Book::Attempts.rotated(2)).exists(),
            "one rotated attempts file kept"
        );
    }
}
