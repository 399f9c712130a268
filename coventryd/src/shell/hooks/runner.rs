//! Running one hook: the process, its stdin, its capped output, its deadline.

use super::{Done, Job, RunnerSetup, MAX_REPLY_LINES};
use coventry_shared::runtime::RUNTIME_DIR_ENV;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

/// Read `r` to its end, keeping at most `cap` bytes (the rest is drained, so the
/// hook never blocks on a full pipe); whether anything was cut.
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    let mut cut = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
}

/// Lines of `bytes` fit to be texts: UTF-8 (lossy), control characters removed,
/// blank lines skipped, at most [`MAX_REPLY_LINES`].
fn reply_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .take(MAX_REPLY_LINES)
        .collect()
}

/// Run hook `path` for `job`; report on `tx` when it ended, however it ended.
pub async fn run(path: PathBuf, job: Job, s: RunnerSetup, tx: mpsc::Sender<Done>) {
    let lines = run_inner(&path, &job, &s).await;
    let _ = tx
        .send(Done {
            hook: job.hook,
            reply_to: job.reply_to,
            lines,
        })
        .await;
}

async fn run_inner(path: &PathBuf, job: &Job, s: &RunnerSetup) -> Vec<String> {
    let name = path.display();
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("COVENTRY_HOOK", &job.hook)
        .env(RUNTIME_DIR_ENV, &s.runtime_dir)
        .current_dir(&s.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills whatever it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("hook {name}: cannot start: {e}");
            return Vec::new();
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    let track = |add: bool| {
        if let (Some(pg), Ok(mut set)) = (pid, s.running.lock()) {
            if add {
                set.insert(pg);
            } else {
                set.remove(&pg);
            }
        }
    };
    track(true);
    let input = format!("{}\n", job.input);
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let work = async {
        let feed = async {
            if let Some(mut w) = stdin {
                // A hook that does not read its input is not an error.
                let _ = w.write_all(input.as_bytes()).await;
                let _ = w.shutdown().await;
            }
        };
        let out = async {
            match stdout {
                Some(r) => read_capped(r, s.max_output).await,
                None => (Vec::new(), false),
            }
        };
        let err = async {
            match stderr {
                Some(r) => read_capped(r, s.max_output).await,
                None => (Vec::new(), false),
            }
        };
        let ((), out, err) = tokio::join!(feed, out, err);
        let status = child.wait().await;
        (out, err, status)
    };
    let outcome = tokio::time::timeout(s.timeout, work).await;
    if outcome.is_err() {
        if let Some(pg) = pid {
            let pg = nix::unistd::Pid::from_raw(pg);
            let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
        }
    }
    track(false);
    match outcome {
        Ok(((out, out_cut), (err, _), status)) => {
            for l in String::from_utf8_lossy(&err).lines().take(5) {
                let l: String = l.chars().filter(|c| !c.is_control()).collect();
                log::info!("hook {name}: {l:?}");
            }
            if out_cut {
                log::warn!("hook {name}: output over {} bytes cut", s.max_output);
            }
            match status {
                Ok(st) if st.success() => log::debug!("hook {name}: done"),
                Ok(st) => log::warn!("hook {name}: exited with {st}"),
                Err(e) => log::warn!("hook {name}: {e}"),
            }
            reply_lines(&out)
        }
        Err(_) => {
            log::warn!(
                "hook {name}: no end within {} s: killed",
                s.timeout.as_secs()
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reply_lines;

    #[test]
    fn replies_are_clean_short_lines() {
        assert_eq!(
            reply_lines(b"sunny\n\n  \x1b[31mhot\x07\nx\ny\nz\nw\n"),
            vec!["sunny", "[31mhot", "x", "y"]
        );
    }
}
